"""Cutting text into spans that fit: recursive separators, merging, overlap."""

# ruff: noqa: RUF001 - full-width CJK punctuation is matched on purpose
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from .rules import Segmentation

Mode = Literal["automatic", "custom", "hierarchical"]
ParentMode = Literal["paragraph", "full-doc"]
DocForm = Literal["text_model", "hierarchical_model", "qa_model"]
Counter = Callable[[str], int]

Span = tuple[int, int, int]  # start, end (offsets in the text), tokens

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# Cut points are the ends of these matches, coarsest first; a separator stays with the text
# before it, so the pieces put back together are the text. A final space goes with the next
# word instead, as the tokenizer reads it (" word" is one token), so that the counts of the
# pieces add up to the count of their join.
_LEVELS = [
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n\s*"),
    re.compile(r"[。！？]+[”’」』）)]*\s*|[.!?]+[\"'”’)\]]*\s+"),
    re.compile(r";\s+|；\s*"),
    re.compile(r",\s+|[，、]\s*"),
    re.compile(r"\s+"),
]
_WORD_START = re.compile(rf"(?<=[\s.,;:!?。！？；，、{_CJK}])(?=\S)|(?=[{_CJK}])")


def split_recursive(text: str, segmentation: Segmentation, count: Counter) -> list[Span]:
    """Automatic mode on one text: spans of at most `max_tokens`, overlapping."""
    limit = segmentation.max_tokens - segmentation.chunk_overlap
    pieces = _pieces(text, 0, len(text), 0, limit, count)
    return _merge(text, pieces, segmentation.max_tokens, segmentation.chunk_overlap, count)


def split_by_separator(text: str, segmentation: Segmentation, count: Counter) -> list[Span]:
    """Custom mode on one text: one span per separated piece; long pieces split further."""
    spans: list[Span] = []
    start = 0
    while start <= len(text):
        end = text.find(segmentation.separator, start)
        end = len(text) if end < 0 else end
        lead = len(text[start:end]) - len(text[start:end].lstrip())
        trail = len(text[start:end].rstrip())
        if trail > lead:
            piece = text[start + lead : start + trail]
            tokens = _fitting(piece, segmentation.max_tokens, count)
            if tokens is not None:
                spans.append((start + lead, start + trail, tokens))
            else:
                spans.extend(
                    (start + lead + s, start + lead + e, t)
                    for s, e, t in split_recursive(piece, segmentation, count)
                )
        start = end + len(segmentation.separator)
    return spans


def _fitting(text: str, limit: int, count: Counter) -> int | None:
    """The tokens of `text` if they are at most `limit`, else None. Texts far longer than
    any `limit` tokens can be are not counted (splitting them needlessly loses nothing:
    the pieces are merged again)."""
    if len(text) > limit * 16:
        return None
    tokens = count(text)
    return tokens if tokens <= limit else None


def _pieces(text: str, start: int, end: int, level: int, limit: int, count: Counter) -> list[Span]:
    """Cut text[start:end] at the coarsest separators that make every piece fit `limit`."""
    tokens = _fitting(text[start:end], limit, count)
    if tokens is not None:
        return [(start, end, tokens)]
    for depth in range(level, len(_LEVELS)):
        cuts = [
            cut
            for m in _LEVELS[depth].finditer(text, start, end)
            if start < (cut := m.end() - (text[m.end() - 1] == " ")) < end
        ]
        if cuts:
            pieces: list[Span] = []
            for a, b in zip([start, *cuts], [*cuts, end], strict=True):
                if b > a:
                    pieces.extend(_pieces(text, a, b, depth + 1, limit, count))
            return pieces
    return _by_characters(text, start, end, limit, count)


def _by_characters(text: str, start: int, end: int, limit: int, count: Counter) -> list[Span]:
    """No separator left (a long compound, CJK without punctuation): prefixes within a few
    tokens of `limit`, found by extrapolating characters per token from counted prefixes
    (counting the whole run at once would be slow: the tokenizer sees one huge word)."""
    slack = max(2, limit // 50)
    rate = 2.0  # characters per token, learnt as we go
    pieces: list[Span] = []
    while start < end:
        fit, fit_tokens, over, over_tokens = start, 0, end + 1, 0
        while fit < end and over - fit > 1 and fit_tokens < limit - slack:
            step = max(1, int((limit - slack / 2 - fit_tokens) * rate))
            guess = min(end, over - 1, fit + step)
            tokens = count(text[start:guess])
            if tokens <= limit:
                fit, fit_tokens = guess, tokens
            else:
                over, over_tokens = guess, tokens
            if over <= end:
                rate = (over - fit) / (over_tokens - fit_tokens)
            elif fit_tokens:
                rate = (fit - start) / fit_tokens
        if fit == start:  # one character over the limit: it still has to go somewhere
            fit, fit_tokens = start + 1, count(text[start])
        pieces.append((start, fit, fit_tokens))
        start = fit
    return pieces


def _merge(
    text: str, pieces: list[Span], max_tokens: int, overlap: int, count: Counter
) -> list[Span]:
    """Greedily fill chunks with whole pieces; each chunk after the first starts with up to
    `overlap` tokens from the end of the one before (at a word start)."""
    spans: list[Span] = []
    i = 0
    while i < len(pieces):
        start = pieces[i][0]
        head, head_tokens = start, 0
        if spans and overlap:
            head, head_tokens = _overlap_start(text, spans[-1][0], start, overlap, count)
        used, j = head_tokens + pieces[i][2], i + 1
        while j < len(pieces) and used + pieces[j][2] <= max_tokens:
            used += pieces[j][2]
            j += 1
        # Token counts of pieces need not add up exactly; the chunk itself is what counts.
        while True:
            content = text[head : pieces[j - 1][1]].strip()
            tokens = count(content)
            if tokens <= max_tokens or (j == i + 1 and head == start):
                break
            if j > i + 1:
                j -= 1
            else:
                head = start
        if content:
            spans.append((head, pieces[j - 1][1], tokens))
        i = j
    return spans


def _overlap_start(
    text: str, previous_start: int, start: int, overlap: int, count: Counter
) -> tuple[int, int]:
    """The earliest word start after `previous_start` whose tail up to `start` fits `overlap`."""
    window = max(previous_start + 1, start - overlap * 12)
    starts = [m.start() for m in _WORD_START.finditer(text, window, start)]
    lo, hi = 0, len(starts)  # find the first candidate whose tail fits
    while lo < hi:
        mid = (lo + hi) // 2
        if count(text[starts[mid] : start]) <= overlap:
            hi = mid
        else:
            lo = mid + 1
    if lo == len(starts):
        return start, 0
    return starts[lo], count(text[starts[lo] : start])
