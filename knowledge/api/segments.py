"""Knowledge API: the segments (chunks) of a document — list, add, show, edit, delete.

Adding or editing text embeds it with the dataset's own model, between two ORM batches, so
the model call never holds a database connection or a transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import Max, Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse

from providers import services as models_runtime
from providers.runtime.tokens import count_tokens
from tenants.exceptions import InvalidInput, WeftError

from .. import services, store
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
from .datasets import require_initialized
from .shapes import segment_json


@dataclass(frozen=True)
class SegmentInput:
    content: str
    answer: str = ""
    keywords: tuple[str, ...] = ()


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
    if document.indexing_status != Document.Status.COMPLETED:
        # The pipeline rewrites every position of a document it indexes: segments added
        # meanwhile would be overwritten or dropped.
        raise WeftError(
            "The document is not indexed yet (or failed); segments can be changed once it "
            "has completed.",
            code="document_indexing",
            status=400,
        )
    require_initialized(dataset)
    return dataset, document


def _live(document: Document) -> bool:
    return (
        document.indexing_status == Document.Status.COMPLETED
        and document.enabled
        and not document.archived
    )


async def _embed(caller: Caller, dataset: Dataset, texts: list[str]) -> list[list[float]] | None:
    """Vectors of the texts by the dataset's model (None for economy datasets)."""
    if dataset.indexing_technique != Dataset.IndexingTechnique.HIGH_QUALITY or not texts:
        return None
    embedded = await models_runtime.embed(
        tenant=caller.tenant, texts=texts, model=dataset.embedding_model
    )
    return [list(v) for v in embedded.vectors]


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
) -> tuple[Dataset, Document, list[SegmentInput]]:
    dataset, document = _writable(caller, dataset_id, document_id)
    items = json_body(request).get("segments")
    if not isinstance(items, list) or not items:
        raise InvalidInput("segments: a non-empty list of segments is required.")
    inputs = []
    for index, item in enumerate(items):
        field = f"segments[{index}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{field}: must be an object.")
        inputs.append(
            SegmentInput(
                content=_text(item.get("content"), f"{field}.content", required=True) or "",
                answer=_text(item.get("answer"), f"{field}.answer") or "",
                keywords=_keywords(item.get("keywords"), f"{field}.keywords"),
            )
        )
    if document.doc_form == Dataset.DocForm.QA and not all(i.answer for i in inputs):
        raise InvalidInput("segments.answer: a question-and-answer document needs answers.")
    return dataset, document, inputs


def _add(
    document: Document, inputs: list[SegmentInput], vectors: list[list[float]] | None
) -> list[dict[str, Any]]:
    with transaction.atomic():
        # One writer at a time picks the next positions of this document.
        Document.objects.select_for_update().filter(pk=document.pk).first()
        last = Chunk.objects.filter(document=document).aggregate(top=Max("position"))["top"]
        start = 0 if last is None else last + 1
        rows = [
            store.ChunkRow(
                position=start + i,
                content=item.content,
                answer=item.answer,
                tokens=count_tokens(item.content),
                embedding=vectors[i] if vectors is not None else None,
                metadata={"source": "api"},
            )
            for i, item in enumerate(inputs)
        ]
        store.chunks_write(
            tenant_id=document.tenant_id,
            dataset_id=document.dataset_id,
            document_id=document.pk,
            rows=rows,
        )
        chunks = list(
            Chunk.objects.filter(document=document, position__gte=start).order_by("position")
        )
        for chunk, item in zip(chunks, inputs, strict=True):
            chunk.keywords = list(item.keywords)
            chunk.live = _live(document)
        Chunk.objects.bulk_update(chunks, ["keywords", "live"])
        store.dataset_stats_refresh(dataset_id=document.dataset_id)
    return [segment_json(chunk) for chunk in chunks]


async def segment_create(
    request: HttpRequest, caller: Caller, dataset_id: str, document_id: str
) -> HttpResponse:
    dataset, document, inputs = await sync_to_async(_add_input)(
        request, caller, dataset_id, document_id
    )
    vectors = await _embed(caller, dataset, [item.content for item in inputs])
    data = await sync_to_async(_add)(document, inputs, vectors)
    return ok({"data": data, "doc_form": document.doc_form})


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
    chunk = access_segment(document, segment_id)
    with transaction.atomic():
        chunk.delete()
        store.dataset_stats_refresh(dataset_id=dataset.pk)
    return no_content()
