"""`prepare`: check a request and write what its task runs on — the conversation, the message
(status running) and, for chatflow and workflow apps, the workflow run — in one transaction.
Whatever it refuses, it refuses before anything is written."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from django.conf import settings
from django.db import transaction
from opentelemetry import trace

from billing import quota
from billing.models import Metric
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, NotFound
from tenants.models import User
from workflows.dsl import StartData
from workflows.dsl.nodes_data import StartVariable
from workflows.models import WorkflowRun
from workflows.nodes.io import InputError, check_inputs
from workflows.runner import run_create
from workflows.services.definitions import start_of

from ..config import AppConfig
from ..models import App, Conversation, EndUser, Message, Source
from .agent import check_tools
from .files import check_file_inputs, check_files
from .naming import NEW_CONVERSATION
from .types import Request, Task

CONVERSATION_NOT_FOUND = "Conversation Not Exists."


def prepare(request: Request) -> Task:
    """Check the request and write its rows; the task to execute. Raises WeftError with
    Dify's codes (InvalidInput → invalid_param, NotFound "Conversation Not Exists." …);
    nothing is written when it raises. Does not take a run slot (apps.limits.run_acquire
    is the caller's)."""
    app = request.app
    if request.runnable.app.pk != app.pk:
        raise ValueError("The runnable is another app's.")
    _check_caller(request)
    query = _clean_query(request)
    with tenant_context(app.tenant), transaction.atomic():
        # Counted with the rows it writes: refused, nothing is written or counted.
        quota.check(app.tenant, Metric.TOKENS)
        if app.mode == App.Mode.WORKFLOW:
            return _workflow(request)
        quota.consume(app.tenant, Metric.MESSAGES, app_id=app.pk)
        if app.mode == App.Mode.CHATFLOW:
            return _chatflow(request, query)
        return _chat(request, query)


# --- Checks ------------------------------------------------------------------------------


def _check_caller(request: Request) -> None:
    if request.source not in Source.values:
        raise InvalidInput(f"source: “{request.source}” is not one of {', '.join(Source.values)}.")
    if request.end_user is None and request.user is None:
        raise InvalidInput("user: this field is required.")
    if request.end_user is not None and request.end_user.app_id != request.app.pk:
        raise InvalidInput("user: this end user belongs to another app.")
    if not isinstance(request.inputs, Mapping):
        raise InvalidInput("inputs: expected an object.")
    if request.files is not None and not isinstance(request.files, list):
        raise InvalidInput("files: expected a list.")


def _clean_query(request: Request) -> str:
    query = request.query
    if query is None:
        query = ""
    if not isinstance(query, str):
        raise InvalidInput("query: expected text.")
    query = query.replace("\x00", "")
    limit = settings.WEFT_APP_MAX_QUERY_CHARS
    if len(query) > limit:
        raise InvalidInput(f"query: at most {limit:,} characters.")
    if request.app.mode in App.CHAT_MODES and not query.strip():
        raise InvalidInput("query: this field is required.")
    return query


def _checked_inputs(
    variables: Sequence[StartVariable],
    fields: Sequence[tuple[str, Any]],
    request: Request,
) -> dict[str, Any]:
    """The inputs against the form: required, types, lengths, options, then files."""
    try:
        checked = check_inputs(StartData(variables=list(variables)), request.inputs)
    except InputError as exc:
        raise InvalidInput(str(exc)) from None
    return check_file_inputs(checked, fields, end_user=request.end_user, user=request.user)


def _form_inputs(config: AppConfig, request: Request) -> dict[str, Any]:
    fields = config.input_fields()
    variables = [
        StartVariable(
            variable=field.variable,
            label=field.label,
            type=cast(Any, kind),  # the config checked it is a form type
            required=field.required,
            max_length=field.max_length,
            options=field.options,
            default=field.default,
        )
        for kind, field in fields
    ]
    return _checked_inputs(variables, fields, request)


def _conversation(request: Request) -> Conversation | None:
    """The conversation the request continues (locked for this turn), or None for a new one.
    Missing, malformed, deleted, another app's and another user's all answer the same."""
    if not request.conversation_id:
        return None
    try:
        pk = uuid.UUID(str(request.conversation_id))
    except ValueError:
        raise NotFound(CONVERSATION_NOT_FOUND) from None
    rows = Conversation.objects.select_for_update().filter(pk=pk, app=request.app, is_deleted=False)
    found = owned_by(rows, request.end_user, request.user).first()
    if found is None:
        raise NotFound(CONVERSATION_NOT_FOUND)
    return found


def owned_by(rows: Any, end_user: EndUser | None, user: User | None) -> Any:
    """Rows (conversations, messages) of this end user, or with none, of this member."""
    if end_user is not None:
        return rows.filter(end_user=end_user)
    return rows.filter(end_user__isnull=True, created_by=user)


def _trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else ""


def _user_id(request: Request) -> str:
    """`sys.user_id`: the end user's id as the caller gave it, or the member's."""
    if request.end_user is not None:
        return request.end_user.session_id
    return str(request.user.pk) if request.user is not None else ""


# --- Rows --------------------------------------------------------------------------------


def _turn(
    request: Request, query: str, inputs: dict[str, Any], conversation: Conversation | None
) -> tuple[Conversation, bool]:
    """The conversation of this turn (made when new), its dialogue count moved on."""
    created = conversation is None
    if conversation is None:
        conversation = Conversation(
            tenant=request.app.tenant,
            app=request.app,
            app_version=request.runnable.version,
            end_user=request.end_user,
            created_by=request.user,
            source=request.source,
            name=NEW_CONVERSATION,
            inputs=inputs,
            introduction=request.runnable.features.opening_statement,
        )
    conversation.dialogue_count += 1
    conversation.save()
    return conversation, created


def _message(
    request: Request,
    *,
    query: str,
    inputs: dict[str, Any],
    files: list[dict[str, Any]],
    conversation: Conversation | None,
    message_id: uuid.UUID | None = None,
    run: WorkflowRun | None = None,
) -> Message:
    return Message.objects.create(
        id=message_id or uuid.uuid4(),
        tenant=request.app.tenant,
        app=request.app,
        app_version=request.runnable.version,
        conversation=conversation,
        end_user=request.end_user,
        created_by=request.user,
        source=request.source,
        query=query,
        inputs=inputs,
        files=files,
        status=Message.Status.RUNNING,
        agent_based=request.app.mode == App.Mode.AGENT_CHAT,
        workflow_run=run,
        trace_id=_trace_id(),
    )


def _task(
    request: Request,
    task_id: Any,
    *,
    message: Message | None = None,
    conversation: Conversation | None = None,
    run: WorkflowRun | None = None,
    new_conversation: bool = False,
) -> Task:
    return Task(
        task_id=str(task_id),
        mode=request.app.mode,
        message_id=str(message.pk) if message is not None else None,
        conversation_id=str(conversation.pk) if conversation is not None else None,
        workflow_run_id=str(run.pk) if run is not None else None,
        tenant_id=str(request.app.tenant_id),
        app_id=str(request.app.pk),
        auto_generate_name=new_conversation and request.auto_generate_name,
    )


# --- By mode -----------------------------------------------------------------------------


def _chat(request: Request, query: str) -> Task:
    config = request.runnable.config
    assert config is not None  # noqa: S101 - chat, agent and completion apps have one
    completion = request.app.mode == App.Mode.COMPLETION
    existing = None if completion else _conversation(request)
    inputs = existing.inputs if existing is not None else _form_inputs(config, request)
    if completion and config.dataset_query_variable:
        query = str(inputs.get(config.dataset_query_variable) or "")
    files = check_files(
        request.files, config.file_upload, end_user=request.end_user, user=request.user
    )
    if request.app.mode == App.Mode.AGENT_CHAT:
        check_tools(config)
    conversation, created = (None, False) if completion else _turn(request, query, inputs, existing)
    message = _message(request, query=query, inputs=inputs, files=files, conversation=conversation)
    return _task(
        request, message.pk, message=message, conversation=conversation, new_conversation=created
    )


def _start(request: Request) -> list[StartVariable]:
    app = request.app
    source = request.runnable.workflow_version or app.workflow
    assert source is not None  # noqa: S101 - chatflow and workflow apps have a workflow
    start = start_of(source)
    return list(start.variables) if start is not None else []


def _run(
    request: Request,
    inputs: dict[str, Any],
    system: dict[str, Any],
    inputs_checked: bool = False,
) -> WorkflowRun:
    app = request.app
    assert app.workflow is not None  # noqa: S101
    triggered = (
        WorkflowRun.TriggeredFrom.DEBUGGING
        if request.source == Source.CONSOLE
        else WorkflowRun.TriggeredFrom.APP_RUN
    )
    return run_create(
        tenant=app.tenant,
        workflow=app.workflow,
        inputs=inputs,
        version=request.runnable.workflow_version,
        triggered_from=triggered,
        user=request.user,
        # The end user's row id: what the app layer needs to find them again.
        end_user=str(request.end_user.pk) if request.end_user is not None else "",
        system={"user_id": _user_id(request), "app_id": str(app.pk), **system},
        inputs_checked=inputs_checked,
    )


def _chatflow(request: Request, query: str) -> Task:
    existing = _conversation(request)
    if existing is not None:
        inputs = existing.inputs
    else:
        variables = _start(request)
        inputs = _checked_inputs(variables, [(v.type, v) for v in variables], request)
    files = check_files(
        request.files,
        request.runnable.features.file_upload,
        end_user=request.end_user,
        user=request.user,
    )
    conversation, created = _turn(request, query, inputs, existing)
    message_id = uuid.uuid4()
    run = _run(
        request,
        inputs,
        {
            "query": query,
            "files": files,
            "conversation_id": str(conversation.pk),
            "dialogue_count": conversation.dialogue_count,
        },
        inputs_checked=existing is not None,
    )
    message = _message(
        request,
        query=query,
        inputs=inputs,
        files=files,
        conversation=conversation,
        message_id=message_id,
        run=run,
    )
    return _task(
        request,
        message.pk,
        message=message,
        conversation=conversation,
        run=run,
        new_conversation=created,
    )


def _workflow(request: Request) -> Task:
    variables = _start(request)
    inputs = _checked_inputs(variables, [(v.type, v) for v in variables], request)
    files = check_files(
        request.files,
        request.runnable.features.file_upload,
        end_user=request.end_user,
        user=request.user,
    )
    run = _run(request, inputs, {"query": "", "files": files})
    return _task(request, run.pk, run=run)
