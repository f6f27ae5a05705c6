"""Files in a request, checked before anything runs: the message's `files` against the app's
`file_upload` settings, and file inputs against their form field. A `local_file` must be an
upload of this end user (or member) in this tenant; a `remote_url` must be an http(s) address,
and is fetched only when a node reads it, through the guarded client.

Each file becomes a dict in the shape Dify's message files and Weft's file variables share:
`id`, `type`, `transfer_method`, `url`, `upload_file_id`, `filename`, `extension`,
`mime_type`, `size`, `belongs_to`.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from asgiref.sync import sync_to_async

from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, NotFound
from tenants.models import Tenant, User
from workflows.engine.executor import NodeFailed

from ..config import FileUpload
from ..models import EndUser
from ..services.files import extension_of, kind_of, upload_get, upload_read

FILE_TYPES = ("document", "image", "audio", "video", "custom")
METHODS = ("local_file", "remote_url")
MAX_LIST = 50  # files of one file-list input that says no limit


@dataclass(frozen=True)
class Rules:
    """What files one place takes: their kinds, extensions (for `custom`), how they come, and
    how many."""

    types: Sequence[str]
    extensions: Sequence[str]
    methods: Sequence[str]
    limit: int

    @classmethod
    def of(cls, settings: FileUpload) -> Rules:
        return cls(
            settings.allowed_file_types,
            settings.allowed_file_extensions,
            settings.allowed_file_upload_methods,
            settings.number_limits,
        )

    @classmethod
    def of_field(cls, field: Any) -> Rules:
        """The rules of a `file` or `file-list` form field (anything, unless it says)."""
        return cls(
            getattr(field, "allowed_file_types", None) or FILE_TYPES,
            getattr(field, "allowed_file_extensions", None) or [],
            getattr(field, "allowed_file_upload_methods", None) or METHODS,
            getattr(field, "max_length", None) or MAX_LIST,
        )


def _extensions(values: Sequence[str]) -> set[str]:
    return {str(v).lower().lstrip(".") for v in values}


def _uuid(value: Any, where: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{where}.upload_file_id: “{value}” is not a file id.") from None


def check_file(
    item: Any, rules: Rules, *, end_user: EndUser | None, user: User | None, where: str
) -> dict[str, Any]:
    """One file of a request, checked and in the stored shape (tenant context required)."""
    if not isinstance(item, Mapping):
        raise InvalidInput(f"{where}: expected a file object.")
    method = item.get("transfer_method")
    if method not in METHODS:
        raise InvalidInput(f"{where}.transfer_method: expected local_file or remote_url.")
    if method not in rules.methods:
        raise InvalidInput(f"{where}.transfer_method: this app does not take {method} files.")
    declared = item.get("type")
    if declared is not None and declared not in FILE_TYPES:
        raise InvalidInput(f"{where}.type: expected one of {', '.join(FILE_TYPES)}.")
    if method == "local_file":
        upload_id = item.get("upload_file_id") or item.get("id")
        if not upload_id:
            raise InvalidInput(f"{where}.upload_file_id: this field is required.")
        _uuid(upload_id, where)
        try:
            upload = upload_get(upload_id=upload_id, end_user=end_user, user=user)
        except NotFound:
            raise InvalidInput(f"{where}: the upload “{upload_id}” was not found.") from None
        actual = kind_of(upload.mime_type)
        shaped: dict[str, Any] = {
            "url": "",
            "upload_file_id": str(upload.pk),
            "filename": upload.name,
            "extension": f".{upload.extension}" if upload.extension else "",
            "mime_type": upload.mime_type,
            "size": upload.size,
        }
    else:
        url = item.get("url") or item.get("remote_url")
        parts = urlsplit(str(url or ""))
        if not url or not isinstance(url, str) or parts.scheme not in ("http", "https"):
            raise InvalidInput(f"{where}.url: expected an http or https address.")
        name = unquote(parts.path.rsplit("/", 1)[-1]) or "file"
        mime = mimetypes.guess_type(name)[0] or ""
        actual = kind_of(mime) if mime else "custom"
        shaped = {
            "url": url,
            "upload_file_id": None,
            "filename": name,
            "extension": f".{extension_of(name)}" if extension_of(name) else "",
            "mime_type": mime,
            "size": -1,
        }
    kind = declared or actual
    if kind not in rules.types:
        raise InvalidInput(f"{where}.type: this app does not take {kind} files.")
    if kind == "custom":
        allowed = _extensions(rules.extensions)
        if shaped["extension"].lstrip(".").lower() not in allowed:
            raise InvalidInput(f"{where}: files of this extension are not taken.")
    elif method == "local_file" and actual != kind:
        raise InvalidInput(f"{where}.type: the file is {_a(actual)}, not {_a(kind)}.")
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "transfer_method": method,
        "belongs_to": "user",
        **shaped,
    }


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def check_files(
    items: Any, settings: FileUpload, *, end_user: EndUser | None, user: User | None
) -> list[dict[str, Any]]:
    """The message's `files`, checked against the app's file upload settings."""
    if items is None or items == []:
        return []
    if not isinstance(items, list):
        raise InvalidInput("files: expected a list.")
    if not settings.enabled:
        raise InvalidInput("files: this app does not take files.")
    rules = Rules.of(settings)
    if len(items) > rules.limit:
        raise InvalidInput(f"files: at most {rules.limit} files.")
    return [
        check_file(item, rules, end_user=end_user, user=user, where=f"files[{index}]")
        for index, item in enumerate(items)
    ]


def check_file_inputs(
    inputs: Mapping[str, Any],
    fields: Sequence[tuple[str, Any]],
    *,
    end_user: EndUser | None,
    user: User | None,
) -> dict[str, Any]:
    """The inputs with the values of `file` and `file-list` fields checked and shaped;
    `fields` are (type, field) pairs, the field naming its `variable`."""
    checked = dict(inputs)
    for kind, field in fields:
        name = field.variable
        value = checked.get(name)
        if value in (None, "", []):
            continue
        rules = Rules.of_field(field)
        where = f"inputs.{name}"
        if kind == "file":
            checked[name] = check_file(value, rules, end_user=end_user, user=user, where=where)
        elif kind == "file-list":
            if not isinstance(value, list):
                raise InvalidInput(f"{where}: expected a list of files.")
            if len(value) > rules.limit:
                raise InvalidInput(f"{where}: at most {rules.limit} files.")
            checked[name] = [
                check_file(v, rules, end_user=end_user, user=user, where=f"{where}[{i}]")
                for i, v in enumerate(value)
            ]
    return checked


def upload_reader(
    tenant: Tenant, end_user: EndUser | None, user: User | None
) -> Callable[[str], Any]:
    """The `read_upload` run service: (bytes, name) of an upload of this end user (or member)
    in this tenant; a node asking for anyone else's fails as if it did not exist."""

    def read(upload_id: str) -> tuple[bytes, str]:
        with tenant_context(tenant):
            try:
                found, data = upload_read(upload_id=upload_id, end_user=end_user, user=user)
            except NotFound:
                raise NodeFailed(
                    f"The upload “{upload_id}” was not found.", error_type="FileNotFound"
                ) from None
        return data, found.name

    async def read_upload(upload_id: str) -> tuple[bytes, str]:
        return await sync_to_async(read)(upload_id)

    return read_upload
