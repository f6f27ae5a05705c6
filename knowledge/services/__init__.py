"""Writes of the knowledge base: datasets, documents and chunks. Every write of the console
and of the Knowledge API goes through these functions.

Each takes keyword arguments, runs in one transaction and checks its input before writing,
raising a typed error (tenants.exceptions) that the API and the console turn into their
answers. The audit row of a write is made by the audit signals, with the actor (console user,
API key, command) the request or command put in context; services that take a `tenant`
refuse another tenant's rows as not found. Indexing runs on Celery, started on commit."""

from .chunks import (
    NewChunk,
    chunk_delete,
    chunk_edit,
    chunk_embedding,
    chunks_add,
    chunks_embedding,
    chunks_require_writable,
)
from .datasets import dataset_create, dataset_delete, dataset_update
from .documents import (
    MAX_FILE_BYTES,
    document_create,
    document_delete,
    document_pause,
    document_reindex,
    document_replace,
    document_resume,
    document_set_enabled,
    documents_set_enabled,
)

__all__ = [
    "MAX_FILE_BYTES",
    "NewChunk",
    "chunk_delete",
    "chunk_edit",
    "chunk_embedding",
    "chunks_add",
    "chunks_embedding",
    "chunks_require_writable",
    "dataset_create",
    "dataset_delete",
    "dataset_update",
    "document_create",
    "document_delete",
    "document_pause",
    "document_reindex",
    "document_replace",
    "document_resume",
    "document_set_enabled",
    "documents_set_enabled",
]
