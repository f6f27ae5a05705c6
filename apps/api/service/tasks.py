"""Running an app: `POST /chat-messages`, `/completion-messages`, `/workflows/run` (and by
version), their `stop`, and following a task's events (`GET /chat-messages/{task_id}/events`,
`GET /workflow/{run_id}/events`).

A task runs detached from the request (an asyncio task on this process's loop, or a Celery
worker in Weft's `async` mode), so a client that goes away never stops it: `blocking` waits
for its end without being cancelled with the request, `streaming` reads its events from its
Redis stream, and a client can reconnect with `Last-Event-ID` to pick them up where it left.

The WebSocket consumer starts and follows tasks through the same functions.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from knowledge.api.base import text_field
from tenants.aio import database, release_connections
from tenants.exceptions import InvalidInput, NotFound
from workflows import streams
from workflows.models import WorkflowRun

from ... import limits, pipeline, selectors
from ...models import App, Message
from ...services.apps import runnable
from .base import (
    Caller,
    bool_field,
    json_body,
    list_field,
    object_field,
    ok,
    require_chat,
    require_completion,
    require_workflow,
    uses_user,
)
from .shapes import unix
from .streaming import (
    EventsExpired,
    follow,
    last_event_id,
    sse_events,
    sse_frame,
    sse_response,
)

Kind = Literal["chat", "completion", "workflow"]
RESPONSE_MODES = ("blocking", "streaming", "async")


@dataclass(frozen=True)
class Started:
    """A task that runs, and how its caller asked to hear of it."""

    task: pipeline.Task
    response_mode: str
    runner: asyncio.Task | None  # None when a Celery worker runs it


def _check_mode(app: App, kind: Kind) -> None:
    if kind == "chat":
        require_chat(app)
    elif kind == "completion":
        require_completion(app)
    else:
        require_workflow(app)


def response_mode(body: dict[str, Any], *, default: str = "blocking") -> str:
    mode = body.get("response_mode")
    if mode in (None, ""):
        return default
    if mode not in RESPONSE_MODES:
        raise InvalidInput(f"response_mode: must be one of {', '.join(RESPONSE_MODES)}.")
    return mode


def _request(
    caller: Caller, kind: Kind, body: dict[str, Any], version_id: str | None
) -> pipeline.Request:
    """The pipeline's request from Dify's body, every field checked by type (the pipeline
    checks the values against the app)."""
    app = caller.app
    _check_mode(app, kind)
    inputs = object_field(body, "inputs", required=True)
    query = ""
    conversation_id = None
    if kind == "chat":
        query = text_field(body, "query") or ""
        if not query.strip():
            raise InvalidInput("query: this field is required.")
        conversation_id = (text_field(body, "conversation_id") or "").strip() or None
        version_id = version_id or (text_field(body, "workflow_id") or "").strip() or None
    elif kind == "completion":
        query = text_field(body, "query") or ""
    files = list_field(body, "files")
    if any(not isinstance(item, dict) for item in files):
        raise InvalidInput("files: each file must be an object.")
    return pipeline.Request(
        app=app,
        runnable=runnable(app, version_id=version_id),
        source=caller.source,
        end_user=caller.end_user(),
        inputs=inputs,
        query=query,
        files=files,
        conversation_id=conversation_id,
        auto_generate_name=bool_field(body, "auto_generate_name", True) and kind == "chat",
    )


def _prepare(
    caller: Caller, kind: Kind, body: dict[str, Any], version_id: str | None
) -> pipeline.Task:
    return pipeline.prepare(_request(caller, kind, body, version_id))


def _run_limit(app: App) -> int:
    return app.max_active_requests or settings.WEFT_APP_MAX_ACTIVE_REQUESTS


async def start(
    caller: Caller,
    kind: Kind,
    body: dict[str, Any],
    *,
    version_id: str | None = None,
    default_mode: str = "blocking",
) -> Started:
    """Check the body, take a place among the app's runs at once (429 before anything is
    written), write the task's rows, and start it as its response mode says. A client
    leaving meanwhile does not interrupt this: rows once written always get their task."""
    mode = response_mode(body, default=default_mode)
    return await asyncio.shield(_start(caller, kind, body, mode, version_id))


async def _start(
    caller: Caller, kind: Kind, body: dict[str, Any], mode: str, version_id: str | None
) -> Started:
    app_id = str(caller.app.pk)
    limit = _run_limit(caller.app)
    # The place is held under a stand-in until the task has its id, then handed over: one
    # place throughout, so a full app refuses before any row is written.
    holder = f"pending:{uuid.uuid4()}"
    if limit > 0:
        await limits.run_acquire(app_id, holder, limit)
    try:
        task = await database(_prepare)(caller, kind, body, version_id)
        if limit > 0:
            await limits.run_acquire(app_id, task.task_id, limit + 1)
    finally:
        if limit > 0:
            await limits.run_release(app_id, holder)
    try:
        if mode == "async":
            await sync_to_async(pipeline.enqueue)(task)
            return Started(task, mode, None)
        return Started(task, mode, pipeline.start_detached(task))
    except BaseException:
        await limits.run_release(app_id, task.task_id)
        raise


def stream_of(task: pipeline.Task) -> str:
    return task.task_id


def alive_check(*, message_id: str | None, run_id: str | None):
    """Whether the task is still running, read by id: the tenant context has been reset by
    the time a streamed body is read, and the task was found in the caller's tenant before
    its stream began."""

    def running() -> bool:
        if message_id is not None:
            found = Message.dangerously_unscoped.filter(
                pk=message_id, status=Message.Status.RUNNING
            ).exists()
        else:
            found = WorkflowRun.dangerously_unscoped.filter(
                pk=str(run_id), status=WorkflowRun.Status.RUNNING
            ).exists()
        return found

    # A quiet stream holds no connection between looks.
    return database(running)


def task_alive(task: pipeline.Task):
    return alive_check(message_id=task.message_id, run_id=task.workflow_run_id)


async def respond(started: Started) -> HttpResponseBase:
    """The HTTP answer of a started task, in its response mode."""
    task = started.task
    # What follows waits, maybe for minutes: the request's database connection goes back to
    # the pool meanwhile, so open streams and waiting callers do not use them all up.
    await sync_to_async(release_connections)()
    if started.response_mode == "streaming":
        return sse_response(sse_events(stream_of(task), alive=task_alive(task)))
    if started.response_mode == "async":
        accepted: dict[str, Any] = {
            "task_id": task.task_id,
            "message_id": task.message_id,
            "conversation_id": task.conversation_id,
        }
        if task.workflow_run_id is not None:
            accepted["workflow_run_id"] = task.workflow_run_id
        return ok(accepted, status=202)
    assert started.runner is not None  # noqa: S101 - blocking tasks run here
    # asyncio.wait, not `await runner`: a client that goes away cancels this view, and a
    # task awaited by a cancelled coroutine is cancelled with it.
    await asyncio.wait([started.runner])
    return ok(await pipeline.blocking_result(task))


@uses_user("json")
async def chat(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    """Send a chat message: `blocking` (the default), `streaming` (SSE) or `async` (202)."""
    return await respond(await start(caller, "chat", json_body(request)))


@uses_user("json")
async def completion(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    """Run a completion app: `blocking`, `streaming` (SSE) or `async` (202)."""
    return await respond(await start(caller, "completion", json_body(request)))


@uses_user("json")
async def workflow_run(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    """Run the workflow app's published version."""
    return await respond(await start(caller, "workflow", json_body(request)))


@uses_user("json")
async def workflow_run_version(
    request: HttpRequest, caller: Caller, workflow_id: str
) -> HttpResponseBase:
    """Run one published version (a workflow version's id, or an app version's)."""
    return await respond(
        await start(caller, "workflow", json_body(request), version_id=workflow_id)
    )


# Stop


async def stop_task(caller: Caller, kind: Kind, task_id: str) -> HttpResponseBase:
    _check_mode(caller.app, kind)
    end_user = await database(caller.known_end_user)()
    await pipeline.stop(app=caller.app, task_id=task_id, end_user=end_user)
    return ok({"result": "success"})


@uses_user("json")
async def chat_stop(request: HttpRequest, caller: Caller, task_id: str) -> HttpResponseBase:
    """Stop a chat task of this user (another user's is left alone, as Dify does)."""
    return await stop_task(caller, "chat", task_id)


@uses_user("json")
async def completion_stop(request: HttpRequest, caller: Caller, task_id: str) -> HttpResponseBase:
    """Stop a completion task of this user."""
    return await stop_task(caller, "completion", task_id)


@uses_user("json")
async def workflow_stop(request: HttpRequest, caller: Caller, task_id: str) -> HttpResponseBase:
    """Stop a run of the workflow app."""
    return await stop_task(caller, "workflow", task_id)


# Following a task's events


@dataclass(frozen=True)
class Followed:
    """A task a caller may follow: its stream, whether it still runs, and how to tell."""

    stream_id: str
    message_id: str | None
    run_id: str | None
    running: bool
    finished_run: WorkflowRun | None = None

    def alive(self):
        return alive_check(message_id=self.message_id, run_id=self.run_id)


def find_message_task(caller: Caller, task_id: str) -> Followed:
    """The end user's chat or completion task (its message), or 404 (sync)."""
    if caller.app.mode not in (*App.CHAT_MODES, App.Mode.COMPLETION):
        raise InvalidInput(
            "Please check if your Chat app mode matches the right API route.",
            code="not_chat_app",
        )
    message = selectors.access_message(
        app=caller.app, end_user=caller.known_end_user(), message_id=task_id
    )
    return Followed(
        stream_id=str(message.pk),
        message_id=str(message.pk),
        run_id=None,
        running=message.status == Message.Status.RUNNING,
    )


def find_run_task(caller: Caller, run_id: str) -> Followed:
    """The end user's workflow run (a chatflow's: the run of one of their messages), or 404
    (sync)."""
    require_workflow(caller.app, chatflow=True)
    run = selectors.access_run(app=caller.app, run_id=run_id)
    end_user = caller.known_end_user()
    if caller.app.mode == App.Mode.CHATFLOW:
        message = Message.objects.filter(app=caller.app, workflow_run=run).first()
        if message is None or end_user is None or message.end_user_id != end_user.pk:
            raise NotFound("Workflow run not found.")
        return Followed(
            stream_id=str(message.pk),
            message_id=str(message.pk),
            run_id=str(run.pk),
            running=message.status == Message.Status.RUNNING,
            finished_run=run if run.status in WorkflowRun.FINISHED else None,
        )
    if end_user is None or run.created_by_end_user != str(end_user.pk):
        raise NotFound("Workflow run not found.")
    return Followed(
        stream_id=str(run.pk),
        message_id=None,
        run_id=str(run.pk),
        running=run.status == WorkflowRun.Status.RUNNING,
        finished_run=run if run.status in WorkflowRun.FINISHED else None,
    )


def finished_event(run: WorkflowRun) -> dict[str, Any]:
    """Dify's `workflow_finished` of a run whose events are no longer kept."""
    return {
        "event": "workflow_finished",
        "task_id": str(run.pk),
        "workflow_run_id": str(run.pk),
        "data": {
            "id": str(run.pk),
            "workflow_id": str(run.workflow_id),
            "status": run.status,
            "outputs": run.outputs,
            "error": run.error or None,
            "elapsed_time": run.elapsed_time,
            "total_tokens": run.total_tokens,
            "total_steps": run.total_steps,
            "exceptions_count": run.exceptions_count,
            "created_at": unix(run.created_at),
            "finished_at": unix(run.finished_at),
        },
    }


async def _expired_fallback(followed: Followed, after: str) -> HttpResponseBase | None:
    """None when the task's events can be streamed; else Dify's answer for a finished run
    whose events have gone (its `workflow_finished` alone, for a client starting from the
    beginning), or 410 `events_expired`."""
    if followed.running or await streams.exists(followed.stream_id):
        return None
    if followed.finished_run is not None and after == "0-0":
        body = json.dumps(finished_event(followed.finished_run), ensure_ascii=False, default=str)

        async def once():
            yield f"data: {body}\n\n".encode()

        return sse_response(once())
    raise EventsExpired(
        "This task's events are no longer kept (an hour after its last one): read its result "
        "instead (GET /messages, or GET /workflows/run/{id})."
    )


async def _events(followed: Followed, after: str) -> HttpResponseBase:
    fallback = await _expired_fallback(followed, after)
    if fallback is not None:
        return fallback
    if followed.running:
        return sse_response(sse_events(followed.stream_id, after=after, alive=followed.alive()))

    async def kept():
        async for entry_id, body in follow(
            followed.stream_id, after=after, alive=_never, every=0.001
        ):
            if body is not None:
                yield sse_frame(entry_id, body)

    return sse_response(kept())


async def _never() -> bool:
    return False


@uses_user("query")
async def chat_events(request: HttpRequest, caller: Caller, task_id: str) -> HttpResponseBase:
    """Weft's: a chat or completion task's events from the start or after `Last-Event-ID`."""
    after = last_event_id(request)
    followed = await database(find_message_task)(caller, task_id)
    return await _events(followed, after)


@uses_user("query")
async def run_events(request: HttpRequest, caller: Caller, run_id: str) -> HttpResponseBase:
    """Dify's `GET /workflow/{run_id}/events`: a run's events, resumable with
    `Last-Event-ID`."""
    after = last_event_id(request)
    followed = await database(find_run_task)(caller, run_id)
    return await _events(followed, after)
