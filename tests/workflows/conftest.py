"""Builders of small workflows for the DSL tests, written as plain dicts the way Dify writes them,
and the shared Dify exports (from ../shared, skipped where absent)."""

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from providers import http as guarded
from workflows.dsl import WorkflowSpec

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "dify-dsl"


def make_node(node_id: str, node_type: str, *, parent: str | None = None, **data: Any) -> dict:
    node: dict[str, Any] = {
        "id": node_id,
        "type": "custom",
        "position": {"x": 0, "y": 0},
        "data": {"type": node_type, "title": node_id.title(), "desc": "", **data},
    }
    if parent is not None:
        node["parentId"] = parent
    return node


def make_edge(source: str, target: str, handle: str = "source") -> dict:
    return {
        "id": f"{source}-{handle}-{target}-target",
        "type": "custom",
        "source": source,
        "sourceHandle": handle,
        "target": target,
        "targetHandle": "target",
        "data": {"sourceType": "", "targetType": ""},
    }


def make_document(nodes: list[dict], edges: list[dict], **workflow: Any) -> dict:
    return {
        "version": "0.5.0",
        "kind": "app",
        "app": {"name": "Test", "mode": "workflow", "icon": "🤖"},
        "workflow": {
            "graph": {"nodes": nodes, "edges": edges, "viewport": {"x": 0, "y": 0, "zoom": 1}},
            "features": {},
            **workflow,
        },
    }


def llm_data(prompt: str = "Answer {{#start.q#}}") -> dict:
    return {
        "model": {"provider": "openai", "name": "gpt-4o", "mode": "chat", "completion_params": {}},
        "prompt_template": [{"id": "p1", "role": "user", "text": prompt}],
        "context": {"enabled": False, "variable_selector": []},
        "vision": {"enabled": False},
    }


def linear_nodes() -> list[dict]:
    """start (input q) → llm → end (output answer = llm.text)."""
    return [
        make_node(
            "start",
            "start",
            variables=[{"variable": "q", "label": "q", "type": "text-input", "required": True}],
        ),
        make_node("llm", "llm", **llm_data()),
        make_node(
            "end", "end", outputs=[{"variable": "answer", "value_selector": ["llm", "text"]}]
        ),
    ]


def linear_edges() -> list[dict]:
    return [make_edge("start", "llm"), make_edge("llm", "end")]


@pytest.fixture
def build_spec():
    """build_spec(nodes=None, edges=None, **workflow) -> WorkflowSpec (default: linear graph)."""

    def make(nodes: list[dict] | None = None, edges: list[dict] | None = None, **workflow: Any):
        document = make_document(
            linear_nodes() if nodes is None else nodes,
            linear_edges() if edges is None else edges,
            **workflow,
        )
        return WorkflowSpec.model_validate(document["workflow"])

    return make


def sample_path(name: str) -> Path:
    """A shared Dify export, or skip the test where ../shared is not there."""
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"sample {name} not available ({SAMPLES} is absent)")
    return path


@pytest.fixture
def loopback(settings):
    """A real HTTP server on 127.0.0.1, allow-listed for the test; (base URL, requests)."""
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self._answer()

        def do_POST(self):
            self._answer()

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if self.path.startswith("/file"):
                payload, kind = b"# Title\n\nHello from a file.", "application/octet-stream"
            else:
                payload, kind = (
                    json.dumps({"ok": True, "path": self.path}).encode(),
                    "application/json",
                )
            self.send_response(201)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.WEFT_OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    guarded.reset_allowlist()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    guarded.reset_allowlist()
