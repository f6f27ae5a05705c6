"""The guarded HTTP client: every outbound request Weft makes for a tenant goes through it.

A tenant chooses the addresses (a provider's base URL, later HTTP nodes, tools, callbacks),
so each request is checked after DNS resolution: private, loopback, link-local (cloud
metadata), multicast and reserved addresses are refused unless WEFT_OUTBOUND_ALLOWLIST
names them. The connection then goes to the address that was checked, so a DNS answer that
changes between the check and the connect (rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import weakref
from functools import cache

import httpx
from django.conf import settings

from tenants.exceptions import WeftError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0)


class OutboundBlocked(WeftError):
    """The destination is not allowed (private network, loopback, metadata …)."""

    code = "outbound_blocked"
    status = 400


@cache
def _allowlist() -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in settings.WEFT_OUTBOUND_ALLOWLIST:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return tuple(networks), frozenset(hosts)


def reset_allowlist() -> None:
    _allowlist.cache_clear()


def _forbidden(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def check_address(host: str, address: IPAddress) -> None:
    """Raise OutboundBlocked unless `address` (resolved from `host`) may be reached."""
    networks, hosts = _allowlist()
    if host.lower().rstrip(".") in hosts or any(address in network for network in networks):
        return
    if _forbidden(address):
        raise OutboundBlocked(
            f"Requests to {host} are not allowed: it resolves to a private or local address "
            f"({address}). An operator can allow it with WEFT_OUTBOUND_ALLOWLIST."
        )


async def resolve(host: str, port: int) -> IPAddress:
    """The first address of `host` after checking every address it resolves to."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        check_address(host, literal)
        return literal
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"Cannot resolve {host}: {exc.strerror}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise httpx.ConnectError(f"Cannot resolve {host}.")
    for address in addresses:  # every answer must pass: the connect may pick any of them
        check_address(host, address)
    return addresses[0]


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to checked addresses (see the module doc)."""

    def __init__(self, **kwargs) -> None:
        self._inner = httpx.AsyncHTTPTransport(**kwargs)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        if request.url.scheme not in {"http", "https"}:
            raise OutboundBlocked(f"Only http and https are allowed, not {request.url.scheme}.")
        address = await resolve(host, port)
        pinned = str(address) if address.version == 4 else f"[{address}]"
        request.url = request.url.copy_with(host=pinned.strip("[]"))
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_client(**kwargs) -> httpx.AsyncClient:
    """An httpx.AsyncClient whose every request goes through the guard; redirects are not
    followed unless asked (each hop is checked again when they are)."""
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    kwargs.setdefault("follow_redirects", False)
    return httpx.AsyncClient(transport=GuardedTransport(), **kwargs)


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def shared_client() -> httpx.AsyncClient:
    """The guarded client of the running event loop, made once and kept: model calls reuse
    its connections (and TLS sessions) instead of opening new ones every time. Never close
    it; it lives as long as its loop."""
    loop = asyncio.get_running_loop()
    client = _shared.get(loop)
    if client is None or client.is_closed:
        client = _shared[loop] = guarded_client()
    return client
