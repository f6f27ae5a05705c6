"""Retrieval on real PostgreSQL over documents indexed by the pipeline: each method, fusion,
rerank, threshold, top-k, metadata filters, parent-child, hit counts and history, tenancy."""

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext

from knowledge import indexing, services
from knowledge.models import Chunk, Dataset, Document, HitTestQuery
from knowledge.retrieval import RetrievalSettings, retrieve
from providers.models import UsageEvent
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput

TEXTS = {
    "loom": "A loom holds the warp threads under tension while the weft is woven through.",
    "wool": "Wool is a protein fibre shorn from sheep; it keeps you warm even when wet.",
    "cotton": "Cotton is a cellulose fibre grown in warm climates and spun into yarn.",
    "dye": "Indigo dye gives denim its blue colour, and madder root gives a red one.",
    "flax": "Linen is made from flax stalks that are retted in water, then combed.",
}
METADATA = {
    "loom": {"author": "Ann Weaver", "year": 2019, "tag": "tools"},
    "wool": {"author": "Bob Shearer", "year": 2021, "tag": ""},
    "cotton": {"author": "Ann Picker", "year": 2023},
    "dye": {"author": "Cy Dyer", "year": "2024", "tag": "colour"},
    "flax": {"author": "Dee Retter", "year": 2015, "tag": "fibre"},
}


def index(dataset, name, text, **metadata):
    document = services.document_create(dataset=dataset, name=name, text=text)
    with tenant_context(dataset.tenant):
        assert indexing.index_document(document_id=document.pk) == "completed"
    if metadata:
        Document.dangerously_unscoped.filter(pk=document.pk).update(
            doc_metadata={"text": text, **metadata}
        )
    return document


def make_dataset(tenant, name="Textiles", **fields):
    dataset = services.dataset_create(tenant=tenant, name=name, **fields)
    for key, text in TEXTS.items():
        index(dataset, f"{key}.txt", text, **METADATA[key])
    return Dataset.dangerously_unscoped.get(pk=dataset.pk)


@pytest.fixture
def dataset(tenant):
    return make_dataset(tenant)


def run(tenant, datasets, query, **settings):
    return async_to_sync(retrieve)(
        tenant=tenant,
        datasets=datasets,
        query=query,
        settings=RetrievalSettings.from_dify(settings),
    )


def names(records):
    return [r.document.name.removesuffix(".txt") for r in records]


@pytest.mark.parametrize(
    ("method", "query", "expected"),
    [
        ("semantic_search", "cellulose fibres grown in warm climates", "cotton"),
        ("full_text_search", "indigo denim", "dye"),
        ("keyword_search", "flax linen", "flax"),
        ("hybrid_search", "sheep wool protein", "wool"),
    ],
)
def test_each_method_finds_the_right_chunk(tenant, dataset, method, query, expected):
    records = run(tenant, [dataset], query, search_method=method, top_k=3)
    assert names(records)[0] == expected
    scores = [r.score for r in records]
    assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1
    top = records[0]
    assert top.chunk.content == TEXTS[expected] and top.dataset_id == dataset.pk
    expected_scores = {
        "semantic_search": {"semantic"},
        "full_text_search": {"full_text"},
        "keyword_search": {"full_text"},
        "hybrid_search": {"semantic", "full_text"},
    }[method]
    assert set(top.scores) == expected_scores


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
def test_hybrid_fuses_both_lists(tenant, dataset, fusion):
    # "madder" is only found by its word; "warm" pulls wool and cotton in semantically.
    records = run(
        tenant, [dataset], "madder warm", search_method="hybrid_search", fusion=fusion, top_k=5
    )
    assert "dye" in names(records)[:3]
    assert records[0].score == pytest.approx(max(r.score for r in records))
    assert all(r.semantic_score is not None or r.full_text_score is not None for r in records)
    # Weighting only the keyword side makes hybrid rank as full text does.
    keyword_only = run(
        tenant,
        [dataset],
        "madder warm",
        search_method="hybrid_search",
        fusion=fusion,
        top_k=3,
        weights={"vector_setting": {"vector_weight": 0}, "keyword_setting": {"keyword_weight": 1}},
    )
    full_text = run(tenant, [dataset], "madder warm", search_method="full_text_search", top_k=3)
    assert names(keyword_only)[:2] == names(full_text)[:2]


def test_rerank_reorders_by_the_reranker(tenant, dataset):
    query = "which fibre keeps you warm when wet"
    plain = run(tenant, [dataset], query, search_method="semantic_search", top_k=5)
    reranked = run(
        tenant,
        [dataset],
        query,
        search_method="semantic_search",
        top_k=5,
        reranking_enable=True,
        reranking_mode="reranking_model",
    )
    assert names(reranked)[0] == "wool"
    rerank_scores = [r.rerank_score for r in reranked]
    assert all(s is not None for s in rerank_scores)
    assert rerank_scores == sorted(rerank_scores, reverse=True)
    assert [r.score for r in reranked] == rerank_scores
    assert all(r.semantic_score is not None for r in reranked)
    assert plain[0].rerank_score is None
    assert UsageEvent.dangerously_unscoped.filter(tenant=tenant, operation="rerank").count() == 1


def test_rerank_with_an_unknown_model_is_refused(tenant, dataset):
    with pytest.raises(Exception, match="rerank"):
        run(
            tenant,
            [dataset],
            "wool",
            reranking_enable=True,
            reranking_model={"reranking_model_name": "no-such-reranker"},
        )


def test_score_threshold_drops_weak_hits(tenant, dataset):
    everything = run(tenant, [dataset], "cotton cellulose", top_k=5)
    assert len(everything) == 5
    cut = (everything[0].score + everything[1].score) / 2
    kept = run(
        tenant,
        [dataset],
        "cotton cellulose",
        top_k=5,
        score_threshold_enabled=True,
        score_threshold=round(cut, 4),
    )
    assert names(kept) == ["cotton"]
    ignored = run(tenant, [dataset], "cotton cellulose", top_k=5, score_threshold=0.99)
    assert len(ignored) == 5  # not enabled


def test_top_k(tenant, dataset):
    assert len(run(tenant, [dataset], "fibre", top_k=1)) == 1
    assert len(run(tenant, [dataset], "fibre", top_k=4, search_method="hybrid_search")) == 4
    assert len(run(tenant, [dataset], "fibre", top_k=100)) == 5


def conditions(*items, operator="and"):
    return {
        "logical_operator": operator,
        "conditions": [
            {"name": name, "comparison_operator": op, "value": value} for name, op, value in items
        ],
    }


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (conditions(("author", "is", "Ann Weaver")), {"loom"}),
        (conditions(("author", "is not", "Ann Weaver")), {"wool", "cotton", "dye", "flax"}),
        (conditions(("author", "contains", "Ann")), {"loom", "cotton"}),
        (conditions(("author", "not contains", "Ann")), {"wool", "dye", "flax"}),
        (conditions(("author", "start with", "Dee")), {"flax"}),
        (conditions(("author", "end with", "er")), {"loom", "wool", "cotton", "dye", "flax"}),
        (conditions(("year", ">", 2020)), {"wool", "cotton", "dye"}),
        (conditions(("year", "≥", "2021"), ("year", "<", 2024)), {"wool", "cotton"}),
        (conditions(("year", "=", 2015)), {"flax"}),
        (conditions(("year", "≠", 2015)), {"loom", "wool", "cotton", "dye"}),
        (conditions(("year", "≤", 2019)), {"loom", "flax"}),
        (conditions(("tag", "empty", None)), {"wool", "cotton"}),
        (conditions(("tag", "not empty", None)), {"loom", "dye", "flax"}),
        (conditions(("author", "contains", "Ann"), ("year", ">", 2020)), {"cotton"}),
        (
            conditions(("tag", "is", "colour"), ("year", "<", 2016), operator="or"),
            {"dye", "flax"},
        ),
        (conditions(("author", "contains", "%")), set()),
    ],
)
@pytest.mark.parametrize("method", ["semantic_search", "full_text_search", "hybrid_search"])
def test_metadata_filters(tenant, dataset, filters, expected, method):
    records = run(
        tenant,
        [dataset],
        "fibre threads dye wool cotton linen loom",
        search_method=method,
        top_k=10,
        metadata_filtering_conditions=filters,
    )
    # Full text only finds chunks sharing a word with the query: every text here does.
    assert set(names(records)) == expected


def test_metadata_filter_fills_top_k_past_many_other_documents(tenant):
    dataset = services.dataset_create(tenant=tenant, name="Crowd")
    for i in range(30):
        index(dataset, f"noise{i}.txt", f"The loom weaves pattern {i} with warp.", kind="noise")
    index(dataset, "needle.txt", "A loom manual for beginners.", kind="manual")
    dataset.refresh_from_db()
    for method in ("semantic_search", "full_text_search"):
        records = run(
            tenant,
            [dataset],
            "loom weaves pattern warp",
            search_method=method,
            top_k=2,
            metadata_filtering_conditions=conditions(("kind", "is", "manual")),
        )
        assert names(records) == ["needle"]


def test_parent_child_returns_parents_with_matched_children(tenant):
    dataset = services.dataset_create(
        tenant=tenant, name="PC", doc_form=Dataset.DocForm.HIERARCHICAL
    )
    looms = [
        "Looms. A loom holds the warp threads under an even tension all day long",
        "The shuttle carries the weft from one side of the loom to the other side",
        "Heddles lift some warp threads so that the shuttle can pass beneath them",
        "A reed beats every new pick of weft firmly against the cloth already woven",
    ]
    fibres = [
        "Fibres. Wool comes from sheep and is shorn once a year in the late spring",
        "Cotton is a cellulose fibre that grows in bolls around the seeds of the plant",
        "Linen is made from flax stalks that are retted in water and then combed out",
        "Silk is unwound from the cocoons that silkworms spin while feeding on mulberry",
    ]
    text = ". ".join(looms) + ".\n\n" + ". ".join(fibres) + "."
    document = services.document_create(
        dataset=dataset,
        name="pc.txt",
        text=text,
        process_rule={
            "mode": "hierarchical",
            "rules": {
                "parent_mode": "paragraph",
                "segmentation": {"separator": "\\n\\n", "max_tokens": 200},
                "subchunk_segmentation": {"separator": ". ", "max_tokens": 50},
            },
        },
    )
    with tenant_context(tenant):
        assert indexing.index_document(document_id=document.pk) == "completed"
    dataset.refresh_from_db()
    records = run(tenant, [dataset], "shuttle weft warp", search_method="hybrid_search", top_k=3)
    top = records[0]
    assert top.chunk.parent_id is None and not top.chunk.searchable
    assert top.chunk.content.startswith("Looms.")
    assert top.child_chunks and all(c.chunk.parent_id == top.chunk.pk for c in top.child_chunks)
    assert any("shuttle" in c.chunk.content for c in top.child_chunks)
    assert top.score == max(c.score for c in top.child_chunks)
    assert len({r.chunk.pk for r in records}) == len(records) <= 2
    assert Chunk.dangerously_unscoped.get(pk=top.chunk.pk).hit_count == 1


def test_hits_are_counted_and_the_query_recorded(tenant, dataset, make_member):
    user = make_member(tenant)
    settings = RetrievalSettings.from_dify({"search_method": "full_text_search", "top_k": 2})
    records = async_to_sync(retrieve)(
        tenant=tenant,
        datasets=[dataset],
        query="  wool  ",
        settings=settings,
        source="api",
        user=user,
    )
    async_to_sync(retrieve)(tenant=tenant, datasets=[dataset], query="wool", settings=settings)
    assert records[0].chunk.hit_count == 1
    counts = dict(Chunk.dangerously_unscoped.filter(dataset=dataset).values_list("pk", "hit_count"))
    assert counts[records[0].chunk.pk] == 2
    assert sum(counts.values()) == 2 * len(records) + len(records) - len(records)
    history = list(HitTestQuery.dangerously_unscoped.filter(dataset=dataset).order_by("created_at"))
    assert len(history) == 2
    first = history[0]
    assert first.query == "wool" and first.source == "api" and first.created_by == user
    assert first.result_count == len(records) and first.elapsed_ms >= 0
    assert first.retrieval_model["search_method"] == "full_text_search"
    assert first.retrieval_model["top_k"] == 2 and history[1].created_by is None


def test_other_tenants_datasets_never_contribute(tenant, other_tenant, dataset):
    theirs = make_dataset(other_tenant, name="Theirs")
    records = run(tenant, [dataset, theirs], "wool sheep", search_method="hybrid_search", top_k=10)
    assert records and all(r.dataset_id == dataset.pk for r in records)
    assert run(tenant, [theirs], "wool sheep", search_method="hybrid_search") == []
    assert not HitTestQuery.dangerously_unscoped.filter(dataset=theirs).exists()
    assert Chunk.dangerously_unscoped.filter(dataset=theirs, hit_count__gt=0).count() == 0


def test_several_datasets_and_an_economy_one(tenant, dataset):
    economy = services.dataset_create(
        tenant=tenant, name="Cheap", indexing_technique=Dataset.IndexingTechnique.ECONOMY
    )
    index(economy, "silk.txt", "Silk is spun by silkworms feeding on mulberry leaves.")
    economy.refresh_from_db()
    assert not Chunk.dangerously_unscoped.filter(dataset=economy, embedding_dim__isnull=False)
    # Semantic over an economy dataset alone falls back to keywords.
    assert names(run(tenant, [economy], "silkworms", search_method="semantic_search")) == ["silk"]
    both = run(
        tenant, [dataset, economy], "silkworms mulberry", search_method="hybrid_search", top_k=10
    )
    silk = next(r for r in both if r.document.name == "silk.txt")
    assert silk.semantic_score is None and silk.full_text_score is not None
    mixed = run(tenant, [economy, dataset], "silkworms", search_method="semantic_search", top_k=5)
    assert "silk" not in names(mixed)  # economy chunks have no vectors
    assert HitTestQuery.dangerously_unscoped.filter(dataset=economy).count() == 2  # first named


def test_empty_dataset_gives_nothing_and_empty_query_is_refused(tenant, dataset):
    empty = services.dataset_create(tenant=tenant, name="Empty")
    for method in ("semantic_search", "full_text_search", "hybrid_search"):
        assert run(tenant, [empty], "wool", search_method=method, reranking_enable=True) == []
    with pytest.raises(InvalidInput, match="query"):
        run(tenant, [dataset], "   ")
    assert run(tenant, [], "wool") == []


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"search_method": "fuzzy"}, "search_method"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 101}, "top_k"),
        ({"top_k": "3"}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"score_threshold_enabled": "yes"}, "score_threshold_enabled"),
        ({"reranking_mode": "magic"}, "reranking_mode"),
        ({"fusion": "max"}, "fusion"),
        ({"weights": {"vector_setting": {"vector_weight": -1}}}, "vector_weight"),
        (
            {
                "weights": {
                    "vector_setting": {"vector_weight": 0},
                    "keyword_setting": {"keyword_weight": 0},
                }
            },
            "weights",
        ),
        (
            {"metadata_filtering_conditions": {"logical_operator": "xor", "conditions": []}},
            "logical_operator",
        ),
        ({"metadata_filtering_conditions": conditions(("year", ">", "soon"))}, "conditions[0]"),
        ({"metadata_filtering_conditions": conditions(("year", "~", 1))}, "comparison_operator"),
        ({"metadata_filtering_conditions": {"conditions": [{"value": 1}]}}, "conditions[0].name"),
    ],
)
def test_invalid_settings_name_the_field(data, field):
    with pytest.raises(InvalidInput) as raised:
        RetrievalSettings.from_dify(data)
    assert field in raised.value.message


def test_settings_merge_over_the_dataset_defaults():
    defaults = {"search_method": "hybrid_search", "top_k": 7, "fusion": "rrf"}
    settings = RetrievalSettings.from_dify({"top_k": 2}, defaults=defaults)
    assert (settings.search_method, settings.top_k, settings.fusion) == ("hybrid_search", 2, "rrf")
    plain = RetrievalSettings.from_dify(None)
    assert plain == RetrievalSettings()
    dify = RetrievalSettings.from_dify(
        {
            "search_method": "keyword_search",
            "reranking_enable": True,
            "reranking_model": {"reranking_provider_name": "x", "reranking_model_name": "r1"},
            "weights": {
                "weight_type": "customized",
                "vector_setting": {"vector_weight": 0.4},
                "keyword_setting": {"keyword_weight": 0.6},
            },
            "score_threshold": None,
        }
    )
    assert dify.search_method == "full_text_search" and dify.reranking_model == "r1"
    assert (dify.vector_weight, dify.keyword_weight, dify.score_threshold) == (0.4, 0.6, 0.5)
    assert RetrievalSettings.from_dify(dify.to_dify()) == dify


def test_query_count_does_not_grow_with_results(tenant, dataset):
    def count(top_k):
        with CaptureQueriesContext(connection) as captured:
            run(
                tenant,
                [dataset],
                "fibre",
                search_method="hybrid_search",
                top_k=top_k,
                reranking_enable=True,
            )
        return len(captured)

    count(1)  # the first reads the tenant's plan limits, held from then on
    few, many = count(1), count(5)
    assert few == many
    assert many <= 20
