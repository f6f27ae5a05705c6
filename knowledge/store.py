"""Writing chunks: one statement per batch, idempotent by (document, position), with the
terms for full-text search computed by PostgreSQL from Weft's own text analysis."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from .search import analyze

BATCH = 500


@dataclass(frozen=True)
class ChunkRow:
    position: int
    content: str
    tokens: int = 0
    answer: str = ""
    parent_position: int | None = None
    searchable: bool = True
    embedding: Sequence[float] | None = None
    metadata: dict = field(default_factory=dict)


def content_hash(content: str, answer: str = "") -> str:
    return hashlib.sha256(f"{content}\x00{answer}".encode()).hexdigest()


def chunks_write(
    *, tenant_id: uuid.UUID, dataset_id: uuid.UUID, document_id: uuid.UUID, rows: Sequence[ChunkRow]
) -> None:
    """Insert or replace the document's chunks at these positions (a re-run of the same
    document rewrites the same rows, never duplicates them), then refresh the dataset's
    statistics. Parents must come before their children in `rows`."""
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            values: list[str] = []
            params: list[Any] = []
            for row in batch:
                analyzed = analyze(f"{row.content}\n{row.answer}" if row.answer else row.content)
                vector = (
                    "[" + ",".join(repr(float(x)) for x in row.embedding) + "]"
                    if row.embedding is not None
                    else None
                )
                values.append(
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::vector, %s, "
                    "to_tsvector('simple', %s), %s, now(), now(), true, false, 0, '[]'::jsonb, %s)"
                )
                params += [
                    uuid.uuid4(),
                    tenant_id,
                    dataset_id,
                    document_id,
                    row.position,
                    row.searchable,
                    row.content,
                    row.answer,
                    content_hash(row.content, row.answer),
                    row.tokens,
                    vector,
                    len(row.embedding) if row.embedding is not None else None,
                    " ".join(analyzed),
                    len(analyzed),
                    json.dumps(row.metadata),
                ]
            cursor.execute(
                f"""
                INSERT INTO knowledge_chunk (
                    id, tenant_id, dataset_id, document_id, position, searchable, content,
                    answer, content_hash, tokens, embedding, embedding_dim, terms, term_count,
                    created_at, updated_at, enabled, live, hit_count, keywords, metadata
                ) VALUES {", ".join(values)}
                ON CONFLICT (document_id, position) DO UPDATE SET
                    searchable = excluded.searchable, content = excluded.content,
                    answer = excluded.answer, content_hash = excluded.content_hash,
                    tokens = excluded.tokens, embedding = excluded.embedding,
                    embedding_dim = excluded.embedding_dim, terms = excluded.terms,
                    term_count = excluded.term_count, metadata = excluded.metadata,
                    updated_at = now()
                """,  # noqa: S608 - the formatted part is placeholders only
                params,
            )
        parents = [
            (row.position, row.parent_position) for row in rows if row.parent_position is not None
        ]
        if parents:
            cursor.execute(
                """
                UPDATE knowledge_chunk child SET parent_id = parent.id
                FROM unnest(%s::int[], %s::int[]) AS link(child_position, parent_position)
                JOIN knowledge_chunk parent
                  ON parent.document_id = %s AND parent.position = link.parent_position
                WHERE child.document_id = %s AND child.position = link.child_position
                """,
                [[c for c, _ in parents], [p for _, p in parents], document_id, document_id],
            )
        dataset_stats_refresh(dataset_id=dataset_id)


def chunks_delete_after(*, document_id: uuid.UUID, dataset_id: uuid.UUID, position: int) -> None:
    """Drop the document's chunks past `position` (a re-split that made fewer chunks)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM knowledge_chunk WHERE document_id = %s AND position > %s",
            [document_id, position],
        )
        dataset_stats_refresh(dataset_id=dataset_id)


def dataset_stats_refresh(*, dataset_id: uuid.UUID) -> None:
    """Recount the searchable chunks and their terms, which BM25 normalises lengths with."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE knowledge_dataset d SET chunk_count = s.n, term_count = s.terms
            FROM (SELECT count(*) AS n, coalesce(sum(term_count), 0) AS terms
                  FROM knowledge_chunk
                  WHERE dataset_id = %s AND searchable AND enabled AND live) s
            WHERE d.id = %s
            """,
            [dataset_id, dataset_id],
        )


def document_set_live(*, document_id: uuid.UUID, dataset_id: uuid.UUID, live: bool) -> None:
    """Make the document's chunks searchable (completed, enabled, not archived) or not."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_chunk SET live = %s WHERE document_id = %s AND live <> %s",
            [live, document_id, live],
        )
        dataset_stats_refresh(dataset_id=dataset_id)
