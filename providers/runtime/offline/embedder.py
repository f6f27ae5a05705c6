"""`HashingEmbedder`: text to vectors by feature hashing, deterministic and offline."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..tokens import count_tokens
from ..types import (
    Embeddings,
    Usage,
)
from .base import INLINE_CHARS, OFFLINE_EMBEDDING_DIMENSIONS, OFFLINE_EMBEDDING_MODEL
from .text import CJK_CHAR, STOPWORDS, tokenize

# Each feature gets a stable 64-bit hash (blake2b, never Python's salted hash): its low 46 bits
# pick the bucket and the sign, the next 2 say its kind, which sets its weight. A token's word
# and character n-gram features are summed into a small sparse vector once and cached, since
# words repeat across texts far more often than they are new; a text is then the sum of its
# distinct tokens' vectors, each weighted 1 + ln(count), plus its word pairs, whose hashes are
# mixed from the two words' hashes inside numpy. One bincount builds a whole batch.

_HASH_BITS = 46
_HASH_MASK = np.uint64((1 << _HASH_BITS) - 1)
_SIGN_BIT = np.uint64(_HASH_BITS - 1)
_WORD, _PAIR, _NGRAM, _STOPWORD = 0, 1, 2, 3
# Weight of one feature of each kind (before tf), chosen on the Cranfield set: word pairs
# collide too often in 512 dimensions to weigh more.
_KIND_WEIGHTS = np.array([1.0, 0.2, 0.3, 0.05])
_NGRAM_SIZES = (3, 4, 5)
# Stands for an empty text, which gets a fixed unit vector: a zero vector has no cosine.
_EMPTY = "\x00"
_BATCH = 4096


def _stable_hash(text: str, kind: int) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") & ((1 << _HASH_BITS) - 1)) | (kind << _HASH_BITS)


def _cells_and_values(hashes: np.ndarray, dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket and signed kind weight of each feature hash."""
    kinds = ((hashes >> np.uint64(_HASH_BITS)) & np.uint64(3)).astype(np.intp)
    signs = 1.0 - 2.0 * ((hashes >> _SIGN_BIT) & np.uint64(1)).astype(np.float64)
    cells = ((hashes & _HASH_MASK) % np.uint64(dimensions)).astype(np.intp)
    return cells, _KIND_WEIGHTS[kinds] * signs


# Per dimension: token -> (own hash, cells, values). A plain dict is the fastest lookup here;
# it is emptied when it grows past the bound.
_TOKEN_VECTORS: dict[int, dict[str, tuple[int, np.ndarray, np.ndarray]]] = {}
_TOKEN_VECTORS_BOUND = 1 << 18


def _token_vector(token: str, dimensions: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(the token's own hash, for word pairs; the cells and values of its sparse vector)."""
    grams: set[str] = set()
    if token in STOPWORDS:
        own = _stable_hash(token, _STOPWORD)
    elif token == _EMPTY or CJK_CHAR.fullmatch(token):
        own = _stable_hash(token, _WORD)
    else:
        own, marked = _stable_hash(token, _WORD), f"<{token}>"
        grams = {marked[i : i + n] for n in _NGRAM_SIZES for i in range(len(marked) - n + 1)}
    hashes = [own, *(_stable_hash(gram, _NGRAM) for gram in sorted(grams))]
    cells, values = _cells_and_values(np.array(hashes, dtype=np.uint64), dimensions)
    cells, inverse = np.unique(cells, return_inverse=True)
    return own, cells, np.bincount(inverse, weights=values)


def _token_vectors(dimensions: int) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    cache = _TOKEN_VECTORS.setdefault(dimensions, {})
    if len(cache) > _TOKEN_VECTORS_BOUND:
        cache.clear()
    return cache


def _mix_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Stable hashes of word pairs from the words' own hashes (splitmix64 finaliser)."""
    mixed = first * np.uint64(0x9E3779B97F4A7C15) ^ (second + np.uint64(0x632BE59BD9B4E019))
    mixed ^= mixed >> np.uint64(31)
    mixed *= np.uint64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> np.uint64(27)
    return (mixed & _HASH_MASK) | np.uint64(_PAIR << _HASH_BITS)


def _text_vector(
    text: str, dimensions: int, cache: dict[str, tuple[int, np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    tokens = tokenize(text) or [_EMPTY]
    counts = Counter(tokens)
    parts = []
    for token in counts:
        part = cache.get(token)
        if part is None:
            part = cache[token] = _token_vector(token, dimensions)
        parts.append(part)
    tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
    cells = [part[1] for part in parts]
    values = [np.concatenate([part[2] for part in parts]) * np.repeat(tf, list(map(len, cells)))]
    if len(tokens) > 1:
        position = {token: i for i, token in enumerate(counts)}
        own = np.array([part[0] for part in parts], dtype=np.uint64)
        hashes = own[np.fromiter(map(position.__getitem__, tokens), np.intp, len(tokens))]
        pairs, pair_counts = np.unique(_mix_pairs(hashes[:-1], hashes[1:]), return_counts=True)
        pair_cells, pair_values = _cells_and_values(pairs, dimensions)
        cells.append(pair_cells)
        values.append(pair_values * (1.0 + np.log(pair_counts)))
    return np.concatenate(cells), np.concatenate(values)


def hashing_vectors(texts: Sequence[str], dimensions: int) -> np.ndarray:
    """L2-normalised hashing vectors, one row per text (float32)."""
    rows = np.zeros((len(texts), dimensions), dtype=np.float32)
    for start in range(0, len(texts), _BATCH):
        cache = _token_vectors(dimensions)
        batch = [_text_vector(text, dimensions, cache) for text in texts[start : start + _BATCH]]
        offsets = np.arange(len(batch)) * dimensions
        cells = np.concatenate([c + offset for (c, _), offset in zip(batch, offsets, strict=True)])
        values = np.concatenate([v for _, v in batch])
        block = np.bincount(cells, weights=values, minlength=len(batch) * dimensions)
        block = block.reshape(len(batch), dimensions)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        rows[start : start + len(batch)] = block / np.where(norms == 0.0, 1.0, norms)
    return rows


class HashingEmbedder:
    """Vectors from hashed words, word pairs and character 3- to 5-grams (signed hashing,
    sublinear tf, L2-normalised). An empty text gets one fixed unit vector, never zeros:
    a zero vector has no cosine distance."""

    model = OFFLINE_EMBEDDING_MODEL

    def __init__(self, dimensions: int = OFFLINE_EMBEDDING_DIMENSIONS):
        if dimensions < 1:
            raise ValueError("dimensions must be positive")
        self.dimensions = dimensions

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        texts = list(texts)
        if sum(map(len, texts)) > INLINE_CHARS:
            vectors = await asyncio.to_thread(hashing_vectors, texts, self.dimensions)
        else:
            vectors = hashing_vectors(texts, self.dimensions)
        tokens = sum(count_tokens(text) for text in texts)
        return Embeddings(vectors=vectors.tolist(), usage=Usage(tokens, 0, estimated=True))
