"""Typed failures of guarded requests. Messages name the host at most: never a path, query,
user-info or header, which may carry a secret (tokens in webhook paths, keys in queries)."""

from __future__ import annotations

from tenants.exceptions import WeftError


class OutboundError(WeftError):
    """An outbound request failed: the destination could not be reached or answered wrongly."""

    code = "outbound_failed"
    status = 502


class OutboundBlocked(OutboundError):
    """The destination is not allowed (private network, loopback, metadata …)."""

    code = "outbound_blocked"
    status = 400


class OutboundTimeout(OutboundError):
    """The destination did not answer within the time allowed."""

    code = "outbound_timeout"
    status = 504


class OutboundTooLarge(OutboundError):
    """The response body is larger than the size allowed."""

    code = "outbound_too_large"
    status = 502
