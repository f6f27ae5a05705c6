"""The zygote: a clean interpreter that loads the standard modules user code may use, then
forks one worker per request of the pool and reports how each one ended.

It is started by the pool with `python -I -S` and a minimal environment: no Django, no
settings, no site-packages but pyseccomp's folder, no inherited descriptors but its control
socket. What a worker inherits by forking is this process, so there is nothing of the web
process in it to read. Workers are forked before any code is known and confine themselves
at once (lockdown.confine), so an execution only pays for sending its request.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import types
from typing import NoReturn

import pyseccomp

from . import lockdown, runner
from .options import SandboxOptions
from .protocol import (
    CONTROL_MESSAGE_MAX,
    EXITED,
    SPAWN,
    SPAWN_FAILED,
    WORKER,
    WORKER_BROKEN,
    WORKER_READY,
    ZYGOTE_READY,
    control_message,
)

# Loaded before any worker is forked: after confinement nothing more can be read from disk.
PRELOAD = (
    "array", "asyncio", "base64", "binascii", "bisect", "calendar", "collections",
    "concurrent.futures", "concurrent.futures.thread", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "enum", "fnmatch", "fractions",
    "functools", "hashlib", "heapq", "hmac", "html", "html.parser", "ipaddress", "itertools",
    "json", "math", "numbers", "operator", "pathlib", "pprint", "queue", "random", "re",
    "secrets", "shutil", "statistics", "string", "struct", "tempfile", "textwrap",
    "threading", "time", "typing", "unicodedata", "urllib.parse", "uuid", "zlib",
    # Imported lazily by strptime, str.encode and friends.
    "_strptime", "encodings.ascii", "encodings.cp1252", "encodings.idna",
    "encodings.latin_1", "encodings.raw_unicode_escape", "encodings.unicode_escape",
    "encodings.utf_16", "encodings.utf_32",
)  # fmt: skip

# Modules the worker used to confine itself: taken out of sys.modules so that user code does
# not find ctypes lying around (a convenience only: the kernel is what confines it).
CONFINEMENT_MODULES = ("ctypes", "_ctypes", "ctypes._endian", "pyseccomp")
# HTTP libraries Dify's sandbox offers; here they import, and fail when used (no network).
NETWORK_LIBRARIES = ("requests", "httpx")


def main(options_json: str, control_fd: int) -> None:
    """Entry point of the zygote process (zygote_process.ZygoteProcess starts it)."""
    options = SandboxOptions.from_json(options_json)
    # Ended with the pool's process, even a killed one, but by SIGTERM: time to remove the
    # working folders on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    lockdown.die_with_parent(signal.SIGTERM)
    control = socket.socket(fileno=control_fd)
    _preload()
    base = tempfile.mkdtemp(prefix="weft-sandbox-")
    os.chmod(base, 0o711)  # noqa: S103 (workers, as nobody, reach their own folder in it)
    zygote = Zygote(control, options, lockdown.landlock_abi(), base, lockdown.syscall_filter())
    # Preloaded objects move out of the collector's sight: a collection in a worker would
    # otherwise touch, and so copy, every page it shares with the zygote.
    gc.freeze()
    try:
        control.send(control_message(ZYGOTE_READY, {"base": base}))
        zygote.serve()
    finally:
        zygote.stop()
        shutil.rmtree(base, ignore_errors=True)


def _preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    # First calls that read files or initialise libraries (OpenSSL, the local time zone, the
    # strptime locale tables), done here while files can still be read.
    import datetime
    import hashlib
    import time
    import uuid

    hashlib.sha256(b"").hexdigest()
    hashlib.md5(b"", usedforsecurity=False).hexdigest()
    time.localtime()
    datetime.datetime.strptime("2024-01-02 03:04", "%Y-%m-%d %H:%M")  # noqa: DTZ007
    uuid.uuid4()
    "x".encode("idna")


class Zygote:
    """Forks workers on request and reports their ends; removes their folders."""

    def __init__(
        self,
        control: socket.socket,
        options: SandboxOptions,
        abi: int,
        base: str,
        syscalls: pyseccomp.SyscallFilter,
    ) -> None:
        self.control = control
        self.options = options
        self.abi = abi
        self.base = base
        self.syscalls = syscalls
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, tuple[int, str]] = {}  # pidfd -> (pid, working folder)

    def serve(self) -> None:
        """Until the pool's process closes the control socket (or goes away)."""
        self.selector.register(self.control, selectors.EVENT_READ)
        with contextlib.suppress(ConnectionError):
            while True:
                for key, _ in self.selector.select():
                    if key.fileobj is self.control:
                        message = self.control.recv(CONTROL_MESSAGE_MAX)
                        if not message:
                            return
                        if message == SPAWN:
                            self.spawn()
                    else:
                        self.reap(key.fd)

    def spawn(self) -> None:
        try:
            workdir = tempfile.mkdtemp(dir=self.base)
            if os.geteuid() == 0:
                os.chown(workdir, lockdown.NOBODY, lockdown.NOBODY)
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            pid = os.fork()
        except OSError as exc:
            self.control.send(control_message(SPAWN_FAILED, {"error": str(exc)}))
            return
        if pid == 0:
            ours.close()
            _become_worker(theirs, workdir, self)
        theirs.close()
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, workdir)
        self.selector.register(pidfd, selectors.EVENT_READ)
        message = control_message(WORKER, {"pid": pid})
        socket.send_fds(self.control, [message], [ours.fileno(), pidfd])
        ours.close()

    def reap(self, pidfd: int) -> None:
        pid, workdir = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status, usage = os.wait4(pid, 0)
        report: dict[str, float | int] = {"pid": pid, "cpu": usage.ru_utime + usage.ru_stime}
        if os.WIFSIGNALED(status):
            report["signal"] = os.WTERMSIG(status)
        else:
            report["code"] = os.waitstatus_to_exitcode(status)
        # Leftovers go with the worker: the next execution starts in a new, empty folder.
        shutil.rmtree(workdir, ignore_errors=True)
        self.control.send(control_message(EXITED, report))

    def stop(self) -> None:
        for pidfd, (pid, workdir) in self.children.items():
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                os.waitpid(pid, 0)
            shutil.rmtree(workdir, ignore_errors=True)
        self.children.clear()


def _become_worker(sock: socket.socket, workdir: str, zygote: Zygote) -> NoReturn:
    """The forked child: confine, say ready, serve one request, exit. Never returns into the
    zygote's loop, whatever happens."""
    try:
        try:
            zygote_pid = os.getppid()
            lockdown.die_with_parent(signal.SIGKILL)
            if os.getppid() != zygote_pid:  # the zygote died before the line above
                os._exit(1)
            os.setsid()  # out of the zygote's process group
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            lockdown.confine(
                workdir=workdir,
                keep_fd=sock.fileno(),
                options=zygote.options,
                abi=zygote.abi,
                syscalls=zygote.syscalls,
            )
            # tempfile.gettempdir() was answered in the zygote (its own folder): ask again.
            os.environ["HOME"] = os.environ["TMPDIR"] = tempfile.tempdir = os.getcwd()
            _forget_confinement()
            runner.limit_threads(zygote.options.max_threads)
            runner.rehearse()
        except BaseException as exc:
            sock.sendall(WORKER_BROKEN + str(exc).encode("utf-8", "replace"))
            os._exit(1)
        sock.sendall(WORKER_READY)
        runner.serve(sock, zygote.options)
    finally:
        os._exit(0)


class _NoNetwork(types.ModuleType):
    """Stands for an HTTP library: code written for Dify often imports one it never uses,
    which then works; using it fails with a message that says what to do instead."""

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise RuntimeError(
            f"{self.__name__}.{attribute}: the sandbox has no network; make HTTP calls with "
            "an HTTP request node and pass the response to this code."
        )


def _forget_confinement() -> None:
    for name in CONFINEMENT_MODULES:
        sys.modules.pop(name, None)
    sys.modules.pop(lockdown.__name__, None)
    for name in NETWORK_LIBRARIES:
        sys.modules[name] = _NoNetwork(name)
    # Only built-in and frozen modules can be imported from now on: files cannot be read,
    # so "No module named …" is the honest answer, at once. (sys.path_importer_cache stays:
    # freeing it would copy the pages it shares with the zygote, for nothing.)
    kept = {"BuiltinImporter", "FrozenImporter"}
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") in kept]
