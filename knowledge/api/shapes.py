"""Output shapes of the Knowledge API: Weft's rows in Dify's field names, as plain dicts.

Times are unix seconds, ids strings, and positions 1-based, as Dify's clients expect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..models import Chunk, Dataset, Document

DEFAULT_RETRIEVAL_MODEL: dict[str, Any] = {  # Dify's defaults for a new dataset
    "search_method": "semantic_search",
    "reranking_enable": False,
    "reranking_mode": None,
    "reranking_model": {"reranking_provider_name": "", "reranking_model_name": ""},
    "weights": None,
    "top_k": 2,
    "score_threshold_enabled": False,
    "score_threshold": None,
}


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def _id(value: object) -> str | None:
    return str(value) if value is not None else None


def dataset_json(dataset: Dataset) -> dict[str, Any]:
    """A dataset; `document_count` and `word_count` come annotated by the selector."""
    model = dataset.embedding_model
    return {
        "id": str(dataset.pk),
        "name": dataset.name,
        "description": dataset.description,
        "provider": "vendor",
        "permission": dataset.permission,
        "data_source_type": "upload_file",
        "indexing_technique": dataset.indexing_technique,
        "doc_form": dataset.doc_form,
        "app_count": 0,
        "document_count": getattr(dataset, "document_count", 0) or 0,
        "word_count": getattr(dataset, "total_words", 0) or 0,
        "embedding_model": model.name if model is not None else None,
        "embedding_model_provider": model.provider if model is not None else None,
        "embedding_available": model is not None and model.enabled,
        "retrieval_model_dict": {**DEFAULT_RETRIEVAL_MODEL, **(dataset.retrieval_model or {})},
        "process_rule": dataset.process_rule or None,
        "tags": [],
        "external_knowledge_info": None,
        "external_retrieval_model": None,
        "created_by": _id(dataset.created_by_id),
        "created_at": unix(dataset.created_at),
        "updated_by": None,
        "updated_at": unix(dataset.updated_at),
    }


def display_status(document: Document) -> str:
    """Dify's one-word summary of where a document stands."""
    status = document.indexing_status
    if status == Document.Status.WAITING:
        return "queuing"
    if status == Document.Status.PAUSED:
        return "paused"
    if status == Document.Status.ERROR:
        return "error"
    if status != Document.Status.COMPLETED:
        return "indexing"
    if document.archived:
        return "archived"
    return "available" if document.enabled else "disabled"


def document_json(document: Document) -> dict[str, Any]:
    """A document; `hit_count` comes annotated by the selector when it is known."""
    metadata = [
        {"name": name, "value": value}
        for name, value in (document.doc_metadata or {}).items()
        if name != "text"  # the source of a text document, not metadata
    ]
    return {
        "id": str(document.pk),
        "position": document.position + 1,
        "data_source_type": document.data_source_type,
        "data_source_info": (
            {"upload_file_id": None, "size": document.size, "kind": document.kind or None}
            if document.data_source_type == Document.Source.UPLOAD_FILE
            else None
        ),
        "dataset_process_rule_id": None,
        "dataset_process_rule": document.process_rule or None,
        "name": document.name,
        "created_from": "api",
        "created_by": _id(document.created_by_id),
        "created_at": unix(document.created_at),
        "updated_at": unix(document.updated_at),
        "tokens": document.tokens,
        "indexing_status": document.indexing_status,
        "error": document.error or None,
        "enabled": document.enabled,
        "disabled_at": None,
        "disabled_by": None,
        "archived": document.archived,
        "display_status": display_status(document),
        "word_count": document.word_count,
        "hit_count": getattr(document, "total_hits", 0) or 0,
        "doc_form": document.doc_form,
        "doc_metadata": metadata,
        "batch": document.batch,
        "completed_at": unix(document.completed_at),
    }


def indexing_status_json(document: Document, *, total: int, done: int) -> dict[str, Any]:
    """One document's progress; Weft does not keep each stage's end time, so those are null."""
    paused = document.indexing_status == Document.Status.PAUSED
    return {
        "id": str(document.pk),
        "indexing_status": document.indexing_status,
        "processing_started_at": None,
        "parsing_completed_at": None,
        "cleaning_completed_at": None,
        "splitting_completed_at": None,
        "completed_at": unix(document.completed_at),
        "paused_at": unix(document.updated_at) if paused else None,
        "error": document.error or None,
        "stopped_at": None,
        "completed_segments": done,
        "total_segments": total,
    }


def child_chunk_json(child: Chunk, index: int) -> dict[str, Any]:
    return {
        "id": str(child.pk),
        "segment_id": _id(child.parent_id),
        "content": child.content,
        "position": index + 1,
        "word_count": len(child.content),
        "type": "automatic",
        "created_at": unix(child.created_at),
        "updated_at": unix(child.updated_at),
    }


def segment_json(chunk: Chunk, children: list[Chunk] | None = None) -> dict[str, Any]:
    """A segment (Weft's chunk); a parent-child parent carries its children."""
    return {
        "id": str(chunk.pk),
        "position": chunk.position + 1,
        "document_id": str(chunk.document_id),
        "content": chunk.content,
        "answer": chunk.answer or None,
        "word_count": len(chunk.content) + len(chunk.answer),
        "tokens": chunk.tokens,
        "keywords": list(chunk.keywords or []),
        "index_node_id": str(chunk.pk),
        "index_node_hash": chunk.content_hash,
        "hit_count": chunk.hit_count,
        "enabled": chunk.enabled,
        "disabled_at": None,
        "disabled_by": None,
        "status": "completed",
        "created_by": None,
        "created_at": unix(chunk.created_at),
        "updated_at": unix(chunk.updated_at),
        "indexing_at": unix(chunk.created_at),
        "completed_at": unix(chunk.updated_at),
        "error": None,
        "stopped_at": None,
        "child_chunks": [child_chunk_json(c, i) for i, c in enumerate(children or [])],
    }
