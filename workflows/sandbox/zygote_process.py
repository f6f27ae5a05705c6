"""Starting and stopping the zygote process (its own code is in zygote.py)."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import SandboxUnavailable
from .options import SandboxOptions
from .protocol import CONTROL_MESSAGE_MAX, ZYGOTE_READY, parse_control

START_TIMEOUT = 30.0
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])

# -I -S: no PYTHON* variables, no user or site packages; the project and pyseccomp's folder
# go at the end of sys.path, so they cannot shadow a standard module.
BOOT = (
    "import sys; sys.path += sys.argv[1:3]; from workflows.sandbox.zygote import main; "
    "main(sys.argv[3], int(sys.argv[4]))"
)
# All the environment the zygote, and so user code, gets (os.environ shows it).
ENVIRONMENT = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "PATH": "/usr/bin:/bin",
    # glibc reserves 64 MiB of address space per malloc arena; few arenas keep threads
    # within the address-space limit.
    "MALLOC_ARENA_MAX": "2",
}


@dataclass
class ZygoteProcess:
    """A running zygote and the pool's end of its control socket."""

    process: subprocess.Popen[bytes]
    control: socket.socket
    # Where the zygote makes working folders; removed here too, as a killed zygote cannot.
    base: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(cls, options: SandboxOptions) -> ZygoteProcess:
        """Start a zygote and wait until it has loaded its modules."""
        spec = importlib.util.find_spec("pyseccomp")
        if spec is None or spec.origin is None:
            raise SandboxUnavailable("pyseccomp is not installed")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            argv = [
                sys.executable, "-I", "-S", "-c", BOOT,
                PROJECT_ROOT, str(Path(spec.origin).parent),
                options.to_json(), str(theirs.fileno()),
            ]  # fmt: skip
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                argv,
                pass_fds=[theirs.fileno()],
                env=ENVIRONMENT,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # Its own session: a terminal's Ctrl-C is for the web process, which then
                # closes the control socket.
                start_new_session=True,
            )
        zygote = cls(process, ours)
        ours.settimeout(START_TIMEOUT)
        try:
            hello = ours.recv(CONTROL_MESSAGE_MAX)
        except OSError:
            hello = b""
        tag, body = parse_control(hello) if hello else (b"", {})
        if tag != ZYGOTE_READY:
            zygote.stop()
            raise SandboxUnavailable(
                f"The sandbox zygote did not start (exit status {process.returncode})."
            )
        zygote.base = body["base"]
        ours.settimeout(None)
        return zygote

    def stop(self) -> None:
        """Close the control socket (the zygote then kills its workers and exits); kill it if
        it does not."""
        self.control.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
