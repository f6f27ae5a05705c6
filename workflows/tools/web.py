"""Outbound requests of tools: always through the guarded client (private and local addresses
refused unless allow-listed, time and size capped), failures as ToolErrors that name the
host and keep the guard's error code."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from providers.http import GuardedResponse, OutboundError, guarded_request

from .base import ToolError


def host_of(url: str) -> str:
    return urlsplit(url).hostname or url


async def fetch(
    url: str,
    *,
    what: str,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    max_bytes: int,
    truncate: bool = False,
) -> GuardedResponse:
    """GET `url` for a tool; ToolError (with the guard's code) when it cannot be fetched or
    answers with an error status. `what` names the site in messages ("Wikipedia")."""
    try:
        response = await guarded_request(
            "GET",
            url,
            headers=headers,
            params=params,
            timeout=settings.WEFT_TOOLS_HTTP_TIMEOUT,
            max_bytes=max_bytes,
            truncate=truncate,
        )
    except OutboundError as exc:
        raise ToolError(f"{what} could not be reached: {exc.message}", code=exc.code) from None
    if response.status_code >= 400:
        raise ToolError(
            f"{what} answered HTTP {response.status_code} ({host_of(response.url)}).",
            code="tool_http_error",
        )
    return response
