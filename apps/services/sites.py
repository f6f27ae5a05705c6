"""An app's portal site: its settings, who may use it (a password, allowed e-mail domains
and their one-time codes), and where it may be embedded."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import URLValidator
from django.db import transaction

from tenants.branding import sender
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, WeftError
from tenants.models import Tenant

from ..models import App, Site, new_site_code

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
CODE_SECONDS = 600
CODE_TRIES = 5
MAX_LIST = 50

# The fields a site's owner sets (access has its own: the password is never a field).
TEXT_FIELDS = {
    "title": 255,
    "icon_type": 16,
    "icon": 255,
    "icon_background": 16,
    "description": 2000,
    "copyright": 255,
    "custom_disclaimer": 1000,
    "input_placeholder": 255,
}
FLAGS = (
    "show_workflow_steps",
    "use_icon_as_answer_icon",
    "chat_color_theme_inverted",
    "prompt_public",
)


def site_create(*, app: App) -> Site:
    """The app's site, titled and iconed as the app (in the caller's transaction)."""
    return Site.dangerously_unscoped.create(
        tenant_id=app.tenant_id,
        app=app,
        title=app.name,
        icon_type=app.icon_type,
        icon=app.icon,
        icon_background=app.icon_background,
        description=app.description,
    )


def _text(name: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name}: must be text.")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"{name}: at most {limit} characters.")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name}: must be true or false.")
    return value


def clean_origin(value: Any) -> str:
    """An embedding origin as CSP takes it (`https://host[:port]`), or InvalidInput."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("embed_origins: each origin must be text.")
    raw = value.strip().rstrip("/")
    parts = urlsplit(raw)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
        or any(c in raw for c in " ;,'\"*")
    ):
        raise InvalidInput(
            f"embed_origins: “{raw}” is not an origin such as https://www.example.com "
            "(a scheme and a host, an optional port, no path, no wildcard)."
        )
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput(f"embed_origins: “{raw}” has a port that is no number.") from None
    origin = f"{parts.scheme}://{parts.hostname}"
    return origin + (f":{port}" if port else "")


def clean_domain(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput("allowed_email_domains: each domain must be text.")
    domain = value.strip().lower().lstrip("@")
    if not DOMAIN.match(domain):
        raise InvalidInput(f"allowed_email_domains: “{domain}” is not a domain name.")
    return domain


def _list(name: str, value: Any, clean: Any) -> list[str]:
    if not isinstance(value, list):
        raise InvalidInput(f"{name}: must be a list.")
    if len(value) > MAX_LIST:
        raise InvalidInput(f"{name}: at most {MAX_LIST}.")
    return list(dict.fromkeys(clean(item) for item in value))


def site_update(*, tenant: Tenant, site: Site, **fields: Any) -> Site:
    """Change a site's settings; every value is checked before any is written."""
    if site.tenant_id != tenant.pk:
        raise InvalidInput("No such site.")
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name in TEXT_FIELDS:
            values[name] = _text(name, value, TEXT_FIELDS[name])
        elif name in FLAGS:
            values[name] = _flag(name, value)
        elif name == "privacy_policy":
            link = _text(name, value, 500)
            if link:
                try:
                    URLValidator(schemes=["http", "https"])(link)
                except ValidationError:
                    raise InvalidInput("privacy_policy: must be an http(s) link.") from None
            values[name] = link
        elif name == "chat_color_theme":
            colour = _text(name, value, 7)
            if colour and not COLOUR.match(colour):
                raise InvalidInput("chat_color_theme: a colour such as #155EEF.")
            values[name] = colour
        elif name == "default_language":
            if value not in Site.Language.values:
                raise InvalidInput(f"default_language: one of {', '.join(Site.Language.values)}.")
            values[name] = value
        elif name == "access_mode":
            if value not in Site.Access.values:
                raise InvalidInput(f"access_mode: one of {', '.join(Site.Access.values)}.")
            values[name] = value
        elif name == "allowed_email_domains":
            values[name] = _list(name, value, clean_domain)
        elif name == "embed_origins":
            values[name] = _list(name, value, clean_origin)
        else:
            raise InvalidInput(f"{name}: not a site setting.")
    if "title" in values and not values["title"]:
        raise InvalidInput("title: a site needs a title.")
    mode = values.get("access_mode", site.access_mode)
    domains = values.get("allowed_email_domains", site.allowed_email_domains)
    if mode == Site.Access.EMAIL_DOMAINS and not domains:
        raise InvalidInput("allowed_email_domains: list at least one domain for this access.")
    if mode == Site.Access.PASSWORD and not site.password_hash:
        raise InvalidInput("password: set a password before asking for one.")
    with transaction.atomic(), tenant_context(tenant):
        for name, value in values.items():
            setattr(site, name, value)
        site.save()
    return site


def site_set_password(*, tenant: Tenant, site: Site, password: str) -> Site:
    """Set the site's password (kept hashed; the passports given before end)."""
    if site.tenant_id != tenant.pk:
        raise InvalidInput("No such site.")
    if not isinstance(password, str) or len(password) < 8 or len(password) > 128:
        raise InvalidInput("password: between 8 and 128 characters.")
    with tenant_context(tenant):
        site.password_hash = make_password(password)
        site.save(update_fields=["password_hash", "updated_at"])
    return site


def site_regenerate_code(*, tenant: Tenant, site: Site) -> Site:
    """A new share code: the old link stops working, and its passports with it."""
    if site.tenant_id != tenant.pk:
        raise InvalidInput("No such site.")
    with tenant_context(tenant):
        site.code = new_site_code()
        site.save(update_fields=["code", "updated_at"])
    return site


# --- One-time codes for e-mail access -------------------------------------------------------


def _code_key(site: Site, email: str) -> str:
    digest = hashlib.sha256(f"{site.pk}:{email}".encode()).hexdigest()[:32]
    return f"portal:code:{digest}"


def _digest(code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), code.encode(), hashlib.sha256).hexdigest()


def _allowed_email(site: Site, email: Any) -> str:
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        raise InvalidInput("email: enter your e-mail address.")
    address = email.strip().lower()
    if address.rsplit("@", 1)[1] not in (site.allowed_email_domains or []):
        raise InvalidInput(
            "email: this site is open to addresses of its owner's domains only.",
            code="email_not_allowed",
        )
    return address


def email_code_send(*, site: Site, email: Any) -> None:
    """E-mail a six-digit code to an address of an allowed domain (kept hashed, ten
    minutes, five tries)."""
    address = _allowed_email(site, email)
    code = f"{secrets.randbelow(1_000_000):06d}"
    key = _code_key(site, address)
    cache.set(f"{key}:tries", 0, CODE_SECONDS + 60)
    cache.set(key, _digest(code), CODE_SECONDS)
    send_mail(
        subject=f"Your code for {site.title}",
        message=(
            f"Your code to open {site.title} is {code}.\n\n"
            "It works for ten minutes. If you did not ask for it, ignore this e-mail."
        ),
        from_email=sender(site.tenant),
        recipient_list=[address],
    )


def email_code_check(*, site: Site, email: Any, code: Any) -> str:
    """The address, when the code is the one e-mailed to it; InvalidInput otherwise."""
    address = _allowed_email(site, email)
    key = _code_key(site, address)
    digest = cache.get(key)
    if not isinstance(digest, str):
        raise InvalidInput("code: this code has expired; ask for a new one.", code="code_expired")
    # Counted before the comparison, atomically: parallel guesses cannot share a try. The
    # count outlives the code, so it is never counted afresh while the code stands.
    tries = cache.incr(f"{key}:tries")
    if tries > CODE_TRIES:
        cache.delete(key)
        raise WeftError(
            "code: too many wrong codes; ask for a new one.", code="too_many_requests", status=429
        )
    if not isinstance(code, str) or not hmac.compare_digest(digest, _digest(code.strip())):
        raise InvalidInput("code: this is not the code we sent.", code="wrong_code")
    # A code is good once: of two right guesses at once, only the one that removes it wins.
    if not cache.delete(key):
        raise InvalidInput("code: this code has expired; ask for a new one.", code="code_expired")
    return address
