"""Service API over real HTTP: who may call it (keys, apps, tenants), the error envelope,
the per-minute limits, and the app endpoints a client reads first (`parameters`, `info`,
`meta`, `site`)."""

from __future__ import annotations

import httpx
import pytest

from apps.models import App
from apps.services.apps import app_update
from tenants import services as tenant_services
from tenants.models import ApiKey, Tenant
from tests.apps import live
from tests.apps.live import Api, envelope
from tests.factories import api_key

pytestmark = [pytest.mark.django_db(transaction=True)]

daphne_server = live.daphne_server
service_api = live.service_api


# Keys


def test_missing_malformed_and_unknown_keys_are_401(daphne_server):
    url = f"{daphne_server.url}/v1/info"
    assert envelope(httpx.get(url)) == (401, "unauthorized")
    assert envelope(httpx.get(url, headers={"Authorization": "Basic abc"})) == (
        401,
        "unauthorized",
    )
    unknown = "app-" + "x" * 32
    response = httpx.get(url, headers={"Authorization": f"Bearer {unknown}"})
    assert envelope(response) == (401, "unauthorized")
    assert response.json()["message"] == "Access token is invalid"


def test_revoked_key_is_401(service_api, tenant, make_app):
    app = make_app(tenant)
    key, raw = api_key(tenant, kind=ApiKey.Kind.APP, app_id=app.pk)
    live = service_api(app)
    live.client.headers["Authorization"] = f"Bearer {raw}"
    assert live.get("/info").status_code == 200
    tenant_services.api_key_revoke(key=key, principal=tenant_services.PLATFORM)
    assert envelope(live.get("/info")) == (401, "unauthorized")


@pytest.mark.parametrize("kind", [ApiKey.Kind.DATASET, ApiKey.Kind.MANAGEMENT])
def test_dataset_and_management_keys_are_403(daphne_server, tenant, kind):
    raw = api_key(tenant, kind=kind)[1]
    client = Api(daphne_server.url, raw)
    try:
        for path in ("/info", "/parameters", "/conversations?user=u"):
            assert envelope(client.get(path)) == (403, "wrong_key_kind")
        assert envelope(client.post("/chat-messages", {"query": "hi", "user": "u"})) == (
            403,
            "wrong_key_kind",
        )
    finally:
        client.close()


def test_key_of_a_deleted_app_is_403(daphne_server, tenant):
    raw = api_key(tenant, kind=ApiKey.Kind.APP)[1]  # an app id that names no app
    client = Api(daphne_server.url, raw)
    try:
        response = client.get("/info")
        assert envelope(response) == (403, "forbidden")
        assert response.json()["message"] == "The app no longer exists."
    finally:
        client.close()


def test_app_with_api_off_is_403(service_api, tenant, make_app):
    app = make_app(tenant)
    client = service_api(app)
    app_update(tenant=tenant, app=app, enable_api=False)
    response = client.post("/chat-messages", {"inputs": {}, "query": "hi", "user": "u"})
    assert envelope(response) == (403, "forbidden")
    assert "disabled" in response.json()["message"]


def test_suspended_tenant_is_403(service_api, tenant):
    client = service_api()
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    assert envelope(client.get("/info")) == (403, "tenant_suspended")


def test_unknown_path_and_method(service_api):
    client = service_api()
    assert envelope(client.get("/no-such-thing")) == (404, "not_found")
    assert envelope(client.delete("/info")) == (405, "method_not_allowed")


# Limits per minute


def test_requests_per_minute_per_key(service_api, tenant, make_app):
    app = make_app(tenant)
    app_update(tenant=tenant, app=app, api_rpm=3)
    client = service_api(app)
    assert [client.get("/info").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/info")
    assert envelope(refused) == (429, "too_many_requests")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another key of the same app has its own count.
    assert service_api(app).get("/info").status_code == 200


def test_requests_per_minute_per_end_user(service_api, tenant, make_app):
    app = make_app(tenant)
    app_update(tenant=tenant, app=app, end_user_rpm=2)
    client = service_api(app)
    assert client.get("/conversations", user="alice").status_code == 200
    assert client.get("/conversations", user="alice").status_code == 200
    refused = client.get("/conversations", user="alice")
    assert envelope(refused) == (429, "too_many_requests")
    assert "Retry-After" in refused.headers
    assert client.get("/conversations", user="bob").status_code == 200


# What a client reads first


def test_info_and_site(service_api, tenant, make_app):
    app = make_app(tenant, name="Helper", description="Answers questions.")
    client = service_api(app)
    info = client.get("/info").json()
    assert info == {
        "name": "Helper",
        "description": "Answers questions.",
        "tags": [],
        "mode": "chat",
        "author_name": "",
    }
    site = client.get("/site").json()
    assert site["title"] == "Helper" and site["description"] == "Answers questions."
    assert site["icon"] == app.icon and site["icon_type"] == "emoji"
    assert {"chat_color_theme", "default_language", "show_workflow_steps"} <= set(site)


def test_parameters_of_a_chat_app(service_api, tenant, make_app):
    app = make_app(tenant, publish=False)
    config = {
        **app.config,
        "opening_statement": "Hello!",
        "suggested_questions": ["What can you do?"],
        "suggested_questions_after_answer": {"enabled": True},
        "user_input_form": [
            {"text-input": {"variable": "name", "label": "Name", "required": True}},
            {"select": {"variable": "tone", "label": "Tone", "options": ["formal", "casual"]}},
        ],
        "file_upload": {"enabled": True, "allowed_file_types": ["image"], "number_limits": 2},
    }
    app_update(tenant=tenant, app=app, config=config)
    from apps.services.apps import app_publish

    app_publish(tenant=tenant, app=app)
    body = service_api(app).get("/parameters", user="u").json()
    assert body["opening_statement"] == "Hello!"
    assert body["suggested_questions"] == ["What can you do?"]
    assert body["suggested_questions_after_answer"] == {"enabled": True}
    form = body["user_input_form"]
    assert [next(iter(item)) for item in form] == ["text-input", "select"]
    assert form[0]["text-input"]["variable"] == "name" and form[0]["text-input"]["required"]
    assert form[1]["select"]["options"] == ["formal", "casual"]
    assert body["file_upload"]["enabled"] is True
    assert body["file_upload"]["image"]["enabled"] is True
    assert body["file_upload"]["image"]["number_limits"] == 2
    assert body["system_parameters"]["file_size_limit"] >= 1
    for toggle in ("speech_to_text", "text_to_speech", "more_like_this", "annotation_reply"):
        assert body[toggle] == {"enabled": False}


def test_parameters_of_a_workflow_app_come_from_its_start_node(service_api, tenant, make_app):
    body = service_api(mode=App.Mode.WORKFLOW).get("/parameters").json()
    (item,) = body["user_input_form"]
    assert item["paragraph"]["variable"] == "query" and item["paragraph"]["required"] is True


def test_unpublished_app_is_unavailable(service_api, tenant, make_app):
    client = service_api(make_app(tenant, publish=False))
    assert envelope(client.get("/parameters")) == (400, "app_unavailable")
    response = client.post("/chat-messages", {"inputs": {}, "query": "hi", "user": "u"})
    assert envelope(response) == (400, "app_unavailable")


def test_meta_lists_tool_icons(service_api, tenant, make_app):
    app = make_app(tenant, App.Mode.AGENT_CHAT, publish=False)
    config = {
        **app.config,
        "agent_mode": {
            "enabled": True,
            "tools": [
                {"provider_id": "time", "tool_name": "current_time", "tool_parameters": {}},
                {"provider_id": "nowhere", "tool_name": "mystery", "tool_parameters": {}},
            ],
        },
    }
    app_update(tenant=tenant, app=app, config=config)
    from apps.services.apps import app_publish

    app_publish(tenant=tenant, app=app)
    icons = service_api(app).get("/meta").json()["tool_icons"]
    assert set(icons) == {"current_time", "mystery"}
    assert set(icons["current_time"]) == {"content", "background"}
    assert icons["mystery"]["content"]


def test_the_service_api_is_in_the_openapi_schema(db):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = {path for path in schema["paths"] if path.startswith("/v1/")}
    assert {
        "/v1/chat-messages",
        "/v1/completion-messages",
        "/v1/workflows/run",
        "/v1/workflows/{workflow_id}/run",
        "/v1/workflow/{run_id}/events",
        "/v1/conversations",
        "/v1/messages",
        "/v1/files/upload",
        "/v1/parameters",
    } <= paths
    chat = schema["paths"]["/v1/chat-messages"]["post"]
    assert chat["security"] == [{"appKey": []}]
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    listing = schema["paths"]["/v1/conversations"]["get"]
    assert [p["name"] for p in listing["parameters"]] == ["user"]
