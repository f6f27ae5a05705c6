"""Running a prepared task (here, detached, or on Celery), stopping it, waiting for its
blocking answer, and the follow-ups of an answer (conversation name, suggested questions)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from asgiref.sync import sync_to_async

from tenants.aio import database, detach
from tenants.context import tenant_context
from tenants.exceptions import WeftError
from workflows import streams
from workflows.models import WorkflowRun
from workflows.runner import run_stop

from ..config import parse_config
from ..limits import run_release
from ..models import App, EndUser, Message
from .chat import run_chat
from .chatflow import run_chatflow, workflow_features
from .events import INTERNAL_ERROR, Usage
from .naming import generate_name, questions_after, save_name
from .types import Task
from .workflow import run_workflow_app

logger = logging.getLogger(__name__)

# How long a blocking caller waits between looks at the rows (a run whose process died
# leaves a stream that never ends).
BLOCK_MS = 10_000


class SuggestionsDisabled(WeftError):
    """The app does not suggest questions after an answer."""

    code = "bad_request"
    status = 400


async def execute(task: Task, *, wait_follow_ups: bool = False) -> None:
    """Run the task to its end on this event loop. A failure of the run itself becomes an
    `error` event and status error, never an exception; the app's run slot is released at
    the end. The conversation is then named in a task of its own, so that naming never
    delays the answer (`wait_follow_ups`: wait for it too, for callers whose loop ends when
    this returns, such as a Celery task)."""
    message: Message | None = None
    try:
        if task.mode == App.Mode.WORKFLOW:
            await run_workflow_app(task)
        elif task.mode == App.Mode.CHATFLOW:
            message = await run_chatflow(task)
        else:
            message = await run_chat(task)
    except Exception:
        logger.exception("app task %s broke off", task.task_id)
    finally:
        try:
            await run_release(task.app_id, task.task_id)
        except Exception:  # the slot expires on its own
            logger.warning("run slot of task %s not released", task.task_id, exc_info=True)
    if message is not None and task.auto_generate_name:
        naming = detach(_name_conversation(message), what=f"naming after {task.task_id}")
        if wait_follow_ups:
            await naming


async def _name_conversation(message: Message) -> None:
    try:
        placeholder = message.conversation.name if message.conversation else None
        config = await sync_to_async(_config_of)(message)
        name = await generate_name(app=message.app, config=config, query=message.query)
        await sync_to_async(save_name)(str(message.conversation_id), name, only_if=placeholder)
    except Exception:
        logger.exception("conversation %s was not named", message.conversation_id)


def _config_of(message: Message) -> dict[str, Any] | None:
    if message.app.runs_workflow:
        return None
    version = message.app_version
    return version.config if version is not None else message.app.config


def start_detached(task: Task) -> asyncio.Task:
    """Execute the task on this process's event loop, beyond the request that started it."""
    return detach(execute(task), what=f"app task {task.task_id}")


def enqueue(task: Task) -> None:
    """Execute the task on a Celery worker (queue `workflows`)."""
    from ..tasks import execute_task

    execute_task.apply_async(kwargs=task.fields())


# --- Stop ----------------------------------------------------------------------------------


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _stop_target(app: App, pk: uuid.UUID, end_user: EndUser | None) -> tuple[str, Any]:
    """('run', run) or ('message', id) to stop; ('', None) for nothing."""
    with tenant_context(app.tenant):
        if app.mode == App.Mode.WORKFLOW:
            run = WorkflowRun.objects.filter(pk=pk, workflow_id=str(app.workflow_id)).first()
            return ("run", run) if run is not None else ("", None)
        message = (
            Message.objects.select_related("workflow_run")
            .filter(pk=pk, app=app, end_user=end_user)
            .first()
        )
        if message is None:
            return "", None
        if message.workflow_run is not None:
            return "run", message.workflow_run
        return "message", str(message.pk)


async def stop(*, app: App, task_id: str, end_user: EndUser | None) -> None:
    """Ask a task to stop, wherever it runs. Another end user's task, or an unknown one, is
    silently left alone (as Dify does); a workflow app's run is stopped whoever asks."""
    pk = _uuid(task_id)
    if pk is None:
        return
    kind, target = await database(_stop_target)(app, pk, end_user)
    if kind == "run":
        await run_stop(tenant=app.tenant, run=target)
    elif kind == "message":
        await streams.request_stop(target)


# --- Blocking answers ----------------------------------------------------------------------


def _chat_result(task: Task, answer: str, end: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "event": "message",
        "task_id": task.task_id,
        "id": task.message_id,
        "message_id": task.message_id,
        "mode": task.mode,
        "answer": answer,
        "metadata": end.get("metadata") or {},
        "created_at": end.get("created_at"),
    }
    if task.conversation_id is not None:
        result["conversation_id"] = task.conversation_id
    return result


def _workflow_result(task: Task, data: dict[str, Any]) -> dict[str, Any]:
    fields = (
        "id",
        "workflow_id",
        "status",
        "outputs",
        "error",
        "elapsed_time",
        "total_tokens",
        "total_steps",
        "created_at",
        "finished_at",
    )
    return {
        "task_id": task.task_id,
        "workflow_run_id": task.workflow_run_id,
        "data": {name: data.get(name) for name in fields},
    }


def _from_rows(task: Task) -> dict[str, Any] | None:
    """The result from the database once the task no longer runs (its stream gone or never
    ended); None while it still runs."""
    if task.mode == App.Mode.WORKFLOW:
        run = WorkflowRun.dangerously_unscoped.filter(pk=str(task.workflow_run_id)).first()
        if run is None or run.status in (WorkflowRun.Status.RUNNING,):
            return None
        return _workflow_result(
            task,
            {
                "id": str(run.pk),
                "workflow_id": str(run.workflow_id),
                "status": run.status,
                "outputs": run.outputs,
                "error": run.error or None,
                "elapsed_time": run.elapsed_time,
                "total_tokens": run.total_tokens,
                "total_steps": run.total_steps,
                "created_at": int(run.created_at.timestamp()),
                "finished_at": int(run.finished_at.timestamp()) if run.finished_at else None,
            },
        )
    message = Message.dangerously_unscoped.filter(pk=str(task.message_id)).first()
    if message is None or message.status == Message.Status.RUNNING:
        return None
    if message.status == Message.Status.ERROR:
        raise WeftError(message.error or INTERNAL_ERROR, code="internal_server_error", status=500)
    usage = Usage(message.message_tokens, message.answer_tokens, currency=message.currency)
    end = {
        "metadata": {
            "usage": usage.to_dify(message.latency) | {"total_price": str(message.total_price)},
            "retriever_resources": message.retriever_resources,
        },
        "created_at": int(message.created_at.timestamp()),
    }
    return _chat_result(task, message.answer, end)


async def blocking_result(task: Task) -> dict[str, Any]:
    """Dify's blocking answer once the task has ended: for chat, agent-chat, completion and
    chatflow apps `{event: "message", task_id, id, message_id, conversation_id, mode, answer,
    metadata{usage, retriever_resources}, created_at}`, for workflow apps `{task_id,
    workflow_run_id, data{…}}`. A task that ended with an `error` event raises it as a
    WeftError with the event's status, code and message."""
    answer = ""
    async for _entry_id, raw in streams.read(task.task_id, block_ms=BLOCK_MS):
        if raw is None:
            settled = await database(_from_rows)(task)
            if settled is not None:
                return settled
            continue
        event = json.loads(raw)
        name = event.get("event")
        if name in ("message", "agent_message"):
            answer += event.get("answer", "")
        elif name == "message_replace":
            answer = event.get("answer", "")
        elif name == "message_end":
            return _chat_result(task, answer, event)
        elif name in ("workflow_finished", "workflow_paused") and task.mode == App.Mode.WORKFLOW:
            return _workflow_result(task, event.get("data") or {})
        elif name == "error":
            raise WeftError(
                str(event.get("message") or INTERNAL_ERROR),
                code=str(event.get("code") or "internal_server_error"),
                status=int(event.get("status") or 500),
            )
    settled = await database(_from_rows)(task)
    if settled is None:
        raise WeftError(INTERNAL_ERROR, code="internal_server_error", status=500)
    return settled


# --- Suggested questions ---------------------------------------------------------------------


def _suggestions_enabled(message: Message) -> bool:
    with tenant_context(message.tenant):
        app = message.app
        version = message.app_version
        if app.runs_workflow:
            features = workflow_features(message)
        else:
            features = parse_config(version.config if version is not None else app.config)
    return features.suggested_questions_after_answer.enabled


def _keep_suggestions(message: Message, questions: list[str]) -> None:
    Message.dangerously_unscoped.filter(pk=message.pk).update(suggested_questions=questions)
    message.suggested_questions = questions


async def suggested_questions(message: Message) -> list[str]:
    """Up to three questions the user may ask after this answer, made once and kept on the
    message; SuggestionsDisabled when the app's `suggested_questions_after_answer` is off;
    [] while the message is still being answered or when the model cannot say."""
    if not await database(_suggestions_enabled)(message):
        raise SuggestionsDisabled("Suggested questions after answer are disabled for this app.")
    if message.suggested_questions:
        return list(message.suggested_questions)
    if message.status != Message.Status.NORMAL:
        return []
    questions = await questions_after(message)
    if questions:
        await database(_keep_suggestions)(message, questions)
    return questions
