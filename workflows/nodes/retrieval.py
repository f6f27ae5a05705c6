"""The knowledge-retrieval node: the query searched in the run's tenant's datasets, the chunks
found given as Dify's `result` items (content, title, metadata with `_source: knowledge`), which
an LLM node takes as its context.

Only datasets of the run's tenant are searched: an id of another tenant's dataset is treated as
one that does not exist (left out, and listed in process_data), never read. In `single` mode
Dify asks a model to choose one dataset; Weft searches the first of the node's datasets, with
that dataset's own retrieval settings. In `multiple` mode every dataset is searched at once with
the node's settings (top_k, threshold, rerank model or weights) over the first dataset's search
method. Manual metadata filters apply; automatic ones (a model writes them) are not made.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from asgiref.sync import sync_to_async

from knowledge.models import Dataset
from knowledge.retrieval import Record, RetrievalSettings, retrieve
from providers.models import ModelKind
from tenants.context import tenant_context
from tenants.exceptions import WeftError
from tenants.models import Tenant

from ..dsl import KnowledgeRetrievalData
from ..dsl.nodes_model import MultipleRetrievalConfig
from ..dsl.selectors import to_text
from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register
from .calls import resolve_model


def tenant_datasets(tenant: Tenant, ids: Sequence[str]) -> tuple[list[Dataset], list[str]]:
    """The tenant's datasets among `ids`, in their order, and the ids that name none of them
    (missing, malformed or another tenant's: the same answer for all three)."""
    wanted: dict[str, uuid.UUID] = {}
    for value in ids:
        try:
            wanted[value] = uuid.UUID(str(value))
        except ValueError:
            continue
    with tenant_context(tenant):
        found = Dataset.objects.in_bulk(list(wanted.values()))
    datasets = [found[wanted[value]] for value in ids if value in wanted and wanted[value] in found]
    missing = [value for value in ids if value not in wanted or wanted[value] not in found]
    return datasets, missing


def result_item(record: Record, position: int, dataset_name: str) -> dict[str, Any]:
    """One retrieved chunk in the shape of Dify's knowledge-retrieval `result` items."""
    chunk, document = record.chunk, record.document
    content = f"question:{chunk.content} \nanswer:{chunk.answer}" if chunk.answer else chunk.content
    return {
        "content": content,
        "title": document.name,
        "metadata": {
            "_source": "knowledge",
            "position": position,
            "dataset_id": str(record.dataset_id),
            "dataset_name": dataset_name,
            "document_id": str(document.pk),
            "document_name": document.name,
            "data_source_type": document.data_source_type,
            "segment_id": str(chunk.pk),
            "retriever_from": "workflow",
            "score": record.score,
            "segment_hit_count": chunk.hit_count,
            "segment_word_count": len(chunk.content) + len(chunk.answer),
            "segment_position": chunk.position + 1,
            "segment_index_node_hash": chunk.content_hash,
            "doc_metadata": document.doc_metadata,
            "child_chunks": [
                {
                    "id": str(hit.chunk.pk),
                    "content": hit.chunk.content,
                    "position": hit.chunk.position + 1,
                    "score": hit.score,
                }
                for hit in record.child_chunks
            ],
        },
    }


@register
class KnowledgeRetrievalExecutor(NodeExecutor):
    """Searches the node's datasets for the query; outputs `result`."""

    types = ("knowledge-retrieval",)
    data: KnowledgeRetrievalData

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        tenant = ctx.run.tenant
        if tenant is None:
            raise NodeFailed("This run has no tenant to search for.", error_type="NoTenant")
        query = to_text(ctx.get(data.query_variable_selector)).strip()
        inputs = {"query": query}
        process_data: dict[str, Any] = {"retrieval_mode": data.retrieval_mode}
        if not query:
            process_data["note"] = "The query is empty: nothing was searched."
            return NodeResult(outputs={"result": []}, inputs=inputs, process_data=process_data)
        datasets, missing = await sync_to_async(tenant_datasets)(tenant, data.dataset_ids)
        if missing:
            process_data["ignored_dataset_ids"] = missing
        if data.retrieval_mode == "single":
            datasets = datasets[:1]
        process_data["datasets"] = [{"id": str(d.pk), "name": d.name} for d in datasets]
        if not datasets:
            return NodeResult(outputs={"result": []}, inputs=inputs, process_data=process_data)
        try:
            settings = await sync_to_async(self._settings)(ctx, tenant, datasets, process_data)
            records = await retrieve(
                tenant=tenant, datasets=datasets, query=query, settings=settings, source="app"
            )
        except WeftError as exc:
            raise NodeFailed(exc.message, error_type=exc.code) from exc
        process_data["retrieval_settings"] = settings.to_dify()
        names = {d.pk: d.name for d in datasets}
        result = [
            result_item(record, position, names[record.dataset_id])
            for position, record in enumerate(records, start=1)
        ]
        return NodeResult(outputs={"result": result}, inputs=inputs, process_data=process_data)

    # --- Settings ------------------------------------------------------------------------

    def _settings(
        self,
        ctx: NodeContext,
        tenant: Tenant,
        datasets: list[Dataset],
        process_data: dict[str, Any],
    ) -> RetrievalSettings:
        """The node's settings in Dify's `retrieval_model` shape, over the first dataset's."""
        data = self.data
        defaults = datasets[0].retrieval_model or {}
        if data.retrieval_mode == "single":
            wanted: dict[str, Any] = {}
        else:
            wanted = self._multiple(tenant, data.multiple_retrieval_config, process_data)
            defaults = {k: defaults[k] for k in ("search_method", "fusion") if k in defaults}
        if data.metadata_filtering_mode == "manual" and data.metadata_filtering_conditions:
            conditions = data.metadata_filtering_conditions
            wanted["metadata_filtering_conditions"] = {
                "logical_operator": conditions.logical_operator or "and",
                "conditions": [
                    {
                        "name": c.name,
                        "comparison_operator": c.comparison_operator,
                        "value": ctx.render(c.value) if isinstance(c.value, str) else c.value,
                    }
                    for c in conditions.conditions or []
                ],
            }
        elif data.metadata_filtering_mode == "automatic":
            process_data["metadata_filtering"] = (
                "Automatic metadata filtering is not done in Weft: no filter was applied."
            )
        return RetrievalSettings.from_dify(wanted, defaults)

    def _multiple(
        self,
        tenant: Tenant,
        config: MultipleRetrievalConfig | None,
        process_data: dict[str, Any],
    ) -> dict[str, Any]:
        config = config or MultipleRetrievalConfig()
        wanted: dict[str, Any] = {
            "top_k": config.top_k,
            "score_threshold_enabled": config.score_threshold is not None,
            "reranking_enable": False,
        }
        if config.score_threshold is not None:
            wanted["score_threshold"] = config.score_threshold
        if not config.reranking_enable:
            return wanted
        if config.reranking_mode == "weighted_score":
            # Weighing semantic against keyword scores is what hybrid search does.
            wanted |= {"search_method": "hybrid_search", "reranking_mode": "weighted_score"}
            if config.weights is not None:
                wanted["weights"] = config.weights.model_dump()
            return wanted
        wanted |= {"reranking_enable": True, "reranking_mode": "reranking_model"}
        named = config.reranking_model
        if named is not None and named.model:
            model, replaced = resolve_model(
                tenant=tenant, kind=ModelKind.RERANK, provider=named.provider, name=named.model
            )
            wanted["reranking_model"] = {"reranking_model_name": model.name}
            if replaced:
                process_data["reranking_model_replaced"] = replaced
        return wanted
