"""The splitting layer: each of Dify's modes on realistic text, sizes in tokens, no text lost."""

# ruff: noqa: RUF001 - full-width CJK punctuation is part of the test texts
import itertools
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from knowledge.splitting import (
    Chunk,
    QAExtractionError,
    Segmentation,
    SplitRule,
    SplitRuleError,
    extract_qa_pairs,
    split_document,
)
from providers.runtime.tokens import count_tokens

TOPICS = [
    "The indexing pipeline extracts text from every uploaded file",
    "Retrieval combines semantic and full-text search",
    "Each tenant keeps its documents apart from every other tenant",
    "Embeddings are written in batches to keep the database busy but not flooded",
    "A reranker orders the candidates by how well they answer the question",
    "Operators can watch the progress of a document while it is indexed",
]


def english(paragraphs: int) -> str:
    """Paragraphs of distinct sentences (each sentence unique thanks to its numbers)."""
    out = []
    for p in range(paragraphs):
        sentences = [
            f"{TOPICS[(p + s) % len(TOPICS)]} in paragraph {p}, sentence {s}."
            for s in range(3 + p % 5)
        ]
        sentences.append(f"Is paragraph {p} finished? Yes, it ends here!")
        out.append(" ".join(sentences))
    return "\n\n".join(out)


COMPOUNDS = [
    "Donaudampfschifffahrtsgesellschaftskapitänswitwe",
    "Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz",
    "Grundstücksverkehrsgenehmigungszuständigkeitsübertragungsverordnung",
    "Kraftfahrzeughaftpflichtversicherungsbedingungen",
]


def german(paragraphs: int) -> str:
    out = []
    for p in range(paragraphs):
        words = COMPOUNDS[p % len(COMPOUNDS)]
        out.append(
            f"Im Absatz {p} regelt die {words} die Zuständigkeit der Behörden. "
            f"Die {COMPOUNDS[(p + 1) % len(COMPOUNDS)]} wurde im Jahr {1990 + p} geändert; "
            f"seitdem gilt sie für alle Länder, Kreise und Gemeinden. "
            f"Absatz {p} endet mit dem Hinweis auf die "
            f"{COMPOUNDS[(p + 2) % len(COMPOUNDS)]}."
        )
    return "\n".join(out)


def chinese(paragraphs: int) -> str:
    out = []
    for p in range(paragraphs):
        out.append(
            f"第{p}段：知识库把上传的文件切分成片段。每个片段都会被向量化并写入数据库！"
            f"检索时系统会同时使用语义检索和全文检索，第{p}段的结果按相关性排序。"
            f"这样用户就能在第{p}段里找到最相关的答案吗？是的，一定可以。"
        )
    return "\n".join(out)


SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.findall(text) if s.strip()]


def locate(text: str, chunks: list[Chunk]) -> list[tuple[int, int]]:
    """Where each chunk sits in the text; chunks must be substrings in document order."""
    spans: list[tuple[int, int]] = []
    search_from = 0
    for chunk in chunks:
        start = text.find(chunk.content, search_from)
        assert start >= 0, f"chunk {chunk.position} is not in the text after {search_from}"
        spans.append((start, start + len(chunk.content)))
        search_from = start + 1
    return spans


def assert_covers(text: str, chunks: list[Chunk], *, gap: str = r"\s*") -> list[tuple[int, int]]:
    """Chunks, minus their overlaps, put back the whole text (gaps only match `gap`)."""
    spans = locate(text, chunks)
    covered = 0
    for start, end in spans:
        between = text[covered:start] if start > covered else ""
        assert not between or re.fullmatch(gap, between), (
            f"text lost between chunks: {between[:80]!r}"
        )
        covered = max(covered, end)
    assert re.fullmatch(r"\s*", text[covered:]), "text lost at the end"
    for sentence in sentences(text):
        assert any(sentence in c.content for c in chunks), f"sentence lost: {sentence!r}"
    return spans


def assert_sizes(chunks: list[Chunk], max_tokens: int) -> None:
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.tokens == count_tokens(chunk.content)
        assert 0 < chunk.tokens <= max_tokens


def assert_overlapping(spans: list[tuple[int, int]]) -> None:
    for (_, previous_end), (start, _) in itertools.pairwise(spans):
        assert start < previous_end, "consecutive chunks do not overlap"


def assert_word_edges(text: str, spans: list[tuple[int, int]]) -> None:
    """No chunk starts or ends inside a word."""
    for start, end in spans:
        assert start == 0 or not text[start - 1].isalnum() or not text[start].isalnum()
        assert end == len(text) or not text[end - 1].isalnum() or not text[end].isalnum()


# --- automatic ------------------------------------------------------------------------------


def test_automatic_defaults_are_difys():
    rule = SplitRule()
    assert rule.mode == "automatic"
    assert rule.segmentation == Segmentation(separator="\n", max_tokens=500, chunk_overlap=50)
    assert rule.remove_extra_spaces and not rule.remove_urls_emails


def test_automatic_english_fits_overlaps_and_loses_nothing():
    text = english(80)
    chunks = split_document(text).chunks
    assert len(chunks) > 5
    assert_sizes(chunks, 500)
    spans = assert_covers(text, chunks)
    assert_overlapping(spans)
    assert_word_edges(text, spans)
    # Chunks are filled up to the target, not cut at every paragraph.
    assert sum(c.tokens for c in chunks[:-1]) / (len(chunks) - 1) > 350


def test_automatic_overlap_is_at_most_the_configured_tokens():
    text = english(40)
    rule = SplitRule(segmentation=Segmentation(max_tokens=120, chunk_overlap=30))
    chunks = split_document(text, rule).chunks
    spans = assert_covers(text, chunks)
    assert_overlapping(spans)
    assert_sizes(chunks, 120)
    for (_, previous_end), (start, _) in itertools.pairwise(spans):
        assert 0 < count_tokens(text[start:previous_end]) <= 30


def test_automatic_german_never_cuts_inside_a_compound():
    text = german(60)
    rule = SplitRule(segmentation=Segmentation(max_tokens=100, chunk_overlap=20))
    chunks = split_document(text, rule).chunks
    assert_sizes(chunks, 100)
    spans = assert_covers(text, chunks)
    assert_overlapping(spans)
    assert_word_edges(text, spans)


def test_automatic_cuts_chinese_at_sentence_ends():
    text = chinese(60)
    rule = SplitRule(segmentation=Segmentation(max_tokens=80, chunk_overlap=10))
    chunks = split_document(text, rule).chunks
    assert_sizes(chunks, 80)
    spans = assert_covers(text, chunks)
    assert_overlapping(spans)
    # Without an overlap every chunk ends at a sentence end.
    chunks = split_document(text, SplitRule(segmentation=Segmentation("\n", 80, 0))).chunks
    assert_covers(text, chunks)
    assert all(c.content[-1] in "。！？" for c in chunks)


def test_text_without_any_separator_is_cut_by_characters():
    pool = "知识库检索向量片段文档租户模型语义全文排序答案问题系统数据"
    rng = random.Random(7)  # noqa: S311 - a fixed text, not a secret
    text = "".join(rng.choice(pool) for _ in range(9000)) + " " + "x" * 10
    chunks = split_document(text, SplitRule(segmentation=Segmentation("\n", 200, 20))).chunks
    assert_sizes(chunks, 200)
    assert_covers(text, chunks)


def test_sections_keep_their_headings_and_are_never_mixed():
    @dataclass(frozen=True)
    class Section:
        text: str
        heading_path: tuple[str, ...] = ()
        metadata: dict[str, Any] = field(default_factory=dict)

    sections = [
        Section(english(3), ("Guide", "Install"), {"page": 1}),
        Section(english(30), ("Guide", "Retrieval"), {"page": 2}),
        Section("A short closing note.", (), {"page": 3}),
        Section("   \n  ", ("Empty",), {}),
    ]
    chunks = split_document(sections).chunks
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert chunks[0].metadata == {"page": 1, "heading_path": ["Guide", "Install"]}
    assert {c.metadata["page"] for c in chunks} == {1, 2, 3}
    assert chunks[-1].metadata == {"page": 3} and chunks[-1].content == "A short closing note."
    for section in sections[:3]:
        own = [c for c in chunks if c.metadata["page"] == section.metadata["page"]]
        assert_covers(section.text, own)


def test_empty_text_gives_no_chunks():
    assert split_document("").chunks == []
    assert split_document("  \n\n \t ").chunks == []
    assert split_document([]).chunks == []


def test_pre_processing_rules():
    text = "Mail  ops@example.com or   see https://example.com/docs?x=1 now.\n\n\n\nNext."
    plain = split_document(text, SplitRule(remove_extra_spaces=False)).chunks[0].content
    assert plain == text
    cleaned = split_document(text).chunks[0].content
    assert cleaned == "Mail ops@example.com or see https://example.com/docs?x=1 now.\n\nNext."
    stripped = split_document(text, SplitRule(remove_urls_emails=True)).chunks[0].content
    assert "@" not in stripped and "https" not in stripped and "Next." in stripped


# --- custom ---------------------------------------------------------------------------------


def test_custom_separator_makes_one_chunk_per_piece():
    pieces = [english(1), "Second piece.", "Third piece, short."]
    text = "\n***\n".join(pieces)
    rule = SplitRule.from_process_rule(
        {
            "mode": "custom",
            "rules": {
                "pre_processing_rules": [{"id": "remove_extra_spaces", "enabled": True}],
                "segmentation": {"separator": "***", "max_tokens": 200, "chunk_overlap": 20},
            },
        }
    )
    chunks = split_document(text, rule).chunks
    assert [c.content for c in chunks] == pieces
    assert_covers(text, chunks, gap=r"\s*\*\*\*\s*")


def test_custom_splits_long_pieces_further_with_overlap():
    long_piece = english(20)
    text = f"Intro line.\n\n\n{long_piece}\n\n\nOutro line."
    rule = SplitRule.from_process_rule(
        {
            "mode": "custom",
            "rules": {
                "pre_processing_rules": [{"id": "remove_extra_spaces", "enabled": False}],
                "segmentation": {"separator": "\\n\\n\\n", "max_tokens": 150, "chunk_overlap": 30},
            },
        }
    )
    assert rule.segmentation == Segmentation("\n\n\n", 150, 30)
    chunks = split_document(text, rule).chunks
    assert chunks[0].content == "Intro line." and chunks[-1].content == "Outro line."
    assert_sizes(chunks, 150)
    middle = chunks[1:-1]
    assert len(middle) > 3
    spans = assert_covers(long_piece, middle)
    assert_overlapping(spans)
    assert_word_edges(long_piece, spans)


# --- hierarchical ---------------------------------------------------------------------------


def assert_family(result, parent_max: int, child_max: int) -> None:
    parents, children = result.chunks, result.children
    assert_sizes(parents, parent_max)
    assert_sizes(children, child_max)
    assert all(p.parent_position is None for p in parents)
    links = [c.parent_position for c in children]
    assert links == sorted(links), "children are not in document order"
    assert set(links) == {p.position for p in parents}, "a parent has no child"
    for parent in parents:
        own = [c for c in children if c.parent_position == parent.position]
        assert_covers(parent.content, own)


def test_parent_child_paragraph_mode_defaults():
    rule = SplitRule(mode="hierarchical")
    assert rule.segmentation == Segmentation("\n\n", 1024, 0)
    assert rule.subchunk_segmentation == Segmentation("\n", 512, 0)
    text = english(12).replace(" Is paragraph", "\nIs paragraph")
    result = split_document(text, rule)
    assert len(result.chunks) == 12
    assert_covers(text, result.chunks)
    assert len(result.children) == 24
    assert_family(result, 1024, 512)


def test_parent_child_splits_long_paragraphs_and_children():
    rule = SplitRule.from_process_rule(
        {
            "mode": "hierarchical",
            "rules": {
                "segmentation": {"separator": "\\n\\n", "max_tokens": 300},
                "parent_mode": "paragraph",
                "subchunk_segmentation": {"separator": "\\n", "max_tokens": 60},
            },
        }
    )
    text = english(10) + "\n\n" + german(12) + "\n\n" + chinese(10)
    result = split_document(text, rule)
    assert_covers(text, result.chunks)
    assert_family(result, 300, 60)
    assert len(result.children) > len(result.chunks)


def test_parent_child_full_doc():
    text = english(20)
    result = split_document(text, SplitRule(mode="hierarchical", parent_mode="full-doc"))
    assert len(result.chunks) == 1
    assert result.chunks[0].content == text
    assert "truncated" not in result.chunks[0].metadata
    assert_family(result, 10_000, 512)


def test_full_doc_keeps_only_the_first_ten_thousand_tokens():
    text = english(500)
    result = split_document(text, SplitRule(mode="hierarchical", parent_mode="full-doc"))
    (parent,) = result.chunks
    assert parent.metadata == {"truncated": True}
    assert 9_000 < parent.tokens <= 10_000
    assert text.startswith(parent.content)
    assert_family(result, 10_000, 512)


# --- Q&A ------------------------------------------------------------------------------------

QA_FORMATS = {
    "q-a": (
        "Q: How do I reset my password?\nA: Use the link on the sign-in page.\n\n"
        "Q: Can I export my data?\nA: Yes. Open Settings, then Export.\nIt takes a minute."
    ),
    "question-answer": (
        "Question 1: How do I reset my password?\n"
        "Answer: Use the link on the sign-in page.\n"
        "Question 2: Can I export my data?\n"
        "Answer: Yes. Open Settings, then Export.\nIt takes a minute."
    ),
    "inline": (
        "Q: How do I reset my password? A: Use the link on the sign-in page.\n"
        "Q: Can I export my data? A: Yes. Open Settings, then Export.\nIt takes a minute."
    ),
    "markdown": (
        "# Help centre FAQ\n\nAnswers to what customers ask most.\n\n"
        "## How do I reset my password?\n\nUse the link on the sign-in page.\n\n"
        "## Can I export my data?\n\nYes. Open Settings, then Export.\nIt takes a minute.\n"
    ),
    "csv": (
        'question,answer,category\n"How do I reset my password?",'
        "Use the link on the sign-in page.,account\n"
        '"Can I export my data?","Yes. Open Settings, then Export.\nIt takes a minute.",data\n'
    ),
}
EXPECTED_PAIRS = [
    ("How do I reset my password?", "Use the link on the sign-in page."),
    ("Can I export my data?", "Yes. Open Settings, then Export.\nIt takes a minute."),
]


@pytest.mark.parametrize("form", sorted(QA_FORMATS))
def test_qa_pairs_in_each_format(form):
    chunks = split_document(QA_FORMATS[form], doc_form="qa_model").chunks
    assert [(c.content, c.answer) for c in chunks] == EXPECTED_PAIRS
    assert [c.position for c in chunks] == [0, 1]
    assert chunks[0].tokens == count_tokens(EXPECTED_PAIRS[0][0]) + count_tokens(
        EXPECTED_PAIRS[0][1]
    )


def test_qa_in_german_chinese_and_semicolon_csv():
    assert extract_qa_pairs("Frage: Wie spät ist es?\nAntwort: Zwölf Uhr.") == [
        ("Wie spät ist es?", "Zwölf Uhr.")
    ]
    assert extract_qa_pairs("问：什么是知识库？\n答：存放文档的地方。") == [
        ("什么是知识库？", "存放文档的地方。")
    ]
    assert extract_qa_pairs("Frage;Antwort\nWo?;Hier.\n") == [("Wo?", "Hier.")]


def test_qa_from_sections_with_headings():
    @dataclass(frozen=True)
    class Section:
        text: str
        heading_path: tuple[str, ...] = ()
        metadata: dict[str, Any] = field(default_factory=dict)

    sections = [
        Section("Use the link on the sign-in page.", ("FAQ", "How do I reset my password?")),
        Section("Q: Can I export my data?\nA: Yes.", ("FAQ", "Data")),
    ]
    chunks = split_document(sections, doc_form="qa_model").chunks
    assert [(c.content, c.answer) for c in chunks] == [
        ("How do I reset my password?", "Use the link on the sign-in page."),
        ("Can I export my data?", "Yes."),
    ]
    assert chunks[0].metadata["heading_path"] == ["FAQ", "How do I reset my password?"]


def test_qa_without_pairs_is_an_error():
    with pytest.raises(QAExtractionError, match="No question/answer pairs"):
        split_document("Just a paragraph of prose.", doc_form="qa_model")
    assert split_document("", doc_form="qa_model").chunks == []


# --- rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"segmentation": Segmentation("\n", 49, 0)}, "between 50 and 4000, not 49"),
        ({"segmentation": Segmentation("\n", 4001, 0)}, "between 50 and 4000, not 4001"),
        ({"segmentation": Segmentation("\n", 100, 100)}, "below max_tokens"),
        ({"segmentation": Segmentation("\n", 100, -1)}, "at least 0"),
        ({"mode": "custom", "segmentation": Segmentation("", 100, 0)}, "must not be empty"),
        ({"mode": "semantic"}, "mode must be"),
        ({"mode": "hierarchical", "parent_mode": "page"}, "parent_mode must be"),
        (
            {"mode": "hierarchical", "subchunk_segmentation": Segmentation("\n", 2000, 0)},
            "must not exceed the parent's",
        ),
        (
            {"mode": "hierarchical", "subchunk_segmentation": Segmentation("\n", 30, 0)},
            r"subchunk_segmentation\.max_tokens must be between",
        ),
    ],
)
def test_invalid_rules_are_refused(kwargs, message):
    with pytest.raises(SplitRuleError, match=message):
        SplitRule(**kwargs)


def test_invalid_process_rules_are_refused():
    with pytest.raises(SplitRuleError, match="must be integers"):
        SplitRule.from_process_rule(
            {"mode": "custom", "rules": {"segmentation": {"max_tokens": "lots"}}}
        )
    with pytest.raises(SplitRuleError, match="separator must not be empty"):
        SplitRule.from_process_rule(
            {"mode": "custom", "rules": {"segmentation": {"separator": "", "max_tokens": 100}}}
        )
    with pytest.raises(SplitRuleError, match="doc_form 'hierarchical_model'"):
        split_document("text", SplitRule(), doc_form="hierarchical_model")
    assert issubclass(SplitRuleError, ValueError)


def test_automatic_process_rule_ignores_custom_fields():
    rule = SplitRule.from_process_rule(
        {"mode": "automatic", "rules": {"segmentation": {"max_tokens": 9}}}
    )
    assert rule == SplitRule()


# --- speed ----------------------------------------------------------------------------------


def test_speed_on_a_megabyte(capsys):
    text = english(60) + "\n\n" + german(40) + "\n\n" + chinese(40)
    text = "\n\n".join([text] * (1_000_000 // len(text) + 1))
    timings = {}
    for name, rule in {
        "automatic": SplitRule(),
        "custom": SplitRule(mode="custom", segmentation=Segmentation("\n\n", 300, 30)),
        "hierarchical": SplitRule(mode="hierarchical"),
    }.items():
        started = time.perf_counter()
        result = split_document(text, rule)
        timings[name] = (time.perf_counter() - started, len(result.chunks), len(result.children))
    with capsys.disabled():
        for name, (seconds, chunks, children) in timings.items():
            print(
                f"\nsplit {len(text) / 1e6:.2f} MB ({name}): {seconds:.2f} s, "
                f"{chunks} chunks, {children} children"
            )
    assert timings["automatic"][1] > 100
