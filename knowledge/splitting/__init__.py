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

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from .pieces import Chunk, SplitResult, _Block, _blocks, _count, _full_doc
from .qa import _qa_chunks, extract_qa_pairs
from .rules import (
    AUTOMATIC_SEGMENTATION,
    CHILD_SEGMENTATION,
    CUSTOM_SEGMENTATION,
    FULL_DOC_MAX_TOKENS,
    MAX_MAX_TOKENS,
    MIN_MAX_TOKENS,
    PARENT_SEGMENTATION,
    DocForm,
    Mode,
    ParentMode,
    QAExtractionError,
    SectionLike,
    Segmentation,
    SplitRule,
    SplitRuleError,
    unescape_separator,
)
from .spans import split_by_separator, split_recursive

__all__ = [
    "AUTOMATIC_SEGMENTATION",
    "CHILD_SEGMENTATION",
    "CUSTOM_SEGMENTATION",
    "FULL_DOC_MAX_TOKENS",
    "MAX_MAX_TOKENS",
    "MIN_MAX_TOKENS",
    "PARENT_SEGMENTATION",
    "Chunk",
    "DocForm",
    "Mode",
    "ParentMode",
    "QAExtractionError",
    "SectionLike",
    "Segmentation",
    "SplitResult",
    "SplitRule",
    "SplitRuleError",
    "extract_qa_pairs",
    "split_document",
    "unescape_separator",
]


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
