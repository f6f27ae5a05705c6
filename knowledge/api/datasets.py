"""Knowledge API: datasets (`/v1/datasets`, `/v1/datasets/{id}`) and retrieval."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from providers.models import Model, ModelKind
from tenants.exceptions import Conflict, Forbidden, InvalidInput
from tenants.permissions import allowed

from .. import services
from ..models import Dataset
from .base import (
    Caller,
    access_dataset,
    choice_field,
    datasets_for,
    json_body,
    keyword_filter,
    no_content,
    object_field,
    ok,
    page_params,
    paginated,
    required_text,
    text_field,
    with_counts,
)
from .shapes import dataset_json, segment_json

if TYPE_CHECKING:
    from ..retrieval import Record

Technique = Dataset.IndexingTechnique


def duplicate_name(name: str) -> Conflict:
    return Conflict(f"The dataset name “{name}” already exists.", code="dataset_name_duplicate")


def embedding_model_named(body: dict[str, Any]) -> Model | None:
    """The embedding model the tenant can use by this name (and provider, given as Dify's
    `langgenius/openai/openai` or plainly)."""
    name = text_field(body, "embedding_model")
    if not name:
        return None
    models = Model.objects.filter(kind=ModelKind.EMBEDDING, enabled=True, name=name)
    provider = text_field(body, "embedding_model_provider")
    if provider:
        models = models.filter(provider=provider.rsplit("/", 1)[-1])
    model = models.order_by("tenant_id").first()  # the tenant's own before the catalog's
    if model is None:
        raise InvalidInput(f"embedding_model: no embedding model named “{name}” is available.")
    return model


def _shown(dataset: Dataset) -> dict[str, Any]:
    # Re-read with counts but not through visibility: a key with no creator may make a
    # dataset it cannot list (only_me with nobody behind it) and must still see the answer.
    return dataset_json(with_counts(Dataset.objects.filter(pk=dataset.pk)).get())


def dataset_list(request: HttpRequest, caller: Caller) -> HttpResponse:
    page, limit = page_params(request)
    query = keyword_filter(datasets_for(caller), "name", request).order_by("-created_at", "pk")
    return ok(paginated(query, dataset_json, page, limit))


def dataset_create(request: HttpRequest, caller: Caller) -> HttpResponse:
    if not allowed(caller.principal, "dataset", "create"):
        raise Forbidden("You do not have permission to create datasets.")
    body = json_body(request)
    name = required_text(body, "name", max_length=255).strip()
    try:
        dataset = services.dataset_create(
            tenant=caller.tenant,
            name=name,
            description=text_field(body, "description") or "",
            created_by=caller.user,
            indexing_technique=choice_field(body, "indexing_technique", Technique.values)
            or Technique.HIGH_QUALITY,
            doc_form=choice_field(body, "doc_form", Dataset.DocForm.values) or Dataset.DocForm.TEXT,
            permission=choice_field(body, "permission", Dataset.Permission.values)
            or Dataset.Permission.ONLY_ME,
            embedding_model=embedding_model_named(body),
            process_rule=object_field(body, "process_rule"),
            retrieval_model=object_field(body, "retrieval_model"),
        )
    except Conflict as exc:
        raise duplicate_name(name) from exc
    return ok(_shown(dataset))


def dataset_detail(request: HttpRequest, caller: Caller, dataset_id: str) -> HttpResponse:
    return ok(dataset_json(access_dataset(caller, dataset_id)))


def dataset_update(request: HttpRequest, caller: Caller, dataset_id: str) -> HttpResponse:
    """Change a dataset's settings (services.dataset_update says which may change when)."""
    dataset = access_dataset(caller, dataset_id, "manage")
    body = json_body(request)
    name = required_text(body, "name", max_length=255).strip() if "name" in body else None
    try:
        updated = services.dataset_update(
            tenant=caller.tenant,
            dataset=dataset,
            name=name,
            description=(text_field(body, "description") or "") if "description" in body else None,
            permission=choice_field(body, "permission", Dataset.Permission.values),
            indexing_technique=choice_field(body, "indexing_technique", Technique.values),
            embedding_model=embedding_model_named(body),
            retrieval_model=object_field(body, "retrieval_model"),
            process_rule=object_field(body, "process_rule"),
        )
    except Conflict as exc:
        raise duplicate_name(name or dataset.name) from exc
    return ok(_shown(updated))


def dataset_destroy(request: HttpRequest, caller: Caller, dataset_id: str) -> HttpResponse:
    services.dataset_delete(dataset=access_dataset(caller, dataset_id, "manage"))
    return no_content()


# Retrieval


def _retrieval_input(request: HttpRequest, caller: Caller, dataset_id: str):
    from ..retrieval import RetrievalSettings

    dataset = access_dataset(caller, dataset_id)
    body = json_body(request)
    query = required_text(body, "query")
    settings = RetrievalSettings.from_dify(
        object_field(body, "retrieval_model"), defaults=dataset.retrieval_model or {}
    )
    return dataset, query, settings


def record_json(record: Record) -> dict[str, Any]:
    """One retrieval result in Dify's `records[]` shape."""
    document = record.document
    segment = segment_json(record.chunk)
    segment.pop("child_chunks")
    segment["document"] = {
        "id": str(document.pk),
        "data_source_type": document.data_source_type,
        "name": document.name,
    }
    return {
        "segment": segment,
        "child_chunks": [
            {
                "id": str(hit.chunk.pk),
                "content": hit.chunk.content,
                "position": hit.chunk.position + 1,
                "score": hit.score,
            }
            for hit in record.child_chunks
        ],
        "score": record.score,
        "scores": record.scores,
        "tsne_position": None,
    }


async def dataset_retrieve(request: HttpRequest, caller: Caller, dataset_id: str) -> HttpResponse:
    """Hit testing over one dataset (`records` in Dify's shape, best first)."""
    from ..retrieval import retrieve

    dataset, query, settings = await sync_to_async(_retrieval_input)(request, caller, dataset_id)
    records = await retrieve(
        tenant=caller.tenant,
        datasets=[dataset],
        query=query,
        settings=settings,
        source="api",
        user=caller.user,
    )
    return ok({"query": {"content": query}, "records": [record_json(r) for r in records]})
