"""Tell what a file really is from its bytes; the name only breaks ties between text kinds."""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from charset_normalizer import from_bytes

from .document import Kind
from .errors import BinaryFile, CorruptedFile, EmptyFile, EncryptedFile, UnsupportedFileType

TEXT_EXTENSIONS = {
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".csv": "csv",
    ".tsv": "csv",
    ".htm": "html",
    ".html": "html",
    ".xhtml": "html",
}

# (magic, offset, what it is) for binaries people upload by mistake.
_BINARY_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "a PNG image"),
    (b"\xff\xd8\xff", 0, "a JPEG image"),
    (b"GIF87a", 0, "a GIF image"),
    (b"GIF89a", 0, "a GIF image"),
    (b"BM", 0, "a BMP image"),
    (b"II*\x00", 0, "a TIFF image"),
    (b"MM\x00*", 0, "a TIFF image"),
    (b"\x00\x00\x01\x00", 0, "an icon"),
    (b"\x7fELF", 0, "an executable (ELF)"),
    (b"MZ", 0, "a Windows executable"),
    (b"\xcf\xfa\xed\xfe", 0, "an executable (Mach-O)"),
    (b"\xfe\xed\xfa\xcf", 0, "an executable (Mach-O)"),
    (b"\xca\xfe\xba\xbe", 0, "a Java class or Mach-O binary"),
    (b"\x00asm", 0, "a WebAssembly module"),
    (b"\x1f\x8b", 0, "a gzip archive"),
    (b"BZh", 0, "a bzip2 archive"),
    (b"\xfd7zXZ\x00", 0, "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", 0, "a Zstandard archive"),
    (b"SQLite format 3\x00", 0, "an SQLite database"),
    (b"ID3", 0, "an MP3 audio file"),
    (b"OggS", 0, "an Ogg media file"),
    (b"fLaC", 0, "a FLAC audio file"),
    (b"ftyp", 4, "a video or image (MP4/HEIC)"),
    (b"\x1aE\xdf\xa3", 0, "a video (Matroska/WebM)"),
    (b"{\\rtf", 0, "an RTF document"),
    (b"%!PS", 0, "a PostScript document"),
    (b"wOFF", 0, "a web font"),
    (b"wOF2", 0, "a web font"),
]
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# An encrypted .docx/.xlsx is an OLE container holding a stream named "EncryptedPackage".
_OLE_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")

_PREFERRED_ENCODINGS = ("utf_8", "cp1252", "latin_1", "iso8859_15", "gb18030", "big5", "shift_jis")
# How much text we look at to decide the kind: enough for a header and some rows.
_SAMPLE_CHARS = 64 * 1024
_BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]
_HTML_DOCUMENT = re.compile(r"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)
_HTML_TAG = re.compile(
    r"<(?:p|div|span|a|br|h[1-6]|ul|ol|li|table|tr|td|th|meta|title|script|style|section"
    r"|article|main|nav|header|footer|img|strong|em|b|i|pre|code|blockquote)(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_MARKDOWN_SIGNALS = {
    "heading": re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE),
    "fence": re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE),
    "link": re.compile(r"!?\[[^\]\n]+\]\([^)\s]+[^)]*\)"),
    "list": re.compile(r"^ {0,3}(?:[-*+]|\d{1,3}[.)])[ \t]+\S", re.MULTILINE),
    "setext": re.compile(r"^\S.*\n(?:=+|-+)[ \t]*$", re.MULTILINE),
    "emphasis": re.compile(r"(?<![\w*])(?:\*\*|__)\S[^\n]*?\S(?:\*\*|__)(?![\w*])"),
    "table": re.compile(r"^ {0,3}\|.*\|[ \t]*\n {0,3}\|[ \t:|-]+\|[ \t]*$", re.MULTILINE),
    "quote": re.compile(r"^ {0,3}>[ \t]+\S", re.MULTILINE),
}


@dataclass(frozen=True)
class Decoded:
    """Text decoded from bytes, with the encoding that worked."""

    text: str
    encoding: str


def extension(filename: str) -> str:
    """The lower-cased last suffix of a file name, '' when there is none."""
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower()


def sniff(data: bytes, filename: str = "") -> Kind:
    """The kind of document in `data`: by content; the name only tips text kinds.

    Raises EmptyFile, UnsupportedFileType (BinaryFile for binary content under a text name),
    EncryptedFile for a password-protected Office file and CorruptedFile for a broken DOCX.
    """
    kind, _ = sniff_and_decode(data, filename)
    return kind


def sniff_and_decode(data: bytes, filename: str = "") -> tuple[Kind, Decoded | None]:
    """`sniff`, also returning the decoded text of text kinds so it is decoded only once."""
    if not data:
        raise EmptyFile()
    binary_kind = _sniff_binary(data, filename)
    if binary_kind is not None:
        return binary_kind, None
    decoded = decode_text(data, filename)
    return _classify_text(decoded.text[:_SAMPLE_CHARS], filename), decoded


def _sniff_binary(data: bytes, filename: str) -> Kind | None:
    # PDF readers accept the header anywhere in the first kilobyte (after junk bytes).
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return _sniff_zip(data, filename)
    if data.startswith(_OLE_MAGIC):
        if _OLE_ENCRYPTED in data:
            raise EncryptedFile("Office document")
        raise UnsupportedFileType(
            "a legacy Microsoft Office file (.doc, .xls or .ppt); save it as .docx or PDF",
            filename=filename,
        )
    for magic, offset, what in _BINARY_SIGNATURES:
        if data.startswith(magic, offset):
            if magic == b"BM" and not _looks_like_bmp(data):
                continue
            if magic == b"MZ" and b"\x00" not in data[:64]:
                continue  # text that happens to start with "MZ"; a DOS header has NULs
            raise UnsupportedFileType(what, filename=filename)
    return None


def _looks_like_bmp(data: bytes) -> bool:
    # "BM" also starts ordinary text; a real BMP declares its size and a DIB header.
    return len(data) >= 26 and data[6:10] == b"\x00\x00\x00\x00" and data[14] in (12, 40, 108, 124)


def _sniff_zip(data: bytes, filename: str) -> Kind:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if extension(filename) == ".docx":
            raise CorruptedFile("docx", "not a complete ZIP archive") from exc
        raise UnsupportedFileType("a damaged or unreadable ZIP archive", filename=filename) from exc
    if "word/document.xml" in names or any(
        name.startswith("word/") and name.endswith(".xml") for name in names
    ):
        return "docx"
    raise UnsupportedFileType(_describe_zip(names), filename=filename)


def _describe_zip(names: set[str]) -> str:
    if any(name.startswith("xl/") for name in names):
        return "an Excel workbook"
    if any(name.startswith("ppt/") for name in names):
        return "a PowerPoint presentation"
    if "mimetype" in names and "META-INF/manifest.xml" in names:
        return "an OpenDocument file"
    if "META-INF/container.xml" in names:
        return "an EPUB book"
    return "a ZIP archive"


def decode_text(data: bytes, filename: str = "") -> Decoded:
    """Decode text of unknown encoding, refusing binary content whatever its name."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _checked(data.decode(encoding), encoding, filename)
            except UnicodeDecodeError:
                break
    if b"\x00" not in data:
        try:
            return _checked(data.decode("utf-8"), "utf-8", filename)
        except UnicodeDecodeError:
            pass
    results = from_bytes(data)
    best = results.best()
    if best is None or best.encoding is None:
        raise _binary(filename)
    # Short Western text fits several code pages equally well; the detector then picks
    # an arbitrary one (cp1250 turns "ñ" into "ń"). Among equals, prefer the common ones.
    equals = {
        match.encoding: match
        for match in results
        if match.chaos == best.chaos and match.coherence == best.coherence
    }
    for preferred in _PREFERRED_ENCODINGS:
        if preferred in equals:
            best = equals[preferred]
            break
    return _checked(str(best), best.encoding, filename)


def _checked(text: str, encoding: str, filename: str) -> Decoded:
    """Refuse decodings that are really binary: NULs or many control characters."""
    sample = text[:_SAMPLE_CHARS]
    controls = sum(
        1 for char in sample if (ord(char) < 32 and char not in "\t\n\r\f\v") or char == "\x7f"
    )
    if "\x00" in sample or controls > max(2, len(sample) // 200):
        raise _binary(filename)
    return Decoded(text=text, encoding=encoding)


def _binary(filename: str) -> UnsupportedFileType:
    if extension(filename) in TEXT_EXTENSIONS:
        return BinaryFile(
            "binary data, not text (it cannot be decoded in any text encoding)", filename=filename
        )
    return UnsupportedFileType("binary data of an unknown type", filename=filename)


def _classify_text(sample: str, filename: str) -> Kind:
    hinted: Kind | None = TEXT_EXTENSIONS.get(extension(filename))  # type: ignore[assignment]
    head = sample.lstrip()[:2048]
    if _HTML_DOCUMENT.search(head) or (
        head.startswith("<") and len(_HTML_TAG.findall(sample)) >= 2
    ):
        return "html"
    if hinted == "html" and _HTML_TAG.search(sample):
        return "html"
    if head.startswith("<svg") or ("<svg" in head and head.startswith("<?xml")):
        raise UnsupportedFileType("an SVG image", filename=filename)
    if hinted == "markdown":
        return "markdown"  # even without any markup
    if hinted == "text":
        # A .txt whose lines happen to agree on commas reads fine as text; clear Markdown
        # (headings, fences) is still Markdown.
        return "markdown" if _is_markdown(sample) else "text"
    if _is_csv(sample, hinted_csv=hinted == "csv"):
        return "csv"
    if _is_markdown(sample):
        return "markdown"
    return "text"


def csv_dialect(sample: str, *, hinted_csv: bool) -> type[csv.Dialect] | None:
    """The CSV dialect of `sample` when its rows agree on a delimiter, else None."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    if len(lines) < 2:
        return None
    # A pipe-delimited file is usually a Markdown table; trust it only under a .csv name.
    delimiters = ",;\t|" if hinted_csv else ",;\t"
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=delimiters)
    except csv.Error:
        return None
    try:
        rows = list(csv.reader(lines, dialect))
    except csv.Error:
        return None
    widths = [len(row) for row in rows]
    if widths[0] < 2 or (not hinted_csv and len(widths) < 3):
        return None
    odd = [index for index, width in enumerate(widths) if width != widths[0]]
    if hinted_csv:
        if len(odd) > len(widths) // 5:
            return None
    elif odd and odd != [len(widths) - 1]:  # only the last line may be cut by the sample
        return None
    if not hinted_csv:
        # Prose with commas can pass the width test; real cells are short.
        cells = [cell for row in rows for cell in row]
        if sum(len(cell) for cell in cells) / len(cells) > 120:
            return None
    return dialect


def _is_csv(sample: str, *, hinted_csv: bool) -> bool:
    # Text under a .csv name is CSV even with one column or one line: nothing to sniff.
    return hinted_csv or csv_dialect(sample, hinted_csv=False) is not None


def _is_markdown(sample: str) -> bool:
    found = {name for name, pattern in _MARKDOWN_SIGNALS.items() if pattern.search(sample)}
    return bool(found & {"heading", "fence", "table"}) or len(found) >= 2
