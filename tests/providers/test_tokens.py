"""Local token counts: exact OpenAI encodings from bundled ranks, never downloaded, and the
fallback estimate within its stated error on real text."""

# Chinese sample text is written with its own full-width punctuation.
# ruff: noqa: RUF001

import html
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from providers.runtime import tokens
from providers.runtime.tokens import (
    count_message_tokens,
    count_tokens,
    encoding_for_model,
    estimate_tokens,
    get_encoder,
)
from providers.runtime.types import ChatMessage, Tool, ToolCall

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "samples"


def encoder(name="o200k_base"):
    found = get_encoder(name)
    assert found is not None, f"no bundled ranks for {name}"
    return found


def test_counts_are_exact_for_openai_encodings():
    assert encoder("cl100k_base").encode_ordinary("hello world") == [15339, 1917]
    assert encoder().encode_ordinary("Hello, world!") == [13225, 11, 2375, 0]
    assert encoder("cl100k_base").n_vocab == 100277
    assert encoder().n_vocab == 200019
    assert count_tokens("hello world", model="gpt-4") == 2
    assert count_tokens("Hello, world!", model="gpt-4o") == 4
    assert count_tokens("") == 0


def test_models_map_to_their_encoding_and_others_to_the_default_proxy():
    assert encoding_for_model("gpt-4") == "cl100k_base"
    assert encoding_for_model("gpt-3.5-turbo-0125") == "cl100k_base"
    assert encoding_for_model("text-embedding-3-small") == "cl100k_base"
    assert encoding_for_model("gpt-4o-mini") == "o200k_base"
    assert encoding_for_model("openai/gpt-4.1") == "o200k_base"
    assert encoding_for_model("gpt-oss-20b") == "o200k_base"
    assert encoding_for_model("claude-sonnet-4-5") == "o200k_base"
    assert encoding_for_model(None) == "o200k_base"
    text = "Die Größe des Wörterbuchs bestimmt die Anzahl der Tokens."
    assert count_tokens(text, model="gpt-4") != count_tokens(text, model="gpt-4o")


def test_special_token_markers_in_user_text_count_as_text():
    assert count_tokens("<|endoftext|>") > 1


def test_nothing_is_downloaded(tmp_path):
    """With every proxy pointing at a closed port and an empty tiktoken cache, a fresh
    process still counts exactly, and writes nothing to the cache."""
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(cache),
        "DATA_GYM_CACHE_DIR": str(cache),
        "HF_HUB_OFFLINE": "1",
        **{name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        **{name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "all_proxy")},
    }
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    code = (
        "from providers.runtime.tokens import count_tokens\n"
        "print(count_tokens('hello world', model='gpt-4'), count_tokens('Hello, world!'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "4"]
    assert "estimating instead" not in result.stderr
    assert list(cache.iterdir()) == []


@pytest.fixture
def fresh_encoders():
    get_encoder.cache_clear()
    yield
    get_encoder.cache_clear()


def test_ranks_that_are_not_the_published_ones_are_refused(monkeypatch, fresh_encoders):
    monkeypatch.setitem(tokens._RANKS_SHA256, "cl100k_base", "0" * 64)
    with pytest.raises(tokens.TokenizerDataError):
        tokens._load_ranks("cl100k_base")
    assert get_encoder("cl100k_base") is None
    text = "Counting falls back to the estimate when the ranks are wrong."
    assert count_tokens(text, model="gpt-4") == estimate_tokens(text)


def test_long_runs_count_in_linear_time():
    """A pure-Python BPE takes minutes on one long piece; the encoder must not."""
    started = time.perf_counter()
    assert count_tokens("中文" * 50_000) == 50_000
    assert count_tokens("a" * 100_000) == 12_500
    assert time.perf_counter() - started < 5


def test_message_tokens_follow_openai_accounting():
    system = ChatMessage("system", "You are a helpful assistant.")
    user = ChatMessage("user", "hello world", name="ada")
    expected = 3 + (3 + count_tokens("system") + count_tokens(system.content))
    expected += 3 + count_tokens("user") + 2 + 1 + count_tokens("ada")
    assert count_message_tokens([system, user]) == expected
    assert count_message_tokens([]) == 3

    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Lyon"}')
    with_call = [system, user, ChatMessage("assistant", tool_calls=(call,))]
    assert count_message_tokens(with_call) == expected + 3 + count_tokens("assistant") + (
        3 + count_tokens("get_weather") + count_tokens(call.arguments)
    )


def test_tool_definitions_add_their_tokens():
    messages = [ChatMessage("user", "What is the weather in Lyon?")]
    weather = Tool(
        name="get_weather",
        description="Current weather for a city.",
        parameters={
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
        },
    )
    bare = Tool(name="get_weather", description="Current weather for a city.", parameters={})
    plain = count_message_tokens(messages)
    assert count_message_tokens(messages, tools=[bare]) > plain
    assert count_message_tokens(messages, tools=[weather]) > count_message_tokens(
        messages, tools=[bare]
    )


# --- The estimate ---------------------------------------------------------------------------

OWN_TEXT = {
    "en": (
        "The retrieval pipeline splits every document into chunks of a few hundred tokens, "
        "embeds them in batches and writes them to PostgreSQL, where a vector index and a "
        "full-text index answer each query in a few milliseconds."
    ),
    "fr": (
        "Le pipeline de recherche découpe chaque document en fragments de quelques centaines "
        "de jetons, les vectorise par lots et les écrit dans PostgreSQL, où un index "
        "vectoriel et un index plein texte répondent à chaque requête en quelques millisecondes."
    ),
    "de": (
        "Die Suchpipeline zerlegt jedes Dokument in Abschnitte von einigen hundert Tokens, "
        "berechnet ihre Vektoren stapelweise und schreibt sie in PostgreSQL, wo ein "
        "Vektorindex und ein Volltextindex jede Anfrage in wenigen Millisekunden beantworten."
    ),
    "zh": (
        "检索流程把每个文档切分成几百个词元的片段，分批计算向量并写入数据库，"
        "向量索引和全文索引在几毫秒内回答每一个查询。"
    ),
}


@pytest.mark.parametrize("language", sorted(OWN_TEXT))
def test_estimate_is_close_on_short_prose(language):
    """One passage: within the estimate's 90th-percentile error (up to 20 % for Chinese)."""
    text = OWN_TEXT[language]
    exact = len(encoder().encode_ordinary(text))
    assert abs(estimate_tokens(text) - exact) / exact <= 0.25


def test_estimate_handles_edge_cases():
    assert estimate_tokens("") == 0
    assert estimate_tokens(" ") == 1
    assert estimate_tokens("hello world") == 2


def _paragraphs(text, shortest=80, longest=3000):
    parts = (part.strip() for part in re.split(r"\n\s*\n", text))
    return [part for part in parts if shortest <= len(part) <= longest]


def _pdf_chunks(name, size=600):
    pypdf = pytest.importorskip("pypdf", reason="pypdf extracts the French and German samples")
    reader = pypdf.PdfReader(SAMPLES / "docs" / name)
    text = re.sub(r"[ \t]+", " ", "\n".join(page.extract_text() or "" for page in reader.pages))
    return [text[i : i + size] for i in range(0, len(text) - size, size)]


def _sample_texts(language):
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} is absent (it sits beside the checkout in CI)")
    if language == "en":
        corpus = (SAMPLES / "ir" / "cranfield" / "beir" / "corpus.jsonl").read_text()
        docs = [json.loads(line)["text"] for line in corpus.splitlines()]
        texts = [doc for doc in docs if doc][:300]
        texts += _paragraphs((SAMPLES / "docs" / "dify-model-runtime-interfaces.md").read_text())
        page = (SAMPLES / "docs" / "ideas-page.html").read_text(errors="replace")
        return texts + _paragraphs(html.unescape(re.sub(r"<[^>]+>", " ", page)))
    if language == "zh":
        lines = []
        for path in sorted((SAMPLES / "dify-dsl").glob("*.yml")):
            for line in path.read_text().splitlines():
                line = line.strip()
                if len(line) >= 30 and len(re.findall(r"[\u3400-\u9fff]", line)) > 0.3 * len(line):
                    lines.append(line)
        return lines[:400]
    if language == "fr":
        return _pdf_chunks("fr_olap.pdf")
    return _pdf_chunks("GeoTopo-komprimiert.pdf")[:200]


# Mean absolute percentage error against o200k_base per passage, as stated in tokens.py
# (measured 6.0, 3.4, 7.8 and 9.1 % on these texts), with a margin.
STATED_ERROR = {"en": 0.08, "fr": 0.06, "de": 0.11, "zh": 0.12}


@pytest.mark.parametrize("language", sorted(STATED_ERROR))
def test_estimate_stays_within_its_stated_error_on_real_text(language):
    texts = _sample_texts(language)
    errors = []
    for text in texts:
        exact = len(encoder().encode_ordinary(text))
        errors.append(abs(estimate_tokens(text) - exact) / exact)
    assert len(errors) > 20
    assert statistics.mean(errors) <= STATED_ERROR[language]
