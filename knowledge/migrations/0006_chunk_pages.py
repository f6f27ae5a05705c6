"""Chunk rows without a GIN index on their terms (full-text search reads the postings of
0005), in pages half filled.

A row updated in place (HOT) needs free room in its page and no indexed column changed: then
no index gets a new entry. Indexing flips `live` on every chunk of a document, the console
and the API flip `enabled`, and every retrieval counts hits; with full pages each of those
updates inserted the row again into every index, the HNSW graph included (about a
millisecond per 512-dimension vector). New pages are now filled to half; existing ones as
they are rewritten. The index is dropped concurrently: writes go on meanwhile.
"""

from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("knowledge", "0005_search_postings")]

    operations = [
        RemoveIndexConcurrently(model_name="chunk", name="chunk_terms"),
        migrations.RunSQL(
            "ALTER TABLE knowledge_chunk SET (fillfactor = 50)",
            reverse_sql="ALTER TABLE knowledge_chunk RESET (fillfactor)",
        ),
    ]
