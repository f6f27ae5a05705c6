"""Fusion of the semantic and full-text hit lists into one ranking."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ..models import Chunk
from .settings import RetrievalSettings

RRF_K = 60


@dataclass
class Candidate:
    chunk_id: uuid.UUID
    semantic: float | None = None
    full_text: float | None = None
    fused: float = 0.0
    rerank: float | None = None
    chunk: Chunk | None = None

    @property
    def score(self) -> float:
        return self.rerank if self.rerank is not None else self.fused


def _scaled(hits: Sequence[tuple[uuid.UUID, float]]) -> dict[uuid.UUID, float]:
    """Scores divided by the query's best, floored at 0: each method's own zero (no term in
    common, orthogonal vectors) stays 0, so the weaker end of a short list is not stretched
    to look as bad as nothing at all, which min-max scaling does."""
    if not hits:
        return {}
    best = max(hits[0][1], 0.0) or 1.0
    return {chunk_id: max(score, 0.0) / best for chunk_id, score in hits}


def fuse(
    semantic_hits: Sequence[tuple[uuid.UUID, float]],
    text_hits: Sequence[tuple[uuid.UUID, float]],
    settings: RetrievalSettings,
) -> list[Candidate]:
    """One list from the two searches (each best first), best first.

    A single method keeps its own score: cosine similarity for semantic, BM25 divided by the
    best BM25 of the query for full text (so both run 0..1 and a threshold means something).
    Hybrid fuses by the weighted sum of each method's scores divided by its best (on
    Cranfield this beat min-max scaling, most of all at unequal weights), or by reciprocal
    rank (k = 60, the same weights) rescaled so that first in both lists scores 1."""
    candidates: dict[uuid.UUID, Candidate] = {}
    for chunk_id, score in semantic_hits:
        candidates[chunk_id] = Candidate(chunk_id, semantic=score)
    for chunk_id, score in text_hits:
        candidates.setdefault(chunk_id, Candidate(chunk_id)).full_text = score
    if not text_hits:
        for c in candidates.values():
            c.fused = c.semantic or 0.0
    elif not semantic_hits:
        for chunk_id, scaled in _scaled(text_hits).items():
            candidates[chunk_id].fused = scaled
    elif settings.fusion == "rrf":
        total = settings.vector_weight + settings.keyword_weight
        for weight, hits in (
            (settings.vector_weight, semantic_hits),
            (settings.keyword_weight, text_hits),
        ):
            for rank, (chunk_id, _) in enumerate(hits, start=1):
                candidates[chunk_id].fused += weight / (RRF_K + rank) * (RRF_K + 1) / total
    else:
        total = settings.vector_weight + settings.keyword_weight
        for weight, hits in (
            (settings.vector_weight, semantic_hits),
            (settings.keyword_weight, text_hits),
        ):
            for chunk_id, scaled in _scaled(hits).items():
                candidates[chunk_id].fused += weight * scaled / total
    return sorted(candidates.values(), key=lambda c: (-c.fused, str(c.chunk_id)))
