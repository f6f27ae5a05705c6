"""Which destinations a guarded request may reach: address classes, cloud metadata, ports and
the operator's allowlist (WEFT_OUTBOUND_ALLOWLIST, WEFT_OUTBOUND_ALLOWED_PORTS)."""

from __future__ import annotations

import ipaddress
import logging
from functools import cache

from django.conf import settings

from .errors import OutboundBlocked

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Listed explicitly rather than trusting `is_private`/`is_global` alone: their tables change
# between Python releases and miss some of these (CGN, 6to4, site-local).
_BLOCKED_V4 = _networks(
    "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host on Linux
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # carrier-grade NAT; Alibaba's metadata service lives in it
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local; most clouds' metadata service
    "192.0.0.0/24",  # IETF protocol assignments; Oracle's metadata service
    "192.0.2.0/24",  # documentation
    "198.51.100.0/24",
    "203.0.113.0/24",
    "192.88.99.0/24",  # 6to4 relay anycast
    "198.18.0.0/15",  # benchmarking
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, broadcast 255.255.255.255 included
)
_BLOCKED_V6 = _networks(
    "::/96",  # unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
    "64:ff9b:1::/48",  # local-use NAT64
    "100::/64",  # discard
    "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) included
    "2001:db8::/32",  # documentation
    "3fff::/20",
    "5f00::/16",  # segment routing
    "fc00::/7",  # unique local; AWS metadata over IPv6 (fd00:ec2::254)
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated, still routed by some stacks)
    "ff00::/8",  # multicast
)
# Prefixes that carry an IPv4 address which a gateway (NAT64, 6to4) connects to: judged by
# that address, so public IPv4 stays reachable from IPv6-only hosts behind DNS64.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Refused even when the allowlist covers them: no request made for a tenant has a reason to
# read a cloud instance's credentials.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean …
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure WireServer: public, but answers only inside Azure
        "fd00:ec2::254",  # AWS over IPv6
    )
)
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)


def normal_host(host: str) -> str:
    """The form of a host name that lists compare: lower case, no trailing root dot."""
    return host.lower().rstrip(".")


@cache
def _allowlist() -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in settings.WEFT_OUTBOUND_ALLOWLIST:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(normal_host(entry))
    return tuple(networks), frozenset(hosts)


def reset_allowlist() -> None:
    """Forget the parsed allowlist (tests and settings changes)."""
    _allowlist.cache_clear()


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def effective_address(address: IPAddress) -> IPAddress:
    """The IPv4 address a mapped, NAT64 or 6to4 address leads to; else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        return _embedded_ipv4(address) or address
    return address


def is_forbidden(address: IPAddress) -> bool:
    """Whether `address` is loopback, private, link-local, CGN, multicast, reserved … ."""
    address = effective_address(address)
    blocked = _BLOCKED_V4 if address.version == 4 else _BLOCKED_V6
    return any(address in network for network in blocked) or not address.is_global


def _refuse(host: str, reason: str) -> OutboundBlocked:
    logger.warning("Outbound request to %s refused: %s", host, reason)
    return OutboundBlocked(f"Requests to {host} are not allowed: {reason}")


def check_host_name(host: str) -> None:
    """Refuse cloud metadata names before they are resolved."""
    if normal_host(host) in METADATA_NAMES:
        raise _refuse(host, "it is a cloud metadata service.")


def check_port(host: str, port: int) -> None:
    """Refuse ports outside WEFT_OUTBOUND_ALLOWED_PORTS (an empty list allows any)."""
    allowed = settings.WEFT_OUTBOUND_ALLOWED_PORTS
    if allowed and port not in allowed:
        raise _refuse(host, f"port {port} is not in WEFT_OUTBOUND_ALLOWED_PORTS.")


def check_address(host: str, address: IPAddress) -> None:
    """Raise OutboundBlocked unless `address` (resolved from `host`) may be reached."""
    effective = effective_address(address)
    if effective in METADATA_ADDRESSES:
        raise _refuse(host, f"it is a cloud metadata service ({address}).")
    networks, hosts = _allowlist()
    if normal_host(host) in hosts or any(
        address in network or effective in network for network in networks
    ):
        return
    if is_forbidden(address):
        raise _refuse(
            host,
            f"it resolves to a private or local address ({address}). "
            "An operator can allow it with WEFT_OUTBOUND_ALLOWLIST.",
        )
