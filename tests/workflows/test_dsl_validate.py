"""validate(): each broken graph gives an error that names its node (or edge) and field."""

from workflows.dsl import validate

from .conftest import linear_edges, linear_nodes, llm_data, make_edge, make_node


def errors_of(spec):
    return [(error.code, error.node_id, error.field) for error in validate(spec)]


def codes(spec):
    return [error.code for error in validate(spec)]


def end(node_id="end", selector=("llm", "text")):
    return make_node(
        node_id, "end", outputs=[{"variable": "out", "value_selector": list(selector)}]
    )


def test_the_linear_workflow_is_valid(build_spec):
    assert validate(build_spec()) == []


def test_two_start_nodes(build_spec):
    nodes = [*linear_nodes(), make_node("start2", "start", variables=[])]
    errors = validate(build_spec(nodes, [*linear_edges(), make_edge("start2", "llm")]))
    assert [(e.code, e.node_id) for e in errors] == [("multiple_starts", "start2")]
    assert "the first is start" in errors[0].message


def test_no_start_node(build_spec):
    nodes = linear_nodes()[1:]
    assert codes(build_spec(nodes, [make_edge("llm", "end")])) == ["no_start", "dangling_selector"]


def test_no_end_reachable(build_spec):
    nodes = linear_nodes()
    errors = validate(build_spec(nodes, [make_edge("start", "llm")]))
    assert [(e.code, e.node_id) for e in errors] == [("no_end", "start"), ("not_upstream", "end")]


def test_an_answer_counts_as_an_end(build_spec):
    nodes = [*linear_nodes()[:2], make_node("reply", "answer", answer="{{#llm.text#}}")]
    assert validate(build_spec(nodes, [make_edge("start", "llm"), make_edge("llm", "reply")])) == []


def test_a_cycle_names_its_nodes(build_spec):
    nodes = [
        *linear_nodes(),
        make_node("again", "template-transform", template="x", variables=[]),
    ]
    edges = [*linear_edges(), make_edge("llm", "again"), make_edge("again", "llm")]
    errors = validate(build_spec(nodes, edges))
    assert [(e.code, e.node_id) for e in errors] == [("cycle", "again")]
    assert "again, llm form a cycle in the top level" in errors[0].message


def test_a_self_loop_is_a_cycle(build_spec):
    edges = [*linear_edges(), make_edge("llm", "llm")]
    assert errors_of(build_spec(None, edges)) == [("cycle", "llm", None)]


def test_an_edge_to_a_missing_node(build_spec):
    edges = [*linear_edges(), make_edge("llm", "ghost")]
    errors = validate(build_spec(None, edges))
    assert [(e.code, e.node_id, e.edge_id, e.field) for e in errors] == [
        ("unknown_node", "ghost", "llm-source-ghost-target", "target")
    ]


def test_a_bad_source_handle_names_the_handles_there_are(build_spec):
    edges = [make_edge("start", "llm"), make_edge("llm", "end", handle="true")]
    errors = validate(build_spec(None, edges))
    assert [(e.code, e.node_id, e.field) for e in errors] == [
        ("bad_source_handle", "llm", "sourceHandle")
    ]
    assert "has no source handle 'true' (it has: source)" in errors[0].message


def test_if_else_handles_are_its_case_ids_and_false(build_spec):
    condition = {"variable_selector": ["start", "q"], "comparison_operator": "empty", "value": ""}
    check = make_node(
        "check",
        "if-else",
        cases=[
            {"case_id": "true", "logical_operator": "and", "conditions": [condition]},
            {"case_id": "c2", "logical_operator": "or", "conditions": [condition]},
        ],
    )
    nodes = [*linear_nodes(), check, end("end2", ("start", "q"))]
    good = [
        make_edge("start", "check"),
        make_edge("check", "llm", "true"),
        make_edge("check", "end2", "c2"),
        make_edge("check", "end", "false"),
        make_edge("llm", "end"),
    ]
    assert validate(build_spec(nodes, good)) == []
    bad = [*good, make_edge("check", "end2", "c3")]
    assert errors_of(build_spec(nodes, bad)) == [("bad_source_handle", "check", "sourceHandle")]


def test_legacy_if_else_branches_are_true_and_false(build_spec):
    condition = {"variable_selector": ["start", "q"], "comparison_operator": "empty", "value": ""}
    check = make_node("check", "if-else", logical_operator="and", conditions=[condition])
    nodes = [*linear_nodes(), check]
    edges = [
        make_edge("start", "check"),
        make_edge("check", "llm", "true"),
        make_edge("llm", "end"),
    ]
    assert validate(build_spec(nodes, [*edges, make_edge("check", "end", "false")])) == []
    bad = [*edges, make_edge("check", "end", "c2")]
    assert codes(build_spec(nodes, bad)) == ["bad_source_handle"]


def test_classifier_handles_are_its_class_ids(build_spec):
    classify = make_node(
        "route",
        "question-classifier",
        query_variable_selector=["start", "q"],
        model=llm_data()["model"],
        classes=[{"id": "1", "name": "sales"}, {"id": "2", "name": "support"}],
    )
    nodes = [*linear_nodes(), classify]
    edges = [make_edge("start", "route"), make_edge("route", "llm", "1"), make_edge("llm", "end")]
    assert validate(build_spec(nodes, [*edges, make_edge("route", "end", "2")])) == []
    assert errors_of(build_spec(nodes, [*edges, make_edge("route", "end", "source")])) == [
        ("bad_source_handle", "route", "sourceHandle")
    ]


def test_fail_branch_handles_exist_only_under_that_strategy(build_spec):
    nodes = linear_nodes()
    nodes.append(make_node("sorry", "end", outputs=[]))
    edges = [
        make_edge("start", "llm"),
        make_edge("llm", "end", "success-branch"),
        make_edge("llm", "sorry", "fail-branch"),
    ]
    assert [e.code for e in validate(build_spec(nodes, edges))] == ["bad_source_handle"] * 2
    nodes[1]["data"]["error_strategy"] = "fail-branch"
    assert validate(build_spec(nodes, edges)) == []


def test_human_input_branches_by_action(build_spec):
    form = make_node(
        "approve",
        "human-input",
        form_content="Approve {{#llm.text#}}? {{#$outputs.note#}}",
        inputs=[{"type": "paragraph", "output_variable_name": "note"}],
        user_actions=[{"id": "yes", "title": "Approve"}, {"id": "no", "title": "Reject"}],
        timeout=2,
        timeout_unit="day",
    )
    nodes = [*linear_nodes(), form, end("rejected", ("approve", "note"))]
    edges = [
        make_edge("start", "llm"),
        make_edge("llm", "approve"),
        make_edge("approve", "end", "yes"),
        make_edge("approve", "rejected", "no"),
    ]
    spec = build_spec(nodes, edges)
    assert validate(spec) == []
    assert spec.graph.node("approve").data.timeout_seconds() == 2 * 86400
    assert codes(build_spec(nodes, [*edges, make_edge("approve", "end", "maybe")])) == [
        "bad_source_handle"
    ]


def test_unknown_and_unsupported_types_fail(build_spec):
    nodes = [
        *linear_nodes(),
        make_node("hook", "trigger-webhook"),
        make_node("search", "tool", provider_id="tavily", tool_name="search"),
    ]
    errors = validate(build_spec(nodes, linear_edges()))
    assert [(e.code, e.node_id) for e in errors] == [
        ("unknown_node_type", "hook"),
        ("unknown_tool", "search"),
    ]
    assert "tool tavily/search is not among Weft's built-in tools" in errors[1].message


def test_notes_are_ignored(build_spec):
    note = {
        "id": "note",
        "type": "custom-note",
        "data": {"type": "", "title": "", "desc": "", "text": "{{#ghost.var#}}", "theme": "blue"},
    }
    assert validate(build_spec([*linear_nodes(), note], linear_edges())) == []


def test_a_dangling_selector_names_node_and_field(build_spec):
    nodes = linear_nodes()
    nodes[2]["data"]["outputs"].append({"variable": "x", "value_selector": ["ghost", "text"]})
    errors = validate(build_spec(nodes, linear_edges()))
    assert [(e.code, e.node_id, e.field) for e in errors] == [
        ("dangling_selector", "end", "data.outputs[1].value_selector")
    ]
    assert "ghost.text names node ghost, which does not exist" in errors[0].message


def test_a_template_reference_to_a_node_downstream(build_spec):
    nodes = linear_nodes()
    nodes[1]["data"].update(llm_data("Improve {{#end.out#}}"))
    errors = validate(build_spec(nodes, linear_edges()))
    assert [(e.code, e.node_id, e.field) for e in errors] == [
        ("not_upstream", "llm", "data.prompt_template[0].text")
    ]
    assert "does not run before it" in errors[0].message


def test_a_reference_to_a_parallel_branch_is_not_upstream(build_spec):
    nodes = [
        *linear_nodes(),
        make_node("other", "template-transform", template="x", variables=[]),
        end("end2", ("llm", "text")),
    ]
    edges = [*linear_edges(), make_edge("start", "other"), make_edge("other", "end2")]
    assert errors_of(build_spec(nodes, edges)) == [
        ("not_upstream", "end2", "data.outputs[0].value_selector")
    ]


def test_sys_env_and_conversation_variables_must_be_defined(build_spec):
    nodes = linear_nodes()
    prompt = (
        "{{#sys.query#}} {{#sys.nope#}} {{#env.BASE#}} {{#env.MISSING#}} {{#conversation.mem#}}"
    )
    nodes[1]["data"].update(llm_data(prompt))
    nodes[1]["data"]["memory"] = {
        "window": {"enabled": True, "size": 5},
        "query_prompt_template": "{{#conversation.gone#}}",
    }
    spec = build_spec(
        nodes,
        linear_edges(),
        environment_variables=[{"name": "BASE", "value_type": "string", "value": "x"}],
        conversation_variables=[{"name": "mem", "value_type": "array[string]", "value": []}],
    )
    errors = validate(spec)
    assert [(e.code, e.field) for e in errors] == [
        ("dangling_selector", "data.prompt_template[0].text"),
        ("dangling_selector", "data.prompt_template[0].text"),
        ("dangling_selector", "data.memory.query_prompt_template"),
    ]
    assert [e.message.rsplit(": ", 1)[1] for e in errors] == [
        "sys.nope is not a system variable",
        "environment variable 'MISSING' is not defined",
        "conversation variable 'gone' is not defined",
    ]


def test_a_selector_too_short_is_refused(build_spec):
    nodes = linear_nodes()
    nodes[2]["data"]["outputs"][0]["value_selector"] = ["llm"]
    assert errors_of(build_spec(nodes, linear_edges())) == [
        ("bad_selector", "end", "data.outputs[0].value_selector")
    ]


def iteration_graph(child_prompt="Translate {{#loop1.item#}}"):
    """start → iteration over start.items (body: begin → translate) → end(iteration.output)."""
    nodes = [
        make_node(
            "start", "start", variables=[{"variable": "items", "label": "i", "type": "paragraph"}]
        ),
        make_node(
            "loop1",
            "iteration",
            iterator_selector=["start", "items"],
            output_selector=["translate", "text"],
            start_node_id="begin",
            is_parallel=False,
        ),
        make_node("begin", "iteration-start", parent="loop1"),
        make_node("translate", "llm", parent="loop1", **llm_data(child_prompt)),
        make_node(
            "end", "end", outputs=[{"variable": "all", "value_selector": ["loop1", "output"]}]
        ),
    ]
    edges = [
        make_edge("start", "loop1"),
        make_edge("begin", "translate"),
        make_edge("loop1", "end"),
    ]
    return nodes, edges


def test_inside_an_iteration_item_index_and_outer_nodes_are_visible(build_spec):
    nodes, edges = iteration_graph("{{#loop1.item#}} {{#loop1.index#}} {{#start.items#}}")
    assert validate(build_spec(nodes, edges)) == []


def test_inside_an_iteration_other_variables_of_it_are_not(build_spec):
    nodes, edges = iteration_graph("{{#loop1.output#}}")
    errors = validate(build_spec(nodes, edges))
    assert [(e.code, e.node_id) for e in errors] == [("dangling_selector", "translate")]
    assert "inside loop1 only its variables can be read (index, item)" in errors[0].message


def test_outside_an_iteration_its_children_are_not_visible(build_spec):
    nodes, edges = iteration_graph()
    nodes[4]["data"]["outputs"].append({"variable": "one", "value_selector": ["translate", "text"]})
    assert errors_of(build_spec(nodes, edges)) == [
        ("not_upstream", "end", "data.outputs[1].value_selector")
    ]


def test_an_iteration_output_must_come_from_its_children(build_spec):
    nodes, edges = iteration_graph()
    nodes[1]["data"]["output_selector"] = ["end", "all"]
    assert errors_of(build_spec(nodes, edges)) == [
        ("not_upstream", "loop1", "data.output_selector")
    ]


def test_a_cycle_inside_a_container_is_found_there(build_spec):
    nodes, edges = iteration_graph()
    nodes.append(
        make_node("polish", "template-transform", parent="loop1", template="", variables=[])
    )
    edges += [make_edge("translate", "polish"), make_edge("polish", "translate")]
    errors = validate(build_spec(nodes, edges))
    assert [(e.code, e.node_id) for e in errors] == [("cycle", "polish")]
    assert "in container loop1" in errors[0].message


def test_an_edge_across_a_container_boundary(build_spec):
    nodes, edges = iteration_graph()
    assert codes(build_spec(nodes, [*edges, make_edge("start", "translate")])) == [
        "cross_container_edge"
    ]


def test_a_child_whose_parent_is_not_a_container(build_spec):
    nodes, edges = iteration_graph()
    nodes[3]["parentId"] = "start"
    found = errors_of(build_spec(nodes, edges))
    assert ("bad_parent", "translate", "parentId") in found


def test_a_container_start_that_is_not_its_child(build_spec):
    nodes, edges = iteration_graph()
    nodes[1]["data"]["start_node_id"] = "end"
    assert errors_of(build_spec(nodes, edges)) == [
        ("bad_start_node", "loop1", "data.start_node_id")
    ]


def loop_graph():
    """start → loop (counter, until counter ≥ 3; body: begin → bump → stop) → end."""
    nodes = [
        make_node("start", "start", variables=[]),
        make_node(
            "loop",
            "loop",
            loop_count=5,
            start_node_id="begin",
            logical_operator="and",
            loop_variables=[
                {"label": "counter", "var_type": "number", "value_type": "constant", "value": 0}
            ],
            break_conditions=[
                {"variable_selector": ["loop", "counter"], "comparison_operator": "≥", "value": "3"}
            ],
        ),
        make_node("begin", "loop-start", parent="loop"),
        make_node(
            "bump",
            "assigner",
            parent="loop",
            version="2",
            items=[
                {
                    "variable_selector": ["loop", "counter"],
                    "input_type": "constant",
                    "operation": "+=",
                    "value": 1,
                }
            ],
        ),
        make_node("stop", "loop-end", parent="loop"),
        make_node("end", "end", outputs=[{"variable": "n", "value_selector": ["loop", "counter"]}]),
    ]
    edges = [
        make_edge("start", "loop"),
        make_edge("begin", "bump"),
        make_edge("bump", "stop"),
        make_edge("loop", "end"),
    ]
    return nodes, edges


def test_a_loop_reads_and_writes_its_variables(build_spec):
    nodes, edges = loop_graph()
    assert validate(build_spec(nodes, edges)) == []


def test_inside_a_loop_an_undeclared_loop_variable_is_dangling(build_spec):
    nodes, edges = loop_graph()
    nodes[3]["data"]["items"][0]["variable_selector"] = ["loop", "counte"]
    assert errors_of(build_spec(nodes, edges)) == [
        ("dangling_selector", "bump", "data.items[0].variable_selector")
    ]


def test_nothing_leaves_a_loop_end(build_spec):
    nodes, edges = loop_graph()
    nodes.append(make_node("after", "template-transform", parent="loop", template="", variables=[]))
    assert errors_of(build_spec(nodes, [*edges, make_edge("stop", "after")])) == [
        ("bad_source_handle", "stop", "sourceHandle")
    ]


def test_duplicate_ids(build_spec):
    nodes = [*linear_nodes(), make_node("llm", "answer", answer="")]
    edges = [*linear_edges(), make_edge("start", "llm")]
    assert codes(build_spec(nodes, edges)) == ["duplicate_node_id", "duplicate_edge_id"]
