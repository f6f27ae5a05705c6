"""Anthropic's wire format: the Messages API (plain and streamed) and its model list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .content import (
    Answer,
    Prompt,
    ToolSpec,
    build_answer,
    fragments,
    minimal_json,
    new_id,
    split_tokens,
)
from .scenario import Reply, ToolCall
from .wire import ApiError, Call, JsonResult, StreamResult, dumps, sse

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
FAULT_MESSAGES = {
    429: "This request would exceed the rate limit for your organization. Please try again later.",
    529: "Overloaded",
}


def error_body(error: ApiError) -> bytes:
    kind = ERROR_TYPES.get(error.status, "api_error")
    return dumps({"type": "error", "error": {"type": kind, "message": error.message}})


def fault(status: int) -> tuple[bytes, str]:
    """The body and content type Anthropic sends with an injected failure status."""
    message = FAULT_MESSAGES.get(status, "Internal server error")
    return error_body(ApiError(status, message)), "application/json"


def auth_error(key: str | None) -> ApiError:
    return ApiError(401, "invalid x-api-key" if key else "x-api-key header is required")


def version_error() -> ApiError:
    return ApiError(400, "anthropic-version: header is required")


def model_error(model: str | None) -> ApiError:
    if not model:
        return ApiError(400, "model: Field required")
    return ApiError(404, f"model: {model}")


def _client_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Tools the caller runs itself (Anthropic's server tools carry a versioned `type`)."""
    return [
        tool
        for tool in body.get("tools") or []
        if not isinstance(tool, dict) or tool.get("type") in (None, "custom")
    ]


def validate_messages(body: dict[str, Any]) -> None:
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise ApiError(400, "max_tokens: Field required")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, "max_tokens: Input should be a positive integer")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: Field required")
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise ApiError(400, f"messages.{position}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise ApiError(400, f"messages.{position}.content: Field required")
    for position, tool in enumerate(_client_tools(body)):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise ApiError(400, f"tools.{position}.custom.name: Field required")
        if not isinstance(tool.get("input_schema"), dict):
            raise ApiError(400, f"tools.{position}.custom.input_schema: Field required")


def _block_text(block: Any) -> str:
    if not isinstance(block, dict):
        return ""
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":
        return _content_text(block.get("content"))
    if block.get("type") == "tool_use":
        return json.dumps(block.get("input", {}))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(filter(None, map(_block_text, content)))
    return ""


def messages_prompt(body: dict[str, Any]) -> Prompt:
    messages = [message for message in body.get("messages") or [] if isinstance(message, dict)]
    texts = [_content_text(body.get("system"))]
    texts += [_content_text(message.get("content")) for message in messages]
    text = "\n".join(filter(None, texts))
    last = messages[-1].get("content") if messages else None
    if isinstance(last, list):
        results = [block for block in last if isinstance(block, dict)]
        results = [block for block in results if block.get("type") == "tool_result"]
        if results:
            return Prompt(text, _content_text(results), last_is_tool_result=True)
    users = [message for message in messages if message.get("role") == "user"]
    return Prompt(text, _content_text(users[-1].get("content")) if users else "")


def _tools(body: dict[str, Any]) -> list[ToolSpec]:
    if (body.get("tool_choice") or {}).get("type") == "none":
        return []
    return [ToolSpec(tool["name"], tool["input_schema"]) for tool in _client_tools(body)]


def _tool_input(arguments_json: str) -> Any:
    try:
        return json.loads(arguments_json)
    except ValueError:
        return {}


def _blocks(answer: Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.text or not answer.tool_calls:
        blocks.append({"type": "text", "text": answer.text})
    for tool_call in answer.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_call.id,
                "name": tool_call.name,
                "input": _tool_input(tool_call.arguments_json),
            }
        )
    return blocks


def _forced(body: dict[str, Any], scripted: Reply | None) -> Reply | None:
    """`tool_choice: {"type": "tool", "name": …}` makes the model call that tool, as Claude
    does: with the scripted JSON (or scripted call) as its input, else a minimal object."""
    choice = body.get("tool_choice") or {}
    if choice.get("type") != "tool":
        return scripted
    spec = next((t for t in _tools(body) if t.name == choice.get("name")), None)
    if spec is None:
        raise ApiError(400, f"tool_choice: tool {choice.get('name')!r} not found in tools")
    if scripted is not None and scripted.tool_calls:
        return scripted
    arguments = (
        scripted.json_output
        if scripted is not None and scripted.json_output is not None
        else minimal_json(spec.schema)
    )
    return Reply(None, (ToolCall(spec.name, arguments),), None)


def messages(call: Call) -> JsonResult | StreamResult:
    body = call.body
    prompt = messages_prompt(body)
    answer = build_answer(
        scripted=_forced(body, call.take_reply(prompt.text)),
        prompt=prompt,
        tools=_tools(body),
        json_schema=None,
        max_tokens=body["max_tokens"],
        scenario=call.scenario,
        tool_id_prefix="toolu_",
    )
    message: dict[str, Any] = {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": _blocks(answer),
        "stop_reason": STOP_REASONS[answer.stop],
        "stop_sequence": None,
        "usage": {
            "input_tokens": answer.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": answer.completion_tokens,
        },
    }
    if body.get("stream"):
        return StreamResult(
            _message_events(answer, message),
            malformed=b'event: content_block_delta\ndata: {"type": "content_block_delta", \n\n',
        )
    return JsonResult(message, tokens=answer.completion_tokens)


def _message_events(answer: Answer, message: dict[str, Any]) -> Iterator[bytes]:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return sse({"type": name, **data}, event=name)

    usage = message["usage"]
    opening = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**usage, "output_tokens": 1},
    }
    yield event("message_start", {"message": opening})
    first_tool_block = len(message["content"]) - len(answer.tool_calls)
    for index, block in enumerate(message["content"]):
        if index < first_tool_block:
            start = {**block, "text": ""}
            pieces = [{"type": "text_delta", "text": piece} for piece in split_tokens(answer.text)]
        else:
            start = {**block, "input": {}}
            arguments = answer.tool_calls[index - first_tool_block].arguments_json
            pieces = [
                {"type": "input_json_delta", "partial_json": fragment}
                for fragment in fragments(arguments)
            ]
        yield event("content_block_start", {"index": index, "content_block": start})
        if index == 0:
            yield event("ping", {})
        for delta in pieces:
            yield event("content_block_delta", {"index": index, "delta": delta})
        yield event("content_block_stop", {"index": index})
    yield event(
        "message_delta",
        {
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield event("message_stop", {})


def models(call: Call) -> JsonResult:
    data = [
        {"type": "model", "id": model, "display_name": model, "created_at": "2025-01-01T00:00:00Z"}
        for model in call.models
    ]
    return JsonResult(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )
