"""Code that tries to get out of the sandbox: each attempt fails, leaves no trace outside, and
the pool serves the next execution normally (checked after every test)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workflows.sandbox import (
    CodeExecutionError,
    CpuTimeExceeded,
    MemoryLimitExceeded,
    OutputTooLarge,
    OutputValidationError,
    SandboxError,
    SandboxOptions,
    SandboxPool,
    SandboxTimeout,
    SandboxViolation,
    WorkerCrashed,
    lockdown,
)

ECHO = "def main(**inputs):\n    return inputs\n"
LIMITS = {"timeout": 5, "cpu_seconds": 5, "memory_mb": 256}
x86_64_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 syscall numbers")
as_root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop happens as root")


@pytest.fixture(scope="module")
def chroot_pool():
    pool = SandboxPool(SandboxOptions(workers=2, **LIMITS))
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def landlock_pool():
    """Files confined by Landlock alone, as when not running as root."""
    pool = SandboxPool(SandboxOptions(workers=2, chroot=False, **LIMITS))
    yield pool
    pool.close()


@pytest.fixture
def pool(chroot_pool):
    return chroot_pool


@pytest.fixture(params=["chroot", "landlock"])
def any_pool(request, chroot_pool, landlock_pool):
    return chroot_pool if request.param == "chroot" else landlock_pool


@pytest.fixture(autouse=True)
def stays_healthy(chroot_pool, landlock_pool):
    yield
    for pool in (chroot_pool, landlock_pool):
        assert pool.run_sync(ECHO, {"still": "fine"}).outputs == {"still": "fine"}


def fails(pool, code, inputs=None, error=SandboxError, **kwargs):
    with pytest.raises(error) as caught:
        pool.run_sync(code, inputs or {}, **kwargs)
    return caught.value


# Network.


def test_connecting_anywhere_fails_before_any_traffic(pool):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    code = (
        "import socket\n"
        "def main(host, port):\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "    s.connect((host, port))\n"
        "    return {}\n"
    )
    for host, port in (("127.0.0.1", listener.getsockname()[1]), ("1.1.1.1", 80)):
        error = fails(pool, code, {"host": host, "port": port}, SandboxViolation)
        assert "Operation not permitted in the sandbox" in error.message
        assert "line 3, in main" in error.traceback  # socket() itself, before any connect
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()


@pytest.mark.parametrize(
    "call",
    [
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('1.1.1.1', 53))",
        "socket.socket(socket.AF_UNIX).connect('/run/docker.sock')",
        "socket.socket(socket.AF_INET6)",
        "socket.socketpair(socket.AF_INET)",
        "socket.getaddrinfo('example.com', 443)",
    ],
)
def test_no_socket_of_any_kind(pool, call):
    fails(pool, f"import socket\ndef main():\n    {call}\n    return {{}}\n")


# Files.


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "/proc/self/environ", "/proc/1/cmdline", "/dev/mem", __file__]
)
def test_files_outside_the_working_folder_cannot_be_read(any_pool, path):
    code = (
        "def main(path):\n    with open(path, 'rb') as f:\n        return {'d': f.read().hex()}\n"
    )

    error = fails(any_pool, code, {"path": path}, CodeExecutionError)

    assert error.exception_type in {"FileNotFoundError", "PermissionError"}


def test_the_web_process_cannot_be_read_through_proc(any_pool):
    code = "def main(pid):\n    return {'env': open(f'/proc/{pid}/environ', 'rb').read().hex()}\n"

    fails(any_pool, code, {"pid": os.getpid()}, CodeExecutionError)


def test_a_symlink_does_not_lead_out(any_pool):
    code = (
        "import os\n"
        "def main():\n"
        "    os.symlink('/etc/passwd', 'p')\n"
        "    return {'d': open('p').read()}\n"
    )

    fails(any_pool, code, {}, CodeExecutionError)


def test_listing_shows_nothing_outside(any_pool):
    code = (
        "import os\n"
        "def main():\n"
        "    seen = []\n"
        "    for path in ('/', '..', '/etc', '/tmp'):\n"
        "        try:\n"
        "            seen += os.listdir(path)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return {'seen': seen}\n"
    )

    assert any_pool.run_sync(code, {}).outputs == {"seen": []}


def test_writing_outside_the_working_folder_fails(any_pool, tmp_path):
    targets = [str(tmp_path / "escaped"), f"/tmp/weft-escape-{os.getpid()}"]  # noqa: S108
    code = "def main(path):\n    open(path, 'w').write('x')\n    return {}\n"

    for target in targets:
        fails(any_pool, code, {"path": target}, CodeExecutionError)
        assert not os.path.exists(target)


def test_files_outside_cannot_be_changed_or_linked(any_pool, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    victim.chmod(0o600)
    for call in (
        "os.chmod(path, 0o777)",
        "os.chown(path, 65534, 65534)",
        "os.link(path, 'hard')",
        "os.utime(path, (0, 0))",
        "os.rename(path, 'moved')",
        "os.unlink(path)",
    ):
        fails(
            any_pool,
            f"import os\ndef main(path):\n    {call}\n    return {{}}\n",
            {"path": str(victim)},
        )
    assert victim.read_text() == "keep"
    assert victim.stat().st_mode & 0o777 == 0o600


# Processes.


def test_os_system_starts_nothing(pool, tmp_path):
    marker = tmp_path / "ran"
    code = "import os\ndef main(marker):\n    return {'status': os.system(f'touch {marker}')}\n"

    assert pool.run_sync(code, {"marker": str(marker)}).outputs["status"] != 0
    assert not marker.exists()


@pytest.mark.parametrize(
    "call",
    [
        "subprocess.run(['touch', marker])",
        "os.execv('/bin/sh', ['sh', '-c', f'touch {marker}'])",
        "os.posix_spawn('/bin/touch', ['touch', marker], {})",
        "os.fork()",
    ],
)
def test_no_new_process_and_no_exec(pool, tmp_path, call):
    marker = tmp_path / "ran"
    code = f"import os, subprocess\ndef main(marker):\n    {call}\n    return {{}}\n"

    error = fails(pool, code, {"marker": str(marker)}, SandboxViolation)

    assert "Operation not permitted in the sandbox" in error.message
    assert not marker.exists()


def test_a_fork_bomb_stops_at_the_first_fork(pool):
    code = "import os\ndef main():\n    while True:\n        os.fork()\n"

    fails(pool, code, {}, SandboxViolation)


def test_killing_the_zygote_the_web_process_or_everyone_is_refused(pool):
    zygote = pool.stats()["zygote_pid"]
    for target in ("os.getppid()", str(os.getpid()), "-1", "0"):
        code = f"import os\ndef main():\n    os.kill({target}, 9)\n    return {{}}\n"
        fails(pool, code, {}, SandboxViolation)
    assert pool.stats()["zygote_pid"] == zygote


def test_a_worker_may_kill_itself_only(pool):
    error = fails(pool, "import os\ndef main():\n    os.kill(os.getpid(), 9)\n", {}, WorkerCrashed)
    assert "SIGKILL" in error.message


def test_a_dead_zygote_is_replaced(pool):
    zygote = pool.stats()["zygote_pid"]
    os.kill(zygote, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pool.stats()["zygote_pid"] in (zygote, None) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.stats()["zygote_pid"] not in (zygote, None)


@as_root_only
def test_code_runs_as_nobody_with_a_minimal_environment(pool):
    code = (
        "import os\n"
        "def main():\n"
        "    return {\n"
        "        'ids': [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],\n"
        "        'groups': os.getgroups(),\n"
        "        'env': sorted(os.environ),\n"
        "        'files': os.listdir('.'),\n"
        "    }\n"
    )

    outputs = pool.run_sync(code, {}).outputs

    assert outputs["ids"] == [65534] * 4
    assert outputs["groups"] == []
    assert outputs["env"] == ["HOME", "LANG", "LC_ALL", "MALLOC_ARENA_MAX", "PATH", "TMPDIR", "TZ"]
    assert outputs["files"] == []


# Resources.


@pytest.mark.parametrize(
    "body",
    [
        "x = b'x' * 10**10",
        "x = bytearray(300 * 2**20)",
        "x = []\n    while True:\n        x.append('y' * 2**20)",
    ],
)
def test_memory_bombs_hit_the_limit(pool, body):
    error = fails(pool, f"def main():\n    {body}\n    return {{}}\n", {}, MemoryLimitExceeded)
    assert "256 MiB" in error.message


def test_an_infinite_loop_is_stopped_by_the_timeout(pool):
    started = time.monotonic()
    fails(pool, "def main():\n    while True:\n        pass\n", {}, SandboxTimeout, timeout=1)
    assert time.monotonic() - started < 4  # the CPU limit is 5 s


@pytest.mark.parametrize("ignore_sigxcpu", [False, True])
def test_cpu_time_is_limited_even_without_the_wall_clock(ignore_sigxcpu):
    pool = SandboxPool(SandboxOptions(workers=1, timeout=30, cpu_seconds=1))
    setup = "signal.signal(signal.SIGXCPU, signal.SIG_IGN)" if ignore_sigxcpu else "pass"
    code = f"import signal\ndef main():\n    {setup}\n    while True:\n        pass\n"
    try:
        started = time.monotonic()
        error = fails(pool, code, {}, CpuTimeExceeded)
        assert (
            time.monotonic() - started < 20
        )  # well before the 30 s wall clock, even on a busy machine
        assert "1 s of CPU time" in error.message
    finally:
        pool.close()


def test_threads_work_and_a_thread_bomb_is_bounded(pool):
    threads = (
        "import threading\n"
        "def main():\n"
        "    out = []\n"
        "    ts = [threading.Thread(target=lambda i=i: out.append(i * i)) for i in range(8)]\n"
        "    [t.start() for t in ts]\n"
        "    [t.join() for t in ts]\n"
        "    return {'squares': sorted(out)}\n"
    )
    bomb = (
        "import threading, time\n"
        "def main():\n"
        "    started = 0\n"
        "    try:\n"
        "        while True:\n"
        "            threading.Thread(target=time.sleep, args=(10,), daemon=True).start()\n"
        "            started += 1\n"
        "    except RuntimeError as exc:\n"
        "        return {'started': started, 'error': str(exc)}\n"
    )

    assert pool.run_sync(threads, {}).outputs == {"squares": [i * i for i in range(8)]}
    outputs = pool.run_sync(bomb, {}).outputs
    assert outputs == {
        "started": 15,
        "error": "can't start new thread: the sandbox allows 16 threads",
    }


def test_a_huge_result_is_refused_without_being_read(pool):
    error = fails(pool, "def main():\n    return {'x': 'y' * 10**7}\n", {}, OutputTooLarge)
    assert "limit is 4194304 bytes" in error.message


def test_huge_printing_is_truncated(pool):
    code = (
        "def main():\n"
        "    for _ in range(10_000):\n"
        "        print('z' * 1000)\n"
        "    return {'ok': 1}\n"
    )

    result = pool.run_sync(code, {})

    assert result.outputs == {"ok": 1}
    assert len(result.stdout) < 70_000
    assert result.stdout.endswith("[truncated]")


def test_the_answer_is_not_trusted(pool):
    # The result socket is the one descriptor left open; the code can write to it directly.
    socket_fd = (
        "import json, os, stat, struct, time\n"
        "def result_fd():\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        "            if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
        "                return fd\n"
        "        except OSError:\n"
        "            pass\n"
    )
    lie_about_size = socket_fd + (
        "def main():\n    os.write(result_fd(), struct.pack('!Q', 2**62))\n    time.sleep(10)\n"
    )
    forge_a_result = socket_fd + (
        "def main():\n"
        "    body = json.dumps({'kind': 'ok', 'result': {'x': 'a' * 500_000}}).encode()\n"
        "    os.write(result_fd(), struct.pack('!Q', len(body)) + body)\n"
        "    os._exit(0)\n"
    )

    fails(pool, lie_about_size, {}, OutputTooLarge)
    error = fails(pool, forge_a_result, {}, OutputValidationError)
    assert "Output `x` is a string of 500000 characters" in error.message


# ctypes and leftovers.


def test_ctypes_cannot_be_imported(pool):
    error = fails(pool, "import ctypes\ndef main():\n    return {}\n", {}, CodeExecutionError)
    assert error.exception_type == "ModuleNotFoundError"


# The confinement code is still loaded (and with it ctypes): a determined user finds it.
FIND_CTYPES = (
    "from workflows.sandbox import zygote\n"
    "ctypes = zygote.lockdown.ctypes\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
)


@x86_64_only
def test_ctypes_found_anyway_still_meets_the_kernel(pool, tmp_path):
    marker = tmp_path / "ran"
    code = FIND_CTYPES + (
        "def main(marker, zygote):\n"
        "    return {\n"
        "        'system': libc.system(f'touch {marker}'.encode()),\n"
        "        'socket': libc.syscall(41, 2, 1, 0),\n"
        "        'ptrace': libc.syscall(101, 16, zygote, 0, 0),\n"
        "        'unshare': libc.syscall(272, 0x10000000),\n"
        "        'setuid': libc.syscall(105, 0),\n"
        "        'errno': ctypes.get_errno(),\n"
        "    }\n"
    )

    outputs = pool.run_sync(
        code, {"marker": str(marker), "zygote": pool.stats()["zygote_pid"]}
    ).outputs

    assert outputs["system"] != 0
    assert not marker.exists()
    assert outputs["socket"] == outputs["ptrace"] == outputs["unshare"] == outputs["setuid"] == -1
    assert outputs["errno"] == 1  # EPERM


def test_reading_arbitrary_memory_crashes_only_the_worker(pool):
    code = FIND_CTYPES + "def main():\n    return {'x': ctypes.string_at(8, 16).hex()}\n"

    error = fails(pool, code, {}, WorkerCrashed)

    assert "SIGSEGV" in error.message


def test_nothing_is_left_for_the_next_execution(any_pool):
    writer = (
        "import builtins, json, os, sys\n"
        "def main():\n"
        "    open('secret.txt', 'w').write('tenant A')\n"
        "    os.mkdir('cache')\n"
        "    json.leak = builtins.leak = 'A'\n"
        "    os.environ['LEAK'] = 'A'\n"
        "    sys.modules['leak'] = json\n"
        "    return {'files': sorted(os.listdir('.'))}\n"
    )
    reader = (
        "import builtins, json, os, random, sys, uuid\n"
        "def main():\n"
        "    return {\n"
        "        'files': os.listdir('.'),\n"
        "        'leaks': [hasattr(json, 'leak'), hasattr(builtins, 'leak'),\n"
        "                  'LEAK' in os.environ, 'leak' in sys.modules],\n"
        "        'random': random.random(), 'uuid': str(uuid.uuid4()),\n"
        "    }\n"
    )

    assert any_pool.run_sync(writer, {}).outputs == {"files": ["cache", "secret.txt"]}
    seen = [any_pool.run_sync(reader, {}).outputs for _ in range(4)]

    for outputs in seen:
        assert outputs["files"] == []
        assert outputs["leaks"] == [False] * 4
    assert len({outputs["random"] for outputs in seen}) == 4  # not one seed from the zygote
    assert len({outputs["uuid"] for outputs in seen}) == 4


NON_ROOT_SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from workflows.sandbox import SandboxError, SandboxOptions, SandboxPool

pool = SandboxPool(SandboxOptions(workers=1))
cases = {
    "whoami": "import os\\ndef main():\\n    return {'uid': os.getuid()}",
    "read": "def main():\\n    return {'p': open('/etc/passwd').read()}",
    "project": f"def main():\\n    return {{'s': open({sys.argv[1]!r} + '/manage.py').read()}}",
    "write": f"def main():\\n    open({sys.argv[2]!r}, 'w').write('x')\\n    return {{}}",
    "kill": f"import os\\ndef main():\\n    os.kill({os.getpid()}, 9)",
    "socket": "import socket\\ndef main():\\n    socket.socket()",
}
seen = {}
for name, code in cases.items():
    try:
        seen[name] = pool.run_sync(code, {}).outputs
    except SandboxError as exc:
        seen[name] = type(exc).__name__
pool.close()
print(json.dumps(seen))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="becomes another user"
)
def test_without_root_landlock_and_seccomp_confine_alone(tmp_path):
    tmp_path.chmod(0o777)
    marker = tmp_path / "written"
    project = str(Path(__file__).resolve().parents[2])
    # An ordinary user, given only the right to search folders so that it can reach this
    # interpreter (it may live under /root); Landlock does not yield to capabilities.
    become_user = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]
    become_user += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    completed = subprocess.run(
        [*become_user, sys.executable, "-c", NON_ROOT_SCRIPT, project, str(marker)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    seen = json.loads(completed.stdout)
    assert seen == {
        "whoami": {"uid": 1000},
        "read": "SandboxViolation",
        "project": "SandboxViolation",
        "write": "SandboxViolation",
        "kill": "SandboxViolation",
        "socket": "SandboxViolation",
    }
    assert not marker.exists()


def test_without_landlock_or_chroot_a_worker_refuses_to_run(tmp_path):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            lockdown.confine(
                workdir=str(tmp_path),
                keep_fd=write_end,
                options=SandboxOptions(chroot=False),
                abi=0,  # as on a kernel without Landlock
                syscalls=lockdown.syscall_filter(),
            )
            os.write(write_end, b"confined")
        except lockdown.LockdownError as exc:
            os.write(write_end, str(exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 1000).decode()
    os.waitpid(pid, 0)
    os.close(read_end)

    assert (
        answer == "no file-system isolation: the kernel has no Landlock and chroot is not possible"
    )
