"""Default models, one per kind, with ordered fallbacks; the changelist shows what the
runtime uses, built-in models included."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef

from tenants.context import tenant_context
from tenants.http import principal_of, require_principal
from tenants.permissions import allowed

from .. import admin_services, selectors
from ..forms import DefaultModelForm, FallbackFormSet, model_choice_label
from ..models import DefaultModel, Fallback, Model
from .base import ProviderAdmin, may_manage


def limit_model_choices(form: type[forms.ModelForm], default: DefaultModel | None) -> None:
    """Offer the enabled models the tenant sees (of the default's kind, once it has one),
    each labelled with its kind, provider and catalog."""
    field = form.base_fields.get("model")
    if isinstance(field, forms.ModelChoiceField):
        choices = Model.objects.filter(enabled=True)
        if default is not None:
            choices = choices.filter(kind=default.kind)
        field.queryset = choices
        field.label_from_instance = model_choice_label  # type: ignore[method-assign,assignment]


class FallbackInline(admin.TabularInline):
    model = Fallback
    formset = FallbackFormSet
    fields = ["position", "model"]
    extra = 1
    verbose_name = "fallback"
    verbose_name_plural = "fallbacks, tried in order when the default fails"

    def _may(self, request, obj=None) -> bool:
        return may_manage(request)

    has_add_permission = _may
    has_change_permission = _may
    has_delete_permission = _may

    def has_view_permission(self, request, obj=None) -> bool:
        principal = principal_of(request)
        return principal is not None and allowed(principal, "provider", "view")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        limit_model_choices(formset.form, obj)
        return formset


@admin.register(DefaultModel)
class DefaultModelAdmin(ProviderAdmin):
    """One default per kind, with ordered fallbacks; with none, the built-in offline model of
    that kind serves (the changelist says so)."""

    form = DefaultModelForm
    inlines = [FallbackInline]
    list_display = ["kind", "model", "fallbacks"]
    change_list_template = "providers/defaultmodel_change_list.html"

    @admin.display(description="fallbacks, in order")
    def fallbacks(self, default: DefaultModel) -> str:
        return ", ".join(getattr(default, "fallback_names", None) or []) or "—"

    def get_queryset(self, request):
        names = (
            Fallback.dangerously_unscoped.filter(default=OuterRef("pk"))
            .order_by("position")
            .values("model__name")
        )
        return (
            super()
            .get_queryset(request)
            .select_related("model")
            .annotate(fallback_names=ArraySubquery(names))
        )

    def get_readonly_fields(self, request, obj=None):
        return ["kind"] if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        limit_model_choices(form, obj)
        kind = form.base_fields.get("kind")
        if obj is None and kind is not None:
            taken = set(DefaultModel.objects.values_list("kind", flat=True))
            kind.choices = [c for c in kind.choices if c[0] not in taken]  # type: ignore[attr-defined]
        return form

    def save_model(self, request, obj, form, change) -> None:
        """Saved with its fallbacks in save_related, through one service call."""

    def save_related(self, request, form, formsets, change) -> None:
        rows = []
        for formset in formsets:
            for index, fallback_form in enumerate(formset.forms):
                data = fallback_form.cleaned_data
                if data and not data.get("DELETE") and data.get("model") is not None:
                    rows.append((data.get("position") or 0, index, data["model"]))
        default = admin_services.default_set(
            tenant=request.tenant if not change else form.instance.tenant,
            principal=require_principal(request),
            kind=form.instance.kind,
            model=form.cleaned_data["model"],
            fallbacks=[model for _, _, model in sorted(rows, key=lambda row: row[:2])],
        )
        form.instance.__dict__.update(default.__dict__)

    def construct_change_message(self, request, form, formsets, add=False):
        # The fallbacks are saved by the service, not the formsets; the audit trail has them.
        return super().construct_change_message(request, form, [], add)

    def delete_model(self, request, obj) -> None:
        admin_services.default_clear(
            tenant=obj.tenant, principal=require_principal(request), kind=obj.kind
        )

    def delete_queryset(self, request, queryset) -> None:
        for default in queryset:
            self.delete_model(request, default)

    def changelist_view(self, request, extra_context=None):
        with tenant_context(request.tenant):
            effective = selectors.defaults_effective() if request.tenant else []
        extra_context = {**(extra_context or {}), "effective_defaults": effective}
        return super().changelist_view(request, extra_context)
