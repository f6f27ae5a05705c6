"""The providers' management API: credentials (secret write-only), models (global + own),
default models with fallbacks, usage; permissions, bad input and the generic contract."""

import json
import socket
import uuid
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from providers import crypto
from providers import http as guarded
from providers.models import (
    DefaultModel,
    Fallback,
    Model,
    ModelKind,
    ProviderCredential,
    ProviderKind,
    UsageEvent,
)
from tenants.models import AuditLog
from tenants.roles import Role
from tests.api_contract import TenantEndpointContract, bearer
from tests.factories import TenantFactory, api_key

SECRET = "sk-test-0123456789abcdefWXYZ"
BASE = "/api/providers"


def make_credential(tenant, name="main", kind=ProviderKind.OPENAI, secret=SECRET, **fields):
    credential = ProviderCredential(tenant=tenant, kind=kind, name=name, **fields)
    credential.secret = secret
    credential.save()
    return credential


def make_model(tenant, name="llama3.2", kind=ModelKind.CHAT, **fields):
    fields.setdefault("provider", ProviderKind.OPENAI_COMPATIBLE)
    return Model.dangerously_unscoped.create(tenant=tenant, name=name, kind=kind, **fields)


def global_model(name):
    return Model.catalog.get(name=name)


def make_usage(tenant, minutes_ago=0, **fields):
    fields.setdefault("operation", ModelKind.CHAT)
    fields.setdefault("provider", ProviderKind.OPENAI)
    fields.setdefault("model_name", "gpt-4o-mini")
    event = UsageEvent.dangerously_unscoped.create(tenant=tenant, **fields)
    UsageEvent.dangerously_unscoped.filter(pk=event.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return event


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def allowlist(settings):
    def set_(*entries):
        settings.WEFT_OUTBOUND_ALLOWLIST = list(entries)
        guarded.reset_allowlist()

    set_()
    yield set_
    guarded.reset_allowlist()


@pytest.fixture
def admin_key(tenant):
    return bearer(api_key(tenant, role=Role.ADMIN)[1])


@pytest.fixture
def builder_key(tenant):
    return bearer(api_key(tenant, role=Role.BUILDER)[1])


def post(client, url, data, auth):
    return client.post(url, data, content_type="application/json", **auth)


def patch(client, url, data, auth):
    return client.patch(url, data, content_type="application/json", **auth)


def put(client, url, data, auth):
    return client.put(url, data, content_type="application/json", **auth)


# --- The generic contract ------------------------------------------------------------------


class TestCredentialsEndpoint(TenantEndpointContract):
    list_url = f"{BASE}/credentials/"
    allowed_role = Role.BUILDER
    denied_role = Role.OPERATOR

    def make_object(self, tenant):
        return make_credential(tenant)


class TestModelsEndpoint(TenantEndpointContract):
    list_url = f"{BASE}/models/"
    allowed_role = Role.BUILDER
    denied_role = Role.OPERATOR

    def make_object(self, tenant):
        return make_model(tenant)


class TestUsageEndpoint(TenantEndpointContract):
    list_url = f"{BASE}/usage/"
    allowed_role = Role.BUILDER
    denied_role = Role.OPERATOR
    detail_methods = ("get",)

    def make_object(self, tenant):
        return make_usage(tenant)


class TestDefaultsEndpoint(TenantEndpointContract):
    list_url = f"{BASE}/defaults/"
    allowed_role = Role.BUILDER
    denied_role = Role.OPERATOR

    def make_object(self, tenant):
        return DefaultModel.dangerously_unscoped.create(
            tenant=tenant, kind=ModelKind.CHAT, model=global_model("gpt-4o-mini")
        )

    def test_other_tenants_object_is_404(self, client, tenants):
        """Defaults are addressed by kind, so another tenant's default is never reachable:
        its id is no address, the same kind shows the caller's own, and its own models
        cannot be chosen."""
        mine, theirs = tenants
        foreign = self.make_object(theirs)
        their_model = make_model(theirs, name="their-chat")
        auth = bearer(api_key(mine, role=Role.OWNER)[1])
        for method in ("get", "put", "delete"):
            response = getattr(client, method)(
                f"{self.list_url}{foreign.pk}/", {}, content_type="application/json", **auth
            )
            assert response.status_code == 404 and response.json()["code"] == "not_found"
        shown = client.get(f"{self.list_url}chat/", **auth).json()
        assert shown["builtin"] is True and shown["id"] is None
        refused = put(client, f"{self.list_url}chat/", {"model": their_model.pk}, auth)
        assert refused.status_code == 400
        assert refused.json()["message"] == (
            f"model: no enabled chat model with id {their_model.pk} is available to this tenant."
        )
        assert DefaultModel.dangerously_unscoped.get(tenant=theirs) == foreign


# --- Credentials ---------------------------------------------------------------------------


def test_credential_lifecycle_keeps_the_secret_write_only(client, tenant, admin_key):
    created = post(
        client,
        f"{BASE}/credentials/",
        {"kind": "openai", "name": "OpenAI prod", "secret": f"  {SECRET}\n", "weight": 3},
        admin_key,
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert "secret" not in body and SECRET not in created.content.decode()
    assert body["secret_masked"] == "••••••••WXYZ" and body["has_secret"] is True
    assert body["status"] == "unchecked" and body["weight"] == 3 and body["options"] == {}
    stored = ProviderCredential.dangerously_unscoped.get(pk=body["id"])
    assert stored.tenant_id == tenant.pk and stored.secret == SECRET
    assert SECRET not in stored.secret_encrypted

    url = f"{BASE}/credentials/{stored.pk}/"
    shown = client.get(url, **admin_key)
    assert SECRET not in shown.content.decode() and shown.json()["name"] == "OpenAI prod"

    kept = patch(client, url, {"name": "OpenAI", "enabled": False}, admin_key)
    assert kept.status_code == 200 and kept.json()["enabled"] is False
    stored.refresh_from_db()
    assert stored.secret == SECRET and stored.name == "OpenAI"

    replaced = patch(client, url, {"secret": "sk-new-secret-value-9876"}, admin_key)
    assert replaced.json()["secret_masked"] == "••••••••9876"
    stored.refresh_from_db()
    assert stored.secret == "sk-new-secret-value-9876"

    cleared = patch(client, url, {"secret": ""}, admin_key)
    assert cleared.json()["has_secret"] is False and cleared.json()["secret_masked"] == ""

    assert client.delete(url, **admin_key).status_code == 204
    assert not ProviderCredential.dangerously_unscoped.filter(pk=stored.pk).exists()


def test_api_writes_are_audited_with_the_secret_masked(client, tenant, admin_key):
    created = post(
        client, f"{BASE}/credentials/", {"kind": "openai", "name": "a", "secret": SECRET}, admin_key
    )
    patch(client, f"{BASE}/credentials/{created.json()['id']}/", {"secret": "x" * 20}, admin_key)
    rows = AuditLog.dangerously_unscoped.filter(object_type="providers.providercredential")
    assert [row.action for row in rows.order_by("id")] == ["create", "update"]
    for row in rows:
        assert row.changes["secret_encrypted"][-1] == "••••••" and row.source == "api"
        assert SECRET not in json.dumps(row.changes) and "x" * 20 not in json.dumps(row.changes)


def test_builders_read_credentials_masked_but_do_not_manage_them(client, tenant, builder_key):
    credential = make_credential(tenant)
    listed = client.get(f"{BASE}/credentials/", **builder_key)
    assert listed.status_code == 200
    assert listed.json()["results"][0]["secret_masked"] == "••••••••WXYZ"
    assert SECRET not in listed.content.decode()
    url = f"{BASE}/credentials/{credential.pk}/"
    for response in (
        post(client, f"{BASE}/credentials/", {"kind": "openai", "name": "b"}, builder_key),
        patch(client, url, {"name": "c"}, builder_key),
        client.delete(url, **builder_key),
        client.post(f"{url}test/", **builder_key),
    ):
        assert response.status_code == 403 and response.json()["code"] == "forbidden"
    credential.refresh_from_db()
    assert credential.name == "main" and credential.status == "unchecked"


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (
            {"kind": "openai", "name": "x", "base_url": "not a url"},
            400,
            "base_url: “not a url” is not a valid URL: use http:// or https:// and a host name.",
        ),
        (
            {"kind": "openai", "name": "x", "base_url": "ftp://example.com"},
            400,
            "base_url: “ftp://example.com” is not a valid URL: use http:// or https:// and a "
            "host name.",
        ),
        (
            {"kind": "openai", "name": "x", "base_url": "https://user:pw@example.com/v1"},
            400,
            "base_url: Put credentials in the secret, not in the URL (the URL is shown to "
            "builders).",
        ),
        (
            {"kind": "openai_compatible", "name": "x"},
            400,
            "base_url: An OpenAI-compatible server needs its base URL, e.g. "
            "http://ollama:11434/v1.",
        ),
        (
            {"kind": "azure_openai", "name": "x", "base_url": ""},
            400,
            "base_url: Azure OpenAI needs the resource's base URL, e.g. "
            "https://my-resource.openai.azure.com.",
        ),
        (
            {"kind": "openai", "name": "x", "options": ["api_version"]},
            400,
            'options: Options must be a JSON object, e.g. {"api_version": "2024-10-21"}.',
        ),
        (
            {"kind": "openai", "name": "x", "options": {"api_key": "sk-oops"}},
            400,
            "options: “api_key” looks like a secret: put the key in the secret field (options "
            "are shown to builders, the secret never is).",
        ),
        (
            {"kind": "openai", "name": "x", "weight": 0},
            400,
            "weight: The weight must be between 1 and 32767 (a share of calls).",
        ),
        (
            {"kind": "openai", "name": "x", "weight": "heavy"},
            400,
            "weight: A valid integer is required.",
        ),
        (
            {"kind": "offline", "name": "x"},
            400,
            'kind: "offline" is not a valid choice.',
        ),
        ({"kind": "openai"}, 400, "name: This field is required."),
        ({"kind": "openai", "name": "main"}, 409, "A credential named “main” already exists"),
    ],
)
def test_create_credential_bad_input(client, tenant, admin_key, data, status, message):
    make_credential(tenant)
    response = post(client, f"{BASE}/credentials/", data, admin_key)
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == ("conflict" if status == 409 else "invalid_param")
    assert body["message"].startswith(message)
    assert ProviderCredential.dangerously_unscoped.count() == 1


def test_update_credential_bad_input(client, tenant, admin_key):
    make_credential(tenant, name="taken")
    compatible = make_credential(
        tenant, name="ollama", kind=ProviderKind.OPENAI_COMPATIBLE, base_url="http://ollama:11434"
    )
    url = f"{BASE}/credentials/{compatible.pk}/"
    for data, status, message in [
        ({"base_url": ""}, 400, "base_url: An OpenAI-compatible server needs its base URL"),
        ({"name": "taken"}, 409, "A credential named “taken” already exists in this tenant."),
        ({"kind": "openai"}, 400, "kind: a credential keeps its kind; add another credential."),
        ({"options": "x"}, 400, "options: Options must be a JSON object"),
    ]:
        response = patch(client, url, data, admin_key)
        assert response.status_code == status, (data, response.content)
        assert response.json()["message"].startswith(message)
    malformed = client.patch(url, "{", content_type="application/json", **admin_key)
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_request"
    compatible.refresh_from_db()
    assert compatible.name == "ollama" and compatible.base_url == "http://ollama:11434"


def test_test_endpoint_reports_a_connection_failure(client, tenant, admin_key, allowlist):
    allowlist("127.0.0.1/32")
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    credential = make_credential(tenant, kind=ProviderKind.OPENAI_COMPATIBLE, base_url=base_url)
    response = client.post(f"{BASE}/credentials/{credential.pk}/test/", **admin_key)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["message"] and SECRET not in body["message"]
    credential.refresh_from_db()
    assert credential.status == "failed" and credential.last_error == body["message"]
    assert credential.last_checked_at is not None


def test_test_endpoint_refuses_loopback_unless_allowed(client, tenant, admin_key, allowlist):
    credential = make_credential(
        tenant, kind=ProviderKind.OPENAI_COMPATIBLE, base_url="http://127.0.0.1:9/v1"
    )
    body = client.post(f"{BASE}/credentials/{credential.pk}/test/", **admin_key).json()
    assert body == {
        "ok": False,
        "message": "Requests to 127.0.0.1 are not allowed: it resolves to a private or local "
        "address (127.0.0.1). An operator can allow it with WEFT_OUTBOUND_ALLOWLIST.",
    }
    credential.refresh_from_db()
    assert credential.status == "failed"


def test_credential_list_query_count(client, tenant, admin_key, django_assert_max_num_queries):
    for index in range(12):
        make_credential(tenant, name=f"c{index}")
    client.get(f"{BASE}/credentials/", **admin_key)  # the tenant's plan limits are read once
    with django_assert_max_num_queries(5):
        response = client.get(f"{BASE}/credentials/", **admin_key)
    assert len(response.json()["results"]) == 12


# --- Models --------------------------------------------------------------------------------


def test_models_list_global_catalog_and_own_with_filters(client, tenant, builder_key):
    own = make_model(tenant, name="llama3.2")
    make_model(TenantFactory(), name="someone-elses")
    rows = client.get(f"{BASE}/models/?limit=100", **builder_key).json()["results"]
    names = {row["name"]: row["scope"] for row in rows}
    assert names["llama3.2"] == "own" and names["gpt-4o"] == "global"
    assert names["weft-offline-chat"] == "global" and "someone-elses" not in names
    embedding = client.get(f"{BASE}/models/?kind=embedding", **builder_key).json()["results"]
    assert embedding and {row["kind"] for row in embedding} == {"embedding"}
    own_only = client.get(f"{BASE}/models/?scope=own", **builder_key).json()["results"]
    assert [row["id"] for row in own_only] == [own.pk]
    anthropic = client.get(f"{BASE}/models/?provider=anthropic", **builder_key).json()
    assert anthropic["count"] and {row["provider"] for row in anthropic["results"]} == {"anthropic"}
    bad = client.get(f"{BASE}/models/?kind=vision", **builder_key)
    assert bad.status_code == 400
    assert bad.json()["message"] == (
        "kind: unknown value “vision”; use one of chat, embedding, rerank."
    )


def test_admin_defines_own_models(client, tenant, admin_key):
    credential = make_credential(
        tenant, name="ollama", kind=ProviderKind.OPENAI_COMPATIBLE, base_url="http://ollama:11434"
    )
    created = post(
        client,
        f"{BASE}/models/",
        {
            "provider": "openai_compatible",
            "credential": str(credential.pk),
            "name": "llama3.2",
            "kind": "chat",
            "context_window": 131072,
            "input_price": "0.10",
            "output_price": "0.20",
            "currency": "eur",
        },
        admin_key,
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["scope"] == "own" and body["credential"] == str(credential.pk)
    assert body["currency"] == "EUR" and body["input_price"] == "0.1000"
    model = Model.dangerously_unscoped.get(pk=body["id"])
    assert model.tenant_id == tenant.pk

    changed = patch(client, f"{BASE}/models/{model.pk}/", {"output_price": "0.30"}, admin_key)
    assert changed.status_code == 200 and changed.json()["output_price"] == "0.3000"
    assert client.delete(f"{BASE}/models/{model.pk}/", **admin_key).status_code == 204
    assert not Model.dangerously_unscoped.filter(pk=model.pk).exists()


def test_global_catalog_is_read_only_for_tenants(client, tenant, admin_key, builder_key):
    gpt = global_model("gpt-4o")
    url = f"{BASE}/models/{gpt.pk}/"
    assert client.get(url, **builder_key).json()["name"] == "gpt-4o"
    refused = patch(client, url, {"input_price": "0.01"}, admin_key)
    assert refused.status_code == 403
    assert refused.json() == {
        "code": "forbidden",
        "message": "“gpt-4o” is in the global catalog, which only platform operators change; "
        "add your own model instead.",
        "status": 403,
    }
    deleted = client.delete(url, **admin_key)
    assert deleted.status_code == 403 and "global catalog" in deleted.json()["message"]
    gpt.refresh_from_db()
    assert gpt.input_price == Decimal("2.50")
    assert patch(client, url, {"input_price": "0.01"}, builder_key).status_code == 403


def test_superuser_session_changes_global_prices(console, tenant, superuser):
    gpt = global_model("gpt-4o-mini")
    client = console(superuser, tenant)
    response = client.patch(
        f"{BASE}/models/{gpt.pk}/", {"input_price": "0.20"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    gpt.refresh_from_db()
    assert gpt.input_price == Decimal("0.20") and gpt.tenant_id is None
    fixed = client.patch(
        f"{BASE}/models/{gpt.pk}/", {"name": "renamed"}, content_type="application/json"
    )
    assert fixed.status_code == 400
    assert fixed.json()["message"] == "name: a global catalog entry keeps its name."


def test_create_model_bad_input(client, tenant, other_tenant, admin_key):
    mine = make_credential(tenant, name="anthropic", kind=ProviderKind.ANTHROPIC)
    theirs = make_credential(other_tenant, name="theirs", kind=ProviderKind.OPENAI_COMPATIBLE)
    make_model(tenant, name="dup", provider=ProviderKind.OPENAI)
    base = {"provider": "openai", "name": "m", "kind": "chat"}
    cases = [
        ({**base, "provider": "offline"}, 400, "provider: The built-in offline models are part"),
        ({**base, "credential": str(theirs.pk)}, 400, "credential: No credential with id"),
        (
            {**base, "credential": str(mine.pk)},
            400,
            "credential: “anthropic” is a credential for Anthropic; choose one for OpenAI.",
        ),
        ({**base, "kind": "vision"}, 400, 'kind: "vision" is not a valid choice.'),
        ({**base, "input_price": "-1"}, 400, "input_price: A price cannot be negative."),
        ({**base, "context_window": 0}, 400, "context_window: The context window must be"),
        ({**base, "currency": "dollars"}, 400, "currency: Ensure this field has no more than 3"),
        ({**base, "currency": "U$D"}, 400, "currency: Use a three-letter currency code"),
        ({**base, "name": "dup"}, 409, "You already have a model named “dup” for openai."),
        ({"provider": "openai", "kind": "chat"}, 400, "name: This field is required."),
    ]
    for data, status, message in cases:
        response = post(client, f"{BASE}/models/", data, admin_key)
        assert response.status_code == status, (data, response.content)
        assert response.json()["message"].startswith(message), (data, response.json())
    assert Model.dangerously_unscoped.filter(tenant=tenant).count() == 1


def test_model_list_query_count(client, tenant, admin_key, django_assert_max_num_queries):
    credential = make_credential(tenant, kind=ProviderKind.OPENAI_COMPATIBLE)
    for index in range(10):
        make_model(tenant, name=f"m{index}", credential=credential)
    client.get(f"{BASE}/models/", **admin_key)  # the tenant's plan limits are read once
    with django_assert_max_num_queries(5):
        response = client.get(f"{BASE}/models/", **admin_key)
    assert response.json()["count"] == Model.catalog.count() + 10


# --- Default models ------------------------------------------------------------------------


def test_defaults_start_built_in_and_can_be_chosen(client, tenant, admin_key, builder_key):
    listed = client.get(f"{BASE}/defaults/", **builder_key).json()["results"]
    assert [(row["kind"], row["builtin"], row["model"]["name"]) for row in listed] == [
        ("chat", True, "weft-offline-chat"),
        ("embedding", True, "weft-offline-embedding"),
        ("rerank", True, "weft-offline-rerank"),
    ]
    mini, gpt4o = global_model("gpt-4o-mini"), global_model("gpt-4o")
    own = make_model(tenant, name="llama3.2")
    response = put(
        client,
        f"{BASE}/defaults/chat/",
        {"model": mini.pk, "fallbacks": [own.pk, gpt4o.pk]},
        admin_key,
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["builtin"] is False and body["model"]["name"] == "gpt-4o-mini"
    assert [f["name"] for f in body["fallbacks"]] == ["llama3.2", "gpt-4o"]
    default = DefaultModel.dangerously_unscoped.get(tenant=tenant, kind="chat")
    assert str(default.pk) == body["id"]

    # Choosing again replaces the fallbacks, in the new order.
    again = put(
        client, f"{BASE}/defaults/chat/", {"model": own.pk, "fallbacks": [mini.pk]}, admin_key
    )
    assert [f["name"] for f in again.json()["fallbacks"]] == ["gpt-4o-mini"]
    assert Fallback.dangerously_unscoped.filter(default=default).count() == 1
    assert DefaultModel.dangerously_unscoped.filter(tenant=tenant).count() == 1

    assert put(client, f"{BASE}/defaults/chat/", {"model": mini.pk}, builder_key).status_code == 403
    assert client.delete(f"{BASE}/defaults/chat/", **admin_key).status_code == 204
    assert client.get(f"{BASE}/defaults/chat/", **admin_key).json()["builtin"] is True


def test_default_validation_names_the_field(client, tenant, other_tenant, admin_key):
    mini = global_model("gpt-4o-mini")
    embedding = global_model("text-embedding-3-small")
    disabled = make_model(tenant, name="off", enabled=False)
    foreign = make_model(other_tenant, name="foreign")
    url = f"{BASE}/defaults/chat/"
    cases = [
        ({"model": embedding.pk}, f"model: no enabled chat model with id {embedding.pk} is"),
        ({"model": disabled.pk}, f"model: no enabled chat model with id {disabled.pk} is"),
        ({"model": foreign.pk}, f"model: no enabled chat model with id {foreign.pk} is"),
        ({"model": 999999}, "model: no enabled chat model with id 999999 is available"),
        ({"model": mini.pk, "fallbacks": [embedding.pk]}, "fallbacks: no enabled chat model"),
        ({"model": mini.pk, "fallbacks": [mini.pk]}, "fallbacks: gpt-4o-mini is the default"),
        ({"model": mini.pk, "fallbacks": "x"}, "fallbacks: Expected a list of items but got"),
        ({"model": "gpt-4o"}, "model: A valid integer is required."),
        ({}, "model: This field is required."),
    ]
    for data, message in cases:
        response = put(client, url, data, admin_key)
        assert response.status_code == 400, (data, response.content)
        assert response.json()["code"] == "invalid_param"
        assert response.json()["message"].startswith(message), (data, response.json())
    assert not DefaultModel.dangerously_unscoped.exists()
    unknown = put(client, f"{BASE}/defaults/vision/", {"model": mini.pk}, admin_key)
    assert unknown.status_code == 404
    assert (
        unknown.json()["message"]
        == "Unknown model kind “vision”; use one of chat, embedding, rerank."
    )


def test_defaults_list_query_count(client, tenant, admin_key, django_assert_max_num_queries):
    put(
        client,
        f"{BASE}/defaults/chat/",
        {"model": global_model("gpt-4o").pk, "fallbacks": [global_model("gpt-4o-mini").pk]},
        admin_key,
    )
    with django_assert_max_num_queries(6):
        response = client.get(f"{BASE}/defaults/", **admin_key)
    assert [len(row["fallbacks"]) for row in response.json()["results"]] == [1, 0, 0]


# --- Usage ---------------------------------------------------------------------------------


def test_usage_is_listed_newest_first_with_filters(client, tenant, builder_key):
    old = make_usage(tenant, minutes_ago=60 * 24 * 3, model_name="gpt-4o")
    failed = make_usage(tenant, minutes_ago=5, status="error", error_code="provider_unavailable")
    embed = make_usage(tenant, minutes_ago=1, operation="embedding", total_tokens=12)
    make_usage(TenantFactory(), minutes_ago=0)

    def ids(query=""):
        response = client.get(f"{BASE}/usage/{query}", **builder_key)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [str(embed.pk), str(failed.pk), str(old.pk)]
    assert ids("?model=gpt-4o") == [str(old.pk)]
    assert ids("?operation=embedding") == [str(embed.pk)]
    assert ids("?status=error") == [str(failed.pk)]
    today = timezone.now().astimezone(ZoneInfo(tenant.time_zone)).date()  # dates: tenant's
    assert ids(f"?since={today - timedelta(days=1)}") == [str(embed.pk), str(failed.pk)]
    assert ids(f"?until={today - timedelta(days=2)}") == [str(old.pk)]
    moment = (timezone.now() - timedelta(minutes=3)).isoformat()
    assert ids(f"?since={moment.replace('+', '%2B')}") == [str(embed.pk)]
    assert ids("?limit=1&offset=1") == [str(failed.pk)]
    row = client.get(f"{BASE}/usage/{embed.pk}/", **builder_key).json()
    assert row["operation"] == "embedding" and row["total_tokens"] == 12
    for query, message in [
        ("?since=yesterday", "since: “yesterday” is not a date (2025-01-31) or a date-time"),
        ("?operation=chatting", "operation: unknown value “chatting”; use one of chat,"),
    ]:
        bad = client.get(f"{BASE}/usage/{query}", **builder_key)
        assert bad.status_code == 400 and bad.json()["message"].startswith(message)


def test_usage_is_read_only(client, tenant, admin_key):
    event = make_usage(tenant)
    url = f"{BASE}/usage/{event.pk}/"
    assert client.delete(url, **admin_key).status_code == 405
    assert patch(client, url, {"total_tokens": 1}, admin_key).status_code == 405
    assert post(client, f"{BASE}/usage/", {}, admin_key).status_code == 405


def test_usage_list_query_count(client, tenant, admin_key, django_assert_max_num_queries):
    for minutes in range(20):
        make_usage(tenant, minutes_ago=minutes)
    client.get(f"{BASE}/usage/", **admin_key)  # the tenant's plan limits are read once
    with django_assert_max_num_queries(5):
        response = client.get(f"{BASE}/usage/", **admin_key)
    assert response.json()["count"] == 20


def test_unreadable_secret_is_shown_as_such_not_a_500(client, tenant, admin_key):
    credential = make_credential(tenant)
    ProviderCredential.dangerously_unscoped.filter(pk=credential.pk).update(
        secret_encrypted=crypto.encrypt("x").replace("A", "B", 1) + "broken"
    )
    body = client.get(f"{BASE}/credentials/{credential.pk}/", **admin_key).json()
    assert body["secret_masked"] == "(unreadable: enter the secret again)"
    tested = client.post(f"{BASE}/credentials/{credential.pk}/test/", **admin_key).json()
    assert tested == {
        "ok": False,
        "message": "The stored secret cannot be decrypted with the keys in WEFT_SECRET_KEYS; "
        "enter the secret again.",
    }


def test_unknown_ids_are_404(client, tenant, admin_key):
    for url in (
        f"{BASE}/credentials/{uuid.uuid4()}/",
        f"{BASE}/credentials/not-a-uuid/",
        f"{BASE}/models/999999/",
        f"{BASE}/usage/{uuid.uuid4()}/",
    ):
        response = client.get(url, **admin_key)
        assert response.status_code == 404 and response.json()["code"] == "not_found", url


def test_openapi_schema_stays_warning_free(tmp_path):
    import yaml
    from django.core.management import call_command

    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    for path in ("credentials/{id}/test/", "defaults/{kind}/", "models/{id}/", "usage/"):
        assert f"/api/providers/{path}" in schema["paths"]
    components = schema["components"]["schemas"]
    assert "secret" not in components["CredentialOut"]["properties"]
    assert "secret_masked" in components["CredentialOut"]["properties"]
    assert components["CredentialCreateRequest"]["properties"]["secret"]["writeOnly"] is True
