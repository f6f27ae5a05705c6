"""Vector indexes: HNSW needs a fixed dimension, and datasets use models of many, so every
dimension gets its own partial expression index over the one `embedding` column.

Dimensions up to 2,000 are indexed as `vector(N)`; larger ones (up to 4,000, e.g. 3,072 for
text-embedding-3-large) as `halfvec(N)`, pgvector's limit for HNSW. Searches must use the same
expression as the index (`vector_expression`) for the planner to pick it.
"""

from __future__ import annotations

from django.db import connection

# Indexed by the migrations: the built-in embedder and the usual hosted model sizes.
COMMON_DIMENSIONS = (384, 512, 768, 1024, 1536, 3072)
MAX_VECTOR_DIMENSIONS = 2000
MAX_HALFVEC_DIMENSIONS = 4000


class UnsupportedDimension(ValueError):
    pass


def vector_type(dimensions: int) -> str:
    if not 1 <= dimensions <= MAX_HALFVEC_DIMENSIONS:
        raise UnsupportedDimension(
            f"Embeddings of {dimensions} dimensions cannot be indexed "
            f"(at most {MAX_HALFVEC_DIMENSIONS})."
        )
    return "vector" if dimensions <= MAX_VECTOR_DIMENSIONS else "halfvec"


def vector_cast(dimensions: int) -> str:
    """The type a vector of this dimension is indexed and compared as, e.g. `vector(512)`."""
    return f"{vector_type(dimensions)}({int(dimensions)})"


def vector_expression(dimensions: int, column: str = "embedding") -> str:
    """The indexed expression for this dimension, e.g. `(embedding::vector(512))`."""
    return f"({column}::{vector_cast(dimensions)})"


def index_name(dimensions: int) -> str:
    return f"chunk_embedding_{int(dimensions)}"


def create_index_sql(dimensions: int, *, concurrently: bool = False) -> str:
    kind = vector_type(dimensions)
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS "
        f"{index_name(dimensions)} ON knowledge_chunk USING hnsw "
        f"({vector_expression(dimensions)} {kind}_cosine_ops) "
        f"WHERE embedding_dim = {int(dimensions)}"
    )


def ensure_index(dimensions: int) -> None:
    """Create the index for a dimension no migration made (outside a transaction: built
    concurrently, so writes to the table go on meanwhile)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_indexes WHERE tablename = 'knowledge_chunk' AND indexname = %s",
            [index_name(dimensions)],
        )
        if cursor.fetchone() is None:
            cursor.execute(
                create_index_sql(dimensions, concurrently=not connection.in_atomic_block)
            )
