"""A task's events as Dify's SSE bodies, written to the task's Redis stream in batches.

Chat events carry `task_id`, `message_id`, `conversation_id` (not for completion apps), `id`
(the message's) and `created_at`; `message_end` carries `metadata{usage, retriever_resources}`;
a failed task ends with `error{status, code, message}`. Text deltas that arrive while a write
is under way are merged into one entry, so a fast model costs one Redis round trip per batch,
not per token.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from providers.models import Model
from providers.runtime.types import ModelNotFound, ProviderError
from tenants.exceptions import WeftError
from workflows import streams

logger = logging.getLogger(__name__)

TEXT_EVENTS = frozenset({"message", "agent_message"})
PRICE_UNIT = Decimal("0.000001")  # Weft's prices are per million tokens
INTERNAL_ERROR = "An internal error occurred while answering; it has been logged."


class AppSink(streams.StreamSink):
    """A StreamSink whose consecutive text deltas, still waiting to be written, merge into one
    entry."""

    async def add(self, entries: list[dict[str, str]]) -> None:
        fresh: list[dict[str, str]] = []
        for fields in entries:
            queued = fresh[-1] if fresh else (self.pending[-1] if self.pending else None)
            if (
                queued is not None
                and fields["event"] in TEXT_EVENTS
                and queued["event"] == fields["event"]
                and "end" not in queued
            ):
                body = json.loads(queued["body"])
                body["answer"] += json.loads(fields["body"])["answer"]
                queued["body"] = json.dumps(body, ensure_ascii=False, default=str)
            else:
                fresh.append(fields)
        # An entry merged into one already pending is written by the write under way.
        await super().add(fresh)


class ChatEvents:
    """Builds the chat-shaped events of one message and hands them to its sink."""

    def __init__(
        self,
        sink: AppSink,
        *,
        task_id: str,
        message_id: str,
        conversation_id: str | None,
        created_at: int,
    ) -> None:
        self.sink = sink
        self.context: dict[str, Any] = {"task_id": task_id, "message_id": message_id}
        if conversation_id is not None:
            self.context["conversation_id"] = conversation_id
        self.message_id = message_id
        self.created_at = created_at

    def body(self, name: str, **fields: Any) -> dict[str, Any]:
        return {"event": name, **self.context, **fields}

    async def emit(self, name: str, *, last: bool = False, **fields: Any) -> None:
        await self.sink.add([streams.entry(name, self.body(name, **fields), last=last)])

    async def text(self, text: str, *, event: str = "message") -> None:
        if text:
            await self.emit(event, id=self.message_id, answer=text, created_at=self.created_at)

    async def replace(self, answer: str) -> None:
        await self.emit(
            "message_replace", answer=answer, reason="output_moderation", created_at=self.created_at
        )

    async def end(self, metadata: dict[str, Any]) -> None:
        await self.emit(
            "message_end",
            last=True,
            id=self.message_id,
            metadata=metadata,
            files=[],
            created_at=self.created_at,
        )

    async def error(self, status: int, code: str, message: str) -> None:
        await self.emit("error", last=True, status=status, code=code, message=message)


@dataclass
class Usage:
    """Tokens and price of a turn's model calls (summed over an agent's steps)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_price: Decimal = Decimal(0)
    completion_price: Decimal = Decimal(0)
    currency: str = "USD"
    input_price: Decimal = Decimal(0)
    output_price: Decimal = Decimal(0)

    def add(self, model: Model, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.prompt_price += model.cost(prompt_tokens, 0)
        self.completion_price += model.cost(0, completion_tokens)
        self.currency = model.currency
        self.input_price, self.output_price = model.input_price, model.output_price

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def total_price(self) -> Decimal:
        return self.prompt_price + self.completion_price

    def to_dify(self, latency: float) -> dict[str, Any]:
        """Dify's `usage` object (prices as decimal strings)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "prompt_unit_price": decimal_text(self.input_price),
            "prompt_price_unit": decimal_text(PRICE_UNIT),
            "prompt_price": decimal_text(self.prompt_price),
            "completion_tokens": self.completion_tokens,
            "completion_unit_price": decimal_text(self.output_price),
            "completion_price_unit": decimal_text(PRICE_UNIT),
            "completion_price": decimal_text(self.completion_price),
            "total_tokens": self.total_tokens,
            "total_price": decimal_text(self.total_price),
            "currency": self.currency,
            "latency": round(latency, 3),
        }


def decimal_text(value: Decimal) -> str:
    """A price as Dify writes it: plain digits, never an exponent ("0", not "0E-8")."""
    return format(value.normalize() if value else Decimal(0), "f")


def dify_error(exc: BaseException) -> tuple[int, str, str]:
    """(status, code, message) of a failure as Dify's `error` event reports it: a model the
    tenant has not set up is `provider_not_initialize`, a provider's refusal or failure a
    `completion_request_error` with the provider's message, other Weft errors their own code;
    anything else an internal error, logged."""
    if isinstance(exc, ModelNotFound):
        return 400, "provider_not_initialize", exc.message
    if isinstance(exc, ProviderError):
        return 400, "completion_request_error", exc.message
    if isinstance(exc, WeftError):
        return exc.status, exc.code, exc.message
    logger.error("an app task failed", exc_info=exc)
    return 500, "internal_server_error", INTERNAL_ERROR


def now() -> int:
    return int(time.time())
