"""Writes of documents: add, replace, (re-)index, pause, resume, enable, archive, delete.
Indexing itself runs on Celery (knowledge.tasks), started on commit."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from billing import quota
from billing.models import Metric
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput
from tenants.models import Tenant, User

from .. import store
from ..models import Chunk, Dataset, Document
from .checks import BUSY, check_choice, check_rule, check_tenant, document_busy, require_initialized

MAX_FILE_BYTES = 15 * 1024 * 1024
Status = Document.Status
WAITING_FIELDS = ["indexing_status", "progress", "error", "completed_at"]


def new_batch() -> str:
    """A batch id in Dify's form: the time to the second and six random digits."""
    return timezone.now().strftime("%Y%m%d%H%M%S") + f"{100000 + secrets.randbelow(900000)}"


def _check_size(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise InvalidInput(
            f"The file is {len(data) // 1024} KB; at most {max_bytes // 1024} KB is accepted.",
            code="file_too_large",
            status=413,
        )


def _enqueue(document: Document) -> None:
    from ..tasks import index_document

    transaction.on_commit(
        lambda: index_document.delay(
            tenant_id=str(document.tenant_id), document_id=str(document.pk)
        )
    )


def _wait(document: Document) -> None:
    document.indexing_status = Status.WAITING
    document.progress = 0
    document.error = ""
    document.completed_at = None


def queue_indexing(document: Document) -> None:
    """Put a document (read under lock) back in the indexing queue: saved as waiting, its
    task sent once the transaction commits."""
    _wait(document)
    document.save(update_fields=[*WAITING_FIELDS, "updated_at"])
    _enqueue(document)


def _settle_form(dataset: Dataset, indexing_technique: str | None, doc_form: str | None) -> Dataset:
    """The dataset, locked: its indexing technique and form may be chosen with its first
    document; after that a document must match them."""
    current = Dataset.objects.select_for_update().get(pk=dataset.pk)
    changes = {
        field: value
        for field, value in (("indexing_technique", indexing_technique), ("doc_form", doc_form))
        if value is not None and value != getattr(current, field)
    }
    if changes:
        if Document.objects.filter(dataset=current).exists():
            field = next(iter(changes))
            raise InvalidInput(
                f"{field}: the dataset's documents use “{getattr(current, field)}”; "
                "every document of a dataset must use the same."
            )
        for field, value in changes.items():
            setattr(current, field, value)
        current.save(update_fields=[*changes, "updated_at"])
    require_initialized(current)
    return current


def document_create(
    *,
    dataset: Dataset,
    name: str,
    data: bytes | None = None,
    text: str | None = None,
    created_by: User | None = None,
    process_rule: dict | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    indexing_technique: str | None = None,
    doc_form: str | None = None,
    batch: str | None = None,
) -> Document:
    """Add a file (`data`) or a text to a dataset and start indexing it after commit.

    `indexing_technique` and `doc_form` settle the dataset's with its first document. Only
    what can be refused at once is refused here (size, nothing given, a dataset that cannot
    index); what is inside the file is the pipeline's to judge, and a bad file fails alone
    with its reason."""
    if (data is None) == (text is None):
        raise InvalidInput("Give either a file or a text.")
    if data is not None:
        _check_size(data, max_bytes)
    check_choice("indexing_technique", indexing_technique, Dataset.IndexingTechnique.values)
    check_choice("doc_form", doc_form, Dataset.DocForm.values)
    check_rule(process_rule)
    with transaction.atomic(), tenant_context(dataset.tenant):
        settled = _settle_form(dataset, indexing_technique, doc_form)
        quota.capacity(dataset.tenant, Metric.DOCUMENTS)
        size = len(data) if data is not None else len((text or "").encode())
        quota.capacity(dataset.tenant, Metric.STORAGE_BYTES, size)
        position = Document.objects.filter(dataset=settled).count()
        document = Document(
            dataset=settled,
            name=name[:255] or "untitled",
            position=position,
            doc_form=settled.doc_form,
            process_rule=process_rule or {},
            created_by=created_by,
            batch=batch or new_batch(),
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


def document_replace(
    *,
    tenant: Tenant,
    document: Document,
    name: str | None = None,
    text: str | None = None,
    data: bytes | None = None,
    file_name: str = "upload",
    process_rule: dict[str, Any] | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> Document:
    """Give a document a new source (a text, or a file's `data`), name or splitting rule in
    a new batch: its chunks go at once, it is indexed again after commit, and a file it no
    longer uses is removed from storage then. Refused while the pipeline runs on it."""
    if text is not None and data is not None:
        raise InvalidInput("Give either a file or a text, not both.")
    if text is not None and not text.strip():
        raise InvalidInput("text: must not be empty.")
    if data is not None:
        _check_size(data, max_bytes)
    check_rule(process_rule)
    check_tenant(document, tenant)
    storage = Document._meta.get_field("file").storage
    with transaction.atomic(), tenant_context(tenant):
        current = (
            Document.objects.select_related("dataset")
            .select_for_update(of=("self",))
            .get(pk=document.pk)
        )
        require_initialized(current.dataset)
        if current.indexing_status in BUSY:
            raise document_busy()
        new_size = len(data) if data is not None else len(text.encode()) if text else 0
        if new_size > current.size:
            quota.capacity(tenant, Metric.STORAGE_BYTES, new_size - current.size)
        old_file = current.file.name or None
        stored = _store_file(current, file_name, data) if data is not None else None
        try:
            _replace_fields(current, name=name, text=text, data=data, process_rule=process_rule)
            current.save()
            Chunk.objects.filter(document=current).delete()
            store.dataset_stats_refresh(dataset_id=current.dataset_id)
        except Exception:
            # Rolled back: the file just stored belongs to no row.
            if stored is not None:
                storage.delete(stored)
            raise
        _enqueue(current)
        if old_file and old_file != current.file.name:
            transaction.on_commit(lambda: storage.delete(old_file))
    return current


def _store_file(document: Document, file_name: str, data: bytes) -> str:
    """Store the new file and assign its name (returned). Assigned, not saved in place on
    the document's FieldFile: the audit trail compares with that object as it was read."""
    field = document.file.field
    stored = field.storage.save(
        field.generate_filename(document, file_name[:100] or "upload"),
        ContentFile(data),
        max_length=field.max_length,
    )
    document.file = stored
    document.name = file_name[:255]
    return stored


def _replace_fields(
    document: Document,
    *,
    name: str | None,
    text: str | None,
    data: bytes | None,
    process_rule: dict[str, Any] | None,
) -> None:
    if data is not None:
        document.data_source_type = Document.Source.UPLOAD_FILE
        document.size = len(data)
        document.sha256 = hashlib.sha256(data).hexdigest()
        document.doc_metadata = {k: v for k, v in document.doc_metadata.items() if k != "text"}
    elif text is not None:
        document.file = ""
        document.data_source_type = Document.Source.TEXT
        document.size = len(text.encode())
        document.sha256 = ""
        document.doc_metadata = {**document.doc_metadata, "text": text}
    if name:
        document.name = name[:255]
    if process_rule is not None:
        document.process_rule = process_rule
    document.batch = new_batch()
    document.kind = ""
    document.word_count = document.tokens = 0
    _wait(document)


def document_reindex(*, document: Document) -> Document:
    """Index the document again from its source (after a rule or model change)."""
    with transaction.atomic():
        queue_indexing(Document.dangerously_unscoped.select_for_update().get(pk=document.pk))
    document.indexing_status = Status.WAITING
    return document


def document_pause(*, document: Document) -> None:
    """Stop indexing at the next batch; resume picks it up where it stood."""
    Document.dangerously_unscoped.filter(
        pk=document.pk,
        indexing_status__in=[s for s in Status.values if s not in ("completed", "error")],
    ).update(indexing_status=Status.PAUSED)


def document_resume(*, document: Document) -> None:
    updated = Document.dangerously_unscoped.filter(
        pk=document.pk, indexing_status=Status.PAUSED
    ).update(indexing_status=Status.WAITING)
    if updated:
        _enqueue(document)


def _set_status(document_id: Any, enabled: bool | None, archived: bool | None) -> Document:
    current = Document.dangerously_unscoped.select_for_update().get(pk=document_id)
    fields = []
    for field, value in (("enabled", enabled), ("archived", archived)):
        if value is not None and value != getattr(current, field):
            setattr(current, field, value)
            fields.append(field)
    if fields:
        current.save(update_fields=[*fields, "updated_at"])
    live = current.enabled and not current.archived and current.indexing_status == Status.COMPLETED
    store.document_set_live(document_id=current.pk, dataset_id=current.dataset_id, live=live)
    return current


def document_set_enabled(
    *, document: Document, enabled: bool, archived: bool | None = None
) -> Document:
    """Enable, disable or (un)archive a document: its chunks leave or rejoin search at once."""
    with transaction.atomic():
        return _set_status(document.pk, enabled, archived)


def documents_set_enabled(
    *,
    tenant: Tenant,
    documents: Sequence[Document],
    enabled: bool | None = None,
    archived: bool | None = None,
) -> list[Document]:
    """Enable, disable or (un)archive several documents (None leaves a switch as it is):
    all of them, or none."""
    for document in documents:
        check_tenant(document, tenant)
    with transaction.atomic():
        return [_set_status(document.pk, enabled, archived) for document in documents]


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
