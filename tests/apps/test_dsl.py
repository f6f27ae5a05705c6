"""Dify app DSL in and out for every mode: chat, agent-chat and completion exports (written here
as Dify writes them) and every shared workflow and chatflow export become apps that run on the
tenant's models, with a report of what was mapped or left out; exports round-trip; bad files
are refused with nothing written."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from asgiref.sync import async_to_sync

from apps.dsl import app_export, app_import
from apps.models import App, AppVersion
from apps.services.apps import app_update, runnable
from knowledge.services import dataset_create
from providers.models import ProviderCredential, ProviderKind
from tenants.context import tenant_context
from tenants.exceptions import Conflict, InvalidInput, NotFound
from workflows.dsl import (
    CURRENT_DSL_VERSION,
    AgentData,
    KnowledgeRetrievalData,
    ToolData,
    load_dsl,
    model_refs,
)
from workflows.models import Workflow
from workflows.runner import run_create, run_execute
from workflows.services.definitions import spec_of
from workflows.services.dsl_io import DslInvalid

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "dify-dsl"
OFFLINE = ("offline", "weft-offline-chat")

# A chat app as Dify 1.x exports it (version 0.1.5): a plugin dependency, an OpenAI model, a
# select input, knowledge from two datasets (the first is replaced by the test with one the
# tenant has), and Dify's file upload block.
CHAT_DSL = """\
app:
  description: Answers questions about the staff handbook.
  icon: 📘
  icon_background: '#E0F2FE'
  mode: chat
  name: Handbook helper
  use_icon_as_answer_icon: false
dependencies:
- current_identifier: null
  type: marketplace
  value:
    marketplace_plugin_unique_identifier: langgenius/openai:0.0.26@c1e643ac6a7732f6333a783320b4d3026fa5e31d8e7026375b98d44418d33f26
kind: app
model_config:
  agent_mode:
    enabled: false
    max_iteration: 5
    strategy: function_call
    tools: []
  annotation_reply:
    enabled: false
  chat_prompt_config: {}
  completion_prompt_config: {}
  dataset_configs:
    datasets:
      datasets:
      - dataset:
          enabled: true
          id: DATASET_ID
      - dataset:
          enabled: true
          id: 3f1c9a64-5d1e-4b8a-9f57-0c2d7e8b1a90
    reranking_enable: false
    retrieval_model: multiple
    top_k: 4
  dataset_query_variable: ''
  external_data_tools: []
  file_upload:
    allowed_file_extensions:
    - .JPG
    - .PNG
    allowed_file_types: []
    allowed_file_upload_methods:
    - remote_url
    - local_file
    enabled: false
    image:
      detail: high
      enabled: false
      number_limits: 3
      transfer_methods:
      - remote_url
      - local_file
    number_limits: 3
  model:
    completion_params:
      stop: []
      temperature: 0.2
    mode: chat
    name: gpt-4o-mini
    provider: langgenius/openai/openai
  more_like_this:
    enabled: false
  opening_statement: Hello! Ask me anything about the handbook.
  pre_prompt: You answer questions about {{topic}} from the staff handbook.
  prompt_type: simple
  retriever_resource:
    enabled: true
  sensitive_word_avoidance:
    configs: []
    enabled: false
    type: ''
  speech_to_text:
    enabled: false
  suggested_questions:
  - How many days of leave do I get?
  suggested_questions_after_answer:
    enabled: true
  text_to_speech:
    enabled: false
    language: ''
    voice: ''
  user_input_form:
  - select:
      default: ''
      label: Topic
      options:
      - Leave
      - Equipment
      required: true
      variable: topic
version: 0.1.5
"""  # noqa: E501 - Dify's plugin identifiers are that long

# An agent app: a tool Weft has (Dify 1.x plugin id), a marketplace tool and an API tool it
# has not, and one tool already disabled.
AGENT_DSL = """\
app:
  description: ''
  icon: 🕰️
  icon_background: '#FFEAD5'
  icon_type: emoji
  mode: agent-chat
  name: Clock agent
  use_icon_as_answer_icon: true
kind: app
model_config:
  agent_mode:
    enabled: true
    max_iteration: 5
    prompt: null
    strategy: function_call
    tools:
    - enabled: true
      isDeleted: false
      notAuthor: false
      provider_id: langgenius/time/time
      provider_name: langgenius/time/time
      provider_type: builtin
      tool_label: Current Time
      tool_name: current_time
      tool_parameters:
        format: '%Y-%m-%d %H:%M:%S'
        timezone: Europe/Berlin
    - enabled: true
      isDeleted: false
      notAuthor: false
      provider_id: langgenius/google/google
      provider_name: langgenius/google/google
      provider_type: builtin
      tool_label: GoogleSearch
      tool_name: google_search
      tool_parameters:
        query: ''
    - credential_id: 9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d
      enabled: true
      provider_id: 6d8e2b1a-7c3f-4e5d-9a0b-1c2d3e4f5a6b
      provider_name: weather
      provider_type: api
      tool_label: getWeather
      tool_name: getWeather
      tool_parameters: {}
    - enabled: false
      provider_id: wikipedia
      provider_type: builtin
      tool_name: wikipedia_search
      tool_parameters: {}
  annotation_reply:
    enabled: false
  chat_prompt_config: {}
  completion_prompt_config: {}
  dataset_configs:
    datasets:
      datasets: []
    retrieval_model: multiple
  dataset_query_variable: ''
  external_data_tools: []
  file_upload:
    image:
      detail: high
      enabled: false
      number_limits: 3
      transfer_methods:
      - remote_url
      - local_file
  model:
    completion_params: {}
    mode: chat
    name: claude-3-5-sonnet-20241022
    provider: langgenius/anthropic/anthropic
  more_like_this:
    enabled: false
  opening_statement: ''
  pre_prompt: Tell the time in the city the user names.
  prompt_type: simple
  retriever_resource:
    enabled: true
  sensitive_word_avoidance:
    enabled: false
  speech_to_text:
    enabled: false
  suggested_questions: []
  suggested_questions_after_answer:
    enabled: false
  text_to_speech:
    enabled: false
  user_input_form: []
version: 0.3.0
"""

# A completion app from Dify 0.x (version 0.1.2, provider names before plugins): keyword
# moderation, an input backed by an external data tool (which Weft has not), more like this.
COMPLETION_DSL = """\
app:
  icon: 🌐
  icon_background: '#D1FADF'
  mode: completion
  name: Translator
kind: app
model_config:
  agent_mode:
    enabled: false
    tools: []
  chat_prompt_config: {}
  completion_prompt_config: {}
  dataset_configs:
    datasets:
      datasets: []
    retrieval_model: single
  dataset_query_variable: ''
  external_data_tools:
  - config:
      api_based_extension_id: 4d5e6f70-8192-4a3b-bc4d-5e6f70819203
    enabled: true
    label: Glossary
    type: api
    variable: glossary
  file_upload:
    image:
      detail: high
      enabled: true
      number_limits: 2
      transfer_methods:
      - local_file
  model:
    completion_params:
      max_tokens: 512
    mode: chat
    name: weft-offline-chat
    provider: weft
  more_like_this:
    enabled: true
  opening_statement: null
  pre_prompt: 'Translate into {{target_language}}: {{query}}'
  prompt_type: simple
  retriever_resource:
    enabled: false
  sensitive_word_avoidance:
    config:
      inputs_config:
        enabled: true
        preset_response: I cannot translate that.
      keywords: |-
        password
        secret
      outputs_config:
        enabled: false
    enabled: true
    type: keywords
  speech_to_text:
    enabled: false
  suggested_questions: []
  suggested_questions_after_answer:
    enabled: false
  text_to_speech:
    enabled: false
  user_input_form:
  - select:
      default: English
      label: Target language
      options:
      - English
      - German
      required: true
      variable: target_language
  - paragraph:
      default: ''
      label: Text
      required: true
      variable: query
  - external_data_tool:
      enabled: true
      label: Glossary
      required: false
      type: api
      variable: glossary
version: 0.1.2
"""

HANDWRITTEN = {"chat": CHAT_DSL, "agent-chat": AGENT_DSL, "completion": COMPLETION_DSL}


def codes(report) -> Counter:
    return Counter(report.codes())


def sample_params() -> list:
    if not SAMPLES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{SAMPLES} is absent"))]
    return [
        pytest.param(path, id=path.stem.split("__", 1)[-1])
        for path in sorted(SAMPLES.glob("*.yml"))
    ]


samples = pytest.mark.parametrize("path", sample_params())


def body(text: str) -> dict:
    """An export without its header's name (which an import into the same tenant numbers)."""
    document = yaml.safe_load(text)
    document["app"].pop("name")
    return document


# Chat, agent-chat and completion


def test_chat_import_maps_the_model_keeps_known_knowledge_and_publishes(tenant):
    with tenant_context(tenant):
        dataset = dataset_create(tenant=tenant, name="Handbook")
    content = CHAT_DSL.replace("DATASET_ID", str(dataset.pk))
    app, report = app_import(tenant=tenant, content=content)

    assert (app.mode, app.name, app.icon, app.icon_background) == (
        "chat",
        "Handbook helper",
        "📘",
        "#E0F2FE",
    )
    assert app.description == "Answers questions about the staff handbook."
    assert report.version == "0.1.5"
    assert report.dependencies == [
        "langgenius/openai:0.0.26@c1e643ac6a7732f6333a783320b4d3026fa5e31d8e7026375b98d44418d33f26"
    ]
    assert codes(report) == Counter({"left_out": 1, "model_mapped": 1, "dataset_dropped": 1})
    dropped = next(item for item in report.warnings if item.code == "dataset_dropped")
    assert "3f1c9a64-5d1e-4b8a-9f57-0c2d7e8b1a90" in dropped.message
    mapped = next(item for item in report.warnings if item.code == "model_mapped")
    assert "langgenius/openai/openai/gpt-4o-mini" in mapped.message

    # Published at once, on the built-in model, with everything else as Dify wrote it.
    assert app.published_version is not None and app.published_version.number == 1
    config = runnable(app).config
    assert (config.model.provider, config.model.name) == OFFLINE
    assert config.model.completion_params == {"stop": [], "temperature": 0.2}
    assert config.dataset_configs.dataset_ids() == [str(dataset.pk)]
    assert config.pre_prompt == "You answer questions about {{topic}} from the staff handbook."
    assert [(kind, field.variable, field.options) for kind, field in config.input_fields()] == [
        ("select", "topic", ["Leave", "Equipment"])
    ]
    assert config.opening_statement == "Hello! Ask me anything about the handbook."
    assert config.suggested_questions == ["How many days of leave do I get?"]
    assert config.suggested_questions_after_answer.enabled
    assert config.file_upload.model_extra["image"]["detail"] == "high"


def test_a_model_the_tenant_has_is_kept(tenant):
    credential = ProviderCredential(tenant=tenant, kind=ProviderKind.OPENAI, name="main")
    credential.secret = "sk-test-0123456789abcdefWXYZ"
    credential.save()
    app, report = app_import(tenant=tenant, content=CHAT_DSL)
    assert "model_mapped" not in report.codes()
    assert app.config["model"]["provider"] == "langgenius/openai/openai"
    assert app.config["model"]["name"] == "gpt-4o-mini"


def test_agent_tools_weft_lacks_are_disabled_and_reported(tenant):
    app, report = app_import(tenant=tenant, content=AGENT_DSL)
    assert app.mode == "agent-chat" and app.published_version is not None
    tools = {tool["tool_name"]: tool for tool in app.config["agent_mode"]["tools"]}
    assert tools["current_time"]["enabled"] is True
    assert tools["current_time"]["tool_parameters"]["timezone"] == "Europe/Berlin"
    assert tools["google_search"]["enabled"] is False
    assert tools["getWeather"]["enabled"] is False
    assert tools["wikipedia_search"]["enabled"] is False  # as the export had it: not reported
    disabled = [item for item in report.warnings if item.code == "tool_disabled"]
    assert [item.field for item in disabled] == [
        "model_config.agent_mode.tools[1]",
        "model_config.agent_mode.tools[2]",
    ]
    assert "langgenius/google/google/google_search" in disabled[0].message
    assert codes(report) == Counter({"tool_disabled": 2, "model_mapped": 1, "left_out": 1})
    icon_item = next(item for item in report.warnings if item.code == "left_out")
    assert icon_item.field == "app.use_icon_as_answer_icon"
    assert app.config["agent_mode"]["strategy"] == "function_call"
    assert "prompt" not in app.config["agent_mode"]  # null reads as not set


def test_completion_import_with_moderation_and_legacy_forms(tenant):
    app, report = app_import(tenant=tenant, content=COMPLETION_DSL)
    config = runnable(app).config
    assert app.mode == "completion" and app.published_version is not None
    # The built-in model under Weft's own provider name is usable as it is.
    assert (config.model.provider, config.model.name) == ("weft", "weft-offline-chat")
    assert [field.variable for _, field in config.input_fields()] == ["target_language", "query"]
    assert config.sensitive_word_avoidance.keywords() == ["password", "secret"]
    assert config.sensitive_word_avoidance.side("inputs_config") == (
        True,
        "I cannot translate that.",
    )
    assert config.more_like_this.enabled
    # Dify 0.x image-only uploads read as the file upload settings of today.
    assert config.file_upload.enabled and config.file_upload.allowed_file_types == ["image"]
    assert config.file_upload.number_limits == 2
    assert config.file_upload.allowed_file_upload_methods == ["local_file"]
    assert config.opening_statement == ""
    assert codes(report) == Counter({"left_out": 1, "legacy_form": 1, "unknown_field": 1})
    fields = {item.code: item.field for item in report.warnings}
    assert fields["left_out"] == "model_config.user_input_form"
    assert fields["unknown_field"] == "model_config.external_data_tools"
    assert config.model_extra["external_data_tools"][0]["variable"] == "glossary"


def test_datasets_listed_among_agent_tools_by_older_dify(tenant, other_tenant):
    with tenant_context(tenant):
        ours = dataset_create(tenant=tenant, name="Ours")
    with tenant_context(other_tenant):
        theirs = dataset_create(tenant=other_tenant, name="Theirs")
    document = yaml.safe_load(CHAT_DSL)
    config = document["model_config"]
    config["dataset_configs"]["datasets"]["datasets"] = []
    config["agent_mode"]["tools"] = [
        {"dataset": {"enabled": True, "id": str(ours.pk)}},
        {"dataset": {"enabled": True, "id": str(theirs.pk)}},
    ]
    app, report = app_import(tenant=tenant, content=yaml.safe_dump(document))
    assert app.config["agent_mode"]["tools"] == []
    assert runnable(app).config.dataset_configs.dataset_ids() == [str(ours.pk)]
    assert codes(report)["legacy_form"] == 1
    dropped = [item.message for item in report.warnings if item.code == "dataset_dropped"]
    assert len(dropped) == 1 and str(theirs.pk) in dropped[0]  # another tenant's: not found


def test_an_image_icon_is_left_out_and_names_are_numbered(tenant):
    document = yaml.safe_load(CHAT_DSL)
    document["app"].update(icon="5f3c2e1a-upload-file-id", icon_type="image")
    content = yaml.safe_dump(document, allow_unicode=True)
    first, _ = app_import(tenant=tenant, content=content)
    second, report = app_import(tenant=tenant, content=content)
    assert (first.icon, first.icon_type) == ("🤖", "emoji")
    assert second.name == "Handbook helper (2)"
    items = {item.field: item for item in report.warnings}
    assert items["app.icon"].code == "left_out"
    assert items["name"].code == "mapped" and "Handbook helper (2)" in items["name"].message
    with pytest.raises(Conflict):
        app_import(tenant=tenant, content=content, name="Handbook helper")
    third, _ = app_import(tenant=tenant, content=content, name="Staff questions")
    assert third.name == "Staff questions"


def test_a_newer_minor_version_imports_with_a_warning(tenant):
    app, report = app_import(tenant=tenant, content=CHAT_DSL.replace("0.1.5", "0.9.0"))
    assert app.published_version is not None
    (newer,) = [item for item in report.warnings if item.code == "newer_version"]
    assert "0.9.0" in newer.message and report.version == "0.9.0"


def test_creator_is_recorded(tenant, make_member):
    user = make_member(tenant)
    app, _ = app_import(tenant=tenant, content=AGENT_DSL, created_by=user)
    assert app.created_by == user and app.published_version.created_by == user


# Workflow and chatflow: every shared Dify export


@samples
def test_every_sample_imports_as_an_app_with_its_report(tenant, path):
    content = path.read_bytes()
    document = load_dsl(content)  # what the workflows reader alone reports
    app, report = app_import(tenant=tenant, content=content)

    assert app.mode == document.app["mode"] and app.runs_workflow
    assert app.name == document.app["name"].strip()
    refs = model_refs(document.workflow)
    datasets = [
        dataset_id
        for node in document.workflow.graph.nodes
        if isinstance(node.data, KnowledgeRetrievalData)
        for dataset_id in node.data.dataset_ids
    ]
    # The header's answer-icon switch and uploaded icons are what the app leaves out.
    header_left_out = bool(document.app.get("use_icon_as_answer_icon")) + (
        document.app.get("icon_type") == "image"
    )
    expected = codes(document.report) + Counter(
        {
            "model_mapped": len(refs),
            "dataset_missing": len(datasets),
            "left_out": header_left_out,
        }
    )
    published = app.published_version is not None
    if not published:
        expected["not_published"] = 1
    assert codes(report) == expected
    # Every model now names one the tenant has: the built-in ones.
    with tenant_context(tenant):
        workflow = Workflow.objects.get(pk=app.workflow_id)
    for ref in model_refs(spec_of(workflow)):
        assert ref.provider == "offline" and ref.name.startswith("weft-offline-")
    # Tool and agent nodes are what may keep a sample from running; the others publish.
    opaque = [
        node.id
        for node in document.workflow.graph.nodes
        if isinstance(node.data, ToolData | AgentData)
    ]
    if not opaque:
        assert published, report.warnings
    if not published:
        reason = next(item for item in report.warnings if item.code == "not_published")
        assert any(node_id in reason.message for node_id in opaque), reason.message


def test_an_imported_workflow_app_answers_on_the_built_in_model(tenant):
    path = SAMPLES / "svcvit__SEO Slug Generator.yml"
    if not path.is_file():
        pytest.skip(f"{SAMPLES} is absent")
    app, report = app_import(tenant=tenant, content=path.read_bytes())
    assert codes(report)["model_mapped"] >= 1
    version = runnable(app).workflow_version
    start = next(n for n in version.graph["nodes"] if n["data"]["type"] == "start")
    inputs = {
        variable["variable"]: "Swept wings and lift at high speed"[
            : variable.get("max_length") or 48
        ]
        for variable in start["data"]["variables"]
    }
    run = run_create(tenant=tenant, workflow=app.workflow, version=version, inputs=inputs)
    row = async_to_sync(run_execute)(run.pk)
    assert row.status == "succeeded", row.error
    assert row.outputs and all(isinstance(value, str) and value for value in row.outputs.values())


def test_a_workflow_that_cannot_run_is_imported_unpublished(tenant):
    def node(node_id: str, **data) -> dict:
        data = {"type": node_id, "title": node_id.title(), "desc": "", **data}
        return {"id": node_id, "type": "custom", "position": {"x": 0, "y": 0}, "data": data}

    nodes = [node("start", variables=[]), node("answer", answer="Hi")]
    edges = [
        {
            "id": "start-source-answer-target",
            "source": "start",
            "sourceHandle": "source",
            "target": "answer",
            "targetHandle": "target",
        }
    ]
    document = {
        "version": "0.3.0",
        "kind": "app",
        "app": {"name": "Answers in a workflow", "mode": "workflow"},
        "workflow": {"graph": {"nodes": nodes, "edges": edges}, "features": {}},
    }
    app, report = app_import(tenant=tenant, content=yaml.safe_dump(document))
    assert app.published_version is None and app.workflow is not None
    (reason,) = [item for item in report.warnings if item.code == "not_published"]
    assert "answer" in reason.message and "end node" in reason.message


# Export and round trips


@pytest.mark.parametrize("mode", sorted(HANDWRITTEN))
def test_config_export_is_difys_shape_and_round_trips(tenant, mode):
    app, _ = app_import(tenant=tenant, content=HANDWRITTEN[mode])
    first = app_export(app)
    document = yaml.safe_load(first)
    assert sorted(document) == ["app", "dependencies", "kind", "model_config", "version"]
    assert document["version"] == CURRENT_DSL_VERSION and document["kind"] == "app"
    assert sorted(document["app"]) == sorted(
        [
            "name",
            "mode",
            "icon",
            "icon_type",
            "icon_background",
            "description",
            "use_icon_as_answer_icon",
        ]
    )
    assert document["app"]["mode"] == mode and document["dependencies"] == []
    assert document["model_config"]["pre_prompt"] == app.config["pre_prompt"]
    again, report = app_import(tenant=tenant, content=first)
    second = app_export(again)
    assert body(second) == body(first)
    assert "model_mapped" not in report.codes() and "dataset_dropped" not in report.codes()
    # Into the same app: the export is the same text, byte for byte.
    replaced, _ = app_import(tenant=tenant, content=first, app=app)
    assert app_export(replaced) == first


@samples
def test_sample_apps_round_trip(tenant, path):
    app, _ = app_import(tenant=tenant, content=path.read_bytes())
    first = app_export(app)
    document = yaml.safe_load(first)
    assert sorted(document) == ["app", "dependencies", "kind", "version", "workflow"]
    assert document["app"]["mode"] == app.mode
    again, report = app_import(tenant=tenant, content=first)
    assert "model_mapped" not in report.codes()
    assert body(app_export(again)) == body(first)
    replaced, _ = app_import(tenant=tenant, content=first, app=app)
    assert app_export(replaced) == first


def test_export_of_a_published_version_and_secrets(tenant):
    app, _ = app_import(tenant=tenant, content=AGENT_DSL)
    app_update(tenant=tenant, app=app, config={**app.config, "pre_prompt": "A new draft."})
    app.refresh_from_db()
    assert yaml.safe_load(app_export(app))["model_config"]["pre_prompt"] == "A new draft."
    published = yaml.safe_load(app_export(app, version=1))["model_config"]
    assert published["pre_prompt"] == "Tell the time in the city the user names."
    with tenant_context(tenant):
        version = AppVersion.objects.get(app=app, number=1)
    assert app_export(app, version=version) == app_export(app, version=1)
    with pytest.raises(NotFound, match="no version 7"):
        app_export(app, version=7)
    api_tool = published["agent_mode"]["tools"][2]
    assert api_tool["tool_name"] == "getWeather" and "credential_id" not in api_tool
    with_secrets = yaml.safe_load(app_export(app, version=1, include_secrets=True))
    assert with_secrets["model_config"]["agent_mode"]["tools"][2]["credential_id"] == (
        "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
    )


def test_workflow_export_blanks_secrets_unless_asked(tenant):
    document = {
        "version": "0.5.0",
        "kind": "app",
        "app": {"name": "Secretive", "mode": "workflow"},
        "workflow": yaml.safe_load(app_export(_starter_workflow_app(tenant)))["workflow"],
    }
    document["workflow"]["environment_variables"] = [
        {"name": "token", "value": "s3cr3t-value", "value_type": "secret", "id": "v1"}
    ]
    app, _ = app_import(tenant=tenant, content=yaml.safe_dump(document))
    assert yaml.safe_load(app_export(app))["workflow"]["environment_variables"][0]["value"] == ""
    clear = yaml.safe_load(app_export(app, include_secrets=True))
    assert clear["workflow"]["environment_variables"][0]["value"] == "s3cr3t-value"


def _starter_workflow_app(tenant) -> App:
    from apps.services.apps import app_create

    return app_create(tenant=tenant, name="Starter", mode=App.Mode.WORKFLOW)


# Replacing an app's draft


def test_replace_keeps_the_published_version_and_renames(tenant):
    app, _ = app_import(tenant=tenant, content=CHAT_DSL)
    document = yaml.safe_load(CHAT_DSL)
    document["model_config"]["pre_prompt"] = "Only answer about equipment."
    replaced, report = app_import(
        tenant=tenant, content=yaml.safe_dump(document), app=app, name="Equipment helper"
    )
    assert replaced.pk == app.pk and replaced.name == "Equipment helper"
    assert replaced.config["pre_prompt"] == "Only answer about equipment."
    assert runnable(replaced).config.pre_prompt.startswith("You answer questions")
    assert "not_published" not in report.codes()
    with tenant_context(tenant):
        assert App.objects.count() == 1


def test_replace_a_workflow_apps_draft(tenant):
    app = _starter_workflow_app(tenant)
    path = SAMPLES / "svcvit__SEO Slug Generator.yml"
    if not path.is_file():
        pytest.skip(f"{SAMPLES} is absent")
    replaced, _ = app_import(tenant=tenant, content=path.read_bytes(), app=app)
    with tenant_context(tenant):
        workflow = Workflow.objects.get(pk=replaced.workflow_id)
        assert Workflow.objects.count() == 1
    titles = {node["data"]["title"] for node in workflow.graph["nodes"]}
    assert titles == {node.data.title for node in load_dsl(path.read_bytes()).workflow.graph.nodes}
    assert replaced.published_version is None


def test_replace_with_another_mode_or_tenant_is_refused(tenant, other_tenant):
    app, _ = app_import(tenant=tenant, content=CHAT_DSL)
    before = app_export(app)
    with pytest.raises(InvalidInput, match="completion app") as caught:
        app_import(tenant=tenant, content=COMPLETION_DSL, app=app)
    assert caught.value.code == "invalid_param"
    with pytest.raises(NotFound):
        app_import(tenant=other_tenant, content=CHAT_DSL, app=app)
    app.refresh_from_db()
    assert app_export(app) == before


# Bad files: a clear reason, nothing written


def _huge() -> bytes:
    return CHAT_DSL.encode() + b"#" * (11 * 1024 * 1024)


BAD = {
    "not yaml": (b"app: [unclosed\nkind: app\n", "malformed YAML at line"),
    "not a mapping": (b"- just\n- a list\n", "must be a YAML mapping"),
    "wrong kind": (CHAT_DSL.replace("kind: app", "kind: dataset"), "kind must be app"),
    "newer major": (CHAT_DSL.replace("version: 0.1.5", "version: 1.0.0"), "newer than"),
    "bad version": (CHAT_DSL.replace("version: 0.1.5", "version: banana"), "version must"),
    "eleven megabytes": (_huge(), "at most 10485760"),
    "no model_config": (
        CHAT_DSL.split("kind: app\n")[0] + "kind: app\nversion: 0.1.5\n",
        "no `model_config`: a chat app",
    ),
    "unknown mode": (
        CHAT_DSL.replace("mode: chat\n  name", "mode: rag-pipeline\n  name"),
        "app.mode",
    ),
    "no mode": (CHAT_DSL.replace("  mode: chat\n", "", 1), "app.mode is missing"),
    "no workflow": (
        "app:\n  mode: workflow\n  name: Empty\nkind: app\nversion: 0.3.0\n",
        "no `workflow` section",
    ),
    "bad config": (CHAT_DSL.replace("top_k: 4", "top_k: 500"), "dataset_configs.top_k"),
    "aliases": (
        "app: &a {mode: chat, name: x}\nkind: app\nmodel_config: {pre_prompt: x}\nother: *a\n",
        "aliases",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_are_refused_with_nothing_written(tenant, case):
    content, message = BAD[case]
    with pytest.raises(DslInvalid, match=message) as caught:
        app_import(tenant=tenant, content=content)
    assert caught.value.code == "invalid_dsl"
    with tenant_context(tenant):
        assert not App.objects.exists() and not Workflow.objects.exists()
