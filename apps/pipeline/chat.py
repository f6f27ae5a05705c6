"""The turn of a chat, agent-chat or completion app: input moderation → annotation reply →
memory → retrieval → the model, streamed (an agent's tool loop for agent-chat) → output
moderation → the message saved → `message_end`.

The answer runs as its own asyncio task, watched: a stop request (a Redis key, polled like the
workflow runner's) cancels it, and with it the model call; what was produced is saved with
status `stopped` and the stream still ends with `message_end`. A failure saves what was
produced with status `error` and ends the stream with `error`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, cast

from asgiref.sync import sync_to_async
from opentelemetry import trace

from providers import services as models_runtime
from providers.models import Model, ModelKind
from providers.runtime.tokens import count_message_tokens, count_tokens
from providers.runtime.types import (
    ChatEvent,
    ChatMessage,
    Finish,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from tenants.context import tenant_context
from tenants.models import Tenant
from workflows.nodes.calls import resolve_model

from ..config import AppConfig, parse_config
from ..models import App, Message
from .annotations import annotation_reply
from .events import ChatEvents, Usage, dify_error
from .messages import (
    RETRIEVER_FROM,
    Watcher,
    chat_events,
    claim,
    elapsed_since,
    fail_early,
    save_message,
)
from .moderation import OutputModerator, input_refusal
from .prompts import build_messages, previous_turns
from .retrieval import retrieve_for
from .types import Task

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer("weft.apps")


@dataclass
class Turn:
    """One message being answered, and what it has produced so far."""

    task: Task
    message: Message
    app: App
    tenant: Tenant
    config: AppConfig
    events: ChatEvents
    moderator: OutputModerator
    text_event: str = "message"
    model: Model | None = None
    usage: Usage = field(default_factory=Usage)
    resources: list[dict[str, Any]] = field(default_factory=list)
    annotation: dict[str, Any] | None = None
    direct_answer: str | None = None
    first_token: float | None = None
    stopped: bool = False
    refused: bool = False

    @property
    def answer(self) -> str:
        return self.direct_answer if self.direct_answer is not None else self.moderator.answer

    def mark_first_token(self) -> None:
        if self.first_token is None:
            self.first_token = elapsed_since(self.message.created_at)

    async def direct(self, answer: str) -> None:
        """Answer with a fixed text instead of the model (moderation, annotation reply)."""
        self.direct_answer = answer
        self.mark_first_token()
        await self.events.text(answer, event=self.text_event)

    async def resolve_model(self) -> Model:
        settings = self.config.model
        self.model, _ = await sync_to_async(resolve_model)(
            tenant=self.tenant,
            kind=ModelKind.CHAT,
            provider=settings.provider,
            name=settings.name,
        )
        return self.model

    async def call_model(
        self, messages: list[ChatMessage], tools: list[Tool] | None = None
    ) -> tuple[str, list[ToolCall]]:
        """One model call, its text streamed through output moderation; its text and the
        tool calls it asked for. Its tokens are added to the turn's usage however it ends
        (estimated when it did not finish)."""
        model = self.model or await self.resolve_model()
        params = self.config.model.completion_params
        parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finished: Finish | None = None
        stream = cast(
            AsyncGenerator[ChatEvent, None],
            models_runtime.chat(
                tenant=self.tenant,
                messages=messages,
                model=model,
                tools=tools or (),
                stream=True,
                max_tokens=_whole(params.get("max_tokens")),
                temperature=_number(params.get("temperature")),
                stop=_stops(params.get("stop")),
                app_id=self.app.pk,
                message_id=self.message.pk,
            ),
        )
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    self.mark_first_token()
                    parts.append(event.text)
                    shown = self.moderator.feed(event.text)
                    if self.moderator.replaced:
                        await self.events.replace(self.moderator.preset)
                        break  # the rest would be withheld too: stop paying for it
                    await self.events.text(shown, event=self.text_event)
                elif isinstance(event, ToolCallDelta):
                    self.mark_first_token()
                    call = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
                    call["id"] = event.id or call["id"]
                    call["name"] = event.name or call["name"]
                    call["arguments"] += event.arguments
                elif isinstance(event, Finish):
                    finished = event
        finally:
            await stream.aclose()
            text = "".join(parts)
            if finished is not None:
                prompt, completion = (
                    finished.usage.prompt_tokens,
                    finished.usage.completion_tokens,
                )
            else:
                prompt = count_message_tokens(messages, tools=tools or ())
                completion = count_tokens(text) + sum(
                    count_tokens(c["name"] + c["arguments"]) for c in calls.values()
                )
            self.usage.add(model, prompt, completion)
        tool_calls = [
            ToolCall(
                id=c["id"] or f"call_{uuid.uuid4().hex[:12]}",
                name=c["name"],
                arguments=c["arguments"] or "{}",
            )
            for _, c in sorted(calls.items())
            if c["name"]
        ]
        return text, tool_calls


def _number(value: Any) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, int | float) else value


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number else None


def _stops(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str) and item)
    return ()


def _config(message: Message) -> AppConfig:
    version = message.app_version
    return parse_config(version.config if version is not None else message.app.config)


def _history(turn: Turn) -> list[ChatMessage]:
    window = turn.config.memory.window
    with tenant_context(turn.tenant):
        return previous_turns(turn.message, window.size if window.enabled else None)


async def _answer(turn: Turn) -> None:
    message, config = turn.message, turn.config
    refusal = input_refusal(config.sensitive_word_avoidance, message.query, message.inputs)
    if refusal is not None:
        turn.refused = True
        await turn.direct(refusal)
        return
    hit = await annotation_reply(
        app=turn.app, features=config, message=message, query=message.query
    )
    if hit is not None:
        turn.annotation = hit.metadata()
        await turn.direct(hit.answer)
        return
    # The conversation's first message has no history to read.
    earlier = message.conversation is not None and message.conversation.dialogue_count > 1
    history = await sync_to_async(_history)(turn) if earlier else []
    found = await retrieve_for(
        tenant=turn.tenant,
        configs=config.dataset_configs,
        query=message.query,
        retriever_from=RETRIEVER_FROM.get(message.source, "api"),
    )
    turn.resources = found.resources
    messages = build_messages(
        config, inputs=message.inputs, query=message.query, context=found.context, history=history
    )
    await turn.resolve_model()
    if turn.app.mode == App.Mode.AGENT_CHAT:
        from .agent import run_agent

        await run_agent(turn, messages)
    else:
        await turn.call_model(messages)


def metadata(turn: Turn, latency: float) -> dict[str, Any]:
    """message_end's `metadata`."""
    data: dict[str, Any] = {
        "usage": turn.usage.to_dify(latency),
        "retriever_resources": turn.resources if turn.config.retriever_resource.enabled else [],
    }
    if turn.annotation is not None:
        data["annotation_reply"] = turn.annotation
    return data


def _end_fields(turn: Turn, status: str, error: str = "") -> dict[str, Any]:
    model = turn.model
    usage = turn.usage
    return {
        "answer": turn.answer,
        "status": status,
        "error": error,
        "model_provider": model.provider if model else "",
        "model_name": model.name if model else "",
        "message_tokens": usage.prompt_tokens,
        "answer_tokens": usage.completion_tokens,
        "total_price": usage.total_price,
        "currency": usage.currency,
        "latency": elapsed_since(turn.message.created_at),
        "time_to_first_token": turn.first_token,
        "retriever_resources": turn.resources,
        "annotation_reply": turn.annotation,
        "trace_id": turn.message.trace_id,
    }


async def _release_held_text(turn: Turn) -> None:
    if turn.direct_answer is None:
        await turn.events.text(turn.moderator.flush(), event=turn.text_event)


async def _finish(turn: Turn, status: str) -> None:
    await _release_held_text(turn)
    fields = _end_fields(turn, status)
    await sync_to_async(save_message)(turn.message, fields)
    await turn.events.end(metadata(turn, fields["latency"]))


async def _fail(turn: Turn, exc: BaseException) -> None:
    status, code, text = dify_error(exc)
    await _release_held_text(turn)
    await sync_to_async(save_message)(turn.message, _end_fields(turn, Message.Status.ERROR, text))
    await turn.events.error(status, code, text)


async def run_chat(task: Task) -> Message | None:
    """Answer the task's message to its end. Gives the message, for its conversation to be
    named after its query; None when it was not this process's to answer, or its query was
    refused by moderation (a conversation is not named after words it refused)."""
    message = await sync_to_async(claim)(task)
    if message is None:
        return None
    try:
        config = _config(message)
    except Exception as exc:
        await fail_early(task, message, exc)
        return message
    turn = Turn(
        task=task,
        message=message,
        app=message.app,
        tenant=message.tenant,
        config=config,
        events=chat_events(task, message),
        moderator=OutputModerator(config.sensitive_word_avoidance),
        text_event="agent_message" if message.app.mode == App.Mode.AGENT_CHAT else "message",
    )
    with _tracer.start_as_current_span(
        "app.message",
        attributes={
            "weft.app_id": str(message.app_id),
            "weft.message_id": str(message.pk),
            "weft.mode": message.app.mode,
        },
    ) as span:
        context = span.get_span_context()
        if context.is_valid and not message.trace_id:
            message.trace_id = f"{context.trace_id:032x}"
        status = await _run_turn(turn)
        span.set_attribute("weft.status", status)
    return None if turn.refused else message


async def _run_turn(turn: Turn) -> str:
    """Answer, watched for stop requests; then save and end the stream. The status."""
    work = asyncio.create_task(_answer(turn))

    def stop() -> None:
        turn.stopped = True
        work.cancel()

    watcher = Watcher(str(turn.message.pk), stop_id=str(turn.message.pk), on_stop=stop)
    failure: BaseException | None = None
    try:
        await work
    except asyncio.CancelledError:
        if not (turn.stopped and work.done()):
            work.cancel()  # this task itself is being cancelled: so is the answer
            raise
    except Exception as exc:
        failure = exc
    finally:
        await watcher.close()
    if failure is not None:
        await _fail(turn, failure)
        return Message.Status.ERROR
    status = Message.Status.STOPPED if turn.stopped else Message.Status.NORMAL
    await _finish(turn, status)
    return status
