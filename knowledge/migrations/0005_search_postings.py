"""Postings and term statistics for BM25, kept by triggers on knowledge_chunk.

Full-text search used to unnest the tsvector of every chunk holding a query term, which grows
with the collection (a frequent word makes every chunk a candidate). It now reads per-term
lists: knowledge_posting (dataset, term, chunk → tf, dl, document), whose primary key covers
every column so a list is read from the index alone, and knowledge_term (dataset, term → df,
max tf). Statement-level triggers on knowledge_chunk derive both, and the dataset's chunk and
term counts, from the chunks that are searched (searchable, enabled, live), in the same
transaction as the write, whichever code makes it (store functions, ORM updates and deletes,
cascades). The SQL is written out here, not imported, so the migration stays as it was when
applied.

Creating the triggers locks knowledge_chunk against writes (not reads) until the backfill of
existing chunks commits: about half a minute per 100,000 chunks.
"""

import django.db.models.manager
from django.db import migrations, models

# Terms compare byte by byte (COLLATE "C"): cheaper in every index descent, and a term has
# no locale. The postings' key is added after the backfill, which is faster than growing it.
TABLES = """
CREATE TABLE knowledge_term (
    dataset_id uuid NOT NULL,
    term text COLLATE "C" NOT NULL,
    df integer NOT NULL,
    max_tf smallint NOT NULL,
    PRIMARY KEY (dataset_id, term)
);
CREATE TABLE knowledge_posting (
    dataset_id uuid NOT NULL,
    term text COLLATE "C" NOT NULL,
    chunk_id uuid NOT NULL,
    document_id uuid NOT NULL,
    tf smallint NOT NULL,
    dl integer NOT NULL
);
"""

POSTING_KEY = """
ALTER TABLE knowledge_posting
    ADD PRIMARY KEY (dataset_id, term, chunk_id) INCLUDE (tf, dl, document_id);
ANALYZE knowledge_posting;
ANALYZE knowledge_term;
"""

DROP_TABLES = "DROP TABLE knowledge_posting; DROP TABLE knowledge_term;"

# `gone`: searched chunks (as they were) that leave search or whose terms change; `come`: the
# same, as they are now. A chunk's tf for a term is its number of positions in the tsvector
# (PostgreSQL keeps at most 256), its length the term_count written with it.
FUNCTIONS = """
CREATE TYPE knowledge_search_row AS (
    chunk_id uuid, dataset_id uuid, document_id uuid, terms tsvector, length integer
);

-- Sorting and grouping a few thousand chunks' terms spills past the default work_mem.
CREATE FUNCTION knowledge_search_apply(gone knowledge_search_row[], come knowledge_search_row[])
RETURNS void LANGUAGE plpgsql SET work_mem = '64MB' AS $$
BEGIN
    IF coalesce(cardinality(gone), 0) = 0 AND coalesce(cardinality(come), 0) = 0 THEN
        RETURN;
    END IF;
    -- Writers of a dataset queue here, before touching its terms: two transactions that
    -- each update many term rows could otherwise lock them in opposite orders.
    PERFORM 1 FROM knowledge_dataset
    WHERE id IN (SELECT dataset_id FROM unnest(gone) UNION SELECT dataset_id FROM unnest(come))
    ORDER BY id FOR NO KEY UPDATE;

    DELETE FROM knowledge_posting p
    USING unnest(gone) g, unnest(tsvector_to_array(g.terms)) l(term)
    WHERE p.dataset_id = g.dataset_id AND p.term = l.term AND p.chunk_id = g.chunk_id;

    INSERT INTO knowledge_posting (dataset_id, term, chunk_id, document_id, tf, dl)
    SELECT c.dataset_id, l.lexeme, c.chunk_id, c.document_id,
           coalesce(array_length(l.positions, 1), 1), c.length
    FROM unnest(come) c, unnest(c.terms) l
    ORDER BY 1, 2, 3;

    INSERT INTO knowledge_term AS t (dataset_id, term, df, max_tf)
    SELECT dataset_id, term, sum(delta), max(tf)
    FROM (
        SELECT c.dataset_id, l.lexeme, 1, coalesce(array_length(l.positions, 1), 1)
        FROM unnest(come) c, unnest(c.terms) l
        UNION ALL
        SELECT g.dataset_id, l.term, -1, 0
        FROM unnest(gone) g, unnest(tsvector_to_array(g.terms)) l(term)
    ) AS d(dataset_id, term, delta, tf)
    GROUP BY dataset_id, term
    ORDER BY dataset_id, term
    ON CONFLICT (dataset_id, term) DO UPDATE
        SET df = t.df + excluded.df, max_tf = greatest(t.max_tf, excluded.max_tf)
        WHERE excluded.df <> 0 OR excluded.max_tf > t.max_tf;

    DELETE FROM knowledge_term t
    USING (
        SELECT DISTINCT g.dataset_id, l.term
        FROM unnest(gone) g, unnest(tsvector_to_array(g.terms)) l(term)
    ) x
    WHERE t.dataset_id = x.dataset_id AND t.term = x.term AND t.df <= 0;

    UPDATE knowledge_dataset d
    SET chunk_count = d.chunk_count + s.chunks, term_count = d.term_count + s.length
    FROM (
        SELECT dataset_id, sum(sign)::integer AS chunks, sum(sign * length)::bigint AS length
        FROM (
            SELECT dataset_id, 1, length FROM unnest(come)
            UNION ALL
            SELECT dataset_id, -1, length FROM unnest(gone)
        ) AS x(dataset_id, sign, length)
        GROUP BY dataset_id
    ) s
    WHERE d.id = s.dataset_id AND (s.chunks <> 0 OR s.length <> 0);
END
$$;

CREATE FUNCTION knowledge_chunk_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM knowledge_search_apply(
        NULL,
        (SELECT array_agg(ROW(n.id, n.dataset_id, n.document_id, n.terms, n.term_count)
                              ::knowledge_search_row)
         FROM new_rows n WHERE n.searchable AND n.enabled AND n.live)
    );
    RETURN NULL;
END
$$;

-- The planner knows nothing of transition tables: joined in a nested loop, an update of
-- thousands of chunks compared every old row with every new one.
CREATE FUNCTION knowledge_chunk_updated() RETURNS trigger LANGUAGE plpgsql
SET enable_nestloop = off SET work_mem = '64MB' AS $$
BEGIN
    -- Most updates (hit counts, keywords, vectors) leave search as it was: nothing to do.
    PERFORM knowledge_search_apply(
        (SELECT array_agg(ROW(o.id, o.dataset_id, o.document_id, o.terms, o.term_count)
                              ::knowledge_search_row)
         FROM old_rows o LEFT JOIN new_rows n ON n.id = o.id
         WHERE o.searchable AND o.enabled AND o.live
           AND NOT (n.id IS NOT NULL AND n.searchable AND n.enabled AND n.live
                    AND n.dataset_id = o.dataset_id AND n.document_id = o.document_id
                    AND n.term_count = o.term_count AND n.terms IS NOT DISTINCT FROM o.terms)),
        (SELECT array_agg(ROW(n.id, n.dataset_id, n.document_id, n.terms, n.term_count)
                              ::knowledge_search_row)
         FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
         WHERE n.searchable AND n.enabled AND n.live
           AND NOT (o.id IS NOT NULL AND o.searchable AND o.enabled AND o.live
                    AND o.dataset_id = n.dataset_id AND o.document_id = n.document_id
                    AND o.term_count = n.term_count AND o.terms IS NOT DISTINCT FROM n.terms))
    );
    RETURN NULL;
END
$$;

CREATE FUNCTION knowledge_chunk_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM knowledge_search_apply(
        (SELECT array_agg(ROW(o.id, o.dataset_id, o.document_id, o.terms, o.term_count)
                              ::knowledge_search_row)
         FROM old_rows o WHERE o.searchable AND o.enabled AND o.live),
        NULL
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER knowledge_chunk_search_insert AFTER INSERT ON knowledge_chunk
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_chunk_inserted();
CREATE TRIGGER knowledge_chunk_search_update AFTER UPDATE ON knowledge_chunk
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_chunk_updated();
CREATE TRIGGER knowledge_chunk_search_delete AFTER DELETE ON knowledge_chunk
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_chunk_deleted();
"""

DROP_FUNCTIONS = """
DROP TRIGGER knowledge_chunk_search_delete ON knowledge_chunk;
DROP TRIGGER knowledge_chunk_search_update ON knowledge_chunk;
DROP TRIGGER knowledge_chunk_search_insert ON knowledge_chunk;
DROP FUNCTION knowledge_chunk_deleted();
DROP FUNCTION knowledge_chunk_updated();
DROP FUNCTION knowledge_chunk_inserted();
DROP FUNCTION knowledge_search_apply(knowledge_search_row[], knowledge_search_row[]);
DROP TYPE knowledge_search_row;
"""

BACKFILL = """
SET LOCAL work_mem = '256MB';
SET LOCAL maintenance_work_mem = '512MB';
INSERT INTO knowledge_posting (dataset_id, term, chunk_id, document_id, tf, dl)
SELECT c.dataset_id, l.lexeme, c.id, c.document_id,
       coalesce(array_length(l.positions, 1), 1), c.term_count
FROM knowledge_chunk c, unnest(c.terms) l
WHERE c.searchable AND c.enabled AND c.live;

INSERT INTO knowledge_term (dataset_id, term, df, max_tf)
SELECT dataset_id, term, count(*), max(tf) FROM knowledge_posting GROUP BY dataset_id, term;

UPDATE knowledge_dataset d
SET chunk_count = s.chunks, term_count = s.length
FROM (
    SELECT d2.id, count(c.id) AS chunks, coalesce(sum(c.term_count), 0) AS length
    FROM knowledge_dataset d2
    LEFT JOIN knowledge_chunk c
      ON c.dataset_id = d2.id AND c.searchable AND c.enabled AND c.live
    GROUP BY d2.id
) s
WHERE d.id = s.id;
"""


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0004_hit_test_history")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Posting",
                    fields=[
                        (
                            "pk",
                            models.CompositePrimaryKey(
                                "dataset_id",
                                "term",
                                "chunk_id",
                                blank=True,
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        ("dataset_id", models.UUIDField()),
                        ("term", models.TextField()),
                        ("chunk_id", models.UUIDField()),
                        ("document_id", models.UUIDField()),
                        ("tf", models.SmallIntegerField()),
                        ("dl", models.IntegerField()),
                    ],
                    managers=[("dangerously_unscoped", django.db.models.manager.Manager())],
                ),
                migrations.CreateModel(
                    name="Term",
                    fields=[
                        (
                            "pk",
                            models.CompositePrimaryKey(
                                "dataset_id",
                                "term",
                                blank=True,
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        ("dataset_id", models.UUIDField()),
                        ("term", models.TextField()),
                        ("df", models.IntegerField()),
                        ("max_tf", models.SmallIntegerField()),
                    ],
                    managers=[("dangerously_unscoped", django.db.models.manager.Manager())],
                ),
            ],
            # Written out: Django cannot say INCLUDE on a primary key.
            database_operations=[
                migrations.RunSQL(TABLES, reverse_sql=DROP_TABLES),
                migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
                migrations.RunSQL(POSTING_KEY, reverse_sql=migrations.RunSQL.noop),
            ],
        ),
        migrations.RunSQL(FUNCTIONS, reverse_sql=DROP_FUNCTIONS),
    ]
