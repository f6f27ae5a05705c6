"""The tenant-scoped ModelAdmin every domain app's admin builds on.

Tenant admins see and change their active tenant's rows only, and foreign-key choices come
from the same tenant (the default managers are tenant-scoped). Platform superusers see every
tenant's rows, with a tenant column and filter; when they open one row, the view runs in that
row's tenant, so its choices and saves stay inside it.
"""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.http import Http404, HttpResponseRedirect

from .context import tenant_context
from .exceptions import WeftError
from .http import principal_of
from .permissions import allowed


class NotFoundAdminMixin:
    """A missing object, or another tenant's, answers 404 (Django's admin would redirect to
    the index with a message naming the id)."""

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404("Not found.")


class TenantScopedAdmin(NotFoundAdminMixin, admin.ModelAdmin):
    """Tenant-scoped admin: permissions come from the role matrix (`permission_kind` and the
    matrix actions named below), never from Django's per-model permissions."""

    permission_kind: str = ""
    view_action = "view"
    add_action: str | None = None
    change_action: str | None = None
    delete_action: str | None = None

    def get_queryset(self, request):
        if request.user.is_superuser:
            return self.model.dangerously_unscoped.select_related("tenant")
        return super().get_queryset(request)

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if request.user.is_superuser and "tenant" not in columns:
            columns.append("tenant")
        return columns

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if request.user.is_superuser and "tenant" not in filters:
            filters.insert(0, "tenant")
        return filters

    def _allowed(self, request, action: str | None, obj=None) -> bool:
        principal = principal_of(request)
        if action is None or principal is None:
            return False
        return allowed(principal, self.permission_kind, action, obj)

    def has_module_permission(self, request) -> bool:
        return self._allowed(request, self.view_action)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request, self.view_action, obj)

    def has_add_permission(self, request) -> bool:
        return self._allowed(request, self.add_action)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._allowed(request, self.change_action, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._allowed(request, self.delete_action, obj)

    def save_model(self, request, obj, form, change) -> None:
        if not change and obj.tenant_id is None:
            obj.tenant = request.tenant
        super().save_model(request, obj, form, change)

    def _object_tenant(self, request, object_id):
        """For a superuser opening another tenant's row: that row's tenant."""
        if not request.user.is_superuser or object_id is None:
            return request.tenant
        try:
            pk = uuid.UUID(str(object_id))
        except ValueError:
            return request.tenant
        row = self.model.dangerously_unscoped.select_related("tenant").filter(pk=pk).first()
        return row.tenant if row is not None else request.tenant

    def _guarded(self, request, url: str, view, *args, **kwargs):
        try:
            return view(*args, **kwargs)
        except WeftError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(url)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        with tenant_context(self._object_tenant(request, object_id)):
            return self._guarded(
                request,
                request.get_full_path(),
                super().changeform_view,
                request,
                object_id,
                form_url,
                extra_context,
            )

    def delete_view(self, request, object_id, extra_context=None):
        with tenant_context(self._object_tenant(request, object_id)):
            return self._guarded(
                request,
                request.get_full_path(),
                super().delete_view,
                request,
                object_id,
                extra_context,
            )

    def changelist_view(self, request, extra_context=None):
        return self._guarded(
            request, request.get_full_path(), super().changelist_view, request, extra_context
        )
