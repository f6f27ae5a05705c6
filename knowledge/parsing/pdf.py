"""PDF: the text layer, page by page (pypdf)."""

from __future__ import annotations

import io
import re

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from .cleaning import normalise
from .document import ParsedDocument, Section
from .errors import CorruptedFile, EncryptedFile, NoTextFound

# Typographic ligatures split words for search ("ﬁnd" is not "find"); TeX PDFs are full of them.
_LIGATURES = str.maketrans(
    {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
)
# A word hyphenated at a line end ("retrie-\nval") is rejoined when the next line goes on in
# lower case; "Lucene-\nBM25" stays as it is.
_LINE_END_HYPHEN = re.compile(r"(?<=[^\W\d_])-\n(?=[^\W\d_])")


def parse_pdf(data: bytes) -> ParsedDocument:
    """Extract each page's text; page numbers (1-based) go in the section metadata."""
    # pypdf raises many exception types on malformed input (PdfReadError, ValueError,
    # KeyError, RecursionError …); for untrusted uploads each one means "damaged file".
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            _decrypt(reader)
        page_count = len(reader.pages)
        pages = [_page_text(page.extract_text()) for page in reader.pages]
        info: dict[str, object] = dict(reader.metadata or {})
        metadata = {
            "pages": page_count,
            "title": str(info.get("/Title") or "").strip(),
            "author": str(info.get("/Author") or "").strip(),
        }
    except (EncryptedFile, NoTextFound):
        raise
    except Exception as exc:
        raise CorruptedFile("pdf", _short(exc)) from exc
    sections = [
        Section(text=text, metadata={"page": number})
        for number, text in enumerate(pages, start=1)
        if text.strip()
    ]
    if not sections:
        if page_count == 0:
            raise NoTextFound("The PDF has no pages.")
        raise NoTextFound(
            f"The PDF has {page_count} page(s) but no text layer: it looks like a scanned "
            "document or images. Run OCR on it (or export it with text) and upload it again."
        )
    metadata["pages_with_text"] = len(sections)
    return ParsedDocument.from_sections("pdf", sections, metadata)


def _decrypt(reader: PdfReader) -> None:
    # Many PDFs are encrypted with an owner password only (no copy/print); those open with
    # the empty user password, as in every PDF viewer.
    try:
        opened = reader.decrypt("")
    except (DependencyError, FileNotDecryptedError, NotImplementedError) as exc:
        raise EncryptedFile("PDF") from exc
    if opened == PasswordType.NOT_DECRYPTED:
        raise EncryptedFile("PDF")


def _page_text(raw: str) -> str:
    text = normalise(raw.translate(_LIGATURES))
    return _LINE_END_HYPHEN.sub(_rejoin_hyphenated, text).strip()


def _rejoin_hyphenated(match: re.Match[str]) -> str:
    return "" if match.string[match.end()].islower() else match.group()


def _short(exc: Exception) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return message[:200]
