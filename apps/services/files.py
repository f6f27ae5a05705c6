"""Files sent to an app (Service API `files/upload`, the portal): size-capped, typed by their
content (never by their name alone), hashed, and kept in the default storage under a key of
their tenant; read back only by whoever uploaded them.

The types taken are Dify's: documents (text, Markdown, HTML, CSV, XML, PDF, Word, Excel,
PowerPoint, e-mail, EPUB), images (JPEG, PNG, GIF, WebP, SVG), audio (MP3, M4A, WAV, AMR) and
video (MP4, MOV, MPEG, WebM). Anything else — executables, archives, unknown binary data — is
refused with 415 `unsupported_file_type`.
"""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from billing import quota
from billing.models import Metric
from knowledge.parsing.errors import ParseError
from knowledge.parsing.sniff import decode_text
from tenants.context import require_current_tenant, tenant_context
from tenants.exceptions import InvalidInput, NotFound, WeftError
from tenants.models import User

from ..models import App, EndUser, UploadFile

MAX_NAME = 255
_READ_CHUNK = 1 << 20


class FileTooLarge(WeftError):
    code = "file_too_large"
    status = 413


class NoFileUploaded(InvalidInput):
    code = "no_file_uploaded"


class UnsupportedFileType(WeftError):
    code = "unsupported_file_type"
    status = 415


@dataclass(frozen=True)
class FileType:
    """What a file is: its MIME type, Dify's kind of it, and its usual extensions (the first
    is the one given to a file whose name says something else)."""

    mime_type: str
    kind: str  # document, image, audio, video
    extensions: tuple[str, ...]


def _type(mime: str, kind: str, *extensions: str) -> FileType:
    return FileType(mime, kind, extensions)


PDF = _type("application/pdf", "document", "pdf")
DOCX = _type(
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "document", "docx"
)
XLSX = _type(
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "document", "xlsx"
)
PPTX = _type(
    "application/vnd.openxmlformats-officedocument.presentationml.presentation", "document", "pptx"
)
EPUB = _type("application/epub+zip", "document", "epub")
OLE_TYPES = {
    "doc": _type("application/msword", "document", "doc"),
    "xls": _type("application/vnd.ms-excel", "document", "xls"),
    "ppt": _type("application/vnd.ms-powerpoint", "document", "ppt"),
    "msg": _type("application/vnd.ms-outlook", "document", "msg"),
}
TEXT_TYPES = {
    "txt": _type("text/plain", "document", "txt"),
    "md": _type("text/markdown", "document", "md", "markdown", "mdx"),
    "markdown": _type("text/markdown", "document", "markdown", "md", "mdx"),
    "mdx": _type("text/markdown", "document", "mdx", "md", "markdown"),
    "csv": _type("text/csv", "document", "csv"),
    "html": _type("text/html", "document", "html", "htm"),
    "htm": _type("text/html", "document", "htm", "html"),
    "xml": _type("application/xml", "document", "xml"),
    "vtt": _type("text/vtt", "document", "vtt"),
    "properties": _type("text/plain", "document", "properties"),
    "eml": _type("message/rfc822", "document", "eml"),
    "json": _type("application/json", "document", "json"),
}
PLAIN_TEXT = TEXT_TYPES["txt"]
HTML = TEXT_TYPES["html"]
XML = TEXT_TYPES["xml"]
SVG = _type("image/svg+xml", "image", "svg")

# (signature, offset, type) of the binary types taken.
_SIGNATURES: list[tuple[bytes, int, FileType]] = [
    (b"\x89PNG\r\n\x1a\n", 0, _type("image/png", "image", "png")),
    (b"\xff\xd8\xff", 0, _type("image/jpeg", "image", "jpg", "jpeg")),
    (b"GIF87a", 0, _type("image/gif", "image", "gif")),
    (b"GIF89a", 0, _type("image/gif", "image", "gif")),
    (b"ID3", 0, _type("audio/mpeg", "audio", "mp3", "mpga")),
    (b"#!AMR", 0, _type("audio/amr", "audio", "amr")),
    (b"\x00\x00\x01\xba", 0, _type("video/mpeg", "video", "mpeg", "mpg")),
    (b"\x00\x00\x01\xb3", 0, _type("video/mpeg", "video", "mpeg", "mpg")),
]
_WEBP = _type("image/webp", "image", "webp")
_WAV = _type("audio/wav", "audio", "wav")
_MP3 = _type("audio/mpeg", "audio", "mp3", "mpga")
_M4A = _type("audio/mp4", "audio", "m4a")
_MP4 = _type("video/mp4", "video", "mp4")
_MOV = _type("video/quicktime", "video", "mov")
_WEBM = _type("video/webm", "video", "webm")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def extension_of(name: str) -> str:
    """The lower-cased last suffix of a file name, without its dot."""
    return PurePosixPath(name.replace("\\", "/")).suffix.lower().lstrip(".")


def _refuse(what: str) -> UnsupportedFileType:
    return UnsupportedFileType(
        f"Unsupported file type: this file is {what}. Send a document, an image, audio or video."
    )


def sniff(data: bytes, name: str = "") -> FileType:
    """What `data` is, read from its bytes (its name only tells text kinds apart, and the
    Office formats that share one container). UnsupportedFileType for anything not taken."""
    for signature, offset, found in _SIGNATURES:
        if data.startswith(signature, offset):
            return found
    if b"%PDF-" in data[:1024]:
        return PDF
    if data[:4] == b"RIFF" and data[8:12] in (b"WEBP", b"WAVE"):
        return _WEBP if data[8:12] == b"WEBP" else _WAV
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE6 == 0xE2:
        return _MP3  # an MPEG layer III frame: an MP3 without an ID3 tag
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"M4A ", b"M4B "):
            return _M4A
        if brand == b"qt  ":
            return _MOV
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
            raise _refuse("a HEIC or AVIF image")
        return _MP4
    if data.startswith(b"\x1aE\xdf\xa3"):
        if b"webm" in data[:64]:
            return _WEBM
        raise _refuse("a Matroska video")
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_type(data)
    if data.startswith(_OLE_MAGIC):
        legacy = OLE_TYPES.get(extension_of(name))
        if legacy is None:
            raise _refuse("a legacy Office file whose name does not say .doc, .xls, .ppt or .msg")
        return legacy
    return _text_type(data, name)


def _zip_type(data: bytes) -> FileType:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            mimetype = archive.read("mimetype") if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError):
        raise _refuse("a damaged ZIP archive") from None
    if any(n.startswith("word/") for n in names):
        return DOCX
    if any(n.startswith("xl/") for n in names):
        return XLSX
    if any(n.startswith("ppt/") for n in names):
        return PPTX
    if mimetype.strip() == b"application/epub+zip":
        return EPUB
    raise _refuse("a ZIP archive")


def _text_type(data: bytes, name: str) -> FileType:
    try:
        text = decode_text(data, name).text
    except ParseError:
        raise _refuse("binary data of an unknown type") from None
    head = text.lstrip()[:2048].lower()
    if head.startswith("<svg") or (head.startswith("<?xml") and "<svg" in head):
        return SVG
    hinted = TEXT_TYPES.get(extension_of(name))
    if hinted is not None:
        return hinted
    if head.startswith(("<!doctype html", "<html")):
        return HTML
    if head.startswith("<?xml"):
        return XML
    return PLAIN_TEXT


def kind_of(mime_type: str) -> str:
    """Dify's kind (document, image, audio, video, custom) of a MIME type."""
    major = mime_type.split("/", 1)[0]
    if mime_type == SVG.mime_type or major == "image":
        return "image"
    if major in ("audio", "video"):
        return major
    known = {t.mime_type for t in (PDF, DOCX, XLSX, PPTX, EPUB, *OLE_TYPES.values())}
    if (
        major == "text"
        or mime_type in known
        or mime_type in {t.mime_type for t in TEXT_TYPES.values()}
    ):
        return "document"
    return "custom"


def _read(uploaded: Any, limit: int) -> bytes:
    """The upload's bytes, FileTooLarge past `limit` (read no further than that)."""
    size = getattr(uploaded, "size", None)
    if isinstance(size, int) and size > limit:
        raise _too_large(limit)
    buffer = bytearray()
    chunks = uploaded.chunks(_READ_CHUNK) if hasattr(uploaded, "chunks") else None
    if chunks is None:
        data = uploaded.read(limit + 1)
        chunks = [data]
    for chunk in chunks:
        buffer += chunk
        if len(buffer) > limit:
            raise _too_large(limit)
    return bytes(buffer)


def _too_large(limit: int) -> FileTooLarge:
    return FileTooLarge(f"File size exceeded: the limit is {limit // (1 << 20) or 1} MB.")


def _clean_name(name: str, found: FileType) -> tuple[str, str]:
    """The name kept (its last path part, at most 255 characters) and its extension: the
    name's own when it fits the content, else the content's usual one."""
    base = PurePosixPath(str(name or "").replace("\\", "/")).name.strip() or "file"
    extension = extension_of(base)
    if extension not in found.extensions:
        extension = found.extensions[0]
    if len(base) > MAX_NAME:
        stem = base[: MAX_NAME - len(extension) - 1]
        base = f"{stem}.{extension}"
    return base, extension


def upload_create(
    *, app: App, end_user: EndUser | None, user: User | None = None, uploaded: Any
) -> UploadFile:
    """Keep a file sent to `app` by an end user (or a member): NoFileUploaded when it is
    missing or empty, FileTooLarge past WEFT_UPLOAD_MAX_BYTES (413), UnsupportedFileType for
    a type not taken (415)."""
    if uploaded is None:
        raise NoFileUploaded("No file uploaded: send it as the multipart field `file`.")
    if end_user is None and user is None:
        raise InvalidInput("user: this field is required.")
    if end_user is not None and end_user.app_id != app.pk:
        raise NotFound("No such end user.")
    data = _read(uploaded, settings.WEFT_UPLOAD_MAX_BYTES)
    if not data:
        raise NoFileUploaded("No file uploaded: the file is empty.")
    name = str(getattr(uploaded, "name", "") or "")
    found = sniff(data, name)
    name, extension = _clean_name(name, found)
    upload_id = uuid.uuid4()
    key = f"uploads/{app.tenant_id}/{app.pk}/{upload_id.hex}.{extension}"
    stored = None
    with tenant_context(app.tenant):
        try:
            with transaction.atomic():
                quota.capacity(app.tenant, Metric.STORAGE_BYTES, len(data))
                stored = default_storage.save(key, ContentFile(data))
                return UploadFile.objects.create(
                    id=upload_id,
                    tenant=app.tenant,
                    app=app,
                    name=name,
                    size=len(data),
                    extension=extension,
                    mime_type=found.mime_type,
                    sha256=hashlib.sha256(data).hexdigest(),
                    storage_key=stored,
                    created_by_end_user=end_user,
                    created_by=user if end_user is None else None,
                )
        except Exception:
            if stored is not None:
                default_storage.delete(stored)  # no file without its row
            raise


def upload_get(*, upload_id: Any, end_user: EndUser | None, user: User | None = None) -> UploadFile:
    """The upload, if the end user (or, with no end user, the member, in the current tenant)
    sent it: NotFound otherwise, the same for a missing, malformed or someone else's id."""
    try:
        pk = uuid.UUID(str(upload_id))
    except ValueError:
        raise NotFound("File not found.") from None
    if end_user is not None:
        tenant = end_user.tenant
        owned: dict[str, Any] = {"created_by_end_user": end_user}
    elif user is not None:
        tenant = require_current_tenant()
        owned = {"created_by": user, "created_by_end_user__isnull": True}
    else:
        raise NotFound("File not found.")
    with tenant_context(tenant):
        found = UploadFile.objects.filter(pk=pk, **owned).first()
    if found is None:
        raise NotFound("File not found.")
    return found


def upload_read(
    *, upload_id: Any, end_user: EndUser | None, user: User | None = None
) -> tuple[UploadFile, bytes]:
    """The upload and its bytes (see upload_get for who may read it)."""
    found = upload_get(upload_id=upload_id, end_user=end_user, user=user)
    with default_storage.open(found.storage_key, "rb") as handle:
        return found, handle.read()
