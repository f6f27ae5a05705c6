"""The fake model's "mind": deterministic answers, token counts, embeddings and rerank scores.

Everything here is vendor-neutral; openai_api.py and anthropic_api.py render it on the wire.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import struct
from dataclasses import dataclass
from typing import Any, Literal

from .scenario import Reply, Scenario, ToolCall

ARGUMENT_FRAGMENT_CHARS = 8


@dataclass(frozen=True)
class Prompt:
    """What the fake reads from a request: all its text, and the last turn it answers."""

    text: str
    last: str
    last_is_tool_result: bool = False


@dataclass(frozen=True)
class ToolSpec:
    """A tool the request offers: its name and JSON schema for the arguments."""

    name: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """A reply ready to render: text, tool calls with ids, why it stopped, and usage."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    stop: Literal["stop", "length", "tool_calls"]
    prompt_tokens: int
    completion_tokens: int


def count_tokens(text: str) -> int:
    """The fake's tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def split_tokens(text: str) -> list[str]:
    """Streaming pieces, one per token, each with its leading whitespace; they join to `text`."""
    return re.findall(r"\s*\S+|\s+$", text)


def fragments(text: str, size: int = ARGUMENT_FRAGMENT_CHARS) -> list[str]:
    """Cut a tool call's arguments JSON into the small pieces a streaming model sends."""
    return [text[start : start + size] for start in range(0, len(text), size)] or [""]


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def build_answer(
    *,
    scripted: Reply | None,
    prompt: Prompt,
    tools: list[ToolSpec],
    json_schema: dict[str, Any] | None,
    max_tokens: int | None,
    scenario: Scenario,
    tool_id_prefix: str,
) -> Answer:
    """Decide the reply: the scripted one if any, else an echo of the last turn.

    Tool calls are made only when the request offers tools. `json_schema` is None when the
    request did not ask for JSON.
    """
    calls: tuple[ToolCall, ...] = ()
    if tools and scripted is not None:
        calls = scripted.tool_calls
    elif tools and scripted is None and scenario.tools and not prompt.last_is_tool_result:
        calls = (ToolCall(tools[0].name, minimal_json(tools[0].schema)),)
    calls = tuple(
        call if call.id else ToolCall(call.name, call.arguments, new_id(tool_id_prefix))
        for call in calls
    )

    if json_schema is not None:
        if scripted is not None and scripted.json_output is not None:
            text = json.dumps(scripted.json_output)
        elif scripted is not None and scripted.text is not None:
            text = scripted.text
        else:
            text = json.dumps(minimal_json(json_schema))
    elif scripted is not None and scripted.text is not None:
        text = scripted.text
    elif calls:
        text = ""
    elif scenario.words:
        text = " ".join(f"tok{number}" for number in range(scenario.words))
    elif prompt.last_is_tool_result:
        text = f"Tool said: {prompt.last}"
    else:
        text = f"You said: {prompt.last}"

    truncated = False
    if max_tokens is not None and count_tokens(text) > max_tokens:
        text = "".join(split_tokens(text)[:max_tokens])
        truncated = True
    completion_tokens = count_tokens(text) + sum(
        count_tokens(call.name) + count_tokens(call.arguments_json) for call in calls
    )
    return Answer(
        text=text,
        tool_calls=calls,
        stop="tool_calls" if calls else "length" if truncated else "stop",
        prompt_tokens=count_tokens(prompt.text),
        completion_tokens=completion_tokens,
    )


def minimal_json(schema: Any, root: Any = None) -> Any:
    """The smallest value that fits a JSON schema: required properties only, empty leaves."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return minimal_json(target, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return minimal_json(schema[combinator][0], root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((option for option in kind if option != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties", {})
        return {
            name: minimal_json(properties.get(name), root) for name in schema.get("required", [])
        }
    if kind == "array":
        return [minimal_json(schema.get("items"), root) for _ in range(schema.get("minItems", 0))]
    return {"string": "", "integer": 0, "number": 0, "boolean": False}.get(str(kind))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def embed(text: str, dimensions: int) -> list[float]:
    """A unit vector from hashed words, so texts sharing words point the same way."""
    vector = [0.0] * dimensions
    for word in _words(text) or [text]:
        digest = hashlib.shake_256(word.encode()).digest(2 * dimensions)
        for position, (raw,) in enumerate(struct.iter_unpack("<H", digest)):
            vector[position] += raw / 32767.5 - 1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def relevance(query: str, document: str) -> float:
    """Share of the query's distinct words that the document contains."""
    query_words = set(_words(query))
    if not query_words:
        return 0.0
    return len(query_words & set(_words(document))) / len(query_words)
