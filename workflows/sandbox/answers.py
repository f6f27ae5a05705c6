"""Turning what a worker sent, or how it died, into a result or a typed error. A worker runs
user code, so its answer is decoded defensively: any field may be missing or of the wrong
type, and the result is checked against Dify's limits here, not there."""

from __future__ import annotations

import errno
import json
import signal
from dataclasses import dataclass
from typing import Any

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
    SandboxViolation,
    WorkerCrashed,
)
from .limits import check_outputs
from .options import SandboxOptions

NOT_PERMITTED_ERRNOS = (errno.EPERM, errno.EACCES)


@dataclass(frozen=True)
class SandboxResult:
    """What `main` returned, what the code printed, and how long the execution took."""

    outputs: dict[str, Any]
    stdout: str
    stderr: str
    duration_ms: float


def decode(body: bytes, options: SandboxOptions, duration_ms: float) -> SandboxResult:
    """The result in a worker's answer, or the error it describes."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8 and integers too long to convert.
        raise OutputValidationError("The result could not be decoded as JSON.") from None
    if not isinstance(answer, dict):
        raise WorkerCrashed("The sandbox process answered something unexpected.")
    logs = {"stdout": _text(answer, "stdout"), "stderr": _text(answer, "stderr")}
    kind = answer.get("kind")
    if kind == "ok":
        outputs = answer.get("result")
        if not isinstance(outputs, dict):
            raise MainFunctionError("main() must return a dict.", **logs)
        try:
            check_outputs(outputs)
        except OutputValidationError as exc:
            raise OutputValidationError(exc.message, **logs) from None
        return SandboxResult(outputs, logs["stdout"], logs["stderr"], duration_ms)
    raise _error(kind, answer, options, logs)


def _error(
    kind: Any, answer: dict[str, Any], options: SandboxOptions, logs: dict[str, str]
) -> SandboxError:
    message = _text(answer, "message")
    if kind == "exception":
        return _exception(answer, logs)
    if kind == "syntax":
        line, offset = _int(answer, "line"), _int(answer, "offset")
        where = f" (line {line})" if line is not None else ""
        text = _text(answer, "text")
        detail = f"\n    {text}" if text else ""
        return CodeSyntaxError(f"{message}{where}{detail}", line=line, offset=offset, **logs)
    if kind == "main":
        return MainFunctionError(message, **logs)
    if kind == "result":
        return OutputValidationError(message, **logs)
    if kind == "memory":
        return memory_error(options, **logs)
    if kind == "too_large":
        return output_too_large(_int(answer, "size"), options, **logs)
    if kind == "input":
        return InputValidationError("The request is larger than the sandbox accepts.", **logs)
    return WorkerCrashed("The sandbox process answered something unexpected.", **logs)


def _exception(answer: dict[str, Any], logs: dict[str, str]) -> SandboxError:
    exception_type = _text(answer, "type") or "Exception"
    headline = _text(answer, "headline") or exception_type
    details = {
        "exception_type": exception_type,
        "exception_message": _text(answer, "message"),
        "traceback": _text(answer, "traceback"),
    }
    if _int(answer, "errno") in NOT_PERMITTED_ERRNOS:
        message = f"Operation not permitted in the sandbox: {headline}\n{details['traceback']}"
        return SandboxViolation(message.rstrip(), **details, **logs)
    return CodeExecutionError(details["traceback"].rstrip() or headline, **details, **logs)


def death_error(report: dict[str, Any] | None, options: SandboxOptions) -> SandboxError:
    """The error for a worker that ended without answering, from the zygote's exit report."""
    if report is None:
        return WorkerCrashed("The sandbox process was lost before it answered.")
    number = report.get("signal")
    cpu = report.get("cpu", 0.0)
    if number == signal.SIGXCPU or (number == signal.SIGKILL and cpu >= options.cpu_seconds):
        return CpuTimeExceeded(
            f"The code used more than {options.cpu_seconds} s of CPU time and was stopped."
        )
    if number is not None:
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return WorkerCrashed(f"The code crashed the sandbox process ({name}).")
    return WorkerCrashed(
        f"The code ended the sandbox process (exit status {report.get('code')}) "
        "before main returned."
    )


def memory_error(options: SandboxOptions, **logs: str) -> MemoryLimitExceeded:
    return MemoryLimitExceeded(
        f"The code needed more memory than the sandbox's {options.memory_mb} MiB.", **logs
    )


def output_too_large(size: int | None, options: SandboxOptions, **logs: str) -> OutputTooLarge:
    amount = f"{size} bytes" if size is not None else "too large"
    return OutputTooLarge(
        f"The result is {amount} as JSON; the limit is {options.max_output_bytes} bytes "
        "(WEFT_SANDBOX_MAX_OUTPUT_BYTES).",
        **logs,
    )


def _text(answer: dict[str, Any], key: str) -> str:
    value = answer.get(key)
    return value if isinstance(value, str) else ""


def _int(answer: dict[str, Any], key: str) -> int | None:
    value = answer.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
