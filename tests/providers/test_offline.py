"""The built-in offline models: hashing embedder, lexical reranker, extractive chat."""

# Chinese sample text is written with its own full-width punctuation.
# ruff: noqa: RUF001

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from providers.runtime.offline import (
    DONT_KNOW,
    NO_CONTEXT,
    OFFLINE_CHAT_MODEL,
    OFFLINE_EMBEDDING_DIMENSIONS,
    OFFLINE_EMBEDDING_MODEL,
    OFFLINE_RERANK_MODEL,
    ExtractiveChat,
    HashingEmbedder,
    LexicalReranker,
    split_passages,
)
from providers.runtime.tokens import count_message_tokens, count_tokens
from providers.runtime.types import (
    ChatMessage,
    Finish,
    ResponseFormat,
    TextDelta,
    Tool,
)

ROOT = Path(__file__).resolve().parents[2]
CRANFIELD = ROOT.parent / "shared" / "samples" / "ir" / "cranfield" / "beir"


def embed(texts, dimensions=OFFLINE_EMBEDDING_DIMENSIONS):
    result = asyncio.run(HashingEmbedder(dimensions).embed(texts))
    return np.array(result.vectors), result


def rerank(query, documents, top_n=None):
    return asyncio.run(LexicalReranker().rerank(query, documents, top_n=top_n))


def chat(messages, **options):
    async def collect():
        return [event async for event in ExtractiveChat().chat(messages, **options)]

    return asyncio.run(collect())


def text_of(events):
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def test_catalog_names():
    assert OFFLINE_CHAT_MODEL == "weft-offline-chat"
    assert OFFLINE_EMBEDDING_MODEL == "weft-offline-embedding"
    assert OFFLINE_RERANK_MODEL == "weft-offline-rerank"
    assert HashingEmbedder().dimensions == OFFLINE_EMBEDDING_DIMENSIONS == 512


# --- HashingEmbedder --------------------------------------------------------------------------

SENTENCES = [
    "The cat sat on the mat.",
    "A cat was sitting on the mat.",
    "Quarterly revenue grew by twelve percent.",
    "机器学习是人工智能的一个分支。",
    "机器学习属于人工智能领域。",
    "巴黎是法国的首都。",
]


def test_vectors_are_unit_length_and_of_the_asked_dimension():
    texts = [*SENTENCES, "", "   "]
    vectors, result = embed(texts)
    assert vectors.shape == (len(SENTENCES) + 2, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embed(["hello"], dimensions=64)[0].shape == (1, 64)
    assert result.usage.prompt_tokens == sum(map(count_tokens, texts))
    assert result.usage.completion_tokens == 0 and result.usage.estimated


def test_similar_texts_are_closer_than_unrelated_ones():
    vectors, _ = embed(SENTENCES)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > 0.4
    assert similarity[0, 1] > 3 * max(abs(similarity[0, 2]), abs(similarity[1, 2]))


def test_chinese_needs_no_word_segmentation():
    vectors, _ = embed(SENTENCES)
    similarity = vectors @ vectors.T
    assert similarity[3, 4] > 0.4
    assert similarity[3, 4] > 3 * max(abs(similarity[3, 5]), abs(similarity[4, 5]))


def test_case_ligatures_and_accents_do_not_matter():
    vectors, _ = embed(["Résumé of the ﬁnal Offer", "resume of the final offer"])
    assert vectors[0] @ vectors[1] == pytest.approx(1.0, abs=1e-6)


def test_empty_text_gets_one_fixed_unit_vector():
    vectors, _ = embed(["", "  \n", "...", "something"])
    np.testing.assert_array_equal(vectors[0], vectors[1])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert abs(vectors[0] @ vectors[3]) < 0.5
    assert embed([])[0].shape[0] == 0


def test_batch_keeps_order_and_matches_single_calls():
    batch, _ = embed(SENTENCES)
    for index, sentence in enumerate(SENTENCES):
        np.testing.assert_array_equal(batch[index], embed([sentence])[0][0])


def test_large_batch_off_the_event_loop_gives_the_same_vectors():
    texts = [f"{sentence} number {i}" for i in range(1000) for sentence in SENTENCES[:1]]
    assert sum(map(len, texts)) > 20_000
    big, _ = embed(texts)
    np.testing.assert_array_equal(big[:3], embed(texts[:3])[0])


def test_vectors_do_not_depend_on_the_process():
    """Python's string hash is salted per process; the embedder must not use it."""
    code = (
        "import asyncio, json\n"
        "from providers.runtime.offline import HashingEmbedder\n"
        "r = asyncio.run(HashingEmbedder().embed(['Determinism across processes 机器']))\n"
        "print(json.dumps(r.vectors[0]))"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1
    here, _ = embed(["Determinism across processes 机器"])
    np.testing.assert_allclose(json.loads(outputs.pop()), here[0], rtol=1e-6)


# --- LexicalReranker --------------------------------------------------------------------------

DOCUMENTS = [
    "Ice melts at zero degrees Celsius.",
    "Water boils at 100 degrees Celsius at sea level; the boiling point of water falls with "
    "altitude.",
    "The cat sat on the mat.",
    "Boiling eggs takes about ten minutes.",
]


def test_rerank_orders_by_relevance_with_scores_in_unit_range():
    result = rerank("What is the boiling point of water?", DOCUMENTS)
    order = [index for index, _ in result.ranking]
    assert order[:2] == [1, 3]
    assert sorted(order) == [0, 1, 2, 3]
    scores = [score for _, score in result.ranking]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert dict(result.ranking)[2] == 0.0
    assert result.usage.estimated and result.usage.prompt_tokens > 0


def test_rerank_top_n_and_edge_cases():
    assert [i for i, _ in rerank("boiling water", DOCUMENTS, top_n=1).ranking] == [1]
    assert rerank("boiling water", DOCUMENTS, top_n=0).ranking == []
    assert rerank("boiling water", []).ranking == []
    # A query of stopwords only matches nothing: every score 0, input order kept.
    assert rerank("what is the", DOCUMENTS).ranking == [(i, 0.0) for i in range(4)]


def test_adjacent_query_words_earn_a_bonus():
    documents = ["york has a new museum", "the new york museum"]
    ranking = rerank("new york", documents).ranking
    assert ranking[0][0] == 1 and ranking[0][1] > ranking[1][1]


def test_rerank_handles_chinese():
    documents = [
        "巴黎是法国的首都。",
        "深度学习使用多层神经网络。",
        "机器学习是人工智能的一个分支。",
    ]
    assert rerank("什么是深度学习？", documents).ranking[0][0] == 1
    assert rerank("法国的首都是哪里？", documents).ranking[0][0] == 0


def _cranfield():
    if not CRANFIELD.is_dir():
        pytest.skip(f"{CRANFIELD} is absent (it sits beside the checkout in CI)")
    corpus = [json.loads(line) for line in (CRANFIELD / "corpus.jsonl").open()]
    queries = [json.loads(line) for line in (CRANFIELD / "queries.jsonl").open()]
    judgments: dict[str, dict[str, int]] = {}
    for line in (CRANFIELD / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, gain = line.split("\t")
        judgments.setdefault(query_id, {})[doc_id] = int(gain)
    return corpus, [q for q in queries if q["_id"] in judgments], judgments


def ndcg_at_10(ranked_ids, gains):
    dcg = sum((2 ** gains.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked_ids[:10]))
    ideal = sorted(gains.values(), reverse=True)[:10]
    return dcg / sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))


def test_reranker_quality_on_cranfield():
    """Every fifth judged query (45). The reranker over the whole corpus (BM25 with the
    corpus as IDF) reaches nDCG@10 0.37; reranking the embedder's top 50 lifts it from 0.26
    to 0.32, where a random order of those 50 scores 0.08."""
    corpus, queries, judgments = _cranfield()
    queries = queries[::5]
    ids = [doc["_id"] for doc in corpus]
    texts = [doc["text"] for doc in corpus]
    full, embedded, reranked = [], [], []
    doc_vectors, _ = embed(texts)
    query_vectors, _ = embed([query["text"] for query in queries])
    for query, query_vector in zip(queries, query_vectors, strict=True):
        gains = judgments[query["_id"]]
        ranking = rerank(query["text"], texts, top_n=10).ranking
        full.append(ndcg_at_10([ids[i] for i, _ in ranking], gains))
        candidates = np.argsort(-(doc_vectors @ query_vector), kind="stable")[:50]
        embedded.append(ndcg_at_10([ids[i] for i in candidates], gains))
        ranking = rerank(query["text"], [texts[i] for i in candidates]).ranking
        reranked.append(ndcg_at_10([ids[candidates[i]] for i, _ in ranking], gains))
    assert np.mean(full) >= 0.34
    assert np.mean(embedded) >= 0.23
    assert np.mean(reranked) >= np.mean(embedded) + 0.04


# --- ExtractiveChat ---------------------------------------------------------------------------

CONTEXT = """Weft was founded in 2024 by Ada Lovelace. The company is based in Lyon.
Its main product is a workflow engine for LLM applications.

Pricing: the premium plan costs 49 euros per month and includes 10 members.
The free plan includes 2 members.
Support is available by e-mail on working days."""


def rag(question, context=CONTEXT):
    system = (
        "Use the following context as your learned knowledge, inside <context></context> XML "
        f"tags.\n<context>\n{context}\n</context>\nAnswer in the user's language."
    )
    return [ChatMessage("system", system), ChatMessage("user", question)]


def test_answers_with_the_matching_passage_verbatim():
    assert text_of(chat(rag("Where is the company based?"))) == "The company is based in Lyon."
    assert text_of(chat(rag("How many members does the free plan include?"))) == (
        "The free plan includes 2 members."
    )
    answer = text_of(chat(rag("How much does the premium plan cost per month?")))
    assert answer == "Pricing: the premium plan costs 49 euros per month and includes 10 members."


def test_several_matching_passages_come_in_their_original_order():
    answer = text_of(chat(rag("Which members does each plan include?")))
    assert answer == (
        "Pricing: the premium plan costs 49 euros per month and includes 10 members. "
        "The free plan includes 2 members."
    )


def test_context_in_plain_system_text_and_earlier_messages():
    messages = [
        ChatMessage("system", "You are a support assistant. Refunds take five working days."),
        ChatMessage("user", "Hello"),
        ChatMessage("assistant", "Hello! How can I help?"),
        ChatMessage("tool", "Order 1234 shipped on Monday by courier.", tool_call_id="c1"),
        ChatMessage("user", "When did order 1234 ship?"),
    ]
    assert text_of(chat(messages)) == "Order 1234 shipped on Monday by courier."
    messages[-1] = ChatMessage("user", "How long do refunds take?")
    assert text_of(chat(messages)) == "Refunds take five working days."


def test_context_carried_in_the_question_itself():
    question = f"<context>\n{CONTEXT}\n</context>\n\nQuestion: where is the company based?"
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", question)]
    assert text_of(chat(messages)) == "The company is based in Lyon."


def test_instructions_outside_the_context_markers_are_not_quoted():
    answer = text_of(chat(rag("What language should the answer use?")))
    assert answer == DONT_KNOW


def test_says_it_does_not_know_when_nothing_matches():
    assert text_of(chat(rag("What is the capital of France?"))) == DONT_KNOW
    assert text_of(chat(rag("What is it?"))) == DONT_KNOW


def test_without_context_it_says_what_it_is():
    assert text_of(chat([ChatMessage("user", "Hi, who are you?")])) == NO_CONTEXT
    assert text_of(chat(rag("Anything?", context="  "))) == NO_CONTEXT


def test_answers_chinese_questions():
    context = "机器学习是人工智能的一个分支。深度学习使用多层神经网络。巴黎是法国的首都。"
    assert text_of(chat(rag("法国的首都是哪里？", context))) == "巴黎是法国的首都。"


def test_streams_word_by_word_then_one_finish_with_usage():
    messages = rag("Who founded Weft?")
    events = chat(messages, tools=[Tool(name="search", description="Search the web.")])
    deltas, finish = events[:-1], events[-1]
    assert all(isinstance(event, TextDelta) for event in deltas)
    words = ["Weft", " was", " founded", " in", " 2024", " by", " Ada", " Lovelace."]
    assert [delta.text for delta in deltas] == words
    assert isinstance(finish, Finish) and finish.reason == "stop"
    answer = text_of(events)
    assert finish.usage.completion_tokens == count_tokens(answer)
    tools = [Tool(name="search", description="Search the web.")]
    assert finish.usage.prompt_tokens == count_message_tokens(messages, tools=tools)
    assert finish.usage.estimated


def test_without_streaming_the_same_answer_comes_at_once():
    messages = rag("Who founded Weft?")
    events = chat(messages, stream=False)
    assert len(events) == 2 and isinstance(events[1], Finish)
    assert events[0].text == text_of(chat(messages))
    assert events[1].usage == chat(messages)[-1].usage


def test_chinese_streams_character_by_character():
    context = "巴黎是法国的首都。"
    deltas = chat(rag("法国的首都是哪里？", context))[:-1]
    assert [delta.text for delta in deltas] == list("巴黎是法国的首都。")


def test_json_object_mode_returns_the_answer_as_json():
    events = chat(rag("Where is the company based?"), response_format=ResponseFormat("json_object"))
    assert json.loads(text_of(events)) == {"answer": "The company is based in Lyon."}


def test_json_schema_mode_fills_the_required_properties():
    schema = {
        "type": "object",
        "properties": {
            "reply": {"type": "string"},
            "confidence": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mood": {"type": "string", "enum": ["neutral", "happy"]},
            "source": {"type": ["string", "null"]},
            "meta": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        },
        "required": ["reply", "confidence", "tags", "mood", "source", "meta"],
    }
    events = chat(
        rag("Where is the company based?"),
        response_format=ResponseFormat("json_schema", schema=schema),
    )
    assert json.loads(text_of(events)) == {
        "reply": "The company is based in Lyon.",
        "confidence": 0,
        "tags": [],
        "mood": "neutral",
        "source": None,
        "meta": {"ok": False},
    }


def test_max_tokens_cuts_the_answer_with_reason_length():
    events = chat(rag("Who founded Weft?"), max_tokens=3)
    assert text_of(events) == "Weft was"
    assert events[-1].reason == "length"
    assert events[-1].usage.completion_tokens == count_tokens("Weft was") == 3


def test_max_tokens_also_cuts_an_answer_that_is_not_streamed():
    events = chat(rag("Who founded Weft?"), max_tokens=3, stream=False)
    assert [event.text for event in events[:-1]] == ["Weft was"]
    assert events[-1].reason == "length"
    assert chat(rag("Who founded Weft?"), max_tokens=0, stream=False)[0].reason == "length"


def test_stop_sequences_end_the_answer():
    events = chat(rag("Who founded Weft?"), stop=["2024"])
    assert text_of(events) == "Weft was founded in "
    assert events[-1].reason == "stop"


def test_the_same_input_gives_the_same_events():
    messages = rag("How much does the premium plan cost?")
    assert chat(messages) == chat(messages)


def test_passages_are_sentences_list_items_and_paragraphs():
    text = (
        "Dr. Smith founded it in 2024. See Fig. 3 for the plan, e.g. the roadmap. "
        "Is it free? No.\n- first item\n- second item\n\nA new paragraph\nwrapped here. "
        "机器学习是人工智能的一个分支。深度学习使用神经网络！"
    )
    assert split_passages(text) == [
        "Dr. Smith founded it in 2024.",
        "See Fig. 3 for the plan, e.g. the roadmap.",
        "Is it free?",
        "No.",
        "- first item",
        "- second item",
        "A new paragraph wrapped here.",
        "机器学习是人工智能的一个分支。",
        "深度学习使用神经网络！",
    ]
