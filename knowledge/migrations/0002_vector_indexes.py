from django.db import migrations

# The SQL is written out here, not imported, so the migration stays as it was when applied.
DIMENSIONS = (384, 512, 768, 1024, 1536, 3072)


def _sql(dimensions: int) -> str:
    kind = "vector" if dimensions <= 2000 else "halfvec"
    return (
        f"CREATE INDEX IF NOT EXISTS chunk_embedding_{dimensions} ON knowledge_chunk "
        f"USING hnsw ((embedding::{kind}({dimensions})) {kind}_cosine_ops) "
        f"WHERE embedding_dim = {dimensions}"
    )


class Migration(migrations.Migration):
    """One partial HNSW index per common embedding dimension (see knowledge/vectors.py)."""

    dependencies = [("knowledge", "0001_initial")]

    operations = [
        migrations.RunSQL(_sql(d), reverse_sql=f"DROP INDEX IF EXISTS chunk_embedding_{d}")
        for d in DIMENSIONS
    ]
