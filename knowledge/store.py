"""Writing chunks: a binary COPY into a temporary table, then one statement that inserts or
replaces them, idempotent by (document, position), with the terms for full-text search
computed by PostgreSQL from Weft's own text analysis. The rows' text is analysed and their
vectors packed here, in Python; nothing is formatted into SQL.

What full-text search reads besides the chunks (postings, term statistics, the dataset's chunk
and term counts) is kept by triggers on knowledge_chunk (migration 0005), in the same
transaction as every write here or anywhere else: nothing needs refreshing afterwards.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.db import connection, transaction

from .search import analyze

_INT = struct.Struct(">i")
_VECTOR_HEAD = struct.Struct(">hh")
_FIELD_COUNT = struct.Struct(">h")
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_JSONB_VERSION = b"\x01"

# Rows are written in a temporary table first: COPY moves them without building a statement
# per row, and the upsert into knowledge_chunk is then a single INSERT … SELECT.
_LOAD_COLUMNS = (
    "id uuid, position integer, searchable boolean, content text, answer text, content_hash text, "
    "tokens integer, embedding vector, terms text, term_count integer, metadata jsonb, "
    "parent_position integer"
)
_LOAD_NAMES = (
    "id, position, searchable, content, answer, content_hash, tokens, embedding, terms, "
    "term_count, metadata, parent_position"
)
# Moves the loaded rows (`which` of them) into knowledge_chunk: the temporary table is emptied
# by the statement that reads it, so a caller writing twice in one transaction never sees its
# first rows again.
_UPSERT = f"""
    WITH loaded AS (DELETE FROM knowledge_chunk_load {{which}} RETURNING {_LOAD_NAMES})
    INSERT INTO knowledge_chunk (
        id, tenant_id, dataset_id, document_id, parent_id, position, searchable, content,
        answer, content_hash, tokens, embedding, embedding_dim, terms, term_count,
        created_at, updated_at, enabled, live, hit_count, keywords, metadata
    )
    SELECT id, %(tenant)s, %(dataset)s, %(document)s,
           (SELECT parent.id FROM knowledge_chunk parent
            WHERE parent.document_id = %(document)s AND parent.position = loaded.parent_position),
           position, searchable, content, answer, content_hash, tokens, embedding,
           vector_dims(embedding), to_tsvector('simple', terms), term_count, now(), now(),
           true, false, 0, '[]'::jsonb, metadata
    FROM loaded
    ORDER BY position
    ON CONFLICT (document_id, position) DO UPDATE SET
        parent_id = coalesce(excluded.parent_id, knowledge_chunk.parent_id),
        searchable = excluded.searchable, content = excluded.content,
        answer = excluded.answer, content_hash = excluded.content_hash,
        tokens = excluded.tokens, embedding = excluded.embedding,
        embedding_dim = excluded.embedding_dim, terms = excluded.terms,
        term_count = excluded.term_count, metadata = excluded.metadata,
        updated_at = now()
"""  # noqa: S608 - the formatted parts are column names and a constant condition


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


def _int(value: int) -> bytes:
    return b"\x00\x00\x00\x04" + _INT.pack(value)


def _text(value: str) -> bytes:
    data = value.encode()
    return _INT.pack(len(data)) + data


def _vector(values: Sequence[float] | None) -> bytes:
    """pgvector's binary form: dimensions, a reserved zero, then big-endian float4s."""
    if values is None:
        return _NULL
    data = np.asarray(values, dtype=">f4").tobytes()
    return _INT.pack(4 + len(data)) + _VECTOR_HEAD.pack(len(data) // 4, 0) + data


def _jsonb(value: dict) -> bytes:
    data = _JSONB_VERSION + json.dumps(value).encode()
    return _INT.pack(len(data)) + data


def _time_ordered_ids(count: int) -> list[uuid.UUID]:
    """UUIDs in the layout of version 7: the time in milliseconds first, then a counter, then
    random bits. Chunks written later sort after earlier ones, so their entries go to the end
    of each index range (the primary key, each term's postings) instead of anywhere in it."""
    now = time.time_ns() // 1_000_000
    ids = []
    for i in range(count):
        # 4,096 ids per millisecond; a larger batch borrows the next milliseconds.
        millisecond, counter = now + i // 4096, i % 4096
        high = (millisecond << 16) | (0x7 << 12) | counter
        low = (0b10 << 62) | secrets.randbits(62)
        ids.append(uuid.UUID(int=(high << 64) | low))
    return ids


def _copy_rows(rows: Sequence[ChunkRow]) -> bytes:
    """The rows in COPY's binary format, in the order of _LOAD_NAMES, with new ids (a row
    that replaces one keeps the id it had)."""
    parts = [_SIGNATURE]
    for row, new_id in zip(rows, _time_ordered_ids(len(rows)), strict=True):
        analyzed = analyze(f"{row.content}\n{row.answer}" if row.answer else row.content)
        parts += (
            _FIELD_COUNT.pack(12),
            b"\x00\x00\x00\x10" + new_id.bytes,
            _int(row.position),
            b"\x00\x00\x00\x01" + (b"\x01" if row.searchable else b"\x00"),
            _text(row.content),
            _text(row.answer),
            _text(content_hash(row.content, row.answer)),
            _int(row.tokens),
            _vector(row.embedding),
            _text(" ".join(analyzed)),
            _int(len(analyzed)),
            _jsonb(row.metadata),
            _NULL if row.parent_position is None else _int(row.parent_position),
        )
    parts.append(_TRAILER)
    return b"".join(parts)


def chunks_write(
    *, tenant_id: uuid.UUID, dataset_id: uuid.UUID, document_id: uuid.UUID, rows: Sequence[ChunkRow]
) -> None:
    """Insert or replace the document's chunks at these positions (a re-run of the same
    document rewrites the same rows, never duplicates them); a new chunk is not live, a
    replaced one keeps its state. Parents must come before their children in `rows`."""
    if not rows:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        # Dropped at commit: no state outlives the transaction (a pooler may hand this
        # session to another client next).
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS knowledge_chunk_load ({_LOAD_COLUMNS}) ON COMMIT DROP"
        )
        with cursor.cursor.copy(
            f"COPY knowledge_chunk_load ({_LOAD_NAMES}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(_copy_rows(rows))
        ids = {"tenant": tenant_id, "dataset": dataset_id, "document": document_id}
        # Children are inserted after their parents, in a second statement that sees them, so
        # that each row is written once with its link: setting it afterwards would rewrite the
        # row in every index, its vector into the HNSW graph again.
        children = any(row.parent_position is not None for row in rows)
        cursor.execute(_UPSERT.format(which="WHERE parent_position IS NULL"), ids)
        if children:
            cursor.execute(_UPSERT.format(which=""), ids)


def chunks_delete_after(*, document_id: uuid.UUID, dataset_id: uuid.UUID, position: int) -> None:
    """Drop the document's chunks past `position` (a re-split that made fewer chunks)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM knowledge_chunk WHERE document_id = %s AND dataset_id = %s "
            "AND position > %s",
            [document_id, dataset_id, position],
        )


def dataset_stats_refresh(*, dataset_id: uuid.UUID) -> None:
    """Recount the searched chunks and their terms, which BM25 normalises lengths with.

    The triggers keep both exact as chunks change, so no write needs this; it repairs a
    dataset whose chunks were changed with triggers disabled (a restore, a replica)."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Locked first: a writer's trigger adds to these counts, and a recount read before
        # that writer commits would overwrite its share.
        cursor.execute(
            "SELECT 1 FROM knowledge_dataset WHERE id = %s FOR NO KEY UPDATE", [dataset_id]
        )
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
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_chunk SET live = %s "
            "WHERE document_id = %s AND dataset_id = %s AND live <> %s",
            [live, document_id, dataset_id, live],
        )
