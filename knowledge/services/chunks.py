"""Writes of chunks (Dify's segments): add, edit, delete.

Text that needs a vector is embedded first, by the async `*_embedding` functions, outside any
transaction, so a model call never holds a database connection; the write follows in one
transaction. store.chunks_write writes in SQL, which Django's model signals do not see, so
these services announce the rows they wrote as a save would: the audit trail records them with
the actor in context, like every other write."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Max
from django.db.models.signals import post_save

from billing import quota
from billing.models import Metric
from providers import services as models_runtime
from providers.runtime.tokens import count_tokens
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, NotFound, WeftError
from tenants.models import Tenant

from .. import store
from ..models import Chunk, Dataset, Document
from .checks import check_tenant, require_initialized


@dataclass(frozen=True)
class NewChunk:
    """A chunk to add to a document: its text, the answer (question-and-answer documents)
    and keywords."""

    content: str
    answer: str = ""
    keywords: tuple[str, ...] = ()


def chunks_require_writable(*, document: Document) -> None:
    """Chunks of a document change only once it has completed: the pipeline rewrites every
    position of a document it indexes, so chunks added or edited meanwhile would be lost.
    `document.dataset` must be loaded."""
    if document.indexing_status != Document.Status.COMPLETED:
        raise WeftError(
            "The document is not indexed yet (or failed); segments can be changed once it "
            "has completed.",
            code="document_indexing",
            status=400,
        )
    require_initialized(document.dataset)


def _check_new(document: Document, chunks: Sequence[NewChunk]) -> None:
    chunks_require_writable(document=document)
    if not chunks:
        raise InvalidInput("segments: a non-empty list of segments is required.")
    if any(not chunk.content.strip() for chunk in chunks):
        raise InvalidInput("segments.content: a segment needs some text.")
    if document.doc_form == Dataset.DocForm.QA and not all(chunk.answer for chunk in chunks):
        raise InvalidInput("segments.answer: a question-and-answer document needs answers.")


def _embeds(dataset: Dataset) -> bool:
    return dataset.indexing_technique == Dataset.IndexingTechnique.HIGH_QUALITY


def _announce(chunks: Iterable[Chunk], *, created: bool) -> None:
    """Tell the model signals (the audit trail) about rows written in SQL."""
    for chunk in chunks:
        post_save.send(
            sender=Chunk,
            instance=chunk,
            created=created,
            update_fields=None,
            raw=False,
            using=chunk._state.db or DEFAULT_DB_ALIAS,
        )


async def chunks_embedding(
    *, tenant: Tenant, document: Document, chunks: Sequence[NewChunk]
) -> list[list[float]] | None:
    """The vectors chunks about to be added need (None when the dataset keeps none), after
    the checks chunks_add makes, so that a refused request costs no model call.
    `document.dataset` must come with its embedding model loaded."""
    _check_new(document, chunks)
    dataset = document.dataset
    if not _embeds(dataset):
        return None
    embedded = await models_runtime.embed(
        tenant=tenant, texts=[chunk.content for chunk in chunks], model=dataset.embedding_model
    )
    return [list(vector) for vector in embedded.vectors]


def chunks_add(
    *,
    tenant: Tenant,
    document: Document,
    chunks: Sequence[NewChunk],
    vectors: Sequence[Sequence[float]] | None,
    source: str,
) -> list[Chunk]:
    """Append chunks to a completed document, after its last position, searchable at once
    when the document is; `vectors` (from chunks_embedding) when the dataset embeds.
    `source` is kept in each chunk's metadata."""
    check_tenant(document, tenant)
    with transaction.atomic(), tenant_context(tenant):
        # Locked: one writer at a time picks the next positions of this document.
        current = (
            Document.objects.select_related("dataset")
            .select_for_update(of=("self",))
            .get(pk=document.pk)
        )
        _check_new(current, chunks)
        quota.capacity(tenant, Metric.VECTOR_CHUNKS, len(chunks))
        if _embeds(current.dataset) and (vectors is None or len(vectors) != len(chunks)):
            raise InvalidInput("vectors: one per chunk is needed, from chunks_embedding.")
        last = Chunk.objects.filter(document=current).aggregate(top=Max("position"))["top"]
        start = 0 if last is None else last + 1
        store.chunks_write(
            tenant_id=current.tenant_id,
            dataset_id=current.dataset_id,
            document_id=current.pk,
            rows=[
                store.ChunkRow(
                    position=start + i,
                    content=chunk.content,
                    answer=chunk.answer,
                    tokens=count_tokens(chunk.content),
                    embedding=vectors[i] if vectors is not None else None,
                    metadata={"source": source},
                )
                for i, chunk in enumerate(chunks)
            ],
        )
        added = list(
            Chunk.objects.filter(document=current, position__gte=start).order_by("position")
        )
        live = current.enabled and not current.archived
        for chunk, new in zip(added, chunks, strict=True):
            chunk.keywords = list(new.keywords)
            chunk.live = live
        Chunk.objects.bulk_update(added, ["keywords", "live"])
        _announce(added, created=True)
        store.dataset_stats_refresh(dataset_id=current.dataset_id)
    return added


async def chunk_embedding(
    *, tenant: Tenant, dataset: Dataset, chunk: Chunk, content: str
) -> list[float] | None:
    """The vector a chunk's edited text needs: none when the text is unchanged, the chunk is
    not searched (a parent) or the dataset keeps no vectors (economy). `dataset` must come
    with its embedding model loaded."""
    if content == chunk.content or not chunk.searchable or not _embeds(dataset):
        return None
    embedded = await models_runtime.embed(
        tenant=tenant, texts=[content], model=dataset.embedding_model
    )
    return list(embedded.vectors[0])


def chunk_edit(
    *,
    chunk: Chunk,
    content: str,
    answer: str,
    keywords: list[str] | tuple[str, ...] | None = None,
    enabled: bool | None = None,
    vector: list[float] | None = None,
) -> Chunk:
    """Save an edit of one chunk (console or API): changed text is rewritten at its position
    with fresh terms, hash and tokens; the vector is `vector` (from chunk_embedding) when the
    text changed, else the one it had; `live` stays as it was."""
    with transaction.atomic():
        # Locked, and read again under the audit actor, so the trail gets the old values.
        current = Chunk.dangerously_unscoped.select_for_update().get(pk=chunk.pk)
        if (content, answer) != (current.content, current.answer):
            store.chunks_write(
                tenant_id=current.tenant_id,
                dataset_id=current.dataset_id,
                document_id=current.document_id,
                rows=[
                    store.ChunkRow(
                        position=current.position,
                        content=content,
                        answer=answer,
                        tokens=count_tokens(content),
                        searchable=current.searchable,
                        embedding=vector if content != current.content else current.embedding,
                        metadata=current.metadata,
                    )
                ],
            )
        fields: dict = {}
        if keywords is not None:
            fields["keywords"] = list(keywords)
        if enabled is not None:
            fields["enabled"] = enabled
        if fields:
            Chunk.dangerously_unscoped.filter(pk=current.pk).update(**fields)
        current.refresh_from_db()
        _announce([current], created=False)
        store.dataset_stats_refresh(dataset_id=current.dataset_id)
    return current


def chunk_delete(*, tenant: Tenant, chunk: Chunk) -> None:
    """Delete a chunk (a parent with its children) and its vector; it leaves search at once."""
    check_tenant(chunk, tenant)
    with transaction.atomic(), tenant_context(tenant):
        current = Chunk.objects.select_for_update().filter(pk=chunk.pk).first()
        if current is None:
            raise NotFound("Chunk not found.")
        current.delete()
        store.dataset_stats_refresh(dataset_id=current.dataset_id)
