"""The portal's API, `/c/<code>/api/…`: the Service API's own handlers (same paths, fields,
events and errors), with the visitor's passport standing for the `app-` key and the `user`,
and `passport` to get one as the site's access mode asks."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt

from knowledge.api.base import text_field
from tenants import audit, keys
from tenants.aio import database
from tenants.api.errors import weft_response
from tenants.audit import client_ip
from tenants.context import set_current_tenant
from tenants.exceptions import Forbidden, NotFound, TenantSuspended, Unauthorized, WeftError
from tenants.models import Membership

from .. import limits
from ..api.service import urls as service_urls
from ..api.service.base import Caller, json_body, not_allowed, ok, serve
from ..models import EndUser, Site, Source
from ..services import sites as site_services
from . import passports

# The Service API routes a visitor's browser needs (not the logs, nor another user's data).
SERVED = {
    "sapi-chat",
    "sapi-chat-stop",
    "sapi-chat-events",
    "sapi-completion",
    "sapi-completion-stop",
    "sapi-workflow-run",
    "sapi-workflow-stop",
    "sapi-workflow-events",
    "sapi-files-upload",
    "sapi-messages",
    "sapi-message-feedback",
    "sapi-message-suggested",
    "sapi-conversations",
    "sapi-conversation",
    "sapi-conversation-name",
    "sapi-parameters",
    "sapi-meta",
    "sapi-site",
}


def on_this_host(site: Site, domain: Any) -> bool:
    """Whether a custom domain (None: a platform host) serves this site: its tenant's,
    and its own when the domain is one site's."""
    if domain is None:
        return True
    return domain.tenant_id == site.tenant_id and domain.site_id in (None, site.pk)


def find_site(code: str, domain: Any = None) -> Site:
    """The open site with this code, with what a request reads of its app; 404 otherwise,
    and for another tenant's site on a tenant's domain (a disabled site or suspended tenant
    answers as the page does: closed)."""
    if not isinstance(code, str) or not code or len(code) > 64:
        raise NotFound("No such site.")
    site = (
        Site.dangerously_unscoped.select_related(
            "tenant", "app__tenant", "app__published_version__workflow_version"
        )
        .filter(code=code)
        .first()
    )
    if site is None or not on_this_host(site, domain):
        raise NotFound("No such site.")
    if not site.tenant.is_active:
        raise TenantSuspended()
    if not site.app.enable_site:
        raise Forbidden("This app's site is closed.", code="site_closed")
    return site


def _enter(request: HttpRequest, site: Site, label: str) -> None:
    request.tenant = site.tenant  # type: ignore[attr-defined]
    set_current_tenant(site.tenant)
    # A visitor, not a console user: the session is not read here (nor, on the event loop,
    # could it be).
    audit.set_actor(
        audit.request_actor(request, user=AnonymousUser(), label=label, source="portal")
    )


async def _per_ip(request: HttpRequest) -> None:
    await limits.per_minute(
        f"portal-ip:{client_ip(request)}", settings.WEFT_PORTAL_IP_RPM, what="this address"
    )


async def portal_caller(request: HttpRequest, handler: Any, kwargs: dict[str, Any]) -> Caller:
    """The visitor whose passport the request carries, on the site its URL names."""
    code = kwargs.pop("code")
    await _per_ip(request)
    site = await database(find_site)(code, getattr(request, "custom_domain", None))
    token = keys.bearer_token(request.headers.get("Authorization", "") or "")
    if not token:
        raise Unauthorized("Sign in to this site first.", code="passport_required")
    visitor = await database(passports.visitor_of)(site, token)
    if visitor is None:
        raise Unauthorized(
            "Your access to this site has ended: sign in again.", code="passport_expired"
        )
    _enter(request, site, f"portal visitor {visitor.name or visitor.id[:8]}")
    await limits.per_minute(
        f"end-user:{site.app_id}:portal:{visitor.id}",
        site.app.end_user_rpm or settings.WEFT_APP_END_USER_RPM,
        what="you",
    )
    return Caller(app=site.app, user=visitor.id, kind=EndUser.Kind.BROWSER, source=Source.PORTAL)


def portal_endpoint(**handlers: Any) -> Any:
    """One of the Service API's views, for portal visitors."""

    async def view(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        handler = handlers.get(request.method or "")
        if handler is None:
            return not_allowed()
        return await serve(request, handler, kwargs, portal_caller)

    return csrf_exempt(view)  # passports travel in a header, never in a cookie


# --- Getting a passport ---------------------------------------------------------------------


def _csrf_refusal(request: HttpRequest) -> HttpResponseBase | None:
    """A member's passport is given on the strength of a session cookie: that request must
    come from the page itself."""
    check = CsrfViewMiddleware(lambda _request: None)  # type: ignore[arg-type]
    check.process_request(request)
    return check.process_view(request, None, (), {})  # type: ignore[arg-type]


def _member_grant(request: HttpRequest, site: Site) -> str:
    if _csrf_refusal(request) is not None:
        raise Forbidden("Reload the page and try again.", code="csrf_failed")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise Unauthorized("Sign in with your account to use this site.", code="login_required")
    if not Membership.dangerously_unscoped.filter(tenant_id=site.tenant_id, user=user).exists():
        raise Forbidden("Only members of this workspace may use this site.", code="not_member")
    return passports.member_grant(user.pk)


def _grant(request: HttpRequest, site: Site, body: dict[str, Any]) -> str | None:
    """The grant this request earns (None: a code was sent to the e-mail address given)."""
    mode = site.access_mode
    if mode == Site.Access.PUBLIC:
        return passports.public_grant()
    if mode == Site.Access.PASSWORD:
        password = text_field(body, "password") or ""
        if (
            not password
            or not site.password_hash
            or not check_password(password, site.password_hash)
        ):
            raise Unauthorized("The password is not right.", code="wrong_password")
        return passports.password_grant(site)
    if mode == Site.Access.EMAIL_DOMAINS:
        email = (text_field(body, "email") or "").strip().lower()
        code = (text_field(body, "code") or "").strip()
        if not code:
            site_services.email_code_send(site=site, email=email)
            return None
        site_services.email_code_check(site=site, email=email, code=code)
        return passports.email_grant(email)
    return _member_grant(request, site)


async def passport(request: HttpRequest, code: str) -> HttpResponseBase:
    """`POST /c/<code>/api/passport`: a passport, for `{}` on a public site, `{password}`,
    `{email}` then `{email, code}`, or a member's signed-in session. 202 when a code was
    e-mailed."""
    try:
        if request.method != "POST":
            return not_allowed()
        await _per_ip(request)
        site = await database(find_site)(code, getattr(request, "custom_domain", None))
        if site.access_mode in (Site.Access.PASSWORD, Site.Access.EMAIL_DOMAINS):
            # Guessing a password or a code takes attempts: few of them per address.
            await limits.per_minute(
                f"portal-sign-in:{client_ip(request)}",
                settings.WEFT_PORTAL_SIGN_IN_RPM,
                what="sign-in attempts from this address",
            )
        body = json_body(request)
        _enter(request, site, "portal visitor")
        grant = await database(_grant)(request, site, body)
        if grant is None:
            return ok({"result": "code_sent"}, status=202)
        return ok({"passport": passports.issue(site, grant), "access_mode": site.access_mode})
    except WeftError as exc:
        return weft_response(exc)


def urlpatterns() -> list[URLPattern]:
    """The portal API's routes, under a site's `/c/<code>/`."""
    routes = [path("api/passport", csrf_exempt(passport), name="portal-passport")]
    for pattern in service_urls.urlpatterns:
        if isinstance(pattern, URLPattern) and pattern.name in SERVED:
            routes.append(
                path(
                    f"api/{pattern.pattern}",
                    portal_endpoint(**pattern.callback.handlers),  # type: ignore[attr-defined]
                    name=pattern.name.replace("sapi-", "portal-"),
                )
            )
    return routes
