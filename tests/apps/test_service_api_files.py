"""Files over real HTTP against a running Daphne: `files/upload` (201, typed by content, 413,
415, one file), `files/{id}/preview`, and uploads sent with a message — the end user's own
only."""

from __future__ import annotations

import pytest

from apps.models import UploadFile
from apps.services.apps import app_publish, app_update
from tenants.context import tenant_context
from tests.apps import live
from tests.apps.live import UPLOAD_MAX_BYTES, envelope

pytestmark = [pytest.mark.django_db(transaction=True)]

daphne_server = live.daphne_server
service_api = live.service_api

TEXT = b"Wool keeps its warmth when wet.\n"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


def upload(api, data=TEXT, name="notes.txt", user="alice", content_type="text/plain"):
    files = {"file": (name, data, content_type)}
    return api.client.post("/files/upload", files=files, data={"user": user} if user else {})


@pytest.fixture
def files_app(tenant, make_app):
    """A chat app that takes documents and images."""
    app = make_app(tenant, publish=False, name="Takes files")
    config = {
        **app.config,
        "file_upload": {
            "enabled": True,
            "allowed_file_types": ["document", "image"],
            "allowed_file_upload_methods": ["local_file"],
            "number_limits": 2,
        },
    }
    app_update(tenant=tenant, app=app, config=config)
    app_publish(tenant=tenant, app=app)
    return app


def test_upload_answers_201_in_difys_shape(service_api):
    api = service_api()
    response = upload(api)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "size", "extension", "mime_type", "created_by", "created_at"}
    assert body["name"] == "notes.txt" and body["size"] == len(TEXT)
    assert body["extension"] == "txt" and body["mime_type"] == "text/plain"
    row = UploadFile.dangerously_unscoped.get(pk=body["id"])
    assert str(row.created_by_end_user_id) == body["created_by"]
    assert row.created_by_end_user.session_id == "alice"


def test_the_type_comes_from_the_content_not_the_name(service_api):
    body = upload(service_api(), PNG, name="photo.txt", content_type="text/plain").json()
    assert body["mime_type"] == "image/png" and body["extension"] == "png"


def test_preview_gives_the_file_back_to_its_user_only(service_api, make_app, other_tenant):
    api = service_api()
    file_id = upload(api).json()["id"]
    shown = api.get(f"/files/{file_id}/preview", user="alice")
    assert shown.status_code == 200 and shown.content == TEXT
    assert shown.headers["content-type"].startswith("text/plain")
    assert shown.headers["content-disposition"].startswith("inline")
    attached = api.get(f"/files/{file_id}/preview", user="alice", as_attachment="true")
    assert attached.headers["content-disposition"].startswith("attachment")
    assert envelope(api.get(f"/files/{file_id}/preview", user="bob")) == (404, "not_found")
    assert envelope(api.get("/files/nope/preview", user="alice")) == (404, "not_found")
    other_app = service_api()
    assert envelope(other_app.get(f"/files/{file_id}/preview", user="alice")) == (404, "not_found")
    foreign = service_api(make_app(other_tenant, name="Theirs"))
    assert envelope(foreign.get(f"/files/{file_id}/preview", user="alice")) == (404, "not_found")


def test_a_file_over_the_limit_is_413(service_api, tenant):
    response = upload(service_api(), b"a" * (UPLOAD_MAX_BYTES + 1), name="big.txt")
    assert envelope(response) == (413, "file_too_large")
    with tenant_context(tenant):
        assert not UploadFile.objects.exists()


def test_a_type_not_taken_is_415(service_api, tenant):
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4
    response = upload(service_api(), elf, name="tool.txt", content_type="application/octet-stream")
    assert envelope(response) == (415, "unsupported_file_type")
    archive = b"PK\x05\x06" + b"\x00" * 18  # an empty ZIP archive
    assert envelope(upload(service_api(), archive, name="a.zip")) == (415, "unsupported_file_type")
    with tenant_context(tenant):
        assert not UploadFile.objects.exists()


def test_bad_uploads(service_api):
    api = service_api()
    assert envelope(upload(api, user=None)) == (400, "invalid_param")  # no user
    nothing = api.client.post("/files/upload", data={"user": "alice"})
    assert envelope(nothing) == (400, "no_file_uploaded")
    assert envelope(upload(api, b"")) == (400, "no_file_uploaded")
    two = api.client.post(
        "/files/upload",
        files=[("file", ("a.txt", TEXT, "text/plain")), ("file", ("b.txt", TEXT, "text/plain"))],
        data={"user": "alice"},
    )
    assert envelope(two) == (400, "too_many_files")


def test_an_upload_goes_with_a_message(service_api, files_app):
    api = service_api(files_app)
    file_id = upload(api).json()["id"]
    files = [{"type": "document", "transfer_method": "local_file", "upload_file_id": file_id}]
    answer = api.post(
        "/chat-messages", {"inputs": {}, "query": "Read it", "user": "alice", "files": files}
    )
    assert answer.status_code == 200, answer.text
    history = api.get(
        "/messages", user="alice", conversation_id=answer.json()["conversation_id"]
    ).json()
    (sent,) = history["data"][0]["message_files"]
    assert sent["upload_file_id"] == file_id and sent["transfer_method"] == "local_file"
    assert sent["belongs_to"] == "user" and sent["type"] == "document"


def test_only_the_end_users_own_uploads_go_with_a_message(
    service_api, files_app, make_app, other_tenant, tenant
):
    api = service_api(files_app)
    bobs = upload(api, user="bob").json()["id"]
    foreign_app = make_app(other_tenant, name="Theirs")
    theirs = upload(service_api(foreign_app)).json()["id"]
    for file_id in (bobs, theirs, "00000000-0000-0000-0000-000000000000"):
        files = [{"type": "document", "transfer_method": "local_file", "upload_file_id": file_id}]
        response = api.post(
            "/chat-messages", {"inputs": {}, "query": "Read it", "user": "alice", "files": files}
        )
        assert envelope(response) == (400, "invalid_param"), file_id
        assert file_id in response.json()["message"]  # the same answer for every one
    with tenant_context(tenant):
        assert not files_app.messages.exists()


def test_an_app_without_file_upload_takes_no_files(service_api):
    api = service_api()
    file_id = upload(api).json()["id"]
    files = [{"type": "document", "transfer_method": "local_file", "upload_file_id": file_id}]
    response = api.post(
        "/chat-messages", {"inputs": {}, "query": "Read it", "user": "alice", "files": files}
    )
    assert envelope(response) == (400, "invalid_param")
    assert "does not take files" in response.json()["message"]
