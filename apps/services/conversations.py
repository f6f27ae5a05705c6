"""Conversations as their users manage them: find one (the same "Conversation Not Exists." for
a missing, deleted, another app's or another user's), rename it (or have it named), delete it
(hidden from its user, kept for logs and annotation), and read or change a chatflow's
conversation variables."""

from __future__ import annotations

import json
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction

from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, NotFound
from tenants.models import User
from workflows.dsl.graph import ConversationVariable
from workflows.services.definitions import spec_of

from ..models import App, Conversation, EndUser, Message
from ..pipeline.naming import generate_name
from ..pipeline.prepare import CONVERSATION_NOT_FOUND

VARIABLE_NOT_FOUND = "Conversation Variable Not Exists."
MAX_NAME = 255


def conversation_get(
    *, app: App, conversation_id: Any, end_user: EndUser | None, user: User | None = None
) -> Conversation:
    """The app's conversation of this end user (or, with none, of this member); NotFound
    otherwise."""
    try:
        pk = uuid.UUID(str(conversation_id))
    except ValueError:
        raise NotFound(CONVERSATION_NOT_FOUND) from None
    with tenant_context(app.tenant):
        rows = Conversation.objects.filter(pk=pk, app=app, is_deleted=False)
        if end_user is not None:
            rows = rows.filter(end_user=end_user)
        elif user is not None:
            rows = rows.filter(end_user__isnull=True, created_by=user)
        else:
            raise NotFound(CONVERSATION_NOT_FOUND)
        found = rows.select_related("app", "app_version__workflow_version").first()
    if found is None:
        raise NotFound(CONVERSATION_NOT_FOUND)
    return found


def conversation_rename(
    *, conversation: Conversation, name: str | None = None, auto_generate: bool = False
) -> Conversation:
    """Give the conversation `name`, or, with `auto_generate`, one the model writes from its
    first query (its first words when the model cannot). Synchronous (from async code, call
    it through sync_to_async)."""
    if auto_generate:
        with tenant_context(conversation.tenant):
            first = (
                Message.objects.filter(conversation=conversation)
                .order_by("created_at")
                .values_list("query", flat=True)
                .first()
            )
            app = conversation.app
            version = conversation.app_version
            config = None if app.runs_workflow else (version.config if version else app.config)
        if first is None:
            raise InvalidInput("auto_generate: the conversation has no message to name it after.")
        name = async_to_sync(generate_name)(app=app, config=config, query=first)
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name: this field is required.")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise InvalidInput(f"name: at most {MAX_NAME} characters.")
    with transaction.atomic():
        Conversation.dangerously_unscoped.filter(pk=conversation.pk).update(name=name)
    conversation.name = name
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Hide the conversation from its user (kept, with its messages, for logs)."""
    with transaction.atomic():
        Conversation.dangerously_unscoped.filter(pk=conversation.pk).update(is_deleted=True)
    conversation.is_deleted = True


def _declared(conversation: Conversation) -> list[ConversationVariable]:
    """The conversation variables the conversation's workflow declares (none for apps
    without a workflow)."""
    with tenant_context(conversation.tenant):
        version = conversation.app_version
        source: Any = version.workflow_version if version is not None else None
        if source is None:
            source = conversation.app.workflow
        if source is None:
            return []
        return list(spec_of(source, secrets="blank").conversation_variables)


def _shown(conversation: Conversation, declared: ConversationVariable) -> dict[str, Any]:
    values = conversation.variables or {}
    return {
        "id": declared.id or declared.name,
        "name": declared.name,
        "value_type": declared.value_type,
        "value": values.get(declared.name, declared.value),
        "description": declared.description or "",
        "created_at": int(conversation.created_at.timestamp()),
        "updated_at": int(conversation.updated_at.timestamp()),
    }


def conversation_variables(*, conversation: Conversation) -> list[dict[str, Any]]:
    """`[{id, name, value_type, value, description, created_at, updated_at}]`: each declared
    variable with its value in this conversation (the declared default until a run or the
    API changed it). `value` is the value itself; Dify's API sends it as JSON text."""
    return [_shown(conversation, declared) for declared in _declared(conversation)]


def _fits(value_type: str, value: Any) -> bool:
    def number(item: Any) -> bool:
        return isinstance(item, int | float) and not isinstance(item, bool)

    if value_type in ("string", "secret"):
        return isinstance(value, str)
    if value_type == "number":
        return number(value)
    if value_type == "boolean":
        return isinstance(value, bool)
    if value_type == "object":
        return isinstance(value, dict)
    if value_type.startswith("array"):
        if not isinstance(value, list):
            return False
        item_checks = {
            "array[string]": lambda item: isinstance(item, str),
            "array[number]": number,
            "array[object]": lambda item: isinstance(item, dict),
            "array[boolean]": lambda item: isinstance(item, bool),
        }
        check = item_checks.get(value_type)
        return check is None or all(check(item) for item in value)
    return True


def conversation_variable_update(
    *, conversation: Conversation, variable_id: str, value: Any
) -> dict[str, Any]:
    """Set a conversation variable (by id or name) to `value`, which must be of its type;
    the variable as `conversation_variables` shows it."""
    declared = next(
        (v for v in _declared(conversation) if variable_id in (v.id, v.name)),
        None,
    )
    if declared is None:
        raise NotFound(VARIABLE_NOT_FOUND)
    if not _fits(declared.value_type, value):
        raise InvalidInput(
            f"value: the variable “{declared.name}” holds {declared.value_type}, "
            f"not {_json_type(value)}."
        )
    with transaction.atomic():
        current = Conversation.dangerously_unscoped.select_for_update().get(pk=conversation.pk)
        variables = dict(current.variables or {})
        variables[declared.name] = json.loads(json.dumps(value))
        current.variables = variables
        current.save(update_fields=["variables", "updated_at"])
    conversation.variables, conversation.updated_at = current.variables, current.updated_at
    return _shown(conversation, declared)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
