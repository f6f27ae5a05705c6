"""Provider credentials: the secret is write-only; a Test button and action ask the provider."""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import truncatechars
from django.urls import path, reverse

from tenants.context import tenant_context
from tenants.exceptions import WeftError
from tenants.http import require_principal

from .. import admin_services, selectors
from ..forms import CredentialForm
from ..models import ProviderCredential
from .base import ProviderAdmin, may_manage


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(ProviderAdmin):
    form = CredentialForm
    # The form declares its own base URL field (single-label hosts are fine); the model's
    # URLField form field is built and discarded, so give it the scheme Django 6 assumes.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    change_form_template = "providers/credential_change_form.html"
    list_display = [
        "name",
        "kind",
        "base_url_shown",
        "secret_shown",
        "enabled",
        "weight",
        "status",
        "last_checked_at",
        "last_error_shown",
    ]
    list_filter = ["kind", "enabled", "status"]
    search_fields = ["name", "base_url"]
    actions = ["test_credentials"]
    status_fields = ["status", "last_checked_at", "last_error"]

    @admin.display(description="base URL")
    def base_url_shown(self, credential: ProviderCredential) -> str:
        return credential.effective_base_url

    @admin.display(description="secret")
    def secret_shown(self, credential: ProviderCredential) -> str:
        return selectors.secret_shown(credential) or "—"

    @admin.display(description="last error")
    def last_error_shown(self, credential: ProviderCredential) -> str:
        return truncatechars(credential.last_error, 120)

    def get_fields(self, request, obj=None):
        fields = ["kind", "name", "base_url", "secret"]
        if obj is not None and obj.secret_encrypted:
            fields.append("clear_secret")
        fields += ["options", "enabled", "weight"]
        return fields + self.status_fields if obj is not None else fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if not self.has_change_permission(request, obj):
            # A builder's read-only view: never the secret field, only its mask.
            return ["kind", "name", "base_url", "secret_shown", "options", "enabled"]
        return ["kind", *self.status_fields]

    def get_fieldsets(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            # Django shows every field of a view-only page read-only, by attribute: the
            # `secret` field would show the decrypted secret, so it is never listed here.
            fields = self.get_readonly_fields(request, obj)
            return [(None, {"fields": [*fields, "weight", *self.status_fields]})]
        return super().get_fieldsets(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        principal = require_principal(request)
        if change:
            secret = data.get("secret") or ("" if data.get("clear_secret") else None)
            saved = admin_services.credential_update(
                credential=ProviderCredential.objects.get(pk=obj.pk),
                principal=principal,
                name=data["name"],
                base_url=data["base_url"],
                secret=secret,
                options=data["options"],
                enabled=data["enabled"],
                weight=data["weight"],
            )
        else:
            saved = admin_services.credential_create(
                tenant=request.tenant,
                principal=principal,
                kind=data["kind"],
                name=data["name"],
                base_url=data["base_url"],
                secret=data.get("secret", ""),
                options=data["options"],
                enabled=data["enabled"],
                weight=data["weight"],
            )
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request, obj) -> None:
        admin_services.credential_delete(credential=obj, principal=require_principal(request))

    def delete_queryset(self, request, queryset) -> None:
        for credential in queryset:
            self.delete_model(request, credential)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/test/",
                self.admin_site.admin_view(self.test_view),
                name="{}_{}_test".format(*info),
            ),
            *super().get_urls(),
        ]

    def _report(self, request, credential: ProviderCredential, worked: bool, said: str) -> None:
        if worked:
            self.message_user(request, f"{credential.name} works: {said}", messages.SUCCESS)
        else:
            self.message_user(request, f"{credential.name} failed: {said}", messages.ERROR)

    def test_view(self, request, object_id: str):
        """The change page's Test button: a real request with the credential, whose outcome
        is shown as a message on the change page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            pk = uuid.UUID(object_id)
        except ValueError as exc:
            raise Http404("Not found.") from exc
        with tenant_context(self._object_tenant(request, object_id)):
            credential = get_object_or_404(self.get_queryset(request), pk=pk)
            if not self.has_change_permission(request, credential):
                raise PermissionDenied
            try:
                worked, said = admin_services.credential_test(
                    credential=credential, principal=require_principal(request)
                )
            except WeftError as exc:
                worked, said = False, exc.message
            self._report(request, credential, worked, said)
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[credential.pk]
        )
        return HttpResponseRedirect(url)

    @admin.action(description="Test selected credentials")
    def test_credentials(self, request, queryset):
        principal = require_principal(request)
        for credential in queryset.select_related("tenant"):
            try:
                worked, said = admin_services.credential_test(
                    credential=credential, principal=principal
                )
            except WeftError as exc:
                worked, said = False, exc.message
            self._report(request, credential, worked, said)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not may_manage(request):
            actions.pop("test_credentials", None)
        return actions

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["show_test_button"] = obj is not None and self.has_change_permission(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)
