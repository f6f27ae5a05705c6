"""Search latency at scale: p50/p95 per query of `search.semantic`, `search.bm25` (also
filtered to one document and to a tenth of them) and `retrieval.retrieve` (hybrid, top_k=10)
over N synthetic chunks, as ratios to a baseline measured in the same run: a primary-key
lookup of one chunk.

A throwaway tenant gets one dataset (built-in embedder) whose N chunks (varied generated
sentences, Zipf-distributed words), in documents of 1,000, are written with
`store.chunks_write` in batches, two documents at once, with built-in embedder vectors
(`hashing_vectors`), then made live (`store.document_set_live`); the chunks are analysed
and the postings vacuumed, as autovacuum would after a bulk load, so that their index is
read alone. Full-text results are checked against BM25 computed from the chunks' own terms.
Then a second dataset of N/9 chunks is added and semantic search filtered to it (10% of the
tenant's chunks) is checked to return the full top_k, and compared with an exact search. The
tenant is deleted at the end, even on failure. The database must be migrated
(`.venv/bin/python manage.py migrate`; `WEFT_DATA_DIR=/tmp/x` gives a separate embedded
one).

    .venv/bin/python bench/knowledge/latency.py --chunks 100000 --queries 50
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import setup_django, throwaway_tenant

TOP_K = 10
WRITE_BATCH = 1_000
DOCUMENT_CHUNKS = 1_000
WRITERS = 2
WARMUP = 3


def vocabulary(rng: random.Random, size: int = 20_000) -> tuple[list[str], list[float]]:
    words = [
        "".join(rng.choice("etaoinshrdlucmfwypvbgkqjxz") for _ in range(rng.randint(2, 10)))
        for _ in range(size)
    ]
    return words, [1 / rank for rank in range(1, size + 1)]


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)  # noqa: S311 (benchmark text, not a secret)
        self.words, weights = vocabulary(self.rng)
        # Accumulated once: `choices` would sum 20,000 weights on every call. The draws are
        # the same.
        self.cumulative = list(itertools.accumulate(weights))

    def sentence(self) -> str:
        words = self.rng.choices(self.words, cum_weights=self.cumulative, k=self.rng.randint(6, 20))
        return " ".join(words).capitalize() + "."

    def chunk(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(2, 5)))

    def query(self) -> str:
        return " ".join(
            self.rng.choices(self.words, cum_weights=self.cumulative, k=self.rng.randint(2, 6))
        )


def fill(tenant, dataset, generator: Generator, count: int, label: str) -> list:
    """`count` chunks in documents of DOCUMENT_CHUNKS, embedded and written in batches by
    WRITERS threads at once (the database inserts into the HNSW graph on as many cores),
    then made live; returns the documents. The texts are generated in order, here."""
    from django.db import connections

    from knowledge import store
    from knowledge.models import Document
    from providers.runtime.offline import hashing_vectors
    from tenants.context import tenant_context

    dimensions = dataset.embedding_dimensions

    def write(document, texts: list[str]) -> None:
        try:
            for start in range(0, len(texts), WRITE_BATCH):
                batch = texts[start : start + WRITE_BATCH]
                vectors = hashing_vectors(batch, dimensions)
                store.chunks_write(
                    tenant_id=tenant.pk,
                    dataset_id=dataset.pk,
                    document_id=document.pk,
                    rows=[
                        store.ChunkRow(position=start + i, content=text, embedding=vector)
                        for i, (text, vector) in enumerate(zip(batch, vectors, strict=True))
                    ],
                )
        finally:
            connections.close_all()

    documents = []
    started = time.monotonic()
    with ThreadPoolExecutor(WRITERS) as pool:
        pending = []
        for first in range(0, count, DOCUMENT_CHUNKS):
            with tenant_context(tenant):
                document = Document.objects.create(
                    dataset=dataset,
                    name=f"synthetic {len(documents)}",
                    indexing_status=Document.Status.COMPLETED,
                )
            documents.append(document)
            size = min(DOCUMENT_CHUNKS, count - first)
            pending.append(pool.submit(write, document, [generator.chunk() for _ in range(size)]))
            # Two documents' texts ahead at most: memory stays flat at any size.
            while len(pending) > WRITERS:
                pending.pop(0).result()
            done = first + size
            if done % (DOCUMENT_CHUNKS * 20) == 0 or done == count:
                print(
                    f"  {label}: {done} chunks, {time.monotonic() - started:.0f} s", file=sys.stderr
                )
        for future in pending:
            future.result()
    written = time.monotonic() - started
    for document in documents:
        store.document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=True)
    print(
        f"  {label}: written at {count / written:.0f} chunks/s, made live in "
        f"{time.monotonic() - started - written:.0f} s",
        file=sys.stderr,
    )
    return documents


def make_dataset(tenant, name: str):
    from knowledge import services

    return services.dataset_create(tenant=tenant, name=name)


def timed(call: Callable[[int], object], count: int) -> np.ndarray:
    """Milliseconds per call, after a few unmeasured calls."""
    for i in range(WARMUP):
        call(i)
    times = []
    for i in range(count):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
    return np.array(times)


def analyze_tables() -> None:
    """What autovacuum does after a bulk load: statistics, and the postings' visibility map
    (without it their index cannot be read alone)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")
        cursor.execute("VACUUM (ANALYZE) knowledge_posting, knowledge_term")


def exact_semantic(tenant_id, dataset_ids, vector, top_k: int) -> list:
    """The same query as search.semantic with index scans off: the true nearest."""
    from django.db import connection, transaction

    from knowledge.vectors import vector_cast, vector_expression

    dimensions = len(vector)
    distance = f"{vector_expression(dimensions, 'embedding')} <=> %s::{vector_cast(dimensions)}"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(
            f"SELECT id FROM knowledge_chunk WHERE tenant_id = %s AND dataset_id = ANY(%s) "  # noqa: S608
            f"AND embedding_dim = %s AND searchable AND enabled AND live "
            f"ORDER BY {distance} LIMIT %s",
            [
                tenant_id,
                list(dataset_ids),
                dimensions,
                "[" + ",".join(repr(float(x)) for x in vector) + "]",
                top_k,
            ],
        )
        return [row[0] for row in cursor.fetchall()]


def exact_bm25(tenant_id, dataset_ids, query: str, top_k: int) -> list:
    """BM25 the straightforward way, from the chunks themselves (not the postings and counts
    search.bm25 reads): every searched chunk holding a query term, each term's frequency
    unnested from its tsvector. Ids and scores."""
    from django.db import connection

    from knowledge.search import K1, B, analyze

    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH scope AS (
                SELECT count(*)::float8 AS n, greatest(avg(term_count)::float8, 1) AS avgdl
                FROM knowledge_chunk
                WHERE tenant_id = %(tenant)s AND dataset_id = ANY(%(datasets)s)
                  AND searchable AND enabled AND live
            ),
            hits AS MATERIALIZED (
                SELECT c.id, c.term_count AS dl, l.lexeme AS term,
                       array_length(l.positions, 1) AS tf
                FROM knowledge_chunk c, unnest(c.terms) l
                WHERE c.tenant_id = %(tenant)s AND c.dataset_id = ANY(%(datasets)s)
                  AND c.searchable AND c.enabled AND c.live
                  AND l.lexeme = ANY(%(terms)s::text[])
            ),
            q AS (
                SELECT term, ln(1 + ((SELECT n FROM scope) - count(*) + 0.5::float8)
                                    / (count(*) + 0.5::float8)) AS idf
                FROM hits GROUP BY term
            )
            SELECT h.id, sum(q.idf * (h.tf * {K1 + 1!r}::float8) / (h.tf + {K1!r}::float8
                   * ({1 - B!r}::float8 + {B!r}::float8 * h.dl / (SELECT avgdl FROM scope))))
                   AS score
            FROM hits h JOIN q USING (term)
            GROUP BY h.id ORDER BY score DESC, h.id LIMIT %(top_k)s
            """,  # noqa: S608 - constants only
            {
                "tenant": tenant_id,
                "datasets": list(dataset_ids),
                "terms": sorted(set(analyze(query))),
                "top_k": top_k,
            },
        )
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    setup_django()

    from asgiref.sync import async_to_sync
    from django.db import connection

    from knowledge import search
    from knowledge.models import Chunk
    from knowledge.retrieval import RetrievalSettings, retrieve
    from providers.runtime.offline import hashing_vectors
    from tenants.context import tenant_context

    generator = Generator(7)
    tenant = throwaway_tenant()
    try:
        dataset = make_dataset(tenant, "Latency bench")
        started = time.monotonic()
        documents = fill(tenant, dataset, generator, args.chunks, "main dataset")
        analyze_tables()
        build = time.monotonic() - started
        print(f"{args.chunks} chunks written, live and analysed in {build:.0f} s")

        queries = [generator.query() for _ in range(args.queries + WARMUP)]
        vectors = hashing_vectors(queries, dataset.embedding_dimensions).tolist()
        with tenant_context(tenant):
            ids = list(
                Chunk.objects.filter(dataset=dataset)
                .order_by("?")
                .values_list("pk", flat=True)[: args.queries + WARMUP]
            )
        settings = RetrievalSettings.from_dify({"search_method": "hybrid_search", "top_k": TOP_K})
        one = [documents[0].pk]
        tenth = [d.pk for d in documents[:: max(1, len(documents) // 10)]][:10]

        def lookup(i: int) -> None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT content FROM knowledge_chunk WHERE id = %s", [ids[i]])
                cursor.fetchone()

        def semantic(i: int, document_ids=None) -> list:
            return search.semantic(
                tenant_id=tenant.pk,
                dataset_ids=[dataset.pk],
                vector=vectors[i],
                top_k=TOP_K,
                document_ids=document_ids,
            )

        def bm25(i: int, document_ids=None) -> list:
            return search.bm25(
                tenant_id=tenant.pk,
                dataset_ids=[dataset.pk],
                query=queries[i],
                top_k=TOP_K,
                document_ids=document_ids,
            )

        measured = time.monotonic()
        results: dict[str, np.ndarray] = {}
        results["primary-key lookup (baseline)"] = timed(lookup, args.queries)
        results["search.semantic"] = timed(semantic, args.queries)
        results["search.bm25"] = timed(bm25, args.queries)
        results["retrieve (hybrid, top_k=10)"] = timed(
            lambda i: async_to_sync(retrieve)(
                tenant=tenant, datasets=[dataset], query=queries[i], settings=settings
            ),
            args.queries,
        )
        results["search.semantic, 1 document"] = timed(lambda i: semantic(i, one), args.queries)
        results["search.bm25, 1 document"] = timed(lambda i: bm25(i, one), args.queries)
        results[f"search.semantic, {len(tenth)} documents"] = timed(
            lambda i: semantic(i, tenth), args.queries
        )
        results[f"search.bm25, {len(tenth)} documents"] = timed(
            lambda i: bm25(i, tenth), args.queries
        )
        empty = sum(not bm25(i) for i in range(len(queries)))
        checked = queries[:10]
        exact = sum(
            [hit for hit, _ in found] == [hit for hit, _ in expected]
            and np.allclose([s for _, s in found], [s for _, s in expected], rtol=1e-9)
            for query in checked
            for found, expected in [
                (
                    search.bm25(
                        tenant_id=tenant.pk, dataset_ids=[dataset.pk], query=query, top_k=TOP_K
                    ),
                    exact_bm25(tenant.pk, [dataset.pk], query, TOP_K),
                )
            ]
        )

        # A second dataset in the same tenant; semantic search filtered to the smaller one.
        small = make_dataset(tenant, "Latency bench, filtered")
        fill(tenant, small, generator, max(TOP_K, args.chunks // 9), "second")
        analyze_tables()
        short, overlap = 0, 0.0
        for vector in vectors[: args.queries]:
            hits = search.semantic(
                tenant_id=tenant.pk, dataset_ids=[small.pk], vector=vector, top_k=TOP_K
            )
            short += len(hits) < TOP_K
            exact_hits = exact_semantic(tenant.pk, [small.pk], vector, TOP_K)
            overlap += len({h[0] for h in hits} & set(exact_hits)) / max(1, len(exact_hits))
        with tenant_context(tenant):
            small_ids = set(Chunk.objects.filter(dataset=small).values_list("pk", flat=True))
        outside = 0
        for vector in vectors[:5]:
            hits = search.semantic(
                tenant_id=tenant.pk, dataset_ids=[small.pk], vector=vector, top_k=TOP_K
            )
            outside += sum(h[0] not in small_ids for h in hits)
        results["search.semantic, filtered to 10%"] = timed(
            lambda i: search.semantic(
                tenant_id=tenant.pk, dataset_ids=[small.pk], vector=vectors[i], top_k=TOP_K
            ),
            args.queries,
        )
        results["search.bm25, filtered to 10%"] = timed(
            lambda i: search.bm25(
                tenant_id=tenant.pk, dataset_ids=[small.pk], query=queries[i], top_k=TOP_K
            ),
            args.queries,
        )

        took = time.monotonic() - measured
        print(f"  searches and the second dataset took {took:.0f} s", file=sys.stderr)
        base50, base95 = np.percentile(results["primary-key lookup (baseline)"], [50, 95])
        print(
            f"{args.queries} queries (2-6 words), top_k={TOP_K}; "
            f"{empty} of {len(queries)} queries have no full-text match; "
            f"documents of {DOCUMENT_CHUNKS} chunks"
        )
        print(f"{'':<34} {'p50 ms':>8} {'p95 ms':>8} {'p50 ratio':>10} {'p95 ratio':>10}")
        for name, times in results.items():
            p50, p95 = np.percentile(times, [50, 95])
            print(f"{name:<34} {p50:>8.2f} {p95:>8.2f} {p50 / base50:>9.1f}x {p95 / base95:>9.1f}x")
        print(
            f"search.bm25 equals BM25 computed from the chunks' own terms on "
            f"{exact}/{len(checked)} queries — {'holds' if exact == len(checked) else 'FAILS'}"
        )
        total = args.chunks + max(TOP_K, args.chunks // 9)
        verdict = "holds" if short == 0 and outside == 0 else "FAILS"
        print(
            f"filtered semantic (queried dataset {max(TOP_K, args.chunks // 9)} of {total} "
            f"chunks): {args.queries - short}/{args.queries} queries returned the full "
            f"top_k={TOP_K}, {outside} hits outside the dataset, "
            f"mean overlap with exact search {overlap / args.queries:.3f} — {verdict}"
        )
    finally:
        started = time.monotonic()
        # One statement for the chunks (the triggers drop their postings as a set); the ORM
        # would load every chunk to follow its cascades before deleting it.
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM knowledge_chunk WHERE tenant_id = %s", [tenant.pk])
        tenant.delete()
        print(f"  tenant deleted in {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
