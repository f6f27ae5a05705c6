"""Dify's processing rules, typed and checked."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

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
