"""Request middleware: known hosts only (the platform's, and tenants' verified custom domains
for their portals), and the console's active tenant and actor.

Both run natively on sync and async requests. The console middleware does its database work
only for console and management-API paths; the Service API (`/v1/`) sets its tenant from the
API key instead, on its own async path.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.request import split_domain_port, validate_host
from django.shortcuts import render

from . import audit
from .api.errors import error_response, is_api_path
from .branding import brand_context
from .context import reset_current_tenant, set_current_tenant
from .domains import verified_domain
from .exceptions import TenantSuspended
from .http import ConsoleRequest
from .middleware_base import HybridMiddleware
from .models import Membership, Tenant
from .permissions import Principal
from .roles import Role, at_least

SESSION_KEY = "weft_tenant_id"
SKIP_PREFIXES = ("/static/", "/healthz", "/v1/", "/media/", "/c/", "/branding/")


def _host_allowed(host: str) -> bool:
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.WEFT_ALLOWED_HOSTS)


# What a tenant's own domain serves: its portals and what they load, nothing of the console
# or the APIs.
CUSTOM_DOMAIN_PREFIXES = ("/c/", "/static/", "/branding/", "/healthz")


class HostMiddleware(HybridMiddleware):
    """Answer 404 for a Host header Weft does not serve (Django alone would answer 400). A
    tenant's verified custom domain is served too, its portals only (`request.custom_domain`
    tells the portal which tenant's and which site's)."""

    def _refuse(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request.path):
            return error_response("not_found", "Unknown host.", 404)
        # The portal's not-found page in Weft's own look: the host names no tenant.
        return render(
            request, "portal/missing.html", {"brand": brand_context(None), "lang": "en"}, status=404
        )

    def _reject(self, request: HttpRequest) -> HttpResponse | None:
        """None for a platform host; else the custom domain's answer (sync: it reads the
        custom domains)."""
        host = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")
        domain = verified_domain(host)
        if domain is None:
            return self._refuse(request)
        request.custom_domain = domain  # type: ignore[attr-defined]
        if request.path == "/" and domain.site is not None:
            return HttpResponseRedirect(f"/c/{domain.site.code}/")
        if not request.path.startswith(CUSTOM_DOMAIN_PREFIXES):
            return self._refuse(request)
        return None

    @staticmethod
    def _platform_host(request: HttpRequest) -> bool:
        return _host_allowed(request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", ""))

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        if self._platform_host(request):
            return self.get_response(request)
        return self._reject(request) or self.get_response(request)

    async def __acall__(self, request):
        if self._platform_host(request):
            return await self.get_response(request)
        return await sync_to_async(self._reject)(request) or await self.get_response(request)


def active_tenant(request: HttpRequest, user) -> tuple[Tenant | None, Principal]:
    """The user's active tenant: the one kept in the session while it is still theirs, else
    the first (by name) whose console they may use, else the first at all."""
    memberships = Membership.dangerously_unscoped.select_related("tenant").filter(user=user)
    wanted = request.session.get(SESSION_KEY)
    membership = memberships.filter(tenant_id=wanted).first() if wanted else None
    tenant = membership.tenant if membership else None
    if tenant is None and wanted and user.is_superuser:
        tenant = Tenant.objects.filter(pk=wanted).first()
    if tenant is None:
        ranked = sorted(
            memberships, key=lambda m: (not at_least(m.role, Role.OPERATOR), m.tenant.name)
        )
        membership = ranked[0] if ranked else None
        tenant = membership.tenant if membership else None
        if tenant is None and user.is_superuser:
            tenant = Tenant.objects.order_by("name").first()
        if tenant is not None:
            request.session[SESSION_KEY] = str(tenant.pk)
    principal = Principal(
        tenant_id=tenant.pk if tenant else None,
        role=membership.role if membership and tenant else None,
        user=user,
        is_platform_admin=user.is_superuser,
    )
    return tenant, principal


class ConsoleTenantMiddleware(HybridMiddleware):
    """Set the tenant context and audit actor for console and management-API requests."""

    def _resolve(self, request: ConsoleRequest) -> tuple[Tenant | None, audit.Actor | None]:
        request.tenant = None
        request.principal = None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None, None
        tenant, principal = active_tenant(request, user)
        request.tenant, request.principal = tenant, principal
        source = "api" if request.path.startswith("/api/") else "console"
        return tenant, audit.request_actor(request, user=user, source=source)

    def _suspended(self, request: ConsoleRequest) -> HttpResponse | None:
        tenant = request.tenant
        if tenant is None or tenant.is_active or request.user.is_superuser:
            return None
        error = TenantSuspended()
        if is_api_path(request.path):
            return error_response(error.code, error.message, error.status)
        return render(
            request,
            "tenants/suspended.html",
            {"tenant": tenant, "message": error.message},
            status=403,
        )

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        tenant, actor = (
            (None, None) if request.path.startswith(SKIP_PREFIXES) else self._resolve(request)
        )
        # Set even when empty, so whatever a view sets (an API key's tenant) ends here too.
        tokens = set_current_tenant(tenant), audit.set_actor(actor)
        try:
            refusal = self._suspended(request) if tenant is not None else None
            return refusal or self.get_response(request)
        finally:
            reset_current_tenant(tokens[0])
            audit.reset_actor(tokens[1])

    async def __acall__(self, request):
        tenant, actor = None, None
        if not request.path.startswith(SKIP_PREFIXES):
            tenant, actor = await sync_to_async(self._resolve)(request)
        tokens = set_current_tenant(tenant), audit.set_actor(actor)
        try:
            if tenant is not None and (refusal := await sync_to_async(self._suspended)(request)):
                return refusal
            return await self.get_response(request)
        finally:
            reset_current_tenant(tokens[0])
            audit.reset_actor(tokens[1])
