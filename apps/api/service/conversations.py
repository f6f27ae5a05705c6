"""Conversations of an end user with a chat app: list (`last_id` cursor, `sort_by`), delete,
rename (or name automatically), and a chatflow's conversation variables."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse

from knowledge.api.base import text_field
from tenants.exceptions import InvalidInput, NotFound

from ... import selectors
from ...models import Conversation
from ...selectors import check_limit
from ...services.conversations import conversation_delete as service_delete
from ...services.conversations import (
    conversation_get,
    conversation_variable_update,
    conversation_variables,
)
from ...services.conversations import conversation_rename as service_rename
from .base import (
    Caller,
    bool_field,
    int_param,
    json_body,
    no_content,
    ok,
    require_chat,
    uses_user,
)
from .shapes import conversation_json


@uses_user("query")
def conversation_list(request: HttpRequest, caller: Caller) -> HttpResponse:
    """The end user's conversations, by `last_id` cursor, in `sort_by` order."""
    require_chat(caller.app)
    page = selectors.conversation_page(
        app=caller.app,
        end_user=caller.known_end_user(),
        last_id=request.GET.get("last_id") or None,
        limit=int_param(request, "limit", 20),
        sort_by=request.GET.get("sort_by") or "-updated_at",
    )
    return ok(
        {
            "limit": page.limit,
            "has_more": page.has_more,
            "data": [conversation_json(row) for row in page.data],
        }
    )


def _conversation(caller: Caller, conversation_id: str) -> Conversation:
    require_chat(caller.app)
    return conversation_get(
        app=caller.app, conversation_id=conversation_id, end_user=caller.known_end_user()
    )


@uses_user("json")
def conversation_delete(request: HttpRequest, caller: Caller, conversation_id: str) -> HttpResponse:
    """Hide the conversation from its user (204), as Dify does."""
    service_delete(conversation=_conversation(caller, conversation_id))
    return no_content()


@uses_user("json")
def conversation_rename(request: HttpRequest, caller: Caller, conversation_id: str) -> HttpResponse:
    """`{name}`, or `{auto_generate: true}` for a name the model writes."""
    body = json_body(request)
    auto_generate = bool_field(body, "auto_generate", False)
    name = text_field(body, "name")
    if not auto_generate and (name is None or not name.strip()):
        raise InvalidInput("name: this field is required when auto_generate is false.")
    conversation = service_rename(
        conversation=_conversation(caller, conversation_id),
        name=name,
        auto_generate=auto_generate,
    )
    return ok(conversation_json(conversation))


def variable_json(variable: dict[str, Any]) -> dict[str, Any]:
    """A conversation variable as Dify sends it: its value as JSON text (text as is)."""
    value = variable["value"]
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return {**variable, "value": shown}


@uses_user("query")
def variable_list(request: HttpRequest, caller: Caller, conversation_id: str) -> HttpResponse:
    """The chatflow's conversation variables with their values here (`last_id`, `limit`
    and `variable_name` as Dify's)."""
    limit = check_limit(int_param(request, "limit", 20))
    rows = conversation_variables(conversation=_conversation(caller, conversation_id))
    name = request.GET.get("variable_name", "").strip()
    if name:
        rows = [row for row in rows if row["name"] == name]
    last_id = request.GET.get("last_id", "").strip()
    if last_id:
        ids = [str(row["id"]) for row in rows]
        if last_id not in ids:
            raise NotFound("Last Conversation Variable Not Exists.")
        rows = rows[ids.index(last_id) + 1 :]
    return ok(
        {
            "limit": limit,
            "has_more": len(rows) > limit,
            "data": [variable_json(row) for row in rows[:limit]],
        }
    )


@uses_user("json")
def variable_update(
    request: HttpRequest, caller: Caller, conversation_id: str, variable_id: str
) -> HttpResponse:
    """Set one variable; the value must be of its type (400 otherwise)."""
    body = json_body(request)
    if "value" not in body:
        raise InvalidInput("value: this field is required.")
    variable = conversation_variable_update(
        conversation=_conversation(caller, conversation_id),
        variable_id=variable_id,
        value=body["value"],
    )
    return ok(variable_json(variable))
