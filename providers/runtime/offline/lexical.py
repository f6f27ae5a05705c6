"""BM25 over a handful of texts, for the built-in reranker and the extractive chat."""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..tokens import count_tokens
from ..types import (
    RerankResult,
    Usage,
)
from .base import INLINE_CHARS, OFFLINE_RERANK_MODEL
from .text import CJK_CHAR, STOPWORDS, tokenize

_K1, _B = 1.2, 0.75
# Share of the score given to the query's word pairs found side by side in the document.
_PAIR_BONUS = 0.1


@dataclass(frozen=True)
class _Analysed:
    terms: Counter[str]
    length: int
    pairs: frozenset[tuple[str, str]]
    tokens: int  # count_tokens of the text, for usage


_SUFFIXES = ("ies", "ing", "ed", "es", "s")


def _stem(token: str) -> str:
    """Strips one common plural or verb ending from a longer word (not "-ss", "-us", "-is"):
    the same for query and documents, so "costs" finds "cost" and "founded" "founding"."""
    if len(token) <= 4 or token in STOPWORDS or token.endswith(("ss", "us", "is")):
        return token
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            return token[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return token


@functools.lru_cache(maxsize=8192)
def _analyse(text: str) -> _Analysed:
    tokens = [_stem(token) for token in tokenize(text)]
    terms = Counter(tokens)
    for first, second in itertools.pairwise(tokens):
        if CJK_CHAR.fullmatch(first) and CJK_CHAR.fullmatch(second):
            terms[first + second] += 1
    pairs = frozenset(itertools.pairwise(tokens))
    return _Analysed(terms, len(tokens), pairs, count_tokens(text))


def _query_terms(query: _Analysed) -> list[str]:
    return sorted(term for term in query.terms if term not in STOPWORDS)


def bm25_scores(query: str, documents: Sequence[str]) -> list[float]:
    """Scores in [0, 1]: BM25 (IDF over these documents, query stopwords dropped) divided by
    the score of a document saturating every query term, plus a small share for the query's
    adjacent word pairs that the document also has side by side."""
    return _bm25(_analyse(query), [_analyse(document) for document in documents])


def _bm25(analysed_query: _Analysed, docs: list[_Analysed]) -> list[float]:
    terms = _query_terms(analysed_query)
    if not terms or not docs:
        return [0.0] * len(docs)
    count = len(docs)
    mean_length = sum(doc.length for doc in docs) / count or 1.0
    idf = {}
    for term in terms:
        frequency = sum(1 for doc in docs if term in doc.terms)
        idf[term] = math.log(1.0 + (count - frequency + 0.5) / (frequency + 0.5))
    ceiling = sum(idf.values()) * (_K1 + 1.0)
    query_pairs = {pair for pair in analysed_query.pairs if not set(pair) <= STOPWORDS}
    scores = []
    for doc in docs:
        norm = _K1 * (1.0 - _B + _B * doc.length / mean_length)
        raw = 0.0
        for term in terms:
            tf = doc.terms.get(term, 0)
            if tf:
                raw += idf[term] * tf * (_K1 + 1.0) / (tf + norm)
        paired = len(query_pairs & doc.pairs) / len(query_pairs) if query_pairs else 0.0
        scores.append((raw / ceiling + _PAIR_BONUS * paired) / (1.0 + _PAIR_BONUS))
    return scores


class LexicalReranker:
    """Orders documents by `bm25_scores` against the query; ties keep the input order."""

    model = OFFLINE_RERANK_MODEL

    async def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None
    ) -> RerankResult:
        if sum(map(len, documents)) > INLINE_CHARS:
            ranking, tokens = await asyncio.to_thread(self._rank, query, documents)
        else:
            ranking, tokens = self._rank(query, documents)
        if top_n is not None:
            ranking = ranking[: max(top_n, 0)]
        return RerankResult(ranking=ranking, usage=Usage(tokens, 0, estimated=True))

    @staticmethod
    def _rank(query: str, documents: Sequence[str]) -> tuple[list[tuple[int, float]], int]:
        """The ranking, and the tokens billed as rerank APIs do: the query once per document,
        plus the documents."""
        analysed_query = _analyse(query)
        docs = [_analyse(document) for document in documents]
        scores = _bm25(analysed_query, docs)
        ranking = sorted(enumerate(scores), key=lambda item: (-item[1], item[0]))
        return ranking, sum(analysed_query.tokens + doc.tokens for doc in docs)
