"""What a parser hands to the rest of the indexing pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["pdf", "docx", "html", "markdown", "csv", "text"]
SECTION_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Section:
    """A block of text, under the headings that contain it (outermost first)."""

    text: str
    heading_path: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedDocument:
    """A parsed document: its whole text, the same text in sections, and what we learnt."""

    kind: Kind
    text: str
    sections: list[Section]
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_sections(
        cls, kind: Kind, sections: list[Section], metadata: dict[str, Any] | None = None
    ) -> ParsedDocument:
        """Build a document whose text is its sections joined by blank lines."""
        kept = [section for section in sections if section.text.strip()]
        text = SECTION_SEPARATOR.join(section.text for section in kept)
        return cls(kind=kind, text=text, sections=kept, metadata=metadata or {})
