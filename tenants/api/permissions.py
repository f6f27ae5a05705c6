"""DRF permission: a principal in an active tenant, allowed the view's action by the matrix."""

from __future__ import annotations

from rest_framework import permissions

from ..permissions import allowed


class TenantMember(permissions.BasePermission):
    """Needs a tenant principal; views name their object kind and the action per DRF action."""

    def has_permission(self, request, view) -> bool:
        principal = getattr(request._request, "principal", None)
        if principal is None or principal.tenant_id is None:
            return False
        if getattr(view, "action", None) is None:
            return True  # a method the view does not serve: let DRF answer 405
        kind = getattr(view, "permission_kind", None)
        action = getattr(view, "permission_actions", {}).get(view.action)
        if kind is None or action is None:
            return False
        # Object-level grants are checked again per object in has_object_permission.
        return allowed(principal, kind, action) or view.action in getattr(
            view, "object_level_actions", ()
        )

    def has_object_permission(self, request, view, obj) -> bool:
        principal = request._request.principal
        action = view.permission_actions.get(view.action)
        return allowed(principal, view.permission_kind, action, obj)
