"""Search over chunks in PostgreSQL: semantic (pgvector HNSW, cosine) and full-text ranked
with BM25 from term statistics kept in PostgreSQL.

Text analysis is Weft's own, shared by indexing and queries: the built-in models' tokenizer
(NFKC, case-folded, Latin accents folded, words, and each Han/kana/Hangul character), plus
pairs of neighbouring CJK characters, so unspaced scripts are searchable by words of any
length. The tokens go into a `tsvector` with the `simple` configuration, which keeps them as
they are (no stemming, no stop words).

BM25 (k1 = 1.2, b = 0.75, Lucene's idf ln(1 + (N - df + 0.5) / (df + 0.5)); N, the average
length and each df over the datasets searched) reads what triggers derive from the chunks
(migration 0005): each dataset's chunk and term counts, each term's df and largest tf, and
per term a list of postings (chunk, tf, chunk length) read from an index alone.

It is exact, and reads little of the lists (MaxScore). A term's score in any chunk is at most
its bound (its idf at its largest tf). The rarer terms are "essential": their lists are read
whole, summed per chunk, and the k-th best sum is a bar; a chunk holding none of them scores
at most the sum of the other terms' bounds, so when that sum is under the k-th best score
found, no chunk left unread can enter the top k. The other terms' frequencies are then looked
up only for the chunks that might still reach the bar (or, when those are many, joined from
the terms' lists). When the check fails (the guess of which terms are essential was too
small), the search runs again with more of them, up to all. Frequent words, whose lists are
long, thus cost a few lookups instead of a scan.

A filter to few documents ranks their chunks directly, from their own terms.
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
# A filter to few documents is ranked from those documents' chunks directly.
DIRECT_CHUNKS = 2_000
# Looking a term up in one chunk costs about as much as reading this many of its postings:
# the other terms' scores in the chunks still in the running are looked up, or read from
# their whole lists when those are shorter than that many lookups.
LOOKUP_COST = 3
# Float sums in PostgreSQL and here may differ in the last bits: bounds keep this margin.
_MARGIN = 1e-9
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
        # The tokenizer makes each CJK character a token of its own: only those can match.
        if len(token) == 1 and _CJK.match(token):
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
    document_ids: Sequence[uuid.UUID] | None = None,
) -> list[tuple[uuid.UUID, float]]:
    """The top_k chunks nearest to `vector` (cosine similarity, 1 = same direction), in
    these datasets, and in these documents when `document_ids` is given.

    The partial HNSW index of the vector's dimension is scanned iteratively (pgvector 0.8),
    so the tenant, dataset and document filter still fills top_k instead of dropping what the
    first pass found elsewhere; should the scan stop short, an exact search fills it."""
    if top_k <= 0 or not dataset_ids or (document_ids is not None and not document_ids):
        return []
    dimensions = len(vector)
    distance = (
        f"{vector_expression(dimensions, 'c.embedding')} <=> %(vector)s::{vector_cast(dimensions)}"
    )
    documents = "AND c.document_id = ANY(%(documents)s)" if document_ids is not None else ""
    where = f"c.embedding_dim = %(dimensions)s AND {_scope_sql()} {documents}"
    # Only integers and constants are formatted into the SQL; values are parameters.
    nearest = f"""
        SELECT id, similarity FROM (
            SELECT c.id, 1 - ({distance}) AS similarity
            FROM knowledge_chunk c
            WHERE {where}
            ORDER BY {distance}
            LIMIT %(top_k)s
        ) nearest ORDER BY similarity DESC
    """  # noqa: S608
    # No index can order a subquery fenced by OFFSET 0: every chunk the filter keeps (found
    # through the btree indexes) is compared with the vector.
    exact = f"""
        SELECT id, 1 - distance AS similarity FROM (
            SELECT c.id, {distance} AS distance FROM knowledge_chunk c WHERE {where} OFFSET 0
        ) kept
        ORDER BY distance, id
        LIMIT %(top_k)s
    """  # noqa: S608
    params: dict[str, Any] = {
        "tenant": tenant_id,
        "datasets": list(dataset_ids),
        "documents": list(document_ids or ()),
        "vector": "[" + ",".join(repr(float(x)) for x in vector) + "]",
        "dimensions": dimensions,
        "top_k": top_k,
    }
    # SET LOCAL lasts until the transaction ends: keep the settings and the search in one.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SET LOCAL hnsw.iterative_scan = relaxed_order; "
            f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, int(top_k))}"
        )
        cursor.execute(nearest, params)
        rows = cursor.fetchall()
        if len(rows) < top_k:
            # The scan gave up (hnsw.max_scan_tuples) before filling top_k: the filter keeps
            # few chunks of a large index, or the index still holds many dead rows. Then the
            # filter itself is selective, and an exact search over what it keeps is cheap.
            cursor.execute(exact, params)
            rows = cursor.fetchall()
    return [(row[0], float(row[1])) for row in rows]


def term_score(idf: float, tf: int, length: int, average_length: float) -> float:
    """One term's BM25 score in one chunk (the SQL below computes it in the same order)."""
    return idf * (tf * (K1 + 1)) / (tf + K1 * ((1 - B) + B * length / average_length))


# The same, over a posting `p` (tf, dl) joined with the query's weighed terms `q` (idf).
# Only constants are formatted into these statements; values are parameters.
_SCORE_SQL = (
    f"q.idf * (p.tf * {K1 + 1!r}::float8) / (p.tf + {K1!r}::float8 * ({1 - B!r}::float8 "  # noqa: S608
    f"+ {B!r}::float8 * p.dl / (SELECT average_length FROM scope)))"
)

# The datasets searched (the tenant's only), N, the average length, and the query's terms
# that occur there: each with its idf (Lucene's), its bound (the most it adds to a chunk: tf
# at its largest, length 0), its rank by bound, the bounds of the terms after it (`rest`) and
# how many postings it and the terms before it hold.
_STATISTICS_SQL = f"""
    scope AS MATERIALIZED (
        SELECT array_agg(id) AS datasets, coalesce(sum(chunk_count), 0)::float8 AS chunks,
               greatest(coalesce(sum(term_count)::float8 / nullif(sum(chunk_count), 0), 1), 1)
                   AS average_length
        FROM knowledge_dataset WHERE tenant_id = %(tenant)s AND id = ANY(%(datasets)s)
    ),
    weighed AS (
        SELECT t.term, t.df,
               ln(1 + (s.chunks - t.df::float8 + 0.5::float8) / (t.df::float8 + 0.5::float8))
                   AS idf,
               t.max_tf
        FROM (
            SELECT term, sum(df) AS df, max(max_tf) AS max_tf FROM knowledge_term
            WHERE dataset_id = ANY((SELECT datasets FROM scope)::uuid[])
              AND term = ANY(%(words)s::text[])
            GROUP BY term
        ) t CROSS JOIN scope s
        WHERE t.df > 0
    ),
    bounded AS (
        SELECT *, idf * (max_tf * {K1 + 1!r}::float8) / (max_tf + {K1 * (1 - B)!r}::float8)
                      AS bound
        FROM weighed
    ),
    q AS MATERIALIZED (
        SELECT term, df, idf, bound, row_number() OVER later AS rank,
               coalesce(sum(bound) OVER (later ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING),
                        0) AS rest,
               sum(df) OVER (later ROWS UNBOUNDED PRECEDING) AS held
        FROM bounded
        WINDOW later AS (ORDER BY bound DESC, df, term)
    )
"""  # noqa: S608

# Ranks the chunks that hold an essential term (the rarest ones: see the module's text);
# returns first a row (NULL, the bound of the other terms, whether every term was essential),
# then the top_k.
_LISTS_SQL = f"""
    WITH {_STATISTICS_SQL},
    bar AS (SELECT coalesce(%(bar)s::float8, (SELECT idf FROM q WHERE rank = 1)) AS value),
    cut AS MATERIALIZED (
        SELECT rank AS essential, rest FROM q
        WHERE rank = (SELECT count(*) FROM q)
           OR (NOT %(all_terms)s AND held >= %(top_k)s
               AND rest < (SELECT value - {_MARGIN!r} * (1 + value) FROM bar))
        ORDER BY rank LIMIT 1
    ),
    candidates AS MATERIALIZED (
        SELECT p.chunk_id, p.dataset_id, sum({_SCORE_SQL}) AS partial
        FROM q JOIN knowledge_posting p ON p.term = q.term
        WHERE q.rank <= (SELECT essential FROM cut)
          AND p.dataset_id = ANY((SELECT datasets FROM scope)::uuid[]) {{documents}}
        GROUP BY p.chunk_id, p.dataset_id
    ),
    threshold AS (
        SELECT coalesce(
            (SELECT partial FROM candidates ORDER BY partial DESC OFFSET %(top_k)s - 1 LIMIT 1),
            0
        ) AS value
    ),
    kept AS MATERIALIZED (
        SELECT chunk_id, dataset_id, partial FROM candidates
        WHERE partial + (SELECT rest FROM cut) + {_MARGIN!r} * (1 + (SELECT value FROM threshold))
              >= (SELECT value FROM threshold)
    ),
    other AS MATERIALIZED (
        SELECT q.*, q.df > %(lookup_cost)s * (SELECT count(*) FROM kept) AS lookup
        FROM q WHERE rank > (SELECT essential FROM cut)
    ),
    parts AS (
        SELECT chunk_id, partial AS score FROM kept
        UNION ALL
        SELECT k.chunk_id, looked_up.score
        FROM kept k
        CROSS JOIN LATERAL (
            -- An aggregate, so that this stays a lookup per chunk, never a join of lists.
            SELECT sum({_SCORE_SQL}) AS score
            FROM other q JOIN knowledge_posting p ON p.term = q.term
            WHERE q.lookup AND p.dataset_id = k.dataset_id AND p.chunk_id = k.chunk_id
        ) looked_up
        WHERE EXISTS (SELECT 1 FROM other WHERE lookup)
        UNION ALL
        SELECT p.chunk_id, {_SCORE_SQL}
        FROM other q
        JOIN knowledge_posting p ON p.term = q.term
        JOIN kept k ON k.chunk_id = p.chunk_id AND k.dataset_id = p.dataset_id
        WHERE NOT q.lookup AND p.dataset_id = ANY((SELECT datasets FROM scope)::uuid[])
    ),
    found AS (
        SELECT chunk_id, sum(score) AS score FROM parts
        GROUP BY chunk_id
        ORDER BY score DESC, chunk_id
        LIMIT %(top_k)s
    )
    SELECT NULL::uuid, coalesce((SELECT rest FROM cut), 0),
           coalesce((SELECT essential = (SELECT count(*) FROM q) FROM cut), true)
    UNION ALL
    SELECT chunk_id, score, NULL FROM found
"""  # noqa: S608

# Ranks the searched chunks of a few documents from their own tsvectors, cut down to the
# query's terms (weighted A, then filtered): the same tf and length as the postings. Returns
# first a row (NULL, NULL, whether the documents were few enough), then the top_k.
_DOCUMENTS_SQL = f"""
    WITH {_STATISTICS_SQL},
    kept AS MATERIALIZED (
        SELECT c.id, c.terms, c.term_count FROM knowledge_chunk c
        WHERE c.tenant_id = %(tenant)s AND c.dataset_id = ANY((SELECT datasets FROM scope)::uuid[])
          AND c.document_id = ANY(%(documents)s)
          AND c.searchable AND c.enabled AND c.live
        LIMIT %(direct_chunks)s + 1
    ),
    found AS (
        SELECT k.id, sum({_SCORE_SQL}) AS score
        FROM kept k
        CROSS JOIN LATERAL (
            SELECT l.lexeme AS term, coalesce(array_length(l.positions, 1), 1) AS tf,
                   k.term_count AS dl
            FROM unnest(ts_filter(setweight(k.terms, 'A', %(words)s::text[]), '{{a}}')) l
        ) p
        JOIN q ON q.term = p.term
        WHERE (SELECT count(*) FROM kept) <= %(direct_chunks)s
        GROUP BY k.id
        ORDER BY score DESC, k.id
        LIMIT %(top_k)s
    )
    SELECT NULL::uuid, NULL::float8, (SELECT count(*) FROM kept) <= %(direct_chunks)s
    UNION ALL
    SELECT id, score, NULL FROM found
"""  # noqa: S608


def _ranked(cursor, sql: str, params: dict[str, Any]) -> tuple[float, bool, list]:
    cursor.execute(sql, params)
    head, found = None, []
    for chunk_id, score, flag in cursor.fetchall():
        if chunk_id is None:
            head = (score, flag)
        else:
            found.append((chunk_id, float(score)))
    assert head is not None  # noqa: S101 - the statement always returns it
    found.sort(key=lambda hit: (-hit[1], hit[0]))
    return (float(head[0] or 0), bool(head[1]), found)


def bm25(
    *,
    tenant_id: uuid.UUID,
    dataset_ids: Sequence[uuid.UUID],
    query: str,
    top_k: int,
    document_ids: Sequence[uuid.UUID] | None = None,
) -> list[tuple[uuid.UUID, float]]:
    """The top_k chunks by BM25 (k1 = 1.2, b = 0.75) for the query's terms, in these
    datasets, and in these documents when `document_ids` is given (which narrows the
    results, not the statistics: N, lengths and df stay the datasets')."""
    words = sorted(set(analyze(query)))
    if (
        not words
        or top_k <= 0
        or not dataset_ids
        or (document_ids is not None and not document_ids)
    ):
        return []
    params: dict[str, Any] = {
        "tenant": tenant_id,
        "datasets": list(dataset_ids),
        "documents": list(document_ids or ()),
        "words": words,
        "top_k": top_k,
        "bar": None,
        "all_terms": False,
        "lookup_cost": LOOKUP_COST,
        "direct_chunks": DIRECT_CHUNKS,
    }
    documents = "AND p.document_id = ANY(%(documents)s)" if document_ids is not None else ""
    lists_sql = _LISTS_SQL.format(documents=documents)
    # One statement each: statistics and postings are read from one snapshot.
    with connection.cursor() as cursor:
        if document_ids is not None:
            _, few, found = _ranked(cursor, _DOCUMENTS_SQL, params)
            if few:
                return found
        while True:
            rest, every_term, found = _ranked(cursor, lists_sql, params)
            kth = found[-1][1] if len(found) == top_k else 0.0
            if every_term or rest < kth - _MARGIN * (1 + kth):
                return found
            # A chunk holding none of the terms read might rank: read more of them, enough
            # for the k-th best score found. That score can only rise with more terms read,
            # so this next pass is the last.
            if kth and params["bar"] is None:
                params["bar"] = kth
            else:
                params["all_terms"] = True
