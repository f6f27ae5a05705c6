"""Chatflow (advanced-chat) apps: the turn's workflow run, executed by
`workflows.runner.run_execute` with the app layer's hooks.

A chatflow turn first goes through input moderation and annotation reply (either may answer it
without running the workflow, whose never-started run is then deleted). The run gets the
conversation's memory and this user's uploads as services and the conversation variables as
they were left; `ChatflowSink` turns its events into a chat stream — `text_chunk` becomes
`message{answer}` (through output moderation), every event carries `conversation_id` and
`message_id` — and when the run ends the message is saved, the conversation variables kept,
and the stream ends with `message_end` (`error` when the run failed).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from providers.models import Model, ModelKind
from providers.runtime.types import ChatMessage
from tenants.context import tenant_context
from tenants.models import Tenant
from workflows import streams
from workflows.engine import WorkflowRun as Engine
from workflows.engine.events import (
    Event,
    NodeFinished,
    TextChunk,
    WorkflowFinished,
    WorkflowPaused,
)
from workflows.models import WorkflowRun
from workflows.runner import Hooks, run_execute

from ..config import Features, parse_features
from ..models import Conversation, Message
from .annotations import annotation_reply
from .events import AppSink, ChatEvents, Usage, dify_error
from .files import upload_reader
from .messages import (
    RETRIEVER_FROM,
    Watcher,
    claim,
    elapsed_since,
    fail_early,
    save_message,
)
from .moderation import OutputModerator, input_refusal
from .prompts import previous_turns
from .retrieval import resource
from .types import Task

logger = logging.getLogger(__name__)

END_STATUS = {
    "succeeded": Message.Status.NORMAL,
    "partial-succeeded": Message.Status.NORMAL,
    "stopped": Message.Status.STOPPED,
}


def workflow_features(message: Message) -> Features:
    """The features of the workflow a chatflow or workflow message ran: its version's, or
    the draft's (a console debug run)."""
    version = message.app_version
    if version is not None and version.workflow_version is not None:
        return parse_features(version.workflow_version.features or {})
    workflow = message.app.workflow
    assert workflow is not None  # noqa: S101 - these apps have one
    return parse_features(workflow.features or {})


def _load_features(message: Message) -> Features:
    with tenant_context(message.tenant):
        return workflow_features(message)


def memory_service(message: Message):
    """The `memory` run service: the conversation before this message, the last
    `window_size` turns (None: as many as kept)."""

    def turns(window_size: int | None) -> list[ChatMessage]:
        with tenant_context(message.tenant):
            return previous_turns(message, window_size)

    async def memory(window_size: int | None) -> list[ChatMessage]:
        return await sync_to_async(turns)(window_size)

    return memory


def _prices(tenant: Tenant, calls: list[tuple[str, str, int, int]]) -> Usage:
    """The usage of the run's model calls, priced at each model's prices (as its nodes
    priced them)."""
    usage = Usage()
    models: dict[tuple[str, str], Model | None] = {}
    with tenant_context(tenant):
        for provider, name, prompt, completion in calls:
            if (provider, name) not in models:
                models[provider, name] = (
                    Model.objects.filter(kind=ModelKind.CHAT, provider=provider, name=name)
                    .order_by(F("tenant_id").asc(nulls_last=True))
                    .first()
                )
            model = models[provider, name]
            if model is None:
                usage.prompt_tokens += prompt
                usage.completion_tokens += completion
            else:
                usage.add(model, prompt, completion)
    return usage


class ChatflowSink(AppSink):
    """A chatflow run's events as a chat stream (see the module's docstring); also the run's
    `on_end` hook, which saves the message."""

    def __init__(self, task: Task, message: Message, features: Features) -> None:
        created_at = int(message.created_at.timestamp())
        run_id = str(message.workflow_run_id)
        super().__init__(
            str(message.pk),
            {
                "task_id": task.task_id,
                "workflow_run_id": run_id,
                "conversation_id": str(message.conversation_id),
                "message_id": str(message.pk),
                "created_at": created_at,
            },
        )
        self.message = message
        self.features = features
        # The conversation variables as the run found them, to write back only its changes.
        conversation = message.conversation
        self.variables_before = dict(conversation.variables or {}) if conversation else {}
        self.chat = ChatEvents(
            self,
            task_id=task.task_id,
            message_id=str(message.pk),
            conversation_id=str(message.conversation_id),
            created_at=created_at,
        )
        self.moderator = OutputModerator(features.sensitive_word_avoidance)
        self.calls: list[tuple[str, str, int, int]] = []
        self.resources: list[dict[str, Any]] = []
        self.first_token: float | None = None
        self.ended = False
        self.retriever_from = RETRIEVER_FROM.get(message.source, "api")

    def entries(self, event: Event) -> list[dict[str, str]]:
        if isinstance(event, TextChunk):
            return self._text(event.text)
        if type(event) is NodeFinished:
            self._account(event)
        body = {"event": event.event, **self.context, "data": event.payload()}
        return [streams.entry(event.event, body)]

    def _text(self, text: str) -> list[dict[str, str]]:
        if self.first_token is None and text:
            self.first_token = elapsed_since(self.message.created_at)
        if self.moderator.replaced:
            return []
        shown = self.moderator.feed(text)
        if self.moderator.replaced:
            name = "message_replace"
            body = self.chat.body(
                name,
                answer=self.moderator.preset,
                reason="output_moderation",
                created_at=self.chat.created_at,
            )
            return [streams.entry(name, body)]
        return self._message(shown)

    def _message(self, text: str) -> list[dict[str, str]]:
        if not text:
            return []
        body = self.chat.body(
            "message", id=self.chat.message_id, answer=text, created_at=self.chat.created_at
        )
        return [streams.entry("message", body)]

    def _account(self, event: NodeFinished) -> None:
        outputs = event.outputs or {}
        usage = outputs.get("usage")
        process = event.process_data or {}
        if isinstance(usage, dict) and process.get("model_name"):
            self.calls.append(
                (
                    str(process.get("model_provider") or ""),
                    str(process["model_name"]),
                    int(usage.get("prompt_tokens") or 0),
                    int(usage.get("completion_tokens") or 0),
                )
            )
        if event.node_type == "knowledge-retrieval" and event.status == "succeeded":
            for item in outputs.get("result") or []:
                if isinstance(item, dict):
                    shaped = resource(item, self.retriever_from)
                    shaped["position"] = len(self.resources) + 1
                    self.resources.append(shaped)

    async def on_end(self, engine: Engine, last: Event | None) -> None:
        """Save the message and the conversation variables, then end the stream."""
        await self.add(self._message(self.moderator.flush()))
        answer = self.moderator.answer
        if not answer and not self.moderator.replaced and engine.outputs.get("answer"):
            # An answer that never streamed (nothing in the graph streams it) still shows.
            answer = str(engine.outputs["answer"])
            await self.add(self._message(answer))
        if isinstance(last, WorkflowPaused):
            status, error = (
                Message.Status.ERROR,
                "The chatflow paused at a human-input node; a chat turn cannot wait for a "
                "person, so the turn ended there.",
            )
        elif isinstance(last, WorkflowFinished):
            status = END_STATUS.get(last.status, Message.Status.ERROR)
            error = "" if status != Message.Status.ERROR else (last.error or "The run failed.")
        else:
            status, error = Message.Status.ERROR, "The run ended without finishing."
        usage = await sync_to_async(_prices)(self.message.tenant, self.calls)
        latency = elapsed_since(self.message.created_at)
        fields = {
            "answer": answer,
            "status": status,
            "error": error,
            "message_tokens": usage.prompt_tokens,
            "answer_tokens": usage.completion_tokens,
            "total_price": usage.total_price,
            "currency": usage.currency,
            "latency": latency,
            "time_to_first_token": self.first_token,
            "retriever_resources": self.resources,
        }
        await sync_to_async(_save_turn)(
            self.message, fields, self.variables_before, engine.pool.conversation_values()
        )
        self.ended = True
        if status == Message.Status.ERROR:
            await self.chat.error(400, "invalid_param", f"Run failed: {error}")
            return
        shown = self.resources if self.features.retriever_resource.enabled else []
        await self.chat.end({"usage": usage.to_dify(latency), "retriever_resources": shown})


def _save_turn(
    message: Message, fields: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
) -> None:
    run_trace = (
        WorkflowRun.dangerously_unscoped.filter(pk=str(message.workflow_run_id))
        .values_list("trace_id", flat=True)
        .first()
    )
    if not message.trace_id and run_trace:
        fields = {**fields, "trace_id": run_trace}
    save_message(message, fields)
    # Only what the run changed is written: a variable set through the API while the run
    # went on keeps that value unless the run set it too.
    after = _json_ready(after)
    changed = {k: v for k, v in after.items() if k not in before or before[k] != v}
    with transaction.atomic():
        conversation = (
            Conversation.dangerously_unscoped.select_for_update()
            .filter(pk=str(message.conversation_id))
            .first()
        )
        if conversation is None:
            return
        conversation.variables = {**(conversation.variables or {}), **changed}
        conversation.updated_at = timezone.now()
        conversation.save(update_fields=["variables", "updated_at"])


def _json_ready(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _fail_unstarted_run(message: Message) -> None:
    """End the run of a turn that failed before it could start it (the message says why)."""
    WorkflowRun.dangerously_unscoped.filter(
        pk=str(message.workflow_run_id),
        status=WorkflowRun.Status.RUNNING,
        heartbeat_at__isnull=True,
    ).update(
        status=WorkflowRun.Status.FAILED,
        error="The chat turn failed before this run started; its message says why.",
        finished_at=timezone.now(),
    )


def _drop_unstarted_run(message: Message) -> None:
    """Delete the run made for a turn answered without it (it never started)."""
    run_id = message.workflow_run_id
    Message.dangerously_unscoped.filter(pk=message.pk).update(workflow_run=None)
    WorkflowRun.dangerously_unscoped.filter(
        pk=str(run_id), status=WorkflowRun.Status.RUNNING, heartbeat_at__isnull=True
    ).delete()
    message.workflow_run_id = None


async def _answer_directly(
    task: Task, message: Message, features: Features, answer: str, annotation: Any
) -> None:
    await sync_to_async(_drop_unstarted_run)(message)
    events = ChatEvents(
        AppSink(str(message.pk), {}),
        task_id=task.task_id,
        message_id=str(message.pk),
        conversation_id=str(message.conversation_id),
        created_at=int(message.created_at.timestamp()),
    )
    await events.text(answer)
    latency = elapsed_since(message.created_at)
    await sync_to_async(save_message)(
        message,
        {
            "answer": answer,
            "status": Message.Status.NORMAL,
            "latency": latency,
            "time_to_first_token": latency,
            "annotation_reply": annotation,
        },
    )
    metadata: dict[str, Any] = {"usage": Usage().to_dify(latency), "retriever_resources": []}
    if annotation is not None:
        metadata["annotation_reply"] = annotation
    await events.end(metadata)


async def run_chatflow(task: Task) -> Message | None:
    """Run a chatflow turn to its end; the message as run_chat gives it (None when it was
    not this process's, or its query was refused)."""
    message = await sync_to_async(claim)(task)
    if message is None:
        return None
    try:
        features = await sync_to_async(_load_features)(message)
        refusal = input_refusal(features.sensitive_word_avoidance, message.query, message.inputs)
        if refusal is not None:
            await _answer_directly(task, message, features, refusal, None)
            return None
        hit = await annotation_reply(
            app=message.app, features=features, message=message, query=message.query
        )
        if hit is not None:
            await _answer_directly(task, message, features, hit.answer, hit.metadata())
            return message
        conversation = message.conversation
        assert conversation is not None  # noqa: S101 - chatflow messages have one
    except Exception as exc:
        await sync_to_async(_fail_unstarted_run)(message)
        await fail_early(task, message, exc)
        return message
    sink = ChatflowSink(task, message, features)
    hooks = Hooks(
        services={
            "memory": memory_service(message),
            "read_upload": upload_reader(message.tenant, message.end_user, message.created_by),
        },
        conversation=conversation.variables or {},
        stream=sink,
        on_end=sink.on_end,
    )
    beating = Watcher(str(message.pk), stop_id=None)
    try:
        await run_execute(message.workflow_run_id, hooks=hooks)
    except Exception as exc:
        if not sink.ended:
            status, code, text = dify_error(exc)
            await sync_to_async(save_message)(
                message,
                {
                    "answer": sink.moderator.answer,
                    "status": Message.Status.ERROR,
                    "error": text,
                    "latency": elapsed_since(message.created_at),
                },
            )
            sink.ended = True
            await sink.chat.error(status, code, text)
    finally:
        await beating.close()
    if not sink.ended:
        # The run was not there to execute (finished or taken before this turn got to it).
        text = "The workflow run of this message did not execute."
        await sync_to_async(save_message)(message, {"status": Message.Status.ERROR, "error": text})
        await sink.chat.error(500, "internal_server_error", text)
    return message
