"""Search over chunks in PostgreSQL: semantic (pgvector HNSW, cosine) and full-text ranked
with BM25 from term statistics kept in PostgreSQL.

Text analysis is Weft's own, shared by indexing and queries: the built-in models' tokenizer
(NFKC, case-folded, Latin accents folded, words, and each Han/kana/Hangul character), plus
pairs of neighbouring CJK characters, so unspaced scripts are searchable by words of any
length. The tokens go into a `tsvector` with the `simple` configuration, which keeps them as
they are (no stemming, no stop words): GIN finds the candidates, and BM25 is computed from
each chunk's term frequencies and length, the dataset's chunk count and average length, and
each term's document frequency.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction

from providers.runtime.offline import tokenize

from .vectors import vector_cast, vector_expression

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# PostgreSQL keeps at most 2,046 bytes per lexeme; longer "words" are noise (hashes, base64).
MAX_TERM_CHARS = 100
K1 = 1.2
B = 0.75
# HNSW candidates examined per query: higher finds more of the true nearest neighbours.
EF_SEARCH = 100


def analyze(text: str) -> list[str]:
    """The terms of a text, in order (CJK character pairs follow their second character)."""
    terms: list[str] = []
    previous_cjk = ""
    for token in tokenize(text):
        if len(token) > MAX_TERM_CHARS:
            previous_cjk = ""
            continue
        terms.append(token)
        if _CJK.fullmatch(token):
            if previous_cjk:
                terms.append(previous_cjk + token)
            previous_cjk = token
        else:
            previous_cjk = ""
    return terms


def terms_text(text: str) -> str:
    """What `to_tsvector('simple', …)` turns into a chunk's terms."""
    return " ".join(analyze(text))


def _scope_sql(alias: str = "c") -> str:
    return (
        f"{alias}.tenant_id = %(tenant)s AND {alias}.dataset_id = ANY(%(datasets)s) "
        f"AND {alias}.searchable AND {alias}.enabled AND {alias}.live"
    )


def semantic(
    *,
    tenant_id: uuid.UUID,
    dataset_ids: Sequence[uuid.UUID],
    vector: Sequence[float],
    top_k: int,
) -> list[tuple[uuid.UUID, float]]:
    """The top_k chunks nearest to `vector` (cosine similarity, 1 = same direction).

    The partial HNSW index of the vector's dimension is scanned iteratively (pgvector 0.8),
    so the tenant and dataset filter still fills top_k instead of dropping what the first
    pass found in other datasets; should the scan stop short, an exact search fills it."""
    dimensions = len(vector)
    distance = (
        f"{vector_expression(dimensions, 'c.embedding')} <=> %(vector)s::{vector_cast(dimensions)}"
    )
    # Only integers and constants are formatted into the SQL; values are parameters.
    sql = f"""
        SELECT id, similarity FROM (
            SELECT c.id, 1 - ({distance}) AS similarity
            FROM knowledge_chunk c
            WHERE c.embedding_dim = %(dimensions)s AND {_scope_sql()}
            ORDER BY {distance}
            LIMIT %(top_k)s
        ) nearest ORDER BY similarity DESC
    """  # noqa: S608
    params: dict[str, Any] = {
        "tenant": tenant_id,
        "datasets": list(dataset_ids),
        "vector": "[" + ",".join(repr(float(x)) for x in vector) + "]",
        "dimensions": dimensions,
        "top_k": top_k,
    }
    # SET LOCAL lasts until the transaction ends: keep both in one transaction.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true)", [str(max(EF_SEARCH, top_k))]
        )
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        if len(rows) < top_k:
            # The scan gave up (hnsw.max_scan_tuples) before filling top_k: the filter keeps
            # few chunks of a large index, or the index still holds many dead rows. Then the
            # filter itself is selective, and an exact search over what it keeps is cheap.
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    return [(row[0], float(row[1])) for row in rows]


def bm25(
    *,
    tenant_id: uuid.UUID,
    dataset_ids: Sequence[uuid.UUID],
    query: str,
    top_k: int,
) -> list[tuple[uuid.UUID, float]]:
    """The top_k chunks by BM25 (k1 = 1.2, b = 0.75) for the query's terms."""
    terms = sorted(set(analyze(query)))
    if not terms:
        return []
    params: dict[str, Any] = {
        "tenant": tenant_id,
        "datasets": list(dataset_ids),
        "terms": terms,
        "top_k": top_k,
    }
    # Only integers and constants are formatted into the SQL; values are parameters.
    # One pass: the candidates are exactly the chunks in scope holding a query term, so each
    # term's document frequency is counted among them, not by a scan of its own.
    sql = f"""
        WITH stats AS (
            SELECT coalesce(sum(chunk_count), 0) AS n,
                   greatest(coalesce(sum(term_count)::float / nullif(sum(chunk_count), 0), 1), 1)
                       AS avgdl
            FROM knowledge_dataset
            WHERE tenant_id = %(tenant)s AND id = ANY(%(datasets)s)
        ),
        hits AS MATERIALIZED (
            SELECT c.id, c.term_count, l.lexeme, array_length(l.positions, 1) AS tf
            FROM knowledge_chunk c
            CROSS JOIN LATERAL unnest(c.terms) AS l(lexeme, positions, weights)
            WHERE {_scope_sql()}
              AND c.terms @@ %(any_term)s::tsquery
              AND l.lexeme = ANY(%(terms)s::text[])
        ),
        weighted AS (
            SELECT h.lexeme, ln(1 + (s.n - count(*) + 0.5) / (count(*) + 0.5)) AS idf
            FROM hits h, stats s
            GROUP BY h.lexeme, s.n
        )
        SELECT h.id,
               sum(w.idf * (h.tf * ({K1} + 1))
                   / (h.tf + {K1} * (1 - {B} + {B} * h.term_count / s.avgdl))) AS score
        FROM hits h
        JOIN weighted w ON w.lexeme = h.lexeme
        CROSS JOIN stats s
        GROUP BY h.id
        ORDER BY score DESC, h.id
        LIMIT %(top_k)s
    """  # noqa: S608
    params["any_term"] = " | ".join("'" + term.replace("'", "''") + "'" for term in terms)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(row[0], float(row[1])) for row in cursor.fetchall()]
