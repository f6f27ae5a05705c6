"""Reading and writing Dify's DSL: header checks, clear errors on bad input, what the report
says, what export keeps and leaves out."""

import pytest
import yaml

from workflows.dsl import (
    CURRENT_DSL_VERSION,
    MAX_DSL_BYTES,
    AssignerData,
    AssignerV1Data,
    DslError,
    IfElseData,
    LLMData,
    UnknownData,
    VariableAggregatorData,
    dump_dsl,
    load_dsl,
)

from .conftest import linear_edges, linear_nodes, llm_data, make_document, make_edge, make_node


def text(document: dict) -> str:
    return yaml.safe_dump(document, allow_unicode=True)


def linear() -> dict:
    return make_document(linear_nodes(), linear_edges())


def roundtrip(document) -> str:
    return dump_dsl(document.workflow, app=document.app, dependencies=document.dependencies)


def test_a_minimal_workflow_loads_typed():
    document = load_dsl(text(linear()))
    assert document.version == "0.5.0"
    assert document.kind == "app"
    assert document.app["name"] == "Test"
    llm = document.workflow.graph.node("llm")
    assert isinstance(llm.data, LLMData)
    assert llm.data.model.provider == "openai"
    assert document.report.warnings == []


def test_bytes_with_a_byte_order_mark_load():
    assert load_dsl("\ufeff".encode() + text(linear()).encode()).version == "0.5.0"


def test_malformed_yaml_names_the_line():
    bad = "app:\n  name: x\nworkflow:\n  graph: {nodes: [}\n"
    with pytest.raises(DslError, match="malformed YAML at line 4") as caught:
        load_dsl(bad)
    assert caught.value.line == 4


@pytest.mark.parametrize("content", ["- a\n- b\n", "just text\n", ""])
def test_a_document_that_is_not_a_mapping_is_refused(content):
    with pytest.raises(DslError, match="must be a YAML mapping"):
        load_dsl(content)


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(DslError, match="not UTF-8"):
        load_dsl(b"app: \xff\xfe\n")


@pytest.mark.parametrize("version", ["1.0.0", "1.2", "2.0.0"])
def test_a_newer_major_version_is_refused(version):
    document = {**linear(), "version": version}
    with pytest.raises(DslError, match=rf"DSL version {version} is newer than this importer"):
        load_dsl(text(document))


@pytest.mark.parametrize("version", [0.1, "latest", "0.1.x"])
def test_a_version_that_is_not_a_version_string_is_refused(version):
    with pytest.raises(DslError, match="version must be a string"):
        load_dsl(text({**linear(), "version": version}))


def test_a_newer_minor_version_loads_with_a_warning():
    document = load_dsl(text({**linear(), "version": "0.7.0"}))
    assert document.report.codes() == ["newer_version"]


def test_missing_version_and_kind_read_as_0_1_0_app():
    document = linear()
    del document["version"], document["kind"]
    loaded = load_dsl(text(document))
    assert (loaded.version, loaded.kind) == ("0.1.0", "app")
    assert loaded.report.codes() == ["mapped", "mapped"]


def test_oversize_input_is_refused_before_parsing():
    padding = "#" * (MAX_DSL_BYTES + 1)
    with pytest.raises(DslError, match=r"at most 10485760 \(10 MB\)"):
        load_dsl(padding)


def test_yaml_aliases_are_refused():
    bomb = 'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: &c [*b, *b]\napp: {}\nworkflow: {}\n'
    with pytest.raises(DslError, match="aliases"):
        load_dsl(bomb)


def test_an_app_without_workflow_is_refused():
    document = {"version": "0.1.5", "kind": "app", "app": {"name": "c", "mode": "chat"}}
    with pytest.raises(DslError, match="this is a chat app"):
        load_dsl(text({**document, "model_config": {}}))


def test_invalid_node_data_names_node_and_field():
    nodes = linear_nodes()
    nodes[1]["data"]["model"] = {"name": "gpt-4o"}
    nodes[1]["data"]["retry_config"] = {"retry_enabled": True, "max_retries": 20}
    with pytest.raises(DslError) as caught:
        load_dsl(text(make_document(nodes, linear_edges())))
    assert "node llm (llm): data.model.provider: Field required" in caught.value.errors
    assert any(
        error.startswith("node llm (llm): data.retry_config.max_retries: Input should be less")
        for error in caught.value.errors
    )
    assert "node llm (llm): data.model.provider" in str(caught.value)


def test_an_unknown_comparison_operator_names_the_condition():
    condition = {"variable_selector": ["start", "q"], "comparison_operator": "bigger", "value": "1"}
    node = make_node("check", "if-else", cases=[{"case_id": "true", "conditions": [condition]}])
    with pytest.raises(DslError, match=r"node check \(if-else\): data.cases\[0\].conditions\[0\]"):
        load_dsl(text(make_document([node], [])))


def test_unknown_node_type_is_kept_reported_and_exported():
    nodes = [
        *linear_nodes(),
        make_node("web", "trigger-webhook", secret_path="/hook", extra={"a": 1}),
    ]
    document = load_dsl(text(make_document(nodes, linear_edges())))
    web = document.workflow.graph.node("web")
    assert isinstance(web.data, UnknownData)
    assert [(item.code, item.node_id) for item in document.report.warnings] == [
        ("unknown_node_type", "web")
    ]
    assert "'trigger-webhook'" in document.report.warnings[0].message
    exported = yaml.safe_load(roundtrip(document))
    assert exported["workflow"]["graph"]["nodes"][-1] == nodes[-1]


def test_unknown_fields_are_kept_and_reported_by_name():
    nodes = linear_nodes()
    nodes[1]["data"]["shiny_new_option"] = True
    nodes[1]["data"]["model"]["routing"] = "fast"
    nodes[1]["data"]["prompt_template"][0]["cache"] = "ephemeral"
    nodes[2]["zoomLevel"] = 3
    edges = linear_edges()
    edges[0]["animated"] = True
    document = load_dsl(text(make_document(nodes, edges, rag_pipeline_variables=[])))
    found = {(item.node_id, item.edge_id, item.field) for item in document.report.warnings}
    assert found == {
        ("llm", None, "data.shiny_new_option"),
        ("llm", None, "data.model.routing"),
        ("llm", None, "data.prompt_template[0].cache"),
        ("end", None, "zoomLevel"),
        (None, "start-source-llm-target", "animated"),
        (None, None, "workflow.rag_pipeline_variables"),
    }
    exported = yaml.safe_load(roundtrip(document))
    assert exported["workflow"]["graph"]["nodes"] == nodes
    assert exported["workflow"]["graph"]["edges"] == edges
    assert exported["workflow"]["rag_pipeline_variables"] == []


def test_legacy_forms_are_read_and_reported():
    legacy_if = make_node(
        "check",
        "if-else",
        logical_operator="or",
        conditions=[
            {"variable_selector": ["start", "q"], "comparison_operator": "empty", "value": ""}
        ],
    )
    v1 = make_node(
        "remember",
        "assigner",
        assigned_variable_selector=["conversation", "memory"],
        write_mode="over-write",
        input_variable_selector=["start", "q"],
    )
    v2 = make_node(
        "assign",
        "assigner",
        version="2",
        items=[{"variable_selector": ["conversation", "memory"], "operation": "clear"}],
    )
    old_aggregator = make_node(
        "join", "variable-assigner", output_type="string", variables=[["start", "q"]]
    )
    document = load_dsl(text(make_document([legacy_if, v1, v2, old_aggregator], [])))
    graph = document.workflow.graph
    assert isinstance(graph.node("check").data, IfElseData)
    cases = graph.node("check").data.effective_cases()
    assert [(case.case_id, case.logical_operator, len(case.conditions)) for case in cases] == [
        ("true", "or", 1)
    ]
    assert isinstance(graph.node("remember").data, AssignerV1Data)
    assert isinstance(graph.node("assign").data, AssignerData)
    assert isinstance(graph.node("join").data, VariableAggregatorData)
    assert [(item.code, item.node_id) for item in document.report.warnings] == [
        ("legacy_form", "check"),
        ("legacy_form", "remember"),
        ("legacy_form", "join"),
    ]
    assert yaml.safe_load(roundtrip(document))["workflow"]["graph"]["nodes"][3]["data"]["type"] == (
        "variable-assigner"
    )


def test_unknown_tools_are_reported_and_kept_whole():
    tool = make_node(
        "search",
        "tool",
        provider_id="tavily",
        provider_name="tavily",
        provider_type="builtin",
        tool_name="tavily_search",
        tool_parameters={"query": {"type": "mixed", "value": "{{#start.q#}}"}},
        paramSchemas=[{"name": "query", "form": "llm"}],
    )
    document = load_dsl(text(make_document([*linear_nodes(), tool], linear_edges())))
    assert [(item.code, item.node_id) for item in document.report.warnings] == [
        ("unknown_tool", "search")
    ]
    assert "tavily/tavily_search" in document.report.warnings[0].message
    exported = yaml.safe_load(roundtrip(document))
    assert exported["workflow"]["graph"]["nodes"][-1] == tool


def test_dependencies_are_read_reported_and_written_back():
    dependency = {
        "current_identifier": None,
        "type": "marketplace",
        "value": {"marketplace_plugin_unique_identifier": "langgenius/openai:0.2.6@abc"},
    }
    document = load_dsl(text({**linear(), "dependencies": [dependency]}))
    assert document.report.dependencies == ["langgenius/openai:0.2.6@abc"]
    assert document.report.codes() == ["left_out"]
    assert yaml.safe_load(roundtrip(document))["dependencies"] == [dependency]


def test_export_has_difys_shape():
    exported = yaml.safe_load(roundtrip(load_dsl(text(linear()))))
    assert sorted(exported) == ["app", "dependencies", "kind", "version", "workflow"]
    assert (exported["kind"], exported["version"]) == ("app", CURRENT_DSL_VERSION)
    assert sorted(exported["workflow"]) == [
        "conversation_variables",
        "environment_variables",
        "features",
        "graph",
    ]
    assert sorted(exported["workflow"]["graph"]) == ["edges", "nodes", "viewport"]


def test_secret_values_are_exported_only_when_asked():
    env = [
        {
            "name": "API_KEY",
            "value_type": "secret",
            "value": "sk-live-123",
            "selector": ["env", "API_KEY"],
        },
        {"name": "BASE", "value_type": "string", "value": "https://x", "selector": ["env", "BASE"]},
    ]
    document = load_dsl(
        text(make_document(linear_nodes(), linear_edges(), environment_variables=env))
    )
    assert document.workflow.environment_variables[0].value == "sk-live-123"
    plain = roundtrip(document)
    assert "sk-live-123" not in plain
    values = {
        v["name"]: v["value"] for v in yaml.safe_load(plain)["workflow"]["environment_variables"]
    }
    assert values == {"API_KEY": "", "BASE": "https://x"}
    with_secrets = dump_dsl(document.workflow, app=document.app, include_secrets=True)
    assert "sk-live-123" in with_secrets


def test_export_keeps_unicode_and_sorts_keys_as_dify_does():
    nodes = linear_nodes()
    nodes[1]["data"].update(llm_data("用中文回答 {{#start.q#}} 🙂"))
    exported = roundtrip(load_dsl(text(make_document(nodes, linear_edges()))))
    assert "用中文回答 {{#start.q#}} 🙂" in exported
    assert exported.index("app:") < exported.index("dependencies:") < exported.index("kind:")
    assert "&id" not in exported and "*id" not in exported


def test_an_edge_without_handles_reads_as_source_to_target():
    edge = {"id": "e", "source": "start", "target": "llm"}
    document = load_dsl(text(make_document(linear_nodes(), [edge, make_edge("llm", "end")])))
    read = document.workflow.graph.edges[0]
    assert (read.sourceHandle, read.targetHandle) == ("source", "target")
    assert yaml.safe_load(roundtrip(document))["workflow"]["graph"]["edges"][0] == edge


def test_a_secret_left_out_by_export_is_reported_on_the_next_import():
    env = [{"name": "KEY", "value_type": "secret", "value": "sk-1", "selector": ["env", "KEY"]}]
    document = load_dsl(
        text(make_document(linear_nodes(), linear_edges(), environment_variables=env))
    )
    assert document.report.warnings == []
    again = load_dsl(roundtrip(document))
    assert [(item.code, item.field) for item in again.report.warnings] == [
        ("empty_secret", "workflow.environment_variables[0].value")
    ]


def test_an_empty_version_reads_as_0_1_0():
    assert load_dsl(text({**linear(), "version": ""})).version == "0.1.0"


def test_graph_lookups_for_the_engine():
    nodes = [
        *linear_nodes(),
        make_node("each", "iteration", iterator_selector=["start", "q"], start_node_id="first"),
        make_node("first", "iteration-start", parent="each"),
        {"id": "memo", "type": "custom-note", "data": {"type": "", "title": "", "text": "hi"}},
    ]
    graph = load_dsl(text(make_document(nodes, linear_edges()))).workflow.graph
    assert [node.id for node in graph.children(None)] == ["start", "llm", "end", "each"]
    assert [node.id for node in graph.children("each")] == ["first"]
    assert [edge.target for edge in graph.outgoing("start")] == ["llm"]
    assert graph.node("memo").is_note
    assert graph.node("nope") is None


def test_types_no_sample_has_round_trip_unchanged():
    loop_body = [
        make_node("begin", "loop-start", parent="loop"),
        make_node("stop", "loop-end", parent="loop"),
    ]
    nodes = [
        *linear_nodes(),
        make_node(
            "form",
            "human-input",
            form_content="Check {{#llm.text#}} {{#$outputs.note#}}",
            inputs=[
                {
                    "type": "paragraph",
                    "output_variable_name": "note",
                    "placeholder": {"type": "variable", "selector": ["llm", "text"]},
                }
            ],
            user_actions=[{"id": "ok", "title": "OK", "button_style": "primary"}],
            timeout=3,
            timeout_unit="day",
            node_timeout=30,
            error_strategy="fail-branch",
            retry_config={"retry_enabled": True, "max_retries": 2, "retry_interval": 500},
        ),
        make_node(
            "loop",
            "loop",
            loop_count=3,
            logical_operator="or",
            start_node_id="begin",
            break_conditions=[],
            loop_variables=[
                {"label": "n", "var_type": "number", "value_type": "constant", "value": 1}
            ],
        ),
        *loop_body,
    ]
    document = load_dsl(text(make_document(nodes, linear_edges())))
    assert document.report.warnings == []
    form = document.workflow.graph.node("form").data
    assert form.source_handles() == {"ok", "success-branch", "fail-branch"}
    exported = roundtrip(document)
    assert yaml.safe_load(exported)["workflow"]["graph"]["nodes"] == nodes
    assert roundtrip(load_dsl(exported)) == exported


def test_a_node_timeout_beyond_a_whole_run_is_refused():
    nodes = linear_nodes()
    nodes[1]["data"]["node_timeout"] = 5000
    with pytest.raises(
        DslError, match=r"node llm \(llm\): data.node_timeout: Input should be less"
    ):
        load_dsl(text(make_document(nodes, linear_edges())))
