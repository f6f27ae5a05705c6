"""Writes of datasets: create, update, delete."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from providers.models import Model, ModelKind
from providers.selectors import default_model
from tenants.context import tenant_context
from tenants.exceptions import Conflict, InvalidInput, WeftError
from tenants.models import Tenant, User

from ..models import Chunk, Dataset, Document
from .checks import (
    BUSY,
    check_choice,
    check_retrieval,
    check_rule,
    check_tenant,
    require_initialized,
)
from .documents import queue_indexing

NAME_LENGTH = 255  # Dataset.name's max_length


def _check_embedding(model: Model) -> None:
    if model.kind != ModelKind.EMBEDDING:
        raise InvalidInput(f"embedding_model: {model} is not an embedding model.")


def _embedding_model(tenant: Tenant, model: Model | None) -> Model:
    if model is None:
        with tenant_context(tenant):
            return default_model(ModelKind.EMBEDDING)
    _check_embedding(model)
    return model


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("name: a dataset needs a name.")
    if len(name) > NAME_LENGTH:
        raise InvalidInput(f"name: at most {NAME_LENGTH} characters.")
    return name


def _taken(name: str) -> Conflict:
    return Conflict(f"A dataset named “{name}” already exists.")


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
    name = _clean_name(name)
    check_rule(process_rule)
    check_retrieval(retrieval_model)
    model = _embedding_model(tenant, embedding_model)
    with transaction.atomic(), tenant_context(tenant):
        if Dataset.objects.filter(name=name).exists():
            raise _taken(name)
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
            raise _taken(name) from exc
    return dataset


def dataset_update(
    *,
    tenant: Tenant,
    dataset: Dataset,
    name: str | None = None,
    description: str | None = None,
    permission: str | None = None,
    indexing_technique: str | None = None,
    embedding_model: Model | None = None,
    retrieval_model: dict[str, Any] | None = None,
    process_rule: dict[str, Any] | None = None,
) -> Dataset:
    """Change a dataset's settings (None leaves one as it is).

    The embedding model can change only while the dataset has no documents: its chunks'
    vectors would no longer compare with the queries'. Switching to high-quality indexing
    indexes the completed documents again, so that their chunks get the vectors semantic
    search needs (the pipeline embeds only what is missing)."""
    if name is not None:
        name = _clean_name(name)
    check_choice("permission", permission, Dataset.Permission.values)
    check_choice("indexing_technique", indexing_technique, Dataset.IndexingTechnique.values)
    check_rule(process_rule)
    check_retrieval(retrieval_model)
    if embedding_model is not None:
        _check_embedding(embedding_model)
    check_tenant(dataset, tenant)
    wanted: dict[str, Any] = {
        "name": name,
        "description": description,
        "permission": permission,
        "indexing_technique": indexing_technique,
        "retrieval_model": retrieval_model,
        "process_rule": process_rule,
    }
    try:
        with transaction.atomic(), tenant_context(tenant):
            # Locked, and read again under the audit actor, so the trail gets the old values.
            current = Dataset.objects.select_for_update().get(pk=dataset.pk)
            changes = {
                field: value
                for field, value in wanted.items()
                if value is not None and value != getattr(current, field)
            }
            if embedding_model is not None and embedding_model.pk != current.embedding_model_id:
                if Document.objects.filter(dataset=current).exists():
                    raise InvalidInput(
                        "embedding_model: cannot change once the dataset has documents; "
                        "create a new dataset instead."
                    )
                changes.update(
                    embedding_model=embedding_model,
                    embedding_dimensions=embedding_model.dimensions,
                )
            if not changes:
                return current
            if "name" in changes and Dataset.objects.filter(name=changes["name"]).exists():
                raise _taken(changes["name"])
            for field, value in changes.items():
                setattr(current, field, value)
            if "indexing_technique" in changes:
                require_initialized(current)
            current.save(update_fields=[*changes, "updated_at"])
            if changes.get("indexing_technique") == Dataset.IndexingTechnique.HIGH_QUALITY:
                _embed_existing(current)
    except IntegrityError as exc:
        raise _taken(name or dataset.name) from exc
    return current


def _embed_existing(dataset: Dataset) -> None:
    """Index the dataset's completed documents again, now with vectors. A run under way
    read the old technique when it started and would finish without them: refused."""
    documents = list(Document.objects.select_for_update().filter(dataset=dataset))
    if any(document.indexing_status in BUSY for document in documents):
        raise WeftError(
            "Documents of the dataset are being indexed; change the indexing technique "
            "when they have finished.",
            code="document_indexing",
            status=400,
        )
    for document in documents:
        if document.indexing_status == Document.Status.COMPLETED:
            queue_indexing(document)


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
