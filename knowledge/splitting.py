"""Split a document's cleaned text into chunks, following Dify's processing rules.

`split_document(source, rule)` takes the text (or the parser's sections: anything with `text`,
`heading_path` and `metadata`) and returns a `SplitResult`:

- `chunks`: the segments, positions 0, 1, … in document order. In hierarchical mode these are
  the parents (what retrieval returns); in Q&A mode `content` is the question and `answer`
  the answer.
- `children`: only in hierarchical mode, the child chunks (what retrieval matches), also
  numbered 0, 1, … in document order, each with `parent_position` set to its parent's
  position; a child's content is always a substring of its parent's.

Modes, as Dify names them (`process_rule.mode`, `doc_form`):

- automatic: recursive separators (paragraph, line, sentence in Latin and CJK, clause, word,
  then characters) down to pieces that fit, merged up to `max_tokens` with `chunk_overlap`
  tokens of the previous chunk repeated at the start of the next one (cut at a word start).
- custom: the user's separator cuts the text and each piece is a chunk as it stands (Dify's
  behaviour: small pieces are not merged); pieces over `max_tokens` are split as in
  automatic mode, with overlap between their parts.
- hierarchical: parents are cut as in custom mode (`parent_mode="paragraph"`) or are the
  whole document (`"full-doc"`, its first 10,000 tokens as in Dify); each parent is cut into
  children as in custom mode with `subchunk_segmentation`.
- qa_model: pairs already written in the text ("Q:/A:", "Question:/Answer:", Markdown
  headings over their answer, a CSV with question and answer columns). Generating pairs
  with a model is not done here.

Dify's pre_processing_rules (`remove_extra_spaces`, `remove_urls_emails`) run first, through
`knowledge.parsing.cleaning.clean`; `remove_stopwords` is accepted in the JSON but not applied.

Sizes are tokens as `providers.runtime.tokens.count_tokens` counts them (the embedding
model's encoding when `model` is given). Every piece is counted once and every chunk once
more to check it, so the cost stays linear in the document's length.
"""

# ruff: noqa: RUF001 - full-width CJK punctuation is matched on purpose
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol

from knowledge.parsing.cleaning import clean
from providers.runtime.tokens import count_tokens

Mode = Literal["automatic", "custom", "hierarchical"]
ParentMode = Literal["paragraph", "full-doc"]
DocForm = Literal["text_model", "hierarchical_model", "qa_model"]
Counter = Callable[[str], int]

# Dify's bounds: at least 50 tokens, at most INDEXING_MAX_SEGMENTATION_TOKENS_LENGTH (4000).
MIN_MAX_TOKENS = 50
MAX_MAX_TOKENS = 4000
FULL_DOC_MAX_TOKENS = 10_000


class SplitRuleError(ValueError):
    """A processing rule that cannot be applied; the message says which field and why."""


class QAExtractionError(ValueError):
    """A document in Q&A form that holds no question/answer pair we can read."""


class SectionLike(Protocol):
    """What the splitter needs from a parsed section (the parser's `Section` fits)."""

    @property
    def text(self) -> str: ...
    @property
    def heading_path(self) -> Sequence[str]: ...
    @property
    def metadata(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Segmentation:
    """Dify's `segmentation` / `subchunk_segmentation`: where to cut and how large."""

    separator: str = "\n"
    max_tokens: int = 500
    chunk_overlap: int = 50

    def check(self, name: str) -> None:
        if not self.separator:
            raise SplitRuleError(f"{name}.separator must not be empty.")
        if not MIN_MAX_TOKENS <= self.max_tokens <= MAX_MAX_TOKENS:
            raise SplitRuleError(
                f"{name}.max_tokens must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS}, "
                f"not {self.max_tokens}."
            )
        if not 0 <= self.chunk_overlap < self.max_tokens:
            raise SplitRuleError(
                f"{name}.chunk_overlap must be at least 0 and below max_tokens "
                f"({self.max_tokens}), not {self.chunk_overlap}."
            )


# Dify's defaults: automatic mode (DatasetProcessRule.AUTOMATIC_RULES), the console's custom
# and parent-child forms (parent "\n\n"/1024, child "\n"/512; children never overlap there).
AUTOMATIC_SEGMENTATION = Segmentation("\n", 500, 50)
CUSTOM_SEGMENTATION = Segmentation("\n\n", 1024, 50)
PARENT_SEGMENTATION = Segmentation("\n\n", 1024, 0)
CHILD_SEGMENTATION = Segmentation("\n", 512, 0)


@dataclass(frozen=True)
class SplitRule:
    """Dify's `process_rule`, typed; invalid values raise `SplitRuleError` on construction.

    Automatic mode ignores `segmentation.separator` (as Dify does) and cuts recursively.
    """

    mode: Mode = "automatic"
    segmentation: Segmentation | None = None
    parent_mode: ParentMode = "paragraph"
    subchunk_segmentation: Segmentation | None = None
    remove_extra_spaces: bool = True
    remove_urls_emails: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("automatic", "custom", "hierarchical"):
            raise SplitRuleError(
                f"mode must be automatic, custom or hierarchical, not {self.mode!r}."
            )
        if self.parent_mode not in ("paragraph", "full-doc"):
            raise SplitRuleError(
                f"parent_mode must be paragraph or full-doc, not {self.parent_mode!r}."
            )
        default = {
            "automatic": AUTOMATIC_SEGMENTATION,
            "custom": CUSTOM_SEGMENTATION,
            "hierarchical": PARENT_SEGMENTATION,
        }[self.mode]
        segmentation = self.segmentation or default
        object.__setattr__(self, "segmentation", segmentation)
        segmentation.check("segmentation")
        if self.mode == "hierarchical":
            child = self.subchunk_segmentation or CHILD_SEGMENTATION
            object.__setattr__(self, "subchunk_segmentation", child)
            child.check("subchunk_segmentation")
            if self.parent_mode == "paragraph" and child.max_tokens > segmentation.max_tokens:
                raise SplitRuleError(
                    f"subchunk_segmentation.max_tokens ({child.max_tokens}) must not exceed "
                    f"the parent's max_tokens ({segmentation.max_tokens})."
                )

    @classmethod
    def from_process_rule(cls, process_rule: Mapping[str, Any]) -> SplitRule:
        """Read Dify's JSON `process_rule` (separators arrive escaped, e.g. `"\\\\n\\\\n"`)."""
        if not isinstance(process_rule, Mapping):
            raise SplitRuleError("process_rule must be an object.")
        mode = process_rule.get("mode", "automatic")
        rules = process_rule.get("rules") or {}
        if mode == "automatic" or not isinstance(rules, Mapping):
            rules = {}
        enabled = {
            str(item.get("id")): bool(item.get("enabled"))
            for item in rules.get("pre_processing_rules") or ()
            if isinstance(item, Mapping)
        }
        return cls(
            mode=mode,
            segmentation=_segmentation(rules.get("segmentation"), "segmentation"),
            parent_mode=rules.get("parent_mode") or "paragraph",
            subchunk_segmentation=_segmentation(
                rules.get("subchunk_segmentation"), "subchunk_segmentation"
            ),
            remove_extra_spaces=enabled.get("remove_extra_spaces", True),
            remove_urls_emails=enabled.get("remove_urls_emails", False),
        )


def _segmentation(raw: Any, name: str) -> Segmentation | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SplitRuleError(f"{name} must be an object.")
    base = Segmentation()
    try:
        return Segmentation(
            separator=unescape_separator(str(raw.get("separator", base.separator))),
            max_tokens=int(raw.get("max_tokens", base.max_tokens)),
            chunk_overlap=int(raw.get("chunk_overlap") or 0),
        )
    except (TypeError, ValueError) as exc:
        raise SplitRuleError(f"{name}: max_tokens and chunk_overlap must be integers.") from exc


def unescape_separator(separator: str) -> str:
    """Dify's console sends `\\n`, `\\t`, `\\r` escaped; turn them into the characters."""
    return separator.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")


@dataclass(frozen=True)
class Chunk:
    """One chunk of a document: its place, text, size in tokens and where it came from."""

    position: int
    content: str
    tokens: int
    answer: str | None = None
    parent_position: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitResult:
    """Segments (parents in hierarchical mode) and, in hierarchical mode, their children."""

    chunks: list[Chunk]
    children: list[Chunk] = field(default_factory=list)


def split_document(
    source: str | Iterable[SectionLike],
    rule: SplitRule | None = None,
    *,
    doc_form: DocForm | None = None,
    model: str | None = None,
) -> SplitResult:
    """Split a document's text or sections into chunks by `rule` (see the module docstring).

    `doc_form` defaults to the rule's (`hierarchical_model` for hierarchical mode, else
    `text_model`); `qa_model` extracts written question/answer pairs. Chunks never span two
    sections; a section's `heading_path` and `metadata` are copied onto its chunks.
    """
    rule = rule or SplitRule()
    form = doc_form or ("hierarchical_model" if rule.mode == "hierarchical" else "text_model")
    if (form == "hierarchical_model") != (rule.mode == "hierarchical"):
        raise SplitRuleError(
            f"doc_form {form!r} does not go with mode {rule.mode!r}: hierarchical_model "
            "needs the hierarchical mode and the other forms need another mode."
        )
    count = partial(_count, model=model)
    sections = [_Block(source, (), {})] if isinstance(source, str) else _blocks(source)
    sections = [s for s in (s.cleaned(rule) for s in sections) if s.text.strip()]
    if form == "qa_model":
        return SplitResult(_qa_chunks(sections, count))
    if form == "hierarchical_model" and rule.parent_mode == "full-doc" and sections:
        sections = [_full_doc(sections, count)]
    segmentation = rule.segmentation or AUTOMATIC_SEGMENTATION
    chunks: list[Chunk] = []
    children: list[Chunk] = []
    for section in sections:
        if form == "hierarchical_model" and rule.parent_mode == "full-doc":
            spans = [(0, len(section.text), count(section.text.strip()))]
        elif rule.mode == "automatic":
            spans = split_recursive(section.text, segmentation, count)
        else:
            spans = split_by_separator(section.text, segmentation, count)
        for start, end, tokens in spans:
            parent = Chunk(
                len(chunks), section.text[start:end].strip(), tokens, None, None, section.meta()
            )
            chunks.append(parent)
            if rule.subchunk_segmentation is not None and form == "hierarchical_model":
                child_spans = split_by_separator(parent.content, rule.subchunk_segmentation, count)
                children.extend(
                    Chunk(
                        len(children),
                        parent.content[s:e].strip(),
                        t,
                        None,
                        parent.position,
                        section.meta(),
                    )
                    for s, e, t in child_spans
                )
    return SplitResult(chunks, children)


def _count(text: str, *, model: str | None) -> int:
    return count_tokens(text, model=model)


@dataclass(frozen=True)
class _Block:
    text: str
    heading_path: tuple[str, ...]
    metadata: Mapping[str, Any]

    def cleaned(self, rule: SplitRule) -> _Block:
        """Dify's pre_processing_rules, as the parsing layer implements them."""
        text = clean(
            self.text,
            collapse_whitespace=rule.remove_extra_spaces,
            remove_urls_emails=rule.remove_urls_emails,
        )
        return _Block(text, self.heading_path, self.metadata)

    def meta(self) -> dict[str, Any]:
        meta = dict(self.metadata)
        if self.heading_path:
            meta["heading_path"] = list(self.heading_path)
        return meta


def _blocks(sections: Iterable[SectionLike]) -> list[_Block]:
    return [
        _Block(section.text, tuple(section.heading_path), dict(section.metadata))
        for section in sections
    ]


def _full_doc(sections: list[_Block], count: Counter) -> _Block:
    """All sections as one parent, cut at a word start after Dify's first 10,000 tokens."""
    text = "\n\n".join(section.text.strip() for section in sections)
    meta: dict[str, Any] = {}
    if count(text) > FULL_DOC_MAX_TOKENS:
        pieces = split_recursive(text, Segmentation("\n", FULL_DOC_MAX_TOKENS, 0), count)
        text = text[: pieces[0][1]]
        meta["truncated"] = True
    return _Block(text, (), meta)


# --- Splitting ------------------------------------------------------------------------------
Span = tuple[int, int, int]  # start, end (offsets in the text), tokens

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# Cut points are the ends of these matches, coarsest first; a separator stays with the text
# before it, so the pieces put back together are the text. A final space goes with the next
# word instead, as the tokenizer reads it (" word" is one token), so that the counts of the
# pieces add up to the count of their join.
_LEVELS = [
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n\s*"),
    re.compile(r"[。！？]+[”’」』）)]*\s*|[.!?]+[\"'”’)\]]*\s+"),
    re.compile(r";\s+|；\s*"),
    re.compile(r",\s+|[，、]\s*"),
    re.compile(r"\s+"),
]
_WORD_START = re.compile(rf"(?<=[\s.,;:!?。！？；，、{_CJK}])(?=\S)|(?=[{_CJK}])")


def split_recursive(text: str, segmentation: Segmentation, count: Counter) -> list[Span]:
    """Automatic mode on one text: spans of at most `max_tokens`, overlapping."""
    limit = segmentation.max_tokens - segmentation.chunk_overlap
    pieces = _pieces(text, 0, len(text), 0, limit, count)
    return _merge(text, pieces, segmentation.max_tokens, segmentation.chunk_overlap, count)


def split_by_separator(text: str, segmentation: Segmentation, count: Counter) -> list[Span]:
    """Custom mode on one text: one span per separated piece; long pieces split further."""
    spans: list[Span] = []
    start = 0
    while start <= len(text):
        end = text.find(segmentation.separator, start)
        end = len(text) if end < 0 else end
        lead = len(text[start:end]) - len(text[start:end].lstrip())
        trail = len(text[start:end].rstrip())
        if trail > lead:
            piece = text[start + lead : start + trail]
            tokens = _fitting(piece, segmentation.max_tokens, count)
            if tokens is not None:
                spans.append((start + lead, start + trail, tokens))
            else:
                spans.extend(
                    (start + lead + s, start + lead + e, t)
                    for s, e, t in split_recursive(piece, segmentation, count)
                )
        start = end + len(segmentation.separator)
    return spans


def _fitting(text: str, limit: int, count: Counter) -> int | None:
    """The tokens of `text` if they are at most `limit`, else None. Texts far longer than
    any `limit` tokens can be are not counted (splitting them needlessly loses nothing:
    the pieces are merged again)."""
    if len(text) > limit * 16:
        return None
    tokens = count(text)
    return tokens if tokens <= limit else None


def _pieces(text: str, start: int, end: int, level: int, limit: int, count: Counter) -> list[Span]:
    """Cut text[start:end] at the coarsest separators that make every piece fit `limit`."""
    tokens = _fitting(text[start:end], limit, count)
    if tokens is not None:
        return [(start, end, tokens)]
    for depth in range(level, len(_LEVELS)):
        cuts = [
            cut
            for m in _LEVELS[depth].finditer(text, start, end)
            if start < (cut := m.end() - (text[m.end() - 1] == " ")) < end
        ]
        if cuts:
            pieces: list[Span] = []
            for a, b in zip([start, *cuts], [*cuts, end], strict=True):
                if b > a:
                    pieces.extend(_pieces(text, a, b, depth + 1, limit, count))
            return pieces
    return _by_characters(text, start, end, limit, count)


def _by_characters(text: str, start: int, end: int, limit: int, count: Counter) -> list[Span]:
    """No separator left (a long compound, CJK without punctuation): prefixes within a few
    tokens of `limit`, found by extrapolating characters per token from counted prefixes
    (counting the whole run at once would be slow: the tokenizer sees one huge word)."""
    slack = max(2, limit // 50)
    rate = 2.0  # characters per token, learnt as we go
    pieces: list[Span] = []
    while start < end:
        fit, fit_tokens, over, over_tokens = start, 0, end + 1, 0
        while fit < end and over - fit > 1 and fit_tokens < limit - slack:
            step = max(1, int((limit - slack / 2 - fit_tokens) * rate))
            guess = min(end, over - 1, fit + step)
            tokens = count(text[start:guess])
            if tokens <= limit:
                fit, fit_tokens = guess, tokens
            else:
                over, over_tokens = guess, tokens
            if over <= end:
                rate = (over - fit) / (over_tokens - fit_tokens)
            elif fit_tokens:
                rate = (fit - start) / fit_tokens
        if fit == start:  # one character over the limit: it still has to go somewhere
            fit, fit_tokens = start + 1, count(text[start])
        pieces.append((start, fit, fit_tokens))
        start = fit
    return pieces


def _merge(
    text: str, pieces: list[Span], max_tokens: int, overlap: int, count: Counter
) -> list[Span]:
    """Greedily fill chunks with whole pieces; each chunk after the first starts with up to
    `overlap` tokens from the end of the one before (at a word start)."""
    spans: list[Span] = []
    i = 0
    while i < len(pieces):
        start = pieces[i][0]
        head, head_tokens = start, 0
        if spans and overlap:
            head, head_tokens = _overlap_start(text, spans[-1][0], start, overlap, count)
        used, j = head_tokens + pieces[i][2], i + 1
        while j < len(pieces) and used + pieces[j][2] <= max_tokens:
            used += pieces[j][2]
            j += 1
        # Token counts of pieces need not add up exactly; the chunk itself is what counts.
        while True:
            content = text[head : pieces[j - 1][1]].strip()
            tokens = count(content)
            if tokens <= max_tokens or (j == i + 1 and head == start):
                break
            if j > i + 1:
                j -= 1
            else:
                head = start
        if content:
            spans.append((head, pieces[j - 1][1], tokens))
        i = j
    return spans


def _overlap_start(
    text: str, previous_start: int, start: int, overlap: int, count: Counter
) -> tuple[int, int]:
    """The earliest word start after `previous_start` whose tail up to `start` fits `overlap`."""
    window = max(previous_start + 1, start - overlap * 12)
    starts = [m.start() for m in _WORD_START.finditer(text, window, start)]
    lo, hi = 0, len(starts)  # find the first candidate whose tail fits
    while lo < hi:
        mid = (lo + hi) // 2
        if count(text[starts[mid] : start]) <= overlap:
            hi = mid
        else:
            lo = mid + 1
    if lo == len(starts):
        return start, 0
    return starts[lo], count(text[starts[lo] : start])


# --- Q&A ------------------------------------------------------------------------------------
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
