"""Indexing throughput of the whole pipeline (parse → clean → split → embed → write → live),
in chunks per second, as a ratio to a baseline measured in the same run: the built-in
embedder alone (`hashing_vectors`) on the same chunk texts, in the pipeline's batches.

A throwaway tenant and dataset (built-in embedder) are created in the configured database;
N generated text documents are added through `knowledge.services.document_create` and each
is indexed in this process by `knowledge.indexing.index_document` under the tenant's context
(no Celery: the task that `document_create` enqueues on commit is not sent). The tenant is
deleted at the end, even on failure. The database must be migrated
(`.venv/bin/python manage.py migrate`; `WEFT_DATA_DIR=/tmp/x` gives a separate embedded one).

    .venv/bin/python bench/knowledge/indexing.py --documents 20 --paragraphs 40
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import setup_django, throwaway_tenant

WORDS = (
    "the of and a to in is for on that with as by at from this be are it an or which "
    "flow pressure boundary layer heat transfer wing surface shock wave velocity model "
    "theory results data method solution temperature number effect experimental measured "
    "compressible viscous laminar turbulent reynolds mach plate cylinder cone nozzle jet "
    "stability separation drag lift body thin panel vibration buckling load stress "
    "invoice customer order shipping refund account password policy employee benefit "
    "schedule meeting report budget quarter revenue forecast contract supplier warehouse"
).split()


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 24))
    return " ".join(words).capitalize() + "."


def document_text(rng: random.Random, paragraphs: int) -> str:
    """Paragraphs of 3 to 8 generated sentences, separated by blank lines."""
    return "\n\n".join(
        " ".join(sentence(rng) for _ in range(rng.randint(3, 8))) for _ in range(paragraphs)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--paragraphs", type=int, default=40)
    args = parser.parse_args()
    setup_django()

    from knowledge import services
    from knowledge.indexing import EMBED_BATCH, index_document
    from knowledge.models import Chunk, Document
    from providers.runtime import offline
    from providers.runtime.offline import embedder
    from tenants.context import tenant_context

    rng = random.Random(11)  # noqa: S311 (benchmark text, not a secret)
    texts = [document_text(rng, args.paragraphs) for _ in range(args.documents)]
    tenant = throwaway_tenant()
    try:
        dataset = services.dataset_create(tenant=tenant, name="Indexing bench")
        # The pipeline runs here, in-process: the Celery task enqueued on commit is not sent.
        with mock.patch("knowledge.tasks.index_document.delay"):
            documents = [
                services.document_create(dataset=dataset, name=f"doc-{i}", text=text)
                for i, text in enumerate(texts)
            ]
        embedder._TOKEN_VECTORS.clear()  # both measurements start with a cold token cache
        started = time.perf_counter()
        with tenant_context(tenant):
            statuses = [index_document(document_id=d.pk) for d in documents]
        pipeline = time.perf_counter() - started
        failed = [s for s in statuses if s != Document.Status.COMPLETED]
        if failed:
            raise SystemExit(f"{len(failed)} document(s) did not complete: {failed[:3]}")
        with tenant_context(tenant):
            chunk_texts = list(
                Chunk.objects.filter(dataset=dataset)
                .order_by("document__position", "position")
                .values_list("content", flat=True)
            )
        dimensions = dataset.embedding_dimensions or offline.OFFLINE_EMBEDDING_DIMENSIONS
        embedder._TOKEN_VECTORS.clear()
        started = time.perf_counter()
        for start in range(0, len(chunk_texts), EMBED_BATCH):
            offline.hashing_vectors(chunk_texts[start : start + EMBED_BATCH], dimensions)
        embedding = time.perf_counter() - started

        chunks = len(chunk_texts)
        characters = sum(map(len, texts))
        print(
            f"{args.documents} documents x {args.paragraphs} paragraphs, "
            f"{characters / 1e6:.2f} M characters → {chunks} chunks "
            f"({characters // max(1, chunks)} characters/chunk), {dimensions} dimensions"
        )
        print(f"{'':<32} {'seconds':>8} {'chunks/s':>9} {'time ratio':>11}")
        print(
            f"{'embedding only (baseline)':<32} {embedding:>8.2f} "
            f"{chunks / embedding:>9.0f} {1.0:>10.2f}x"
        )
        print(
            f"{'pipeline (index_document)':<32} {pipeline:>8.2f} "
            f"{chunks / pipeline:>9.0f} {pipeline / embedding:>10.2f}x"
        )
        print(
            f"embedding is {embedding / pipeline:.0%} of the pipeline's time; "
            f"the rest (parse, split, write, bookkeeping) is {pipeline - embedding:.2f} s"
        )
    finally:
        tenant.delete()


if __name__ == "__main__":
    main()
