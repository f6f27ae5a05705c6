"""Chunk storage and search in the real PostgreSQL with pgvector: idempotent writes, filtered
HNSW search that still fills top-k, BM25 ranking, unspaced scripts."""

import math
import random
from collections import Counter

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from knowledge import search
from knowledge.models import Chunk, Dataset, Document, Term
from knowledge.search import analyze, bm25, semantic
from knowledge.store import ChunkRow, chunks_write, document_set_live
from knowledge.vectors import ensure_index
from providers.runtime.offline import hashing_vectors
from tenants.context import tenant_context


@pytest.fixture
def make_document(tenant):
    def make(dataset_name="Docs", tenant_=None):
        owner = tenant_ or tenant
        with tenant_context(owner):
            dataset, _ = Dataset.objects.get_or_create(name=dataset_name)
            document = Document.objects.create(dataset=dataset, name=f"doc in {dataset_name}")
        return dataset, document

    return make


def write(dataset, document, texts, *, embed=True, start=0):
    vectors = hashing_vectors(texts, 512) if embed else [None] * len(texts)
    chunks_write(
        tenant_id=dataset.tenant_id,
        dataset_id=dataset.pk,
        document_id=document.pk,
        rows=[
            ChunkRow(position=start + i, content=text, embedding=None if v is None else list(v))
            for i, (text, v) in enumerate(zip(texts, vectors, strict=True))
        ],
    )
    document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=True)


def content_of(ids):
    by_id = dict(Chunk.dangerously_unscoped.filter(pk__in=ids).values_list("pk", "content"))
    return [by_id[i] for i in ids]


def test_analyze_words_and_cjk_pairs():
    assert analyze("Résumé of the LOOM, v2!") == ["resume", "of", "the", "loom", "v2"]
    assert analyze("知识库") == ["知", "识", "知识", "库", "识库"]


def test_terms_are_kept_as_analyzed_by_postgresql(make_document):
    dataset, document = make_document()
    text = "Weft weaves 2024 H2O co2e 知识库 naïve Straße"
    write(dataset, document, [text], embed=False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT array(SELECT lexeme FROM unnest(terms)) FROM knowledge_chunk")
        (lexemes,) = cursor.fetchone()
    assert set(lexemes) == set(analyze(text))


def test_rewriting_a_document_never_duplicates(make_document):
    dataset, document = make_document()
    write(dataset, document, ["first", "second", "third"])
    write(dataset, document, ["first again", "second", "third"])
    rows = list(
        Chunk.dangerously_unscoped.filter(document=document).values_list("position", "content")
    )
    assert rows == [(0, "first again"), (1, "second"), (2, "third")]
    dataset.refresh_from_db()
    assert dataset.chunk_count == 3 and dataset.term_count == 4


def test_semantic_search_fills_top_k_inside_the_filter(make_document, tenant, other_tenant):
    mine, mine_doc = make_document("Mine")
    crowd, crowd_doc = make_document("Crowd")
    theirs, theirs_doc = make_document("Theirs", other_tenant)
    loom = [f"the loom weaves pattern {i}" for i in range(30)]
    write(crowd, crowd_doc, loom * 20, start=0)  # 600 near neighbours in another dataset
    write(theirs, theirs_doc, loom, start=0)
    write(mine, mine_doc, [f"loom notes {i}" for i in range(12)] + ["soup recipe"] * 3)
    query = list(hashing_vectors(["the loom weaves"], 512)[0])
    found = semantic(tenant_id=tenant.pk, dataset_ids=[mine.pk], vector=query, top_k=10)
    assert len(found) == 10
    assert all(c.startswith("loom notes") for c in content_of([i for i, _ in found]))
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1
    nothing = semantic(tenant_id=other_tenant.pk, dataset_ids=[mine.pk], vector=query, top_k=10)
    assert nothing == []


def test_semantic_search_uses_the_dimensions_index(make_document, tenant):
    dataset, document = make_document()
    write(dataset, document, [f"text {i}" for i in range(50)])
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM knowledge_chunk WHERE embedding_dim = 512 "
            "ORDER BY (embedding::vector(512)) <=> %s::vector(512) LIMIT 5",
            ["[" + ",".join(["0.1"] * 512) + "]"],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "chunk_embedding_512" in plan


def test_bm25_prefers_rare_terms_and_shorter_chunks(make_document, tenant):
    dataset, document = make_document()
    write(
        dataset,
        document,
        [
            "the loom and the shuttle",
            "the shuttle",
            "the the the loom",
            "warp and weft threads on a loom with a shuttle and a long long description of it all",
            "nothing related here",
        ],
        embed=False,
    )
    found = bm25(tenant_id=tenant.pk, dataset_ids=[dataset.pk], query="shuttle", top_k=10)
    texts = content_of([i for i, _ in found])
    assert texts[0] == "the shuttle"  # same term, shortest chunk
    assert "nothing related here" not in texts and len(texts) == 3
    both = bm25(tenant_id=tenant.pk, dataset_ids=[dataset.pk], query="loom shuttle", top_k=2)
    assert content_of([i for i, _ in both])[0] == "the loom and the shuttle"


def test_bm25_searches_unspaced_scripts(make_document, tenant):
    dataset, document = make_document()
    write(dataset, document, ["知识库支持混合检索", "工作流引擎", "向量数据库"], embed=False)
    found = bm25(tenant_id=tenant.pk, dataset_ids=[dataset.pk], query="知识库", top_k=3)
    assert content_of([i for i, _ in found])[0] == "知识库支持混合检索"


def test_bm25_is_tenant_and_dataset_scoped(make_document, tenant, other_tenant):
    mine, mine_doc = make_document("Mine")
    other, other_doc = make_document("Other")
    theirs, theirs_doc = make_document("Theirs", other_tenant)
    write(mine, mine_doc, ["alpha beta"], embed=False)
    write(other, other_doc, ["alpha gamma"], embed=False)
    write(theirs, theirs_doc, ["alpha delta"], embed=False)
    found = bm25(tenant_id=tenant.pk, dataset_ids=[mine.pk], query="alpha", top_k=10)
    assert content_of([i for i, _ in found]) == ["alpha beta"]
    assert bm25(tenant_id=tenant.pk, dataset_ids=[theirs.pk], query="alpha", top_k=10) == []
    assert bm25(tenant_id=tenant.pk, dataset_ids=[mine.pk], query="  ,, ", top_k=10) == []


def test_parent_child_links(make_document):
    dataset, document = make_document()
    chunks_write(
        tenant_id=dataset.tenant_id,
        dataset_id=dataset.pk,
        document_id=document.pk,
        rows=[
            ChunkRow(position=0, content="Parent paragraph. Two sentences.", searchable=False),
            ChunkRow(position=1, content="Parent paragraph.", parent_position=0),
            ChunkRow(position=2, content="Two sentences.", parent_position=0),
        ],
    )
    document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=True)
    with tenant_context(dataset.tenant):
        parent = Chunk.objects.get(document=document, position=0)
        assert sorted(parent.children.values_list("position", flat=True)) == [1, 2]
    dataset.refresh_from_db()
    assert dataset.chunk_count == 2  # parents are not searched


def test_chunks_are_searched_only_while_their_document_is_live(make_document, tenant):
    dataset, document = make_document()
    write(dataset, document, ["weft and warp"], embed=False)
    assert bm25(tenant_id=tenant.pk, dataset_ids=[dataset.pk], query="warp", top_k=5)
    document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=False)
    assert bm25(tenant_id=tenant.pk, dataset_ids=[dataset.pk], query="warp", top_k=5) == []
    dataset.refresh_from_db()
    assert dataset.chunk_count == 0


# --- BM25 against a reference --------------------------------------------------------------
# A straightforward BM25 in Python over the chunks' own texts: every searched chunk of the
# datasets, tf and length from `analyze`, df counted, Lucene's idf; ties by id.


def reference_bm25(tenant, dataset_ids, query, top_k, document_ids=None):
    rows = Chunk.dangerously_unscoped.filter(
        tenant=tenant, dataset_id__in=dataset_ids, searchable=True, enabled=True, live=True
    ).values_list("id", "document_id", "content", "answer")
    chunks = [
        (chunk_id, document_id, Counter(terms), len(terms))
        for chunk_id, document_id, content, answer in rows
        for terms in [analyze(f"{content}\n{answer}" if answer else content)]
    ]
    if not chunks:
        return []
    n = len(chunks)
    average_length = max(sum(length for *_, length in chunks) / n, 1.0)
    scores = {}
    for word in set(analyze(query)):
        df = sum(1 for _, _, tf, _ in chunks if word in tf)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for chunk_id, document_id, tf, length in chunks:
            if word in tf and (document_ids is None or document_id in document_ids):
                scores[chunk_id] = scores.get(chunk_id, 0.0) + idf * (tf[word] * 2.2) / (
                    tf[word] + 1.2 * (0.25 + 0.75 * length / average_length)
                )
    return sorted(scores.items(), key=lambda hit: (-hit[1], hit[0]))[:top_k]


def same_ranking(found, expected):
    """The same scores, and the same chunks wherever scores are not tied to 1e-9."""
    assert [round(s, 9) for _, s in found] == [round(s, 9) for _, s in expected]
    assert sorted((round(s, 9), i) for i, s in found) == sorted(
        (round(s, 9), i) for i, s in expected
    )


ZIPF_WORDS = [f"w{rank}" for rank in range(300)]
ZIPF_WEIGHTS = [1 / (rank + 1) for rank in range(300)]
CJK = ["知识库支持混合检索", "向量数据库与全文检索", "工作流引擎调用知识库", "检索增强生成"]


def zipf_text(rng, low=3, high=60):
    words = rng.choices(ZIPF_WORDS, ZIPF_WEIGHTS, k=rng.randint(low, high))
    if rng.random() < 0.9:
        words.append("the")  # in nearly every chunk: idf close to 0, a long list
    if rng.random() < 0.15:
        words.append(rng.choice(CJK))
    if rng.random() < 0.1:
        words += [rng.choice(ZIPF_WORDS[:20])] * rng.randint(2, 6)  # tf well above 1
    rng.shuffle(words)
    return " ".join(words)


@pytest.fixture
def corpus(make_document, tenant, other_tenant):
    """Two datasets searched together and one not, another tenant's, documents not live,
    chunks disabled, parents not searched, answers, CJK; returns (searched datasets,
    documents of the first)."""
    rng = random.Random(20261122)  # noqa: S311 - test text, not a secret
    first, first_doc = make_document("First")
    second, second_doc = make_document("Second")
    aside, aside_doc = make_document("Aside")
    theirs, theirs_doc = make_document("Theirs", other_tenant)
    documents = [first_doc]
    with tenant_context(tenant):
        documents += [Document.objects.create(dataset=first, name=f"more {i}") for i in range(3)]
        pending = Document.objects.create(dataset=first, name="being indexed")
    for dataset, document, count in [
        *[(first, d, 60) for d in documents],
        (second, second_doc, 150),
        (aside, aside_doc, 40),
        (theirs, theirs_doc, 40),
        (first, pending, 30),
    ]:
        rows = [
            ChunkRow(
                position=i,
                content=zipf_text(rng),
                answer=zipf_text(rng, 1, 8) if rng.random() < 0.1 else "",
                searchable=rng.random() > 0.05,
            )
            for i in range(count)
        ]
        chunks_write(
            tenant_id=dataset.tenant_id, dataset_id=dataset.pk, document_id=document.pk, rows=rows
        )
        if document != pending:
            document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=True)
    disabled = list(
        Chunk.dangerously_unscoped.filter(dataset=first).order_by("id").values_list("pk", flat=True)
    )[::9]
    Chunk.dangerously_unscoped.filter(pk__in=disabled).update(enabled=False)
    return [first.pk, second.pk], documents


def queries(count, seed=7):
    rng = random.Random(seed)  # noqa: S311 - test text, not a secret
    made = []
    for _ in range(count):
        words = rng.choices(ZIPF_WORDS, ZIPF_WEIGHTS, k=rng.randint(1, 5))
        if rng.random() < 0.3:
            words.append("the")
        if rng.random() < 0.2:
            words.append(rng.choice(ZIPF_WORDS[200:]))  # rare
        if rng.random() < 0.1:
            words.append("nowhere")
        made.append(" ".join(words))
    return [*made, "知识库", "检索 the", "全文", "the"]


def test_bm25_scores_are_exactly_bm25(corpus, tenant):
    datasets, _ = corpus
    for i, query in enumerate(queries(60)):
        top_k = [1, 3, 10, 40][i % 4]
        same_ranking(
            bm25(tenant_id=tenant.pk, dataset_ids=datasets, query=query, top_k=top_k),
            reference_bm25(tenant, datasets, query, top_k),
        )


@pytest.mark.parametrize("lookup_cost", [0, 10**9])
def test_bm25_both_ways_of_scoring_the_other_terms(corpus, tenant, monkeypatch, lookup_cost):
    """Looked up chunk by chunk (cost 0) or joined from whole lists (cost huge): same."""
    monkeypatch.setattr(search, "LOOKUP_COST", lookup_cost)
    datasets, _ = corpus
    for query in queries(25, seed=11):
        same_ranking(
            bm25(tenant_id=tenant.pk, dataset_ids=datasets, query=query, top_k=10),
            reference_bm25(tenant, datasets, query, 10),
        )


def test_bm25_reads_frequent_terms_only_where_they_matter(corpus, tenant):
    """A rare and a frequent term: the frequent one's list is not read whole."""
    datasets, _ = corpus
    rare = min(
        (t for t in Term.dangerously_unscoped.filter(dataset_id=datasets[1])),
        key=lambda t: (abs(t.df - 12), t.term),
    ).term
    params = {
        "tenant": tenant.pk,
        "datasets": datasets,
        "documents": [],
        "words": sorted({rare, "the"}),
        "top_k": 10,
        "bar": None,
        "all_terms": False,
        "lookup_cost": search.LOOKUP_COST,
        "direct_chunks": search.DIRECT_CHUNKS,
    }
    with connection.cursor() as cursor:
        rest, every_term, found = search._ranked(
            cursor, search._LISTS_SQL.format(documents=""), params
        )
    assert not every_term and rest > 0
    same_ranking(found, reference_bm25(tenant, datasets, f"{rare} the", 10))


def test_bm25_reads_more_terms_when_the_first_guess_falls_short(make_document, tenant):
    """The rarer term only in very long chunks: the chunks that rank hold the other term,
    which the first pass left unread; the second pass must find them."""
    dataset, document = make_document()
    filler = " ".join(f"f{i}" for i in range(300))
    contents = [f"rare {filler}" for _ in range(12)]
    contents += ["common short"] * 80  # frequent enough that its bound is under the guess
    contents += [f"filler {i}" for i in range(300)]
    write(dataset, document, contents, embed=False)
    with CaptureQueriesContext(connection) as captured:
        found = bm25(tenant_id=tenant.pk, dataset_ids=[dataset.pk], query="rare common", top_k=10)
    assert len(captured) == 2  # the first guess, then all it takes
    same_ranking(found, reference_bm25(tenant, [dataset.pk], "rare common", 10))
    assert all(c == "common short" for c in content_of([i for i, _ in found]))


def test_bm25_is_one_statement(corpus, tenant):
    datasets, _ = corpus
    with CaptureQueriesContext(connection) as captured:
        bm25(tenant_id=tenant.pk, dataset_ids=datasets, query="w3 w250", top_k=10)
    assert len(captured) == 1


def test_bm25_document_filter(corpus, tenant, monkeypatch):
    """Few documents are ranked from their chunks, many from the lists: both exact, both
    with the datasets' statistics."""
    datasets, documents = corpus
    some = {documents[0].pk, documents[2].pk}
    for direct_chunks in (search.DIRECT_CHUNKS, 5):
        monkeypatch.setattr(search, "DIRECT_CHUNKS", direct_chunks)
        for query in queries(15, seed=3):
            found = bm25(
                tenant_id=tenant.pk,
                dataset_ids=datasets,
                query=query,
                top_k=10,
                document_ids=list(some),
            )
            same_ranking(found, reference_bm25(tenant, datasets, query, 10, some))
    assert (
        bm25(tenant_id=tenant.pk, dataset_ids=datasets, query="w1", top_k=5, document_ids=[]) == []
    )


def test_semantic_document_filter_fills_top_k(make_document, tenant):
    dataset, wanted = make_document()
    with tenant_context(tenant):
        crowd = [Document.objects.create(dataset=dataset, name=f"crowd {i}") for i in range(5)]
    loom = [f"the loom weaves pattern {i}" for i in range(40)]
    for document in crowd:
        write(dataset, document, loom)  # 200 near neighbours elsewhere in the dataset
    write(dataset, wanted, [f"soup recipe number {i}" for i in range(12)])
    query = list(hashing_vectors(["the loom weaves"], 512)[0])
    found = semantic(
        tenant_id=tenant.pk,
        dataset_ids=[dataset.pk],
        vector=query,
        top_k=10,
        document_ids=[wanted.pk],
    )
    assert len(found) == 10
    assert all(c.startswith("soup recipe") for c in content_of([i for i, _ in found]))
    assert (
        semantic(
            tenant_id=tenant.pk, dataset_ids=[dataset.pk], vector=query, top_k=10, document_ids=[]
        )
        == []
    )


def test_semantic_falls_back_to_an_exact_search_when_the_scan_gives_up(make_document, tenant):
    """A scan allowed to visit almost nothing returns only what its first pass discovered:
    near the query, where the filter keeps nothing. The exact search must fill top_k, with
    the true nearest of the document."""
    ensure_index(8)  # small vectors: a graph of thousands is quick to build
    rng = np.random.default_rng(5)
    dataset, wanted = make_document()
    with tenant_context(tenant):
        crowd = Document.objects.create(dataset=dataset, name="crowd")
    axis = np.eye(8)[0]

    def rows(count, centre):
        vectors = centre + rng.normal(0, 0.05, (count, 8))
        return [
            ChunkRow(position=i, content=f"chunk {i}", embedding=list(v))
            for i, v in enumerate(vectors)
        ], vectors

    crowd_rows, _ = rows(3000, axis)  # around the query
    wanted_rows, wanted_vectors = rows(200, -axis)  # opposite it
    for document, batch in ((crowd, crowd_rows), (wanted, wanted_rows)):
        chunks_write(
            tenant_id=dataset.tenant_id, dataset_id=dataset.pk, document_id=document.pk, rows=batch
        )
        document_set_live(document_id=document.pk, dataset_id=dataset.pk, live=True)
    query = list(axis)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.max_scan_tuples = 1")
        # As on a large table, where the planner takes the vector index rather than sort
        # every chunk the filter keeps. A sort is all the exact search can do: it still runs.
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute("SET LOCAL hnsw.ef_search = 100")
        cursor.execute(
            "SELECT id FROM knowledge_chunk WHERE embedding_dim = 8 AND document_id = %s "
            "ORDER BY (embedding::vector(8)) <=> %s::vector(8) LIMIT 10",
            [wanted.pk, "[" + ",".join(map(str, query)) + "]"],
        )
        assert len(cursor.fetchall()) < 10  # the index scan alone falls short
    with CaptureQueriesContext(connection) as captured:
        found = semantic(
            tenant_id=tenant.pk,
            dataset_ids=[dataset.pk],
            vector=query,
            top_k=10,
            document_ids=[wanted.pk],
        )
    searches = [q["sql"] for q in captured.captured_queries if "similarity" in q["sql"]]
    assert len(searches) == 2  # the index scan, then the exact search
    similarity = wanted_vectors @ axis / np.linalg.norm(wanted_vectors, axis=1)
    best = np.argsort(-similarity)[:10]
    assert content_of([i for i, _ in found]) == [f"chunk {i}" for i in best]
    assert [s for _, s in found] == pytest.approx(similarity[best], abs=1e-5)
