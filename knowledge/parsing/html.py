"""HTML: the readable text, without scripts, styles and navigation; headings open sections."""

from __future__ import annotations

import re

import lxml.html
from lxml import etree

from .cleaning import normalise
from .document import ParsedDocument, Section
from .errors import CorruptedFile, NoTextFound

_DROPPED = {
    "script", "style", "noscript", "template", "svg", "math", "canvas", "iframe", "object",
    "embed", "map", "nav", "footer", "aside", "form", "button", "select", "head",
}  # fmt: skip
_BOILERPLATE_ROLES = {"navigation", "contentinfo", "banner", "search", "complementary"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = {
    "p", "div", "section", "article", "main", "header", "blockquote", "pre", "ul", "ol", "li",
    "dl", "dt", "dd", "table", "thead", "tbody", "tfoot", "tr", "figure", "figcaption",
    "address", "details", "summary", "hr", "center", "body", "caption", "fieldset", "legend",
}  # fmt: skip
# Blocks that end a paragraph: a blank line follows them, as after two <br>s.
_PARAGRAPHS = {"p", "pre", "table", "ul", "ol", "dl", "blockquote", "figure", "hr"}
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\n\f\u00a0]+")


def parse_html(text: str) -> ParsedDocument:
    """Readable text by blocks; <br> and block ends break lines, table cells join with |."""
    # lxml refuses str input that carries an encoding declaration; the text is decoded already.
    text = _XML_DECLARATION.sub("", text, count=1)
    if not text.strip():
        raise NoTextFound("The HTML page is empty.")
    try:
        root = lxml.html.document_fromstring(text)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        raise CorruptedFile("html", str(exc)[:200]) from exc
    title_el = root.find(".//title")
    title = " ".join((title_el.text_content() if title_el is not None else "").split())
    metadata = {"title": normalise(title), "language": root.get("lang", "")}
    walker = _Walker()
    walker.walk(root)
    sections = walker.finish()
    if not sections:
        raise NoTextFound("The HTML page has no readable text (only markup or scripts).")
    return ParsedDocument.from_sections("html", sections, metadata)


def _is_dropped(element: etree._Element) -> bool:
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return True
    if tag.lower() in _DROPPED:
        return True
    if element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    return (element.get("role") or "").lower() in _BOILERPLATE_ROLES


class _Walker:
    """Turns the element tree into lines, opening a section at each heading."""

    def __init__(self) -> None:
        self._sections: list[Section] = []
        self._path: list[tuple[int, str]] = []
        self._lines: list[str] = []
        self._current: list[str] = []

    def walk(self, element: etree._Element) -> None:
        for child in element:
            if _is_dropped(child):
                self._text(child.tail)
                continue
            tag = str(child.tag).lower()
            if tag in _HEADINGS:
                self._heading(_HEADINGS[tag], " ".join(child.text_content().split()))
            elif tag == "br":
                if "".join(self._current).strip():
                    self._break()
                else:
                    self._paragraph_break()
            elif tag == "pre":
                self._break()
                self._lines.append(normalise(child.text_content()).strip("\n"))
                self._paragraph_break()
            elif tag in ("td", "th"):
                if self._current and "".join(self._current).strip():
                    self._current.append(" | ")
                self._text(child.text)
                self.walk(child)
            elif tag == "li":
                self._break()
                self._current.append("- ")
                self._text(child.text)
                self.walk(child)
                self._break()
            elif tag in _BLOCKS:
                self._break()
                self._text(child.text)
                self.walk(child)
                self._break()
                if tag in _PARAGRAPHS:
                    self._paragraph_break()
            else:
                self._text(child.text)
                self.walk(child)
            self._text(child.tail)

    def finish(self) -> list[Section]:
        self._flush()
        return self._sections

    def _text(self, text: str | None) -> None:
        if text:
            self._current.append(_SPACES.sub(" ", text))

    def _break(self) -> None:
        line = normalise("".join(self._current)).strip()
        if line and line != "-":
            self._lines.append(line)
        self._current = []

    def _paragraph_break(self) -> None:
        self._break()
        if self._lines and self._lines[-1]:
            self._lines.append("")

    def _heading(self, level: int, text: str) -> None:
        self._flush()
        if not text:
            return
        self._path = [(lvl, title) for lvl, title in self._path if lvl < level]
        self._path.append((level, normalise(text)))
        self._lines.append(normalise(text))

    def _flush(self) -> None:
        self._break()
        while self._lines and not self._lines[-1]:
            self._lines.pop()
        if self._lines:
            self._sections.append(
                Section(
                    text="\n".join(self._lines),
                    heading_path=tuple(title for _, title in self._path),
                )
            )
        self._lines = []
