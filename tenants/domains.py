"""Custom domains: a tenant's own host names for its portals, proven theirs by a DNS TXT
record before Weft answers on them.

    _weft-verify.chat.acme.com.  TXT  "weft-verify=<token>"

`domain_verify` looks the record up (on `WEFT_DNS_NAMESERVERS` when set, else the system's
resolver); `manage.py verify_domain` runs it from the shell or a scheduler.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import dns.exception
import dns.resolver
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .context import tenant_context
from .exceptions import Conflict, Forbidden, InvalidInput
from .models import CustomDomain, Tenant

HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
PREFIX = "_weft-verify"


def record_name(domain: CustomDomain) -> str:
    """Where the verification TXT record goes."""
    return f"{PREFIX}.{domain.domain}"


def record_value(domain: CustomDomain) -> str:
    return f"weft-verify={domain.verification_token}"


def clean_domain(value: Any) -> str:
    """A host name a tenant may claim; InvalidInput for an IP, a malformed name, or one of
    the platform's own hosts (or a name under them)."""
    if not isinstance(value, str):
        raise InvalidInput("domain: must be text.")
    domain = value.strip().lower().rstrip(".")
    try:
        ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        pass
    else:
        raise InvalidInput("domain: a host name, not an IP address.")
    if not HOST.match(domain):
        raise InvalidInput(f"domain: “{domain}” is not a host name such as chat.example.com.")
    for own in settings.WEFT_ALLOWED_HOSTS:
        own = own.lower().lstrip(".")
        if own and own != "*" and (domain == own or domain.endswith("." + own)):
            raise InvalidInput(f"domain: “{domain}” belongs to this Weft installation.")
    return domain


def domain_add(*, tenant: Tenant, domain: Any, site: Any = None) -> CustomDomain:
    """Claim a domain for the tenant (all its sites, or `site` alone); it answers once
    verified."""
    from billing.quota import feature

    name = clean_domain(domain)
    if not feature(tenant, "custom_domains"):
        raise Forbidden(
            "Custom domains are not in this workspace's plan.", code="feature_not_in_plan"
        )
    if site is not None and site.tenant_id != tenant.pk:
        raise InvalidInput("site: no such site.")
    try:
        with transaction.atomic(), tenant_context(tenant):
            return CustomDomain.objects.create(tenant=tenant, domain=name, site=site)
    except IntegrityError:
        raise Conflict(f"domain: “{name}” is already claimed.") from None


def domain_remove(*, tenant: Tenant, domain: CustomDomain) -> None:
    if domain.tenant_id != tenant.pk:
        raise InvalidInput("domain: no such domain.")
    with tenant_context(tenant):
        domain.delete()


def _resolver() -> dns.resolver.Resolver:
    servers = [s.strip() for s in settings.WEFT_DNS_NAMESERVERS.split(",") if s.strip()]
    resolver = dns.resolver.Resolver(configure=not servers)
    if servers:
        resolver.nameservers = []
        ports = {}
        for server in servers:
            host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            resolver.nameservers.append(host)
            if port:
                ports[host] = int(port)
        resolver.nameserver_ports = ports
    resolver.lifetime = settings.WEFT_DNS_TIMEOUT
    resolver.timeout = settings.WEFT_DNS_TIMEOUT
    return resolver


def _txt_values(name: str) -> list[str]:
    answer = _resolver().resolve(name, "TXT")
    return [b"".join(record.strings).decode(errors="replace") for record in answer]


def domain_verify(*, domain: CustomDomain) -> bool:
    """Look for the domain's TXT record now; record the outcome (and why it failed)."""
    error = ""
    try:
        found = _txt_values(record_name(domain))
    except dns.resolver.NXDOMAIN:
        found, error = [], f"{record_name(domain)} does not exist in DNS."
    except dns.resolver.NoAnswer:
        found, error = [], f"{record_name(domain)} has no TXT record."
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        found, error = [], f"DNS did not answer ({type(exc).__name__})."
    ok = record_value(domain) in found
    if not ok and not error:
        error = f"The TXT record at {record_name(domain)} does not hold {record_value(domain)}."
    with tenant_context(domain.tenant):
        domain.last_checked_at = timezone.now()
        domain.last_error = "" if ok else error[:300]
        if ok and domain.verified_at is None:
            domain.verified_at = domain.last_checked_at
        elif not ok:
            domain.verified_at = None
        domain.save(update_fields=["last_checked_at", "last_error", "verified_at"])
    return ok


def verified_domain(host: str) -> CustomDomain | None:
    """The verified custom domain a request's Host names (any tenant's), or None."""
    name = host.split(":", 1)[0].lower().rstrip(".") if host and not host.startswith("[") else ""
    if not name or not HOST.match(name):
        return None
    return (
        CustomDomain.dangerously_unscoped.select_related("site")
        .filter(domain=name, verified_at__isnull=False)
        .first()
    )
