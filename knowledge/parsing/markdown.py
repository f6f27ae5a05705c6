"""Markdown: the text as written, in sections opened by ATX (#) and setext headings."""

from __future__ import annotations

import re

from .document import ParsedDocument, Section
from .errors import NoTextFound

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def parse_markdown(text: str) -> ParsedDocument:
    """Split at headings outside code fences; each section keeps its heading line."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    current: list[str] = []
    fence: str | None = None
    lines = text.split("\n")

    def flush() -> None:
        body = "\n".join(current).strip("\n")
        if body.strip():
            sections.append(Section(text=body, heading_path=tuple(t for _, t in path)))
        current.clear()

    def open_section(level: int, title: str) -> None:
        nonlocal path
        flush()
        path = [(lvl, t) for lvl, t in path if lvl < level]
        path.append((level, title))

    index = 0
    while index < len(lines):
        line = lines[index]
        fence_match = _FENCE.match(line)
        if fence is not None:
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
            ):
                fence = None
            current.append(line)
        elif fence_match:
            fence = fence_match.group(1)
            current.append(line)
        elif (atx := _ATX.match(line)) and atx.group(2).strip():
            open_section(len(atx.group(1)), atx.group(2).strip())
            current.append(line)
        elif (
            index + 1 < len(lines)
            and line.strip()
            and not line.startswith((" " * 4, "\t"))
            and (setext := _SETEXT.match(lines[index + 1]))
            and not (current and current[-1].strip())  # a paragraph's last line is no title
        ):
            open_section(1 if setext.group(1)[0] == "=" else 2, line.strip())
            current.extend([line, lines[index + 1]])
            index += 1
        else:
            current.append(line)
        index += 1
    flush()
    if not sections:
        raise NoTextFound("The Markdown file contains no text.")
    return ParsedDocument.from_sections("markdown", sections)
