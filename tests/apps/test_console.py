"""The apps console: the list (mode, published version, API switch, activity), create and
import, the settings page (every setting as a form field, saved through the service, unknown
keys kept, bad input refused readably), chatflow and workflow apps (editor link, features),
versions (publish, compare, rollback, export), API keys (shown once, revoked), the logs
(filters, a conversation turn by turn, members' ratings), and who sees what (roles, other
tenants)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from django import forms
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from apps.models import (
    App,
    AppVersion,
    Message,
    MessageFeedback,
)
from apps.services.apps import app_update
from knowledge.services import dataset_create
from providers.models import Model, ModelKind, ProviderCredential, ProviderKind
from tenants.context import tenant_context
from tenants.models import ApiKey, AuditLog
from tenants.roles import Role
from workflows.services import spec_of, workflow_update

from .logdata import CHAT_EXPORT, agent_turn, make_conversation, make_message, rate

pytestmark = pytest.mark.django_db

APPS = "/admin/apps/app/"
CONVERSATIONS = "/admin/apps/conversation/"
MESSAGES = "/admin/apps/message/"
OFFLINE = "offline/weft-offline-chat"


# --- Helpers (the management API tests use them too) ---------------------------------------


def text_of(response) -> str:
    return response.content.decode()


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def fresh(row):
    return type(row).dangerously_unscoped.get(pk=row.pk)


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
        assert response.status_code == 200, url
    return len(queries)


def settings_form(client, app: App, **changes: Any) -> dict[str, Any]:
    """The settings page's form as the browser would post it unchanged, with `changes` over
    it (False unticks a box; `rows` replaces the input form's rows)."""
    page = client.get(f"{APPS}{app.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data: dict[str, Any] = {"_continue": "Save"}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    rows = changes.pop("rows", None)
    variables = form.variables if hasattr(form, "variables") else None
    if variables is not None:
        if rows is None:
            rows = [
                {name: row[name].value() for name in row.fields if name != "DELETE"}
                for row in variables.forms
                if row.initial
            ]
        data.update(
            {
                "variables-TOTAL_FORMS": str(len(rows)),
                "variables-INITIAL_FORMS": str(variables.initial_form_count()),
                "variables-MIN_NUM_FORMS": "0",
                "variables-MAX_NUM_FORMS": "1000",
            }
        )
        for index, row in enumerate(rows):
            for name, value in row.items():
                if value in (None, False):
                    continue
                data[f"variables-{index}-{name}"] = "on" if value is True else value
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        elif value is True:
            data[name] = "on"
        else:
            data[name] = value
    return data


def save_settings(client, app: App, **changes: Any):
    return client.post(f"{APPS}{app.pk}/change/", settings_form(client, app, **changes))


@pytest.fixture
def builder_user(tenant, make_member):
    return make_member(tenant, Role.BUILDER)


@pytest.fixture
def builder(console, builder_user, tenant):
    return console(builder_user, tenant)


@pytest.fixture
def operator_user(tenant, make_member):
    return make_member(tenant, Role.OPERATOR)


@pytest.fixture
def operator(console, operator_user, tenant):
    return console(operator_user, tenant)


@pytest.fixture
def chat(tenant, make_app):
    return make_app(tenant, App.Mode.CHAT, name="Helper")


# --- List and access ------------------------------------------------------------------------


def test_list_shows_mode_published_version_api_and_activity(builder, tenant, make_app, chat):
    conversation = make_conversation(chat)
    make_message(chat, conversation)
    make_message(chat, conversation, ago=dt.timedelta(days=2))
    make_conversation(chat, user="bob")
    one = count_queries(builder, APPS)
    make_app(tenant, App.Mode.WORKFLOW, name="Flow", publish=False)
    make_app(tenant, App.Mode.AGENT_CHAT, name="Agent")
    app_update(tenant=tenant, app=make_app(tenant, App.Mode.COMPLETION), enable_api=False)
    assert count_queries(builder, APPS) == one  # no query per row
    page = builder.get(APPS)
    rows = {app.name: app for app in page.context["cl"].result_list}
    assert (rows["Helper"].conversation_total, rows["Helper"].messages_24h) == (2, 1)
    assert (rows["Flow"].conversation_total, rows["Flow"].messages_24h) == (0, 0)
    body = text_of(page)
    assert "v1" in body and "not yet" in body and ">off<" in body
    assert f"{CONVERSATIONS}?app={chat.pk}" in body
    assert f"{APPS}{chat.pk}/keys/" in body and f"{APPS}import/" in body


def test_operator_sees_everything_and_changes_nothing(operator, tenant, chat):
    conversation = make_conversation(chat)
    message = make_message(chat, conversation)
    base = f"{APPS}{chat.pk}"
    for url in (
        APPS,
        f"{base}/change/",
        f"{base}/compare/",
        f"{base}/keys/",
        f"{base}/export/",
        f"{base}/export/?version=1",
        CONVERSATIONS,
        f"{CONVERSATIONS}{conversation.pk}/change/",
        MESSAGES,
        f"{MESSAGES}{message.pk}/change/",
    ):
        assert operator.get(url).status_code == 200, url
    page = text_of(operator.get(f"{base}/change/"))
    assert 'name="pre_prompt"' not in page and 'id="weft-publish"' not in page
    assert 'id="weft-settings"' in page  # the settings, read-only
    assert "Create a key" not in text_of(operator.get(f"{base}/keys/"))
    key = ApiKey.dangerously_unscoped.create(
        tenant=tenant, kind=ApiKey.Kind.APP, app_id=chat.pk, prefix="app-x", key_hash="x" * 64
    )
    refused = [
        ("get", f"{APPS}add/"),
        ("post", f"{APPS}add/"),
        ("get", f"{APPS}import/"),
        ("get", f"{base}/import/"),
        ("get", f"{base}/export/?secrets=1"),
        ("post", f"{base}/publish/"),
        ("get", f"{base}/rollback/1/"),
        ("post", f"{base}/rollback/1/"),
        ("get", f"{base}/delete/"),
        ("post", f"{base}/change/"),
        ("post", f"{base}/keys/"),
        ("post", f"{base}/keys/{key.pk}/revoke/"),
    ]
    for method, url in refused:
        assert getattr(operator, method)(url).status_code == 403, (method, url)
    assert AppVersion.dangerously_unscoped.filter(app=chat).count() == 1
    assert fresh(key).revoked_at is None
    assert not ApiKey.dangerously_unscoped.filter(app_id=chat.pk).exclude(pk=key.pk).exists()


def test_a_member_has_no_console_access(console, make_member, tenant, chat):
    member = console(make_member(tenant, Role.MEMBER), tenant)
    conversation = make_conversation(chat)
    for url in (
        APPS,
        f"{APPS}{chat.pk}/change/",
        f"{APPS}{chat.pk}/keys/",
        f"{APPS}{chat.pk}/compare/",
        CONVERSATIONS,
        f"{CONVERSATIONS}{conversation.pk}/change/",
    ):
        response = member.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_another_tenants_apps_and_logs_answer_404(builder, other_tenant, make_app):
    foreign = make_app(other_tenant, App.Mode.CHAT, name="Globex helper")
    conversation = make_conversation(foreign)
    message = make_message(foreign, conversation)
    key = ApiKey.dangerously_unscoped.create(
        tenant=other_tenant,
        kind=ApiKey.Kind.APP,
        app_id=foreign.pk,
        prefix="app-y",
        key_hash="y" * 64,
    )
    base = f"{APPS}{foreign.pk}"
    for method, url in [
        ("get", f"{base}/change/"),
        ("post", f"{base}/change/"),
        ("get", f"{base}/delete/"),
        ("get", f"{base}/compare/"),
        ("get", f"{base}/export/"),
        ("get", f"{base}/export/?version=1"),
        ("get", f"{base}/import/"),
        ("post", f"{base}/publish/"),
        ("get", f"{base}/rollback/1/"),
        ("get", f"{base}/keys/"),
        ("post", f"{base}/keys/"),
        ("post", f"{base}/keys/{key.pk}/revoke/"),
        ("get", f"{CONVERSATIONS}{conversation.pk}/change/"),
        ("get", f"{MESSAGES}{message.pk}/change/"),
        ("post", f"{MESSAGES}{message.pk}/rate/"),
    ]:
        assert getattr(builder, method)(url, {"rating": "like"}).status_code == 404, (method, url)
    assert "Globex helper" not in text_of(builder.get(APPS))
    assert str(conversation.pk) not in text_of(builder.get(CONVERSATIONS))
    assert fresh(key).revoked_at is None
    assert not MessageFeedback.dangerously_unscoped.filter(message=message).exists()
    assert AppVersion.dangerously_unscoped.filter(app=foreign).count() == 1


def test_missing_and_malformed_ids_answer_404(builder, chat):
    for url in (
        f"{APPS}not-an-id/change/",
        f"{APPS}{chat.pk}/rollback/7/",
        f"{APPS}{chat.pk}/export/?version=7",
        f"{CONVERSATIONS}not-an-id/change/",
        f"{MESSAGES}00000000-0000-0000-0000-000000000000/change/",
    ):
        assert builder.get(url).status_code == 404, url
    compared = builder.get(f"{APPS}{chat.pk}/compare/?old=7&new=draft")
    assert compared.context["form"].errors["old"] and "diff" not in compared.context


def test_nonsense_requests_are_refused_not_crashed(builder, chat):
    base = f"{APPS}{chat.pk}"
    assert builder.get(f"{base}/rollback/99999999999999999999/").status_code == 404
    assert builder.get(f"{base}/export/?version=99999999999999999999").status_code == 404
    assert builder.get(f"{base}/export/?version=v1").status_code == 404
    assert builder.get(f"{base}/publish/").status_code == 405
    assert builder.get(f"{base}/compare/?old=draft&new=nope").context["form"].errors["new"]
    for query in ("app=nope", "end_user=nope", "since=forever", "rating=love", "status=odd"):
        assert builder.get(f"{CONVERSATIONS}?{query}").status_code == 200, query
        assert builder.get(f"{MESSAGES}?{query}").status_code == 200, query
    bare = builder.post(f"{base}/change/", {})  # no form at all, not even the input rows'
    assert bare.status_code == 200 and bare.context["adminform"].form.errors
    assert fresh(chat).config == chat.config


def test_superuser_opens_another_tenants_app_and_conversation(
    console, superuser, other_tenant, make_app
):
    foreign = make_app(other_tenant, App.Mode.CHAT, name="Globex helper")
    conversation = make_conversation(foreign)
    make_message(foreign, conversation)
    admin = console(superuser)
    assert "Globex helper" in text_of(admin.get(APPS))
    assert admin.get(f"{APPS}{foreign.pk}/change/").status_code == 200
    assert admin.get(f"{APPS}{foreign.pk}/keys/").status_code == 200
    assert admin.get(f"{CONVERSATIONS}{conversation.pk}/change/").status_code == 200


# --- Create and settings --------------------------------------------------------------------


def test_builder_creates_an_app_and_lands_on_its_settings(builder, builder_user, tenant):
    response = builder.post(
        f"{APPS}add/",
        {
            "mode": "agent-chat",
            "name": " Concierge ",
            "description": "Books rooms",
            "icon": "🛎",
            "icon_background": "#FFFFFF",
        },
    )
    with tenant_context(tenant):
        app = App.objects.get(name="Concierge")
    assert response.status_code == 302 and response["Location"] == f"{APPS}{app.pk}/change/"
    assert (app.mode, app.icon, app.created_by) == ("agent-chat", "🛎", builder_user)
    assert app.config["model"]["name"] == "weft-offline-chat" and app.published_version is None
    page = builder.get(response["Location"])
    assert "nothing is published yet" in text_of(page)
    assert {"agent_tools", "memory_enabled", "pre_prompt"} <= set(
        page.context["adminform"].form.fields
    )
    taken = builder.post(f"{APPS}add/", {"mode": "chat", "name": "Concierge"})
    assert taken.status_code == 200
    assert "already exists" in taken.context["adminform"].form.errors["name"][0]
    unknown = builder.post(f"{APPS}add/", {"mode": "robot", "name": "X"})
    assert unknown.status_code == 200 and unknown.context["adminform"].form.errors["mode"]


def test_settings_of_a_chat_app_are_saved_through_the_service(builder, builder_user, tenant, chat):
    docs = dataset_create(tenant=tenant, name="Handbook")
    data = settings_form(
        builder,
        chat,
        temperature="0.3",
        max_tokens="512",
        pre_prompt="You answer questions about {{topic}}.",
        opening_statement="Hello! Ask me about leave.",
        suggested_questions="How many days?\n\nCan I carry days over?",
        suggested_questions_after_answer=True,
        datasets=[str(docs.pk)],
        retrieval_model="single",
        top_k="6",
        score_threshold_enabled=True,
        score_threshold="0.5",
        memory_enabled=True,
        memory_size="4",
        moderation_enabled=True,
        moderation_keywords="secret\nconfidential",
        moderation_inputs=True,
        moderation_inputs_response="I cannot talk about that.",
        file_upload_enabled=True,
        file_types=["image", "custom"],
        file_extensions="pdf, .MD",
        file_methods=["local_file"],
        file_limit="2",
        enable_site=False,
        max_active_requests="5",
        api_rpm="120",
        end_user_rpm="10",
        rows=[
            {
                "type": "select",
                "variable": "topic",
                "label": "Topic",
                "required": True,
                "options": "Leave\nEquipment",
            },
            {"type": "paragraph", "variable": "details", "label": "", "max_length": "500"},
            {"type": "text-input", "variable": "", "label": ""},  # an empty row: ignored
        ],
    )
    response = builder.post(f"{APPS}{chat.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    saved = fresh(chat)
    config = saved.config
    assert config["model"]["name"] == "weft-offline-chat"
    assert config["model"]["provider"] == "weft"  # the same model: its spelling is kept
    assert config["model"]["completion_params"] == {"temperature": 0.3, "max_tokens": 512}
    assert config["pre_prompt"] == "You answer questions about {{topic}}."
    assert [next(iter(item)) for item in config["user_input_form"]] == ["select", "paragraph"]
    fields = {kind: field for item in config["user_input_form"] for kind, field in item.items()}
    assert fields["select"]["options"] == ["Leave", "Equipment"] and fields["select"]["required"]
    assert fields["paragraph"]["max_length"] == 500 and fields["paragraph"]["label"] == "details"
    assert config["opening_statement"] == "Hello! Ask me about leave."
    assert config["suggested_questions"] == ["How many days?", "Can I carry days over?"]
    assert config["suggested_questions_after_answer"]["enabled"] is True
    retrieval = config["dataset_configs"]
    assert retrieval["datasets"]["datasets"] == [{"dataset": {"enabled": True, "id": str(docs.pk)}}]
    assert (retrieval["retrieval_model"], retrieval["top_k"]) == ("single", 6)
    assert (retrieval["score_threshold_enabled"], retrieval["score_threshold"]) == (True, 0.5)
    assert config["memory"]["window"] == {"enabled": True, "size": 4}
    moderation = config["sensitive_word_avoidance"]
    assert moderation["enabled"] and moderation["type"] == "keywords"
    assert moderation["config"]["keywords"] == "secret\nconfidential"
    assert moderation["config"]["inputs_config"] == {
        "enabled": True,
        "preset_response": "I cannot talk about that.",
    }
    assert moderation["config"]["outputs_config"]["enabled"] is False
    upload = config["file_upload"]
    assert upload["enabled"] and upload["allowed_file_types"] == ["image", "custom"]
    assert upload["allowed_file_extensions"] == [".pdf", ".md"]
    assert (upload["allowed_file_upload_methods"], upload["number_limits"]) == (["local_file"], 2)
    assert (saved.enable_site, saved.max_active_requests, saved.api_rpm, saved.end_user_rpm) == (
        False,
        5,
        120,
        10,
    )
    assert saved.updated_by == builder_user
    assert fresh(chat.published_version).config["pre_prompt"] == ""  # the draft only
    row = AuditLog.dangerously_unscoped.filter(
        object_type="apps.app", object_id=str(chat.pk), action="update"
    ).latest("id")
    assert row.actor == builder_user and "config" in row.changes

    again = builder.get(f"{APPS}{chat.pk}/change/")  # the page shows what was saved
    form = again.context["adminform"].form
    assert form["top_k"].value() == 6 and form["datasets"].value() == [str(docs.pk)]
    assert [row.initial["variable"] for row in form.variables.forms if row.initial] == [
        "topic",
        "details",
    ]


def test_a_save_keeps_what_the_page_does_not_show(builder, tenant, chat):
    imported = {
        **chat.config,
        "more_like_this": {"enabled": True},
        "external_data_tools": [{"type": "api", "variable": "weather"}],
        "model": {**chat.config["model"], "completion_params": {"stop": ["END"], "top_p": 0.9}},
        "user_input_form": [
            {"text-input": {"variable": "name", "label": "Name", "hint": "Your first name"}}
        ],
    }
    app_update(tenant=tenant, app=chat, config=imported)
    response = save_settings(builder, chat, pre_prompt="Greet {{name}}.")
    assert response.status_code == 302
    config = fresh(chat).config
    assert config["more_like_this"] == {"enabled": True}
    assert config["external_data_tools"] == [{"type": "api", "variable": "weather"}]
    assert config["model"]["completion_params"] == {"stop": ["END"], "top_p": 0.9}
    assert config["user_input_form"][0]["text-input"]["hint"] == "Your first name"
    assert config["pre_prompt"] == "Greet {{name}}."


def test_settings_that_do_not_read_or_that_weft_does_not_run(builder, tenant, chat):
    api_moderation = {"enabled": True, "type": "api", "config": {"api_based_extension_id": "x"}}
    app_update(
        tenant=tenant, app=chat, config={**chat.config, "sensitive_word_avoidance": api_moderation}
    )
    page = builder.get(f"{APPS}{chat.pk}/change/")
    assert "“api” moderation, which Weft does not run" in text_of(page)
    assert save_settings(builder, chat, pre_prompt="kept").status_code == 302
    assert fresh(chat).config["sensitive_word_avoidance"] == api_moderation

    App.dangerously_unscoped.filter(pk=chat.pk).update(config={"top": "nope", "memory": 5})
    broken = builder.get(f"{APPS}{chat.pk}/change/")
    assert 'id="weft-settings-error"' in text_of(broken)
    assert save_settings(builder, chat, pre_prompt="Fresh start").status_code == 302
    saved = fresh(chat).config
    assert saved["pre_prompt"] == "Fresh start" and saved["memory"]["window"]["size"] == 10
    assert "top" not in saved


def test_choosing_another_model_and_deleting_an_input(builder, tenant, chat):
    own = Model.dangerously_unscoped.create(
        tenant=tenant, provider=ProviderKind.OPENAI, name="house-model", kind=ModelKind.CHAT
    )
    app_update(
        tenant=tenant,
        app=chat,
        config={**chat.config, "user_input_form": [{"text-input": {"variable": "name"}}]},
    )
    page = builder.get(f"{APPS}{chat.pk}/change/")
    choices = dict(page.context["adminform"].form.fields["model"].choices)
    assert OFFLINE in choices and "openai/house-model" not in choices  # no credential yet
    ProviderCredential.dangerously_unscoped.create(tenant=tenant, kind="openai", name="OpenAI")
    row = {"type": "text-input", "variable": "name", "label": "name", "DELETE": True}
    response = save_settings(builder, chat, model="openai/house-model", rows=[row])
    assert response.status_code == 302
    config = fresh(chat).config
    assert (config["model"]["provider"], config["model"]["name"]) == ("openai", own.name)
    assert config["user_input_form"] == []


def test_a_model_the_tenant_cannot_call_stays_until_changed(builder, tenant, chat):
    model = {"provider": "openai", "name": "gpt-4o", "mode": "chat", "completion_params": {}}
    app_update(tenant=tenant, app=chat, config={**chat.config, "model": model})
    page = builder.get(f"{APPS}{chat.pk}/change/")
    form = page.context["adminform"].form
    assert form["model"].value() == "openai/gpt-4o"
    assert "not set up here" in dict(form.fields["model"].choices)["openai/gpt-4o"]
    assert save_settings(builder, chat, pre_prompt="x").status_code == 302
    assert fresh(chat).config["model"]["name"] == "gpt-4o"


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"rows": [{"type": "select", "variable": "topic"}]}, None, "input form has mistakes"),
        ({"rows": [{"type": "text-input", "variable": "1st"}]}, None, "input form has mistakes"),
        (
            {
                "rows": [
                    {"type": "text-input", "variable": "a"},
                    {"type": "number", "variable": "a"},
                ]
            },
            None,
            "input form has mistakes",
        ),
        ({"moderation_enabled": True, "moderation_keywords": ""}, "moderation_keywords", "keyword"),
        ({"moderation_enabled": True, "moderation_keywords": "x"}, "moderation_inputs", "Check"),
        ({"moderation_outputs": True}, "moderation_outputs_response", "Say what"),
        ({"score_threshold_enabled": True, "score_threshold": ""}, "score_threshold", "threshold"),
        ({"top_k": "0"}, "top_k", "greater than or equal to 1"),
        ({"max_active_requests": "-1"}, "max_active_requests", "greater than or equal to 0"),
        ({"temperature": "hot"}, "temperature", "Enter a number"),
        ({"model": "openai/gpt-9"}, "model", "Select a valid choice"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_bad_settings_are_refused_readably(builder, chat, changes, field, fragment):
    before = fresh(chat).config
    response = save_settings(builder, chat, **changes)
    assert response.status_code == 200
    form = response.context["adminform"].form
    errors = form.errors[field] if field else form.non_field_errors()
    assert any(fragment in error for error in errors), form.errors
    assert fresh(chat).config == before
    assert "Please correct the error" in text_of(response)


def test_the_input_rows_show_their_own_errors(builder, chat):
    response = save_settings(builder, chat, rows=[{"type": "select", "variable": "topic"}])
    variables = response.context["adminform"].form.variables
    assert "A select needs at least one option." in variables.forms[0].errors["options"]
    assert "A select needs at least one option." in text_of(response)


def test_agent_app_tools_and_strategy(builder, tenant, make_app):
    agent = make_app(tenant, App.Mode.AGENT_CHAT, name="Agent")
    page = builder.get(f"{APPS}{agent.pk}/change/")
    tools = dict(page.context["adminform"].form.fields["agent_tools"].choices)
    assert "time/current_time" in tools
    response = save_settings(
        builder,
        agent,
        agent_strategy="react",
        agent_max_iteration="3",
        agent_tools=["time/current_time"],
        agent_tool_settings='{"time/current_time": {"timezone": "Asia/Tokyo"}}',
    )
    assert response.status_code == 302
    mode = fresh(agent).config["agent_mode"]
    assert (mode["enabled"], mode["strategy"], mode["max_iteration"]) == (True, "react", 3)
    assert mode["tools"] == [
        {
            "provider_type": "builtin",
            "provider_id": "time",
            "tool_name": "current_time",
            "enabled": True,
            "tool_parameters": {"timezone": "Asia/Tokyo"},
        }
    ]
    bad = save_settings(builder, agent, agent_tool_settings="{nope")
    assert (
        "Malformed JSON at line 1" in bad.context["adminform"].form.errors["agent_tool_settings"][0]
    )


def test_completion_and_chat_apps_show_the_fields_of_their_mode(builder, tenant, chat, make_app):
    completion = make_app(tenant, App.Mode.COMPLETION, name="Writer")
    app_update(
        tenant=tenant,
        app=completion,
        config={**completion.config, "user_input_form": [{"paragraph": {"variable": "topic"}}]},
    )
    fields = set(builder.get(f"{APPS}{completion.pk}/change/").context["adminform"].form.fields)
    assert "dataset_query_variable" in fields
    assert not fields & {"memory_enabled", "opening_statement", "agent_tools"}
    chat_fields = set(builder.get(f"{APPS}{chat.pk}/change/").context["adminform"].form.fields)
    assert {"memory_enabled", "opening_statement"} <= chat_fields
    assert not chat_fields & {"agent_tools", "dataset_query_variable"}
    assert save_settings(builder, completion, dataset_query_variable="topic").status_code == 302
    assert fresh(completion).config["dataset_query_variable"] == "topic"


def test_a_workflow_backed_app_links_to_its_editor_and_saves_features(builder, tenant, make_app):
    chatflow = make_app(tenant, App.Mode.CHATFLOW, name="Flow chat")
    page = builder.get(f"{APPS}{chatflow.pk}/change/")
    body = text_of(page)
    assert f"/admin/workflows/workflow/{chatflow.workflow_id}/change/" in body
    fields = set(page.context["adminform"].form.fields)
    assert {"opening_statement", "moderation_enabled", "file_upload_enabled"} <= fields
    assert not fields & {"pre_prompt", "model", "datasets"}
    response = save_settings(
        builder,
        chatflow,
        opening_statement="Hi from the flow.",
        moderation_enabled=True,
        moderation_keywords="secret",
        moderation_outputs=True,
        moderation_outputs_response="[removed]",
    )
    assert response.status_code == 302
    features = spec_of(fresh(chatflow).workflow).features
    assert features["opening_statement"] == "Hi from the flow."
    assert features["sensitive_word_avoidance"]["config"]["outputs_config"]["enabled"] is True
    workflow = make_app(tenant, App.Mode.WORKFLOW, name="Batch")
    workflow_fields = set(
        builder.get(f"{APPS}{workflow.pk}/change/").context["adminform"].form.fields
    )
    assert "file_upload_enabled" in workflow_fields
    assert not workflow_fields & {"opening_statement", "moderation_enabled"}


def test_builder_deletes_an_app_with_its_logs(builder, tenant, chat):
    make_message(chat, make_conversation(chat))
    confirm = builder.get(f"{APPS}{chat.pk}/delete/")
    assert confirm.status_code == 200 and "<li>Messages: 1</li>" in text_of(confirm)
    response = builder.post(f"{APPS}{chat.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not App.dangerously_unscoped.filter(pk=chat.pk).exists()
    assert not Message.dangerously_unscoped.filter(app_id=chat.pk).exists()


# --- Versions -------------------------------------------------------------------------------


def test_publish_compare_and_rollback_of_a_chat_app(builder, builder_user, tenant, chat):
    base = f"{APPS}{chat.pk}"
    again = builder.post(f"{base}/publish/", {}, follow=True)
    assert "nothing new to publish" in " ".join(page_messages(again))
    save_settings(builder, chat, pre_prompt="Be brief.")
    compared = builder.get(f"{base}/compare/")  # the latest version against the draft
    assert [(c.path, c.old, c.new) for c in compared.context["diff"]["config"]] == [
        ("pre_prompt", '""', '"Be brief."')
    ]
    assert "pre_prompt" in text_of(compared)
    published = builder.post(f"{base}/publish/", {"note": "brief"}, follow=True)
    assert "Published version 2" in " ".join(page_messages(published))
    assert fresh(chat).published_version.number == 2
    same = builder.get(f"{base}/compare/?old=2&new=draft")
    assert same.context["diff"]["empty"] and "No changes" in text_of(same)
    backwards = builder.get(f"{base}/compare/?old=2&new=1")  # read forward in time
    assert backwards.context["diff"]["config"][0].new == '"Be brief."'
    assert (backwards.context["old_name"], backwards.context["new_name"]) == (
        "version 1",
        "version 2",
    )

    confirm = builder.get(f"{base}/rollback/1/")
    assert confirm.status_code == 200
    assert [(c.path, c.new) for c in confirm.context["diff"]["config"]] == [("pre_prompt", '""')]
    assert 'name="note"' in text_of(confirm)
    rolled = builder.post(f"{base}/rollback/1/", {"note": "too terse"}, follow=True)
    assert "version 3 is a copy of version 1" in " ".join(page_messages(rolled))
    saved = fresh(chat)
    assert saved.published_version.number == 3 and saved.config["pre_prompt"] == ""
    assert saved.published_version.note == "too terse"
    assert saved.published_version.restored_from == 1
    assert saved.published_version.created_by == builder_user
    assert "copy of v1" in text_of(rolled) and "(running)" in text_of(rolled)


def test_a_workflow_app_compares_its_workflows(builder, tenant, make_app):
    app = make_app(tenant, App.Mode.WORKFLOW, name="Flow")
    spec = spec_of(app.workflow)
    graph = spec.graph.model_dump(mode="json", exclude_unset=True)
    for node in graph["nodes"]:
        if node["id"] == "end":
            node["data"]["outputs"][0]["variable"] = "answer"
    workflow_update(
        tenant=tenant,
        workflow=app.workflow,
        spec=spec.model_copy(update={"graph": type(spec.graph).model_validate(graph)}),
    )
    compared = builder.get(f"{APPS}{app.pk}/compare/")
    diff = compared.context["diff"]
    assert diff["kind"] == "workflow"
    ((node, changes),) = diff["nodes_changed"]
    assert node.node_id == "end" and changes[0].new == '"answer"'
    assert 'id="weft-diff"' in text_of(compared)
    published = builder.post(f"{APPS}{app.pk}/publish/", {"note": "renamed"}, follow=True)
    assert "Published version 2" in " ".join(page_messages(published))
    version = fresh(app).published_version
    assert version.workflow_version is not None and version.workflow_version.number == 2


def test_publishing_a_broken_workflow_app_says_why(builder, tenant, make_app):
    app = make_app(tenant, App.Mode.WORKFLOW, name="Broken", publish=False)
    spec = spec_of(app.workflow)
    graph = spec.graph.model_dump(mode="json", exclude_unset=True)
    graph["edges"] = []
    workflow_update(
        tenant=tenant,
        workflow=app.workflow,
        spec=spec.model_copy(update={"graph": type(spec.graph).model_validate(graph)}),
    )
    response = builder.post(f"{APPS}{app.pk}/publish/", {"note": "x"}, follow=True)
    assert response.status_code == 200
    assert "Not published: The workflow has errors" in " ".join(page_messages(response))
    assert not AppVersion.dangerously_unscoped.filter(app=app).exists()


# --- Import and export ----------------------------------------------------------------------


def test_import_a_chat_app_shows_the_report(builder, builder_user, tenant):
    response = builder.post(f"{APPS}import/", {"text": CHAT_EXPORT})
    assert response.status_code == 200, response.content
    with tenant_context(tenant):
        imported = App.objects.get(name="Handbook helper")
    assert imported.created_by == builder_user and imported.mode == "chat"
    assert imported.published_version is not None  # it answers at once
    codes = [item.code for items in dict(response.context["groups"]).values() for item in items]
    assert codes  # the OpenAI model the tenant lacks is mapped, and said so
    body = text_of(response)
    assert 'id="weft-import-report"' in body and "gpt-4o-mini" in body
    assert f"{APPS}{imported.pk}/change/" in body and "the app answers now" in body


def test_import_replaces_a_draft_and_refuses_bad_files_readably(builder, tenant, chat):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("helper.yml", CHAT_EXPORT.encode(), "application/x-yaml")
    response = builder.post(f"{APPS}{chat.pk}/import/", {"file": upload})
    assert response.status_code == 200 and "report" in response.context
    saved = fresh(chat)
    assert saved.name == "Helper" and "handbook" in saved.config["pre_prompt"]
    assert saved.published_version.number == 1  # the draft only

    broken = builder.post(f"{APPS}import/", {"text": "app: [unclosed"})
    assert broken.status_code == 200
    (error,) = broken.context["form"].non_field_errors()
    assert "line" in error
    workflow_export = CHAT_EXPORT.replace("mode: chat", "mode: workflow")
    wrong_mode = builder.post(f"{APPS}{chat.pk}/import/", {"text": workflow_export})
    assert "same mode" in wrong_mode.context["form"].non_field_errors()[0]
    neither = builder.post(f"{APPS}import/", {})
    assert neither.context["form"].non_field_errors() == ["Upload a file or paste the DSL."]
    builder.post(f"{APPS}import/", {"text": CHAT_EXPORT, "name": "Twin"})
    taken = builder.post(f"{APPS}import/", {"text": CHAT_EXPORT, "name": "Twin"})
    assert "already exists" in taken.context["form"].errors["name"][0]
    assert App.dangerously_unscoped.filter(tenant=tenant).count() == 2  # Helper and Twin


def test_export_draft_version_and_secrets_after_a_confirmation(builder, tenant, chat):
    save_settings(builder, chat, pre_prompt="Draft prompt")
    base = f"{APPS}{chat.pk}/export/"
    draft = builder.get(base)
    assert draft["Content-Disposition"] == 'attachment; filename="helper-draft.yml"'
    document = yaml.safe_load(draft.content)
    assert document["app"]["name"] == "Helper"
    assert document["model_config"]["pre_prompt"] == "Draft prompt"
    version = builder.get(f"{base}?version=1")
    assert 'filename="helper-v1.yml"' in version["Content-Disposition"]
    assert yaml.safe_load(version.content)["model_config"]["pre_prompt"] == ""
    confirm = builder.get(f"{base}?secrets=1")
    assert confirm.status_code == 200 and "in clear text" in text_of(confirm)
    assert builder.post(f"{base}?secrets=1&version=1").status_code == 200


# --- API keys -------------------------------------------------------------------------------


def test_a_key_is_shown_once_listed_by_prefix_and_revoked(builder, builder_user, tenant, chat):
    url = f"{APPS}{chat.pk}/keys/"
    assert "No keys yet." in text_of(builder.get(url))
    created = builder.post(url, {"name": "Website"})
    assert created.status_code == 200
    raw = created.context["raw_key"]
    assert raw.startswith("app-") and raw in text_of(created)
    assert 'id="weft-copy-key"' in text_of(created)
    assert "no-store" in created["Cache-Control"]
    key = ApiKey.dangerously_unscoped.get(app_id=chat.pk)
    assert (key.kind, key.name, key.created_by, key.tenant_id) == (
        "app",
        "Website",
        builder_user,
        tenant.pk,
    )
    listed = text_of(builder.get(url))
    assert raw not in listed and f"{key.prefix}…" in listed and "never" in listed
    revoked = builder.post(f"{url}{key.pk}/revoke/", follow=True)
    assert f"Revoked {key}." in page_messages(revoked)
    assert fresh(key).revoked_at is not None and "revoked" in text_of(revoked)
    assert builder.get(f"{url}{key.pk}/revoke/").status_code == 405
    other = ApiKey.dangerously_unscoped.create(
        tenant=tenant, kind=ApiKey.Kind.APP, app_id=None, prefix="app-z", key_hash="z" * 64
    )
    assert builder.post(f"{url}{other.pk}/revoke/").status_code == 404  # not this app's
    assert builder.post(f"{url}not-a-key/revoke/").status_code == 404


# --- Logs -----------------------------------------------------------------------------------


def test_conversation_list_filters_and_costs_the_same_for_more_rows(
    operator, tenant, chat, make_app
):
    other = make_app(tenant, App.Mode.AGENT_CHAT, name="Agent")
    alice = make_conversation(chat, "alice")
    liked = make_message(chat, alice)
    rate(liked, "like")
    bob = make_conversation(chat, "bob")
    make_message(chat, bob, status=Message.Status.ERROR, error="model failed")
    old = make_conversation(chat, "carol")
    make_message(chat, old, ago=dt.timedelta(days=3))
    make_conversation(other, "dave")

    def shown(query: str) -> set[str]:
        page = operator.get(f"{CONVERSATIONS}?{query}")
        assert page.status_code == 200, query
        return {c.end_user.session_id for c in page.context["cl"].result_list}

    assert shown(f"app={chat.pk}") == {"alice", "bob", "carol"}
    assert shown("since=24h") == {"alice", "bob", "dave"}
    assert shown("rating=like") == {"alice"}
    assert shown("rating=none") == {"bob", "carol", "dave"}
    assert shown("status=error") == {"bob"}
    assert shown(f"end_user={alice.end_user_id}") == {"alice"}
    assert shown("q=carol") == {"carol"}
    one = count_queries(operator, CONVERSATIONS)
    for name in ("erin", "frank", "grace"):
        make_message(chat, make_conversation(chat, name))
    assert count_queries(operator, CONVERSATIONS) == one  # no query per row
    row = next(c for c in operator.get(CONVERSATIONS).context["cl"].result_list if c.pk == alice.pk)
    assert (row.message_total, row.likes, row.dislikes) == (1, 1, 0)


def test_message_list_filters_and_shows_ratings(operator, tenant, chat):
    conversation = make_conversation(chat, "alice")
    liked = make_message(chat, conversation, query="Liked question")
    rate(liked, "like")
    rate(liked, "dislike", source=MessageFeedback.From.ADMIN)
    make_message(chat, conversation, query="Stopped question", status=Message.Status.STOPPED)
    make_message(chat, None, query="Old question", ago=dt.timedelta(days=40))

    def shown(query: str) -> set[str]:
        page = operator.get(f"{MESSAGES}?{query}")
        assert page.status_code == 200, query
        return {m.query for m in page.context["cl"].result_list}

    assert shown("rating=dislike") == {"Liked question"}
    assert shown("status__exact=stopped") == {"Stopped question"}
    assert shown("since=30d") == {"Liked question", "Stopped question"}
    assert shown(f"end_user={conversation.end_user_id}&app={chat.pk}") == {
        "Liked question",
        "Stopped question",
    }
    body = text_of(operator.get(MESSAGES))
    assert "user 👍 · member 👎" in body and "0.0012 USD" in body and "0.40 s" in body
    one = count_queries(operator, MESSAGES)
    for index in range(3):
        rate(make_message(chat, conversation, query=f"More {index}"), "like")
    assert count_queries(operator, MESSAGES) == one


def test_conversation_page_shows_each_turn_in_full(operator, tenant, chat):
    conversation = make_conversation(chat, "alice", inputs={"topic": "Leave"})
    first = make_message(chat, conversation, query="Hi <b>there</b>", answer="Hello!")
    rate(first, "dislike", content="Too short")
    second = agent_turn(chat, conversation)
    failed = make_message(
        chat, conversation, status=Message.Status.ERROR, answer="", error="The model timed out."
    )
    with CaptureQueriesContext(connection) as few:
        page = operator.get(f"{CONVERSATIONS}{conversation.pk}/change/")
    assert page.status_code == 200
    for _ in range(3):
        agent_turn(chat, conversation)
    with CaptureQueriesContext(connection) as more:
        operator.get(f"{CONVERSATIONS}{conversation.pk}/change/")
    assert len(more) == len(few)  # no query per turn
    turns = page.context["turns"]
    assert [t["message"].pk for t in turns] == [first.pk, second.pk, failed.pk]
    body = text_of(page)
    assert escape("Hi <b>there</b>") in body and "<b>there</b>" not in body
    assert "👎 dislike" in body and "Too short" in body
    assert [(t.position, t.tool) for t in turns[1]["thoughts"]] == [(1, "current_time"), (2, "")]
    assert escape('{"timezone": "Asia/Tokyo"}') in body and "09:00" in body
    assert [s["title"] for s in turns[1]["sources"]] == [
        "Handbook · leave.md",
        "Handbook · time.md",
    ]
    assert "score 0.873" in body and "Staff get 25 days of leave." in body
    assert "12 + 30 = 42 tokens" in body and "0.0012 USD" in body
    assert "latency 1.250 s" in body and "first token 0.400 s" in body
    assert "The model timed out." in body and 'class="weft-turn weft-status-error"' in body
    assert "&quot;topic&quot;: &quot;Leave&quot;" in body
    assert f'action="{MESSAGES}{first.pk}/rate/"' in body


def test_a_completion_message_has_its_own_page(operator, tenant, make_app):
    writer = make_app(tenant, App.Mode.COMPLETION, name="Writer")
    message = make_message(writer, None, query="Write a haiku", inputs={"topic": "autumn"})
    page = operator.get(f"{MESSAGES}{message.pk}/change/")
    assert page.status_code == 200
    body = text_of(page)
    assert "Write a haiku" in body and "autumn" in body and "Whole conversation" not in body


def test_a_member_rates_an_answer_and_clears_it(operator, operator_user, tenant, chat):
    conversation = make_conversation(chat, "alice")
    message = make_message(chat, conversation)
    rate(message, "like")
    url = f"{MESSAGES}{message.pk}/rate/"
    response = operator.post(url, {"rating": "dislike", "content": "Wrong number"})
    assert response.status_code == 302
    assert response["Location"] == f"{CONVERSATIONS}{conversation.pk}/change/#turn-{message.pk}"
    mine = MessageFeedback.dangerously_unscoped.get(message=message, source="admin")
    assert (mine.rating, mine.content, mine.created_by) == (
        "dislike",
        "Wrong number",
        operator_user,
    )
    theirs = MessageFeedback.dangerously_unscoped.get(message=message, source="user")
    assert theirs.rating == "like"  # the end user's own stays
    page = operator.get(response["Location"])
    assert "Rated it dislike." in page_messages(page)
    operator.post(url, {"rating": "like"})
    assert (
        MessageFeedback.dangerously_unscoped.get(message=message, source="admin").rating == "like"
    )
    operator.post(url, {"rating": "clear"})
    assert not MessageFeedback.dangerously_unscoped.filter(message=message, source="admin").exists()
    refused = operator.post(url, {"rating": "love"}, follow=True)
    assert "Choose like, dislike or clear." in page_messages(refused)
    assert operator.get(url).status_code == 405
