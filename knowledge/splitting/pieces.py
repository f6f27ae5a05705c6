"""Chunks, and the document blocks they are cut from."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from knowledge.parsing.cleaning import clean
from providers.runtime.tokens import count_tokens

from .rules import FULL_DOC_MAX_TOKENS, SectionLike, Segmentation, SplitRule
from .spans import split_recursive

Mode = Literal["automatic", "custom", "hierarchical"]
ParentMode = Literal["paragraph", "full-doc"]
DocForm = Literal["text_model", "hierarchical_model", "qa_model"]
Counter = Callable[[str], int]


@dataclass(frozen=True)
class Chunk:
    """One chunk of a document: its place, text, size in tokens and where it came from."""

    position: int
    content: str
    tokens: int
    answer: str | None = None
    parent_position: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitResult:
    """Segments (parents in hierarchical mode) and, in hierarchical mode, their children."""

    chunks: list[Chunk]
    children: list[Chunk] = field(default_factory=list)


def _count(text: str, *, model: str | None) -> int:
    return count_tokens(text, model=model)


@dataclass(frozen=True)
class _Block:
    text: str
    heading_path: tuple[str, ...]
    metadata: Mapping[str, Any]

    def cleaned(self, rule: SplitRule) -> _Block:
        """Dify's pre_processing_rules, as the parsing layer implements them."""
        text = clean(
            self.text,
            collapse_whitespace=rule.remove_extra_spaces,
            remove_urls_emails=rule.remove_urls_emails,
        )
        return _Block(text, self.heading_path, self.metadata)

    def meta(self) -> dict[str, Any]:
        meta = dict(self.metadata)
        if self.heading_path:
            meta["heading_path"] = list(self.heading_path)
        return meta


def _blocks(sections: Iterable[SectionLike]) -> list[_Block]:
    return [
        _Block(section.text, tuple(section.heading_path), dict(section.metadata))
        for section in sections
    ]


def _full_doc(sections: list[_Block], count: Counter) -> _Block:
    """All sections as one parent, cut at a word start after Dify's first 10,000 tokens."""
    text = "\n\n".join(section.text.strip() for section in sections)
    meta: dict[str, Any] = {}
    if count(text) > FULL_DOC_MAX_TOKENS:
        pieces = split_recursive(text, Segmentation("\n", FULL_DOC_MAX_TOKENS, 0), count)
        text = text[: pieces[0][1]]
        meta["truncated"] = True
    return _Block(text, (), meta)
