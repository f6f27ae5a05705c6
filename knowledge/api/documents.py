"""Knowledge API: documents of a dataset — create and update by text or file, list, show,
delete, enable/disable/archive, and the indexing status of a batch."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from tenants.exceptions import InvalidInput, NotFound, WeftError

from .. import services, store
from ..models import Chunk, Dataset, Document
from ..parsing import EmptyFile, ParseError, UnsupportedFileType, sniff
from ..splitting import SplitRule, SplitRuleError
from .base import (
    Caller,
    access_dataset,
    access_document,
    choice_field,
    documents_of,
    json_body,
    keyword_filter,
    no_content,
    object_field,
    ok,
    page_params,
    paginated,
    required_text,
    text_field,
)
from .datasets import require_initialized
from .shapes import document_json, indexing_status_json

Status = Document.Status
BUSY = (Status.PARSING, Status.CLEANING, Status.SPLITTING, Status.INDEXING)


def new_batch() -> str:
    """A batch id in Dify's form: the time to the second and six random digits."""
    return timezone.now().strftime("%Y%m%d%H%M%S") + f"{100000 + secrets.randbelow(900000)}"


def document_busy() -> WeftError:
    return WeftError(
        "The document is being indexed; try again when it has finished.",
        code="document_indexing",
        status=400,
    )


def _check_rule(process_rule: dict[str, Any] | None) -> None:
    if process_rule:
        try:
            SplitRule.from_process_rule(process_rule)
        except SplitRuleError as exc:
            raise InvalidInput(f"process_rule: {exc}") from exc


def _settle_form(dataset: Dataset, body: dict[str, Any]) -> None:
    """`indexing_technique` and `doc_form` may be chosen with a dataset's first document;
    after that a document must match the dataset."""
    technique = choice_field(body, "indexing_technique", Dataset.IndexingTechnique.values)
    doc_form = choice_field(body, "doc_form", Dataset.DocForm.values)
    changed = {
        field: value
        for field, value in (("indexing_technique", technique), ("doc_form", doc_form))
        if value is not None and value != getattr(dataset, field)
    }
    if changed:
        if Document.objects.filter(dataset=dataset).exists():
            field = next(iter(changed))
            raise InvalidInput(
                f"{field}: the dataset's documents use “{getattr(dataset, field)}”; "
                "every document of a dataset must use the same."
            )
        for field, value in changed.items():
            setattr(dataset, field, value)
        dataset.save(update_fields=[*changed, "updated_at"])
    require_initialized(dataset)


def _upload(request: HttpRequest, *, required: bool = True) -> tuple[str, bytes] | None:
    """The one uploaded file (name, bytes), sniffed: refused at once when too large or of a
    type Weft cannot index. Damaged or encrypted files pass, and fail in the pipeline with
    their reason, as every other bad file does."""
    uploads = [file for name in request.FILES for file in request.FILES.getlist(name)]
    if not uploads:
        if required:
            raise WeftError("No file uploaded.", code="no_file_uploaded", status=400)
        return None
    if len(uploads) > 1:
        raise WeftError("Only one file is allowed.", code="too_many_files", status=400)
    upload = uploads[0]
    limit = services.MAX_FILE_BYTES
    if upload.size is not None and upload.size > limit:
        raise WeftError(
            f"File size exceeded: {upload.size // 1024} KB; at most {limit // 1024} KB.",
            code="file_too_large",
            status=413,
        )
    data = upload.read()
    name = upload.name or "upload"
    try:
        sniff(data, name)
    except ParseError as exc:
        if isinstance(exc, UnsupportedFileType | EmptyFile):
            raise
    return name, data


def _form_data(request: HttpRequest) -> dict[str, Any]:
    """The `data` field of a multipart request: the text endpoints' fields, as JSON."""
    raw = request.POST.get("data")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"data: not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise InvalidInput("data: must be a JSON object.")
    return data


def _created(document: Document, batch: str) -> HttpResponse:
    Document.objects.filter(pk=document.pk).update(batch=batch)
    document.batch = batch
    return ok({"document": document_json(document), "batch": batch})


def create_by_text(request: HttpRequest, caller: Caller, dataset_id: str) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id, "upload")
    body = json_body(request)
    name = required_text(body, "name", max_length=255)
    text = required_text(body, "text")
    process_rule = object_field(body, "process_rule")
    with transaction.atomic():
        _settle_form(dataset, body)
        document = services.document_create(
            dataset=dataset,
            name=name,
            text=text,
            created_by=caller.user,
            process_rule=process_rule,
        )
        return _created(document, new_batch())


def create_by_file(request: HttpRequest, caller: Caller, dataset_id: str) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id, "upload")
    upload = _upload(request)
    assert upload is not None  # noqa: S101 - required above
    name, data = upload
    body = _form_data(request)
    process_rule = object_field(body, "process_rule")
    with transaction.atomic():
        _settle_form(dataset, body)
        document = services.document_create(
            dataset=dataset,
            name=name,
            data=data,
            created_by=caller.user,
            process_rule=process_rule,
            max_bytes=services.MAX_FILE_BYTES,
        )
        return _created(document, new_batch())


def _replace(
    document: Document,
    *,
    name: str | None,
    text: str | None,
    upload: tuple[str, bytes] | None,
    process_rule: dict[str, Any] | None,
) -> HttpResponse:
    """Give the document a new source or rule, drop its chunks and index it again."""
    if document.indexing_status in BUSY:
        raise document_busy()
    _check_rule(process_rule)
    old_file = document.file.name if document.file else None
    if upload is not None:
        file_name, data = upload
        document.data_source_type = Document.Source.UPLOAD_FILE
        document.size = len(data)
        document.sha256 = hashlib.sha256(data).hexdigest()
        document.doc_metadata = {k: v for k, v in document.doc_metadata.items() if k != "text"}
        document.file.save(file_name[:100], ContentFile(data), save=False)
        document.name = (name or file_name)[:255]
    elif text is not None:
        document.data_source_type = Document.Source.TEXT
        document.size = len(text.encode())
        document.sha256 = ""
        document.file.name = ""
        document.doc_metadata = {**document.doc_metadata, "text": text}
    if name:
        document.name = name[:255]
    if process_rule is not None:
        document.process_rule = process_rule
    document.batch = new_batch()
    document.kind = ""
    document.word_count = document.tokens = 0
    replaced = old_file if old_file and document.file.name != old_file else None
    with transaction.atomic():
        document.save()
        Chunk.objects.filter(document=document).delete()
        store.dataset_stats_refresh(dataset_id=document.dataset_id)
        services.document_reindex(document=document)
        if replaced:
            storage = document.file.storage
            transaction.on_commit(lambda: storage.delete(replaced))
    document.indexing_status = Status.WAITING
    return ok({"document": document_json(document), "batch": document.batch})


def update_by_text(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str
) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id, "upload")
    document = access_document(dataset, document_id)
    body = json_body(request)
    text = text_field(body, "text")
    name = text_field(body, "name", max_length=255)
    if text is not None and not text.strip():
        raise InvalidInput("text: must not be empty.")
    require_initialized(dataset)
    return _replace(
        document, name=name, text=text, upload=None, process_rule=object_field(body, "process_rule")
    )


def update_by_file(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str
) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id, "upload")
    document = access_document(dataset, document_id)
    upload = _upload(request, required=False)
    body = _form_data(request)
    require_initialized(dataset)
    return _replace(
        document,
        name=text_field(body, "name", max_length=255),
        text=None,
        upload=upload,
        process_rule=object_field(body, "process_rule"),
    )


def document_list(request: HttpRequest, caller: Caller, dataset_id: str) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id)
    page, limit = page_params(request)
    query = keyword_filter(documents_of(dataset), "name", request).order_by("position", "pk")
    return ok(paginated(query, document_json, page, limit))


def document_detail(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str
) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id)
    return ok(document_json(access_document(dataset, document_id)))


def document_destroy(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str
) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id, "manage")
    services.document_delete(document=access_document(dataset, document_id))
    return no_content()


STATUS_ACTIONS: dict[str, dict[str, bool]] = {
    "enable": {"enabled": True},
    "disable": {"enabled": False},
    "archive": {"archived": True},
    "un_archive": {"archived": False},
}


def document_status(
    request: HttpRequest, caller: Caller, dataset_id: str, action: str
) -> HttpResponse:
    """Enable, disable, archive or un-archive documents: all of them, or none when one of
    the ids is not the dataset's."""
    dataset = access_dataset(caller, dataset_id, "upload")
    ids = json_body(request).get("document_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("document_ids: a non-empty list of document ids is required.")
    documents = [access_document(dataset, document_id) for document_id in dict.fromkeys(ids)]
    change = STATUS_ACTIONS[action]
    with transaction.atomic():
        for document in documents:
            services.document_set_enabled(
                document=document,
                enabled=change.get("enabled", document.enabled),
                archived=change.get("archived"),
            )
    return ok({"result": "success"})


def indexing_status(
    request: HttpRequest, caller: Caller, dataset_id: str, batch: str
) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id)
    embeds = dataset.indexing_technique == Dataset.IndexingTechnique.HIGH_QUALITY
    searchable = Q(chunks__searchable=True)
    done = searchable & Q(chunks__embedding_dim__isnull=False) if embeds else searchable
    documents = (
        Document.objects.filter(dataset=dataset, batch=batch)
        .annotate(total=Count("chunks", filter=searchable), done=Count("chunks", filter=done))
        .order_by("position")
    )
    rows = [indexing_status_json(d, total=d.total, done=d.done) for d in documents]
    if not rows:
        raise NotFound("Documents not found.")
    return ok({"data": rows})
