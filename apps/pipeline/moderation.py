"""Keyword moderation (Dify's `sensitive_word_avoidance` of type `keywords`): a refused input
is answered with the preset response instead of the model; an answer that comes to contain a
keyword is replaced by the preset response (`message_replace`).

Words match case-insensitively anywhere in the text. While an answer streams, its last few
characters are held back until they can no longer begin a keyword, so a keyword split across
two deltas never reaches the client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..config import Moderation


def _found(text: str, words: Iterable[str]) -> bool:
    lowered = text.lower()
    return any(word.lower() in lowered for word in words)


def input_refusal(moderation: Moderation, query: str, inputs: Mapping[str, Any]) -> str | None:
    """The preset response when the query or a text input holds a keyword, else None."""
    enabled, preset = moderation.side("inputs_config")
    words = moderation.keywords()
    if not enabled or not words:
        return None
    texts = [query, *(value for value in inputs.values() if isinstance(value, str))]
    if any(_found(text, words) for text in texts if text):
        return preset or "Your message cannot be answered."
    return None


class OutputModerator:
    """Passes an answer's text on as it streams, unless it comes to hold a keyword."""

    def __init__(self, moderation: Moderation) -> None:
        enabled, preset = moderation.side("outputs_config")
        self.words = [w.lower() for w in moderation.keywords()] if enabled else []
        self.preset = preset or "The answer was withheld."
        self.hold = max((len(word) for word in self.words), default=1) - 1
        self.seen = ""  # everything the model said
        self.sent = 0  # how much of it has been passed on
        self.replaced = False

    def feed(self, text: str) -> str:
        """The part of the answer that can be shown now ('' once replaced)."""
        if self.replaced:
            return ""
        self.seen += text
        if not self.words:
            self.sent = len(self.seen)
            return text
        # A keyword found now ends in the new text: only the tail needs looking at.
        if _found(self.seen[max(0, len(self.seen) - len(text) - self.hold) :], self.words):
            self.replaced = True
            return ""
        safe = max(self.sent, len(self.seen) - self.hold)
        shown, self.sent = self.seen[self.sent : safe], safe
        return shown

    def flush(self) -> str:
        """What was held back, once the answer has ended."""
        if self.replaced:
            return ""
        shown, self.sent = self.seen[self.sent :], len(self.seen)
        return shown

    @property
    def answer(self) -> str:
        """The answer as the client is left with it."""
        return self.preset if self.replaced else self.seen[: self.sent]
