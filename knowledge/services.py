"""Writes of the knowledge base: datasets and documents. Indexing itself runs on Celery
(knowledge.tasks), started on commit."""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from providers import services as models_runtime
from providers.models import Model, ModelKind
from providers.runtime.tokens import count_tokens
from providers.selectors import default_model
from tenants.context import tenant_context
from tenants.exceptions import Conflict, InvalidInput
from tenants.models import Tenant, User

from . import store
from .models import Chunk, Dataset, Document
from .splitting import SplitRule, SplitRuleError

MAX_FILE_BYTES = 15 * 1024 * 1024


def _embedding_model(tenant: Tenant, model: Model | None) -> Model:
    if model is None:
        with tenant_context(tenant):
            return default_model(ModelKind.EMBEDDING)
    if model.kind != ModelKind.EMBEDDING:
        raise InvalidInput(f"embedding_model: {model} is not an embedding model.")
    return model


def _check_rule(process_rule: dict) -> None:
    try:
        SplitRule.from_process_rule(process_rule or {})
    except SplitRuleError as exc:
        raise InvalidInput(f"process_rule: {exc}") from exc


def dataset_create(
    *,
    tenant: Tenant,
    name: str,
    description: str = "",
    created_by: User | None = None,
    indexing_technique: str = Dataset.IndexingTechnique.HIGH_QUALITY,
    doc_form: str = Dataset.DocForm.TEXT,
    permission: str = Dataset.Permission.ONLY_ME,
    embedding_model: Model | None = None,
    process_rule: dict | None = None,
    retrieval_model: dict | None = None,
) -> Dataset:
    """Create an empty dataset, with the embedding model it will always use."""
    name = name.strip()
    if not name:
        raise InvalidInput("name: a dataset needs a name.")
    _check_rule(process_rule or {})
    model = _embedding_model(tenant, embedding_model)
    with transaction.atomic(), tenant_context(tenant):
        if Dataset.objects.filter(name=name).exists():
            raise Conflict(f"A dataset named “{name}” already exists.")
        try:
            dataset = Dataset.objects.create(
                name=name,
                description=description,
                created_by=created_by,
                indexing_technique=indexing_technique,
                doc_form=doc_form,
                permission=permission,
                embedding_model=model,
                embedding_dimensions=model.dimensions,
                process_rule=process_rule or {},
                retrieval_model=retrieval_model or {},
            )
        except IntegrityError as exc:
            raise Conflict(f"A dataset named “{name}” already exists.") from exc
    return dataset


def _enqueue(document: Document) -> None:
    from .tasks import index_document

    transaction.on_commit(
        lambda: index_document.delay(
            tenant_id=str(document.tenant_id), document_id=str(document.pk)
        )
    )


def document_create(
    *,
    dataset: Dataset,
    name: str,
    data: bytes | None = None,
    text: str | None = None,
    created_by: User | None = None,
    process_rule: dict | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> Document:
    """Add a file (`data`) or a text to a dataset and start indexing it after commit.

    Only what can be refused at once is refused here (size, nothing given); what is inside
    the file is the pipeline's to judge, and a bad file fails alone with its reason."""
    if (data is None) == (text is None):
        raise InvalidInput("Give either a file or a text.")
    if data is not None and len(data) > max_bytes:
        raise InvalidInput(
            f"The file is {len(data) // 1024} KB; at most {max_bytes // 1024} KB is accepted.",
            code="file_too_large",
            status=413,
        )
    _check_rule(process_rule or {})
    with transaction.atomic(), tenant_context(dataset.tenant):
        position = Document.objects.filter(dataset=dataset).count()
        document = Document(
            dataset=dataset,
            name=name[:255] or "untitled",
            position=position,
            doc_form=dataset.doc_form,
            process_rule=process_rule or {},
            created_by=created_by,
        )
        if data is not None:
            document.size = len(data)
            document.sha256 = hashlib.sha256(data).hexdigest()
            document.file.save(name[:100] or "upload", ContentFile(data), save=False)
        elif text is not None:
            document.data_source_type = Document.Source.TEXT
            document.size = len(text.encode())
            document.doc_metadata = {"text": text}
        document.save()
        _enqueue(document)
    return document


def document_reindex(*, document: Document) -> Document:
    """Index the document again from its source (after a rule or model change)."""
    with transaction.atomic():
        Document.dangerously_unscoped.filter(pk=document.pk).update(
            indexing_status=Document.Status.WAITING, progress=0, error="", completed_at=None
        )
        document.indexing_status = Document.Status.WAITING
        _enqueue(document)
    return document


def document_pause(*, document: Document) -> None:
    """Stop indexing at the next batch; resume picks it up where it stood."""
    Document.dangerously_unscoped.filter(
        pk=document.pk,
        indexing_status__in=[s for s in Document.Status.values if s not in ("completed", "error")],
    ).update(indexing_status=Document.Status.PAUSED)


def document_resume(*, document: Document) -> None:
    updated = Document.dangerously_unscoped.filter(
        pk=document.pk, indexing_status=Document.Status.PAUSED
    ).update(indexing_status=Document.Status.WAITING)
    if updated:
        _enqueue(document)


def document_set_enabled(
    *, document: Document, enabled: bool, archived: bool | None = None
) -> None:
    """Enable, disable or (un)archive a document: its chunks leave or rejoin search at once."""
    with transaction.atomic():
        fields = {"enabled": enabled}
        if archived is not None:
            fields["archived"] = archived
        Document.dangerously_unscoped.filter(pk=document.pk).update(**fields)
        document.refresh_from_db()
        live = (
            document.enabled
            and not document.archived
            and document.indexing_status == Document.Status.COMPLETED
        )
        store.document_set_live(document_id=document.pk, dataset_id=document.dataset_id, live=live)


def document_delete(*, document: Document) -> None:
    """Delete a document with every chunk and vector (and its stored file)."""
    dataset_id = document.dataset_id
    stored = document.file.name if document.file else None
    with transaction.atomic():
        Chunk.dangerously_unscoped.filter(document_id=document.pk).delete()
        document.delete()
        store.dataset_stats_refresh(dataset_id=dataset_id)
        if stored:
            storage = document.file.storage
            transaction.on_commit(lambda: storage.delete(stored))


def dataset_delete(*, dataset: Dataset) -> None:
    """Delete a dataset, its documents, chunks, vectors and files."""
    files = [
        name
        for name in Document.dangerously_unscoped.filter(dataset=dataset).values_list(
            "file", flat=True
        )
        if name
    ]
    with transaction.atomic():
        Chunk.dangerously_unscoped.filter(dataset=dataset).delete()
        dataset.delete()
        storage = Document._meta.get_field("file").storage

        def remove_files() -> None:
            for name in files:
                storage.delete(name)

        transaction.on_commit(remove_files)


async def chunk_embedding(
    *, tenant: Tenant, dataset: Dataset, chunk: Chunk, content: str
) -> list[float] | None:
    """The vector a chunk's edited text needs: none when the text is unchanged, the chunk is
    not searched (a parent) or the dataset keeps no vectors (economy). `dataset` must come
    with its embedding model loaded."""
    if (
        content == chunk.content
        or not chunk.searchable
        or dataset.indexing_technique != Dataset.IndexingTechnique.HIGH_QUALITY
    ):
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
        if (content, answer) != (chunk.content, chunk.answer):
            store.chunks_write(
                tenant_id=chunk.tenant_id,
                dataset_id=chunk.dataset_id,
                document_id=chunk.document_id,
                rows=[
                    store.ChunkRow(
                        position=chunk.position,
                        content=content,
                        answer=answer,
                        tokens=count_tokens(content),
                        searchable=chunk.searchable,
                        embedding=vector if content != chunk.content else chunk.embedding,
                        metadata=chunk.metadata,
                    )
                ],
            )
        fields: dict = {}
        if keywords is not None:
            fields["keywords"] = list(keywords)
        if enabled is not None:
            fields["enabled"] = enabled
        if fields:
            Chunk.dangerously_unscoped.filter(pk=chunk.pk).update(**fields)
        store.dataset_stats_refresh(dataset_id=chunk.dataset_id)
    return Chunk.dangerously_unscoped.get(pk=chunk.pk)
