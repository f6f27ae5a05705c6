"""`manage.py up` end to end: a fresh data folder, web + worker + beat, healthy, stopped."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

pytestmark = pytest.mark.slow

READY_TIMEOUT = 150
STOP_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Up:
    """`manage.py up` in a subprocess, its output collected line by line."""

    def __init__(self, data_dir: Path, port: int) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            # Its own embedded PostgreSQL and Redis, in the temporary data folder.
            if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "WEFT_TESTING"}
        }
        env.update(WEFT_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
        self.port = port
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "up", "--port", str(port)],
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # killable as a group if the test fails midway
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if "Weft is ready at" in line:
                self.ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ready.wait(0.2):
            assert self.process.poll() is None, f"up exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"not ready in {READY_TIMEOUT} s:\n{self.output}"

    def healthz(self) -> tuple[int, dict]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=10)
        return response.status_code, response.json()

    def child_pids(self) -> dict[str, int]:
        return {
            match[1]: int(match[2])
            for match in re.finditer(r"started (\w+) \(pid (\d+)\)", self.output)
        }

    def wait_exit(self) -> int:
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.reader.join(timeout=5)


@pytest.fixture
def data_dir():
    """A fresh data folder with a short path: the embedded servers' Unix sockets live in it,
    and socket paths are limited to about 100 characters."""
    path = Path(tempfile.mkdtemp(prefix="weft-up-"))
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


def password_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "password:" in line]


def test_up_serves_until_stopped_and_prints_the_password_once(data_dir):
    first = Up(data_dir, free_port())
    try:
        first.wait_ready()
        status, body = first.healthz()
        children = first.child_pids()
        running = {name: alive(pid) for name, pid in children.items()}
    finally:
        first.process.send_signal(signal.SIGTERM)
        code = first.wait_exit()

    assert status == 200, body
    assert body["checks"]["worker"]["ok"] is True
    assert running == {"web": True, "worker": True, "beat": True}
    assert "worker | " in first.output
    assert "beat   | " in first.output
    assert code == 0, first.output

    assert not any(alive(pid) for pid in children.values())
    # The embedded PostgreSQL this `up` held has stopped with it.
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    lines = password_lines(first.output)
    assert len(lines) == 1, first.output
    password = lines[0].split("password:", 1)[1].strip()
    assert len(password) >= 16

    # Second start on the same data: nothing new to print, and a child that dies
    # takes `up` down with it (no silent restart).
    second = Up(data_dir, free_port())
    try:
        second.wait_ready()
        children = second.child_pids()
        os.kill(children["beat"], signal.SIGKILL)
        code = second.wait_exit()
    finally:
        if second.process.poll() is None:
            second.process.send_signal(signal.SIGTERM)
            second.wait_exit()
    assert code == 1, second.output
    assert "beat exited unexpectedly" in second.output
    assert not any(alive(pid) for pid in children.values())
    assert password_lines(second.output) == []
