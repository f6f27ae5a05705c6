"""Retrieval from an app's knowledge (`dataset_configs`): the chunks found for the query, as
the context of the prompt and as Dify's `retriever_resources`.

The settings follow the knowledge-retrieval node's: in `multiple` mode every dataset is searched
at once with the app's top_k, threshold and rerank settings, over the first dataset's search
method; in `single` mode the first dataset is searched with its own settings. Datasets of other
tenants, and ids that name none, are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from knowledge.models import Dataset
from knowledge.retrieval import RetrievalSettings, retrieve
from providers.models import ModelKind
from tenants.models import Tenant
from workflows.nodes.calls import resolve_model
from workflows.nodes.prompts import context_text
from workflows.nodes.retrieval import result_item, tenant_datasets

from ..config import DatasetConfigs

# The fields of a result item's metadata a retriever resource carries, besides `content`.
RESOURCE_FIELDS = (
    "position",
    "dataset_id",
    "dataset_name",
    "document_id",
    "document_name",
    "data_source_type",
    "segment_id",
    "retriever_from",
    "score",
    "segment_hit_count",
    "segment_word_count",
    "segment_position",
    "segment_index_node_hash",
)
_RENAMED = {
    "segment_hit_count": "hit_count",
    "segment_word_count": "word_count",
    "segment_index_node_hash": "index_node_hash",
}


@dataclass
class Found:
    """What retrieval gave a turn: the prompt's context and the resources to show."""

    context: str = ""
    resources: list[dict[str, Any]] = field(default_factory=list)


def resource(item: dict[str, Any], retriever_from: str) -> dict[str, Any]:
    """A knowledge-retrieval result item as one of Dify's `retriever_resources`."""
    metadata = item.get("metadata") or {}
    shaped = {_RENAMED.get(k, k): metadata.get(k) for k in RESOURCE_FIELDS if k in metadata}
    shaped["retriever_from"] = retriever_from
    shaped["content"] = item.get("content", "")
    return shaped


def _settings(
    tenant: Tenant, configs: DatasetConfigs, datasets: list[Dataset]
) -> RetrievalSettings:
    defaults = datasets[0].retrieval_model or {}
    if configs.retrieval_model == "single":
        return RetrievalSettings.from_dify({}, defaults)
    wanted: dict[str, Any] = {
        "top_k": configs.top_k,
        "score_threshold_enabled": configs.score_threshold_enabled
        and configs.score_threshold is not None,
        "reranking_enable": False,
    }
    if configs.score_threshold is not None:
        wanted["score_threshold"] = configs.score_threshold
    defaults = {k: defaults[k] for k in ("search_method", "fusion") if k in defaults}
    if configs.reranking_enable:
        if configs.reranking_mode == "weighted_score":
            # Weighing semantic against keyword scores is what hybrid search does.
            wanted |= {"search_method": "hybrid_search", "reranking_mode": "weighted_score"}
            if configs.weights:
                wanted["weights"] = configs.weights
        else:
            wanted |= {"reranking_enable": True, "reranking_mode": "reranking_model"}
            named = configs.reranking_model or {}
            name = str(named.get("reranking_model_name") or "")
            if name:
                model, _ = resolve_model(
                    tenant=tenant,
                    kind=ModelKind.RERANK,
                    provider=str(named.get("reranking_provider_name") or ""),
                    name=name,
                )
                wanted["reranking_model"] = {"reranking_model_name": model.name}
    return RetrievalSettings.from_dify(wanted, defaults)


def _plan(
    tenant: Tenant, configs: DatasetConfigs
) -> tuple[list[Dataset], RetrievalSettings | None]:
    datasets, _missing = tenant_datasets(tenant, configs.dataset_ids())
    if configs.retrieval_model == "single":
        datasets = datasets[:1]
    if not datasets:
        return [], None
    return datasets, _settings(tenant, configs, datasets)


async def retrieve_for(
    *, tenant: Tenant, configs: DatasetConfigs, query: str, retriever_from: str
) -> Found:
    """Search the app's datasets for the query (nothing when it has none or the query is
    blank)."""
    query = query.strip()
    if not query or not configs.dataset_ids():
        return Found()
    datasets, settings = await sync_to_async(_plan)(tenant, configs)
    if settings is None:
        return Found()
    records = await retrieve(
        tenant=tenant, datasets=datasets, query=query, settings=settings, source="app"
    )
    names = {d.pk: d.name for d in datasets}
    items = [
        result_item(record, position, names[record.dataset_id])
        for position, record in enumerate(records, start=1)
    ]
    return Found(
        context=context_text(items), resources=[resource(i, retriever_from) for i in items]
    )
