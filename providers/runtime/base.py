"""The one interface every model implementation offers (async)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from .types import ChatEvent, ChatMessage, Embeddings, RerankResult, ResponseFormat, Tool


class ChatModel(Protocol):
    # Not `async def`: implementations are async generators, called without awaiting.
    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[Tool] = (),
        response_format: ResponseFormat | None = None,
        stream: bool = True,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] = (),
    ) -> AsyncIterator[ChatEvent]:
        """Text and tool-call deltas in order, then exactly one Finish with the usage.

        With stream=False the provider is called without streaming, and the same events
        come out at once."""
        ...


class EmbeddingModel(Protocol):
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """One vector per text, in order (batched to the provider's limits inside)."""
        ...


class RerankModel(Protocol):
    async def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None
    ) -> RerankResult:
        """Documents by relevance to the query, best first."""
        ...
