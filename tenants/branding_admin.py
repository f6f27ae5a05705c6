"""The console's Branding page: the active tenant's product name, logo, favicon, colours and
footer lines. Every console user of the tenant sees it; owners and admins change it (the
matrix's `tenant.change`)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from .branding import brand_context, branding_for, branding_update, may_hide_powered_by
from .exceptions import InvalidInput
from .http import principal_of
from .permissions import can_tenant


class ColourInput(forms.TextInput):
    input_type = "color"


class BrandingForm(forms.Form):
    product_name = forms.CharField(
        max_length=80, required=False, help_text="Shown on portals; blank: the tenant's name."
    )
    primary_color = forms.CharField(max_length=7, widget=ColourInput, label="Primary colour")
    accent_color = forms.CharField(max_length=7, widget=ColourInput, label="Accent colour")
    logo = forms.FileField(required=False, help_text="PNG, JPEG or SVG.")
    remove_logo = forms.BooleanField(required=False)
    favicon = forms.FileField(required=False, help_text="PNG, JPEG or SVG.")
    remove_favicon = forms.BooleanField(required=False)
    show_powered_by = forms.BooleanField(required=False, label="Show “Powered by Weft”")
    custom_css = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        required=False,
        label="Custom CSS",
        help_text="For the portals only. Imports, scripts and URLs other than https: are "
        "taken out.",
    )
    footer_text = forms.CharField(max_length=200, required=False)
    copyright = forms.CharField(max_length=200, required=False)
    privacy_url = forms.CharField(max_length=500, required=False, label="Privacy policy link")
    email_sender_name = forms.CharField(max_length=80, required=False)

    def values(self, limit: int) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        values = {
            name: data[name]
            for name in (
                "product_name",
                "primary_color",
                "accent_color",
                "show_powered_by",
                "custom_css",
                "footer_text",
                "copyright",
                "privacy_url",
                "email_sender_name",
            )
        }
        for image in ("logo", "favicon"):
            upload = data[image]
            if upload is not None:
                if upload.size > limit:
                    raise InvalidInput(f"{image}: the image is larger than {limit // 1024} KB.")
                values[image] = upload.read()
            elif data[f"remove_{image}"]:
                values[image] = None
        return values


def branding_view(request: HttpRequest) -> TemplateResponse | HttpResponseRedirect:
    """The active tenant's branding; a POST saves it (owners and admins)."""
    from django.conf import settings
    from django.contrib import admin

    principal = principal_of(request)
    tenant = getattr(request, "tenant", None)
    if principal is None or tenant is None or not can_tenant(principal, "view"):
        raise PermissionDenied
    may_change = can_tenant(principal, "change")
    branding = branding_for(tenant)
    posted = request.method == "POST"
    if posted and not may_change:
        raise PermissionDenied
    initial = {
        name: getattr(branding, name)
        for name in (
            "product_name",
            "primary_color",
            "accent_color",
            "show_powered_by",
            "custom_css",
            "footer_text",
            "copyright",
            "privacy_url",
            "email_sender_name",
        )
    }
    form = BrandingForm(request.POST or None, request.FILES or None, initial=initial)
    if posted and form.is_valid():
        try:
            warnings = branding_update(
                tenant=tenant, **form.values(settings.WEFT_BRAND_IMAGE_MAX_BYTES)
            )
        except InvalidInput as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "The branding is saved.")
            for warning in warnings:
                messages.warning(request, warning)
            return HttpResponseRedirect(reverse("admin:tenant_branding"))
    context = {
        **admin.site.each_context(request),
        "title": f"Branding of {tenant.name}",
        "form": form,
        "may_change": may_change,
        "preview": brand_context(tenant),
        "may_hide_powered_by": may_hide_powered_by(tenant),
    }
    return TemplateResponse(request, "tenants/branding.html", context)
