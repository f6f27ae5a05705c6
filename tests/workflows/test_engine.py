"""The graph engine on small graphs of test executors: scheduling, branches, skips, joins,
retries, error strategies, limits, stop, pause and resume, and streaming into answers."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from workflows.dsl import Graph
from workflows.engine import (
    REGISTRY,
    NodeContext,
    NodeExecutor,
    NodeFailed,
    NodeResult,
    PauseRequested,
    RunContext,
    RuntimeGraph,
    WorkflowRun,
)
from workflows.engine.events import NodeFinished, NodeRetry, NodeStarted, TextChunk
from workflows.nodes import io  # noqa: F401 - registers start, end, answer

from .conftest import make_edge, make_node
from .helpers import end, execute, finished, start

CALLS: list[str] = []


class Sleep(NodeExecutor):
    types = ("t-sleep",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        CALLS.append(self.node.id)
        await asyncio.sleep(self.data.model_extra.get("seconds", 0))
        return NodeResult(outputs={"value": self.data.model_extra.get("value", self.node.id)})


class Flaky(NodeExecutor):
    """Fails the first `failures` runs (counted per node id)."""

    types = ("t-flaky",)
    seen: dict[str, int] = {}

    async def run(self, ctx: NodeContext) -> NodeResult:
        count = Flaky.seen[self.node.id] = Flaky.seen.get(self.node.id, 0) + 1
        if count <= self.data.model_extra.get("failures", 1):
            raise NodeFailed(f"attempt {count} failed", error_type="Flaky")
        return NodeResult(outputs={"value": count})


class Choose(NodeExecutor):
    """Leaves by the handle named in its `pick` input."""

    types = ("t-choose",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult(outputs={}, handle=ctx.render(self.data.model_extra["pick"]))


class Stream(NodeExecutor):
    """Streams its `text` word by word as its output `text`."""

    types = ("t-stream",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        words = self.data.model_extra["text"].split(" ")
        for i, word in enumerate(words):
            ctx.stream("text", word if i == 0 else " " + word)
            await asyncio.sleep(0.01)
        return NodeResult(outputs={"text": " ".join(words)}, tokens=len(words))


class Ask(NodeExecutor):
    types = ("t-ask",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        raise PauseRequested({"question": ctx.render(self.data.model_extra["question"])})


@pytest.fixture(autouse=True)
def executors():
    added = [Sleep, Flaky, Choose, Stream, Ask]
    for cls in added:
        for node_type in cls.types:
            REGISTRY[node_type] = cls
    CALLS.clear()
    Flaky.seen.clear()
    yield
    for cls in added:
        for node_type in cls.types:
            REGISTRY.pop(node_type, None)


def test_a_linear_run_passes_inputs_to_outputs():
    run, events = execute(
        [start("q"), end(answer=["start", "q"])],
        [make_edge("start", "end")],
        {"q": "hi"},
    )
    assert run.status == "succeeded"
    assert [e.event for e in events] == [
        "workflow_started",
        "node_started",
        "node_finished",
        "node_started",
        "node_finished",
        "workflow_finished",
    ]
    assert events[-1].outputs == {"answer": "hi"}
    assert events[-1].total_steps == 2
    assert finished(events)["end"].predecessor_node_id == "start"


def test_parallel_branches_run_at_once_and_join_waits_for_all():
    nodes = [
        start(),
        *(make_node(f"b{i}", "t-sleep", seconds=0.3, value=i) for i in range(3)),
        make_node("join", "t-sleep"),
        end(a=["b0", "value"], c=["b2", "value"]),
    ]
    edges = [make_edge("start", f"b{i}") for i in range(3)]
    edges += [make_edge(f"b{i}", "join") for i in range(3)] + [make_edge("join", "end")]
    began = time.perf_counter()
    run, events = execute(nodes, edges)
    elapsed = time.perf_counter() - began
    assert run.status == "succeeded"
    assert elapsed < 0.6, elapsed  # three 0.3 s branches side by side, not 0.9 s
    assert CALLS.count("join") == 1
    assert events[-1].outputs == {"a": 0, "c": 2}


def test_branch_skips_the_other_side_and_join_runs_once():
    nodes = [
        start("pick"),
        make_node("choose", "t-choose", pick="{{#start.pick#}}"),
        make_node("left", "t-sleep"),
        make_node("right", "t-sleep"),
        make_node("after_right", "t-sleep"),
        make_node("join", "t-sleep"),
        end(),
    ]
    edges = [
        make_edge("start", "choose"),
        make_edge("choose", "left", "yes"),
        make_edge("choose", "right", "no"),
        make_edge("right", "after_right"),
        make_edge("left", "join"),
        make_edge("after_right", "join"),
        make_edge("join", "end"),
    ]
    run, events = execute(nodes, edges, {"pick": "yes"})
    assert run.status == "succeeded"
    assert CALLS == ["left", "join"]
    started = [e.node_id for e in events if isinstance(e, NodeStarted)]
    assert "right" not in started and "after_right" not in started
    assert finished(events)["join"].predecessor_node_id == "left"


def test_retries_then_succeeds():
    nodes = [
        start(),
        make_node(
            "flaky",
            "t-flaky",
            failures=2,
            retry_config={"retry_enabled": True, "max_retries": 3, "retry_interval": 10},
        ),
        end(v=["flaky", "value"]),
    ]
    run, events = execute(nodes, [make_edge("start", "flaky"), make_edge("flaky", "end")])
    retries = [e for e in events if isinstance(e, NodeRetry)]
    assert [r.retry_index for r in retries] == [1, 2]
    assert retries[0].error == "attempt 1 failed" and retries[0].status == "retry"
    assert run.status == "succeeded" and events[-1].outputs == {"v": 3}
    assert finished(events)["flaky"].retry_index == 2


def test_failure_without_strategy_fails_the_run_and_cancels_the_rest():
    nodes = [
        start(),
        make_node("flaky", "t-flaky", failures=5),
        make_node("slow", "t-sleep", seconds=5),
        end(),
    ]
    edges = [
        make_edge("start", "flaky"),
        make_edge("start", "slow"),
        make_edge("flaky", "end"),
        make_edge("slow", "end"),
    ]
    began = time.perf_counter()
    run, events = execute(nodes, edges)
    assert time.perf_counter() - began < 2
    assert run.status == "failed"
    assert "Flaky" in run.error and "flaky" in run.error and "attempt 1 failed" in run.error
    states = finished(events)
    assert states["flaky"].status == "failed" and states["flaky"].error_type == "Flaky"
    assert states["slow"].status == "stopped"
    assert events[-1].status == "failed"


def test_default_value_strategy_continues_as_partial_success():
    nodes = [
        start(),
        make_node(
            "flaky",
            "t-flaky",
            failures=5,
            error_strategy="default-value",
            default_value=[{"key": "value", "type": "string", "value": "fallback"}],
        ),
        end(v=["flaky", "value"], why=["flaky", "error_message"]),
    ]
    run, events = execute(nodes, [make_edge("start", "flaky"), make_edge("flaky", "end")])
    assert run.status == "partial-succeeded"
    assert events[-1].outputs == {"v": "fallback", "why": "attempt 1 failed"}
    assert events[-1].exceptions_count == 1
    assert finished(events)["flaky"].status == "exception"


def test_fail_branch_strategy_takes_the_fail_edge():
    nodes = [
        start(),
        make_node("flaky", "t-flaky", failures=5, error_strategy="fail-branch"),
        make_node("ok", "t-sleep"),
        make_node("recover", "t-sleep"),
        end(),
    ]
    edges = [
        make_edge("start", "flaky"),
        make_edge("flaky", "ok", "success-branch"),
        make_edge("flaky", "recover", "fail-branch"),
        make_edge("ok", "end"),
        make_edge("recover", "end"),
    ]
    run, _ = execute(nodes, edges)
    assert run.status == "partial-succeeded"
    assert CALLS == ["recover"]
    # And on success the success branch is taken.
    CALLS.clear()
    nodes[1] = make_node("flaky", "t-flaky", failures=0, error_strategy="fail-branch")
    run, _ = execute(nodes, edges)
    assert run.status == "succeeded" and CALLS == ["ok"]


def test_node_timeout_fails_the_node():
    nodes = [start(), make_node("slow", "t-sleep", seconds=5, node_timeout=0.2), end()]
    run, events = execute(nodes, [make_edge("start", "slow"), make_edge("slow", "end")])
    assert run.status == "failed"
    assert finished(events)["slow"].error_type == "NodeTimeout"
    assert "0.2 s" in run.error


def test_run_time_limit_and_step_limit():
    nodes = [start(), make_node("slow", "t-sleep", seconds=5), end()]
    edges = [make_edge("start", "slow"), make_edge("slow", "end")]
    began = time.perf_counter()
    run, events = execute(nodes, edges, max_seconds=0.3)
    assert time.perf_counter() - began < 2
    assert run.status == "failed" and "0.3 s" in run.error
    assert finished(events)["slow"].status == "stopped"

    chain = [start()] + [make_node(f"n{i}", "t-sleep") for i in range(5)] + [end()]
    ids = ["start", *(f"n{i}" for i in range(5)), "end"]
    run, _ = execute(chain, [make_edge(a, b) for a, b in itertools.pairwise(ids)], max_steps=3)
    assert run.status == "failed" and "3 node runs" in run.error


def test_stop_from_outside_cancels_running_nodes():
    nodes = [start(), make_node("slow", "t-sleep", seconds=5), end()]

    def stop_when_started(run: WorkflowRun, event) -> None:
        if isinstance(event, NodeStarted) and event.node_id == "slow":
            run.stop()

    began = time.perf_counter()
    run, events = execute(
        nodes, [make_edge("start", "slow"), make_edge("slow", "end")], during=stop_when_started
    )
    assert time.perf_counter() - began < 2
    assert run.status == "stopped" and events[-1].status == "stopped"
    assert finished(events)["slow"].status == "stopped"


def test_pause_and_resume_with_the_answer():
    nodes = [
        start("name"),
        make_node("ask", "t-ask", question="Approve {{#start.name#}}?"),
        make_node("side", "t-sleep", value="side"),
        end(decision=["ask", "decision"], name=["start", "name"], side=["side", "value"]),
    ]
    edges = [
        make_edge("start", "ask"),
        make_edge("start", "side"),
        make_edge("ask", "end"),
        make_edge("side", "end"),
    ]
    run, events = execute(nodes, edges, {"name": "Ada"})
    assert run.status == "paused" and events[-1].event == "workflow_paused"
    assert events[-1].form == {"question": "Approve Ada?"}
    saved = run.paused_state
    assert saved is not None and saved["node_id"] == "ask"

    graph = RuntimeGraph.build(Graph.model_validate({"nodes": nodes, "edges": edges}))
    resumed, resume = WorkflowRun.resumed(
        graph, RunContext(workflow_id="wf"), saved, {"decision": "yes"}
    )

    async def collect():
        return [e async for e in resumed.events(resume=resume)]

    more = asyncio.run(collect())
    assert resumed.status == "succeeded"
    assert more[-1].outputs == {"decision": "yes", "name": "Ada", "side": "side"}
    assert more[-1].total_steps == 4  # start, ask, side before the pause; end after
    assert CALLS == ["side"]  # nothing before the pause ran again


def test_answer_streams_model_text_in_template_order():
    nodes = [
        start(),
        make_node("llm", "t-stream", text="one two three"),
        make_node("answer", "answer", answer="Hi {{#llm.text#}}! ({{#sys.query#}})"),
    ]
    run, events = execute(
        nodes,
        [make_edge("start", "llm"), make_edge("llm", "answer")],
        mode="advanced-chat",
    )
    chunks = [e.text for e in events if isinstance(e, TextChunk)]
    assert chunks == ["Hi ", "one", " two", " three", "! (", "hello", ")"]
    # The model's words went out before the model node finished, not after.
    kinds = [(e.event, getattr(e, "node_id", None)) for e in events]
    llm_done = kinds.index(("node_finished", "llm"))
    assert [e for e in events[:llm_done] if isinstance(e, TextChunk)][-1].text == " three"
    assert run.outputs == {"answer": "Hi one two three! (hello)"}


def test_no_streaming_through_an_undecided_branch():
    nodes = [
        start(),
        make_node("llm", "t-stream", text="a b"),
        make_node("choose", "t-choose", pick="yes"),
        make_node("answer", "answer", answer="{{#llm.text#}}"),
    ]
    edges = [
        make_edge("start", "llm"),
        make_edge("llm", "choose"),
        make_edge("choose", "answer", "yes"),
    ]
    _run, events = execute(nodes, edges, mode="advanced-chat")
    chunk_at = [i for i, e in enumerate(events) if isinstance(e, TextChunk)]
    choose_done = next(
        i for i, e in enumerate(events) if isinstance(e, NodeFinished) and e.node_id == "choose"
    )
    assert [events[i].text for i in chunk_at] == ["a b"]
    assert chunk_at[0] > choose_done
