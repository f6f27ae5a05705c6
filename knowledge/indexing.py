"""The indexing pipeline of one document: parse → clean → split → embed → write → live.

It is safe to run again at any point. Every chunk is written by (document, position) with a
hash of its text, so a run after a worker died re-splits the document (deterministically),
keeps the chunks already written with their embeddings, embeds only what is missing, and
never duplicates. Chunks become searchable all at once when the document completes; a failed
document keeps none. A run holds a PostgreSQL advisory lock on its document, so a second
delivery of the same task while the first still runs does nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.utils import timezone

from billing import quota
from billing.models import Metric
from providers import services as models_runtime
from tenants.exceptions import WeftError

from . import store
from .models import Chunk, Dataset, Document
from .parsing import ParseError, parse
from .splitting import DocForm, QAExtractionError, SplitRule, SplitRuleError, split_document

logger = logging.getLogger(__name__)

EMBED_BATCH = 64
Status = Document.Status
ACTIVE = (Status.WAITING, Status.PARSING, Status.CLEANING, Status.SPLITTING, Status.INDEXING)


class Paused(Exception):
    """The document was paused while it was being indexed."""


@contextmanager
def document_lock(document_id) -> Iterator[bool]:
    """Whether this process holds the document's indexing lock (released on exit, and by
    PostgreSQL itself if the worker dies)."""
    key = f"weft-index:{document_id}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key])
        (locked,) = cursor.fetchone()
    try:
        yield bool(locked)
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])


def _update(document: Document, **fields) -> None:
    fields["heartbeat_at"] = timezone.now()
    Document.objects.filter(pk=document.pk).update(**fields)
    for name, value in fields.items():
        setattr(document, name, value)


def _stage(document: Document, status: str, started: float) -> float:
    """Enter `status`; record how long the previous stage took."""
    now = time.monotonic()
    seconds = dict(document.stage_seconds)
    previous = document.indexing_status
    if previous in ACTIVE:
        seconds[previous] = round(seconds.get(previous, 0) + now - started, 3)
    if Document.objects.filter(pk=document.pk, indexing_status=Status.PAUSED).exists():
        raise Paused
    _update(document, indexing_status=status, stage_seconds=seconds)
    return now


def _source(document: Document) -> tuple[bytes, str]:
    if document.data_source_type == Document.Source.TEXT:
        return document.doc_metadata.get("text", "").encode(), f"{document.name}.txt"
    with document.file.open("rb") as handle:
        return handle.read(), document.name


def index_document(*, document_id) -> str:
    """Index one document (in its tenant's context); returns its final status."""
    with document_lock(document_id) as locked:
        if not locked:
            return "locked"
        document = Document.objects.select_related("dataset").get(pk=document_id)
        if document.indexing_status in (Status.COMPLETED, Status.PAUSED):
            return document.indexing_status
        _update(document, attempts=document.attempts + 1, error="")
        try:
            _run(document)
        except Paused:
            _update(document, chunks_planned=0)  # claimed again when it resumes
            return Status.PAUSED
        except (ParseError, SplitRuleError, QAExtractionError, WeftError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "message", None) or str(exc)
            _fail(document, reason)
            return Status.ERROR
        return Status.COMPLETED


def _fail(document: Document, reason: str) -> None:
    with transaction.atomic():
        Chunk.objects.filter(document=document).delete()
        _update(
            document,
            indexing_status=Status.ERROR,
            error=reason[:2000],
            progress=0,
            chunks_planned=0,
        )
    logger.info("document %s failed: %s", document.pk, reason)


def _rows(document: Document, parsed_sections, rule: SplitRule) -> list[store.ChunkRow]:
    result = split_document(parsed_sections, rule, doc_form=cast(DocForm, document.doc_form))
    if document.doc_form != Dataset.DocForm.HIERARCHICAL:
        return [
            store.ChunkRow(
                position=c.position,
                content=c.content,
                tokens=c.tokens,
                answer=c.answer or "",
                metadata=c.metadata,
            )
            for c in result.chunks
        ]
    # Parents first (kept for their text), then children (searched), positions run on.
    offset = len(result.chunks)
    parents = [
        store.ChunkRow(
            position=c.position,
            content=c.content,
            tokens=c.tokens,
            searchable=False,
            metadata=c.metadata,
        )
        for c in result.chunks
    ]
    children = [
        store.ChunkRow(
            position=offset + c.position,
            content=c.content,
            tokens=c.tokens,
            parent_position=c.parent_position,
            metadata=c.metadata,
        )
        for c in result.children
    ]
    return parents + children


def _run(document: Document) -> None:
    dataset = document.dataset
    started = _stage(document, Status.PARSING, time.monotonic())
    data, filename = _source(document)
    parsed = parse(data, filename)
    started = _stage(document, Status.CLEANING, started)
    rule = SplitRule.from_process_rule(document.process_rule or dataset.process_rule or {})
    started = _stage(document, Status.SPLITTING, started)
    rows = _rows(document, parsed.sections, rule)
    if not any(row.searchable for row in rows):
        raise ParseError("The document has no text to index after splitting.")
    # Checked before any chunk is written: past the plan's chunks the document fails with
    # the quota's message and keeps none. The chunks it will hold are claimed under the
    # quota's lock (this document's earlier claim counted afresh), and held until it ends.
    with transaction.atomic():
        _update(document, chunks_planned=0)
        kept = Chunk.objects.filter(document=document).count()
        quota.capacity(dataset.tenant, Metric.VECTOR_CHUNKS, len(rows) - kept)
        _update(
            document,
            kind=parsed.kind,
            word_count=len(parsed.text.split()),
            tokens=sum(row.tokens for row in rows if row.searchable),
            chunks_planned=len(rows),
        )
    started = _stage(document, Status.INDEXING, started)
    _embed_and_write(document, dataset, rows)
    store.chunks_delete_after(
        document_id=document.pk, dataset_id=dataset.pk, position=len(rows) - 1
    )
    _stage(document, Status.COMPLETED, started)
    with transaction.atomic():
        live = document.enabled and not document.archived
        store.document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=live)
        _update(document, progress=100, completed_at=timezone.now(), chunks_planned=0)


def _embed_and_write(document: Document, dataset: Dataset, rows: list[store.ChunkRow]) -> None:
    """Write the rows whose text changed (or that lack a vector), embedding them in batches,
    with progress after each batch; rows already written as they are stay untouched."""
    embed = dataset.indexing_technique == Dataset.IndexingTechnique.HIGH_QUALITY
    written = {
        position: (digest, has_vector)
        for position, digest, has_vector in Chunk.objects.filter(document=document).values_list(
            "position", "content_hash", "embedding_dim"
        )
    }

    def done(row: store.ChunkRow) -> bool:
        digest, dims = written.get(row.position, (None, None))
        ready = dims is not None or not (embed and row.searchable)
        return digest == store.content_hash(row.content, row.answer) and ready

    todo = [row for row in rows if not done(row)]
    total = max(1, len(rows))
    finished = len(rows) - len(todo)
    for start in range(0, len(todo), EMBED_BATCH):
        batch = todo[start : start + EMBED_BATCH]
        searchable = [row for row in batch if row.searchable]
        if embed and searchable:
            vectors = async_to_sync(models_runtime.embed)(
                tenant=dataset.tenant,
                texts=[row.content for row in searchable],
                model=dataset.embedding_model,
            ).vectors
            by_position = {row.position: v for row, v in zip(searchable, vectors, strict=True)}
            batch = [
                store.ChunkRow(**{**row.__dict__, "embedding": by_position.get(row.position)})
                for row in batch
            ]
        store.chunks_write(
            tenant_id=dataset.tenant_id,
            dataset_id=dataset.pk,
            document_id=document.pk,
            rows=batch,
        )
        finished += len(batch)
        if Document.objects.filter(pk=document.pk, indexing_status=Status.PAUSED).exists():
            raise Paused
        _update(document, progress=min(99, finished * 100 // total))
