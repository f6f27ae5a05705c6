"""Question and answer pairs already written in a text."""

# ruff: noqa: RUF001 - full-width CJK punctuation is matched on purpose
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from typing import Literal

from .pieces import Chunk, _Block
from .rules import QAExtractionError

Mode = Literal["automatic", "custom", "hierarchical"]
ParentMode = Literal["paragraph", "full-doc"]
DocForm = Literal["text_model", "hierarchical_model", "qa_model"]
Counter = Callable[[str], int]

_QUESTION = re.compile(r"^\s*(?:Q|Question|Frage|问|问题)\s*\d*\s*[:：.)]\s*", re.I | re.M)
_ANSWER = re.compile(r"^\s*(?:A|Answer|Antwort|答|答案)\s*\d*\s*[:：.)]\s*", re.I | re.M)
_INLINE_ANSWER = re.compile(r"(?<=[?？])\s+(?:A|Answer|Antwort|答|答案)\s*[:：]\s*", re.I)
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
_QUESTION_COLUMNS = {"question", "questions", "q", "frage", "问题", "query"}
_ANSWER_COLUMNS = {"answer", "answers", "a", "antwort", "答案", "response"}


def _qa_chunks(sections: list[_Block], count: Counter) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in sections:
        pairs = extract_qa_pairs(section.text)
        if not pairs and section.heading_path:
            pairs = [(section.heading_path[-1].strip(), section.text.strip())]
        for question, answer in pairs:
            tokens = count(question) + count(answer)
            chunks.append(Chunk(len(chunks), question, tokens, answer, None, section.meta()))
    if sections and not chunks:
        raise QAExtractionError(
            "No question/answer pairs found. Write them as 'Q: … A: …', "
            "'Question: … Answer: …', Markdown headings over their answers, "
            "or a CSV with question and answer columns."
        )
    return chunks


def extract_qa_pairs(text: str) -> list[tuple[str, str]]:
    """Question/answer pairs written in `text`, in order, in the first format that fits."""
    return _csv_pairs(text) or _marked_pairs(text) or _heading_pairs(text)


def _csv_pairs(text: str) -> list[tuple[str, str]]:
    lines = text.strip().splitlines()
    if not lines:
        return []
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t|")
    except csv.Error:
        return []
    rows = list(csv.reader(io.StringIO(text.strip()), dialect))
    header = [cell.strip().lower() for cell in rows[0]]
    q = next((i for i, name in enumerate(header) if name in _QUESTION_COLUMNS), None)
    a = next((i for i, name in enumerate(header) if name in _ANSWER_COLUMNS), None)
    if q is None or a is None:
        return []
    return [
        (row[q].strip(), row[a].strip())
        for row in rows[1:]
        if len(row) > max(q, a) and row[q].strip() and row[a].strip()
    ]


def _marked_pairs(text: str) -> list[tuple[str, str]]:
    text = _INLINE_ANSWER.sub("\nA: ", text)
    questions = list(_QUESTION.finditer(text))
    pairs = []
    for n, match in enumerate(questions):
        block_end = questions[n + 1].start() if n + 1 < len(questions) else len(text)
        answer = _ANSWER.search(text, match.end(), block_end)
        if answer is None:
            continue
        question, reply = (
            text[match.end() : answer.start()].strip(),
            text[answer.end() : block_end].strip(),
        )
        if question and reply:
            pairs.append((" ".join(question.split()), reply))
    return pairs


def _heading_pairs(text: str) -> list[tuple[str, str]]:
    headings = list(_HEADING.finditer(text))
    pairs = []
    for n, match in enumerate(headings):
        body_end = headings[n + 1].start() if n + 1 < len(headings) else len(text)
        pairs.append((match.group(1).strip(), text[match.end() : body_end].strip()))
    pairs = [(q, a) for q, a in pairs if q and a]
    questions = [(q, a) for q, a in pairs if q.endswith(("?", "？"))]
    # A FAQ page's title and intro are not a pair when its other headings are questions.
    return questions or pairs
