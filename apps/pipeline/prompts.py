"""The messages a chat, agent-chat or completion app sends its model.

Simple prompts (`prompt_type: simple`): the `pre_prompt` with `{{variable}}` inputs filled in,
after the retrieved context (in `<context>` tags) as the system message, then the conversation
so far, then the query. Advanced prompts: Dify's `chat_prompt_config.prompt` (a list of
messages, for chat models) or `completion_prompt_config.prompt.text` (one text, for completion
models), where `{{#context#}}`, `{{#histories#}}` and `{{#query#}}` stand for the retrieved
context, the conversation as text, and the query.

Inputs are filled in first and the special parts last, so text a user typed or a document held
is never read as a reference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from providers.runtime.types import ChatMessage, Role
from workflows.dsl.selectors import to_text

from ..config import AppConfig
from ..models import Message

CONTEXT = "{{#context#}}"
HISTORIES = "{{#histories#}}"
QUERY = "{{#query#}}"
# A window left off (memory.window.enabled false) still stops somewhere.
MAX_HISTORY_TURNS = 100
_VARIABLE = re.compile(r"\{\{([a-zA-Z_][a-zA-Z0-9_]*)\}\}")
_ROLES = ("system", "user", "assistant")

CONTEXT_INSTRUCTIONS = (
    "Use the following context, inside <context></context> tags, as what you know.\n\n"
    "<context>\n{context}\n</context>\n\n"
    "When you answer:\n"
    "- if the context does not hold the answer and you do not know it, say so;\n"
    "- if you are not sure, ask for clarification;\n"
    "- do not mention that the information came from a context;\n"
    "- answer in the language of the question."
)


def fill_inputs(template: str, inputs: Mapping[str, Any]) -> str:
    """`{{variable}}` replaced by the input's text; names that are not inputs stay as written."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return to_text(inputs.get(name)) if name in inputs else match.group(0)

    return _VARIABLE.sub(value, template)


def previous_turns(message: Message, limit: int | None) -> list[ChatMessage]:
    """The conversation before `message`, oldest first, as user and assistant messages: the
    last `limit` turns that have an answer (tenant context required)."""
    if message.conversation_id is None:
        return []
    size = min(limit, MAX_HISTORY_TURNS) if limit else MAX_HISTORY_TURNS
    rows = list(
        Message.objects.filter(
            conversation_id=message.conversation_id,
            created_at__lt=message.created_at,
            status__in=[Message.Status.NORMAL, Message.Status.STOPPED],
        )
        .exclude(pk=message.pk)
        .exclude(answer="")
        .order_by("-created_at")
        .values_list("query", "answer")[:size]
    )
    turns: list[ChatMessage] = []
    for query, answer in reversed(rows):
        turns += [ChatMessage("user", query), ChatMessage("assistant", answer)]
    return turns


def history_text(turns: Sequence[ChatMessage], user: str = "", assistant: str = "") -> str:
    """The conversation as text, turns labelled (Dify's Human/Assistant by default)."""
    labels = {"user": user or "Human", "assistant": assistant or "Assistant"}
    return "\n".join(f"{labels[m.role]}: {m.content}" for m in turns if m.role in labels)


def _special(text: str, *, context: str, history: str, query: str) -> str:
    return text.replace(CONTEXT, context).replace(HISTORIES, history).replace(QUERY, query)


def build_messages(
    config: AppConfig,
    *,
    inputs: Mapping[str, Any],
    query: str,
    context: str,
    history: Sequence[ChatMessage],
) -> list[ChatMessage]:
    """The messages of a turn (see the module's docstring)."""
    if config.prompt_type == "advanced":
        if config.model.mode == "completion" and config.completion_prompt_config.get("prompt"):
            return _advanced_completion(config, inputs, query, context, history)
        if config.model.mode != "completion" and config.chat_prompt_config.get("prompt"):
            return _advanced_chat(config, inputs, query, context, history)
    if config.model.mode == "completion":
        return _simple_completion(config, inputs, query, context, history)
    return _simple_chat(config, inputs, query, context, history)


def _simple_chat(config, inputs, query, context, history) -> list[ChatMessage]:
    parts = []
    if context:
        parts.append(CONTEXT_INSTRUCTIONS.format(context=context))
    if config.pre_prompt.strip():
        parts.append(fill_inputs(config.pre_prompt, inputs))
    system = "\n\n".join(parts)
    if not query:
        # A completion app asked nothing but its prompt: the prompt is the user's turn.
        return [*history, ChatMessage("user", system)] if system else list(history)
    messages = [ChatMessage("system", system)] if system else []
    return [*messages, *history, ChatMessage("user", query)]


def _simple_completion(config, inputs, query, context, history) -> list[ChatMessage]:
    parts = []
    if context:
        parts.append(CONTEXT_INSTRUCTIONS.format(context=context))
    if config.pre_prompt.strip():
        parts.append(fill_inputs(config.pre_prompt, inputs))
    if history:
        parts.append(history_text(history))
    if query:
        parts.append(f"Human: {query}\nAssistant: " if history else query)
    return [ChatMessage("user", "\n\n".join(parts))]


def _advanced_chat(config, inputs, query, context, history) -> list[ChatMessage]:
    items = config.chat_prompt_config.get("prompt") or []
    text_history = history_text(history)
    messages: list[ChatMessage] = []
    # The past turns go before the user's words: before the first item that quotes the query,
    # or at the end when the query is appended; not at all when a template spelled them out.
    history_at: int | None = None
    spells_history = False
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        role = item.get("role") if item.get("role") in _ROLES else "user"
        raw = str(item.get("text") or "")
        spells_history = spells_history or HISTORIES in raw
        if QUERY in raw and history_at is None:
            history_at = len(messages)
        text = _special(
            fill_inputs(raw, inputs), context=context, history=text_history, query=query
        )
        if text.strip():
            messages.append(ChatMessage(cast(Role, role), text))
    asks_query = history_at is not None
    if history_at is None:
        history_at = len(messages)
    if not spells_history:
        messages[history_at:history_at] = history
    if query and not asks_query:
        messages.append(ChatMessage("user", query))
    return messages


def _advanced_completion(config, inputs, query, context, history) -> list[ChatMessage]:
    prompt = config.completion_prompt_config.get("prompt") or {}
    raw = str(prompt.get("text") or "") if isinstance(prompt, Mapping) else ""
    roles = config.completion_prompt_config.get("conversation_histories_role") or {}
    roles = roles if isinstance(roles, Mapping) else {}
    text_history = history_text(
        history, str(roles.get("user_prefix") or ""), str(roles.get("assistant_prefix") or "")
    )
    text = _special(fill_inputs(raw, inputs), context=context, history=text_history, query=query)
    if query and QUERY not in raw:
        # The user's words are never dropped, even by a template that forgot them.
        text = f"{text}\n\n{query}" if text.strip() else query
    return [ChatMessage("user", text)]
