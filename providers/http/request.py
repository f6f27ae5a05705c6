"""`guarded_request`: the one call the workflow HTTP node, tools, callbacks and remote files
use. Redirects are followed here, hop by hop, each through the guard; the whole exchange
has one deadline and the body one size cap."""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from asgiref.sync import async_to_sync
from django.conf import settings
from httpx._types import HeaderTypes, QueryParamTypes, RequestContent, RequestData, RequestFiles

from .errors import OutboundBlocked, OutboundError, OutboundTimeout, OutboundTooLarge
from .transport import (
    CONNECT_TIMEOUT,
    SCHEMES,
    guarded_client,
    is_guarded,
    no_cookies,
    shared_client,
)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Sent only to the origin of the URL they were given with, wherever redirects lead.
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")


@dataclass(frozen=True)
class GuardedResponse:
    """The final response of a guarded request, its body read up to the size cap."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    url: str  # after redirects, without user-info
    encoding: str
    truncated: bool = False

    @property
    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.body)


def _bounded(name: str, value: float | None, default: float, ceiling: float) -> float:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be positive, not {value}.")
    return min(default if value is None else value, ceiling)


@dataclass(frozen=True)
class _Plan:
    """The caps of one guarded request, its overrides already cut down to the settings."""

    total: float
    timeouts: httpx.Timeout
    limit: int
    truncate: bool
    hops: int | None  # None: redirects are answered, not followed


async def guarded_request(
    method: str,
    url: str,
    *,
    headers: HeaderTypes | None = None,
    params: QueryParamTypes | None = None,
    content: RequestContent | None = None,
    data: RequestData | None = None,
    files: RequestFiles | None = None,
    json: Any = None,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    max_bytes: int | None = None,
    truncate: bool = False,
    follow_redirects: bool = True,
    max_redirects: int | None = None,
    verify: ssl.SSLContext | bool = True,
    client: httpx.AsyncClient | None = None,
) -> GuardedResponse:
    """Send one request on a user's behalf through the guard and read the answer.

    `timeout` bounds the whole exchange, redirects and body included (default
    WEFT_OUTBOUND_TIMEOUT); `connect_timeout` each connection (default 10 s); `max_bytes`
    the decoded body (default WEFT_OUTBOUND_RESPONSE_BYTES): past it the read stops with
    OutboundTooLarge, or, with `truncate`, returns what fits. Overrides are cut down to
    WEFT_OUTBOUND_MAX_TIMEOUT, WEFT_OUTBOUND_MAX_RESPONSE_BYTES and
    WEFT_OUTBOUND_MAX_REDIRECTS. `client` (from guarded_client(), which then takes
    `verify`) replaces the event loop's shared client. Raises OutboundBlocked,
    OutboundTimeout, OutboundTooLarge or OutboundError; never httpx's errors.
    """
    total = _bounded(
        "timeout", timeout, settings.WEFT_OUTBOUND_TIMEOUT, settings.WEFT_OUTBOUND_MAX_TIMEOUT
    )
    limit = _bounded(
        "max_bytes",
        max_bytes,
        settings.WEFT_OUTBOUND_RESPONSE_BYTES,
        settings.WEFT_OUTBOUND_MAX_RESPONSE_BYTES,
    )
    if max_redirects is not None and max_redirects < 0:
        raise ValueError(f"max_redirects must not be negative, not {max_redirects}.")
    ceiling = settings.WEFT_OUTBOUND_MAX_REDIRECTS
    plan = _Plan(
        total=total,
        timeouts=httpx.Timeout(
            total, connect=_bounded("connect_timeout", connect_timeout, CONNECT_TIMEOUT, total)
        ),
        limit=int(limit),
        truncate=truncate,
        hops=min(ceiling if max_redirects is None else max_redirects, ceiling)
        if follow_redirects
        else None,
    )
    message = {
        "headers": headers,
        "params": params,
        "content": content,
        "data": data,
        "files": files,
        "json": json,
    }
    if client is not None:
        if not is_guarded(client):
            raise TypeError("guarded_request() takes only clients made by guarded_client().")
        if verify is not True:
            raise TypeError("Give `verify` to guarded_client() when passing a client.")
        return await _perform(client, method, url, message, plan)
    if verify is True:
        return await _perform(shared_client(), method, url, message, plan)
    async with guarded_client(verify=verify, cookies=no_cookies()) as own:
        return await _perform(own, method, url, message, plan)


def guarded_request_sync(method: str, url: str, **options: Any) -> GuardedResponse:
    """guarded_request for synchronous code (Celery tasks), with the same arguments. Its
    event loop lives for one call, so it makes and closes its own client."""

    async def once() -> GuardedResponse:
        verify = options.pop("verify", True)
        async with guarded_client(verify=verify, cookies=no_cookies()) as client:
            return await guarded_request(method, url, client=client, **options)

    return async_to_sync(once)()


async def _perform(
    client: httpx.AsyncClient, method: str, url: str, message: dict[str, Any], plan: _Plan
) -> GuardedResponse:
    try:
        request = client.build_request(method, url, timeout=plan.timeouts, **message)
    except (httpx.InvalidURL, UnicodeError) as exc:  # IDNA errors are UnicodeErrors
        raise OutboundError(
            f"The URL is not valid: {exc}", code="outbound_invalid_url", status=400
        ) from exc
    if request.url.scheme not in SCHEMES or not request.url.host:
        raise OutboundBlocked("Only http and https URLs with a host are allowed.")
    # Read now (multipart bodies stream from files) so that a 307/308 can send it again.
    await request.aread()
    try:
        async with asyncio.timeout(plan.total):
            return await _exchange(client, request, httpx.Headers(message["headers"]), plan)
    except TimeoutError as exc:
        raise OutboundTimeout(
            f"{request.url.host} did not answer within {plan.total:g} s."
        ) from exc


@contextlib.contextmanager
def _transport_errors(host: str) -> Iterator[None]:
    # httpx's messages for protocol errors may quote a header value; only connection
    # failures (a resolver or socket message) are passed on in words.
    try:
        yield
    except httpx.TimeoutException as exc:
        raise OutboundTimeout(f"{host} did not answer in time ({type(exc).__name__}).") from exc
    except httpx.ConnectError as exc:
        raise OutboundError(f"Could not connect to {host}: {exc}") from exc
    except httpx.TransportError as exc:
        raise OutboundError(f"The exchange with {host} failed ({type(exc).__name__}).") from exc


async def _exchange(
    client: httpx.AsyncClient, request: httpx.Request, caller_headers: httpx.Headers, plan: _Plan
) -> GuardedResponse:
    first_host, first_origin = request.url.host, _origin(request.url)
    redirects = 0
    while True:
        host = request.url.host
        try:
            with _transport_errors(host):
                response = await client.send(request, stream=True, follow_redirects=False)
        except OutboundBlocked as exc:
            if not redirects:
                raise
            raise OutboundBlocked(
                f"{first_host} redirected to a refused destination. {exc}"
            ) from exc
        try:
            location = response.headers.get("location")
            if plan.hops is not None and response.status_code in REDIRECT_STATUSES and location:
                if redirects >= plan.hops:
                    raise OutboundError(
                        f"{first_host} redirected more than {plan.hops} times.",
                        code="outbound_too_many_redirects",
                    )
                request = _redirected(client, request, response, location, caller_headers, plan)
                if _origin(request.url) != first_origin:
                    for name in CREDENTIAL_HEADERS:
                        request.headers.pop(name, None)
                redirects += 1
                continue
            with _transport_errors(host):
                body, truncated = await _read_body(response, plan.limit, plan.truncate)
        finally:
            await response.aclose()
        return GuardedResponse(
            status_code=response.status_code,
            headers=response.headers,
            body=body,
            url=str(response.url.copy_with(userinfo=b"")),
            encoding=response.encoding or "utf-8",
            truncated=truncated,
        )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def _redirected(
    client: httpx.AsyncClient,
    request: httpx.Request,
    response: httpx.Response,
    location: str,
    caller_headers: httpx.Headers,
    plan: _Plan,
) -> httpx.Request:
    """The next hop, as browsers make it: 303 (and 301/302 after POST) turns into a GET
    without body."""
    host = request.url.host
    try:
        target = request.url.join(location)
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise OutboundError(f"{host} redirected to an invalid URL.") from exc
    if target.scheme not in SCHEMES:
        raise OutboundBlocked(
            f"{host} redirected to a {target.scheme} URL; only http and https are followed."
        )
    method, status = request.method, response.status_code
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
    headers, content = httpx.Headers(caller_headers), None
    if method == request.method and request.content:
        content = request.content
        if "content-type" in request.headers:  # json, form and multipart bodies set it
            headers.setdefault("content-type", request.headers["content-type"])
    return client.build_request(
        method, target, headers=headers, content=content, timeout=plan.timeouts
    )


async def _read_body(response: httpx.Response, limit: int, truncate: bool) -> tuple[bytes, bool]:
    # Counted on the decoded bytes, the size that reaches the caller; a compressed chunk
    # can expand past the cap only by what one network read decodes to.
    body = bytearray()
    async for chunk in response.aiter_bytes():
        room = limit - len(body)
        if len(chunk) > room:
            if not truncate:
                raise OutboundTooLarge(
                    f"The response of {response.url.host} is larger than {limit} bytes."
                )
            body += chunk[:room]
            return bytes(body), True
        body += chunk
    return bytes(body), False
