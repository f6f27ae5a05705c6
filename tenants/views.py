"""Views of the tenants app: switching the active tenant, the `/v1/` fallback, and a tenant's
brand images."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from .api.errors import error_response, weft_response
from .exceptions import WeftError
from .http import SignedInRequest
from .middleware import SESSION_KEY
from .models import Membership, Tenant
from .service_auth import authenticate_service_key, key_kind_for_path


@login_required
@require_POST
def switch_tenant(request: SignedInRequest):
    """Make another of the user's tenants the active one (superusers: any tenant)."""
    tenant_id = request.POST.get("tenant", "")
    tenants = Tenant.objects.all()
    if not request.user.is_superuser:
        tenants = tenants.filter(
            pk__in=Membership.dangerously_unscoped.filter(user=request.user).values("tenant_id")
        )
    try:
        tenant = tenants.filter(pk=uuid.UUID(tenant_id)).first()
    except ValueError:
        tenant = None
    if tenant is None:  # unknown, or not one of the user's: the same answer for both
        raise Http404("No such tenant.")
    request.session[SESSION_KEY] = str(tenant.pk)
    messages.success(request, f"You are now working in {tenant.name}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/admin/"
    return HttpResponseRedirect(target)


async def service_api_fallback(request: HttpRequest, path: str = ""):
    """Any `/v1/` path no endpoint serves: authenticate as Dify does, then answer 404."""
    try:
        await authenticate_service_key(request, kind=key_kind_for_path(request.path))
    except WeftError as exc:
        return weft_response(exc)
    return error_response("not_found", "The requested URL was not found on the server.", 404)


@require_GET
def brand_asset(request: HttpRequest, tenant_id: uuid.UUID, kind: str) -> HttpResponse:
    """A tenant's logo or favicon, public (portals show them to anyone), as the bytes it was
    sniffed to be; 404 when the tenant has none."""
    from .models import Branding

    if kind not in ("logo", "favicon"):
        raise Http404("No such image.")
    branding = Branding.dangerously_unscoped.filter(tenant_id=tenant_id).first()
    data = getattr(branding, kind, None) if branding is not None else None
    content_type = getattr(branding, f"{kind}_type", "") if branding is not None else ""
    if not data or content_type not in ("image/png", "image/jpeg", "image/svg+xml"):
        raise Http404("No such image.")
    response = HttpResponse(bytes(data), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    # Opened on its own, an SVG is a document: it may draw, never run or fetch anything.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    # The URL carries the branding's version (?v=), so a copy may be kept for long.
    response["Cache-Control"] = "public, max-age=86400"
    return response
