"""Files in a run, in Dify's shape: read a file variable's bytes, and keep bytes a node made
(an HTTP response body) as a file variable.

A file variable is a dict like Dify's (`type`, `transfer_method`, `filename`, `extension`,
`mime_type`, `size`, and where the bytes are: `url` for a remote file, `upload_file_id` for
an upload, `storage_key` for a file a node stored). Uploads belong to the apps layer, which
passes a reader as the run service `read_upload(upload_file_id) -> (bytes, filename)`.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from providers.http import OutboundError, guarded_request

from ..engine.executor import NodeContext, NodeFailed

# What a node may read from one remote file (Dify's upload limit for documents).
MAX_FILE_BYTES = 15 << 20


def file_kind(mime_type: str) -> str:
    """Dify's file type of a MIME type."""
    major = mime_type.split("/", 1)[0]
    if major in ("image", "audio", "video"):
        return major
    if mime_type.startswith("text/") or mime_type in (
        "application/pdf",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/json",
        "text/csv",
    ):
        return "document"
    return "custom"


async def store_file(
    ctx: NodeContext, data: bytes, *, filename: str, mime_type: str
) -> dict[str, Any]:
    """Keep bytes a node produced; the file variable that points at them."""
    extension = mimetypes.guess_extension(mime_type.split(";")[0].strip()) or ""
    key = f"workflows/files/{ctx.run.run_id}/{uuid.uuid4().hex}{extension}"
    stored = await sync_to_async(default_storage.save)(key, ContentFile(data))
    return {
        "type": file_kind(mime_type),
        "transfer_method": "tool_file",
        "filename": filename or stored.rsplit("/", 1)[-1],
        "extension": extension,
        "mime_type": mime_type,
        "size": len(data),
        "storage_key": stored,
    }


async def read_file(ctx: NodeContext, file: Any) -> tuple[bytes, str]:
    """The bytes and name of a file variable; NodeFailed when it cannot be read."""
    if not isinstance(file, Mapping):
        raise NodeFailed("Expected a file variable.", error_type="NotAFile")
    name = str(file.get("filename") or file.get("name") or "file")
    if file.get("storage_key"):
        key = str(file["storage_key"])
        if not key.startswith(f"workflows/files/{ctx.run.run_id}/"):
            raise NodeFailed(f"“{name}” belongs to another run.", error_type="FileNotFound")
        return await sync_to_async(_read_stored)(key), name
    if file.get("upload_file_id"):
        reader = ctx.run.services.get("read_upload")
        if reader is None:
            raise NodeFailed(
                f"“{name}” is an upload, and this run has no uploads.", error_type="FileNotFound"
            )
        data, stored_name = await reader(str(file["upload_file_id"]))
        return data, stored_name or name
    url = file.get("url") or file.get("remote_url")
    if url:
        try:
            response = await guarded_request("GET", str(url), max_bytes=MAX_FILE_BYTES)
        except OutboundError as exc:
            raise NodeFailed(exc.message, error_type=exc.code) from None
        if response.status_code >= 400:
            raise NodeFailed(
                f"Fetching “{name}” answered HTTP {response.status_code}.",
                error_type="FileNotFound",
            )
        return response.body, name
    raise NodeFailed(f"“{name}” says nowhere where its content is.", error_type="FileNotFound")


def _read_stored(key: str) -> bytes:
    with default_storage.open(key, "rb") as handle:
        return handle.read()
