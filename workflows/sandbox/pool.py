"""The warm pool, in the web or Celery process: idle, confined workers (forked by the zygote,
kept by the keeper thread, see keeper.py); an execution takes one, sends its request, reads
the answer under a wall-clock timeout, and kills it. Each worker serves exactly one
execution, so nothing of one execution (files, modules, memory) reaches the next.

The keeper asks for a replacement as soon as a worker is taken, so forking and confining
(a few ms) overlap the execution instead of following it; at most `workers` executions run
at once, so there are at most twice that many workers.

The pool belongs to no event loop: waiting for a worker is a concurrent.futures.Future and the
socket I/O goes through whichever loop is running, so the asyncio engine, `asyncio.run` in a
Celery task and plain threads (`run_sync`) can share it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from collections import deque
from typing import Any

from .answers import SandboxResult, death_error, decode, output_too_large
from .errors import InputValidationError, SandboxTimeout, SandboxUnavailable
from .keeper import Keeper, Worker
from .limits import check_inputs
from .options import SandboxOptions
from .protocol import HEADER, dumps, frame

LANGUAGES = ("python3",)
# After a worker dies without answering, how long to wait for the zygote's exit report.
EXIT_REPORT_WAIT = 2.0
# A failing pool refuses executions at once for this long, then tries to start again.
RETRY_AFTER = 5.0


class SandboxPool:
    """A warm pool of sandbox workers; start it lazily, share it between threads and loops."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._idle: deque[Worker] = deque()
        self._waiters: deque[concurrent.futures.Future[Worker]] = deque()
        self._busy = 0  # executions holding a worker
        self._starting = 0  # asked of the zygote, not ready yet
        self._failure: tuple[str, float] | None = None
        self._closing = False
        self._keeper = Keeper(self)

    async def run(
        self,
        code: str,
        inputs: dict[str, Any],
        language: str = "python3",
        timeout: float | None = None,
    ) -> SandboxResult:
        """Run `code`'s `main(**inputs)` in a fresh confined worker and return its result."""
        if language not in LANGUAGES:
            # Node is installed, but could not run under this confinement as it is (no chroot
            # without its libraries, a JIT, its own threads and syscalls): refused rather
            # than run with less isolation.
            raise SandboxUnavailable(f"{language} is not available")
        request = self._request(code, inputs)
        limit = self.options.timeout if timeout is None else timeout
        if limit <= 0:
            raise InputValidationError("The timeout must be a positive number of seconds.")
        worker = await self._acquire()
        started = time.monotonic()
        try:
            body = await self._exchange(worker, request, limit)
        finally:
            worker.kill()
            worker.close()
            self._retire()
        return decode(body, self.options, (time.monotonic() - started) * 1000)

    def run_sync(
        self,
        code: str,
        inputs: dict[str, Any],
        language: str = "python3",
        timeout: float | None = None,
    ) -> SandboxResult:
        """`run` for synchronous callers (not from a thread running an event loop)."""
        return asyncio.run(self.run(code, inputs, language, timeout))

    def stats(self) -> dict[str, int | None]:
        """Counts for health checks and tests."""
        with self._lock:
            return {
                "idle": len(self._idle),
                "busy": self._busy,
                "starting": self._starting,
                "zygote_pid": self._keeper.zygote_pid,
            }

    def close(self) -> None:
        """Stop the keeper and the zygote (which kills its workers)."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        self._keeper.stop()

    def abandon(self) -> None:
        """In a child forked from this process: drop the copies of the pool's descriptors
        (so the zygote still sees the real owner go) without signalling anything."""
        self._keeper.abandon()

    # Executions.

    def _request(self, code: str, inputs: dict[str, Any]) -> bytes:
        if not isinstance(code, str):
            raise InputValidationError("The code must be a string.")
        if not isinstance(inputs, dict):
            raise InputValidationError("The inputs must be a dict of variable names to values.")
        check_inputs(inputs)
        try:
            payload = dumps({"code": code, "inputs": inputs})
        except (TypeError, ValueError) as exc:
            raise InputValidationError(f"The inputs are not JSON-compatible: {exc}") from None
        if len(payload) > self.options.max_input_bytes:
            raise InputValidationError(
                f"The code and inputs are {len(payload)} bytes as JSON; the limit is "
                f"{self.options.max_input_bytes} (WEFT_SANDBOX_MAX_INPUT_BYTES)."
            )
        return frame(payload)

    async def _acquire(self) -> Worker:
        with self._lock:
            if self._closing:
                raise SandboxUnavailable("The sandbox pool is closed.")
            if self._failure is not None:
                reason, since = self._failure
                if time.monotonic() - since < RETRY_AFTER:
                    raise SandboxUnavailable(reason)
                self._failure = None
            self._keeper.start()
            waiter: concurrent.futures.Future[Worker] = concurrent.futures.Future()
            self._waiters.append(waiter)
            self._dispatch_locked()
        self._keeper.wake()
        try:
            return await asyncio.wrap_future(waiter)
        except asyncio.CancelledError:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # Handed over as we were cancelled: unused, it goes back.
                    self._idle.appendleft(waiter.result())
                    self._busy -= 1
                    self._dispatch_locked()
            raise

    async def _exchange(self, worker: Worker, request: bytes, limit: float) -> bytes:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(limit):
                await loop.sock_sendall(worker.sock, request)
                (size,) = HEADER.unpack(await _recv_exactly(loop, worker.sock, HEADER.size))
                if size > self.options.max_output_bytes:
                    raise output_too_large(size, self.options)
                return await _recv_exactly(loop, worker.sock, size)
        except TimeoutError:
            worker.kill()
            raise SandboxTimeout(
                f"The code ran longer than its {limit:g} s timeout and was stopped."
            ) from None
        except (EOFError, ConnectionError):
            try:
                report = await asyncio.wait_for(
                    asyncio.shield(asyncio.wrap_future(worker.exited)), EXIT_REPORT_WAIT
                )
            except TimeoutError:
                report = None
            raise death_error(report, self.options) from None

    def _retire(self) -> None:
        with self._lock:
            self._busy -= 1
            self._dispatch_locked()

    def _dispatch_locked(self) -> None:
        """Hand idle workers to waiters, as far as the concurrency limit allows."""
        while self._waiters and self._idle and self._busy < self.options.workers:
            waiter = self._waiters.popleft()
            if waiter.set_running_or_notify_cancel():
                waiter.set_result(self._idle.popleft())
                self._busy += 1
                self._keeper.wake()  # a replacement, now

    # Called by the keeper thread.

    def wants_workers(self) -> bool:
        with self._lock:
            return self._deficit_locked() > 0

    def claim_spawns(self) -> int:
        """How many workers the keeper should ask for now (counted as starting)."""
        with self._lock:
            deficit = self._deficit_locked()
            self._starting += deficit
            return deficit

    def _deficit_locked(self) -> int:
        if self._failure is not None or self._closing:
            return 0
        return max(0, self.options.workers - len(self._idle) - self._starting)

    def worker_ready(self, worker: Worker) -> None:
        with self._lock:
            self._starting -= 1
            self._idle.append(worker)
            self._dispatch_locked()

    def worker_not_started(self) -> None:
        with self._lock:
            self._starting -= 1

    def discard_idle(self, worker: Worker) -> None:
        """A worker ended while idle (killed from outside): forget it, the keeper replaces it."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                worker.close()

    def spares_lost(self) -> None:
        """The zygote died, and its idle and starting workers with it."""
        with self._lock:
            for worker in self._idle:
                worker.close()
            self._idle.clear()
            self._starting = 0

    def fail(self, reason: str) -> None:
        """Refuse executions for a while: a worker that cannot start now will not start on
        the next try either (no Landlock, no fork, a broken interpreter)."""
        with self._lock:
            self._failure = (reason, time.monotonic())
            waiters = list(self._waiters)
            self._waiters.clear()
        _refuse(waiters, reason)

    def shut_down(self) -> None:
        """The keeper is stopping: close idle workers, refuse whoever waits."""
        with self._lock:
            idle, self._idle = list(self._idle), deque()
            waiters, self._waiters = list(self._waiters), deque()
        for worker in idle:
            worker.close()
        _refuse(waiters, "The sandbox pool is closed.")


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = await loop.sock_recv_into(sock, view[received:])
        if count == 0:
            raise EOFError
        received += count
    return bytes(buffer)


def _refuse(waiters: list[concurrent.futures.Future[Worker]], reason: str) -> None:
    for waiter in waiters:
        if waiter.set_running_or_notify_cancel():
            waiter.set_exception(SandboxUnavailable(reason))
