"""The code node's sandbox: user Python runs in a fresh, confined process forked from a warm
zygote, one process per execution. See pool.py (the pool), zygote.py (forking) and
lockdown.py (confinement).

    result = await sandbox.run(code, {"arg1": 1}, "python3", timeout=15)
    result.outputs  # the dict main returned, checked against Dify's limits

The pool of this process starts on first use, sized by WEFT_SANDBOX_WORKERS.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

from .answers import SandboxResult
from .errors import (
    CodeExecutionError,
    CodeSyntaxError,
    CpuTimeExceeded,
    InputValidationError,
    MainFunctionError,
    MemoryLimitExceeded,
    OutputTooLarge,
    OutputValidationError,
    SandboxError,
    SandboxTimeout,
    SandboxUnavailable,
    SandboxViolation,
    WorkerCrashed,
)
from .options import SandboxOptions
from .pool import SandboxPool

__all__ = [
    "CodeExecutionError",
    "CodeSyntaxError",
    "CpuTimeExceeded",
    "InputValidationError",
    "MainFunctionError",
    "MemoryLimitExceeded",
    "OutputTooLarge",
    "OutputValidationError",
    "SandboxError",
    "SandboxOptions",
    "SandboxPool",
    "SandboxResult",
    "SandboxTimeout",
    "SandboxUnavailable",
    "SandboxViolation",
    "WorkerCrashed",
    "close_pool",
    "get_pool",
    "run",
    "run_sync",
]

_pool: SandboxPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> SandboxPool:
    """This process's pool, created on first use from the WEFT_SANDBOX_* settings."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = SandboxPool(SandboxOptions.from_settings())
        return _pool


async def run(
    code: str, inputs: dict[str, Any], language: str = "python3", timeout: float | None = None
) -> SandboxResult:
    """Run `code`'s `main(**inputs)` in the sandbox; raises a SandboxError subclass."""
    return await get_pool().run(code, inputs, language, timeout)


def run_sync(
    code: str, inputs: dict[str, Any], language: str = "python3", timeout: float | None = None
) -> SandboxResult:
    """`run` for synchronous callers (not from a thread running an event loop)."""
    return get_pool().run_sync(code, inputs, language, timeout)


def close_pool() -> None:
    """Stop this process's pool (at shutdown, or in tests); the next run starts a new one."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


def _forget_pool_in_child() -> None:
    # A forked Celery or web worker gets copies of the pool's descriptors but not its keeper
    # thread: it starts its own pool on first use instead.
    global _pool, _pool_lock
    _pool_lock = threading.Lock()
    if _pool is not None:
        _pool.abandon()
        _pool = None


os.register_at_fork(after_in_child=_forget_pool_in_child)
# Before daemon threads stop: the keeper then closes the zygote, which cleans up after itself.
atexit.register(close_pool)
