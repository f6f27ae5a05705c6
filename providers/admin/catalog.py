"""The model catalog: global rows (read-only to tenants; platform operators edit prices)
and each tenant's own models."""

from __future__ import annotations

from typing import cast

from django.contrib import admin

from tenants.http import require_principal

from .. import admin_services
from ..forms import CatalogModelForm
from ..models import Model
from .base import ProviderAdmin


class ScopeFilter(admin.SimpleListFilter):
    title = "catalog"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [("global", "Global catalog"), ("own", "Own models")]

    def queryset(self, request, queryset):
        if self.value() == "global":
            return queryset.filter(tenant__isnull=True)
        if self.value() == "own":
            return queryset.filter(tenant__isnull=False)
        return queryset


@admin.register(Model)
class CatalogModelAdmin(ProviderAdmin):
    """The global catalog (read-only to tenants; platform operators edit its prices) and
    the tenant's own models."""

    form = CatalogModelForm
    list_display = [
        "__str__",
        "provider",
        "kind",
        "context_window",
        "prices",
        "features",
        "scope",
        "enabled",
    ]
    list_filter = ["kind", "provider", ScopeFilter, "enabled"]
    search_fields = ["name", "label"]

    @admin.display(description="price per million tokens (in / out)")
    def prices(self, model: Model) -> str:
        prices = (f"{price.normalize():f}" for price in (model.input_price, model.output_price))
        return f"{' / '.join(prices)} {model.currency}"

    @admin.display(description="features")
    def features(self, model: Model) -> str:
        names = [
            name
            for flag, name in (
                (model.supports_tools, "tools"),
                (model.supports_json_schema, "JSON schema"),
                (model.supports_vision, "vision"),
            )
            if flag
        ]
        if model.dimensions:
            names.append(f"{model.dimensions} dimensions")
        return ", ".join(names) or "—"

    @admin.display(description="catalog", ordering="tenant")
    def scope(self, model: Model) -> str:
        return "global" if model.is_global else "own"

    def _object_tenant(self, request, object_id):
        """For a superuser opening another tenant's model: that tenant (model ids are
        integers, and global rows have no tenant)."""
        if not request.user.is_superuser or not str(object_id or "").isdigit():
            return request.tenant
        row = Model.dangerously_unscoped.select_related("tenant").filter(pk=int(object_id)).first()
        return row.tenant if row is not None and row.tenant is not None else request.tenant

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_global:
            return request.user.is_superuser
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_global:
            return False  # every tenant may use it: disable it instead
        return super().has_delete_permission(request, obj)

    def _allowed(self, request, action, obj=None) -> bool:
        # Global rows carry no tenant: the matrix check is the tenant's, without the object.
        if obj is not None and obj.is_global:
            obj = None
        return super()._allowed(request, action, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = cast(type[CatalogModelForm], super().get_form(request, obj, change=change, **kwargs))
        form.tenant = obj.tenant if obj is not None and obj.tenant_id else request.tenant
        return form

    def get_fields(self, request, obj=None):
        fields = list(admin_services.MODEL_FIELDS)
        if obj is not None and obj.is_global:
            fields.remove("credential")  # a global row never points at a tenant's credential
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_global and self.has_change_permission(request, obj):
            return [f for f in admin_services.GLOBAL_FIXED_FIELDS if f != "credential"]
        return []

    def save_model(self, request, obj, form, change) -> None:
        principal = require_principal(request)
        data = {
            f: form.cleaned_data[f] for f in admin_services.MODEL_FIELDS if f in form.cleaned_data
        }
        if change:
            saved = admin_services.model_update(
                model=Model.dangerously_unscoped.get(pk=obj.pk), principal=principal, data=data
            )
        else:
            saved = admin_services.model_create(
                tenant=request.tenant, principal=principal, data=data
            )
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request, obj) -> None:
        admin_services.model_delete(model=obj, principal=require_principal(request))

    def delete_queryset(self, request, queryset) -> None:
        for model in queryset:
            self.delete_model(request, model)
