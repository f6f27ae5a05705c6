"""Template context for the console header: the active tenant, the tenant switcher, and the
tenant's branding (name, logo, favicon and colours) once it has one."""

from __future__ import annotations

from .branding import brand_context
from .models import Branding, Membership, Tenant


def console(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not request.path.startswith("/admin/"):
        return {}

    def choices():
        if user.is_superuser:
            return list(Tenant.objects.order_by("name").values("id", "name"))
        return [
            {"id": m.tenant_id, "name": m.tenant.name}
            for m in Membership.dangerously_unscoped.select_related("tenant")
            .filter(user=user)
            .order_by("tenant__name")
        ]

    tenant = getattr(request, "tenant", None)
    return {
        "active_tenant": tenant,
        "tenant_choices": choices,
        "console_brand": _saved_brand(tenant),
    }


def _saved_brand(tenant: Tenant | None) -> dict | None:
    """The tenant's branding for its console, when it has set one (else Weft's look)."""
    if tenant is None or not Branding.dangerously_unscoped.filter(tenant=tenant).exists():
        return None
    return brand_context(tenant)
