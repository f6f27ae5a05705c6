"""The guarded HTTP client: every outbound request Weft makes on a user's behalf (model
providers, the workflow HTTP node, tools, callbacks, remote files) goes through it.

A tenant chooses the addresses, so the guard decides by the address actually connected to:

- A host is resolved once per connection (getaddrinfo, which also reads the odd notations
  `2130706433`, `0x7f.1`, `127.1` …), every answer is checked, and the connection goes to a
  checked answer. If any answer is refused the host is refused: a name that points partly
  inside is not trusted. TLS keeps the name (SNI, certificate check), as does the Host
  header, and kept-alive connections stay on the address checked when they were opened, so
  a DNS answer that changes later (rebinding) never reaches a socket.
- Refused: loopback, private, link-local, carrier-grade NAT, multicast, reserved,
  documentation and benchmarking ranges, IPv6 unique-local and site-local, and IPv4 carried
  in IPv6 (mapped, NAT64, 6to4) when that IPv4 is refused. Cloud metadata services, by
  address or name, are refused even when the allowlist covers them.
- WEFT_OUTBOUND_ALLOWLIST (networks and host names) lets an operator reach what is
  otherwise refused, e.g. an Ollama on the LAN. Any port is allowed, since model servers
  listen on their own (8000, 11434 …), unless WEFT_OUTBOUND_ALLOWED_PORTS lists some.
- Only http and https; redirects are re-checked hop by hop (`guarded_request` follows at
  most WEFT_OUTBOUND_MAX_REDIRECTS); time and response size are capped.
"""

from .errors import OutboundBlocked, OutboundError, OutboundTimeout, OutboundTooLarge
from .policy import check_address, is_forbidden, reset_allowlist
from .request import GuardedResponse, guarded_request, guarded_request_sync
from .transport import (
    DEFAULT_TIMEOUT,
    GuardedNetworkBackend,
    GuardedTransport,
    guarded_client,
    is_guarded,
    resolve,
    shared_client,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "GuardedNetworkBackend",
    "GuardedResponse",
    "GuardedTransport",
    "OutboundBlocked",
    "OutboundError",
    "OutboundTimeout",
    "OutboundTooLarge",
    "check_address",
    "guarded_client",
    "guarded_request",
    "guarded_request_sync",
    "is_forbidden",
    "is_guarded",
    "reset_allowlist",
    "resolve",
    "shared_client",
]
