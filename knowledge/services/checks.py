"""Rules the knowledge services share: input that can be refused before anything is written,
and the state a dataset or document must be in for a write."""

from __future__ import annotations

from typing import Any

from django.db import models

from tenants.exceptions import InvalidInput, NotFound, WeftError
from tenants.models import Tenant

from ..models import Dataset, Document
from ..retrieval import RetrievalSettings
from ..splitting import SplitRule, SplitRuleError

Status = Document.Status
# The pipeline is running on the document: a write now would race with it.
BUSY = (Status.PARSING, Status.CLEANING, Status.SPLITTING, Status.INDEXING)


def check_tenant(obj: models.Model, tenant: Tenant) -> None:
    """Another tenant's row answers the same "not found" as a missing one."""
    if getattr(obj, "tenant_id", None) != tenant.pk:
        raise NotFound(f"{type(obj).__name__} not found.")


def check_rule(process_rule: dict[str, Any] | None) -> None:
    try:
        SplitRule.from_process_rule(process_rule or {})
    except SplitRuleError as exc:
        raise InvalidInput(f"process_rule: {exc}") from exc


def check_retrieval(retrieval_model: dict[str, Any] | None) -> None:
    """A dataset's default retrieval settings are read by every later retrieval: a bad one
    stored now would fail each of them instead of this write."""
    if retrieval_model is not None:
        RetrievalSettings.from_dify(retrieval_model)


def check_choice(field: str, value: str | None, choices: list[str]) -> None:
    if value is not None and value not in choices:
        raise InvalidInput(f"{field}: must be one of {', '.join(choices)}.")


def require_initialized(dataset: Dataset) -> None:
    """High-quality indexing needs the dataset's embedding model."""
    if (
        dataset.indexing_technique == Dataset.IndexingTechnique.HIGH_QUALITY
        and dataset.embedding_model_id is None
    ):
        raise WeftError(
            "The dataset has no embedding model: choose one, or use economy indexing.",
            code="dataset_not_initialized",
            status=400,
        )


def document_busy() -> WeftError:
    return WeftError(
        "The document is being indexed; try again when it has finished.",
        code="document_indexing",
        status=400,
    )
