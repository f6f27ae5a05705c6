"""Errors of the code sandbox. The class name is what a node execution records as its
`error_type` (as Dify does); the message is what the workflow author reads."""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every sandbox error; carries what the code printed before it failed."""

    def __init__(self, message: str, *, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.stdout = stdout
        self.stderr = stderr


class SandboxUnavailable(SandboxError):
    """The sandbox cannot run code here: isolation missing, workers failing to start, or a
    language that is not installed."""


class InputValidationError(SandboxError):
    """An input is not JSON-compatible or breaks a size limit."""


class CodeSyntaxError(SandboxError):
    """The code does not compile."""

    def __init__(self, message: str, *, line: int | None, offset: int | None, **logs: str) -> None:
        super().__init__(message, **logs)
        self.line = line
        self.offset = offset


class CodeExecutionError(SandboxError):
    """The code raised. `traceback` holds the user's frames only, never the sandbox's."""

    def __init__(
        self,
        message: str,
        *,
        exception_type: str,
        exception_message: str,
        traceback: str,
        **logs: str,
    ) -> None:
        super().__init__(message, **logs)
        self.exception_type = exception_type
        self.exception_message = exception_message
        self.traceback = traceback


class SandboxViolation(CodeExecutionError):
    """The code tried something the sandbox forbids (network, processes, files outside its
    folder …) and the failure reached the top of `main`."""


class MemoryLimitExceeded(SandboxError):
    """The code asked for more memory than the sandbox's address-space limit."""


class CpuTimeExceeded(SandboxError):
    """The code used more CPU time than its limit."""


class SandboxTimeout(SandboxError):
    """The code ran past its wall-clock timeout and was killed."""


class MainFunctionError(SandboxError):
    """The code defines no callable `main`, or `main` did not return a dict."""


class OutputValidationError(SandboxError):
    """The result is not JSON-compatible or breaks one of Dify's output limits."""


class OutputTooLarge(OutputValidationError):
    """The encoded result is larger than the sandbox's output cap."""


class WorkerCrashed(SandboxError):
    """The sandbox process ended without a result (a crash, a signal, an exit call)."""
