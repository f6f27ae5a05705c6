"""The built-in offline models: no key, no download, deterministic.

They make a fresh install work end to end: `HashingEmbedder` turns text into vectors by
feature hashing, `LexicalReranker` orders documents by BM25, and `ExtractiveChat` answers a
question with the sentences of the conversation's context that match it best. None of them
needs Django.
"""

from .base import (
    OFFLINE_CHAT_MODEL,
    OFFLINE_EMBEDDING_DIMENSIONS,
    OFFLINE_EMBEDDING_MODEL,
    OFFLINE_RERANK_MODEL,
)
from .chat import DONT_KNOW, NO_CONTEXT, ExtractiveChat, extractive_answer, split_passages
from .embedder import HashingEmbedder, hashing_vectors
from .lexical import LexicalReranker, bm25_scores
from .text import STOPWORDS, normalise, tokenize

__all__ = [
    "DONT_KNOW",
    "NO_CONTEXT",
    "OFFLINE_CHAT_MODEL",
    "OFFLINE_EMBEDDING_DIMENSIONS",
    "OFFLINE_EMBEDDING_MODEL",
    "OFFLINE_RERANK_MODEL",
    "STOPWORDS",
    "ExtractiveChat",
    "HashingEmbedder",
    "LexicalReranker",
    "bm25_scores",
    "extractive_answer",
    "hashing_vectors",
    "normalise",
    "split_passages",
    "tokenize",
]
