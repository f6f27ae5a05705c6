"""`ExtractiveChat`: answers with the context's sentences that match the question best."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from ..tokens import count_message_tokens, count_tokens
from ..types import (
    ChatEvent,
    ChatMessage,
    Finish,
    ResponseFormat,
    TextDelta,
    Tool,
    Usage,
)
from .base import OFFLINE_CHAT_MODEL
from .lexical import bm25_scores
from .text import CJK

DONT_KNOW = "I don't know: nothing in the provided context answers that."
NO_CONTEXT = (
    "I am Weft's built-in offline model: I answer only from context that comes with the "
    "conversation, such as passages retrieved from a knowledge base, and there is none here. "
    "Connect a model provider for open-ended chat."
)
_MAX_PASSAGES = 3
# A sentence answers when its score reaches this, and joins the best one when it also
# reaches this share of the best score.
_ANSWER_THRESHOLD = 0.12
_RELATIVE_THRESHOLD = 0.6

_CONTEXT_BLOCK = re.compile(
    r"<(context|documents?|knowledge|passages?|sources?|search_results)\b[^>]*>(.*?)</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# A new line that starts a list item, a numbered source or a heading starts a new passage.
_ITEM_BREAK = re.compile(r"\n(?=[ \t]*(?:[-*•#>|]|\d+[.)]\s|\[\d+\]))")
_SENTENCE = re.compile(
    r"\S.*?(?:[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s+[^\sa-z]|\s*$)"
    r"|[\u3002\uff01\uff1f]+[\u300d\u300f\u201d\u2019]*|$)",
    re.DOTALL,
)
# "Dr. Smith", "J. Smith", "Fig. 3" end no sentence.
_ABBREVIATION_END = re.compile(
    r"(?:\b(?i:dr|mr|mrs|ms|prof|vs|fig|inc|ltd|jr|sr|cf|approx)|\b[A-Z])\.$"
)
# Streamed pieces carry their leading space, like a model's tokens.
_STREAM_PIECE = re.compile(rf"\s*[{CJK}]|\s*[^\s{CJK}]+|\s+")


def _question_and_context(messages: Sequence[ChatMessage]) -> tuple[str, str]:
    """The last user message (without any context block it carries), and the context: the
    marked blocks of any message if there are some, else every other message."""
    asked = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), -1)
    question = messages[asked].content if asked >= 0 else ""
    texts = [m.content for i, m in enumerate(messages) if i != asked and m.content]
    blocks = [block for text in [*texts, question] for _, block in _CONTEXT_BLOCK.findall(text)]
    return _CONTEXT_BLOCK.sub(" ", question), "\n\n".join(blocks if blocks else texts)


def split_passages(context: str) -> list[str]:
    """Sentences of the context (whitespace runs made single spaces), in order."""
    passages = []
    for paragraph in _PARAGRAPH_BREAK.split(context):
        for item in _ITEM_BREAK.split(paragraph):
            pending = ""
            for match in _SENTENCE.finditer(item):
                sentence = f"{pending} {' '.join(match.group().split())}".strip()
                pending = sentence if _ABBREVIATION_END.search(sentence) else ""
                if sentence and not pending:
                    passages.append(sentence)
            if pending:
                passages.append(pending)
    return passages


def extractive_answer(question: str, context: str) -> str:
    """The 1 to 3 context sentences that best answer the question, in their order, or
    DONT_KNOW."""
    passages = split_passages(context)
    scores = bm25_scores(question, passages)
    best = max(scores, default=0.0)
    if best < _ANSWER_THRESHOLD:
        return DONT_KNOW
    floor = max(_ANSWER_THRESHOLD, _RELATIVE_THRESHOLD * best)
    ranked = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
    chosen = sorted(i for i in ranked[:_MAX_PASSAGES] if scores[i] >= floor)
    return " ".join(passages[i] for i in chosen)


def _empty_value(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = "null" if "null" in kind else (kind[0] if kind else None)
    if kind == "object":
        return _fill_object(schema, "")
    empty = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": []}
    return empty.get(kind) if isinstance(kind, str) else None


_ANSWER_FIELDS = ("answer", "response", "text", "content", "output", "result", "reply")


def _fill_object(schema: dict[str, Any], answer: str) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    names = schema.get("required") or list(properties)
    strings = [
        n
        for n in names
        if isinstance(properties.get(n), dict)
        and properties[n].get("type") == "string"
        and not properties[n].get("enum")
    ]
    target = next(
        (n for n in strings if n.lower() in _ANSWER_FIELDS), strings[0] if strings else None
    )
    return {n: answer if n == target else _empty_value(properties.get(n)) for n in names}


def _as_json(answer: str, response_format: ResponseFormat) -> str:
    if response_format.type == "json_schema" and isinstance(response_format.schema, dict):
        schema = response_format.schema
        if schema.get("type", "object") == "object" and schema.get("properties"):
            return json.dumps(_fill_object(schema, answer), ensure_ascii=False)
    return json.dumps({"answer": answer}, ensure_ascii=False)


class ExtractiveChat:
    """Answers the last user message with verbatim sentences of the conversation's context:
    the `<context>…</context>` (or documents, knowledge, passages, sources) blocks when any
    message has them, else every other message. Never calls tools; honours JSON response
    formats, `max_tokens` and `stop`; ignores `temperature` (it is deterministic)."""

    model = OFFLINE_CHAT_MODEL

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
        text = self.reply(messages, response_format=response_format)
        reason: Literal["stop", "length"] = "stop"
        cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
        pieces, emitted = [], ""
        for piece in _STREAM_PIECE.findall(text):
            if max_tokens is not None and count_tokens(emitted + piece) > max_tokens:
                reason = "length"
                break
            pieces.append(piece)
            emitted += piece
        if not stream:
            pieces = [emitted] if emitted else []
        for piece in pieces:
            yield TextDelta(piece)
            if stream:
                await asyncio.sleep(0)
        usage = Usage(
            prompt_tokens=count_message_tokens(messages, tools=tools),
            completion_tokens=count_tokens(emitted),
            estimated=True,
        )
        yield Finish(reason=reason, usage=usage)

    def reply(
        self, messages: Sequence[ChatMessage], *, response_format: ResponseFormat | None = None
    ) -> str:
        """The whole answer text, as `chat` streams it (before `max_tokens` and `stop`)."""
        question, context = _question_and_context(messages)
        if not context.strip():
            answer = NO_CONTEXT
        else:
            answer = extractive_answer(question, context)
        if response_format is not None and response_format.type != "text":
            return _as_json(answer, response_format)
        return answer
