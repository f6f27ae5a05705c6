"""Who may do what: one role matrix, one check function per object kind.

The matrix gives the lowest role allowed each action; higher roles inherit it. Platform
superusers may do everything. An object-level grant through django-guardian (for example
`tenants.change_apikey` on one key) allows that action on that object whatever the role.
The README's permission table is this matrix; a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import models

from .roles import RANK, Role, at_least

if TYPE_CHECKING:
    from .models import User

# (object kind, action) -> lowest role allowed.
MATRIX: dict[tuple[str, str], str] = {
    ("console", "access"): Role.OPERATOR,
    ("tenant", "view"): Role.MEMBER,
    ("tenant", "change"): Role.ADMIN,
    ("membership", "view"): Role.OPERATOR,
    ("membership", "invite"): Role.ADMIN,
    ("membership", "change_role"): Role.ADMIN,
    ("membership", "remove"): Role.ADMIN,
    ("api_key", "view"): Role.BUILDER,
    ("api_key", "create"): Role.BUILDER,
    ("api_key", "revoke"): Role.BUILDER,
    ("audit_log", "view"): Role.ADMIN,
    ("provider", "view"): Role.BUILDER,
    ("provider", "manage"): Role.ADMIN,
    ("dataset", "view"): Role.OPERATOR,
    ("dataset", "create"): Role.BUILDER,
    ("dataset", "manage"): Role.BUILDER,
    ("document", "upload"): Role.OPERATOR,
    ("workflow", "view"): Role.OPERATOR,
    ("workflow", "manage"): Role.BUILDER,
    ("workflow", "run"): Role.OPERATOR,
    ("app", "view"): Role.OPERATOR,
    ("app", "manage"): Role.BUILDER,
    ("app", "logs"): Role.OPERATOR,
    ("billing", "view"): Role.ADMIN,
}

# Guardian permission codenames that grant an action on one object.
OBJECT_PERMS: dict[tuple[str, str], str] = {
    ("dataset", "view"): "knowledge.view_dataset",
    ("dataset", "manage"): "knowledge.change_dataset",
    ("document", "upload"): "knowledge.add_document",
    ("api_key", "view"): "tenants.view_apikey",
    ("api_key", "revoke"): "tenants.change_apikey",
    ("membership", "view"): "tenants.view_membership",
}


@dataclass(frozen=True)
class Principal:
    """Someone acting inside one tenant: a member, or a management key with a role."""

    tenant_id: object
    role: str | None
    user: User | None = None
    is_platform_admin: bool = False


def principal_for_user(user, tenant) -> Principal:
    """The user's principal in `tenant` (no role when not a member)."""
    from .models import Membership

    if user is None or not user.is_authenticated:
        return Principal(tenant_id=getattr(tenant, "pk", None), role=None, user=None)
    if tenant is None:
        return Principal(tenant_id=None, role=None, user=user, is_platform_admin=user.is_superuser)
    role = (
        Membership.dangerously_unscoped.filter(tenant_id=tenant.pk, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )
    return Principal(tenant_id=tenant.pk, role=role, user=user, is_platform_admin=user.is_superuser)


def allowed(principal: Principal, kind: str, action: str, obj: models.Model | None = None) -> bool:
    """The matrix, with platform superusers and guardian object grants."""
    if principal.is_platform_admin:
        return True
    if obj is not None and getattr(obj, "tenant_id", principal.tenant_id) != principal.tenant_id:
        return False
    minimum = MATRIX[(kind, action)]
    if principal.role is not None and at_least(principal.role, minimum):
        return True
    perm = OBJECT_PERMS.get((kind, action))
    user = principal.user
    return bool(obj is not None and perm and user is not None and user.has_perm(perm, obj))


def can_access_console(principal: Principal) -> bool:
    return allowed(principal, "console", "access")


def can_tenant(principal: Principal, action: str) -> bool:
    return allowed(principal, "tenant", action)


def can_audit_log(principal: Principal, action: str) -> bool:
    return allowed(principal, "audit_log", action)


def can_membership(
    principal: Principal, action: str, target=None, *, new_role: str | None = None
) -> bool:
    """Members: admins manage members below admin; only owners make or change admins and
    owners."""
    if not allowed(principal, "membership", action, target):
        return False
    if principal.is_platform_admin or action == "view":
        return True
    owner_only = (new_role is not None and at_least(new_role, Role.ADMIN)) or (
        target is not None and at_least(target.role, Role.ADMIN)
    )
    return not owner_only or principal.role == Role.OWNER


def can_api_key(
    principal: Principal, action: str, key=None, *, kind: str | None = None, role: str | None = None
) -> bool:
    """API keys: builders handle app and dataset keys; management keys need an admin, and a
    management key never carries a role above its creator's."""
    if not allowed(principal, "api_key", action, key):
        return False
    if principal.is_platform_admin:
        return True
    kind = kind or getattr(key, "kind", None)
    if kind == "management" and action != "view":
        if principal.role is None or not at_least(principal.role, Role.ADMIN):
            return False
        key_role = role or getattr(key, "role", None)
        if key_role and RANK[key_role] > RANK[principal.role]:
            return False
    return True
