"""Knowledge API: the segments (chunks) of a document — list, add, show, edit, delete.

Adding or editing text embeds it with the dataset's own model, between two ORM batches, so
the model call never holds a database connection or a transaction."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse

from tenants.exceptions import InvalidInput

from .. import services
from ..models import Chunk, Dataset, Document
from .base import (
    Caller,
    access_dataset,
    access_document,
    access_segment,
    json_body,
    keyword_filter,
    no_content,
    ok,
    page_params,
    paginated,
    top_level,
)
from .shapes import segment_json


def _keywords(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{field}: must be a list of strings.")
    return tuple(k.strip() for k in value if k.strip())


def _text(value: Any, field: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidInput(f"{field}: this field is required.")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInput(
            f"{field}: must be a non-empty string." if required else f"{field}: must be a string."
        )
    return value


def _writable(caller: Caller, dataset_id: str, document_id: str) -> tuple[Dataset, Document]:
    """The dataset and document, when the caller may change the document's segments now."""
    dataset = access_dataset(caller, dataset_id, "upload")
    document = access_document(dataset, document_id)
    services.chunks_require_writable(document=document)
    return dataset, document


def _children(query: QuerySet[Chunk]) -> QuerySet[Chunk]:
    return query.prefetch_related(
        Prefetch("children", queryset=Chunk.objects.order_by("position"), to_attr="kids")
    )


def _shown(chunk: Chunk) -> dict[str, Any]:
    return segment_json(chunk, getattr(chunk, "kids", None))


# List and add


def segment_list(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str
) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id)
    document = access_document(dataset, document_id)
    page, limit = page_params(request)
    query = keyword_filter(top_level(document), "content", request)
    status = request.GET.get("status", "")
    if status and status != "completed":  # every Weft segment is written complete
        query = query.none()
    result = paginated(_children(query.order_by("position")), _shown, page, limit)
    return ok({**result, "doc_form": document.doc_form})


def _add_input(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str
) -> tuple[Document, list[services.NewChunk]]:
    _, document = _writable(caller, dataset_id, document_id)
    items = json_body(request).get("segments")
    if not isinstance(items, list) or not items:
        raise InvalidInput("segments: a non-empty list of segments is required.")
    chunks = []
    for index, item in enumerate(items):
        field = f"segments[{index}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{field}: must be an object.")
        chunks.append(
            services.NewChunk(
                content=_text(item.get("content"), f"{field}.content", required=True) or "",
                answer=_text(item.get("answer"), f"{field}.answer") or "",
                keywords=_keywords(item.get("keywords"), f"{field}.keywords"),
            )
        )
    return document, chunks


async def segment_create(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str
) -> HttpResponse:
    document, chunks = await sync_to_async(_add_input)(request, caller, dataset_id, document_id)
    vectors = await services.chunks_embedding(
        tenant=caller.tenant, document=document, chunks=chunks
    )
    added = await sync_to_async(services.chunks_add)(
        tenant=caller.tenant, document=document, chunks=chunks, vectors=vectors, source="api"
    )
    return ok({"data": [segment_json(chunk) for chunk in added], "doc_form": document.doc_form})


# One segment


def segment_detail(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str, segment_id: str
) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id)
    document = access_document(dataset, document_id)
    chunk = access_segment(document, segment_id)
    chunk = _children(Chunk.objects.filter(pk=chunk.pk)).get()
    return ok({"data": _shown(chunk), "doc_form": document.doc_form})


def _edit_input(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str, segment_id: str
) -> tuple[Dataset, Document, Chunk, str, str, tuple[str, ...] | None, bool | None]:
    dataset, document = _writable(caller, dataset_id, document_id)
    chunk = access_segment(document, segment_id)
    body = json_body(request).get("segment")
    if not isinstance(body, dict):
        raise InvalidInput("segment: an object is required.")
    content = _text(body.get("content"), "segment.content")
    if content is not None and not content.strip():
        raise InvalidInput("segment.content: must not be empty.")
    answer = _text(body.get("answer"), "segment.answer")
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidInput("segment.enabled: must be true or false.")
    keywords = _keywords(body.get("keywords"), "segment.keywords") if "keywords" in body else None
    new_content = content if content is not None else chunk.content
    new_answer = answer if answer is not None else chunk.answer
    return dataset, document, chunk, new_content, new_answer, keywords, enabled


def _saved_shape(chunk_id) -> dict[str, Any]:
    return _shown(_children(Chunk.objects.filter(pk=chunk_id)).get())


async def segment_update(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str, segment_id: str
) -> HttpResponse:
    dataset, document, chunk, content, answer, keywords, enabled = await sync_to_async(_edit_input)(
        request, caller, dataset_id, document_id, segment_id
    )
    vector = await services.chunk_embedding(
        tenant=caller.tenant, dataset=dataset, chunk=chunk, content=content
    )
    saved = await sync_to_async(services.chunk_edit)(
        chunk=chunk,
        content=content,
        answer=answer,
        keywords=keywords,
        enabled=enabled,
        vector=vector,
    )
    data = await sync_to_async(_saved_shape)(saved.pk)
    return ok({"data": data, "doc_form": document.doc_form})


def segment_destroy(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str, segment_id: str
) -> HttpResponse:
    dataset = access_dataset(caller, dataset_id, "upload")
    document = access_document(dataset, document_id)
    services.chunk_delete(tenant=caller.tenant, chunk=access_segment(document, segment_id))
    return no_content()
