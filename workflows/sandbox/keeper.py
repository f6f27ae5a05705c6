"""The keeper thread of a pool: starts the zygote, asks it for workers as the pool needs
them, waits for each to report itself confined, and hears from the zygote how workers end.
It owns the zygote and the workers on their way in; the pool owns them once idle."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import selectors
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SandboxError
from .protocol import (
    CONTROL_MESSAGE_MAX,
    EXITED,
    SPAWN,
    SPAWN_FAILED,
    WORKER,
    WORKER_BROKEN,
    WORKER_READY,
    parse_control,
)
from .zygote_process import ZygoteProcess

if TYPE_CHECKING:
    from .pool import SandboxPool

logger = logging.getLogger(__name__)

WORKER_READY_TIMEOUT = 10.0
START_FAILURES_TOLERATED = 3
ERROR_PAUSE = 1.0

Report = dict[str, Any] | None


@dataclass(eq=False)
class Worker:
    """A confined process waiting for its one request; `exited` gets the zygote's report."""

    pid: int
    sock: socket.socket
    pidfd: int
    exited: concurrent.futures.Future[Report] = field(default_factory=concurrent.futures.Future)

    def kill(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def close(self) -> None:
        self.sock.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


class Keeper:
    """One thread per pool, started on its first execution."""

    def __init__(self, pool: SandboxPool) -> None:
        self.pool = pool
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)  # a full pipe already means "wake up"
        self._zygote: ZygoteProcess | None = None
        self._by_pid: dict[int, Worker] = {}  # every worker alive, for its exit report
        self._unready: dict[Worker, float] = {}  # forked, not confined yet: deadline
        self._start_failures = 0  # workers in a row that died before they were ready

    @property
    def zygote_pid(self) -> int | None:
        zygote = self._zygote
        return zygote.pid if zygote else None

    def start(self) -> None:
        """Start the thread if it is not running (called under the pool's lock)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-keeper", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # closed after a fork, or already full
            os.write(self._wake_w, b"!")

    def stop(self) -> None:
        self._stopping = True
        if self._thread is None:
            self._close_pipe()
            return
        self.wake()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def abandon(self) -> None:
        """The descriptors' copies in a forked child (see SandboxPool.abandon); every live
        worker, idle ones included, is in _by_pid."""
        for worker in self._by_pid.values():
            worker.close()
        if self._zygote is not None:
            self._zygote.control.close()
        self._close_pipe()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping:
                try:
                    self._turn(selector)
                except Exception as exc:
                    # Executions wait on this thread: it must not die. The pool refuses
                    # executions for a while, and a pause keeps a repeating error from
                    # spinning.
                    logger.exception("sandbox keeper")
                    self.pool.fail(f"The sandbox pool failed: {exc}")
                    time.sleep(ERROR_PAUSE)
        finally:
            self._shut_down(selector)

    def _turn(self, selector: selectors.BaseSelector) -> None:
        self._spawn(selector)
        for key, _ in selector.select(self._next_deadline()):
            # An event of this batch may concern what an earlier one just dropped.
            if isinstance(key.data, ZygoteProcess):
                if key.data is self._zygote:
                    self._on_control(selector, key.data)
            elif isinstance(key.data, Worker):
                if key.data in self._unready:
                    self._on_hello(selector, key.data)
            else:
                os.read(self._wake_r, 4096)
        self._expire_unready(selector)

    def _spawn(self, selector: selectors.BaseSelector) -> None:
        if not self.pool.wants_workers():
            return
        zygote = self._zygote
        if zygote is None:
            try:
                zygote = ZygoteProcess.start(self.pool.options)
            except (SandboxError, OSError) as exc:
                self.pool.fail(f"The sandbox zygote could not be started: {exc}")
                return
            self._zygote = zygote
            selector.register(zygote.control, selectors.EVENT_READ, zygote)
        try:
            for _ in range(self.pool.claim_spawns()):
                zygote.control.send(SPAWN)
        except OSError:
            self._lose_zygote(selector, zygote)

    def _on_control(self, selector: selectors.BaseSelector, zygote: ZygoteProcess) -> None:
        try:
            message, fds, _, _ = socket.recv_fds(zygote.control, CONTROL_MESSAGE_MAX, 2)
        except OSError:
            message, fds = b"", []
        if not message:
            self._lose_zygote(selector, zygote)
            return
        tag, body = parse_control(message)
        if tag == WORKER:
            if len(fds) != 2:  # truncated: this process is out of descriptors
                for fd in fds:
                    os.close(fd)
                self.pool.worker_not_started()
                self.pool.fail("A sandbox worker's descriptors did not arrive.")
                return
            worker = Worker(int(body["pid"]), socket.socket(fileno=fds[0]), fds[1])
            self._by_pid[worker.pid] = worker
            self._unready[worker] = time.monotonic() + WORKER_READY_TIMEOUT
            selector.register(worker.sock, selectors.EVENT_READ, worker)
        elif tag == EXITED:
            exited = self._by_pid.pop(int(body["pid"]), None)
            if exited is not None:
                self.pool.discard_idle(exited)
                _settle(exited.exited, body)
        elif tag == SPAWN_FAILED:
            self.pool.worker_not_started()
            self.pool.fail(f"The sandbox could not fork a worker: {body['error']}")

    def _on_hello(self, selector: selectors.BaseSelector, worker: Worker) -> None:
        selector.unregister(worker.sock)
        del self._unready[worker]
        try:
            hello = worker.sock.recv(CONTROL_MESSAGE_MAX)
        except OSError:
            hello = b""
        if hello == WORKER_READY:
            worker.sock.setblocking(False)
            self._start_failures = 0
            self.pool.worker_ready(worker)
            return
        worker.kill()
        worker.close()
        if not hello and self._zygote is not None and self._zygote.process.poll() is not None:
            self._lose_zygote(selector, self._zygote)  # it took its workers along
            return
        self.pool.worker_not_started()
        if hello[:1] == WORKER_BROKEN:  # the same will happen to the next one
            reason = hello[1:].decode("utf-8", "replace")
            self.pool.fail(f"A sandbox worker could not confine itself: {reason}")
        else:  # killed from outside, perhaps: only a streak means trouble
            self._start_failures += 1
            if self._start_failures >= START_FAILURES_TOLERATED:
                self.pool.fail("Sandbox workers keep dying before they are ready.")

    def _expire_unready(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for worker, deadline in list(self._unready.items()):
            if deadline <= now:
                selector.unregister(worker.sock)
                del self._unready[worker]
                worker.kill()
                worker.close()
                self.pool.worker_not_started()
                self.pool.fail("A sandbox worker did not get ready in time.")

    def _next_deadline(self) -> float | None:
        if not self._unready:
            return None
        return max(0.0, min(self._unready.values()) - time.monotonic())

    def _lose_zygote(self, selector: selectors.BaseSelector, zygote: ZygoteProcess) -> None:
        """The zygote died: its workers die with it (PDEATHSIG). Forget them and start over
        on the next turn; executions in flight see their worker's end as a crash."""
        selector.unregister(zygote.control)
        zygote.stop()
        self._zygote = None
        self._forget_workers(selector)
        self.pool.spares_lost()

    def _forget_workers(self, selector: selectors.BaseSelector) -> None:
        for worker in self._unready:
            selector.unregister(worker.sock)
            worker.close()
        self._unready.clear()
        for worker in self._by_pid.values():
            _settle(worker.exited, None)
        self._by_pid.clear()

    def _shut_down(self, selector: selectors.BaseSelector) -> None:
        if self._zygote is not None:
            self._zygote.stop()
        self._forget_workers(selector)
        self.pool.shut_down()
        selector.close()
        self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _settle(future: concurrent.futures.Future[Report], report: Report) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):  # settled or cancelled
        future.set_result(report)
