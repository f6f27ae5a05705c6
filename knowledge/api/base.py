"""The plumbing every Knowledge API endpoint shares: an async view that authenticates the
`dataset-` key, acts as the key's creator, and answers every error in the envelope; input
parsing that names the bad field; and `access_*` lookups that answer the same 404 for a
missing, invisible or foreign object.

Handlers are plain functions. A sync handler runs in one `sync_to_async` batch (its ORM work
and the services it calls); an async one (embedding, retrieval) batches its own ORM work.
"""

from __future__ import annotations

import inspect
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db.models import Count, IntegerField, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from billing import quota
from tenants.api.errors import error_response, weft_response
from tenants.exceptions import Forbidden, InvalidInput, NotFound, WeftError
from tenants.models import ApiKey, Tenant, User
from tenants.permissions import Principal, principal_for_user
from tenants.service_auth import authenticate_service_key

from ..models import Chunk, Dataset, Document
from ..parsing import ParseError, UnsupportedFileType
from ..permissions import can_dataset, visible_datasets

logger = logging.getLogger("weft.api")

MAX_LIMIT = 100


@dataclass(frozen=True)
class Caller:
    """Who a request acts as: the key's creator, or the key alone when it has none."""

    key: ApiKey
    tenant: Tenant
    principal: Principal

    @property
    def user(self) -> User | None:
        return self.principal.user


def caller_for(key: ApiKey) -> Caller:
    """A dataset key acts as the member who created it, with that member's role today."""
    creator = key.created_by
    if creator is not None:
        principal = principal_for_user(creator, key.tenant)
    else:
        principal = Principal(tenant_id=key.tenant_id, role=key.role)
    return Caller(key=key, tenant=key.tenant, principal=principal)


def parse_error_response(exc: ParseError) -> JsonResponse:
    """An upload refused by what it is: Dify's codes for the file's type and size."""
    if isinstance(exc, UnsupportedFileType):
        return error_response("unsupported_file_type", exc.reason, 415)
    if exc.code == "file_too_large":
        return error_response("file_too_large", exc.reason, 413)
    return error_response("invalid_param", f"file: {exc.reason}", 400)


def endpoint(**handlers: Callable[..., Any]) -> Callable[..., Any]:
    """An async view serving these methods (`GET=…, POST=…`), each handler called as
    `handler(request, caller, **url_kwargs)` and returning a response."""

    async def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        handler = handlers.get(request.method or "")
        if handler is None:
            return error_response(
                "method_not_allowed", "The method is not allowed for the requested URL.", 405
            )
        try:
            key = await authenticate_service_key(request, kind=ApiKey.Kind.DATASET)
            await quota.api_request_async(key.tenant)
            if inspect.iscoroutinefunction(handler):
                caller = await sync_to_async(caller_for)(key)
                return await handler(request, caller, **kwargs)
            return await sync_to_async(lambda: handler(request, caller_for(key), **kwargs))()
        except WeftError as exc:
            return weft_response(exc)
        except ParseError as exc:
            return parse_error_response(exc)
        except RequestDataTooBig:
            return error_response(
                "request_too_large",
                f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024}"
                " KB; send large documents with create-by-file.",
                413,
            )
        except (SuspiciousOperation, MultiPartParserError) as exc:
            return error_response("invalid_param", f"The request cannot be read: {exc}", 400)

    return csrf_exempt(view)  # bearer keys, never cookies: no CSRF to forge


def ok(payload: dict[str, Any], status: int = 200) -> JsonResponse:
    return JsonResponse(payload, status=status, json_dumps_params={"ensure_ascii": False})


def no_content() -> HttpResponse:
    return HttpResponse(status=204)


# Input


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object (an empty body is an empty object)."""
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object.")
    return body


def text_field(body: dict[str, Any], name: str, *, max_length: int = 0) -> str | None:
    """An optional string field (None when absent)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name}: must be a string.")
    if max_length and len(value) > max_length:
        raise InvalidInput(f"{name}: at most {max_length} characters.")
    return value


def required_text(body: dict[str, Any], name: str, *, max_length: int = 0) -> str:
    """A string field that must be present and not blank."""
    value = text_field(body, name, max_length=max_length)
    if value is None or not value.strip():
        raise InvalidInput(f"{name}: this field is required.")
    return value


def choice_field(body: dict[str, Any], name: str, choices: list[str]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if value not in choices:
        raise InvalidInput(f"{name}: must be one of {', '.join(choices)}.")
    return value


def object_field(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}: must be an object.")
    return value


def page_params(request: HttpRequest, *, default_limit: int = 20) -> tuple[int, int]:
    """`page` (from 1) and `limit` (1 to 100) from the query string."""
    values = []
    for name, default in (("page", 1), ("limit", default_limit)):
        raw = request.GET.get(name, "")
        try:
            value = int(raw) if raw else default
        except ValueError as exc:
            raise InvalidInput(f"{name}: must be a whole number.") from exc
        if value < 1 or (name == "limit" and value > MAX_LIMIT):
            raise InvalidInput(f"{name}: must be between 1 and {MAX_LIMIT}.")
        values.append(value)
    return values[0], values[1]


def paginated(query: QuerySet, render: Callable[[Any], dict], page: int, limit: int) -> dict:
    total = query.count()
    rows = list(query[(page - 1) * limit : page * limit])
    return {
        "data": [render(row) for row in rows],
        "has_more": page * limit < total,
        "limit": limit,
        "total": total,
        "page": page,
    }


# Access: one "not found" for missing, invisible and foreign objects.


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def with_counts(datasets: QuerySet[Dataset]) -> QuerySet[Dataset]:
    """Datasets with what their JSON shows: model, document and word counts."""
    return datasets.select_related("embedding_model").annotate(
        document_count=Count("documents"),
        total_words=Coalesce(Sum("documents__word_count"), 0, output_field=IntegerField()),
    )


def datasets_for(caller: Caller) -> QuerySet[Dataset]:
    """The datasets the caller sees, with their counts."""
    return with_counts(visible_datasets(caller.principal))


def access_dataset(caller: Caller, dataset_id: str, action: str = "view") -> Dataset:
    """The visible dataset, or 404; 403 when visible but `action` is not allowed."""
    pk = _uuid(dataset_id)
    dataset = datasets_for(caller).filter(pk=pk).first() if pk else None
    if dataset is None:
        raise NotFound("Dataset not found.")
    if action != "view" and not can_dataset(caller.principal, action, dataset):
        raise Forbidden("You do not have permission to do this with this dataset.")
    return dataset


def documents_of(dataset: Dataset) -> QuerySet[Document]:
    return Document.objects.filter(dataset=dataset).annotate(
        total_hits=Coalesce(Sum("chunks__hit_count"), 0, output_field=IntegerField())
    )


def access_document(dataset: Dataset, document_id: str) -> Document:
    pk = _uuid(document_id)
    document = documents_of(dataset).filter(pk=pk).first() if pk else None
    if document is None:
        raise NotFound("Document not found.")
    document.dataset = dataset
    return document


def access_segment(document: Document, segment_id: str) -> Chunk:
    pk = _uuid(segment_id)
    chunk = Chunk.objects.filter(document=document, pk=pk).first() if pk else None
    if chunk is None:
        raise NotFound("Segment not found.")
    return chunk


def top_level(document: Document) -> QuerySet[Chunk]:
    """The document's segments as Dify lists them: plain chunks and parents, not children."""
    return Chunk.objects.filter(document=document, parent__isnull=True)


def keyword_filter(query: QuerySet, field: str, request: HttpRequest) -> QuerySet:
    keyword = request.GET.get("keyword", "").strip()
    return query.filter(Q(**{f"{field}__icontains": keyword})) if keyword else query
