"""Retrieval over datasets: semantic, full-text, hybrid (weighted or reciprocal rank fusion),
optional rerank, score threshold, top-k and metadata filters; what hit testing, the Knowledge
API and the apps' knowledge retrieval all call.

Settings come in Dify's `retrieval_model` shape (`RetrievalSettings.from_dify`). A call embeds
the query once per embedding model, searches in one trip to the database, reranks if asked,
then counts the hits and records the query in a second trip.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, cast

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.db.models import F

from providers import services as models_runtime
from providers.models import Model
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput
from tenants.models import Tenant, User

from . import search
from .models import Chunk, Dataset, Document, HitTestQuery

SearchMethod = Literal["semantic_search", "full_text_search", "hybrid_search"]
SEARCH_METHODS = ("semantic_search", "full_text_search", "keyword_search", "hybrid_search")
RERANKING_MODES = ("reranking_model", "weighted_score")
FUSIONS = ("weighted", "rrf")
RRF_K = 60
DEFAULT_WEIGHT = 0.5
MAX_TOP_K = 100
# Hybrid and rerank look at more candidates than they return, so fusion can reorder them.
MIN_CANDIDATES = 20
CANDIDATES_PER_RESULT = 4
# A metadata filter keeps only some documents: the search widens until it fills top_k.
WIDEN_FACTOR = 4
MAX_WIDENED = 20_000

TEXT_OPERATORS = ("is", "is not", "contains", "not contains", "start with", "end with")
PRESENCE_OPERATORS = ("empty", "not empty")
NUMBER_OPERATORS = {"=": "=", "≠": "<>", "!=": "<>", ">": ">", "<": "<", "≥": ">=", ">=": ">="}
NUMBER_OPERATORS |= {"≤": "<=", "<=": "<="}
_NUMBER_PATTERN = r"^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$"


@dataclass(frozen=True)
class MetadataCondition:
    """One test on a document's `doc_metadata[name]`."""

    name: str
    comparison_operator: str
    value: str | float | None = None


@dataclass(frozen=True)
class RetrievalSettings:
    """How to search: Dify's `retrieval_model` fields, plus Weft's `fusion` for hybrid."""

    search_method: SearchMethod = "semantic_search"
    top_k: int = 3
    score_threshold_enabled: bool = False
    score_threshold: float = 0.5
    reranking_enable: bool = False
    reranking_mode: str = "reranking_model"
    reranking_model: str | None = None
    # Equal weights unless the caller sets them: neither method is known to be the better
    # one for a dataset. (Dify's console proposes 0.7/0.3; bench/knowledge/quality.py
    # measures both.)
    vector_weight: float = DEFAULT_WEIGHT
    keyword_weight: float = DEFAULT_WEIGHT
    fusion: str = "weighted"
    logical_operator: str = "and"
    conditions: tuple[MetadataCondition, ...] = ()

    @property
    def reranks(self) -> bool:
        return self.reranking_enable and self.reranking_mode == "reranking_model"

    @classmethod
    def from_dify(
        cls, data: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None
    ) -> RetrievalSettings:
        """Settings from a Dify `retrieval_model` over the dataset's defaults; a bad field
        raises InvalidInput naming it."""
        merged: dict[str, Any] = {**(defaults or {}), **(data or {})}
        if data is not None and not isinstance(data, Mapping):
            raise InvalidInput("retrieval_model: expected an object.")
        method = merged.get("search_method") or "semantic_search"
        if method not in SEARCH_METHODS:
            raise InvalidInput(
                f"retrieval_model.search_method: “{method}” is not one of "
                f"{', '.join(SEARCH_METHODS)}."
            )
        if method == "keyword_search":
            method = "full_text_search"
        mode = merged.get("reranking_mode") or "reranking_model"
        if mode not in RERANKING_MODES:
            raise InvalidInput(
                f"retrieval_model.reranking_mode: “{mode}” is not one of "
                f"{', '.join(RERANKING_MODES)}."
            )
        fusion = merged.get("fusion") or "weighted"
        if fusion not in FUSIONS:
            raise InvalidInput(f"retrieval_model.fusion: “{fusion}” is not weighted or rrf.")
        reranking_model = merged.get("reranking_model") or {}
        if isinstance(reranking_model, str):
            model_name: str | None = reranking_model
        elif isinstance(reranking_model, Mapping):
            model_name = reranking_model.get("reranking_model_name") or None
        else:
            raise InvalidInput("retrieval_model.reranking_model: expected an object.")
        weights = merged.get("weights") or {}
        if not isinstance(weights, Mapping):
            raise InvalidInput("retrieval_model.weights: expected an object.")
        vector_weight = _number(
            (weights.get("vector_setting") or {}).get("vector_weight"),
            "weights.vector_setting.vector_weight",
            DEFAULT_WEIGHT,
        )
        keyword_weight = _number(
            (weights.get("keyword_setting") or {}).get("keyword_weight"),
            "weights.keyword_setting.keyword_weight",
            DEFAULT_WEIGHT,
        )
        if vector_weight + keyword_weight <= 0:
            raise InvalidInput("retrieval_model.weights: the two weights cannot both be 0.")
        logical_operator, conditions = _conditions(merged.get("metadata_filtering_conditions"))
        return cls(
            search_method=cast(SearchMethod, method),
            top_k=_top_k(merged.get("top_k", 3)),
            score_threshold_enabled=_flag(merged, "score_threshold_enabled"),
            score_threshold=_number(merged.get("score_threshold"), "score_threshold", 0.5),
            reranking_enable=_flag(merged, "reranking_enable"),
            reranking_mode=mode,
            reranking_model=model_name,
            vector_weight=vector_weight,
            keyword_weight=keyword_weight,
            fusion=fusion,
            logical_operator=logical_operator,
            conditions=conditions,
        )

    def to_dify(self) -> dict[str, Any]:
        """The settings in Dify's `retrieval_model` shape (as stored on a hit test)."""
        return {
            "search_method": self.search_method,
            "top_k": self.top_k,
            "score_threshold_enabled": self.score_threshold_enabled,
            "score_threshold": self.score_threshold,
            "reranking_enable": self.reranking_enable,
            "reranking_mode": self.reranking_mode,
            "reranking_model": {"reranking_model_name": self.reranking_model or ""},
            "weights": {
                "weight_type": "customized",
                "vector_setting": {"vector_weight": self.vector_weight},
                "keyword_setting": {"keyword_weight": self.keyword_weight},
            },
            "fusion": self.fusion,
            "metadata_filtering_conditions": {
                "logical_operator": self.logical_operator,
                "conditions": [asdict(c) for c in self.conditions],
            },
        }


def _flag(merged: Mapping[str, Any], name: str) -> bool:
    value = merged.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"retrieval_model.{name}: expected true or false.")
    return value


def _number(value: Any, name: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInput(f"retrieval_model.{name}: expected a number from 0 to 1.")
    return float(value)


def _top_k(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise InvalidInput(f"retrieval_model.top_k: expected a whole number from 1 to {MAX_TOP_K}.")
    return value


def _conditions(data: Any) -> tuple[str, tuple[MetadataCondition, ...]]:
    if not data:
        return "and", ()
    where = "retrieval_model.metadata_filtering_conditions"
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: expected an object.")
    operator = data.get("logical_operator") or "and"
    if operator not in ("and", "or"):
        raise InvalidInput(f"{where}.logical_operator: expected and or or.")
    items = data.get("conditions") or []
    if not isinstance(items, list):
        raise InvalidInput(f"{where}.conditions: expected a list.")
    conditions = []
    for index, item in enumerate(items):
        at = f"{where}.conditions[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"{at}.name: expected the name of a metadata field.")
        comparison = item.get("comparison_operator")
        value = item.get("value")
        if comparison in TEXT_OPERATORS:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise InvalidInput(f"{at}.value: “{comparison}” needs a text value.")
            value = str(value)
        elif comparison in NUMBER_OPERATORS:
            try:
                number = Decimal(str(value)) if not isinstance(value, bool) else None
            except InvalidOperation:
                number = None
            if number is None or not number.is_finite():
                raise InvalidInput(f"{at}.value: “{comparison}” needs a number.")
            value = float(number)
        elif comparison in PRESENCE_OPERATORS:
            value = None
        else:
            known = TEXT_OPERATORS + PRESENCE_OPERATORS + tuple(NUMBER_OPERATORS)
            raise InvalidInput(
                f"{at}.comparison_operator: “{comparison}” is not one of {', '.join(known)}."
            )
        conditions.append(MetadataCondition(item["name"], comparison, value))
    return operator, tuple(conditions)


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _condition_sql(condition: MetadataCondition) -> tuple[str, list[Any]]:
    """The SQL of one condition on `d.doc_metadata`, with its parameters."""
    text = "(d.doc_metadata ->> %s)"
    name = condition.name
    op, value = condition.comparison_operator, condition.value
    if op == "is":
        return f"{text} = %s", [name, value]
    if op == "is not":
        return f"{text} IS DISTINCT FROM %s", [name, value]
    if op in ("contains", "start with", "end with"):
        pattern = _like(str(value))
        pattern = {"contains": f"%{pattern}%", "start with": f"{pattern}%"}.get(op, f"%{pattern}")
        return f"{text} LIKE %s", [name, pattern]
    if op == "not contains":
        return f"coalesce({text}, '') NOT LIKE %s", [name, f"%{_like(str(value))}%"]
    if op == "empty":
        return f"coalesce({text}, '') = ''", [name]
    if op == "not empty":
        return f"coalesce({text}, '') <> ''", [name]
    # Numbers: a value that is not a number never compares (and never breaks the cast).
    number = f"(CASE WHEN {text} ~ %s THEN ({text})::numeric END)"
    return f"{number} {NUMBER_OPERATORS[op]} %s", [name, _NUMBER_PATTERN, name, value]


# --- Results ------------------------------------------------------------------------------


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


@dataclass
class _Candidate:
    chunk_id: uuid.UUID
    semantic: float | None = None
    full_text: float | None = None
    fused: float = 0.0
    rerank: float | None = None
    chunk: Chunk | None = None

    @property
    def score(self) -> float:
        return self.rerank if self.rerank is not None else self.fused


# --- Retrieval ----------------------------------------------------------------------------


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
        sql, values = _condition_sql(condition)
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
) -> list[_Candidate]:
    """Run the searches, fuse them and load the candidates' chunks, best first."""
    if allowed is not None and not allowed:
        return []
    with tenant_context(tenant):
        semantic_hits: list[tuple[uuid.UUID, float]] = []
        for vector, ids in vectors:
            semantic_hits += _filtered(
                lambda k, v=vector, i=ids: search.semantic(
                    tenant_id=tenant.pk, dataset_ids=i, vector=v, top_k=k
                ),
                wanted,
                allowed,
            )
        semantic_hits = sorted(semantic_hits, key=lambda hit: -hit[1])[:wanted]
        text_hits = (
            _filtered(
                lambda k: search.bm25(
                    tenant_id=tenant.pk, dataset_ids=dataset_ids, query=query, top_k=k
                ),
                wanted,
                allowed,
            )
            if full_text
            else []
        )
        candidates = fuse(semantic_hits, text_hits, settings)
        chunks = Chunk.objects.select_related("document", "parent").in_bulk(
            [c.chunk_id for c in candidates]
        )
    for candidate in candidates:
        candidate.chunk = chunks.get(candidate.chunk_id)
    return [c for c in candidates if c.chunk is not None]


def _filtered(search_for, wanted: int, allowed: set[uuid.UUID] | None):
    """The search's hits in the allowed documents, widening the search until it fills
    `wanted` or has seen every chunk."""
    if allowed is None:
        return search_for(wanted)
    asked = wanted
    while True:
        hits = search_for(asked)
        ids = [hit[0] for hit in hits]
        documents = dict(
            Chunk.objects.filter(pk__in=ids).values_list("pk", "document_id").iterator()
        )
        kept = [hit for hit in hits if documents.get(hit[0]) in allowed]
        if len(kept) >= wanted or len(hits) < asked or asked >= MAX_WIDENED:
            return kept[:wanted]
        asked = min(asked * WIDEN_FACTOR, MAX_WIDENED)


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
) -> list[_Candidate]:
    """One list from the two searches (each best first), best first.

    A single method keeps its own score: cosine similarity for semantic, BM25 divided by the
    best BM25 of the query for full text (so both run 0..1 and a threshold means something).
    Hybrid fuses by the weighted sum of each method's scores divided by its best (on
    Cranfield this beat min-max scaling, most of all at unequal weights), or by reciprocal
    rank (k = 60, the same weights) rescaled so that first in both lists scores 1."""
    candidates: dict[uuid.UUID, _Candidate] = {}
    for chunk_id, score in semantic_hits:
        candidates[chunk_id] = _Candidate(chunk_id, semantic=score)
    for chunk_id, score in text_hits:
        candidates.setdefault(chunk_id, _Candidate(chunk_id)).full_text = score
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


def _rerank_text(chunk: Chunk | None) -> str:
    assert chunk is not None  # noqa: S101 - candidates without a chunk were dropped
    return f"{chunk.content}\n{chunk.answer}" if chunk.answer else chunk.content


def _records(candidates: list[_Candidate], settings: RetrievalSettings) -> list[Record]:
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
