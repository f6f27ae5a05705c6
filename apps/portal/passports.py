"""Passports: what a portal visitor's browser shows instead of an `app-` key.

A passport is a signed token naming the site (its code), the visitor (a random id: their
end user, their conversations) and the grant the site's access mode gave: `public`, a
password (a fingerprint of its hash, so a new password ends the old passports), an e-mail
address, or a member. The browser keeps it in local storage and sends it as a bearer token;
no cookie carries it, so an embedded portal works without third-party cookies, and no
cross-site request can borrow it. Each use checks it against the site as it is now: a
regenerated code, a changed password, a domain no longer allowed or a membership ended
turns it away.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from tenants.models import Membership

from ..models import Site

SALT = "weft.portal.passport"


@dataclass(frozen=True)
class Visitor:
    """Who a valid passport stands for."""

    id: str  # the end user's session id
    name: str  # an e-mail address, or empty


def _password_mark(site: Site) -> str:
    return "pw:" + hashlib.sha256(site.password_hash.encode()).hexdigest()[:16]


def issue(site: Site, grant: str, visitor: str | None = None) -> str:
    """A passport for this site and grant (a new visitor unless one is named)."""
    return signing.dumps(
        {"c": site.code, "v": visitor or secrets.token_urlsafe(16), "g": grant},
        salt=SALT,
        compress=True,
    )


def public_grant() -> str:
    return "public"


def password_grant(site: Site) -> str:
    return _password_mark(site)


def email_grant(email: str) -> str:
    return "mail:" + email.lower()


def member_grant(user_id: int) -> str:
    return f"member:{user_id}"


def visitor_of(site: Site, token: str) -> Visitor | None:
    """The visitor a passport stands for on this site now, or None (sync: a member's
    passport is checked against the tenant's memberships)."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.WEFT_PORTAL_PASSPORT_DAYS * 86400)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("c") != site.code:
        return None
    visitor, grant = data.get("v"), data.get("g")
    if not isinstance(visitor, str) or not visitor or not isinstance(grant, str):
        return None
    name = grant[5:] if grant.startswith("mail:") else ""
    if grant_holds(site, grant):
        return Visitor(id=visitor, name=name)
    return None


def grant_holds(site: Site, grant: str) -> bool:
    """Whether a grant still opens the site under its access mode."""
    mode = site.access_mode
    if mode == Site.Access.PUBLIC:
        return True
    if mode == Site.Access.PASSWORD:
        return bool(site.password_hash) and grant == _password_mark(site)
    if mode == Site.Access.EMAIL_DOMAINS:
        if not grant.startswith("mail:") or "@" not in grant:
            return False
        domain = grant.rsplit("@", 1)[1]
        return domain in (site.allowed_email_domains or [])
    if mode == Site.Access.MEMBERS:
        if not grant.startswith("member:") or not grant[7:].isdigit():
            return False
        return Membership.dangerously_unscoped.filter(
            tenant_id=site.tenant_id, user_id=int(grant[7:])
        ).exists()
    return False
