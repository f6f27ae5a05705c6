"""A real Daphne process serving Weft (HTTP, SSE, WebSocket) against this run's test
database, for tests that talk to the Service API as its clients do: over the network.

Import the fixtures in a test module (`from tests.apps.live import daphne_server, ...`). The
server is started once per test session whichever modules import them, and stopped before
the test database is dropped. Rows a test makes for the server to see must be committed:
mark such tests `@pytest.mark.django_db(transaction=True)`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import database_env

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 60.0
TEST_BROKER_DB = 11
UPLOAD_MAX_BYTES = 1 << 20  # the server's upload limit, small enough to test cheaply


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def broker_url() -> str:
    """A Celery broker of these tests' own (another database of the same Redis), so that
    no other worker on this machine takes their tasks, nor theirs these."""
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    if url.startswith("redis+socket://"):
        return url.split("?", 1)[0] + f"?virtual_host={TEST_BROKER_DB}"
    return url.rsplit("/", 1)[0] + f"/{TEST_BROKER_DB}"


def server_env() -> dict[str, str]:
    """What the server (and a test's worker) run with: this run's database, Redis and data
    folder, loopback allowed for the fake LLM, a broker of its own, pings every second."""
    return {
        **database_env(),
        "WEFT_OUTBOUND_ALLOWLIST": "127.0.0.0/8",
        "CELERY_BROKER_URL": broker_url(),
        # The test settings (password hashers, e-mail kept in memory), so that a password
        # hashed by a test is one the server can check.
        "WEFT_TESTING": "1",
        "WEFT_SSE_PING_SECONDS": "1",
        "WEFT_UPLOAD_MAX_BYTES": str(UPLOAD_MAX_BYTES),
        "PYTHONUNBUFFERED": "1",
    }


class LiveServer:
    """`daphne -b 127.0.0.1 -p PORT config.asgi:application` as a child process."""

    _shared: LiveServer | None = None

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="weft-daphne-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "config.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @classmethod
    def shared(cls) -> LiveServer:
        if cls._shared is None or cls._shared.process.poll() is not None:
            server = cls(server_env())
            server.wait_ready()
            cls._shared = server
        return cls._shared

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Daphne exited at start:\n{self.output()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=2)  # 503 without a worker: still up
                return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        output = self.output()
        self.stop()
        raise RuntimeError(f"Daphne did not answer /healthz in {START_SECONDS} s:\n{output}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-20_000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if LiveServer._shared is self:
            LiveServer._shared = None
        self.log.close()
        if not os.environ.get("WEFT_KEEP_SERVER_LOG"):
            Path(self.log.name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker) -> Iterator[LiveServer]:
    """The running server (started on first use, stopped before the test database goes)."""
    server = LiveServer.shared()
    yield server
    server.stop()


@dataclass
class Api:
    """An HTTP client of the Service API for one key, the way Dify's clients call it."""

    base_url: str
    key: str
    timeout: float = 30.0
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=f"{self.base_url}/v1",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=self.timeout,
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=body, **kwargs)

    def put(self, path: str, body: Any = None) -> httpx.Response:
        return self.client.put(path, json=body)

    def delete(self, path: str, body: Any = None) -> httpx.Response:
        return self.client.request("DELETE", path, json=body)

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.stream(method, path, **kwargs)

    def close(self) -> None:
        self.client.close()


@dataclass
class SseEvent:
    """One server-sent event as a client sees it."""

    id: str | None
    event: str | None
    data: dict[str, Any] | None

    @property
    def name(self) -> str | None:
        """The Dify event name (`data.event`), or the SSE event name (`ping`)."""
        return self.data.get("event") if self.data is not None else self.event


def read_sse(source: Any, *, stop_after: int | None = None) -> list[SseEvent]:
    """The events of a streamed response (or of an iterator over its lines, to go on reading
    where an earlier call stopped), parsed line by line as an SSE client does, every `data:`
    line as JSON as Dify's clients do; `stop_after` events, or to the end."""
    lines = source.iter_lines() if isinstance(source, httpx.Response) else source
    events: list[SseEvent] = []
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if fields:
                data = fields.get("data")
                events.append(
                    SseEvent(
                        id=fields.get("id"),
                        event=fields.get("event"),
                        data=json.loads(data) if data is not None else None,
                    )
                )
                fields = {}
                if stop_after is not None and len(events) >= stop_after:
                    return events
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
    return events


@pytest.fixture
def service_api(daphne_server, make_app, app_key, tenant) -> Iterator[Any]:
    """service_api(app=None, mode="chat") -> an Api client for a new key of the app (a new
    app of that mode in the test tenant when none is given)."""
    clients: list[Api] = []
    made = iter(range(1, 1000))

    def make(app: Any = None, mode: str = "chat") -> Api:
        app = app or make_app(tenant, mode, name=f"{mode} app {next(made)}")
        client = Api(daphne_server.url, app_key(app))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def envelope(response: httpx.Response) -> tuple[int, str]:
    """(status, code) of an error answer, checking it is Dify's envelope."""
    body = response.json()
    assert set(body) >= {"code", "message", "status"}, body
    assert body["status"] == response.status_code, body
    return response.status_code, body["code"]


def wait_for(predicate: Any, timeout: float = 15.0, step: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        time.sleep(step)


def start_worker(queues: str = "workflows") -> subprocess.Popen:
    """A Celery worker on the server's broker, taking `queues` (comma-separated)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            queues,
            "--pool",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
