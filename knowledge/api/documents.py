"""Knowledge API: documents of a dataset — create and update by text or file, list, show,
delete, enable/disable/archive, and the indexing status of a batch."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse

from tenants.exceptions import InvalidInput, NotFound, WeftError

from .. import services
from ..models import Dataset, Document
from ..parsing import EmptyFile, ParseError, UnsupportedFileType, sniff
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
from .shapes import document_json, indexing_status_json


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


def _form(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The indexing technique and form the dataset's first document may choose for it."""
    return (
        choice_field(body, "indexing_technique", Dataset.IndexingTechnique.values),
        choice_field(body, "doc_form", Dataset.DocForm.values),
    )


def _with_batch(document: Document) -> HttpResponse:
    return ok({"document": document_json(document), "batch": document.batch})


def create_by_text(request: HttpRequest, caller: Caller, dataset_id: str) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id, "upload")
    body = json_body(request)
    name = required_text(body, "name", max_length=255)
    text = required_text(body, "text")
    technique, doc_form = _form(body)
    return _with_batch(
        services.document_create(
            dataset=dataset,
            name=name,
            text=text,
            created_by=caller.user,
            process_rule=object_field(body, "process_rule"),
            indexing_technique=technique,
            doc_form=doc_form,
        )
    )


def create_by_file(request: HttpRequest, caller: Caller, dataset_id: str) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id, "upload")
    upload = _upload(request)
    assert upload is not None  # noqa: S101 - required above
    name, data = upload
    body = _form_data(request)
    technique, doc_form = _form(body)
    return _with_batch(
        services.document_create(
            dataset=dataset,
            name=name,
            data=data,
            created_by=caller.user,
            process_rule=object_field(body, "process_rule"),
            indexing_technique=technique,
            doc_form=doc_form,
        )
    )


def update_by_text(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str
) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id, "upload")
    document = access_document(dataset, document_id)
    body = json_body(request)
    return _with_batch(
        services.document_replace(
            tenant=caller.tenant,
            document=document,
            name=text_field(body, "name", max_length=255),
            text=text_field(body, "text"),
            process_rule=object_field(body, "process_rule"),
        )
    )


def update_by_file(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str
) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id, "upload")
    document = access_document(dataset, document_id)
    upload = _upload(request, required=False)
    file_name, data = upload if upload is not None else ("upload", None)
    body = _form_data(request)
    return _with_batch(
        services.document_replace(
            tenant=caller.tenant,
            document=document,
            name=text_field(body, "name", max_length=255),
            data=data,
            file_name=file_name,
            process_rule=object_field(body, "process_rule"),
        )
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
    services.documents_set_enabled(
        tenant=caller.tenant, documents=documents, **STATUS_ACTIONS[action]
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
