"""DOCX: paragraphs and tables in document order, headings by style (lxml on the XML)."""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator

from lxml import etree

from .cleaning import normalise
from .document import ParsedDocument, Section
from .errors import CorruptedFile, FileTooLarge, NoTextFound

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_OFFICE_DOCUMENT = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
)
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_HEADING_NAME = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
# A document.xml unpacking past this is a zip bomb, not a handbook (872 pages are ~5 MB).
MAX_XML_BYTES = 256 * 1024 * 1024
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)


def parse_docx(data: bytes) -> ParsedDocument:
    """Headings (by style or outline level) open sections; table rows become "a | b" lines."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            main_part = _main_part(archive)
            body = _read_xml(archive, main_part).find(f"{W}body")
            styles = _heading_styles(archive, posixpath.dirname(main_part))
            title = _core_title(archive)
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError, OSError, EOFError) as exc:
        raise CorruptedFile("docx", str(exc)[:200]) from exc
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, ValueError) as exc:
        raise CorruptedFile("docx", str(exc)[:200]) from exc
    if body is None:
        raise CorruptedFile("docx", "the document has no body")
    builder = _SectionBuilder()
    for block in _blocks(body):
        if block.tag == f"{W}p":
            text = _paragraph_text(block)
            level = _heading_level(block, styles)
            if level is not None and text.strip():
                builder.heading(level, " ".join(text.split()))
            elif text.strip():
                prefix = "- " if block.find(f"{W}pPr/{W}numPr") is not None else ""
                builder.add(prefix + text)
        else:
            table = _table_text(block)
            if table:
                builder.add(table)
    sections = builder.finish()
    if not sections:
        raise NoTextFound("The DOCX document contains no text.")
    return ParsedDocument.from_sections("docx", sections, {"title": title})


def _main_part(archive: zipfile.ZipFile) -> str:
    try:
        rels = _read_xml(archive, "_rels/.rels")
    except KeyError:
        return "word/document.xml"
    for rel in rels.iter(_RELS):
        if rel.get("Type") == _OFFICE_DOCUMENT and rel.get("Target"):
            return posixpath.normpath(str(rel.get("Target")).lstrip("/"))
    return "word/document.xml"


def _read_xml(archive: zipfile.ZipFile, name: str) -> etree._Element:
    info = archive.getinfo(name)
    if info.file_size > MAX_XML_BYTES:
        raise FileTooLarge(size=info.file_size, max_bytes=MAX_XML_BYTES)
    return etree.fromstring(archive.read(info), _PARSER)


def _heading_styles(archive: zipfile.ZipFile, folder: str) -> dict[str, int]:
    """Style id -> heading level (0 for Title), following `basedOn` for outline levels."""
    try:
        root = _read_xml(archive, posixpath.join(folder, "styles.xml"))
    except KeyError:
        return {}
    own: dict[str, int] = {}
    based_on: dict[str, str] = {}
    for style in root.iter(f"{W}style"):
        style_id = style.get(f"{W}styleId")
        if not style_id:
            continue
        name_el = style.find(f"{W}name")
        name = (name_el.get(f"{W}val") if name_el is not None else "") or ""
        match = _HEADING_NAME.match(name.strip())
        outline = style.find(f"{W}pPr/{W}outlineLvl")
        if name.strip().lower() == "title":
            own[style_id] = 0
        elif match:
            own[style_id] = int(match.group(1))
        elif outline is not None and _outline_level(outline) is not None:
            own[style_id] = _outline_level(outline) or 0
        parent = style.find(f"{W}basedOn")
        if parent is not None and parent.get(f"{W}val"):
            based_on[style_id] = str(parent.get(f"{W}val"))
    levels = dict(own)
    for style_id in based_on:
        seen = {style_id}
        current = style_id
        while current not in own and current in based_on and based_on[current] not in seen:
            current = based_on[current]
            seen.add(current)
        if current in own and style_id not in levels:
            levels[style_id] = own[current]
    return levels


def _outline_level(element: etree._Element) -> int | None:
    value = element.get(f"{W}val", "")
    # Outline levels 0-8 are headings 1-9; 9 means body text.
    return int(value) + 1 if value.isdigit() and int(value) < 9 else None


def _core_title(archive: zipfile.ZipFile) -> str:
    try:
        root = _read_xml(archive, "docProps/core.xml")
    except KeyError:
        return ""
    title = root.find(_DC_TITLE)
    return normalise(title.text or "").strip() if title is not None else ""


def _blocks(container: etree._Element) -> Iterator[etree._Element]:
    """Paragraphs and tables in order, looking inside content controls and similar wrappers."""
    for child in container:
        if child.tag in (f"{W}p", f"{W}tbl"):
            yield child
        elif child.tag != f"{W}sectPr" and isinstance(child.tag, str):
            yield from _blocks(child)


def _heading_level(paragraph: etree._Element, styles: dict[str, int]) -> int | None:
    props = paragraph.find(f"{W}pPr")
    if props is None:
        return None
    outline = props.find(f"{W}outlineLvl")
    if outline is not None:
        return _outline_level(outline)
    style = props.find(f"{W}pStyle")
    if style is None:
        return None
    return styles.get(style.get(f"{W}val", ""))


def _paragraph_text(paragraph: etree._Element) -> str:
    parts: list[str] = []
    _collect(paragraph, parts)
    return normalise("".join(parts))


def _collect(element: etree._Element, parts: list[str]) -> None:
    for child in element:
        tag = child.tag
        if tag == f"{W}t":
            parts.append(child.text or "")
        elif tag == f"{W}tab":
            parts.append("\t")
        elif tag in (f"{W}br", f"{W}cr"):
            parts.append("\n")
        elif tag == f"{W}noBreakHyphen":
            parts.append("-")
        elif tag == f"{W}p":  # a paragraph inside a text box
            parts.append("\n")
            _collect(child, parts)
        elif tag in (_MC_FALLBACK, f"{W}pPr", f"{W}rPr", f"{W}instrText", f"{W}delText"):
            continue  # the fallback repeats the choice; the rest is formatting or field code
        elif isinstance(tag, str):
            _collect(child, parts)


def _table_text(table: etree._Element) -> str:
    rows = []
    for row in table.iter(f"{W}tr"):
        if row.getparent() is not table and row.getparent() is not None:
            # Rows of nested tables are read as part of their cell.
            if _owning_table(row) is not table:
                continue
        cells = []
        for cell in row.findall(f"{W}tc"):
            merge = cell.find(f"{W}tcPr/{W}vMerge")
            if merge is not None and merge.get(f"{W}val", "continue") == "continue":
                cells.append("")
                continue
            texts = (_paragraph_text(paragraph) for paragraph in cell.iter(f"{W}p"))
            cells.append(" ".join(" ".join(texts).split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _owning_table(row: etree._Element) -> etree._Element | None:
    parent = row.getparent()
    while parent is not None and parent.tag != f"{W}tbl":
        parent = parent.getparent()
    return parent


class _SectionBuilder:
    """Collects blocks under the current heading path."""

    def __init__(self) -> None:
        self._sections: list[Section] = []
        self._path: list[tuple[int, str]] = []
        self._blocks: list[str] = []

    def heading(self, level: int, text: str) -> None:
        self._flush()
        self._path = [(lvl, title) for lvl, title in self._path if lvl < level]
        self._path.append((level, text))
        self._blocks.append(text)

    def add(self, text: str) -> None:
        self._blocks.append(text)

    def finish(self) -> list[Section]:
        self._flush()
        return self._sections

    def _flush(self) -> None:
        if self._blocks:
            self._sections.append(
                Section(
                    text="\n\n".join(self._blocks),
                    heading_path=tuple(title for _, title in self._path),
                )
            )
        self._blocks = []
