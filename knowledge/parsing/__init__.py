"""Document parsing for the knowledge base: sniff the real type, extract text, clean it.

Pure Python, no database: `parse(data, filename)` -> ParsedDocument, or a ParseError whose
`reason` is shown to the user and whose `code` names the failure.
"""

from __future__ import annotations

from .cleaning import clean, normalise
from .document import Kind, ParsedDocument, Section
from .docx import parse_docx
from .errors import (
    BinaryFile,
    CorruptedFile,
    EmptyFile,
    EncryptedFile,
    FileTooLarge,
    NoTextFound,
    ParseError,
    UnsupportedFileType,
)
from .html import parse_html
from .markdown import parse_markdown
from .pdf import parse_pdf
from .sniff import sniff, sniff_and_decode
from .table import parse_csv

__all__ = [
    "BinaryFile",
    "CorruptedFile",
    "EmptyFile",
    "EncryptedFile",
    "FileTooLarge",
    "Kind",
    "NoTextFound",
    "ParseError",
    "ParsedDocument",
    "Section",
    "UnsupportedFileType",
    "clean",
    "normalise",
    "parse",
    "sniff",
]


def parse(data: bytes, filename: str = "", *, max_bytes: int | None = None) -> ParsedDocument:
    """Parse an uploaded file by its content; raise a ParseError for anything unusable."""
    if not data:
        raise EmptyFile()
    if max_bytes is not None and len(data) > max_bytes:
        raise FileTooLarge(size=len(data), max_bytes=max_bytes)
    kind, decoded = sniff_and_decode(data, filename)
    if kind == "pdf":
        return parse_pdf(data)
    if kind == "docx":
        return parse_docx(data)
    assert decoded is not None  # noqa: S101 - sniff decodes every text kind
    text = normalise(decoded.text)
    document = _parse_text(kind, text, filename)
    document.metadata["encoding"] = decoded.encoding
    return document


def _parse_text(kind: Kind, text: str, filename: str) -> ParsedDocument:
    if kind == "html":
        return parse_html(text)
    if kind == "markdown":
        return parse_markdown(text)
    if kind == "csv":
        return parse_csv(text, filename)
    if not text.strip():
        raise NoTextFound("The text file contains only whitespace.")
    return ParsedDocument.from_sections("text", [Section(text=text.strip("\n"))])
