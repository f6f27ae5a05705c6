"""Flow and data executors on small graphs: the condition evaluator, if-else, aggregator,
assigner, list operator, template transform, iteration, loop and human input."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from typing import Any

import pytest

from workflows.dsl import Graph, HumanInputData
from workflows.dsl.base import Condition
from workflows.engine import (
    REGISTRY,
    NodeContext,
    NodeExecutor,
    NodeFailed,
    NodeResult,
    RunContext,
    RuntimeGraph,
    VariablePool,
    WorkflowRun,
)
from workflows.engine.events import (
    IterationCompleted,
    IterationNext,
    IterationStarted,
    LoopCompleted,
    LoopNext,
    LoopStarted,
    NodeStarted,
)
from workflows.nodes import template
from workflows.nodes.conditions import ConditionError, compare, evaluate
from workflows.nodes.human import submission

from .conftest import make_edge, make_node
from .helpers import end, finished, start

CALLS: list[Any] = []
RUNNING = {"now": 0, "peak": 0}


class Const(NodeExecutor):
    """Outputs its `value` as it is written (lists, objects …)."""

    types = ("t-const",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        CALLS.append(self.node.id)
        return NodeResult(outputs={"value": self.data.model_extra.get("value")})


class Echo(NodeExecutor):
    """Outputs the value at `selector`. A dict item may ask it to sleep, fail, or give `out`."""

    types = ("t-echo",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        value = ctx.get(self.data.model_extra["selector"])
        CALLS.append(value)
        RUNNING["now"] += 1
        RUNNING["peak"] = max(RUNNING["peak"], RUNNING["now"])
        try:
            if isinstance(value, dict):
                await asyncio.sleep(value.get("sleep", 0))
                if value.get("fail"):
                    raise NodeFailed(f"item {value['name']} is bad", error_type="BadItem")
                value = value.get("out", value.get("name"))
        finally:
            RUNNING["now"] -= 1
        return NodeResult(outputs={"value": value})


@pytest.fixture(autouse=True)
def executors():
    added = [Const, Echo]
    for cls in added:
        for node_type in cls.types:
            REGISTRY[node_type] = cls
    CALLS.clear()
    RUNNING.update(now=0, peak=0)
    yield
    for cls in added:
        for node_type in cls.types:
            REGISTRY.pop(node_type, None)


def run_flow(
    nodes: list[dict],
    edges: list[dict],
    inputs: dict | None = None,
    *,
    conversation: dict | None = None,
    **context: Any,
) -> tuple[WorkflowRun, list]:
    graph = RuntimeGraph.build(Graph.model_validate({"nodes": nodes, "edges": edges}))
    pool = VariablePool(system={"query": "hello"}, environment={}, conversation=conversation or {})
    run = WorkflowRun(graph, RunContext(workflow_id="wf", inputs=inputs or {}, **context), pool)

    async def collect() -> list:
        return [event async for event in run.events(inputs)]

    return run, asyncio.run(collect())


def chain(*ids: str) -> list[dict]:
    return [make_edge(a, b) for a, b in itertools.pairwise(ids)]


def const(node_id: str, value: Any, **data: Any) -> dict:
    return make_node(node_id, "t-const", value=value, **data)


def cond(selector: list[str], operator: str, value: Any = None, **extra: Any) -> dict:
    return {
        "variable_selector": selector,
        "comparison_operator": operator,
        "value": value,
        **extra,
    }


# --- The condition evaluator -------------------------------------------------------------

OPERATOR_CASES = [
    ("contains", "hello world", "world", True),
    ("contains", "hello", "x", False),
    ("contains", None, "x", False),
    ("contains", ["a", "b"], "b", True),
    ("contains", [1, 2, 3], "2", True),
    ("contains", [True, False], "true", True),
    ("contains", [False], "1", False),
    ("not contains", "hello", "x", True),
    ("not contains", "hello", "ell", False),
    ("not contains", None, "x", True),
    ("not contains", ["a"], "a", False),
    ("start with", "hello", "he", True),
    ("start with", "hello", "lo", False),
    ("start with", None, "he", False),
    ("end with", "hello", "lo", True),
    ("end with", "hello", "he", False),
    ("is", "abc", "abc", True),
    ("is", "abc", "abd", False),
    ("is", None, "abc", False),
    ("is", True, "true", True),
    ("is", False, "true", False),
    ("is not", "abc", "abd", True),
    ("is not", "abc", "abc", False),
    ("is not", None, "abc", False),
    ("is not", True, "false", True),
    ("empty", "", None, True),
    ("empty", [], None, True),
    ("empty", {}, None, True),
    ("empty", None, None, True),
    ("empty", "x", None, False),
    ("empty", [0], None, False),
    ("not empty", "x", None, True),
    ("not empty", "", None, False),
    ("not empty", {"a": 1}, None, True),
    ("in", "b", ["a", "b"], True),
    ("in", "c", ["a", "b"], False),
    ("in", 2, ["1", "2"], True),
    ("in", "", ["a"], False),
    ("in", "ell", "hello", True),
    ("not in", "c", ["a", "b"], True),
    ("not in", "a", ["a"], False),
    ("not in", None, ["a"], True),
    ("all of", ["a", "b", "c"], ["a", "c"], True),
    ("all of", ["a"], ["a", "c"], False),
    ("all of", "abc", ["a", "c"], True),
    ("all of", [], ["a"], False),
    ("=", 3, "3", True),
    ("=", 3, "3.0", True),
    ("=", 2.5, "2.5", True),
    ("=", 3, "4", False),
    ("=", 3, 3, True),
    ("=", True, "1", True),
    ("=", None, "1", False),
    ("≠", 3, "4", True),
    ("≠", 3, 3, False),
    ("≠", False, "true", True),
    (">", 5, "3", True),
    (">", 3, "3", False),
    (">", 3, "2.5", True),
    ("<", 2, "3", True),
    ("<", 3, "3", False),
    ("≥", 3, "3", True),
    ("≥", 2, "3", False),
    ("≤", 3, "3", True),
    ("≤", 4, "3", False),
    ("≤", None, "3", False),
    ("null", None, None, True),
    ("null", 0, None, False),
    ("not null", "", None, True),
    ("not null", None, None, False),
    ("exists", 0, None, True),
    ("exists", None, None, False),
    ("not exists", None, None, True),
    ("not exists", [], None, False),
]


@pytest.mark.parametrize(("operator", "actual", "expected", "result"), OPERATOR_CASES)
def test_every_operator_over_every_type(operator, actual, expected, result):
    assert compare(operator, actual, expected) is result


@pytest.mark.parametrize(
    ("operator", "actual", "expected", "message"),
    [
        ("contains", 5, "5", "needs text or a list, not a number"),
        ("start with", ["a"], "a", "needs text, not a list"),
        ("is", 3, "3", "needs text or a boolean, not a number"),
        (">", "5", "3", "needs a number, not text"),
        (">", True, "0", "needs a number, not a boolean"),
        ("=", 3, "abc", "“abc” is not a number"),
        ("=", True, "maybe", "is not true or false"),
        ("all of", ["a"], "a", "needs a list of values"),
        ("in", "a", 5, "needs a list of values, not a number"),
        ("≤", {"a": 1}, "1", "needs a number, not an object"),
        ("like", "a", "a", "Unknown comparison operator"),
    ],
)
def test_values_of_the_wrong_type_are_reported(operator, actual, expected, message):
    with pytest.raises(ConditionError, match=message):
        compare(operator, actual, expected)


def pool_with(**outputs: dict) -> VariablePool:
    pool = VariablePool(system={}, environment={}, conversation={})
    for node_id, values in outputs.items():
        pool.set_outputs(node_id, values)
    return pool


def conditions(*items: dict) -> list[Condition]:
    return [Condition.model_validate(item) for item in items]


def test_values_are_templates_and_numbers_may_be_variables():
    pool = pool_with(start={"n": 5, "limit": 4, "name": "Ada"})
    check = conditions(
        cond(["start", "n"], ">", "{{#start.limit#}}", numberVarType="variable"),
        cond(["start", "n"], "≤", "5", numberVarType="constant"),
        cond(["start", "name"], "is", "{{#start.name#}}"),
    )
    evaluation = evaluate(pool, check, "and")
    assert evaluation.result is True and evaluation.results == [True, True, True]
    assert evaluation.conditions[0]["expected_value"] == "4"
    assert evaluation.conditions[0]["actual_value"] == 5
    pool.set(["start", "limit"], 7)
    assert evaluate(pool, check, "and").result is False


def test_and_or_stop_at_the_deciding_condition():
    pool = pool_with(start={"n": 5, "text": "x"})
    # The second condition cannot be evaluated (a number compared as text), but the first decides.
    broken = cond(["start", "n"], "start with", "5")
    assert evaluate(pool, conditions(cond(["start", "n"], "<", "1"), broken), "and").result is False
    assert evaluate(pool, conditions(cond(["start", "n"], ">", "1"), broken), "or").result is True
    with pytest.raises(ConditionError, match=r"Condition on start\.n"):
        evaluate(pool, conditions(cond(["start", "n"], ">", "1"), broken), "and")
    # A missing variable is None: null holds, contains does not.
    assert evaluate(pool, conditions(cond(["gone", "x"], "null")), "and").result is True
    assert evaluate(pool, conditions(cond(["gone", "x"], "contains", "a")), "or").result is False


FILES = [
    {
        "transfer_method": "local_file",
        "filename": "report.pdf",
        "extension": "pdf",
        "type": "document",
        "size": 100,
    },
    {
        "transfer_method": "remote_url",
        "filename": "photo.png",
        "extension": ".png",
        "type": "image",
        "size": 5000,
    },
]


@pytest.mark.parametrize(
    ("operator", "subs", "logical", "result"),
    [
        ("contains", [("extension", "is", "pdf")], "and", True),
        ("contains", [("extension", "is", ".doc")], "and", False),
        ("contains", [("type", "in", ["image", "video"]), ("size", ">", "1000")], "and", True),
        ("contains", [("name", "start with", "photo"), ("type", "is", "video")], "and", False),
        ("contains", [("name", "start with", "photo"), ("type", "is", "video")], "or", True),
        ("contains", [("type", "not in", ["video"])], "and", True),
        ("contains", [("type", "not in", ["image"])], "and", False),
        ("not contains", [("type", "is", "image")], "and", False),
        ("not contains", [("type", "is", "video")], "and", True),
        ("all of", [("size", ">", "50")], "and", True),
        ("all of", [("type", "is", "image")], "and", False),
    ],
)
def test_file_lists_are_tested_by_their_attributes(operator, subs, logical, result):
    pool = pool_with(start={"files": FILES})
    sub = {
        "logical_operator": logical,
        "conditions": [{"key": k, "comparison_operator": o, "value": v} for k, o, v in subs],
    }
    check = conditions(cond(["start", "files"], operator, sub_variable_condition=sub))
    assert evaluate(pool, check, "and").result is result


def test_a_file_attribute_that_does_not_exist_is_an_error():
    pool = pool_with(start={"files": FILES})
    sub = {"conditions": [{"key": "colour", "comparison_operator": "is", "value": "red"}]}
    with pytest.raises(ConditionError, match="no attribute “colour”"):
        evaluate(
            pool,
            conditions(cond(["start", "files"], "contains", sub_variable_condition=sub)),
            "and",
        )


# --- If-else --------------------------------------------------------------------------------


def if_else_graph(**data: Any) -> tuple[list[dict], list[dict]]:
    nodes = [
        start("kind", "n"),
        make_node("check", "if-else", **data),
        const("a", "A"),
        const("b", "B"),
        const("other", "other"),
        make_node(
            "join",
            "variable-aggregator",
            variables=[["a", "value"], ["b", "value"], ["other", "value"]],
        ),
        end(picked=["join", "output"], case=["check", "selected_case_id"], ok=["check", "result"]),
    ]
    edges = [
        make_edge("start", "check"),
        make_edge("check", "a", "case-a"),
        make_edge("check", "b", "case-b"),
        make_edge("check", "other", "false"),
        *(make_edge(x, "join") for x in ("a", "b", "other")),
        make_edge("join", "end"),
    ]
    return nodes, edges


CASES = [
    {
        "case_id": "case-a",
        "logical_operator": "and",
        "conditions": [cond(["start", "kind"], "is", "alpha"), cond(["start", "n"], "not empty")],
    },
    {
        "case_id": "case-b",
        "logical_operator": "or",
        "conditions": [
            cond(["start", "kind"], "start with", "be"),
            cond(["start", "kind"], "is", "alpha"),
        ],
    },
]


@pytest.mark.parametrize(
    ("kind", "picked", "case", "calls"),
    [
        ("alpha", "A", "case-a", ["a"]),  # both cases hold: the first wins
        ("beta", "B", "case-b", ["b"]),
        ("gamma", "other", None, ["other"]),
    ],
)
def test_if_else_takes_the_first_holding_case(kind, picked, case, calls):
    run, events = run_flow(*if_else_graph(cases=CASES), {"kind": kind, "n": "1"})
    assert run.status == "succeeded"
    assert events[-1].outputs == {"picked": picked, "case": case, "ok": case is not None}
    assert CALLS == calls


def test_if_else_records_the_evaluated_conditions():
    _run, events = run_flow(*if_else_graph(cases=CASES), {"kind": "beta", "n": "1"})
    check = finished(events)["check"]
    assert check.inputs == {
        "conditions": [
            {
                "variable_selector": ["start", "kind"],
                "comparison_operator": "is",
                "actual_value": "beta",
                "expected_value": "alpha",
            },
            {
                "variable_selector": ["start", "kind"],
                "comparison_operator": "start with",
                "actual_value": "beta",
                "expected_value": "be",
            },
        ]
    }
    results = check.process_data["condition_results"]
    assert [(r["group"]["case_id"], r["results"], r["final_result"]) for r in results] == [
        ("case-a", [False], False),
        ("case-b", [True], True),
    ]


@pytest.mark.parametrize(
    ("kind", "picked", "case"), [("alpha", "A", "true"), ("beta", "other", "false")]
)
def test_if_else_legacy_single_case(kind, picked, case):
    nodes, edges = if_else_graph(
        logical_operator="and", conditions=[cond(["start", "kind"], "is", "alpha")]
    )
    edges[1] = make_edge("check", "a", "true")
    run, events = run_flow(nodes, edges, {"kind": kind, "n": ""})
    assert run.status == "succeeded"
    assert events[-1].outputs == {"picked": picked, "case": case, "ok": case == "true"}
    assert finished(events)["check"].process_data["condition_results"][0]["group"] == "default"


def test_if_else_fails_on_a_value_of_the_wrong_type():
    bad = [{"case_id": "case-a", "conditions": [cond(["start", "kind"], ">", "3")]}]
    run, events = run_flow(*if_else_graph(cases=bad), {"kind": "alpha"})
    assert run.status == "failed"
    check = finished(events)["check"]
    assert check.error_type == "ConditionError" and "needs a number, not text" in check.error


# --- Variable aggregator -----------------------------------------------------------------


def test_aggregator_groups_and_the_legacy_type():
    nodes = [
        start(),
        const("none", None),
        const("x", "X"),
        const("y", [1, 2]),
        make_node(
            "agg",
            "variable-aggregator",
            advanced_settings={
                "group_enabled": True,
                "groups": [
                    {"group_name": "text", "variables": [["none", "value"], ["x", "value"]]},
                    {"group_name": "list", "variables": [["missing", "v"], ["y", "value"]]},
                    {"group_name": "nothing", "variables": [["none", "value"]]},
                ],
            },
        ),
        make_node(
            "legacy",
            "variable-assigner",
            variables=[["missing", "v"], ["none", "value"], ["y", "value"]],
        ),
        end(groups=["agg", "text"], items=["agg", "list", "output"], legacy=["legacy", "output"]),
    ]
    run, events = run_flow(nodes, chain("start", "none", "x", "y", "agg", "legacy", "end"))
    assert run.status == "succeeded"
    assert events[-1].outputs == {"groups": {"output": "X"}, "items": [1, 2], "legacy": [1, 2]}
    assert finished(events)["agg"].outputs == {"text": {"output": "X"}, "list": {"output": [1, 2]}}
    assert finished(events)["legacy"].inputs == {"value": [1, 2]}


# --- Assigner -------------------------------------------------------------------------------


def assign(conversation: dict, *items: dict, extra_nodes: tuple = ()) -> tuple[WorkflowRun, list]:
    nodes = [
        start(),
        *extra_nodes,
        make_node("assign", "assigner", version="2", items=list(items)),
        end(),
    ]
    ids = ["start", *(n["id"] for n in extra_nodes), "assign", "end"]
    return run_flow(nodes, chain(*ids), conversation=conversation)


def item(name: str, operation: str, value: Any = None, input_type: str = "constant") -> dict:
    return {
        "variable_selector": ["conversation", name],
        "operation": operation,
        "input_type": input_type,
        "value": value,
    }


@pytest.mark.parametrize(
    ("initial", "operation", "value", "after"),
    [
        ("old", "over-write", "new", "new"),
        ("old", "set", "new", "new"),
        ("old", "clear", None, ""),
        ({"a": 1}, "set", '{"b": 2}', {"b": 2}),
        ({"a": 1}, "clear", None, {}),
        (10, "+=", 5, 15),
        (10, "-=", 3, 7),
        (10, "*=", 2.5, 25.0),
        (10, "/=", 4, 2.5),
        (10, "clear", None, 0),
        (True, "set", False, False),
        (True, "clear", None, False),
        (["a", "b", "c"], "remove-first", None, ["b", "c"]),
        (["a", "b", "c"], "remove-last", None, ["a", "b"]),
        ([], "remove-first", None, []),
        ([1, 2], "clear", None, []),
    ],
)
def test_assigner_operations_on_conversation_variables(initial, operation, value, after):
    run, events = assign({"v": initial}, item("v", operation, value))
    assert run.status == "succeeded", run.error
    assert run.pool.conversation_values() == {"v": after}
    process = finished(events)["assign"].process_data
    assert process["v"] == after
    assert process["__updated_variables"][0]["selector"] == ["conversation", "v"]


def test_assigner_append_and_extend_take_variables():
    run, _ = assign(
        {"tags": ["a"], "more": ["c", "d"]},
        item("tags", "append", ["source", "value"], "variable"),
        item("tags", "extend", ["conversation", "more"], "variable"),
        # A later item reads what an earlier one wrote.
        item("more", "over-write", ["conversation", "tags"], "variable"),
        extra_nodes=(const("source", "b"),),
    )
    assert run.status == "succeeded", run.error
    assert run.pool.conversation_values() == {
        "tags": ["a", "b", "c", "d"],
        "more": ["a", "b", "c", "d"],
    }


def test_assigner_skips_a_source_holding_nothing():
    run, _ = assign(
        {"v": "kept"},
        item("v", "over-write", ["source", "value"], "variable"),
        extra_nodes=(const("source", None),),
    )
    assert run.status == "succeeded" and run.pool.conversation_values() == {"v": "kept"}


@pytest.mark.parametrize(
    ("conversation", "items", "error_type", "message"),
    [
        ({"tags": ["a"]}, [item("tags", "append", 3)], "InputTypeNotSupported", None),
        (
            {"tags": ["a"]},
            [item("tags", "append", ["n", "value"], "variable")],
            "InvalidInputValue",
            "append",
        ),
        ({"name": "x"}, [item("name", "+=", 1)], "OperationNotSupported", "a string variable"),
        (
            {"n": 1},
            [item("n", "+=", ["n2", "value"], "variable")],
            "InputTypeNotSupported",
            "cannot take a variable value",
        ),
        ({"n": 1}, [item("n", "/=", 0)], "InvalidInputValue", None),
        ({"n": 1}, [item("n", "over-write", "one")], "InvalidInputValue", None),
        ({"obj": {}}, [item("obj", "set", "not json")], "InvalidInputValue", None),
        ({}, [item("ghost", "over-write", "x")], "VariableNotFound", "conversation.ghost"),
        (
            {"n": 1},
            [item("n", "over-write", ["nowhere", "v"], "variable")],
            "VariableNotFound",
            "nowhere.v",
        ),
    ],
)
def test_assigner_refuses_bad_types_and_changes_nothing(conversation, items, error_type, message):
    before = dict(conversation)
    # The first item would succeed on its own: a failing node must not leave it applied.
    first = item("n", "over-write", 99) if "n" in conversation else None
    run, events = assign(
        conversation, *([first] if first else []), *items, extra_nodes=(const("n", 3),)
    )
    assert run.status == "failed"
    failure = finished(events)["assign"]
    assert failure.error_type == error_type
    if message:
        assert message in failure.error
    assert run.pool.conversation_values() == before


def test_assigner_cannot_assign_node_outputs():
    nodes_items = {
        "variable_selector": ["source", "value"],
        "operation": "over-write",
        "input_type": "constant",
        "value": "x",
    }
    run, events = assign({}, nodes_items, extra_nodes=(const("source", "a"),))
    assert run.status == "failed"
    assert finished(events)["assign"].error_type == "VariableNotAssignable"


def test_assigner_version_1():
    nodes = [
        start(),
        const("source", "b"),
        make_node(
            "v1a",
            "assigner",
            assigned_variable_selector=["conversation", "tags"],
            write_mode="append",
            input_variable_selector=["source", "value"],
        ),
        make_node(
            "v1b",
            "assigner",
            assigned_variable_selector=["conversation", "name"],
            write_mode="over-write",
            input_variable_selector=["source", "value"],
        ),
        make_node(
            "v1c",
            "assigner",
            assigned_variable_selector=["conversation", "count"],
            write_mode="clear",
        ),
        end(),
    ]
    run, _ = run_flow(
        nodes,
        chain("start", "source", "v1a", "v1b", "v1c", "end"),
        conversation={"tags": ["a"], "name": "x", "count": 4},
    )
    assert run.status == "succeeded", run.error
    assert run.pool.conversation_values() == {"tags": ["a", "b"], "name": "b", "count": 0}


# --- List operator ---------------------------------------------------------------------------


def list_op(value: Any, **data: Any) -> tuple[WorkflowRun, dict]:
    nodes = [
        start("pos"),
        const("src", value),
        make_node("ops", "list-operator", variable=["src", "value"], **data),
        end(),
    ]
    run, events = run_flow(nodes, chain("start", "src", "ops", "end"), {"pos": "2"})
    node = finished(events)["ops"]
    return run, node.outputs or {"error": node.error, "error_type": node.error_type}


def test_list_operator_filters_sorts_and_limits_numbers():
    run, out = list_op(
        [5, 1, 9, 3, 7],
        filter_by={"enabled": True, "conditions": [{"comparison_operator": ">", "value": "2"}]},
        order_by={"enabled": True, "value": "desc"},
        limit={"enabled": True, "size": 3},
    )
    assert run.status == "succeeded"
    assert out == {"result": [9, 7, 5], "first_record": 9, "last_record": 5}


def test_list_operator_filters_strings_with_templates_and_picks_by_position():
    _, out = list_op(
        ["apple", "banana", "avocado", "cherry"],
        filter_by={
            "enabled": True,
            "conditions": [{"comparison_operator": "start with", "value": "a"}],
        },
        extract_by={"enabled": True, "serial": "{{#start.pos#}}"},
    )
    assert out == {"result": ["avocado"], "first_record": "avocado", "last_record": "avocado"}


def test_list_operator_on_files_and_objects():
    _, out = list_op(
        [*FILES, {**FILES[0], "filename": "notes.pdf", "size": 10}],
        filter_by={
            "enabled": True,
            "conditions": [{"key": "extension", "comparison_operator": "is", "value": ".pdf"}],
        },
        order_by={"enabled": True, "key": "size", "value": "asc"},
    )
    assert [f["filename"] for f in out["result"]] == ["notes.pdf", "report.pdf"]
    _, out = list_op(
        [{"n": "b", "age": 3}, {"n": "a", "age": 9}, {"n": "c"}],
        order_by={"enabled": True, "key": "age", "value": "desc"},
    )
    # Items without the key go last.
    assert [o["n"] for o in out["result"]] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("value", "data", "result", "error_type"),
    [
        ([], {"limit": {"enabled": True, "size": 1}}, [], None),
        (None, {}, [], None),
        ([1, 2], {"extract_by": {"enabled": True, "serial": "3"}}, None, "InvalidSerial"),
        ([1, 2], {"extract_by": {"enabled": True, "serial": "0"}}, None, "InvalidSerial"),
        ("text", {}, None, "InvalidVariable"),
        ([1, "a"], {"order_by": {"enabled": True}}, None, "ListOperatorError"),
        (
            ["a"],
            {
                "filter_by": {
                    "enabled": True,
                    "conditions": [{"comparison_operator": ">", "value": "1"}],
                }
            },
            None,
            "ListOperatorError",
        ),
    ],
)
def test_list_operator_edges(value, data, result, error_type):
    run, out = list_op(value, **data)
    if error_type is None:
        assert out == {"result": result, "first_record": None, "last_record": None}
    else:
        assert run.status == "failed" and out["error_type"] == error_type


# --- Template transform ---------------------------------------------------------------------


def transform(source: str, **values: Any) -> tuple[WorkflowRun, dict]:
    nodes = [
        start(),
        *(const(name, value) for name, value in values.items()),
        make_node(
            "tpl",
            "template-transform",
            template=source,
            variables=[{"variable": n, "value_selector": [n, "value"]} for n in values],
        ),
        end(out=["tpl", "output"]),
    ]
    run, events = run_flow(nodes, chain("start", *values, "tpl", "end"))
    node = finished(events)["tpl"]
    return run, node.outputs or {"error": node.error, "error_type": node.error_type}


def test_template_transform_renders_its_variables():
    run, out = transform(
        "Dear {{ name }},\n{% for item in items %}- {{ item.title | upper }}\n{% endfor %}",
        name="Ada",
        items=[{"title": "one"}, {"title": "two"}],
    )
    assert run.status == "succeeded"
    assert out == {"output": "Dear Ada,\n- ONE\n- TWO\n"}


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ items.__class__ }}",
        "{{ items.append(4) }}",
        "{% set d = {} %}{{ d.update(a=1) }}",
        "{{ 'x' * 10000000 }}",
        "{{ 10 ** 100000 }}",
    ],
)
def test_template_sandbox_refuses_escapes(source):
    run, out = transform(source, items=[1, 2, 3])
    assert run.status == "failed"
    assert out["error_type"] == "SecurityError", out
    assert "not allowed on line 1" in out["error"]


@pytest.mark.parametrize(
    ("source", "error_type", "message"),
    [
        ("ok\n{% for x in items %}\n{{ x }\n", "TemplateSyntaxError", "syntax error on line 3"),
        ("line one\nline two\n{{ items.missing.deeper }}", "UndefinedError", "error on line 3"),
        ("{% for i in range(20) %}{{ 'x' * 30000 }}{% endfor %}", "OutputTooLong", "400000"),
    ],
)
def test_template_errors_name_their_line(source, error_type, message):
    run, out = transform(source, items={})
    assert run.status == "failed"
    assert out["error_type"] == error_type and message in out["error"], out


def test_a_template_that_never_ends_is_stopped(monkeypatch):
    monkeypatch.setattr(template, "TEMPLATE_TIMEOUT_S", 0.3)
    began = time.perf_counter()
    run, out = transform(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}done"
    )
    assert time.perf_counter() - began < 5
    assert run.status == "failed" and out["error_type"] == "TemplateTimeout"
    # The rendering thread itself was stopped, not left running in the background.
    assert not [t for t in threading.enumerate() if t.name == "template-transform"]


# --- Iteration -------------------------------------------------------------------------------


def iteration(items: Any, **data: Any) -> tuple[WorkflowRun, list]:
    nodes = [
        start(),
        const("list", items),
        make_node(
            "it",
            "iteration",
            iterator_selector=["list", "value"],
            output_selector=["echo", "value"],
            **data,
        ),
        make_node("it-start", "iteration-start", parent="it"),
        make_node("echo", "t-echo", parent="it", selector=["it", "item"]),
        end(out=["it", "output"]),
    ]
    return run_flow(nodes, [*chain("start", "list", "it", "end"), make_edge("it-start", "echo")])


def test_iteration_runs_in_order_and_emits_dify_events():
    run, events = iteration(["a", "b", "c"])
    assert run.status == "succeeded"
    assert events[-1].outputs == {"out": ["a", "b", "c"]}
    assert CALLS[1:] == ["a", "b", "c"]
    started = next(e for e in events if isinstance(e, IterationStarted))
    assert started.inputs == {"iterator_selector": ["a", "b", "c"]}
    assert started.metadata == {"iteration_length": 3}
    assert started.id == started.node_id == "it"
    assert [e.index for e in events if isinstance(e, IterationNext)] == [0, 1, 2]
    done = next(e for e in events if isinstance(e, IterationCompleted))
    assert (
        done.status == "succeeded"
        and done.outputs == {"output": ["a", "b", "c"]}
        and done.steps == 3
    )
    echoes = [e for e in events if isinstance(e, NodeStarted) and e.node_id == "echo"]
    assert [(e.iteration_id, e.iteration_index) for e in echoes] == [
        ("it", 0),
        ("it", 1),
        ("it", 2),
    ]
    # Order of events: started, then the rounds, then completed, then the node's own finish.
    kinds = [type(e).__name__ for e in events]
    assert (
        kinds.index("IterationStarted")
        < kinds.index("IterationNext")
        < kinds.index("IterationCompleted")
    )
    assert events.index(done) < events.index(finished(events)["it"])


def test_iteration_index_is_visible_in_the_body():
    nodes = [
        start(),
        const("list", ["x", "y"]),
        make_node(
            "it", "iteration", iterator_selector=["list", "value"], output_selector=["idx", "value"]
        ),
        make_node("it-start", "iteration-start", parent="it"),
        make_node("idx", "t-echo", parent="it", selector=["it", "index"]),
        end(out=["it", "output"]),
    ]
    _run, events = run_flow(
        nodes, [*chain("start", "list", "it", "end"), make_edge("it-start", "idx")]
    )
    assert events[-1].outputs == {"out": [0, 1]}


def test_parallel_iteration_runs_rounds_at_once_and_keeps_order():
    # The first item is the slowest, so finishing order is the reverse of item order.
    items = [{"name": f"i{n}", "sleep": 0.4 - n * 0.1} for n in range(4)]
    began = time.perf_counter()
    run, events = iteration(items, is_parallel=True, parallel_nums=4)
    elapsed = time.perf_counter() - began
    assert run.status == "succeeded"
    assert events[-1].outputs == {"out": ["i0", "i1", "i2", "i3"]}
    assert elapsed < 0.8, elapsed  # 0.4 s side by side, not 1.0 s one after another
    assert RUNNING["peak"] == 4


def test_parallel_iteration_runs_at_most_parallel_nums_at_once():
    items = [{"name": f"i{n}", "sleep": 0.2} for n in range(6)]
    began = time.perf_counter()
    run, events = iteration(items, is_parallel=True, parallel_nums=2)
    assert run.status == "succeeded"
    assert RUNNING["peak"] == 2
    assert time.perf_counter() - began >= 0.6  # three waves of two
    assert events[-1].outputs == {"out": [f"i{n}" for n in range(6)]}


BAD_ITEMS = [{"name": "one"}, {"name": "two", "fail": True}, {"name": "three"}]


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(
    ("mode", "output"),
    [
        ("continue-on-error", ["one", None, "three"]),
        ("remove-abnormal-output", ["one", "three"]),
    ],
)
def test_iteration_error_modes_that_carry_on(parallel, mode, output):
    run, events = iteration(
        BAD_ITEMS, is_parallel=parallel, error_handle_mode=mode, flatten_output=False
    )
    assert run.status == "succeeded"
    assert events[-1].outputs == {"out": output}


@pytest.mark.parametrize("parallel", [False, True])
def test_iteration_terminated_mode_fails_at_the_first_failure(parallel):
    items = [
        {"name": "one", "sleep": 0.05},
        {"name": "two", "fail": True},
        {"name": "three", "sleep": 2},
    ]
    began = time.perf_counter()
    run, events = iteration(items, is_parallel=parallel, error_handle_mode="terminated")
    assert time.perf_counter() - began < 1.5  # the slow round was cancelled (or never ran)
    assert run.status == "failed"
    node = finished(events)["it"]
    assert node.status == "failed" and node.error_type == "BadItem"
    assert "Round 1 failed" in node.error and "item two is bad" in node.error
    done = next(e for e in events if isinstance(e, IterationCompleted))
    assert done.status == "failed" and "item two is bad" in done.error
    if not parallel:
        assert [c["name"] for c in CALLS if isinstance(c, dict)] == ["one", "two"]


def test_iteration_flattens_lists_of_lists():
    items = [{"name": "a", "out": [1, 2]}, {"name": "b", "out": [3]}, {"name": "c", "out": None}]
    _, events = iteration(items)
    assert events[-1].outputs == {"out": [1, 2, 3]}
    _, events = iteration(items, flatten_output=False)
    assert events[-1].outputs == {"out": [[1, 2], [3], None]}


@pytest.mark.parametrize("empty", [[], None])
def test_iteration_over_nothing_gives_an_empty_list_without_running_the_body(empty):
    run, events = iteration(empty)
    assert run.status == "succeeded" and events[-1].outputs == {"out": []}
    assert CALLS == ["list"]
    assert not any(isinstance(e, IterationStarted) for e in events)


@pytest.mark.parametrize(
    ("value", "error_type"),
    [("not a list", "InvalidIteratorValue"), ({"a": 1}, "InvalidIteratorValue")],
)
def test_iteration_needs_a_list(value, error_type):
    run, events = iteration(value)
    assert run.status == "failed"
    assert finished(events)["it"].error_type == error_type
    assert "needs a list" in finished(events)["it"].error


def test_iteration_over_a_missing_variable_fails():
    nodes = [
        start(),
        make_node(
            "it",
            "iteration",
            iterator_selector=["nowhere", "items"],
            output_selector=["echo", "value"],
        ),
        make_node("it-start", "iteration-start", parent="it"),
        make_node("echo", "t-echo", parent="it", selector=["it", "item"]),
        end(),
    ]
    run, events = run_flow(nodes, [*chain("start", "it", "end"), make_edge("it-start", "echo")])
    assert run.status == "failed"
    assert finished(events)["it"].error_type == "IteratorVariableNotFound"


def test_conversation_variables_written_in_parallel_rounds_persist():
    nodes = [
        start(),
        const("list", ["a", "b", "c"]),
        make_node(
            "it",
            "iteration",
            iterator_selector=["list", "value"],
            output_selector=["it", "item"],
            is_parallel=True,
        ),
        make_node("it-start", "iteration-start", parent="it"),
        make_node(
            "add",
            "assigner",
            parent="it",
            version="2",
            items=[
                {
                    "variable_selector": ["conversation", "seen"],
                    "input_type": "variable",
                    "operation": "append",
                    "value": ["it", "item"],
                }
            ],
        ),
        end(),
    ]
    run, _ = run_flow(
        nodes,
        [*chain("start", "list", "it", "end"), make_edge("it-start", "add")],
        conversation={"seen": []},
    )
    assert run.status == "succeeded", run.error
    assert sorted(run.pool.conversation_values()["seen"]) == ["a", "b", "c"]


# --- Loop ------------------------------------------------------------------------------------


def loop_graph(
    body: list[dict], body_edges: list[dict], **data: Any
) -> tuple[list[dict], list[dict]]:
    nodes = [
        start("begin"),
        make_node("loop", "loop", **data),
        make_node("loop-start", "loop-start", parent="loop"),
        *body,
        end(count=["loop", "count"], rounds=["loop", "loop_round"]),
    ]
    return nodes, [*chain("start", "loop", "end"), *body_edges]


def add_one(node_id: str = "add") -> dict:
    return make_node(
        node_id,
        "assigner",
        parent="loop",
        version="2",
        items=[
            {
                "variable_selector": ["loop", "count"],
                "input_type": "constant",
                "operation": "+=",
                "value": 1,
            }
        ],
    )


COUNT = [{"label": "count", "var_type": "number", "value_type": "constant", "value": "0"}]


def test_loop_runs_until_its_break_condition_holds():
    nodes, edges = loop_graph(
        [add_one()],
        [make_edge("loop-start", "add")],
        loop_count=10,
        loop_variables=COUNT,
        break_conditions=[cond(["loop", "count"], "≥", "3")],
    )
    run, events = run_flow(nodes, edges)
    assert run.status == "succeeded", run.error
    assert events[-1].outputs == {"count": 3, "rounds": 3}
    loop = finished(events)["loop"]
    assert loop.outputs == {"count": 3, "loop_round": 3}
    assert loop.process_data["completed_reason"] == "loop_break"
    assert loop.process_data["loop_variable_map"] == {
        "0": {"count": 1},
        "1": {"count": 2},
        "2": {"count": 3},
    }
    started = next(e for e in events if isinstance(e, LoopStarted))
    assert started.inputs == {"loop_count": 10, "count": 0} and started.metadata == {
        "loop_length": 10
    }
    assert [e.index for e in events if isinstance(e, LoopNext)] == [1, 2]
    done = next(e for e in events if isinstance(e, LoopCompleted))
    assert done.outputs == {"count": 3, "loop_round": 3} and done.steps == 3
    adds = [e for e in events if isinstance(e, NodeStarted) and e.node_id == "add"]
    assert [(e.loop_id, e.loop_index) for e in adds] == [("loop", 0), ("loop", 1), ("loop", 2)]


def test_loop_checks_its_break_condition_before_the_first_round():
    nodes, edges = loop_graph(
        [add_one()],
        [make_edge("loop-start", "add")],
        loop_count=10,
        loop_variables=[
            {
                "label": "count",
                "var_type": "number",
                "value_type": "variable",
                "value": ["start", "begin"],
            }
        ],
        break_conditions=[cond(["loop", "count"], "is", "stop")],
    )
    nodes[0] = make_node(
        "start", "start", variables=[{"variable": "begin", "label": "b", "type": "text-input"}]
    )
    run, events = run_flow(nodes, edges, {"begin": "stop"})
    assert run.status == "succeeded"
    assert events[-1].outputs == {"count": "stop", "rounds": 0}


def test_loop_end_node_ends_the_loop_after_its_round():
    body = [
        add_one(),
        make_node(
            "check",
            "if-else",
            parent="loop",
            cases=[{"case_id": "true", "conditions": [cond(["loop", "count"], "≥", "2")]}],
        ),
        make_node("stop", "loop-end", parent="loop"),
    ]
    nodes, edges = loop_graph(
        body,
        [
            make_edge("loop-start", "add"),
            make_edge("add", "check"),
            make_edge("check", "stop", "true"),
        ],
        loop_count=10,
        loop_variables=COUNT,
    )
    run, events = run_flow(nodes, edges)
    assert run.status == "succeeded", run.error
    assert events[-1].outputs == {"count": 2, "rounds": 2}
    assert finished(events)["loop"].process_data["completed_reason"] == "loop_end"


def test_loop_stops_at_loop_count_and_refuses_more_than_the_maximum():
    nodes, edges = loop_graph(
        [add_one()], [make_edge("loop-start", "add")], loop_count=4, loop_variables=COUNT
    )
    run, events = run_flow(nodes, edges)
    assert events[-1].outputs == {"count": 4, "rounds": 4}
    assert finished(events)["loop"].process_data["completed_reason"] == "loop_completed"
    assert [e.index for e in events if isinstance(e, LoopNext)] == [1, 2, 3]

    nodes, edges = loop_graph(
        [add_one()], [make_edge("loop-start", "add")], loop_count=101, loop_variables=COUNT
    )
    run, events = run_flow(nodes, edges)
    assert run.status == "failed"
    assert finished(events)["loop"].error_type == "LoopCountExceeded"
    assert not any(e.node_id == "add" for e in events if isinstance(e, NodeStarted))


def test_a_failing_child_fails_the_loop():
    nodes, edges = loop_graph(
        [add_one(), make_node("bad", "t-echo", parent="loop", selector=["boom", "value"])],
        [make_edge("loop-start", "add"), make_edge("add", "bad")],
        loop_count=5,
        loop_variables=COUNT,
    )
    nodes.insert(1, const("boom", {"name": "boom", "fail": True}))
    edges = [*chain("start", "boom", "loop", "end"), *edges[2:]]
    run, events = run_flow(nodes, edges)
    assert run.status == "failed"
    loop = finished(events)["loop"]
    assert loop.error_type == "BadItem" and "Round 0 failed" in loop.error
    assert len([e for e in events if isinstance(e, NodeStarted) and e.node_id == "add"]) == 1
    assert next(e for e in events if isinstance(e, LoopCompleted)).status == "failed"


def test_loop_variables_are_typed_constants():
    variables = [
        {"label": "count", "var_type": "number", "value_type": "constant", "value": "2.5"},
        {"label": "list", "var_type": "array[number]", "value_type": "constant", "value": "[1, 2]"},
        {"label": "flag", "var_type": "boolean", "value_type": "constant", "value": True},
    ]
    nodes, edges = loop_graph(
        [add_one()], [make_edge("loop-start", "add")], loop_count=1, loop_variables=variables
    )
    nodes[-1] = end(out=["loop", "list"], flag=["loop", "flag"], count=["loop", "count"])
    run, events = run_flow(nodes, edges)
    assert events[-1].outputs == {"out": [1, 2], "flag": True, "count": 3.5}

    variables[1]["value"] = '["a"]'
    run, events = run_flow(
        *loop_graph(
            [add_one()], [make_edge("loop-start", "add")], loop_count=1, loop_variables=variables
        )
    )
    assert run.status == "failed" and finished(events)["loop"].error_type == "InvalidLoopVariable"


def test_loop_rounds_count_toward_the_step_limit():
    nodes, edges = loop_graph(
        [add_one()], [make_edge("loop-start", "add")], loop_count=50, loop_variables=COUNT
    )
    run, _ = run_flow(nodes, edges, max_steps=20)
    assert run.status == "failed" and "20 node runs" in run.error


# --- Human input -----------------------------------------------------------------------------

REVIEW = {
    "form_content": "Approve the trip of {{#start.name#}}?\n\n{{#$outputs.reason#}}",
    "inputs": [
        {
            "type": "paragraph",
            "output_variable_name": "reason",
            "placeholder": {"type": "variable", "selector": ["start", "name"]},
        },
        {
            "type": "text_input",
            "output_variable_name": "note",
            "placeholder": {"type": "constant", "value": "n/a"},
        },
    ],
    "user_actions": [
        {"id": "approve", "title": "Approve", "button_style": "primary"},
        {"id": "reject", "title": "Reject"},
    ],
    "timeout": 2,
    "timeout_unit": "day",
}


def human_graph() -> tuple[list[dict], list[dict]]:
    nodes = [
        start("name"),
        make_node("review", "human-input", **REVIEW),
        const("yes", "approved"),
        const("no", "rejected"),
        make_node("join", "variable-aggregator", variables=[["yes", "value"], ["no", "value"]]),
        end(result=["join", "output"], reason=["review", "reason"], action=["review", "action_id"]),
    ]
    edges = [
        make_edge("start", "review"),
        make_edge("review", "yes", "approve"),
        make_edge("review", "no", "reject"),
        make_edge("yes", "join"),
        make_edge("no", "join"),
        make_edge("join", "end"),
    ]
    return nodes, edges


def test_human_input_pauses_with_its_form():
    before = int(time.time())
    run, events = run_flow(*human_graph(), {"name": "Ada"})
    assert run.status == "paused" and events[-1].event == "workflow_paused"
    form = events[-1].form
    assert form["form_content"] == "Approve the trip of Ada?\n\n{{#$outputs.reason#}}"
    assert form["inputs"] == [
        {"type": "paragraph", "output_variable_name": "reason", "default": "Ada"},
        {"type": "text_input", "output_variable_name": "note", "default": "n/a"},
    ]
    assert [a["id"] for a in form["actions"]] == ["approve", "reject"]
    assert form["actions"][0] == {"id": "approve", "title": "Approve", "button_style": "primary"}
    assert before + 2 * 86400 <= form["expires_at"] <= int(time.time()) + 2 * 86400
    assert finished(events)["review"].status == "paused"
    assert CALLS == []


@pytest.mark.parametrize(("action", "result"), [("approve", "approved"), ("reject", "rejected")])
def test_human_input_resumes_by_the_chosen_action(action, result):
    nodes, edges = human_graph()
    run, _ = run_flow(nodes, edges, {"name": "Ada"})
    saved = json.loads(json.dumps(run.paused_state))  # what the database keeps
    data = HumanInputData.model_validate({"type": "human-input", **REVIEW})
    outputs, handle = submission(data, {"reason": "fine by me"}, action)
    assert outputs == {"reason": "fine by me", "note": "", "action_id": action}

    graph = RuntimeGraph.build(Graph.model_validate({"nodes": nodes, "edges": edges}))
    resumed, resume = WorkflowRun.resumed(
        graph, RunContext(workflow_id="wf"), saved, outputs, handle
    )

    async def collect() -> list:
        return [event async for event in resumed.events(resume=resume)]

    more = asyncio.run(collect())
    assert resumed.status == "succeeded"
    assert more[-1].outputs == {"result": result, "reason": "fine by me", "action": action}
    assert CALLS == ["yes" if action == "approve" else "no"]


def test_human_input_submission_checks_the_action_and_values():
    data = HumanInputData.model_validate({"type": "human-input", **REVIEW})
    with pytest.raises(ValueError, match="approve, reject"):
        submission(data, {}, "maybe")
    with pytest.raises(ValueError, match="reason: expected text"):
        submission(data, {"reason": 3}, "approve")
    plain = HumanInputData.model_validate({"type": "human-input", "inputs": []})
    assert submission(plain, {}, None) == ({"action_id": ""}, None)
    with pytest.raises(ValueError, match="no actions"):
        submission(plain, {}, "approve")
