"""Retrieval quality on a BEIR folder: nDCG@10 and recall@10 for semantic, full-text, hybrid
(weighted and RRF, at Weft's default equal weights and at Dify's console weights 0.7/0.3)
and with rerank, with the tenant's default (built-in) models.

The corpus is written into a throwaway tenant and dataset in the configured database (one
chunk per BEIR document: title and text), searched through `knowledge.retrieval.retrieve`,
then the tenant is deleted. The baseline of the run is the better of the two single methods:
hybrid should not be worse than it.

    .venv/bin/python bench/knowledge/quality.py ../shared/samples/ir/cranfield/beir
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
K = 10
EMBED_BATCH = 256

# Dify's console proposes these weights for hybrid search; Weft's default is equal weights.
CONSOLE_WEIGHTS = {
    "vector_setting": {"vector_weight": 0.7},
    "keyword_setting": {"keyword_weight": 0.3},
}
METHODS: dict[str, dict] = {
    "semantic": {"search_method": "semantic_search"},
    "full_text": {"search_method": "full_text_search"},
    "hybrid weighted": {"search_method": "hybrid_search", "fusion": "weighted"},
    "hybrid rrf": {"search_method": "hybrid_search", "fusion": "rrf"},
    "hybrid weighted .7/.3": {
        "search_method": "hybrid_search",
        "fusion": "weighted",
        "weights": CONSOLE_WEIGHTS,
    },
    "hybrid rrf .7/.3": {
        "search_method": "hybrid_search",
        "fusion": "rrf",
        "weights": CONSOLE_WEIGHTS,
    },
    "semantic + rerank": {
        "search_method": "semantic_search",
        "reranking_enable": True,
        "reranking_mode": "reranking_model",
    },
    "hybrid weighted + rerank": {
        "search_method": "hybrid_search",
        "reranking_enable": True,
        "reranking_mode": "reranking_model",
    },
}


@dataclass(frozen=True)
class Beir:
    corpus: dict[str, str]  # _id → title and text
    queries: dict[str, str]  # _id → text, only those with judgements
    qrels: dict[str, dict[str, int]]  # query id → {document id: relevance > 0}


def load_beir(folder: Path, *, limit_queries: int | None = None) -> Beir:
    """A BEIR folder: corpus.jsonl, queries.jsonl and qrels/test.tsv."""
    corpus = {}
    for line in (folder / "corpus.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            corpus[str(row["_id"])] = " ".join(p for p in (row.get("title"), row["text"]) if p)
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / "test.tsv").open() as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries = {}
    for line in (folder / "queries.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if str(row["_id"]) in qrels:
                queries[str(row["_id"])] = row["text"]
    if limit_queries is not None:
        queries = dict(list(queries.items())[:limit_queries])
    return Beir(corpus, queries, {q: qrels[q] for q in queries})


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = K) -> float:
    """nDCG@k with graded gains (2^rel - 1) and log2(rank + 1) discounts."""
    dcg = sum(
        (2 ** relevant.get(doc, 0) - 1) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k])
    )
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**rel - 1) / math.log2(rank + 2) for rank, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = K) -> float:
    """Share of the relevant documents found in the first k."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def evaluate(
    runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int = K
) -> tuple[float, float]:
    """Mean nDCG@k and recall@k over the queries of `runs` (query id → ranked doc ids)."""
    if not runs:
        return 0.0, 0.0
    ndcg = sum(ndcg_at_k(ranked, qrels.get(q, {}), k) for q, ranked in runs.items())
    recall = sum(recall_at_k(ranked, qrels.get(q, {}), k) for q, ranked in runs.items())
    return ndcg / len(runs), recall / len(runs)


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def ingest(tenant, beir: Beir, *, name: str = "BEIR"):
    """A completed dataset of the tenant holding the corpus, one live chunk per document
    (the document id in the chunk's metadata)."""
    from asgiref.sync import async_to_sync

    from knowledge import services, store
    from knowledge.models import Document
    from providers import services as models_runtime
    from tenants.context import tenant_context

    dataset = services.dataset_create(tenant=tenant, name=name)
    with tenant_context(tenant):
        document = Document.objects.create(
            dataset=dataset, name="corpus", indexing_status=Document.Status.COMPLETED
        )
    items = list(beir.corpus.items())
    for start in range(0, len(items), EMBED_BATCH):
        batch = items[start : start + EMBED_BATCH]
        vectors = async_to_sync(models_runtime.embed)(
            tenant=tenant, texts=[text for _, text in batch], model=dataset.embedding_model
        ).vectors
        store.chunks_write(
            tenant_id=tenant.pk,
            dataset_id=dataset.pk,
            document_id=document.pk,
            rows=[
                store.ChunkRow(
                    position=start + i, content=text, embedding=vector, metadata={"_id": doc_id}
                )
                for i, ((doc_id, text), vector) in enumerate(zip(batch, vectors, strict=True))
            ],
        )
    store.document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=True)
    dataset.refresh_from_db()
    return dataset


def run_method(tenant, dataset, beir: Beir, retrieval_model: dict) -> dict[str, list[str]]:
    """Query id → the BEIR ids of the top 10, for one retrieval setting."""
    from asgiref.sync import async_to_sync

    from knowledge.retrieval import RetrievalSettings, retrieve

    settings = RetrievalSettings.from_dify({**retrieval_model, "top_k": K})
    runs = {}
    for query_id, text in beir.queries.items():
        records = async_to_sync(retrieve)(
            tenant=tenant, datasets=[dataset], query=text, settings=settings
        )
        runs[query_id] = [r.chunk.metadata["_id"] for r in records]
    return runs


def throwaway_tenant():
    from tenants.models import Tenant

    suffix = uuid.uuid4().hex[:8]
    return Tenant.objects.create(slug=f"bench-{suffix}", name=f"Bench {suffix}")


def report(rows: Iterable[tuple[str, float, float, float]]) -> None:
    print(f"{'method':<22} {'nDCG@10':>8} {'recall@10':>10} {'ms/query':>9}")
    for name, ndcg, recall, ms in rows:
        print(f"{name:<22} {ndcg:>8.4f} {recall:>10.4f} {ms:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit-queries", type=int, default=None)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated names")
    args = parser.parse_args()
    setup_django()
    beir = load_beir(args.folder, limit_queries=args.limit_queries)
    print(f"{len(beir.corpus)} documents, {len(beir.queries)} judged queries")
    tenant = throwaway_tenant()
    try:
        started = time.monotonic()
        dataset = ingest(tenant, beir)
        print(f"ingested in {time.monotonic() - started:.1f} s")
        results = {}
        for name in args.methods.split(","):
            started = time.monotonic()
            runs = run_method(tenant, dataset, beir, METHODS[name])
            ms = (time.monotonic() - started) * 1000 / max(1, len(runs))
            results[name] = (*evaluate(runs, beir.qrels), ms)
        report((name, *values) for name, values in results.items())
        if {"semantic", "full_text"} <= set(results):
            best = max(results["semantic"][0], results["full_text"][0])
            for name in results:
                if name.startswith("hybrid") and "rerank" not in name:
                    ratio = results[name][0] / best if best else 0.0
                    verdict = "holds" if results[name][0] >= best else "FAILS"
                    print(f"{name}: {ratio:.3f}x the better single method (nDCG@10) — {verdict}")
        # A reranker is judged against what it reranked.
        for name in results:
            base = name.removesuffix(" + rerank")
            if base != name and base in results and results[base][0]:
                ratio = results[name][0] / results[base][0]
                print(f"{name}: {ratio:.3f}x {base} alone (nDCG@10)")
    finally:
        tenant.delete()


if __name__ == "__main__":
    main()
