"""Nodes that reach outside the engine: code (the sandbox), http-request (the guarded
client, against a real loopback server) and document-extractor (the knowledge parsers)."""

from __future__ import annotations

import itertools
import json

import pytest

from .conftest import make_edge, make_node
from .helpers import end, execute, finished, start

pytestmark = pytest.mark.django_db


def chain(*nodes: dict) -> list[dict]:
    ids = [node["id"] for node in nodes]
    return [make_edge(a, b) for a, b in itertools.pairwise(ids)]


def test_code_node_runs_main_with_inputs_and_checks_declared_outputs():
    code = make_node(
        "code",
        "code",
        code="def main(q: str, n: int) -> dict:\n    return {'shout': q.upper() * n, 'n': n}\n",
        variables=[
            {"variable": "q", "value_selector": ["start", "q"]},
            {"variable": "n", "value_selector": ["start", "n"]},
        ],
        outputs={"shout": {"type": "string"}, "n": {"type": "number"}},
    )
    nodes = [
        make_node(
            "start",
            "start",
            variables=[
                {"variable": "q", "label": "q", "type": "text-input"},
                {"variable": "n", "label": "n", "type": "number"},
            ],
        ),
        code,
        end(out=["code", "shout"]),
    ]
    run, _ = execute(nodes, chain(*nodes), {"q": "hé", "n": "2"})
    assert run.status == "succeeded", run.error
    assert run.outputs == {"out": "HÉHÉ"}


@pytest.mark.parametrize(
    ("source", "outputs", "error_type", "message"),
    [
        (
            "def main():\n    return {'x': 1}\n",
            {"x": {"type": "string"}},
            "OutputTypeError",
            "string",
        ),
        ("def main():\n    return {}\n", {"x": {"type": "number"}}, "OutputTypeError", "“x”"),
        ("def main():\n    raise ValueError('bad row 3')\n", {}, None, "bad row 3"),
        ("def main(:\n", {}, None, "line 1"),
        (
            "import socket\ndef main():\n"
            "    socket.create_connection(('1.1.1.1', 80))\n    return {}\n",
            {},
            None,
            "",
        ),
    ],
)
def test_code_node_failures_are_the_nodes_with_a_clear_message(
    source, outputs, error_type, message
):
    nodes = [start(), make_node("code", "code", code=source, outputs=outputs), end()]
    run, events = execute(nodes, chain(*nodes))
    assert run.status == "failed"
    failed = finished(events)["code"]
    assert failed.status == "failed"
    if error_type:
        assert failed.error_type == error_type
    assert message in failed.error


def test_http_node_sends_templates_auth_and_json_body(loopback):
    base, seen = loopback
    request = make_node(
        "call",
        "http-request",
        method="post",
        url=base + "/items/{{#start.q#}}",
        headers="X-Trace: {{#start.q#}}\n",
        params="page:2\nq:{{#start.q#}}",
        body={"type": "json", "data": [{"type": "text", "value": '{"name": "{{#start.q#}}"}'}]},
        authorization={"type": "api-key", "config": {"type": "bearer", "api_key": "sk-secret-1"}},
    )
    nodes = [start("q"), request, end(status=["call", "status_code"], body=["call", "body"])]
    run, events = execute(nodes, chain(*nodes), {"q": "abc"})
    assert run.status == "succeeded", run.error
    assert run.outputs["status"] == 201
    assert json.loads(run.outputs["body"]) == {"ok": True, "path": "/items/abc?page=2&q=abc"}
    sent = seen[0]
    assert sent["headers"]["Authorization"] == "Bearer sk-secret-1"
    assert sent["headers"]["X-Trace"] == "abc"
    assert json.loads(sent["body"]) == {"name": "abc"}
    # The key never shows in what the run keeps.
    assert "sk-secret-1" not in json.dumps(finished(events)["call"].payload())


def test_http_node_to_the_metadata_address_fails_before_connecting():
    request = make_node("call", "http-request", url="http://169.254.169.254/latest/meta-data/")
    nodes = [start(), request, end()]
    run, events = execute(nodes, chain(*nodes))
    assert run.status == "failed"
    assert finished(events)["call"].error_type == "outbound_blocked"


def test_binary_response_becomes_a_file_the_extractor_reads(loopback):
    base, _ = loopback
    nodes = [
        start(),
        make_node("call", "http-request", url=base + "/file.md"),
        make_node("extract", "document-extractor", variable_selector=["call", "files"]),
        end(text=["extract", "text"], files=["call", "files"]),
    ]
    run, _ = execute(nodes, chain(*nodes))
    assert run.status == "succeeded", run.error
    assert run.outputs["files"][0]["size"] == len(b"# Title\n\nHello from a file.")
    assert run.outputs["text"] == ["# Title\n\nHello from a file."]


def test_extractor_reads_a_remote_file_and_refuses_a_broken_one(loopback):
    base, _ = loopback
    good = {
        "type": "document",
        "transfer_method": "remote_url",
        "url": base + "/file.md",
        "filename": "a.md",
    }
    nodes = [
        make_node("start", "start", variables=[{"variable": "f", "label": "f", "type": "file"}]),
        make_node("extract", "document-extractor", variable_selector=["start", "f"]),
        end(text=["extract", "text"]),
    ]
    run, _ = execute(nodes, chain(*nodes), {"f": good})
    assert run.status == "succeeded", run.error
    assert "Hello from a file." in run.outputs["text"]
    stolen = {"filename": "x", "storage_key": "workflows/files/another-run/x.md"}
    run, events = execute(nodes, chain(*nodes), {"f": stolen})
    assert run.status == "failed" and "another run" in finished(events)["extract"].error
