"""Chunk writes (binary COPY, then one upsert) and the search data PostgreSQL derives from
the chunks by triggers: postings, term statistics and each dataset's counts must equal what
the searched chunks hold after any write, whichever code makes it."""

import threading
from collections import Counter

import numpy as np
import pytest
from django.db import connection, connections, transaction

from knowledge.models import Chunk, Dataset, Document, Posting, Term
from knowledge.search import analyze
from knowledge.store import (
    ChunkRow,
    chunks_delete_after,
    chunks_write,
    content_hash,
    dataset_stats_refresh,
    document_set_live,
)
from tenants.context import tenant_context


@pytest.fixture
def make_document(tenant):
    def make(dataset_name="Docs", tenant_=None, name="doc"):
        owner = tenant_ or tenant
        with tenant_context(owner):
            dataset, _ = Dataset.objects.get_or_create(name=dataset_name)
            document = Document.objects.create(dataset=dataset, name=name)
        return dataset, document

    return make


def write(dataset, document, rows):
    chunks_write(
        tenant_id=dataset.tenant_id, dataset_id=dataset.pk, document_id=document.pk, rows=rows
    )


def texts(dataset, document, contents, *, start=0):
    write(
        dataset, document, [ChunkRow(position=start + i, content=t) for i, t in enumerate(contents)]
    )


def search_data_matches_chunks():
    """Postings, df and counts against a recount from the chunks themselves."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.dataset_id, l.lexeme, c.id, c.document_id, array_length(l.positions, 1),
                   c.term_count
            FROM knowledge_chunk c, unnest(c.terms) l
            WHERE c.searchable AND c.enabled AND c.live
            """
        )
        expected = sorted(cursor.fetchall())
        cursor.execute(
            """
            SELECT d.id, count(c.id), coalesce(sum(c.term_count), 0)
            FROM knowledge_dataset d
            LEFT JOIN knowledge_chunk c
              ON c.dataset_id = d.id AND c.searchable AND c.enabled AND c.live
            GROUP BY d.id
            """
        )
        counts = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
    postings = sorted(
        Posting.dangerously_unscoped.values_list(
            "dataset_id", "term", "chunk_id", "document_id", "tf", "dl"
        )
    )
    assert postings == expected
    df = Counter((dataset_id, term) for dataset_id, term, *_ in expected)
    max_tf: dict = {}
    for dataset_id, term, _, _, tf, _ in expected:
        max_tf[dataset_id, term] = max(tf, max_tf.get((dataset_id, term), 0))
    terms = {(t.dataset_id, t.term): t for t in Term.dangerously_unscoped.all()}
    assert {key: t.df for key, t in terms.items()} == dict(df)
    # The largest tf is a bound: it may stay above what is left, never below.
    assert all(terms[key].max_tf >= tf for key, tf in max_tf.items())
    stored = {d.pk: (d.chunk_count, d.term_count) for d in Dataset.dangerously_unscoped.all()}
    assert stored == counts
    return len(postings)


def test_write_keeps_the_contract(make_document):
    dataset, document = make_document()
    vector = np.linspace(-1, 1, 512)
    write(
        dataset,
        document,
        [
            ChunkRow(
                position=0,
                content="Weft weaves 知识库",
                answer="Warp threads",
                tokens=7,
                embedding=vector,
                metadata={"page": 3, "title": "Ünïcode"},
            ),
            ChunkRow(position=1, content="tiny", embedding=[0.5, -0.25, 1.0]),
            ChunkRow(position=2, content="no vector, parent", searchable=False),
        ],
    )
    chunks = {c.position: c for c in Chunk.dangerously_unscoped.filter(document=document)}
    first, second, third = chunks[0], chunks[1], chunks[2]
    assert first.content_hash == content_hash("Weft weaves 知识库", "Warp threads")
    assert first.term_count == len(analyze("Weft weaves 知识库\nWarp threads"))
    assert frequencies(first) == Counter(analyze("Weft weaves 知识库\nWarp threads"))
    assert (first.tokens, first.answer, first.metadata) == (
        7,
        "Warp threads",
        {"page": 3, "title": "Ünïcode"},
    )
    assert first.embedding_dim == 512
    assert np.allclose(first.embedding, vector, atol=1e-6)
    assert second.embedding_dim == 3 and list(second.embedding) == [0.5, -0.25, 1.0]
    assert third.embedding is None and third.embedding_dim is None and not third.searchable
    assert all(not c.live and c.enabled and c.keywords == [] for c in chunks.values())


def frequencies(chunk) -> Counter:
    """Each term of the chunk's tsvector with its number of positions: BM25's tf."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lexeme, array_length(positions, 1) "
            "FROM knowledge_chunk, unnest(terms) WHERE id = %s",
            [chunk.pk],
        )
        return Counter(dict(cursor.fetchall()))


def test_text_survives_the_binary_copy(make_document):
    dataset, document = make_document()
    awkward = [
        "tab\there, new\nline, carriage\rreturn, back\\slash, quote ' and \" done",
        "emoji 🧵 and accents naïve Straße, 中文 and 한국어",
        "",
        "x" * 20_000,
    ]
    texts(dataset, document, awkward)
    stored = list(
        Chunk.dangerously_unscoped.filter(document=document)
        .order_by("position")
        .values_list("content", flat=True)
    )
    assert stored == awkward


def test_rewriting_replaces_in_place_and_keeps_state(make_document):
    dataset, document = make_document()
    texts(dataset, document, ["one", "two", "three"])
    before = dict(
        Chunk.dangerously_unscoped.filter(document=document).values_list("position", "id")
    )
    document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=True)
    write(dataset, document, [ChunkRow(position=1, content="two again", metadata={"v": 2})])
    texts(dataset, document, ["one", "two again", "three"])
    rows = list(
        Chunk.dangerously_unscoped.filter(document=document)
        .order_by("position")
        .values_list("position", "id", "content", "live", "metadata")
    )
    assert [(p, i) for p, i, *_ in rows] == sorted(before.items())
    assert [(c, live) for _, _, c, live, _ in rows] == [
        ("one", True),
        ("two again", True),
        ("three", True),
    ]
    search_data_matches_chunks()


def test_new_chunks_get_ids_in_time_order(make_document):
    """Later chunks sort after earlier ones: their index entries go to the end of a range."""
    dataset, document = make_document()
    texts(dataset, document, ["a", "b", "c"])
    texts(dataset, document, ["d"], start=3)
    ids = list(
        Chunk.dangerously_unscoped.filter(document=document)
        .order_by("position")
        .values_list("id", flat=True)
    )
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert all(i.version == 7 for i in ids)


def test_two_writes_in_one_transaction_stay_apart(make_document):
    dataset, first = make_document(name="first")
    _, second = make_document(name="second")
    with transaction.atomic():
        texts(dataset, first, ["a1", "a2"])
        texts(dataset, second, ["b1"])
    assert sorted(
        Chunk.dangerously_unscoped.filter(dataset=dataset).values_list("document__name", "content")
    ) == [("first", "a1"), ("first", "a2"), ("second", "b1")]


def test_an_empty_write_does_nothing(make_document):
    dataset, document = make_document()
    write(dataset, document, [])
    assert not Chunk.dangerously_unscoped.exists()


def test_search_data_follows_every_kind_of_write(make_document, tenant):
    dataset, document = make_document()
    _, other = make_document(name="other")
    texts(dataset, document, ["alpha beta beta", "beta gamma", "gamma delta 知识库", "lone"])
    texts(dataset, other, ["alpha alpha alpha", "omega"])
    assert search_data_matches_chunks() == 0  # nothing is live yet

    document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=True)
    document_set_live(document_id=other.pk, dataset_id=dataset.pk, live=True)
    assert search_data_matches_chunks() > 0
    assert Term.dangerously_unscoped.get(dataset_id=dataset.pk, term="alpha").df == 2
    assert Term.dangerously_unscoped.get(dataset_id=dataset.pk, term="alpha").max_tf == 3

    # Text edited in place: old terms leave, new ones come, df follows.
    write(dataset, document, [ChunkRow(position=0, content="alpha zeta", answer="beta")])
    search_data_matches_chunks()
    # A chunk disabled through the ORM (the console and the API do this).
    Chunk.dangerously_unscoped.filter(document=document, position=1).update(enabled=False)
    search_data_matches_chunks()
    # Several chunks at once, through bulk_update.
    chunks = list(Chunk.dangerously_unscoped.filter(document=other))
    for chunk in chunks:
        chunk.live = False
    Chunk.dangerously_unscoped.bulk_update(chunks, ["live"])
    search_data_matches_chunks()
    # A parent is kept for its text, never searched.
    Chunk.dangerously_unscoped.filter(document=document, position=2).update(searchable=False)
    search_data_matches_chunks()
    # Counters a search bumps change nothing searched.
    postings = Posting.dangerously_unscoped.count()
    Chunk.dangerously_unscoped.filter(document=document).update(hit_count=5, keywords=["k"])
    assert Posting.dangerously_unscoped.count() == postings
    search_data_matches_chunks()
    # A re-split that made fewer chunks, then a deleted chunk, then the whole document.
    Chunk.dangerously_unscoped.filter(document=document, position=1).update(enabled=True)
    chunks_delete_after(document_id=document.pk, dataset_id=dataset.pk, position=1)
    search_data_matches_chunks()
    Chunk.dangerously_unscoped.get(document=document, position=0).delete()
    search_data_matches_chunks()
    with tenant_context(tenant):
        Document.objects.filter(pk=other.pk).delete()
    search_data_matches_chunks()
    # A repair recount agrees with what the triggers kept.
    before = Dataset.dangerously_unscoped.values_list("chunk_count", "term_count").get(
        pk=dataset.pk
    )
    dataset_stats_refresh(dataset_id=dataset.pk)
    after = Dataset.dangerously_unscoped.values_list("chunk_count", "term_count").get(pk=dataset.pk)
    assert before == after
    # Deleting the tenant takes everything with it.
    tenant.delete()
    assert not Posting.dangerously_unscoped.exists() and not Term.dangerously_unscoped.exists()


def test_search_data_is_kept_per_dataset(make_document, other_tenant):
    mine, mine_doc = make_document("Mine")
    theirs, theirs_doc = make_document("Theirs", other_tenant)
    texts(mine, mine_doc, ["shared word", "shared"])
    texts(theirs, theirs_doc, ["shared"])
    document_set_live(document_id=mine_doc.pk, dataset_id=mine.pk, live=True)
    document_set_live(document_id=theirs_doc.pk, dataset_id=theirs.pk, live=True)
    search_data_matches_chunks()
    assert Term.dangerously_unscoped.get(dataset_id=mine.pk, term="shared").df == 2
    assert Term.dangerously_unscoped.get(dataset_id=theirs.pk, term="shared").df == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_one_dataset_keep_exact_counts(tenant):
    """Two workers index documents of one dataset at once: no deadlock, no lost update."""
    with tenant_context(tenant):
        dataset = Dataset.objects.create(name="Busy")
        documents = [Document.objects.create(dataset=dataset, name=f"d{i}") for i in range(4)]
    shared = "common words shared by every chunk of every document"
    errors: list[BaseException] = []

    def index(document, worker: int) -> None:
        try:
            for batch in range(5):
                texts(
                    dataset,
                    document,
                    [f"{shared} w{worker} b{batch} c{i}" for i in range(20)],
                    start=batch * 20,
                )
            document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=True)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=index, args=(document, i)) for i, document in enumerate(documents)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    search_data_matches_chunks()
    dataset.refresh_from_db()
    assert dataset.chunk_count == 4 * 100
    assert Term.dangerously_unscoped.get(dataset_id=dataset.pk, term="common").df == 400
