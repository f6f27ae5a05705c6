"""OpenAI's wire format: chat completions (plain and streamed), embeddings, rerank, models."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Iterator
from typing import Any

from .content import (
    Answer,
    Prompt,
    ToolSpec,
    build_answer,
    count_tokens,
    embed,
    fragments,
    new_id,
    relevance,
    split_tokens,
)
from .wire import ApiError, Call, JsonResult, StreamResult, dumps, sse

SYSTEM_FINGERPRINT = "fp_fake_llm"
BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def error_body(error: ApiError) -> bytes:
    if error.status == 429:
        kind = "requests"
    elif error.status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    return dumps(
        {
            "error": {
                "message": error.message,
                "type": kind,
                "param": error.param,
                "code": error.code,
            }
        }
    )


def fault(status: int, model: str, retry_after: float | None) -> tuple[bytes, str]:
    """The body and content type OpenAI sends with an injected failure status."""
    if status == 502:
        return BAD_GATEWAY_HTML, "text/html"
    if status == 429:
        wait = f"{retry_after:g}s" if retry_after is not None else "a moment"
        error = ApiError(
            429,
            f"Rate limit reached for {model} on requests per min (RPM). "
            f"Please try again in {wait}.",
            code="rate_limit_exceeded",
        )
    elif status == 500:
        error = ApiError(500, "The server had an error while processing your request. Sorry!")
    elif status == 503:
        error = ApiError(503, "The engine is currently overloaded, please try again later.")
    else:
        error = ApiError(status, f"The fake LLM failed this request with status {status}.")
    return error_body(error), "application/json"


def mask_key(key: str) -> str:
    """Hide all of a key but its `sk-` prefix and last four characters, as OpenAI does."""
    prefix = "sk-" if key.startswith("sk-") and len(key) > 7 else ""
    hidden = len(key) - len(prefix) - 4
    if hidden <= 0:
        return "*" * len(key)
    return prefix + "*" * hidden + key[-4:]


def auth_error(key: str | None) -> ApiError:
    if not key:
        return ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    return ApiError(
        401,
        f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def model_error(model: str | None) -> ApiError:
    if not model:
        return ApiError(400, "you must provide a model parameter")
    return ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def _missing(param: str) -> ApiError:
    return ApiError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def validate_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(
            400,
            "Invalid 'messages': expected a non-empty array.",
            param="messages",
            code="empty_array",
        )
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise _missing(f"messages[{position}].role")
    for position, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _missing(f"tools[{position}].function.name")
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema" and not isinstance(
        response_format.get("json_schema"), dict
    ):
        raise _missing("response_format.json_schema")


def chat_prompt(body: dict[str, Any]) -> Prompt:
    messages = [message for message in body.get("messages") or [] if isinstance(message, dict)]
    texts = []
    for message in messages:
        texts.append(_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            texts.append(str((call.get("function") or {}).get("arguments", "")))
    text = "\n".join(texts)
    if messages and messages[-1].get("role") == "tool":
        return Prompt(text, _text(messages[-1].get("content")), last_is_tool_result=True)
    users = [message for message in messages if message.get("role") == "user"]
    return Prompt(text, _text(users[-1].get("content")) if users else "")


def _tools(body: dict[str, Any]) -> list[ToolSpec]:
    if body.get("tool_choice") == "none":
        return []
    return [
        ToolSpec(tool["function"]["name"], tool["function"].get("parameters") or {})
        for tool in body.get("tools") or []
    ]


def _json_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return response_format["json_schema"].get("schema") or {}
    if response_format.get("type") == "json_object":
        return {"type": "object"}
    return None


def _usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def chat(call: Call) -> JsonResult | StreamResult:
    body = call.body
    prompt = chat_prompt(body)
    answer = build_answer(
        scripted=call.take_reply(prompt.text),
        prompt=prompt,
        tools=_tools(body),
        json_schema=_json_schema(body),
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        scenario=call.scenario,
        tool_id_prefix="call_",
    )
    completion_id = new_id("chatcmpl-")
    envelope: dict[str, Any] = {
        "id": completion_id,
        "created": int(time.time()),
        "model": call.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamResult(
            _chat_events(answer, envelope, include_usage=include_usage),
            malformed=f'data: {{"id": "{completion_id}", "choices": [{{\n\n'.encode(),
        )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.text if answer.text or not answer.tool_calls else None,
        "refusal": None,
    }
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": tool_call.id,
                "type": "function",
                "function": {"name": tool_call.name, "arguments": tool_call.arguments_json},
            }
            for tool_call in answer.tool_calls
        ]
    completion = {
        **envelope,
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": answer.stop}
        ],
        "usage": _usage(answer),
    }
    return JsonResult(completion, tokens=answer.completion_tokens)


def _chat_events(
    answer: Answer, envelope: dict[str, Any], *, include_usage: bool
) -> Iterator[bytes]:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data = {**envelope, "object": "chat.completion.chunk", "choices": [choice]}
        if include_usage:
            data["usage"] = None
        return sse(data)

    first_content = "" if answer.text or not answer.tool_calls else None
    yield chunk({"role": "assistant", "content": first_content, "refusal": None})
    for piece in split_tokens(answer.text):
        yield chunk({"content": piece})
    for index, tool_call in enumerate(answer.tool_calls):
        opening = {"name": tool_call.name, "arguments": ""}
        yield chunk(
            {
                "tool_calls": [
                    {"index": index, "id": tool_call.id, "type": "function", "function": opening}
                ]
            }
        )
        for fragment in fragments(tool_call.arguments_json):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield chunk({}, answer.stop)
    if include_usage:
        yield sse(
            {**envelope, "object": "chat.completion.chunk", "choices": [], "usage": _usage(answer)}
        )
    yield b"data: [DONE]\n\n"


def _embedding_inputs(value: Any) -> list[str]:
    """OpenAI takes a string, a list of strings, or token ids (one list or a list of lists)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, int) for item in value):
        return [" ".join(map(str, value))]
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            return value
        if all(isinstance(item, list) for item in value):
            return [" ".join(map(str, item)) for item in value]
    raise ApiError(400, "'input' must be a string or a non-empty array.", param="input")


def validate_embeddings(body: dict[str, Any]) -> None:
    if "input" not in body:
        raise _missing("input")
    _embedding_inputs(body["input"])
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
        raise ApiError(400, "'dimensions' must be a positive integer.", param="dimensions")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise ApiError(
            400, "'encoding_format' must be 'float' or 'base64'.", param="encoding_format"
        )


def embeddings_prompt(body: dict[str, Any]) -> str:
    return "\n".join(_embedding_inputs(body.get("input")))


def embeddings(call: Call) -> JsonResult:
    inputs = _embedding_inputs(call.body["input"])
    dimensions = call.body.get("dimensions") or call.embedding_dim
    as_base64 = call.body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector: Any = embed(text, dimensions)
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(count_tokens(text) for text in inputs)
    return JsonResult(
        {
            "object": "list",
            "data": data,
            "model": call.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _document_text(document: Any) -> str:
    return document if isinstance(document, str) else str(document.get("text", ""))


def validate_rerank(body: dict[str, Any]) -> None:
    if not isinstance(body.get("query"), str):
        raise _missing("query")
    documents = body.get("documents")
    if not isinstance(documents, list) or not all(
        isinstance(document, str) or isinstance(document, dict) for document in documents
    ):
        raise _missing("documents")
    top_n = body.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or top_n < 1):
        raise ApiError(400, "'top_n' must be a positive integer.", param="top_n")


def rerank_prompt(body: dict[str, Any]) -> str:
    return "\n".join([body["query"], *map(_document_text, body["documents"])])


def rerank(call: Call) -> JsonResult:
    query = call.body["query"]
    texts = [_document_text(document) for document in call.body["documents"]]
    ranked = sorted(
        ((index, relevance(query, text)) for index, text in enumerate(texts)),
        key=lambda scored: -scored[1],
    )
    results = []
    for index, score in ranked[: call.body.get("top_n") or len(ranked)]:
        result: dict[str, Any] = {"index": index, "relevance_score": score}
        if call.body.get("return_documents", True):
            result["document"] = {"text": texts[index]}
        results.append(result)
    tokens = count_tokens(query) + sum(count_tokens(text) for text in texts)
    return JsonResult({"model": call.model, "results": results, "usage": {"total_tokens": tokens}})


def models(call: Call) -> JsonResult:
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": "fake-llm"}
        for model in call.models
    ]
    return JsonResult({"object": "list", "data": data})
