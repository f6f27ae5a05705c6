"""Chunk storage and search in the real PostgreSQL with pgvector: idempotent writes, filtered
HNSW search that still fills top-k, BM25 ranking, unspaced scripts."""

import pytest
from django.db import connection

from knowledge.models import Chunk, Dataset, Document
from knowledge.search import analyze, bm25, semantic
from knowledge.store import ChunkRow, chunks_write, document_set_live
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
