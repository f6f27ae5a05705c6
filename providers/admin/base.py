"""The base of the providers' console pages: permissions from the role matrix."""

from __future__ import annotations

from tenants.admin_base import TenantScopedAdmin
from tenants.http import principal_of
from tenants.permissions import allowed


def may_manage(request) -> bool:
    principal = principal_of(request)
    return principal is not None and allowed(principal, "provider", "manage")


class ProviderAdmin(TenantScopedAdmin):
    """Matrix permissions of model providers: `provider.view` to look, `manage` to change."""

    permission_kind = "provider"
    add_action: str | None = "manage"
    change_action: str | None = "manage"
    delete_action: str | None = "manage"
