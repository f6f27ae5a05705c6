"""OpenAI-compatible chat, embeddings and rerank over HTTP (OpenAI, Azure OpenAI, Ollama,
vLLM, LM Studio, DeepSeek …)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from . import tokens
from .types import (
    ChatEvent,
    ChatMessage,
    Embeddings,
    Finish,
    ProviderProtocolError,
    RerankResult,
    ResponseFormat,
    TextDelta,
    Tool,
    ToolCallDelta,
    Usage,
)
from .wire import connection_error, parse_json, raise_for_status, sse_events

EMBED_BATCH = 256
FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter"}


def _message(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
        out["content"] = message.content or None
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.name:
        out["name"] = message.name
    return out


def _response_format(response_format: ResponseFormat) -> dict[str, Any] | None:
    if response_format.type == "json_object":
        return {"type": "json_object"}
    if response_format.type == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {
                "name": response_format.name,
                "schema": response_format.schema or {"type": "object"},
                "strict": response_format.strict,
            },
        }
    return None


def _finish_reason(value: str | None) -> Any:
    return value if value in FINISH_REASONS else "stop"


class OpenAICompatible:
    """One model on one OpenAI-compatible endpoint."""

    provider = "OpenAI-compatible server"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        model: str,
        options: dict[str, Any] | None = None,
        azure: bool = False,
        dimensions: int | None = None,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.options = options or {}
        self.azure = azure
        self.dimensions = dimensions or 0
        if azure:
            self.provider = "Azure OpenAI"

    # --- plumbing ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if self.azure:
            return f"{self.base_url}/openai/deployments/{self.model}/{path}"
        return f"{self.base_url}/{path}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.azure:
            headers["api-key"] = self.api_key
        elif self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if organization := self.options.get("organization"):
            headers["OpenAI-Organization"] = str(organization)
        extra = self.options.get("headers")
        if isinstance(extra, dict):  # e.g. a gateway's routing headers
            headers.update(
                {
                    str(k): str(v)
                    for k, v in extra.items()
                    if k.lower() not in {"authorization", "api-key", "content-type"}
                }
            )
        return headers

    def _params(self) -> dict[str, str]:
        if self.azure:
            return {"api-version": str(self.options.get("api_version", "2024-10-21"))}
        return {}

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.client.post(
                self._url(path), json=payload, headers=self._headers(), params=self._params()
            )
        except httpx.TransportError as exc:
            raise connection_error(exc, provider=self.provider) from exc
        raise_for_status(response, response.content, provider=self.provider)
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderProtocolError(f"{self.provider} answered with no JSON.") from exc
        if not isinstance(data, dict):
            raise ProviderProtocolError(f"{self.provider} answered with no JSON object.")
        return data

    # --- chat ----------------------------------------------------------------------------

    def _chat_payload(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[Tool],
        response_format: ResponseFormat | None,
        stream: bool,
        max_tokens: int | None,
        temperature: float | None,
        stop: Sequence[str],
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "messages": [_message(m) for m in messages],
            "stream": stream,
        }
        if not self.azure:
            payload["model"] = self.model
        if stream and self.options.get("stream_usage", True):
            payload["stream_options"] = {"include_usage": True}
        if tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in tools
            ]
        if response_format and (rf := _response_format(response_format)):
            payload["response_format"] = rf
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if temperature is not None:
            payload["temperature"] = temperature
        if stop:
            payload["stop"] = list(stop)
        return payload

    async def chat(
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
        payload = self._chat_payload(
            messages, tools, response_format, stream, max_tokens, temperature, stop
        )
        if not stream:
            async for event in self._chat_blocking(payload, messages):
                yield event
            return
        async for event in self._chat_stream(payload, messages):
            yield event

    async def _chat_blocking(
        self, payload: dict[str, Any], messages: Sequence[ChatMessage]
    ) -> AsyncIterator[ChatEvent]:
        data = await self._post("chat/completions", payload)
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderProtocolError(f"{self.provider} answered without a choice.") from exc
        text = message.get("content") or ""
        if text:
            yield TextDelta(text)
        for index, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            yield ToolCallDelta(
                index=index,
                id=call.get("id"),
                name=function.get("name"),
                arguments=function.get("arguments") or "",
            )
        yield Finish(
            reason=_finish_reason(choice.get("finish_reason")),
            usage=self._usage(data.get("usage"), messages, text),
        )

    async def _chat_stream(
        self, payload: dict[str, Any], messages: Sequence[ChatMessage]
    ) -> AsyncIterator[ChatEvent]:
        request = self.client.build_request(
            "POST",
            self._url("chat/completions"),
            json=payload,
            headers={**self._headers(), "Accept": "text/event-stream"},
            params=self._params(),
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise connection_error(exc, provider=self.provider) from exc
        try:
            if response.status_code >= 400:
                raise_for_status(response, await response.aread(), provider=self.provider)
            usage_data = None
            reason = None
            text_parts: list[str] = []
            done = False
            try:
                async for _event, data in sse_events(response):
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    chunk = parse_json(data, provider=self.provider)
                    if chunk.get("error"):
                        raise ProviderProtocolError(
                            f"{self.provider}: {chunk['error'].get('message', chunk['error'])}"
                        )
                    if chunk.get("usage"):
                        usage_data = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        if content := delta.get("content"):
                            text_parts.append(content)
                            yield TextDelta(content)
                        for call in delta.get("tool_calls") or []:
                            function = call.get("function") or {}
                            yield ToolCallDelta(
                                index=int(call.get("index", 0)),
                                id=call.get("id"),
                                name=function.get("name"),
                                arguments=function.get("arguments") or "",
                            )
                        if choice.get("finish_reason"):
                            reason = choice["finish_reason"]
            except httpx.TransportError as exc:
                raise ProviderProtocolError(
                    f"{self.provider}: the stream broke off ({type(exc).__name__})."
                ) from exc
            if not done and reason is None:
                raise ProviderProtocolError(f"{self.provider}: the stream ended before its end.")
            yield Finish(
                reason=_finish_reason(reason),
                usage=self._usage(usage_data, messages, "".join(text_parts)),
            )
        finally:
            await response.aclose()

    def _usage(
        self, data: dict[str, Any] | None, messages: Sequence[ChatMessage], text: str
    ) -> Usage:
        if data and "prompt_tokens" in data:
            return Usage(
                prompt_tokens=int(data.get("prompt_tokens") or 0),
                completion_tokens=int(data.get("completion_tokens") or 0),
            )
        return Usage(
            prompt_tokens=tokens.count_message_tokens(messages, model=self.model),
            completion_tokens=tokens.count_tokens(text, model=self.model),
            estimated=True,
        )

    # --- embeddings and rerank -------------------------------------------------------------

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        vectors: list[list[float]] = []
        prompt_tokens = 0
        estimated = False
        batch = int(self.options.get("embedding_batch", EMBED_BATCH))
        for start in range(0, len(texts), batch):
            chunk = list(texts[start : start + batch])
            payload: dict[str, Any] = {"input": chunk, "encoding_format": "float"}
            if not self.azure:
                payload["model"] = self.model
            if self.options.get("send_dimensions") and self.dimensions:
                payload["dimensions"] = self.dimensions
            data = await self._post("embeddings", payload)
            try:
                rows = sorted(data["data"], key=lambda row: row["index"])
                vectors.extend([list(map(float, row["embedding"])) for row in rows])
            except (KeyError, TypeError, ValueError) as exc:
                raise ProviderProtocolError(f"{self.provider}: malformed embeddings.") from exc
            if len(rows) != len(chunk):
                raise ProviderProtocolError(
                    f"{self.provider} returned {len(rows)} embeddings for {len(chunk)} texts."
                )
            usage = data.get("usage") or {}
            if "prompt_tokens" in usage:
                prompt_tokens += int(usage["prompt_tokens"])
            else:
                prompt_tokens += sum(tokens.count_tokens(t, model=self.model) for t in chunk)
                estimated = True
        return Embeddings(
            vectors=vectors,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=0, estimated=estimated),
        )

    async def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None
    ) -> RerankResult:
        payload: dict[str, Any] = {
            "model": self.model,
            "query": query,
            "documents": list(documents),
            "return_documents": False,
        }
        if top_n is not None:
            payload["top_n"] = top_n
        data = await self._post("rerank", payload)
        try:
            ranking = [
                (int(row["index"]), float(row.get("relevance_score", row.get("score", 0.0))))
                for row in data["results"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderProtocolError(f"{self.provider}: malformed rerank results.") from exc
        if any(not 0 <= index < len(documents) for index, _ in ranking):
            raise ProviderProtocolError(f"{self.provider}: rerank index out of range.")
        ranking.sort(key=lambda pair: pair[1], reverse=True)
        usage = data.get("usage") or data.get("meta", {}).get("billed_units") or {}
        total = int(usage.get("total_tokens") or usage.get("search_units") or 0)
        if not total:
            total = tokens.count_tokens(query) * len(documents) + sum(
                tokens.count_tokens(d) for d in documents
            )
        return RerankResult(
            ranking=ranking,
            usage=Usage(prompt_tokens=total, completion_tokens=0, estimated=not usage),
        )


def arguments_json(fragments: Sequence[str]) -> Any:
    """Join a tool call's argument fragments and parse them (for callers that want a dict)."""
    joined = "".join(fragments) or "{}"
    try:
        return json.loads(joined)
    except ValueError as exc:
        raise ProviderProtocolError("The model's tool call arguments are not JSON.") from exc
