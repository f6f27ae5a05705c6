"""API keys: shown once, stored hashed, used, revoked; and every bad key answered properly."""

import hashlib

import pytest
from django.core.management import call_command

from tenants.models import ApiKey, Tenant
from tenants.roles import Role
from tests.factories import api_key


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def admin_key(tenant):
    return api_key(tenant, role=Role.ADMIN)[1]


def test_lifecycle_through_the_api(client, tenant, admin_key):
    created = client.post(
        "/api/keys/",
        {"kind": "dataset", "name": "ingest"},
        content_type="application/json",
        **bearer(admin_key),
    )
    assert created.status_code == 201, created.content
    body = created.json()
    raw = body["key"]
    assert raw.startswith("dataset-") and len(raw) == len("dataset-") + 32
    assert body["prefix"] == raw[: len("dataset-") + 6]
    stored = ApiKey.dangerously_unscoped.get(pk=body["id"])
    assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiKey.dangerously_unscoped.filter(pk=stored.pk).values().get())

    shown = client.get(f"/api/keys/{stored.pk}/", **bearer(admin_key)).json()
    assert "key" not in shown and shown["prefix"] == body["prefix"]

    # The new key works where dataset keys belong, and its use is recorded.
    assert stored.last_used_at is None
    assert client.get("/v1/datasets", **bearer(raw)).status_code == 200
    stored.refresh_from_db()
    assert stored.last_used_at is not None

    revoked = client.post(f"/api/keys/{stored.pk}/revoke/", **bearer(admin_key))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    again = client.get("/v1/datasets", **bearer(raw))
    assert again.status_code == 401
    assert again.json()["code"] == "unauthorized"


def test_management_key_revoked_stops_working(client, tenant, admin_key):
    key = ApiKey.dangerously_unscoped.get(tenant=tenant)
    assert client.get("/api/tenant/", **bearer(admin_key)).status_code == 200
    assert client.delete(f"/api/keys/{key.pk}/", **bearer(admin_key)).status_code == 204
    response = client.get("/api/tenant/", **bearer(admin_key))
    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_api_key",
        "message": "The API key is malformed, unknown or revoked.",
        "status": 401,
    }


def test_last_used_is_written_at_most_once_a_minute(client, tenant, admin_key):
    client.get("/api/tenant/", **bearer(admin_key))
    first = ApiKey.dangerously_unscoped.get(tenant=tenant).last_used_at
    client.get("/api/tenant/", **bearer(admin_key))
    assert ApiKey.dangerously_unscoped.get(tenant=tenant).last_used_at == first


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wk-short",
        "Bearer app-" + "x" * 32,
        "Bearer nonsense",
        "Token wk-" + "a" * 32,
        "Bearer",
    ],
)
def test_bad_keys_on_api_are_401_invalid_api_key(client, tenant, header):
    response = client.get("/api/tenant/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"
    assert response["Content-Type"] == "application/json"


def test_no_credentials_on_api_is_401(client, db):
    response = client.get("/api/members/")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize("kind", ["app", "dataset"])
def test_wrong_kind_on_api_is_403(client, tenant, kind):
    _, raw = api_key(tenant, kind=kind)
    response = client.get("/api/tenant/", **bearer(raw))
    assert response.status_code == 403
    assert response.json()["code"] == "wrong_key_kind"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Authorization header must be provided and start with 'Bearer'"),
        ("Basic abc", "Authorization scheme must be 'Bearer'"),
        ("Bearer app-" + "y" * 32, "Access token is invalid"),
        ("Bearer garbage", "Access token is invalid"),
    ],
)
def test_bad_keys_on_v1_are_401_unauthorized(client, db, header, message):
    kwargs = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.post("/v1/chat-messages", **kwargs)
    assert response.status_code == 401
    assert response.json() == {"code": "unauthorized", "message": message, "status": 401}


def test_wrong_kind_on_v1_is_403(client, tenant):
    _, dataset_raw = api_key(tenant, kind="dataset")
    _, app_raw = api_key(tenant, kind="app")
    _, wk_raw = api_key(tenant)
    assert client.post("/v1/chat-messages", **bearer(dataset_raw)).status_code == 403
    assert client.post("/v1/chat-messages", **bearer(wk_raw)).status_code == 403
    assert client.get("/v1/datasets", **bearer(app_raw)).status_code == 403
    # The right kind, but the key's app does not exist (the factory's key names no real one).
    orphan = client.post("/v1/chat-messages", **bearer(app_raw))
    assert orphan.status_code == 403 and orphan.json()["code"] == "forbidden"


def test_suspended_tenant_is_403_everywhere(client, console, tenant, make_member):
    _, wk_raw = api_key(tenant)
    _, app_raw = api_key(tenant, kind="app")
    admin = make_member(tenant, Role.ADMIN)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    for response in (
        client.get("/api/tenant/", **bearer(wk_raw)),
        client.post("/v1/chat-messages", **bearer(app_raw)),
        console(admin, tenant).get("/api/tenant/"),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "tenant_suspended"
    page = console(admin, tenant).get("/admin/")
    assert page.status_code == 403
    assert b"suspended" in page.content


def test_create_bad_inputs(client, tenant, admin_key):
    cases = [
        ({"kind": "root"}, "kind"),
        ({"kind": "app"}, "app"),
        ({"kind": "dataset", "app_id": "2b0c7f3e-2f5d-4a53-9ad1-3a7c1c8a0f44"}, "app"),
        ({"kind": "app", "app_id": "not-a-uuid"}, "app_id"),
        ({"kind": "management", "role": "god"}, "role"),
    ]
    for data, word in cases:
        response = client.post(
            "/api/keys/", data, content_type="application/json", **bearer(admin_key)
        )
        assert response.status_code == 400, (data, response.content)
        body = response.json()
        assert body["code"] == "invalid_param" and body["status"] == 400
        assert word in body["message"]
    malformed = client.post("/api/keys/", "{", content_type="application/json", **bearer(admin_key))
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_request"
    assert ApiKey.dangerously_unscoped.count() == 1


def test_builder_key_cannot_create_management_keys(client, tenant):
    _, builder_raw = api_key(tenant, role=Role.BUILDER)
    response = client.post(
        "/api/keys/",
        {"kind": "management", "role": "member"},
        content_type="application/json",
        **bearer(builder_raw),
    )
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    member_raw = api_key(tenant, role=Role.MEMBER)[1]
    assert client.get("/api/keys/", **bearer(member_raw)).status_code == 403


def test_console_creates_key_and_shows_it_once(console, tenant, make_member):
    builder = make_member(tenant, Role.BUILDER)
    client = console(builder, tenant)
    response = client.post(
        "/admin/tenants/apikey/add/", {"kind": "dataset", "name": "docs", "role": "admin"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.dangerously_unscoped.get(tenant=tenant)
    body = response.content.decode()
    raw = body.split('id="weft-new-key" type="text" readonly value="')[1].split('"')[0]
    assert raw.startswith("dataset-") and key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    listing = client.get("/admin/tenants/apikey/").content.decode()
    assert raw not in listing and key.prefix in listing
    assert raw not in client.get(f"/admin/tenants/apikey/{key.pk}/change/").content.decode()
    # A builder may not create management keys; the form says so.
    refused = client.post("/admin/tenants/apikey/add/", {"kind": "management", "role": "member"})
    assert b"may not create this kind of key" in refused.content
    assert ApiKey.dangerously_unscoped.count() == 1


def test_console_revokes_keys(client, console, tenant, make_member):
    admin = make_member(tenant, Role.ADMIN)
    key, raw = api_key(tenant, kind="app")
    response = console(admin, tenant).post(
        "/admin/tenants/apikey/", {"action": "revoke_keys", "_selected_action": [str(key.pk)]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.is_revoked
    assert client.post("/v1/chat-messages", **bearer(raw)).status_code == 401


def test_command_prints_key_alone_on_last_line(client, tenant, capsys):
    call_command("create_api_key", "--tenant", "acme", "--kind", "management", "--name", "ci")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    assert raw.startswith("wk-")
    assert client.get("/api/tenant/", **bearer(raw)).json()["slug"] == "acme"


def test_requests_leave_no_tenant_or_actor_behind(client, tenant):
    from tenants.audit import get_actor
    from tenants.context import get_current_tenant

    _, app_raw = api_key(tenant, kind="app")
    _, wk_raw = api_key(tenant)
    client.post("/v1/chat-messages", **bearer(app_raw))
    client.get("/api/tenant/", **bearer(wk_raw))
    assert get_current_tenant() is None
    assert get_actor() is None
