"""Anthropic's Messages API: system prompt, tool use, streaming events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from . import tokens
from .types import (
    ChatEvent,
    ChatMessage,
    Finish,
    FinishReason,
    ProviderProtocolError,
    ResponseFormat,
    TextDelta,
    Tool,
    ToolCallDelta,
    Usage,
)
from .wire import Retryable, connection_error, parse_json, raise_for_status, sse_events

API_VERSION = "2023-06-01"
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# JSON answers are asked for by forcing this tool, whose input is the answer.
JSON_TOOL = "respond_in_json"


def _content_blocks(message: ChatMessage) -> list[dict[str, Any]] | str:
    if message.role == "tool":
        return [
            {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}
        ]
    if message.role == "assistant" and message.tool_calls:
        blocks: list[dict[str, Any]] = []
        if message.content:
            blocks.append({"type": "text", "text": message.content})
        for call in message.tool_calls:
            try:
                arguments = json.loads(call.arguments or "{}")
            except ValueError:
                arguments = {}
            blocks.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments}
            )
        return blocks
    return message.content


def _messages(messages: Sequence[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """Anthropic keeps the system prompt apart and wants user/assistant turns alternating:
    tool results travel as user turns, and neighbouring turns of one side are merged."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        content = _content_blocks(message)
        if turns and turns[-1]["role"] == role:
            previous = turns[-1]["content"]
            as_blocks = (
                [{"type": "text", "text": previous}] if isinstance(previous, str) else previous
            )
            extra = [{"type": "text", "text": content}] if isinstance(content, str) else content
            turns[-1]["content"] = as_blocks + extra
        else:
            turns.append({"role": role, "content": content})
    return system, turns


class Anthropic:
    """One Claude model."""

    provider = "Anthropic"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        model: str,
        max_output_tokens: int = 4096,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.max_output_tokens = max_output_tokens
        self.options = options or {}

    def _headers(self) -> dict[str, str]:
        return {
            "x-api-key": self.api_key,
            "anthropic-version": str(self.options.get("api_version", API_VERSION)),
            "content-type": "application/json",
        }

    def _payload(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[Tool],
        response_format: ResponseFormat | None,
        stream: bool,
        max_tokens: int | None,
        temperature: float | None,
        stop: Sequence[str],
    ) -> dict[str, Any]:
        system, turns = _messages(messages)
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": turns,
            "max_tokens": max_tokens or self.max_output_tokens,
            "stream": stream,
        }
        if system:
            payload["system"] = system
        tool_specs = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in tools
        ]
        if response_format and response_format.type != "text":
            schema = response_format.schema if response_format.type == "json_schema" else None
            tool_specs.append(
                {
                    "name": JSON_TOOL,
                    "description": "Give the answer as this JSON object.",
                    "input_schema": schema or {"type": "object"},
                }
            )
            payload["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
        if tool_specs:
            payload["tools"] = tool_specs
        if temperature is not None:
            payload["temperature"] = temperature
        if stop:
            payload["stop_sequences"] = list(stop)
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
        payload = self._payload(
            messages, tools, response_format, stream, max_tokens, temperature, stop
        )
        json_mode = "tool_choice" in payload
        request = self.client.build_request(
            "POST", f"{self.base_url}/v1/messages", json=payload, headers=self._headers()
        )
        try:
            response = await self.client.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise connection_error(exc, provider=self.provider) from exc
        try:
            if response.status_code >= 400:
                raise_for_status(response, await response.aread(), provider=self.provider)
            if stream:
                async for event in self._read_stream(response, messages, json_mode):
                    yield event
            else:
                for event in self._read_message(response, messages, json_mode):
                    yield event
        finally:
            await response.aclose()

    def _read_message(
        self, response: httpx.Response, messages: Sequence[ChatMessage], json_mode: bool
    ) -> list[ChatEvent]:
        try:
            data = response.json()
            blocks = data["content"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderProtocolError("Anthropic answered without content.") from exc
        events: list[ChatEvent] = []
        tool_index = 0
        for block in blocks:
            if block.get("type") == "text" and block.get("text"):
                events.append(TextDelta(block["text"]))
            elif block.get("type") == "tool_use":
                arguments = json.dumps(block.get("input") or {})
                if json_mode and block.get("name") == JSON_TOOL:
                    events.append(TextDelta(arguments))
                    continue
                events.append(
                    ToolCallDelta(
                        index=tool_index,
                        id=block.get("id"),
                        name=block.get("name"),
                        arguments=arguments,
                    )
                )
                tool_index += 1
        usage = data.get("usage") or {}
        reason: FinishReason = STOP_REASONS.get(data.get("stop_reason") or "", "stop")
        if json_mode and reason == "tool_calls":
            reason = "stop"
        events.append(Finish(reason=reason, usage=self._usage(usage, usage, messages, events)))
        return events

    async def _read_stream(
        self, response: httpx.Response, messages: Sequence[ChatMessage], json_mode: bool
    ) -> AsyncIterator[ChatEvent]:
        start_usage: dict[str, Any] = {}
        end_usage: dict[str, Any] = {}
        reason = None
        blocks: dict[int, str] = {}  # content block index -> "text" | tool index | json
        tool_count = 0
        text_seen: list[ChatEvent] = []
        stopped = False
        try:
            async for event, data in sse_events(response):
                if event == "ping":
                    continue
                payload = parse_json(data, provider=self.provider)
                kind = payload.get("type", event)
                if kind == "error":
                    error = payload.get("error") or {}
                    message = f"Anthropic: {error.get('message', 'stream error')}"
                    if error.get("type") in {"overloaded_error", "rate_limit_error", "api_error"}:
                        raise Retryable(message)
                    raise ProviderProtocolError(message)
                if kind == "message_start":
                    start_usage = (payload.get("message") or {}).get("usage") or {}
                elif kind == "content_block_start":
                    block = payload.get("content_block") or {}
                    index = int(payload.get("index", 0))
                    if block.get("type") == "tool_use":
                        if json_mode and block.get("name") == JSON_TOOL:
                            blocks[index] = "json"
                            continue
                        blocks[index] = str(tool_count)
                        yield ToolCallDelta(
                            index=tool_count, id=block.get("id"), name=block.get("name")
                        )
                        tool_count += 1
                    else:
                        blocks[index] = "text"
                elif kind == "content_block_delta":
                    delta = payload.get("delta") or {}
                    target = blocks.get(int(payload.get("index", 0)), "text")
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        event_out: ChatEvent = TextDelta(delta["text"])
                    elif delta.get("type") == "input_json_delta":
                        fragment = delta.get("partial_json") or ""
                        if target == "json":
                            event_out = TextDelta(fragment)
                        else:
                            event_out = ToolCallDelta(index=int(target), arguments=fragment)
                    else:
                        continue
                    if isinstance(event_out, TextDelta) and not event_out.text:
                        continue
                    text_seen.append(event_out)
                    yield event_out
                elif kind == "message_delta":
                    reason = (payload.get("delta") or {}).get("stop_reason") or reason
                    end_usage = payload.get("usage") or end_usage
                elif kind == "message_stop":
                    stopped = True
                    break
        except httpx.TransportError as exc:
            raise ProviderProtocolError(
                f"Anthropic: the stream broke off ({type(exc).__name__})."
            ) from exc
        if not stopped:
            raise ProviderProtocolError("Anthropic: the stream ended before message_stop.")
        finish_reason: FinishReason = STOP_REASONS.get(reason or "", "stop")
        if json_mode and finish_reason == "tool_calls":
            finish_reason = "stop"
        yield Finish(
            reason=finish_reason, usage=self._usage(start_usage, end_usage, messages, text_seen)
        )

    def _usage(
        self,
        start: dict[str, Any],
        end: dict[str, Any],
        messages: Sequence[ChatMessage],
        events: Sequence[ChatEvent],
    ) -> Usage:
        prompt = start.get("input_tokens")
        completion = end.get("output_tokens")
        if prompt is not None and completion is not None:
            cached = int(start.get("cache_read_input_tokens") or 0) + int(
                start.get("cache_creation_input_tokens") or 0
            )
            return Usage(prompt_tokens=int(prompt) + cached, completion_tokens=int(completion))
        text = "".join(
            e.text if isinstance(e, TextDelta) else e.arguments
            for e in events
            if isinstance(e, TextDelta | ToolCallDelta)
        )
        return Usage(
            prompt_tokens=tokens.count_message_tokens(messages, model=self.model),
            completion_tokens=tokens.count_tokens(text, model=self.model),
            estimated=True,
        )
