"""Typed errors raised by services and authentication, mapped once to the error envelope."""

from __future__ import annotations


class WeftError(Exception):
    """An error a caller can act on: a stable `code`, a readable `message`, an HTTP `status`."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    @property
    def headers(self) -> dict[str, str]:
        """Response headers the error calls for (Retry-After, say)."""
        return {}

    @property
    def extra(self) -> dict:
        """Fields the envelope carries beside code, message and status (a quota's figures)."""
        return {}


class InvalidInput(WeftError):
    code = "invalid_param"
    status = 400


class NotFound(WeftError):
    code = "not_found"
    status = 404


class Forbidden(WeftError):
    code = "forbidden"
    status = 403


class Unauthorized(WeftError):
    code = "unauthorized"
    status = 401


class TenantSuspended(WeftError):
    code = "tenant_suspended"
    status = 403

    def __init__(self, message: str = "This tenant is suspended. Contact the platform operator."):
        super().__init__(message)


class Conflict(WeftError):
    code = "conflict"
    status = 409
