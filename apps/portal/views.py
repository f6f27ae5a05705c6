"""The portal's pages: the app's page (a chat, or a form for completion and workflow apps),
and the branded pages for an unknown site and a closed one.

Every page carries a Content-Security-Policy with a fresh nonce: scripts and styles come
from Weft's own static files or carry the nonce, so nothing a user, a model or a tenant's
branding writes can run. Who may frame a page is the site's list of embedding origins
(`frame-ancestors`), which is also why the pages are exempt from X-Frame-Options.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils import translation
from django.views.decorators.clickjacking import xframe_options_exempt

from tenants.aio import database
from tenants.branding import brand_context
from tenants.exceptions import Forbidden, NotFound, TenantSuspended
from tenants.models import CustomDomain, Tenant

from ..api.service.shapes import site_json
from ..models import App, Site
from .api import find_site
from .strings import script_strings

# Dify's language codes and Django's.
LANGUAGES = {"en-US": "en", "zh-Hans": "zh-hans"}
HTML_LANG = {"en": "en", "zh-hans": "zh-Hans"}
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


def _browser_language(header: str) -> str | None:
    """The first language of an Accept-Language header that the portal speaks."""
    tags = []
    for index, part in enumerate(header.split(",")):
        tag, _, weight = part.strip().partition(";q=")
        try:
            quality = float(weight) if weight else 1.0
        except ValueError:
            quality = 0.0
        tags.append((-quality, index, tag.strip().lower()))
    for _quality, _index, tag in sorted(tags):
        if tag == "en" or tag.startswith("en-"):
            return "en"
        if tag in ("zh", "zh-cn", "zh-sg", "zh-hans") or tag.startswith("zh-hans-"):
            return "zh-hans"
    return None


def page_language(request: HttpRequest, site: Site | None) -> str:
    """The visitor's browser language when the portal speaks it, else the site's default."""
    found = _browser_language(request.headers.get("Accept-Language", "")[:500])
    if found:
        return found
    if site is not None:
        return LANGUAGES.get(site.default_language, "en")
    return "en"


def policy(nonce: str, request: HttpRequest, site: Site | None) -> str:
    """The page's Content-Security-Policy."""
    host = request.get_host()
    sockets = f" ws://{host} wss://{host}" if _HOST.match(host) else ""
    ancestors = " ".join(["'self'", *(site.embed_origins if site is not None else [])])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            f"style-src 'self' 'nonce-{nonce}'",
            "img-src 'self' data: https:",
            "font-src 'self' data: https:",
            f"connect-src 'self'{sockets}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        ]
    )


def _respond(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    site: Site | None,
    language: str,
    status: int = 200,
) -> HttpResponse:
    nonce = secrets.token_urlsafe(16)
    with translation.override(language):
        body = render_to_string(
            template,
            {**context, "nonce": nonce, "lang": HTML_LANG[language]},
            request=request,
        )
    response = HttpResponse(body, status=status)
    response["Content-Security-Policy"] = policy(nonce, request, site)
    response["Referrer-Policy"] = "same-origin"
    response["Vary"] = "Accept-Language"
    response["Cache-Control"] = "no-store"
    return response


def _site_and_brand(
    code: str, domain: CustomDomain | None
) -> tuple[Site | None, dict[str, Any], str]:
    """(the open site or None, its tenant's brand, what is wrong: '', 'missing' or
    'closed') (sync). On a tenant's domain, even a missing page is in its branding."""
    try:
        site = find_site(code, domain)
    except NotFound:
        return None, brand_context(domain.tenant if domain else None), "missing"
    except (Forbidden, TenantSuspended):
        found = Site.dangerously_unscoped.select_related("tenant").filter(code=code).first()
        tenant: Tenant | None = found.tenant if found is not None else None
        return found, brand_context(tenant), "closed"
    return site, brand_context(site.tenant), ""


def _page_config(request: HttpRequest, site: Site, language: str) -> dict[str, Any]:
    app: App = site.app
    user = getattr(request, "user", None)
    with translation.override(language):
        strings = script_strings()
    return {
        "code": site.code,
        "api": f"/c/{site.code}/api/",
        "ws": f"/ws/c/{site.code}/",
        "csrf": get_token(request),
        "mode": app.mode,
        "access_mode": site.access_mode,
        "signed_in": bool(user is not None and user.is_authenticated),
        "site": site_json(app),
        "strings": strings,
    }


def _prepare(request: HttpRequest, code: str) -> dict[str, Any]:
    site, brand, problem = _site_and_brand(code, getattr(request, "custom_domain", None))
    language = page_language(request, site)
    found: dict[str, Any] = {"site": site, "brand": brand, "problem": problem, "lang": language}
    if not problem and site is not None:
        found["config"] = _page_config(request, site, language)
        found["published"] = site.app.published_version_id is not None
    return found


@xframe_options_exempt
async def page(request: HttpRequest, code: str) -> HttpResponse:
    """The site's page; the branded 404 or closed page when it cannot be shown."""
    found = await database(_prepare)(request, code)
    site, brand, language = found["site"], found["brand"], found["lang"]
    if found["problem"] == "missing":
        return _respond(
            request,
            "portal/missing.html",
            {"brand": brand},
            site=None,
            language=language,
            status=404,
        )
    if found["problem"] == "closed":
        return _respond(
            request,
            "portal/closed.html",
            {"brand": brand, "site": site},
            site=site,
            language=language,
            status=403,
        )
    config = found["config"]
    context = {
        "brand": brand,
        "site": site,
        "info": config["site"],
        "config": config,
        "embedded": request.GET.get("embed") == "1",
        "is_chat": site.app.mode in App.CHAT_MODES,
        "is_workflow": site.app.mode == App.Mode.WORKFLOW,
        "published": found["published"],
        "login_url": f"{settings.LOGIN_URL}?next=/c/{site.code}/",
    }
    return _respond(request, "portal/page.html", context, site=site, language=language)
