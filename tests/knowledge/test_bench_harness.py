"""The quality benchmark's harness on a tiny generated BEIR folder: loading, ingesting,
retrieving, and nDCG@10 / recall@10 against values computed by hand."""

import json
import math

import pytest

from bench.knowledge import quality


@pytest.fixture
def beir(tmp_path):
    corpus = {
        "d1": ("Looms", "A loom holds the warp threads."),
        "d2": ("Wool", "Wool is shorn from sheep."),
        "d3": ("Cotton", "Cotton is a cellulose fibre."),
        "d4": ("Dye", "Indigo dye makes denim blue."),
    }
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "title": t, "text": x}) for k, (t, x) in corpus.items())
    )
    queries = {"q1": "sheep wool", "q2": "indigo denim", "q3": "unjudged"}
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items())
    )
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td2\t2\nq1\td3\t1\nq2\td4\t1\nq2\td1\t0\n"
    )
    return tmp_path


def test_metrics_match_hand_computed_values():
    relevant = {"a": 2, "b": 1}
    # Ranked b, x, a: DCG = 1/log2(2) + 3/log2(4); ideal = 3/log2(2) + 1/log2(3).
    expected = (1 + 3 / 2) / (3 + 1 / math.log2(3))
    assert quality.ndcg_at_k(["b", "x", "a"], relevant) == pytest.approx(expected)
    assert quality.ndcg_at_k(["a", "b"], relevant) == pytest.approx(1.0)
    assert quality.ndcg_at_k(["x"] * 10 + ["a"], relevant) == 0.0  # past the 10th
    assert quality.recall_at_k(["b", "x"], relevant) == 0.5
    assert quality.recall_at_k([], {}) == 0.0
    ndcg, recall = quality.evaluate(
        {"q1": ["a", "b"], "q2": ["x"]}, {"q1": relevant, "q2": {"y": 1}}
    )
    assert (ndcg, recall) == (pytest.approx(0.5), pytest.approx(0.5))


def test_load_ingest_and_run(beir, tenant):
    data = quality.load_beir(beir)
    assert set(data.queries) == {"q1", "q2"}  # unjudged queries are left out
    assert data.qrels["q2"] == {"d4": 1}  # relevance 0 is not relevant
    assert data.corpus["d3"] == "Cotton Cotton is a cellulose fibre."
    dataset = quality.ingest(tenant, data)
    assert dataset.chunk_count == 4
    for name, settings in quality.METHODS.items():
        runs = quality.run_method(tenant, dataset, data, settings)
        assert runs["q1"][0] == "d2" and runs["q2"][0] == "d4", name
        ndcg, recall = quality.evaluate(runs, data.qrels)
        # d3 (cotton) shares no word with "sheep wool": full text alone cannot find it.
        assert recall >= 0.75 and 0.7 < ndcg <= 1.0, name
    assert len(quality.load_beir(beir, limit_queries=1).queries) == 1
