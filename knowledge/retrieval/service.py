"""The retrieval service: search, fuse, rerank, threshold, group and record the query."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.db.models import F

from providers import services as models_runtime
from providers.models import Model
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput
from tenants.models import Tenant, User

from .. import search
from ..models import Chunk, Dataset, Document, HitTestQuery
from .fusion import Candidate, fuse
from .settings import RetrievalSettings, condition_sql

# Hybrid and rerank look at more candidates than they return, so fusion can reorder them.
MIN_CANDIDATES = 20
# Chunk fields a retrieval result never shows.
UNSHOWN = ("embedding", "terms")
CANDIDATES_PER_RESULT = 4


@dataclass
class ChildHit:
    """A matched child chunk of a parent-child dataset, with its score."""

    chunk: Chunk
    score: float


@dataclass
class Record:
    """One result: the chunk (the parent, in parent-child datasets) with its document."""

    chunk: Chunk
    document: Document
    dataset_id: uuid.UUID
    score: float
    semantic_score: float | None = None
    full_text_score: float | None = None
    rerank_score: float | None = None
    child_chunks: list[ChildHit] = field(default_factory=list)

    @property
    def scores(self) -> dict[str, float]:
        """The score of each method that found it (why it matched)."""
        named = {
            "semantic": self.semantic_score,
            "full_text": self.full_text_score,
            "rerank": self.rerank_score,
        }
        return {name: value for name, value in named.items() if value is not None}


async def retrieve(
    *,
    tenant: Tenant,
    datasets: Sequence[Dataset],
    query: str,
    settings: RetrievalSettings,
    source: str = HitTestQuery.Source.CONSOLE,
    user: User | None = None,
) -> list[Record]:
    """The best chunks of the tenant's datasets for the query, best first; counts their hits
    and records the query in the hit-test history."""
    started = time.monotonic()
    query = query.strip()
    if not query:
        raise InvalidInput("query: the query is empty.")
    if source not in HitTestQuery.Source.values:
        raise InvalidInput(f"source: “{source}” is not one of {', '.join(HitTestQuery.Source)}.")
    # Another tenant's dataset never contributes, whatever the caller passed.
    datasets = [d for d in datasets if d.tenant_id == tenant.pk]
    if not datasets:
        return []
    semantic_groups, allowed = await sync_to_async(_prepare)(tenant, datasets, settings)
    method = settings.search_method
    if method == "semantic_search" and not semantic_groups:
        method = "full_text_search"  # economy datasets only: keywords are all they have
    vectors: list[tuple[list[float], list[uuid.UUID]]] = []
    if method != "full_text_search":
        for model, dataset_ids in semantic_groups:
            embedded = await models_runtime.embed(tenant=tenant, texts=[query], model=model)
            vectors.append((embedded.vectors[0], dataset_ids))
    hierarchical = any(d.doc_form == Dataset.DocForm.HIERARCHICAL for d in datasets)
    wide = method == "hybrid_search" or settings.reranks or hierarchical
    wanted = max(settings.top_k * CANDIDATES_PER_RESULT, MIN_CANDIDATES) if wide else settings.top_k
    candidates = await sync_to_async(_search)(
        tenant,
        [d.pk for d in datasets],
        query,
        vectors if method != "full_text_search" else [],
        method != "semantic_search",
        wanted,
        allowed,
        settings,
    )
    if settings.reranks and candidates:
        documents = [_rerank_text(c.chunk) for c in candidates]
        ranking = await models_runtime.rerank(
            tenant=tenant, query=query, documents=documents, model=settings.reranking_model
        )
        for index, score in ranking.ranking:
            candidates[index].rerank = score
        candidates = [c for c in candidates if c.rerank is not None]
        candidates.sort(key=lambda c: -c.score)
    records = _records(candidates, settings)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    await sync_to_async(_record_hits)(
        tenant, datasets[0], query, source, user, settings, records, elapsed_ms
    )
    return records


def _prepare(
    tenant: Tenant, datasets: Sequence[Dataset], settings: RetrievalSettings
) -> tuple[list[tuple[Model | None, list[uuid.UUID]]], set[uuid.UUID] | None]:
    """The embedding models to query with (datasets of the same model together) and, with a
    metadata filter, the documents it keeps."""
    groups: dict[int | None, list[uuid.UUID]] = {}
    for dataset in datasets:
        if dataset.indexing_technique == Dataset.IndexingTechnique.HIGH_QUALITY:
            groups.setdefault(dataset.embedding_model_id, []).append(dataset.pk)
    with tenant_context(tenant):
        models = Model.objects.in_bulk([pk for pk in groups if pk is not None])
        allowed = _allowed_documents(tenant, [d.pk for d in datasets], settings)
    return [(models.get(pk) if pk else None, ids) for pk, ids in groups.items()], allowed


def _allowed_documents(
    tenant: Tenant, dataset_ids: list[uuid.UUID], settings: RetrievalSettings
) -> set[uuid.UUID] | None:
    if not settings.conditions:
        return None
    parts, params = [], []
    for condition in settings.conditions:
        sql, values = condition_sql(condition)
        parts.append(f"({sql})")
        params += values
    joined = f" {settings.logical_operator.upper()} ".join(parts)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.id FROM knowledge_document d "  # noqa: S608 - joined holds placeholders
            f"WHERE d.tenant_id = %s AND d.dataset_id = ANY(%s) AND ({joined})",
            [tenant.pk, dataset_ids, *params],
        )
        return {row[0] for row in cursor.fetchall()}


def _search(
    tenant: Tenant,
    dataset_ids: list[uuid.UUID],
    query: str,
    vectors: list[tuple[list[float], list[uuid.UUID]]],
    full_text: bool,
    wanted: int,
    allowed: set[uuid.UUID] | None,
    settings: RetrievalSettings,
) -> list[Candidate]:
    """Run the searches, fuse them and load the candidates' chunks, best first."""
    if allowed is not None and not allowed:
        return []
    # A metadata filter names the documents it keeps: the searches rank within them, so the
    # filter still fills top_k.
    documents = sorted(allowed) if allowed is not None else None
    with tenant_context(tenant):
        semantic_hits: list[tuple[uuid.UUID, float]] = []
        for vector, ids in vectors:
            semantic_hits += search.semantic(
                tenant_id=tenant.pk,
                dataset_ids=ids,
                vector=vector,
                top_k=wanted,
                document_ids=documents,
            )
        semantic_hits = sorted(semantic_hits, key=lambda hit: -hit[1])[:wanted]
        text_hits = (
            search.bm25(
                tenant_id=tenant.pk,
                dataset_ids=dataset_ids,
                query=query,
                top_k=wanted,
                document_ids=documents,
            )
            if full_text
            else []
        )
        candidates = fuse(semantic_hits, text_hits, settings)
        # Without their vectors and search terms: kilobytes each, parsed for nothing.
        chunks = (
            Chunk.objects.select_related("document", "parent")
            .defer(*UNSHOWN, *(f"parent__{name}" for name in UNSHOWN))
            .in_bulk([c.chunk_id for c in candidates])
        )
    for candidate in candidates:
        candidate.chunk = chunks.get(candidate.chunk_id)
    return [c for c in candidates if c.chunk is not None]


def _rerank_text(chunk: Chunk | None) -> str:
    assert chunk is not None  # noqa: S101 - candidates without a chunk were dropped
    return f"{chunk.content}\n{chunk.answer}" if chunk.answer else chunk.content


def _records(candidates: list[Candidate], settings: RetrievalSettings) -> list[Record]:
    """Threshold, group children under their parents (a parent scores as its best child),
    then top_k."""
    if settings.score_threshold_enabled:
        candidates = [c for c in candidates if c.score >= settings.score_threshold]
    records: dict[uuid.UUID, Record] = {}
    for candidate in candidates:
        chunk = candidate.chunk
        assert chunk is not None  # noqa: S101
        parent = chunk.parent if chunk.parent_id else None
        shown = parent or chunk
        record = records.get(shown.pk)
        if record is None:
            if len(records) >= settings.top_k:
                continue
            record = records[shown.pk] = Record(
                chunk=shown,
                document=chunk.document,
                dataset_id=chunk.dataset_id,
                score=_round(candidate.score),
                semantic_score=_round(candidate.semantic),
                full_text_score=_round(candidate.full_text),
                rerank_score=_round(candidate.rerank),
            )
        if parent is not None:
            record.child_chunks.append(ChildHit(chunk=chunk, score=_round(candidate.score)))
    return list(records.values())


def _round(value: float | None) -> Any:
    return None if value is None or math.isnan(value) else round(value, 6)


def _record_hits(
    tenant: Tenant,
    dataset: Dataset,
    query: str,
    source: str,
    user: User | None,
    settings: RetrievalSettings,
    records: list[Record],
    elapsed_ms: int,
) -> None:
    ids = [record.chunk.pk for record in records]
    with transaction.atomic(), tenant_context(tenant):
        if ids:
            Chunk.objects.filter(pk__in=ids).update(hit_count=F("hit_count") + 1)
        HitTestQuery.objects.create(
            tenant=tenant,
            dataset=dataset,
            query=query,
            source=source,
            retrieval_model=settings.to_dify(),
            result_count=len(records),
            elapsed_ms=elapsed_ms,
            created_by=user if user is not None and user.is_authenticated else None,
        )
    for record in records:
        record.chunk.hit_count += 1
