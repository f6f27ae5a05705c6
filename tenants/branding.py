"""A tenant's branding: reading it for pages (`brand_context`), changing it
(`branding_update`), and the colour arithmetic that keeps its text readable.

Images are sniffed by their bytes, never trusted by name: PNG and JPEG are kept, and SVG
is rebuilt from a whitelist (tenants.svg). Colours are
`#rrggbb`; text on the primary colour is white or near-black, whichever contrasts more, and a
primary colour too light for white text is reported (WCAG AA asks 4.5:1) without refusing it.
"""

from __future__ import annotations

import re
from email.utils import formataddr, parseaddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from .context import tenant_context
from .css import clean_css
from .exceptions import InvalidInput
from .models import Branding, Tenant
from .svg import clean_svg

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
WHITE = "#FFFFFF"
INK = "#111827"
AA_RATIO = 4.5
PRODUCT = "Weft"
DEFAULT_PRIMARY = "#155EEF"
DEFAULT_ACCENT = "#0F766E"
TEXT_FIELDS = {"product_name": 80, "footer_text": 200, "copyright": 200, "email_sender_name": 80}


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    """WCAG relative luminance of `#rrggbb`."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(one: str, other: str) -> float:
    """WCAG contrast ratio of two `#rrggbb` colours (1 to 21)."""
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def text_on(colour: str) -> str:
    """White or ink, whichever reads better on `colour`."""
    return WHITE if contrast_ratio(colour, WHITE) >= contrast_ratio(colour, INK) else INK


def contrast_warnings(primary: str, accent: str) -> list[str]:
    """What a reader may struggle with: white text below WCAG AA on either colour."""
    found = []
    for name, colour in (("primary", primary), ("accent", accent)):
        ratio = contrast_ratio(colour, WHITE)
        if ratio < AA_RATIO:
            found.append(
                f"White text on the {name} colour {colour} has a contrast of {ratio:.2f}:1, "
                f"below the {AA_RATIO}:1 WCAG AA asks for; Weft will use dark text on it."
            )
    return found


SVG_START = re.compile(
    rb"^(\xef\xbb\xbf)?\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*"
    rb"(<!DOCTYPE[^\[>]*(\[.*?\])?\s*>\s*)?(<!--.*?-->\s*)*<svg",
    re.S,
)


def sniff_image(data: bytes) -> str:
    """The MIME type of a PNG, JPEG or SVG image by its content; InvalidInput for anything
    else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if SVG_START.match(data[:4096]):
        return "image/svg+xml"
    raise InvalidInput("The image must be a PNG, a JPEG or an SVG file.")


def may_hide_powered_by(tenant: Tenant) -> bool:
    """Whether the tenant's plan lets it hide "Powered by Weft"."""
    from billing.quota import feature

    return feature(tenant, "remove_powered_by")


def branding_for(tenant: Tenant) -> Branding:
    """The tenant's branding, or the defaults (unsaved) when it has none."""
    with tenant_context(tenant):
        found = Branding.objects.filter(tenant=tenant).first()
    return found or Branding(tenant=tenant)


def _image(name: str, value: Any) -> tuple[bytes, str] | None:
    if value is None:
        return None
    if not isinstance(value, bytes | bytearray):
        raise InvalidInput(f"{name}: must be the image's bytes.")
    if len(value) > settings.WEFT_BRAND_IMAGE_MAX_BYTES:
        limit = settings.WEFT_BRAND_IMAGE_MAX_BYTES // 1024
        raise InvalidInput(f"{name}: the image is larger than {limit} KB.")
    kind = sniff_image(bytes(value))
    return (clean_svg(bytes(value)).data if kind == "image/svg+xml" else bytes(value)), kind


def branding_update(*, tenant: Tenant, actor: Any = None, **fields: Any) -> list[str]:
    """Change the tenant's branding (every value checked before any is written); images as
    bytes (None removes one). The warnings the change deserves: what was taken out of the
    custom CSS, and colours white text reads badly on."""
    branding = branding_for(tenant)
    values: dict[str, Any] = {}
    removed: list[str] = []
    for name, value in fields.items():
        if name in TEXT_FIELDS:
            if not isinstance(value, str) or len(value.strip()) > TEXT_FIELDS[name]:
                raise InvalidInput(f"{name}: text of at most {TEXT_FIELDS[name]} characters.")
            values[name] = value.strip()
        elif name in ("primary_color", "accent_color"):
            if not isinstance(value, str) or not COLOUR.match(value):
                raise InvalidInput(f"{name}: a colour such as #155EEF.")
            values[name] = value.upper()
        elif name == "privacy_url":
            if not isinstance(value, str):
                raise InvalidInput("privacy_url: must be a link.")
            link = value.strip()
            if link and (
                urlsplit(link).scheme not in ("http", "https") or not urlsplit(link).netloc
            ):
                raise InvalidInput("privacy_url: must be an http(s) link.")
            values[name] = link
        elif name == "show_powered_by":
            if not isinstance(value, bool):
                raise InvalidInput("show_powered_by: must be true or false.")
            if not value and not may_hide_powered_by(tenant):
                raise InvalidInput(
                    "show_powered_by: your plan does not allow hiding “Powered by Weft”."
                )
            values[name] = value
        elif name == "custom_css":
            if not isinstance(value, str):
                raise InvalidInput("custom_css: must be text.")
            if len(value.encode()) > settings.WEFT_BRAND_CSS_MAX_BYTES:
                limit = settings.WEFT_BRAND_CSS_MAX_BYTES // 1024
                raise InvalidInput(f"custom_css: at most {limit} KB.")
            cleaned = clean_css(value)
            values[name] = cleaned.css
            removed += [f"Removed from the custom CSS: {part}." for part in cleaned.removed]
        elif name in ("logo", "favicon"):
            image = _image(name, value)
            values[name], values[f"{name}_type"] = image if image else (None, "")
        else:
            raise InvalidInput(f"{name}: not a branding setting.")
    with transaction.atomic(), tenant_context(tenant):
        for name, value in values.items():
            setattr(branding, name, value)
        branding.save()
    return removed + contrast_warnings(branding.primary_color, branding.accent_color)


def _asset_url(branding: Branding, kind: str) -> str:
    stamp = int(branding.updated_at.timestamp()) if branding.updated_at else 0
    url = reverse("brand-asset", kwargs={"tenant_id": branding.tenant_id, "kind": kind})
    return f"{url}?v={stamp}"


def brand_context(tenant: Tenant | None) -> dict[str, Any]:
    """What a page needs of a tenant's branding (Weft's own without a tenant), as plain
    values: names, colours and the text colour on each, image URLs, footer lines."""
    if tenant is None:
        return {
            "product_name": PRODUCT,
            "primary_color": DEFAULT_PRIMARY,
            "accent_color": DEFAULT_ACCENT,
            "on_primary": text_on(DEFAULT_PRIMARY),
            "logo_url": "",
            "favicon_url": "",
            "css": "",
            "show_powered_by": True,
            "footer_text": "",
            "copyright": "",
            "privacy_url": "",
        }
    branding = branding_for(tenant)
    primary = branding.primary_color if COLOUR.match(branding.primary_color) else DEFAULT_PRIMARY
    accent = branding.accent_color if COLOUR.match(branding.accent_color) else DEFAULT_ACCENT
    return {
        "product_name": branding.product_name or tenant.name,
        "primary_color": primary,
        "accent_color": accent,
        "on_primary": text_on(primary),
        "logo_url": _asset_url(branding, "logo") if branding.logo_type else "",
        "favicon_url": _asset_url(branding, "favicon") if branding.favicon_type else "",
        "css": clean_css(branding.custom_css).css if branding.custom_css else "",
        "show_powered_by": branding.show_powered_by or not may_hide_powered_by(tenant),
        "footer_text": branding.footer_text,
        "copyright": branding.copyright,
        "privacy_url": branding.privacy_url,
    }


def sender(tenant: Tenant | None) -> str:
    """The From of a tenant's e-mail: its sender name on Weft's address."""
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    if tenant is not None:
        with tenant_context(tenant):
            chosen = (
                Branding.objects.filter(tenant=tenant)
                .values_list("email_sender_name", flat=True)
                .first()
            )
        name = chosen or name
    return formataddr((name, address)) if name else address
