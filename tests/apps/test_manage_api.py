"""The apps management API (`/api/apps/`): apps and their drafts (`model_config`,
`features`), publish, versions (list, read, diff, rollback), Dify DSL import and export, app
keys (shown once, revoked), and the logs (conversations, messages, feedback, a member's
rating), with fixed query counts on lists; the generic contract, and every endpoint's
cross-tenant 404, no-permission 403 and 401."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.models import App, AppVersion, Conversation, Message, MessageFeedback
from apps.services.apps import app_create
from tenants import services as tenant_services
from tenants.models import ApiKey, AuditLog
from tenants.roles import Role
from tests.api_contract import TenantEndpointContract, bearer
from tests.factories import TenantFactory, api_key
from workflows.services import spec_of, workflow_update

from .logdata import CHAT_EXPORT, agent_turn, make_conversation, make_message, rate

pytestmark = pytest.mark.django_db

BASE = "/api/apps"


def auth(tenant, role):
    return bearer(api_key(tenant, role=role)[1])


def warm(client, headers):
    """Use the key once, so that counted requests do not include recording its first use."""
    assert client.get(f"{BASE}/", **headers).status_code == 200


def post(client, url, data, headers):
    return client.post(url, data, content_type="application/json", **headers)


def patch(client, url, data, headers):
    return client.patch(url, data, content_type="application/json", **headers)


@pytest.fixture
def builder(tenant):
    return auth(tenant, Role.BUILDER)


@pytest.fixture
def operator(tenant):
    return auth(tenant, Role.OPERATOR)


@pytest.fixture
def chat(tenant, make_app):
    return make_app(tenant, App.Mode.CHAT, name="Helper")


# --- The generic contract, and every endpoint ---------------------------------------------


class TestAppsEndpoint(TenantEndpointContract):
    list_url = f"{BASE}/"
    allowed_role = Role.OPERATOR
    denied_role = Role.MEMBER

    def make_object(self, tenant):
        return app_create(tenant=tenant, name="Helper", mode=App.Mode.CHAT)


class TestConversationsEndpoint(TenantEndpointContract):
    list_url = f"{BASE}/conversations/"
    allowed_role = Role.OPERATOR
    denied_role = Role.MEMBER
    detail_methods = ("get",)

    def make_object(self, tenant):
        return make_conversation(app_create(tenant=tenant, name="Helper", mode=App.Mode.CHAT))


class TestMessagesEndpoint(TenantEndpointContract):
    list_url = f"{BASE}/messages/"
    allowed_role = Role.OPERATOR
    denied_role = Role.MEMBER
    detail_methods = ("get",)

    def make_object(self, tenant):
        app = app_create(tenant=tenant, name="Helper", mode=App.Mode.CHAT)
        return make_message(app, make_conversation(app))


# (method, path, what it needs); {app}, {key}, {conv}, {msg} are filled in per test.
OBJECT_ENDPOINTS = [
    ("get", "/{app}/", "view"),
    ("patch", "/{app}/", "manage"),
    ("delete", "/{app}/", "manage"),
    ("post", "/{app}/publish", "manage"),
    ("get", "/{app}/export", "view"),
    ("get", "/{app}/versions/", "view"),
    ("get", "/{app}/versions/1", "view"),
    ("get", "/{app}/versions/1/diff?against=draft", "view"),
    ("post", "/{app}/versions/1/rollback", "manage"),
    ("get", "/{app}/keys/", "view"),
    ("post", "/{app}/keys/", "manage"),
    ("post", "/{app}/keys/{key}/revoke", "manage"),
    ("delete", "/{app}/keys/{key}", "manage"),
    ("get", "/conversations/{conv}", "logs"),
    ("get", "/messages/{msg}", "logs"),
    ("post", "/messages/{msg}/feedbacks", "logs"),
]
TENANT_ENDPOINTS = [
    ("get", "/", "view"),
    ("post", "/", "manage"),
    ("post", "/import", "manage"),
    ("get", "/conversations/", "logs"),
    ("get", "/messages/", "logs"),
    ("get", "/feedbacks/", "logs"),
]
# The highest role each permission leaves out.
WITHOUT = {"view": Role.MEMBER, "logs": Role.MEMBER, "manage": Role.OPERATOR}
BODIES = {
    "/": {"name": "New", "mode": "chat"},
    "/{app}/": {"name": "Renamed", "model_config": {"pre_prompt": "changed"}},
    "/{app}/keys/": {"name": "Website"},
    "/import": {"content": CHAT_EXPORT},
    "/messages/{msg}/feedbacks": {"rating": "like"},
}


@pytest.fixture
def published(tenant, chat):
    """An app with version 1, a key, and a conversation with one rated message."""
    key, _ = api_key(tenant, kind=ApiKey.Kind.APP, app_id=chat.pk)
    conversation = make_conversation(chat)
    message = make_message(chat, conversation)
    rate(message, "dislike")
    return chat, key, conversation, message


def call(client, method, template, headers, objects=None):
    app, key, conversation, message = objects or (None, None, None, None)
    url = BASE + template.format(
        app=getattr(app, "pk", ""),
        key=getattr(key, "pk", ""),
        conv=getattr(conversation, "pk", ""),
        msg=getattr(message, "pk", ""),
    )
    return getattr(client, method)(
        url, BODIES.get(template, {}), content_type="application/json", **headers
    )


def unchanged(tenant, objects):
    app, key, _, message = objects
    now = App.dangerously_unscoped.get(pk=app.pk)
    assert (now.name, now.config, now.published_version_id) == (
        app.name,
        app.config,
        app.published_version_id,
    )
    assert list(
        AppVersion.dangerously_unscoped.filter(app=app).values_list("number", flat=True)
    ) == [1]
    assert ApiKey.dangerously_unscoped.get(pk=key.pk).revoked_at is None
    assert ApiKey.dangerously_unscoped.filter(app_id=app.pk).count() == 1
    assert list(
        MessageFeedback.dangerously_unscoped.filter(message=message).values_list("source", "rating")
    ) == [("user", "dislike")]
    assert App.dangerously_unscoped.filter(tenant=tenant).count() == 1


@pytest.mark.parametrize(("method", "template", "needs"), OBJECT_ENDPOINTS)
def test_another_tenants_objects_are_not_found(client, published, method, template, needs):
    theirs = published[0].tenant
    mine = TenantFactory(slug="mine")
    response = call(client, method, template, auth(mine, Role.OWNER), published)
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    unchanged(theirs, published)


@pytest.mark.parametrize(("method", "template", "needs"), OBJECT_ENDPOINTS + TENANT_ENDPOINTS)
def test_a_role_without_the_permission_is_refused(
    client, tenant, published, method, template, needs
):
    response = call(client, method, template, auth(tenant, WITHOUT[needs]), published)
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "forbidden" and body["status"] == 403
    unchanged(tenant, published)


@pytest.mark.parametrize(("method", "template", "needs"), OBJECT_ENDPOINTS + TENANT_ENDPOINTS)
def test_no_credentials_is_401(client, tenant, published, method, template, needs):
    response = call(client, method, template, {}, published)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "unauthorized"
    unchanged(tenant, published)


def test_an_app_key_cannot_call_the_management_api(client, chat, app_key):
    response = client.get(f"{BASE}/", **bearer(app_key(chat)))
    assert response.status_code == 403 and response.json()["code"] == "wrong_key_kind"


def test_the_api_is_in_the_openapi_schema(client, db):
    paths = yaml.safe_load(client.get("/api/schema/").content)["paths"]
    expected = {
        "/api/apps/": {"get", "post"},
        "/api/apps/import/": {"post"},
        "/api/apps/{id}/": {"get", "patch", "delete"},
        "/api/apps/{id}/publish/": {"post"},
        "/api/apps/{id}/export/": {"get"},
        "/api/apps/{app_pk}/versions/": {"get"},
        "/api/apps/{app_pk}/versions/{number}/": {"get"},
        "/api/apps/{app_pk}/versions/{number}/diff/": {"get"},
        "/api/apps/{app_pk}/versions/{number}/rollback/": {"post"},
        "/api/apps/{app_pk}/keys/": {"get", "post"},
        "/api/apps/{app_pk}/keys/{key_pk}/": {"delete"},
        "/api/apps/{app_pk}/keys/{key_pk}/revoke/": {"post"},
        "/api/apps/conversations/": {"get"},
        "/api/apps/conversations/{id}/": {"get"},
        "/api/apps/messages/": {"get"},
        "/api/apps/messages/{id}/": {"get"},
        "/api/apps/messages/{id}/feedbacks/": {"post"},
        "/api/apps/feedbacks/": {"get"},
    }
    assert {path: set(paths[path]) for path in expected} == expected
    conversations = paths["/api/apps/conversations/"]["get"]
    assert {p["name"] for p in conversations["parameters"]} >= {
        "app",
        "end_user",
        "since",
        "until",
        "rating",
        "status",
    }
    created = paths["/api/apps/{app_pk}/keys/"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/ApiKeyCreated")


# --- Apps and their drafts -----------------------------------------------------------------


@pytest.mark.parametrize("mode", App.Mode.values)
def test_create_an_app_of_every_mode(client, tenant, builder, mode):
    response = post(
        client, f"{BASE}/", {"name": f"New {mode}", "mode": mode, "icon": "🧭"}, builder
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["mode"], body["icon"], body["published_version"]) == (mode, "🧭", None)
    assert body["conversation_count"] == 0 and body["enable_api"] is True
    if mode in App.WORKFLOW_MODES:
        assert body["model_config"] is None and isinstance(body["features"], dict)
        assert body["workflow_id"]
    else:
        assert body["model_config"]["model"]["name"] == "weft-offline-chat"
        assert body["features"] is None
    assert App.dangerously_unscoped.get(pk=body["id"]).tenant_id == tenant.pk
    published = post(client, f"{BASE}/{body['id']}/publish", {}, builder)
    assert published.status_code == 201, published.content  # runnable at once


def test_create_with_a_model_config_and_read_it_back(client, builder, operator):
    config = {
        "pre_prompt": "Be brief.",
        "opening_statement": "Hi!",
        "user_input_form": [
            {"text-input": {"variable": "name", "label": "Name", "required": True}}
        ],
    }
    created = post(
        client, f"{BASE}/", {"name": "Brief", "mode": "chat", "model_config": config}, builder
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["model_config"]["pre_prompt"] == "Be brief."
    assert body["model_config"]["user_input_form"][0]["text-input"]["variable"] == "name"
    assert client.get(f"{BASE}/{body['id']}", **operator).json() == body


@pytest.mark.parametrize(
    ("body", "status", "code", "fragment"),
    [
        ({"mode": "chat"}, 400, "invalid_param", "name: This field is required."),
        ({"name": "X", "mode": "robot"}, 400, "invalid_param", "mode: “robot” is not one of"),
        (
            {"name": "Taken", "mode": "chat"},
            409,
            "conflict",
            "an app called “Taken” already exists",
        ),
        (
            {
                "name": "X",
                "mode": "chat",
                "model_config": {"user_input_form": [{"select": {"variable": "a"}}]},
            },
            400,
            "invalid_param",
            "model_config.user_input_form: Value error, the select “a” has no options",
        ),
        (
            {"name": "X", "mode": "chat", "model_config": []},
            400,
            "invalid_param",
            "model_config: must be an object.",
        ),
        (
            {"name": "X", "mode": "workflow", "model_config": {}},
            400,
            "invalid_param",
            "model_config: chatflow and workflow apps are configured by their workflow",
        ),
    ],
)
def test_bad_apps_are_refused_naming_the_field(
    client, tenant, make_app, builder, body, status, code, fragment
):
    make_app(tenant, name="Taken", publish=False)
    response = post(client, f"{BASE}/", body, builder)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code and fragment in response.json()["message"]
    assert App.dangerously_unscoped.count() == 1


def test_list_filters_paginates_and_costs_the_same_for_more_rows(
    client, tenant, make_app, operator, django_assert_num_queries
):
    chat = make_app(tenant, App.Mode.CHAT, name="Support helper")
    make_app(tenant, App.Mode.WORKFLOW, name="Batch", publish=False)
    make_app(TenantFactory(slug="other"), App.Mode.CHAT, name="Support elsewhere")
    conversation = make_conversation(chat)
    make_message(chat, conversation)
    make_message(chat, conversation, ago=dt.timedelta(days=2))

    def rows(query):
        response = client.get(f"{BASE}/{query}", **operator)
        assert response.status_code == 200, response.content
        return response.json()["results"]

    assert [r["name"] for r in rows("?name=support")] == ["Support helper"]
    assert [r["name"] for r in rows("?mode=workflow")] == ["Batch"]
    assert len(rows("?limit=1&offset=1")) == 1
    (helper,) = rows("?name=support")
    assert (helper["published_version"], helper["conversation_count"], helper["messages_24h"]) == (
        1,
        1,
        1,
    )
    refused = client.get(f"{BASE}/?mode=robot", **operator)
    assert refused.status_code == 400 and "mode: unknown value “robot”" in refused.json()["message"]

    # key, count, page (published versions joined, counts as subqueries)
    with django_assert_num_queries(3):
        client.get(f"{BASE}/", **operator)
    for index in range(4):
        more = make_app(tenant, App.Mode.AGENT_CHAT, name=f"More {index}")
        make_message(more, make_conversation(more))
    with django_assert_num_queries(3):
        assert client.get(f"{BASE}/", **operator).json()["count"] == 6


def test_update_details_switches_limits_and_the_draft(client, tenant, builder, chat):
    url = f"{BASE}/{chat.pk}/"
    response = patch(
        client,
        url,
        {
            "name": "Helper 2",
            "enable_api": False,
            "enable_site": False,
            "max_active_requests": 3,
            "api_rpm": 60,
            "end_user_rpm": 5,
            "model_config": {"pre_prompt": "Be kind.", "opening_statement": "Hello"},
        },
        builder,
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["enable_api"], body["enable_site"]) == ("Helper 2", False, False)
    assert (body["max_active_requests"], body["api_rpm"], body["end_user_rpm"]) == (3, 60, 5)
    config = body["model_config"]
    assert (config["pre_prompt"], config["opening_statement"]) == ("Be kind.", "Hello")
    assert config["model"]["name"] == "weft-offline-chat"  # the keys not sent are kept
    assert body["published_version"] == 1  # the draft only
    saved = App.dangerously_unscoped.get(pk=chat.pk)
    assert saved.published_version.config["pre_prompt"] == ""
    row = AuditLog.dangerously_unscoped.filter(
        object_type="apps.app", object_id=str(chat.pk), action="update"
    ).latest("id")
    assert row.source == "api" and "config" in row.changes


def test_update_the_features_of_a_workflow_app(client, tenant, make_app, builder):
    app = make_app(tenant, App.Mode.CHATFLOW, name="Flow")
    url = f"{BASE}/{app.pk}/"
    response = patch(
        client,
        url,
        {"features": {"opening_statement": "Welcome", "suggested_questions": ["Why?"]}},
        builder,
    )
    assert response.status_code == 200, response.content
    features = response.json()["features"]
    assert features["opening_statement"] == "Welcome" and features["suggested_questions"] == [
        "Why?"
    ]
    assert (
        spec_of(App.dangerously_unscoped.get(pk=app.pk).workflow).features["opening_statement"]
        == "Welcome"
    )
    refused = patch(client, url, {"model_config": {"pre_prompt": "x"}}, builder)
    assert refused.status_code == 400
    assert "send `features`" in refused.json()["message"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (
            {"features": {"opening_statement": "x"}},
            400,
            "features: only chatflow and workflow apps",
        ),
        (
            {"model_config": {"memory": {"window": {"size": 0}}}},
            400,
            "model_config.memory.window.size",
        ),
        ({"model_config": "nope"}, 400, "model_config: must be an object."),
        ({"api_rpm": -1}, 400, "api_rpm: a whole number from 0 to 1,000,000."),
        ({"mode": "workflow"}, 400, "mode: an app keeps its mode"),
        ({"enable_api": "maybe"}, 400, "enable_api: Must be a valid boolean."),
        ({"name": "Taken"}, 409, "an app called “Taken” already exists"),
    ],
)
def test_bad_updates_are_refused_and_change_nothing(
    client, tenant, make_app, builder, chat, body, status, fragment
):
    make_app(tenant, name="Taken", publish=False)
    response = patch(client, f"{BASE}/{chat.pk}/", body, builder)
    assert response.status_code == status, response.content
    assert fragment in response.json()["message"]
    saved = App.dangerously_unscoped.get(pk=chat.pk)
    assert (saved.name, saved.config, saved.api_rpm) == ("Helper", chat.config, 0)


def test_delete_takes_its_logs_and_keys_with_it(client, tenant, builder, published):
    app, key, conversation, message = published
    assert Conversation.dangerously_unscoped.filter(pk=conversation.pk).exists()
    response = client.delete(f"{BASE}/{app.pk}/", **builder)
    assert response.status_code == 204
    assert not App.dangerously_unscoped.filter(pk=app.pk).exists()
    assert not Message.dangerously_unscoped.filter(pk=message.pk).exists()
    assert not Conversation.dangerously_unscoped.filter(pk=conversation.pk).exists()
    assert not ApiKey.dangerously_unscoped.filter(pk=key.pk).exists()
    assert client.get(f"{BASE}/{app.pk}/", **builder).status_code == 404


# --- Publish and versions ------------------------------------------------------------------


def test_publish_versions_diff_and_rollback(
    client, tenant, builder, operator, chat, django_assert_num_queries
):
    url = f"{BASE}/{chat.pk}"
    same = post(client, f"{url}/publish", {}, builder)
    assert same.status_code == 200 and same.json()["number"] == 1
    patch(client, f"{url}/", {"model_config": {"pre_prompt": "Be brief."}}, builder)
    published = post(client, f"{url}/publish", {"note": "brief"}, builder)
    assert published.status_code == 201, published.content
    assert (
        published.json()["number"],
        published.json()["note"],
        published.json()["published"],
    ) == (2, "brief", True)
    assert published.json()["config"]["pre_prompt"] == "Be brief."

    warm(client, operator)
    with django_assert_num_queries(4):  # key, app (its published version joined), count, page
        listed = client.get(f"{url}/versions/", **operator).json()
    assert [(r["number"], r["published"]) for r in listed["results"]] == [(2, True), (1, False)]
    assert "config" not in listed["results"][0]
    assert client.get(f"{url}/versions/1", **operator).json()["config"]["pre_prompt"] == ""
    missing = client.get(f"{url}/versions/9", **operator)
    assert missing.status_code == 404 and missing.json()["message"] == "No version 9 of this app."

    diff = client.get(f"{url}/versions/2/diff", **operator).json()  # against the one before
    assert (diff["older"], diff["newer"], diff["empty"], diff["workflow"]) == (
        "1",
        "2",
        False,
        None,
    )
    assert diff["config"] == [{"path": "pre_prompt", "old": "", "new": "Be brief."}]
    assert "pre_prompt" in diff["text"]
    backwards = client.get(f"{url}/versions/1/diff?against=2", **operator).json()
    assert (backwards["older"], backwards["newer"]) == ("1", "2")
    draft = client.get(f"{url}/versions/2/diff?against=draft", **operator).json()
    assert (draft["older"], draft["newer"], draft["empty"], draft["text"]) == (
        "2",
        "draft",
        True,
        "No changes.",
    )
    for query, message in [
        ("against=7", "against: this app has no version 7."),
        ("against=latest", "against: “latest” is not a version number or `draft`."),
    ]:
        bad = client.get(f"{url}/versions/2/diff?{query}", **operator)
        assert bad.status_code == 400 and bad.json()["message"] == message
    first = client.get(f"{url}/versions/1/diff", **operator)
    assert first.status_code == 400 and "version 1 is the first" in first.json()["message"]

    restored = post(client, f"{url}/versions/1/rollback", {}, builder)
    assert restored.status_code == 201, restored.content
    assert (restored.json()["number"], restored.json()["restored_from"]) == (3, 1)
    saved = App.dangerously_unscoped.get(pk=chat.pk)
    assert saved.published_version.number == 3 and saved.config["pre_prompt"] == ""


def test_a_workflow_app_diffs_its_workflow_and_refuses_a_broken_publish(
    client, tenant, make_app, builder, operator
):
    app = make_app(tenant, App.Mode.WORKFLOW, name="Flow")
    spec = spec_of(app.workflow)
    graph = spec.graph.model_dump(mode="json", exclude_unset=True)
    for node in graph["nodes"]:
        if node["id"] == "end":
            node["data"]["outputs"][0]["variable"] = "answer"
    changed = spec.model_copy(update={"graph": type(spec.graph).model_validate(graph)})
    workflow_update(tenant=tenant, workflow=app.workflow, spec=changed)
    diff = client.get(f"{BASE}/{app.pk}/versions/1/diff?against=draft", **operator).json()
    assert diff["config"] == [] and not diff["empty"]
    [node] = diff["workflow"]["nodes_changed"]
    assert node["node"]["node_id"] == "end"
    published = post(client, f"{BASE}/{app.pk}/publish", {}, builder)
    assert published.status_code == 201 and published.json()["workflow_version"] == 2
    assert published.json()["graph"]["nodes"]

    graph["edges"] = []
    broken = spec.model_copy(update={"graph": type(spec.graph).model_validate(graph)})
    workflow_update(tenant=tenant, workflow=app.workflow, spec=broken)
    refused = post(client, f"{BASE}/{app.pk}/publish", {"note": "broken"}, builder)
    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == "workflow_invalid" and body["errors"]
    assert AppVersion.dangerously_unscoped.filter(app=app).count() == 2


# --- Import and export ---------------------------------------------------------------------


def test_import_as_json_or_file_reports_what_it_mapped(client, tenant, builder):
    created = post(client, f"{BASE}/import", {"content": CHAT_EXPORT}, builder)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["app"]["name"] == "Handbook helper" and body["app"]["mode"] == "chat"
    assert body["app"]["published_version"] == 1  # it answers at once
    assert body["report"]["version"] == "0.1.5"
    assert any("gpt-4o-mini" in item["message"] for item in body["report"]["warnings"])

    upload = SimpleUploadedFile("helper.yml", CHAT_EXPORT.encode(), "application/x-yaml")
    named = client.post(f"{BASE}/import", {"file": upload, "name": "From a file"}, **builder)
    assert named.status_code == 201, named.content
    assert named.json()["app"]["name"] == "From a file"

    target = body["app"]["id"]
    replaced = post(
        client,
        f"{BASE}/import",
        {"content": CHAT_EXPORT.replace("the handbook", "the rules"), "app_id": target},
        builder,
    )
    assert replaced.status_code == 200, replaced.content
    saved = App.dangerously_unscoped.get(pk=target)
    assert "the rules" in saved.config["pre_prompt"] and saved.published_version.number == 1


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"content": "app: [unclosed"}, "invalid_dsl", "line"),
        (
            {"content": "kind: app\nversion: 0.1.5\napp: {name: X}\n"},
            "invalid_dsl",
            "app.mode is missing",
        ),
        ({}, "invalid_param", "Send the DSL as `content` or as `file`"),
        (
            {"content": CHAT_EXPORT, "app_id": "00000000-0000-0000-0000-000000000000"},
            "invalid_param",
            "app_id: no app with id",
        ),
    ],
)
def test_import_refuses_bad_files(client, tenant, builder, body, code, fragment):
    response = post(client, f"{BASE}/import", body, builder)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code and fragment in response.json()["message"]
    assert not App.dangerously_unscoped.filter(tenant=tenant).exists()


def test_import_cannot_replace_another_tenants_app(client, tenant, make_app, builder):
    foreign = make_app(TenantFactory(slug="other"), name="Theirs")
    response = post(
        client, f"{BASE}/import", {"content": CHAT_EXPORT, "app_id": str(foreign.pk)}, builder
    )
    assert response.status_code == 400 and "app_id: no app with id" in response.json()["message"]
    assert App.dangerously_unscoped.get(pk=foreign.pk).config == foreign.config


def test_export_is_yaml_of_the_draft_or_a_version(client, tenant, builder, operator, chat):
    patch(client, f"{BASE}/{chat.pk}/", {"model_config": {"pre_prompt": "Draft"}}, builder)
    draft = client.get(f"{BASE}/{chat.pk}/export", HTTP_ACCEPT="application/x-yaml", **operator)
    assert draft.status_code == 200
    assert draft["Content-Type"] == "application/x-yaml; charset=utf-8"
    assert draft["Content-Disposition"] == 'attachment; filename="Helper.yml"'
    document = yaml.safe_load(draft.content)
    assert (document["app"]["mode"], document["model_config"]["pre_prompt"]) == ("chat", "Draft")
    version = client.get(f"{BASE}/{chat.pk}/export?version=1", **operator)
    assert yaml.safe_load(version.content)["model_config"]["pre_prompt"] == ""
    assert 'filename="Helper-v1.yml"' in version["Content-Disposition"]
    missing = client.get(f"{BASE}/{chat.pk}/export?version=4", **operator)
    assert (
        missing.status_code == 400
        and missing.json()["message"] == "version: this app has no version 4."
    )
    secrets = client.get(f"{BASE}/{chat.pk}/export?include_secrets=true", **operator)
    assert secrets.status_code == 403 and secrets.json()["code"] == "forbidden"
    assert client.get(f"{BASE}/{chat.pk}/export?include_secrets=true", **builder).status_code == 200


# --- Keys ----------------------------------------------------------------------------------


def test_app_keys_are_shown_once_listed_and_revoked(
    client, tenant, builder, operator, chat, django_assert_num_queries
):
    url = f"{BASE}/{chat.pk}/keys/"
    created = post(client, url, {"name": "Website"}, builder)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["key"].startswith("app-") and body["kind"] == "app"
    assert body["app_id"] == str(chat.pk) and body["name"] == "Website"
    key = ApiKey.dangerously_unscoped.get(pk=body["id"])
    assert key.tenant_id == tenant.pk and body["key"].startswith(key.prefix)
    works = client.get("/v1/parameters", HTTP_AUTHORIZATION=f"Bearer {body['key']}")
    assert works.status_code == 200, works.content  # the Service API takes it

    post(client, url, {}, builder)
    warm(client, operator)
    with django_assert_num_queries(4):  # key, app, count, page (creators joined)
        listed = client.get(url, **operator).json()
    assert listed["count"] == 2 and all("key" not in row for row in listed["results"])
    for _ in range(3):
        post(client, url, {}, builder)
    with django_assert_num_queries(4):
        client.get(url, **operator)

    revoked = post(client, f"{url}{key.pk}/revoke", {}, builder)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert ApiKey.dangerously_unscoped.get(pk=key.pk).is_revoked
    other = post(client, url, {}, builder).json()
    assert client.delete(f"{url}{other['id']}", **builder).status_code == 204
    assert ApiKey.dangerously_unscoped.get(pk=other["id"]).is_revoked
    elsewhere, _ = api_key(tenant, kind=ApiKey.Kind.APP)  # a key of another app
    assert post(client, f"{url}{elsewhere.pk}/revoke", {}, builder).status_code == 404
    assert ApiKey.dangerously_unscoped.get(pk=elsewhere.pk).revoked_at is None


# --- Logs ----------------------------------------------------------------------------------


def test_conversations_are_filtered_and_cost_the_same_for_more_rows(
    client, tenant, make_app, operator, chat, django_assert_num_queries
):
    other = make_app(tenant, App.Mode.AGENT_CHAT, name="Agent")
    alice = make_conversation(chat, "alice")
    rate(make_message(chat, alice), "like")
    bob = make_conversation(chat, "bob")
    make_message(chat, bob, status=Message.Status.ERROR, error="boom")
    carol = make_conversation(chat, "carol")
    make_message(chat, carol, ago=dt.timedelta(days=3))
    make_conversation(other, "dave")
    make_conversation(make_app(TenantFactory(slug="other"), name="Theirs"), "eve")
    url = f"{BASE}/conversations/"

    def users(query=""):
        response = client.get(f"{url}?{query}", **operator)
        assert response.status_code == 200, response.content
        return {row["end_user"] for row in response.json()["results"]}

    assert users() == {"alice", "bob", "carol", "dave"}
    assert users(f"app={chat.pk}") == {"alice", "bob", "carol"}
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    assert users(f"since={since.replace('+', '%2B')}") == {"alice", "bob", "dave"}
    assert users(f"until={since.replace('+', '%2B')}") == {"carol"}
    assert users("until=2000-01-01") == set()
    assert users("rating=like") == {"alice"}
    assert users("rating=none") == {"bob", "carol", "dave"}
    assert users("status=error") == {"bob"}
    assert users(f"end_user={alice.end_user_id}") == {"alice"}
    row = client.get(f"{url}?end_user={alice.end_user_id}", **operator).json()["results"][0]
    assert (row["message_count"], row["likes"], row["dislikes"], row["app_id"]) == (
        1,
        1,
        0,
        str(chat.pk),
    )

    for query, fragment in [
        ("since=yesterday", "since: “yesterday” is not a date"),
        ("rating=love", "rating: unknown value “love”"),
        ("status=done", "status: unknown value “done”"),
        ("app=nope", "app: “nope” is not an id."),
        ("app=00000000-0000-0000-0000-000000000000", "app: no app with id"),
        ("since=2025-02-01&until=2025-01-01", "until: must be later than since."),
    ]:
        bad = client.get(f"{url}?{query}", **operator)
        assert bad.status_code == 400 and fragment in bad.json()["message"], query

    warm(client, operator)
    with django_assert_num_queries(3):  # key, count, page (counts as subqueries)
        client.get(url, **operator)
    for name in ("frank", "grace", "heidi"):
        rate(make_message(chat, make_conversation(chat, name)), "dislike")
    with django_assert_num_queries(3):
        assert client.get(url, **operator).json()["count"] == 7


def test_a_conversation_comes_with_every_turn(
    client, tenant, operator, chat, django_assert_num_queries
):
    conversation = make_conversation(chat, "alice", inputs={"topic": "Leave"})
    first = make_message(chat, conversation, query="Hi")
    rate(first, "like", content="Nice")
    agent_turn(chat, conversation)
    url = f"{BASE}/conversations/{conversation.pk}"
    warm(client, operator)
    with django_assert_num_queries(5):  # key, conversation, its messages, thoughts, feedbacks
        body = client.get(url, **operator).json()
    assert (body["end_user"], body["inputs"], body["message_count"]) == (
        "alice",
        {"topic": "Leave"},
        2,
    )
    one, two = body["messages"]
    assert one["query"] == "Hi" and one["user_rating"] == "like" and one["admin_rating"] is None
    assert one["feedbacks"][0]["content"] == "Nice"
    assert (one["message_tokens"], one["answer_tokens"], one["total_tokens"]) == (12, 30, 42)
    assert (one["total_price"], one["latency"], one["time_to_first_token"]) == (
        "0.0012000000",
        1.25,
        0.4,
    )
    assert [(t["position"], t["tool"], t["observation"]) for t in two["agent_thoughts"]] == [
        (1, "current_time", "09:00"),
        (2, "", ""),
    ]
    assert two["retriever_resources"][0]["document_name"] == "leave.md"
    for _ in range(3):
        agent_turn(chat, conversation)
    with django_assert_num_queries(5):
        assert len(client.get(url, **operator).json()["messages"]) == 5


def test_messages_are_filtered_and_cost_the_same_for_more_rows(
    client, tenant, operator, chat, django_assert_num_queries
):
    conversation = make_conversation(chat, "alice")
    liked = make_message(chat, conversation, query="Liked")
    rate(liked, "like")
    rate(liked, "dislike", source=MessageFeedback.From.ADMIN)
    make_message(chat, conversation, query="Stopped", status=Message.Status.STOPPED)
    make_message(chat, None, query="Alone")
    url = f"{BASE}/messages/"

    def queries(query=""):
        response = client.get(f"{url}?{query}", **operator)
        assert response.status_code == 200, response.content
        return {row["query"] for row in response.json()["results"]}

    assert queries() == {"Liked", "Stopped", "Alone"}
    assert queries(f"conversation={conversation.pk}") == {"Liked", "Stopped"}
    assert queries("status=stopped") == {"Stopped"}
    assert queries("rating=dislike") == {"Liked"}
    assert queries(f"end_user={conversation.end_user_id}&app={chat.pk}") == {"Liked", "Stopped"}
    row = client.get(f"{url}?rating=like", **operator).json()["results"][0]
    assert (row["user_rating"], row["admin_rating"], row["end_user"]) == (
        "like",
        "dislike",
        "alice",
    )
    assert "agent_thoughts" not in row
    missing = client.get(f"{url}?conversation=00000000-0000-0000-0000-000000000000", **operator)
    assert (
        missing.status_code == 400 and "conversation: no conversation" in missing.json()["message"]
    )

    warm(client, operator)
    with django_assert_num_queries(3):  # key, count, page (ratings as subqueries)
        client.get(url, **operator)
    for index in range(3):
        rate(make_message(chat, conversation, query=f"More {index}"), "like")
    with django_assert_num_queries(3):
        assert client.get(url, **operator).json()["count"] == 6

    with django_assert_num_queries(4):  # key, message (+ app, end user), thoughts, feedbacks
        detail = client.get(f"{url}{liked.pk}", **operator).json()
    assert {(f["source"], f["rating"]) for f in detail["feedbacks"]} == {
        ("user", "like"),
        ("admin", "dislike"),
    }
    assert (detail["user_rating"], detail["admin_rating"]) == ("like", "dislike")


def test_a_member_rates_through_the_api(client, tenant, make_member, chat, console):
    conversation = make_conversation(chat, "alice")
    message = make_message(chat, conversation)
    rate(message, "dislike")
    operator_user = make_member(tenant, Role.OPERATOR)
    _, raw = tenant_services.api_key_create(
        tenant=tenant,
        kind=ApiKey.Kind.MANAGEMENT,
        role=Role.OPERATOR,
        principal=tenant_services.PLATFORM,
        created_by=operator_user,
    )
    url = f"{BASE}/messages/{message.pk}/feedbacks"
    liked = post(client, url, {"rating": "like", "content": "Right answer"}, bearer(raw))
    assert liked.status_code == 200, liked.content
    assert (liked.json()["admin_rating"], liked.json()["user_rating"]) == ("like", "dislike")
    mine = MessageFeedback.dangerously_unscoped.get(message=message, source="admin")
    assert (mine.rating, mine.content, mine.created_by) == ("like", "Right answer", operator_user)
    cleared = post(client, url, {"rating": None}, bearer(raw))
    assert cleared.status_code == 200 and cleared.json()["admin_rating"] is None
    assert not MessageFeedback.dangerously_unscoped.filter(message=message, source="admin").exists()

    session = console(operator_user, tenant)
    by_session = post(session, url, {"rating": "dislike"}, {})
    assert by_session.status_code == 200 and by_session.json()["admin_rating"] == "dislike"

    bad = post(client, url, {"rating": "love"}, bearer(raw))
    assert bad.status_code == 400 and bad.json()["message"] == "rating: use like, dislike or null."
    nobody = post(
        client, url, {"rating": "like"}, auth(tenant, Role.OPERATOR)
    )  # no member behind it
    assert nobody.status_code == 400 and "needs a member" in nobody.json()["message"]
    assert (
        MessageFeedback.dangerously_unscoped.get(message=message, source="admin").rating
        == "dislike"
    )


def test_feedbacks_are_listed_and_filtered(
    client, tenant, make_app, operator, chat, django_assert_num_queries
):
    conversation = make_conversation(chat, "alice")
    one = make_message(chat, conversation, query="One")
    rate(one, "like")
    rate(one, "dislike", source=MessageFeedback.From.ADMIN)
    other = make_app(tenant, App.Mode.AGENT_CHAT, name="Agent")
    rate(make_message(other, make_conversation(other, "bob")), "dislike")
    theirs = make_app(TenantFactory(slug="other"), name="Theirs")
    rate(make_message(theirs, make_conversation(theirs, "eve")), "like")
    url = f"{BASE}/feedbacks/"

    def seen(query=""):
        response = client.get(f"{url}?{query}", **operator)
        assert response.status_code == 200, response.content
        return sorted(
            (row["source"], row["rating"], row["end_user"]) for row in response.json()["results"]
        )

    assert seen() == [
        ("admin", "dislike", None),
        ("user", "dislike", "bob"),
        ("user", "like", "alice"),
    ]
    assert seen(f"app={chat.pk}") == [("admin", "dislike", None), ("user", "like", "alice")]
    assert seen("rating=dislike&source=user") == [("user", "dislike", "bob")]
    assert client.get(f"{url}?source=robot", **operator).status_code == 400
    warm(client, operator)
    with django_assert_num_queries(3):  # key, count, page (end users, creators joined)
        client.get(url, **operator)
    for index in range(3):
        rate(make_message(chat, conversation, query=f"More {index}"), "like")
    with django_assert_num_queries(3):
        assert client.get(url, **operator).json()["count"] == 6


def test_a_console_session_uses_the_same_api(client, tenant, make_member, console):
    builder_user = make_member(tenant, Role.BUILDER)
    session = console(builder_user, tenant)
    created = post(session, f"{BASE}/", {"name": "From the console", "mode": "completion"}, {})
    assert created.status_code == 201, created.content
    app = App.dangerously_unscoped.get(pk=created.json()["id"])
    assert app.created_by == builder_user
    conversation_count = Conversation.dangerously_unscoped.filter(app=app).count()
    assert conversation_count == 0
    operator_session = console(make_member(tenant, Role.OPERATOR), tenant)
    refused = patch(operator_session, f"{BASE}/{app.pk}/", {"name": "No"}, {})
    assert refused.status_code == 403
