"""Prompt building shared by the model nodes: `{{#…#}}` references, `{{#context#}}`, Jinja2 in
a sandbox, conversation memory, and JSON found in a model's answer."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from providers.runtime.types import ChatMessage

from ..dsl.base import MemoryConfig, RolePrefix
from ..dsl.selectors import SYS, to_text
from ..engine.executor import NodeContext, NodeFailed

CONTEXT = "{{#context#}}"
HISTORIES = "{{#histories#}}"
# A prompt longer than this is a template gone wrong (a loop), not a prompt.
MAX_RENDERED_CHARS = 1_000_000

# No autoescaping: prompts are not HTML.
_JINJA = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
_FENCED = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)


def context_text(value: Any) -> str:
    """What `{{#context#}}` stands for: text as it is, or the items of a list (a
    knowledge-retrieval result, or strings) one per line."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise NodeFailed(
            "The context must be text or a knowledge-retrieval result.", error_type="InvalidContext"
        )
    lines = []
    for item in value:
        if isinstance(item, str):
            lines.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("content"), str):
            if item.get("summary"):
                lines.append(to_text(item["summary"]))
            lines.append(item["content"])
        else:
            raise NodeFailed(
                "The context must be text or a knowledge-retrieval result; one item has no "
                "content.",
                error_type="InvalidContext",
            )
    return "\n".join(lines).strip()


def render_basic(ctx: NodeContext, text: str, context: str = "") -> str:
    """A basic prompt: references filled in from the pool, then the context put in (after, so
    that retrieved text is never read as references)."""
    return ctx.render(text).replace(CONTEXT, context)


def render_jinja(template: str, variables: Mapping[str, Any]) -> str:
    """A Jinja2 prompt rendered in the immutable sandbox; any error in it fails the node."""
    try:
        parts, size = [], 0
        for piece in _JINJA.from_string(template).generate(**variables):
            size += len(piece)
            if size > MAX_RENDERED_CHARS:
                raise NodeFailed(
                    f"The Jinja2 prompt renders to more than {MAX_RENDERED_CHARS:,} characters.",
                    error_type="TemplateTooLarge",
                )
            parts.append(piece)
    except NodeFailed:
        raise
    except Exception as exc:  # the template is the builder's: whatever it raises is theirs
        raise NodeFailed(f"Jinja2 prompt: {exc}", error_type="TemplateError") from exc
    return "".join(parts)


async def history(ctx: NodeContext, memory: MemoryConfig | None) -> list[ChatMessage]:
    """The conversation so far, from the `memory` service the apps layer gives chatflow runs
    (an async callable taking the window size, None for no window); empty without it."""
    if memory is None:
        return []
    fetch = ctx.run.services.get("memory")
    if fetch is None:
        return []
    size = memory.window.size if memory.window.enabled else None
    return list(await fetch(size))


def history_text(messages: Sequence[ChatMessage], prefix: RolePrefix | None = None) -> str:
    """The conversation as text (completion prompts), turns labelled as Dify labels them."""
    user = (prefix.user if prefix else "") or "Human"
    assistant = (prefix.assistant if prefix else "") or "Assistant"
    labels = {"user": user, "assistant": assistant}
    return "\n".join(f"{labels[m.role]}: {m.content}" for m in messages if m.role in labels)


def memory_query(ctx: NodeContext, memory: MemoryConfig) -> str:
    """The user's turn that follows the history: the memory's query template filled in, else
    `sys.query` (as Dify does)."""
    if memory.query_prompt_template:
        return ctx.render(memory.query_prompt_template)
    return to_text(ctx.get([SYS, "query"]))


def parse_json(text: str) -> Any:
    """The JSON in a model's answer: the whole answer, a fenced block, or the first object or
    array in it; ValueError when there is none."""
    for candidate in (text.strip(), *(m.strip() for m in _FENCED.findall(text))):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    for index, char in enumerate(text):
        if char in "{[":
            try:
                return decoder.raw_decode(text, index)[0]
            except ValueError:
                continue
    raise ValueError("the answer holds no JSON")


def with_instructions(messages: list[ChatMessage], instructions: str) -> list[ChatMessage]:
    """The messages with `instructions` added to the system prompt (one made if none leads)."""
    if messages and messages[0].role == "system":
        first = messages[0]
        merged = f"{first.content}\n\n{instructions}" if first.content else instructions
        return [ChatMessage("system", merged), *messages[1:]]
    return [ChatMessage("system", instructions), *messages]
