"""The guarded connection layer: an httpcore network backend that resolves a host once, checks
every answer and connects to a checked address, and the httpx clients built on it."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import weakref
from collections.abc import Iterable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import anyio
import httpcore
import httpx
from django.conf import settings

from .errors import OutboundBlocked
from .policy import IPAddress, check_address, check_host_name, check_port

CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = httpx.Timeout(connect=CONNECT_TIMEOUT, read=120.0, write=30.0, pool=10.0)
SCHEMES = frozenset({"http", "https"})


async def _getaddrinfo(host: str, port: int) -> list[tuple[Any, ...]]:
    return await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _literal(host: str) -> IPAddress | None:
    # httpx keeps an IPv6 zone id percent-encoded ("fe80::1%25eth0"), which getaddrinfo
    # cannot read; the address must still be judged rather than fail as unresolvable.
    try:
        return ipaddress.ip_address(host.replace("%25", "%").rstrip("."))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` stands for, each checked: one refused answer refuses the host,
    since the answer a later connect would pick is not ours to choose."""
    check_host_name(host)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await _getaddrinfo(host, port)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"Cannot resolve {host}: {exc.strerror}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise httpcore.ConnectError(f"Cannot resolve {host}.")
    for address in addresses:
        check_address(host, address)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects only to checked addresses. httpcore hands it the URL's host; TLS (SNI and
    certificate check) and the Host header keep using that name, and the pool keys its
    connections by it, so a kept-alive connection stays on the address checked for it."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        check_port(host, port)
        try:
            # One deadline for resolving and connecting: a slow resolver must not extend it.
            with anyio.fail_after(timeout):
                addresses = await resolve(host, port)
                failures: list[httpcore.ConnectError] = []
                # Checked answers in order, so a dual-stack name still works where IPv6
                # does not route.
                for address in addresses:
                    try:
                        return await self._inner.connect_tcp(
                            str(address),
                            port,
                            local_address=local_address,
                            socket_options=socket_options,
                        )
                    except httpcore.ConnectError as exc:
                        failures.append(exc)
                raise failures[-1]
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"No connection to {host} in {timeout} s.") from exc

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (request and error mapping) over a pool of guarded connections."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True) -> None:
        # The parent's constructor would build a pool with the default backend and load the
        # CA bundle for nothing: httpx takes no network backend, so the pool is built here
        # (with httpx's default limits).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedNetworkBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in SCHEMES:
            raise OutboundBlocked(f"Only http and https are allowed, not {request.url.scheme}.")
        return await super().handle_async_request(request)


def no_cookies() -> CookieJar:
    """A cookie jar that keeps nothing: a client shared by tenants must not carry one
    tenant's cookies into another's requests."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


_guarded: weakref.WeakSet[httpx.AsyncClient] = weakref.WeakSet()


def guarded_client(*, verify: ssl.SSLContext | bool = True, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx.AsyncClient whose every connection goes through the guard. Redirects are not
    followed unless asked; when they are, each hop connects through the guard again."""
    for bypass in ("mounts", "proxy"):
        if bypass in kwargs:
            raise TypeError(f"guarded_client() takes no {bypass}: it would bypass the guard.")
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    kwargs.setdefault("follow_redirects", False)
    kwargs.setdefault("max_redirects", settings.WEFT_OUTBOUND_MAX_REDIRECTS)
    client = httpx.AsyncClient(transport=GuardedTransport(verify=verify), **kwargs)
    _guarded.add(client)
    return client


def is_guarded(client: httpx.AsyncClient) -> bool:
    """Whether `client` was made by guarded_client(), so that all its requests are guarded."""
    return client in _guarded


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def shared_client() -> httpx.AsyncClient:
    """The guarded client of the running event loop, made once and kept: model calls reuse
    its connections (and TLS sessions) instead of opening new ones every time. Never close
    it; it lives as long as its loop. It keeps no cookies (see `no_cookies`)."""
    loop = asyncio.get_running_loop()
    client = _shared.get(loop)
    if client is None or client.is_closed:
        client = _shared[loop] = guarded_client(cookies=no_cookies())
    return client
