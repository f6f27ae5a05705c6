"""Template context for the console header: the active tenant and the tenant switcher."""

from __future__ import annotations

from .models import Membership, Tenant


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

    return {"active_tenant": getattr(request, "tenant", None), "tenant_choices": choices}
