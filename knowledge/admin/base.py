"""The base of the knowledge console pages: the matrix narrowed by dataset visibility."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet

from tenants.admin_base import TenantScopedAdmin
from tenants.http import principal_of
from tenants.permissions import allowed

from ..models import Dataset
from ..permissions import can_dataset, visible_datasets


def may(request, action: str, dataset: Dataset | None = None) -> bool:
    """`action` (view, manage, upload) on `dataset`, or on datasets at large without one."""
    principal = principal_of(request)
    if principal is None:
        return False
    if principal.is_platform_admin:
        return True
    if dataset is None:
        kind = "document" if action == "upload" else "dataset"
        return allowed(principal, kind, action)
    return can_dataset(principal, action, dataset)


def visible(request) -> QuerySet[Dataset]:
    """The datasets this request may see: every tenant's for a platform superuser."""
    principal = principal_of(request)
    if request.user.is_superuser:
        return Dataset.dangerously_unscoped.all()
    if principal is None:
        return Dataset.objects.none()
    return visible_datasets(principal)


class DatasetFilter(admin.SimpleListFilter):
    """Filter by dataset, offering only the datasets the request may see."""

    title = "dataset"
    parameter_name = "dataset__id__exact"

    def lookups(self, request, model_admin):
        return [(str(pk), name) for pk, name in visible(request).values_list("pk", "name")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(dataset_id=self.value())
        return queryset


class KnowledgeAdmin(TenantScopedAdmin):
    """Dataset-scoped rows (documents, chunks): seen through their dataset's visibility."""

    permission_kind = "dataset"
    manage_action = "manage"

    def dataset_of(self, obj) -> Dataset:
        return obj.dataset

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(dataset__in=visible(request))

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is None:
            return may(request, "view")
        return may(request, "view", self.dataset_of(obj))

    def has_module_permission(self, request) -> bool:
        return may(request, "view")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return may(request, self.manage_action)
        return may(request, self.manage_action, self.dataset_of(obj))

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_change_permission(request, obj)
