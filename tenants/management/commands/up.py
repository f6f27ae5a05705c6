"""`manage.py up`: run Weft on this machine — web, worker and beat — until Ctrl-C.

Migrates, creates the demo tenant and admin on the first run, then starts Daphne, a Celery
worker and Celery beat as child processes with their output prefixed on stdout. The
children get this process's resolved DATABASE_URL and REDIS_URL, so that they attach to the
embedded PostgreSQL and Redis (if any) that this process holds: those stop when it exits.

Ctrl-C or SIGTERM stops the children (SIGTERM, then SIGKILL after a grace period). A child
that exits on its own stops the rest, and `up` exits non-zero: it never restarts anything.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import IO

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.celery import HEARTBEAT_KEY_PREFIX, QUEUES
from tenants.services import demo_bootstrap

STOP_TIMEOUT = 20.0
POLL_SECONDS = 0.25
LATE_PROBE_SECONDS = 5.0
READY_WARNING_SECONDS = 90.0
NAME_WIDTH = 6


def process_age() -> float | None:
    """Seconds since this process started (Linux), so start-up time includes settings."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            # Field 22 is the start time in clock ticks after boot; the name (field 2) may
            # hold spaces, so count from the closing parenthesis.
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            up_seconds = float(uptime.read().split()[0])
        return up_seconds - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if `up` dies without stopping it (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class _Interrupted(Exception):
    """A stop signal arrived before the children were running."""


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = None

    @property
    def prefix(self) -> str:
        return f"{self.name:<{NAME_WIDTH}} | "

    @property
    def running(self) -> subprocess.Popen[bytes]:
        """The child's process, for code that runs only once every child has started."""
        if self.process is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self.process


class Command(BaseCommand):
    help = "Run Weft on this machine: migrate, bootstrap, then web, worker and beat until Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to serve on.")
        parser.add_argument("--port", type=int, default=8000, help="Port to serve on.")

    def handle(self, *args, host: str, port: int, **options) -> None:
        self.started = time.monotonic() - (process_age() or 0.0)
        self.output_lock = threading.Lock()
        self.children: list[Child] = []
        self.stop_signal: int | None = None
        self.supervising = False
        self.stopping = False
        self.force = False
        self.warned = False
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

        # Reach a wildcard address through loopback.
        local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
        url_host = f"[{local}]" if ":" in local else local
        self.base_url = f"http://{url_host}:{port}"
        try:
            self._check_port_free(host, port)
            self._migrate()
            self._bootstrap()
            self.supervising = True
            self._start_children(host, port)
            failure = self._supervise()
        except _Interrupted:
            failure = None
        finally:
            self._stop_children()
        if failure:
            raise CommandError(failure)
        self.say("stopped.")

    # --- output

    def say(self, message: str, prefix: str = f"{'up':<{NAME_WIDTH}} | ") -> None:
        with self.output_lock:
            self.stdout.write(f"{prefix}{message}")
            self.stdout.flush()

    def _pump(self, child: Child, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.say(raw.decode("utf-8", errors="replace").rstrip("\r\n"), prefix=child.prefix)
        stream.close()

    # --- signals

    def _on_signal(self, signum: int, frame) -> None:
        if self.stopping:
            self.force = True  # a second Ctrl-C: do not wait any longer
            return
        self.stop_signal = signum
        if not self.supervising:
            raise _Interrupted

    # --- start-up

    def _check_port_free(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise CommandError(
                    f"Cannot serve on {host}:{port} ({exc.strerror}); choose another --port."
                ) from exc

    def _migrate(self) -> None:
        connection = connections["default"]
        executor = MigrationExecutor(connection)
        pending = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
        if pending:
            self.say(f"applying {pending} migrations…")
            call_command("migrate", interactive=False, verbosity=0)
        self.say("database is up to date.")

    def _bootstrap(self) -> None:
        tenant, user, password = demo_bootstrap()
        connections.close_all()
        if password is None:
            return
        self.say(f"First run: created the tenant “{tenant.name}” and a platform admin.")
        self.say(f"  console:  {self.base_url}/admin/")
        self.say(f"  e-mail:   {user.email}")
        self.say(f"  password: {password}")
        self.say("  (the password is shown this once; change it in the console)")

    def _child_env(self) -> dict[str, str]:
        return {
            **os.environ,
            # The children attach to the servers this process holds, and never stop them.
            "DATABASE_URL": settings.DATABASE_URL,
            "REDIS_URL": settings.REDIS_URL,
            "WEFT_DATA_DIR": str(settings.DATA_DIR),
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
            "PYTHONUNBUFFERED": "1",
        }

    def _start_children(self, host: str, port: int) -> None:
        python = sys.executable
        # One machine, one worker: no neighbours to sync with at start (mingle) or to
        # follow (gossip), so the worker starts sooner without them.
        self.children = [
            Child("web", [python, "-m", "daphne", "-b", host, "-p", str(port),
                          "config.asgi:application"]),
            Child("worker", [python, "-m", "celery", "-A", "config", "worker",
                             "-Q", ",".join(QUEUES), "--concurrency", "2",
                             "--max-tasks-per-child", "200", "--without-mingle",
                             "--without-gossip", "--loglevel", "INFO"]),
            Child("beat", [python, "-m", "celery", "-A", "config", "beat",
                           "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                           "--loglevel", "INFO"]),
        ]  # fmt: skip
        env = self._child_env()
        for child in self.children:
            child.process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
                child.argv,
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Own process group: the terminal's Ctrl-C reaches `up` alone, which then
                # stops each child (and a worker's pool processes) in order.
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            child.reader = threading.Thread(
                target=self._pump, args=(child, child.process.stdout), daemon=True
            )
            child.reader.start()
            self.say(f"started {child.name} (pid {child.process.pid})")

    # --- running

    def _worker_beating(self) -> bool:
        """Whether our own worker has written its heartbeat (not a stale one of an earlier run)."""
        worker = next(child for child in self.children if child.name == "worker")
        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            for key in client.scan_iter(match=f"{HEARTBEAT_KEY_PREFIX}*", count=1000):
                raw = client.get(key)
                if raw is not None and json.loads(raw).get("pid") == worker.running.pid:
                    return True
        except (redis.RedisError, OSError, ValueError):
            return False
        finally:
            client.close()
        return False

    def _healthy(self) -> tuple[bool, str]:
        host = next((h for h in settings.WEFT_ALLOWED_HOSTS if h != "*"), None)
        request = urllib.request.Request(f"{self.base_url}/healthz")  # noqa: S310 - http only
        if host:
            request.add_header("Host", host)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                return response.status == 200, ""
        except urllib.error.HTTPError as exc:
            return False, exc.read().decode("utf-8", errors="replace")
        except (OSError, ValueError) as exc:
            return False, str(exc)

    def _check_ready(self) -> bool:
        """Print the ready line once /healthz answers 200; warn once if that takes long."""
        elapsed = time.monotonic() - self.started
        late = elapsed > READY_WARNING_SECONDS
        # Ask /healthz once our worker beats, so that it need not answer 503 till then.
        if not (late or self._worker_beating()):
            return False
        healthy, detail = self._healthy()
        if healthy:
            self.say(f"Weft is ready at {self.base_url}/ (started in {elapsed:.1f} s)")
        elif late and not self.warned:
            self.warned = True
            self.say(f"not healthy after {elapsed:.0f} s; /healthz says: {detail}")
        return healthy

    def _supervise(self) -> str | None:
        """Wait for a stop signal (None) or a child's exit (the failure message)."""
        ready = False
        next_probe = 0.0
        while self.stop_signal is None:
            for child in self.children:
                code = child.running.poll()
                if code is not None:
                    others = ", ".join(c.name for c in self.children if c is not child)
                    return (
                        f"{child.name} exited unexpectedly with code {code}; stopped {others}. "
                        "See its output above."
                    )
            if not ready and time.monotonic() >= next_probe:
                ready = self._check_ready()
                # Once late, probe less often: each failed probe is a logged 503.
                next_probe = time.monotonic() + (LATE_PROBE_SECONDS if self.warned else 0)
            time.sleep(POLL_SECONDS)
        self.say(f"{signal.Signals(self.stop_signal).name} received, stopping…")
        return None

    def _signal_group(self, child: Child, signum: int) -> None:
        try:
            os.killpg(child.running.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _stop_children(self) -> None:
        self.stopping = True
        started = [child for child in self.children if child.process is not None]
        for child in started:
            # The whole group: a child that already exited may have left processes behind.
            self._signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in started:
            while child.running.poll() is None and time.monotonic() < deadline and not self.force:
                time.sleep(0.05)
            if child.running.poll() is None:
                self.say(f"{child.name} did not stop in time; killing it")
                self._signal_group(child, signal.SIGKILL)
                child.running.wait()
        for child in started:
            if child.reader is not None:
                child.reader.join(timeout=2)
