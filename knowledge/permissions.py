"""Who may see and change which knowledge base.

A dataset's visibility (Dify's `permission`) narrows the role matrix: `only_me` shows it to
its creator, `all_team_members` to every member allowed `dataset.view`, `partial_members` to
its creator and the members granted `knowledge.view_dataset` on it (django-guardian). Owners,
admins and platform superusers see every dataset of the tenant.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from tenants.permissions import Principal, allowed
from tenants.roles import Role, at_least

from .models import Dataset


def _sees_all(principal: Principal) -> bool:
    return principal.is_platform_admin or (
        principal.role is not None and at_least(principal.role, Role.ADMIN)
    )


def visible_datasets(principal: Principal) -> QuerySet[Dataset]:
    """The current tenant's datasets this principal may see (tenant context required)."""
    datasets = Dataset.objects.all()
    if _sees_all(principal):
        return datasets
    tenant_wide = (
        Q(permission=Dataset.Permission.ALL_TEAM_MEMBERS)
        if allowed(principal, "dataset", "view")
        else Q(pk__in=[])
    )
    user = principal.user
    if user is None:  # a key with no person behind it: the tenant-wide datasets only
        return datasets.filter(tenant_wide)
    granted = get_objects_for_user(
        user, "knowledge.view_dataset", klass=Dataset.objects.all(), accept_global_perms=False
    ).values("pk")
    chosen = Q(permission=Dataset.Permission.PARTIAL_MEMBERS, pk__in=granted)
    return datasets.filter(Q(created_by=user) | tenant_wide | chosen)


def can_dataset(principal: Principal, action: str, dataset: Dataset) -> bool:
    """`action` (view, manage; upload for documents) on this dataset, visibility included."""
    if not visible_datasets(principal).filter(pk=dataset.pk).exists():
        return False
    if action == "upload":
        return allowed(principal, "document", "upload", dataset)
    if (
        action == "manage"
        and principal.user is not None
        and dataset.created_by_id == principal.user.pk
    ):
        return allowed(principal, "dataset", "create")
    return allowed(principal, "dataset", action, dataset)
