"""Every shared Dify export: imports with the report it should give, exports back to what Dify
wrote, round-trips byte for byte, fits the JSON schema and validates (tools Weft lacks aside)."""

# ruff: noqa: RUF001 - full-width CJK punctuation is part of the sample file names

import copy
from collections import Counter

import jsonschema
import pytest
import yaml

from workflows.dsl import (
    CURRENT_DSL_VERSION,
    AgentData,
    ToolData,
    dsl_json_schema,
    dump_dsl,
    graph_json_schema,
    load_dsl,
    model_refs,
    rewrite_model,
    validate,
    workflow_json_schema,
)

from .conftest import SAMPLES, linear_nodes, sample_path

# What each import reports: (version read, warning codes). Tool and agent nodes are reported as
# unsupported; `legacy_form` is assigner v1 or a 0.1.0 iteration without a start node;
# `unknown_field` is data.instructions and data.topics of two old question classifiers;
# `left_out` is a plugin dependency; `mapped` is a missing version and kind.
SAMPLE_REPORTS = {
    "svcvit__Artifact.yml": ("0.2.0", {"left_out": 1}),
    "svcvit__Deep Researcher On Dify .yml": ("0.1.5", {}),
    "svcvit__Dify 运营一条龙.yml": ("0.1.0", {"mapped": 2}),
    "svcvit__Document_chat_template.yml": ("0.1.0", {"unknown_field": 2}),
    "svcvit__File_read.yml": ("0.1.4", {}),
    "svcvit__Form表单聊天Demo.yml": ("0.1.3", {"legacy_form": 1}),
    "svcvit__LanguageConsistencyChecker.yml": ("0.1.3", {"unknown_tool": 3}),
    "svcvit__MCP.yml": ("0.1.5", {"unsupported_agent": 1}),
    "svcvit__SEO Slug Generator.yml": ("0.1.0", {}),
    "svcvit__Text to Card Iteration.yml": ("0.1.0", {}),
    "svcvit__json_translate.yml": ("0.1.3", {"unknown_tool": 1}),
    "svcvit__runLLMCode.yml": ("0.1.4", {}),
    "svcvit__simple-kimi.yml": ("0.1.2", {"unknown_tool": 1}),
    "svcvit__translation_workflow.yml": ("0.1.0", {}),
    "svcvit__全书翻译.yml": ("0.1.2", {}),
    "svcvit__完蛋！我被LLM包围了！（战绩排行版）.yml": ("0.1.5", {"unknown_tool": 1}),
    "svcvit__小支付-DEMO.yml": ("0.3.0", {"left_out": 2, "unknown_tool": 2}),
    "svcvit__搜索大师.yml": ("0.1.0", {"legacy_form": 2, "unknown_tool": 2}),
    "svcvit__旅行Demo.yml": ("0.1.5", {"unknown_tool": 1}),
    "svcvit__根据用户的意图进行回复.yml": ("0.1.0", {"unknown_field": 2}),
    "svcvit__记忆测试.yml": ("0.1.2", {"legacy_form": 5}),
}

samples = pytest.mark.parametrize("name", sorted(SAMPLE_REPORTS))


def export(document) -> str:
    return dump_dsl(document.workflow, app=document.app, dependencies=document.dependencies)


def test_the_table_covers_every_sample():
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} is absent")
    assert sorted(path.name for path in SAMPLES.glob("*.yml")) == sorted(SAMPLE_REPORTS)


@samples
def test_import_reports(name):
    document = load_dsl(sample_path(name).read_bytes())
    version, codes = SAMPLE_REPORTS[name]
    assert document.report.version == version
    assert Counter(document.report.codes()) == Counter(codes)
    for item in document.report.warnings:
        if item.code in ("unknown_tool", "unsupported_agent", "unknown_field", "legacy_form"):
            assert item.node_id is not None and item.node_id in item.message


@samples
def test_export_round_trips_byte_for_byte(name):
    first = export(load_dsl(sample_path(name).read_bytes()))
    second = export(load_dsl(first))
    assert second == first


@samples
def test_export_is_what_dify_wrote_but_the_header(name):
    """Nothing is lost or changed: only the version, and the keys old versions left out."""
    original = yaml.safe_load(sample_path(name).read_bytes())
    exported = yaml.safe_load(export(load_dsl(sample_path(name).read_bytes())))
    expected = copy.deepcopy(original)
    expected["version"] = CURRENT_DSL_VERSION
    expected["kind"] = "app"
    expected.setdefault("dependencies", [])
    expected["workflow"].setdefault("environment_variables", [])
    expected["workflow"].setdefault("conversation_variables", [])
    assert exported == expected


@pytest.fixture(scope="module")
def schema_validators():
    """Checked once, then one validator per schema for every sample."""
    validators = []
    for schema in (graph_json_schema(), workflow_json_schema(), dsl_json_schema()):
        jsonschema.Draft202012Validator.check_schema(schema)
        validators.append(jsonschema.Draft202012Validator(schema))
    return validators


@samples
def test_graph_fits_the_json_schema(name, schema_validators):
    document = yaml.safe_load(sample_path(name).read_bytes())
    graph_validator, workflow_validator, document_validator = schema_validators
    graph_validator.validate(document["workflow"]["graph"])
    workflow_validator.validate(document["workflow"])
    document_validator.validate(document)


def test_the_schema_refuses_what_import_refuses(schema_validators):
    graph_validator = schema_validators[0]
    llm = linear_nodes()[1]
    del llm["data"]["model"]["provider"]
    errors = list(graph_validator.iter_errors({"nodes": [llm], "edges": []}))
    assert errors, "an llm node without a provider must not fit"
    retry = linear_nodes()[0]
    retry["data"]["retry_config"] = {"max_retries": 11}
    assert list(graph_validator.iter_errors({"nodes": [retry], "edges": []}))
    unknown = {"id": "x", "data": {"type": "trigger-webhook", "title": "Hook"}}
    assert list(graph_validator.iter_errors({"nodes": [unknown], "edges": []})) == []


@samples
def test_validates_but_for_tools_and_agents_weft_lacks(name):
    spec = load_dsl(sample_path(name).read_bytes()).workflow
    lacking = {
        node.id
        for node in spec.graph.nodes
        if isinstance(node.data, ToolData | AgentData) and node.data.problem() is not None
    }
    errors = validate(spec)
    # No sample has a genuine defect: every error is a tool Weft does not have or an agent
    # strategy it cannot run, named by its node's id.
    assert {error.code for error in errors} <= {"unknown_tool", "unsupported_agent"}
    assert {error.node_id for error in errors} == lacking


def test_model_references_and_rewrite_on_a_real_export():
    path = sample_path("svcvit__根据用户的意图进行回复.yml")
    document = load_dsl(path.read_bytes())
    refs = model_refs(document.workflow)
    calling = {
        node.id
        for node in document.workflow.graph.nodes
        if node.data.type in ("llm", "question-classifier")
    }
    assert {ref.node_id for ref in refs if ref.field == "data.model"} == calling
    target = refs[0]
    rewritten = rewrite_model(
        document.workflow, target.node_id, provider="offline", name="extractive", field=target.field
    )
    assert model_refs(document.workflow)[0] == target, "the original spec is left as it was"
    changed = next(ref for ref in model_refs(rewritten) if ref.node_id == target.node_id)
    assert (changed.provider, changed.name) == ("offline", "extractive")

    def model_of(document_data):
        nodes = document_data["workflow"]["graph"]["nodes"]
        return next(n["data"]["model"] for n in nodes if n["id"] == target.node_id)

    before = model_of(yaml.safe_load(path.read_bytes()))
    after = model_of(yaml.safe_load(dump_dsl(rewritten, app=document.app)))
    assert after == {**before, "provider": "offline", "name": "extractive"}
