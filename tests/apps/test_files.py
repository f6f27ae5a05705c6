"""Uploads: typed by content in Dify's categories, size-capped, hashed, stored under their
tenant, and read back only by whoever sent them."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from apps.models import App, UploadFile
from apps.services.files import (
    FileTooLarge,
    NoFileUploaded,
    UnsupportedFileType,
    kind_of,
    upload_create,
    upload_get,
    upload_read,
)
from tenants.context import tenant_context
from tenants.exceptions import NotFound

from .pipeline_support import user_of

pytestmark = pytest.mark.django_db


def office(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<xml/>")
    return buffer.getvalue()


def epub() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
        archive.writestr("META-INF/container.xml", "<container/>")
    return buffer.getvalue()


WAV = b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + b"\x00" * 24
WEBP = b"RIFF" + struct.pack("<I", 20) + b"WEBPVP8 " + b"\x00" * 12
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 16
M4A = b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00M4A mp42" + b"\x00" * 16
MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + b"\x00" * 16
WEBM = b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x84webm"

ACCEPTED = [
    ("a.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image/png", "png", "image"),
    ("a.jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image/jpeg", "jpeg", "image"),
    ("a.gif", b"GIF89a" + b"\x00" * 20, "image/gif", "gif", "image"),
    ("a.webp", WEBP, "image/webp", "webp", "image"),
    (
        "logo.svg",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        "image/svg+xml",
        "svg",
        "image",
    ),
    ("song.mp3", b"ID3\x03\x00" + b"\x00" * 20, "audio/mpeg", "mp3", "audio"),
    ("raw.mp3", b"\xff\xfb\x90\x00" + b"\x00" * 20, "audio/mpeg", "mp3", "audio"),
    ("a.wav", WAV, "audio/wav", "wav", "audio"),
    ("a.m4a", M4A, "audio/mp4", "m4a", "audio"),
    ("a.mp4", MP4, "video/mp4", "mp4", "video"),
    ("a.mov", MOV, "video/quicktime", "mov", "video"),
    ("a.webm", WEBM, "video/webm", "webm", "video"),
    ("a.pdf", b"%PDF-1.7\n%...", "application/pdf", "pdf", "document"),
    (
        "report.docx",
        office("[Content_Types].xml", "word/document.xml"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
        "document",
    ),
    (
        "sheet.xlsx",
        office("[Content_Types].xml", "xl/workbook.xml"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
        "document",
    ),
    ("book.epub", epub(), "application/epub+zip", "epub", "document"),
    ("notes.md", b"# Title\n\nSome *text*.", "text/markdown", "md", "document"),
    ("table.csv", b"a,b\n1,2\n", "text/csv", "csv", "document"),
    ("page.html", b"<!doctype html><html><body>Hi</body></html>", "text/html", "html", "document"),
    ("note.txt", "Grüße aus Köln".encode(), "text/plain", "txt", "document"),
    # The content decides: a PNG named .pdf is a PNG, and keeps the right extension.
    ("lying.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image/png", "png", "image"),
    ("no-name", b"just some words", "text/plain", "txt", "document"),
]


@pytest.fixture
def app(tenant, make_app):
    return make_app(tenant, App.Mode.CHAT)


def send(app, end_user, name, data, user=None):
    return upload_create(
        app=app, end_user=end_user, user=user, uploaded=SimpleUploadedFile(name, data)
    )


@pytest.mark.parametrize(("name", "data", "mime", "extension", "kind"), ACCEPTED)
def test_accepted_types_are_read_from_the_content(app, name, data, mime, extension, kind):
    alice = user_of(app)
    upload = send(app, alice, name, data)
    assert (upload.mime_type, upload.extension) == (mime, extension)
    assert kind_of(upload.mime_type) == kind
    assert upload.size == len(data) and upload.sha256 == hashlib.sha256(data).hexdigest()
    assert upload.created_by_end_user == alice and upload.app == app
    assert upload.storage_key.startswith(f"uploads/{app.tenant_id}/{app.pk}/")
    with default_storage.open(upload.storage_key, "rb") as handle:
        assert handle.read() == data


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"),
        ("prog", b"\x7fELF\x02\x01\x01" + b"\x00" * 20),
        ("archive.zip", office("readme.txt")),
        ("photo.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"),
        ("film.mkv", b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\x82\x88matroska"),
        ("data.bin", bytes(range(256)) * 4),
        ("legacy.bin", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100),
    ],
)
def test_other_types_are_refused_with_415(app, name, data):
    with pytest.raises(UnsupportedFileType) as raised:
        send(app, user_of(app), name, data)
    assert raised.value.status == 415 and raised.value.code == "unsupported_file_type"
    with tenant_context(app.tenant):
        assert not UploadFile.objects.exists()


def test_a_legacy_office_file_is_taken_by_its_name(app):
    upload = send(app, user_of(app), "old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    assert upload.mime_type == "application/msword" and kind_of(upload.mime_type) == "document"


def test_size_limit_empty_and_missing_files(app):
    alice = user_of(app)
    with override_settings(WEFT_UPLOAD_MAX_BYTES=10):
        with pytest.raises(FileTooLarge) as raised:
            send(app, alice, "big.txt", b"x" * 11)
        assert raised.value.status == 413 and raised.value.code == "file_too_large"
        assert send(app, alice, "ok.txt", b"x" * 10).size == 10
    with pytest.raises(NoFileUploaded) as empty:
        send(app, alice, "empty.txt", b"")
    assert empty.value.status == 400 and empty.value.code == "no_file_uploaded"
    with pytest.raises(NoFileUploaded):
        upload_create(app=app, end_user=alice, uploaded=None)


def test_a_long_name_is_cut_and_a_path_dropped(app):
    upload = send(app, user_of(app), "../../etc/" + "n" * 300 + ".txt", b"text")
    assert upload.name.endswith(".txt") and len(upload.name) == 255
    assert "/" not in upload.name


def test_only_the_sender_reads_an_upload(tenant, other_tenant, make_app, app, make_member):
    alice, bob = user_of(app, "alice"), user_of(app, "bob")
    upload = send(app, alice, "note.txt", b"for alice")
    found, data = upload_read(upload_id=str(upload.pk), end_user=alice)
    assert found.pk == upload.pk and data == b"for alice"
    theirs_app = make_app(other_tenant, App.Mode.CHAT)
    for upload_id, end_user in (
        (str(upload.pk), bob),
        (str(upload.pk), user_of(theirs_app, "alice")),
        ("not-an-id", alice),
        (str(upload.pk), None),
    ):
        with pytest.raises(NotFound, match="File not found"):
            upload_get(upload_id=upload_id, end_user=end_user)
    member = make_member(tenant)
    with tenant_context(tenant):
        own = send(app, None, "m.txt", b"member's", user=member)
        assert upload_read(upload_id=own.pk, end_user=None, user=member)[1] == b"member's"
        with pytest.raises(NotFound):
            upload_get(upload_id=upload.pk, end_user=None, user=member)


def test_the_read_upload_run_service_reads_only_the_users_own(app):
    from asgiref.sync import async_to_sync

    from apps.pipeline.files import upload_reader
    from workflows.engine.executor import NodeFailed

    alice, bob = user_of(app, "alice"), user_of(app, "bob")
    upload = send(app, alice, "note.txt", b"for alice")
    read_as_alice = upload_reader(app.tenant, alice, None)
    assert async_to_sync(read_as_alice)(str(upload.pk)) == (b"for alice", "note.txt")
    with pytest.raises(NodeFailed, match="was not found"):
        async_to_sync(upload_reader(app.tenant, bob, None))(str(upload.pk))


def test_deleting_the_app_deletes_its_files(tenant, app, django_capture_on_commit_callbacks):
    from apps.services.apps import app_delete

    upload = send(app, user_of(app), "notes.txt", b"plain words")
    assert default_storage.exists(upload.storage_key)
    with django_capture_on_commit_callbacks(execute=True):
        app_delete(tenant=tenant, app=app)
    assert not default_storage.exists(upload.storage_key)
