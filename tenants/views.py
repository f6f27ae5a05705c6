"""Console views of the tenants app: switching the active tenant, and the `/v1/` fallback."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from .api.errors import error_response
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
        return error_response(exc.code, exc.message, exc.status)
    return error_response("not_found", "The requested URL was not found on the server.", 404)
