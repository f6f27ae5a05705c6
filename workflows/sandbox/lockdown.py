"""Confining a freshly forked sandbox worker, for good: after `confine` the process can read
and write only its own empty folder and talk only over the socket it was given.

Layers, each enough on its own for what it guards, in the order they are applied:

1. fds: everything but the result socket is closed; stdin/stdout/stderr are /dev/null.
2. chroot into the working folder when running as root (Dify's first layer too), unless
   options.chroot is off.
3. Landlock (when the kernel has it): file access only beneath the working folder, no TCP,
   no signals or abstract unix sockets outside the worker.
   With neither chroot nor Landlock the worker refuses to start: seccomp cannot check paths.
4. rlimits: CPU seconds, address space, open files, file size, no core dumps.
5. root drops to nobody (uid/gid 65534, no supplementary groups); capabilities go with it.
6. no_new_privs, not dumpable.
7. seccomp, two stacked filters: the shared allowlist of what CPython needs (everything
   else fails with EPERM, so the code sees "Operation not permitted"; new processes are
   refused while threads are allowed) and a per-worker one letting signals reach only
   the worker itself. The kernel applies the stricter answer of the two.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
import socket

import pyseccomp as seccomp

from .options import MIB, SandboxOptions

NOBODY = 65534

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

# x86_64 and aarch64 share these numbers (the generic table starts the new calls at 424).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

# Landlock filesystem rights by the ABI version that introduced them.
FS_RIGHTS_BY_ABI = {
    1: (1 << 13) - 1,  # execute … make_sym
    2: 1 << 13,  # refer (rename/link across folders)
    3: 1 << 14,  # truncate
    5: 1 << 15,  # ioctl on devices
}
FS_EXECUTE = 1 << 0
FS_MAKE_DEVICES_AND_PIPES = (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11)  # char, sock, fifo, block
FS_IOCTL_DEV = 1 << 15
NET_BIND_AND_CONNECT_TCP = 0b11  # ABI 4
SCOPE_ABSTRACT_UNIX_AND_SIGNAL = 0b11  # ABI 6

CLONE_THREAD = 0x00010000
# Namespace flags (ns, cgroup, uts, ipc, user, pid, net, time): a thread brings none along.
CLONE_NEW_ANY = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000
CLONE_NEW_ANY |= 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080

# ioctl requests CPython makes on its own fds: isatty (TCGETS), terminal size,
# set_blocking/set_inheritable.
ALLOWED_IOCTLS = (0x5401, 0x5413, 0x5421, 0x5450, 0x5451)

# System calls the interpreter needs once its modules are loaded. Paths are checked by
# chroot/Landlock, so file calls are allowed here; what is missing fails with EPERM.
ALLOWED_SYSCALLS = (
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    # files and descriptors
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "preadv2",
    "pwritev", "pwritev2", "lseek", "close", "close_range", "open", "openat", "creat",
    "fstat", "stat", "lstat", "newfstatat", "statx", "fstatfs", "statfs", "access",
    "faccessat", "faccessat2", "readlink", "readlinkat", "getcwd", "chdir", "fchdir",
    "getdents", "getdents64", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename",
    "renameat", "renameat2", "symlink", "symlinkat", "truncate", "ftruncate", "fsync",
    "fdatasync", "flock", "fcntl", "dup", "dup2", "dup3", "pipe", "pipe2", "sendfile",
    # on an open descriptor only: opening was checked (by path, chmod would not be)
    "fchmod",
    "copy_file_range", "poll", "ppoll", "select", "pselect6", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    # the result socket (already connected: no address can be given)
    "sendto", "recvfrom", "shutdown",
    # time
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    # about itself
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "getpgrp", "getpgid", "getsid", "getrusage", "times", "uname",
    "sysinfo", "getrlimit", "getcpu", "sched_getaffinity", "sched_yield", "getpriority",
    "getrandom",
    # threads and signals
    "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "sigaltstack", "restart_syscall", "exit", "exit_group",
)  # fmt: skip

# Answered "not supported" rather than "not permitted", so that shutil and friends carry on
# without extended attributes (which Landlock does not guard).
XATTR_SYSCALLS = (
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
)  # fmt: skip


class LockdownError(RuntimeError):
    """The worker could not be confined; it must not run code."""


def die_with_parent(signal_number: int) -> None:
    """Have this process sent `signal_number` when the thread that started it ends."""
    _prctl(PR_SET_PDEATHSIG, signal_number)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is missing or disabled."""
    version = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(int(version), 0)


def confine(
    *,
    workdir: str,
    keep_fd: int,
    options: SandboxOptions,
    abi: int,
    syscalls: seccomp.SyscallFilter,
) -> None:
    """Confine this process to `workdir` and `keep_fd` (see the module docstring).
    `syscalls` is `syscall_filter()`, built once in the zygote."""
    _isolate_fds(keep_fd)
    os.chdir(workdir)
    as_root = os.geteuid() == 0
    use_chroot = as_root and options.chroot
    if not use_chroot and abi == 0:
        raise LockdownError(
            "no file-system isolation: the kernel has no Landlock and chroot is not possible"
        )
    ruleset = _landlock_ruleset(workdir, abi) if abi else None
    if use_chroot:
        os.chroot(workdir)
        os.chdir("/")
    _set_limits(options)
    if as_root:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
        if os.geteuid() == 0 or os.getegid() == 0:
            raise LockdownError("could not drop root privileges")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 0)
    if ruleset is not None:
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
        os.close(ruleset)
    # Two stacked filters (the kernel applies the stricter answer): this worker's own, which
    # needs its pid, then the shared allowlist, which also forbids loading any more.
    _signals_to_self_only(os.getpid()).load()
    syscalls.load()


def syscall_filter() -> seccomp.SyscallFilter:
    """The allowlist every worker loads last; built once, in the zygote, to keep forks cheap."""
    rules = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
    for name in ALLOWED_SYSCALLS:
        rules.add_rule(seccomp.ALLOW, name)
    # Threads yes, processes no: clone must carry CLONE_THREAD and no namespace flag.
    rules.add_rule(
        seccomp.ALLOW,
        "clone",
        seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD | CLONE_NEW_ANY, CLONE_THREAD),
    )
    # clone3 passes its flags in memory, out of seccomp's sight; ENOSYS makes glibc fall
    # back to clone, which is checked above.
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    # A connected pair of unix sockets reaches nothing outside the process (a pipe, really);
    # asyncio's event loop needs one to wake itself.
    rules.add_rule(seccomp.ALLOW, "socketpair", seccomp.Arg(0, seccomp.EQ, socket.AF_UNIX))
    for name in XATTR_SYSCALLS:
        rules.add_rule(seccomp.ERRNO(errno.ENOTSUP), name)
    # Signals: which process may be signalled is the per-worker filter's business.
    rules.add_rule(seccomp.ALLOW, "kill")
    rules.add_rule(seccomp.ALLOW, "tgkill")
    # getrlimit is prlimit64 on itself (pid 0) with no new limit; setting one is refused.
    rules.add_rule(
        seccomp.ALLOW, "prlimit64", seccomp.Arg(0, seccomp.EQ, 0), seccomp.Arg(2, seccomp.EQ, 0)
    )
    for request in ALLOWED_IOCTLS:
        rules.add_rule(seccomp.ALLOW, "ioctl", seccomp.Arg(1, seccomp.EQ, request))
    return rules


def _signals_to_self_only(pid: int) -> seccomp.SyscallFilter:
    # raise(), abort() and a thread interrupting the main thread signal the worker itself;
    # nothing else may be signalled (not the zygote, not the web process, not other workers).
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in ("kill", "tgkill"):
        rules.add_rule(seccomp.ERRNO(errno.EPERM), name, seccomp.Arg(0, seccomp.NE, pid))
    rules.add_rule(seccomp.ERRNO(errno.EPERM), "tkill")
    return rules


def _isolate_fds(keep_fd: int) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 1 << 20)


def _landlock_ruleset(workdir: str, abi: int) -> int:
    handled_fs = 0
    for version, rights in FS_RIGHTS_BY_ABI.items():
        if abi >= version:
            handled_fs |= rights
    # The kernel takes a shorter struct from older ABIs (a larger one must end in zeros).
    fields = [handled_fs]
    if abi >= 4:
        fields.append(NET_BIND_AND_CONNECT_TCP)
    if abi >= 6:
        fields.append(SCOPE_ABSTRACT_UNIX_AND_SIGNAL)
    attr = (ctypes.c_uint64 * len(fields))(*fields)
    ruleset = int(_libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, ctypes.sizeof(attr), 0))
    _check(ruleset, "landlock_create_ruleset")

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    folder = os.open(workdir, os.O_PATH | os.O_CLOEXEC)
    try:
        # Ordinary files and folders only: nothing executes, no devices, pipes or sockets.
        allowed = handled_fs & ~(FS_EXECUTE | FS_MAKE_DEVICES_AND_PIPES | FS_IOCTL_DEV)
        rule = PathBeneath(allowed, folder)
        result = _libc.syscall(
            SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
        )
        _check(result, "landlock_add_rule")
    finally:
        os.close(folder)
    return ruleset


def _set_limits(options: SandboxOptions) -> None:
    # Soft CPU limit sends SIGXCPU; the hard one, a second later, kills even code that
    # ignores SIGXCPU. Other limits are hard: the code cannot raise them back.
    resource.setrlimit(resource.RLIMIT_CPU, (options.cpu_seconds, options.cpu_seconds + 1))
    memory = options.memory_mb * MIB
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # Thread stacks default to RLIMIT_STACK: 8 MiB keeps a thread count within the memory cap.
    resource.setrlimit(resource.RLIMIT_STACK, (8 * MIB, 8 * MIB))
    resource.setrlimit(resource.RLIMIT_NOFILE, (options.max_open_files, options.max_open_files))
    file_size = options.max_file_mb * MIB
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    for limit in (resource.RLIMIT_CORE, resource.RLIMIT_MEMLOCK, resource.RLIMIT_MSGQUEUE):
        resource.setrlimit(limit, (0, 0))
    # A write past RLIMIT_FSIZE then fails with EFBIG (an OSError the code sees) instead of
    # killing the worker.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, value, 0, 0, 0), f"prctl({option})")


def _check(result: int, what: str) -> None:
    if result < 0:
        code = ctypes.get_errno()
        raise LockdownError(f"{what} failed: {os.strerror(code)}")
