"""diff_specs(): nodes, edges, variables and features changed between two versions."""

from workflows.dsl import diff_specs, rewrite_model
from workflows.dsl.diff import ABSENT, FieldChange

from .conftest import linear_edges, linear_nodes, llm_data, make_edge, make_node


def test_the_same_spec_has_no_changes(build_spec):
    diff = diff_specs(build_spec(), build_spec())
    assert diff.is_empty()
    assert diff.render() == "No changes."


def test_layout_changes_are_left_out_unless_asked(build_spec):
    moved = linear_nodes()
    moved[1]["position"] = {"x": 400, "y": 80}
    moved[1]["selected"] = True
    moved[1]["data"]["selected"] = True
    assert diff_specs(build_spec(), build_spec(moved)).is_empty()
    with_layout = diff_specs(build_spec(), build_spec(moved), include_layout=True)
    assert [change.path for change in with_layout.nodes_changed[0].changes] == [
        "data.selected",
        "position.x",
        "position.y",
        "selected",
    ]


def test_nodes_added_removed_and_changed_field_by_field(build_spec):
    old_nodes = [
        *linear_nodes(),
        make_node("note", "template-transform", template="x", variables=[]),
    ]
    new_nodes = linear_nodes()
    new_nodes[1]["data"].update(llm_data("Answer briefly: {{#start.q#}}"))
    new_nodes[1]["data"]["model"]["completion_params"] = {"temperature": 0.2}
    new_nodes.append(make_node("reply", "answer", answer="{{#llm.text#}}"))
    old = build_spec(old_nodes, linear_edges())
    new = build_spec(new_nodes, [*linear_edges(), make_edge("llm", "reply")])
    diff = diff_specs(old, new)
    assert [(n.node_id, n.type, n.title) for n in diff.nodes_added] == [
        ("reply", "answer", "Reply")
    ]
    assert [n.node_id for n in diff.nodes_removed] == ["note"]
    assert len(diff.nodes_changed) == 1
    change = diff.nodes_changed[0]
    assert change.node.node_id == "llm"
    assert change.changes == [
        FieldChange("data.model.completion_params.temperature", ABSENT, 0.2),
        FieldChange(
            "data.prompt_template[0].text", "Answer {{#start.q#}}", "Answer briefly: {{#start.q#}}"
        ),
    ]
    assert [str(edge) for edge in diff.edges_added] == ["llm -[source]-> reply"]
    assert diff.edges_removed == []


def test_a_model_rewrite_shows_as_two_fields(build_spec):
    old = build_spec()
    new = rewrite_model(old, "llm", provider="anthropic", name="claude-sonnet-4")
    changes = diff_specs(old, new).nodes_changed[0].changes
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("data.model.provider", "openai", "anthropic"),
        ("data.model.name", "gpt-4o", "claude-sonnet-4"),
    ]


def test_edges_are_compared_by_what_they_join_not_by_id(build_spec):
    renamed = linear_edges()
    renamed[0]["id"] = "some-new-id"
    assert diff_specs(build_spec(), build_spec(None, renamed)).is_empty()
    rewired = [make_edge("start", "llm"), make_edge("llm", "end", "fail-branch")]
    diff = diff_specs(build_spec(), build_spec(None, rewired))
    assert [str(e) for e in diff.edges_removed] == ["llm -[source]-> end"]
    assert [str(e) for e in diff.edges_added] == ["llm -[fail-branch]-> end"]


def test_variables_changed_and_secrets_never_shown(build_spec):
    old = build_spec(
        environment_variables=[
            {"name": "KEY", "value_type": "secret", "value": "sk-old"},
            {"name": "BASE", "value_type": "string", "value": "https://a"},
            {"name": "GONE", "value_type": "number", "value": 1},
        ],
        conversation_variables=[{"name": "mem", "value_type": "array[string]", "value": []}],
    )
    new = build_spec(
        environment_variables=[
            {"name": "KEY", "value_type": "secret", "value": "sk-new"},
            {"name": "BASE", "value_type": "string", "value": "https://b"},
        ],
        conversation_variables=[
            {"name": "mem", "value_type": "array[string]", "value": [], "description": "memory"},
            {"name": "turns", "value_type": "number", "value": 0},
        ],
    )
    diff = diff_specs(old, new)
    summary = [
        (v.scope, v.name, v.change, [(c.path, c.old, c.new) for c in v.changes])
        for v in diff.variables
    ]
    assert summary == [
        ("environment", "GONE", "removed", []),
        ("environment", "KEY", "changed", [("value", "(hidden)", "(hidden)")]),
        ("environment", "BASE", "changed", [("value", "https://a", "https://b")]),
        ("conversation", "mem", "changed", [("description", ABSENT, "memory")]),
        ("conversation", "turns", "added", []),
    ]
    rendered = diff.render()
    assert "sk-old" not in rendered and "sk-new" not in rendered


def test_features_are_compared(build_spec):
    old = build_spec(features={"opening_statement": "Hi", "speech_to_text": {"enabled": False}})
    new = build_spec(features={"opening_statement": "Hello", "speech_to_text": {"enabled": False}})
    assert [(c.path, c.old, c.new) for c in diff_specs(old, new).features] == [
        ("features.opening_statement", "Hi", "Hello")
    ]


def test_rendering_for_people(build_spec):
    old = build_spec(environment_variables=[{"name": "BASE", "value_type": "string", "value": "a"}])
    nodes = linear_nodes()
    nodes[1]["data"]["model"]["name"] = "gpt-4o-mini"
    nodes.append(make_node("reply", "answer", answer="{{#llm.text#}}"))
    new = build_spec(nodes, [*linear_edges(), make_edge("llm", "reply")])
    assert diff_specs(old, new).render().splitlines() == [
        "+ node reply (answer 'Reply')",
        "~ node llm (llm 'Llm')",
        '    data.model.name: "gpt-4o" → "gpt-4o-mini"',
        "+ edge llm -[source]-> reply",
        "- environment variable BASE",
    ]


def test_long_values_are_cut_in_the_rendering(build_spec):
    nodes = linear_nodes()
    nodes[1]["data"].update(llm_data("word " * 100))
    line = diff_specs(build_spec(), build_spec(nodes)).render().splitlines()[1]
    assert line.startswith('    data.prompt_template[0].text: "Answer {{#start.q#}}" → "word word')
    assert line.endswith('..."') is False and line.endswith("...")
    assert len(line) < 200
