"""The console's Branding page: the active tenant's product name, logo, favicon, colours and
footer lines, and its custom domains (claim, verify, remove). Every console user of the
tenant sees it; owners and admins change it (the matrix's `tenant.change`)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from .branding import brand_context, branding_for, branding_update, may_hide_powered_by
from .context import tenant_context
from .domains import domain_add, domain_remove, domain_verify, record_name, record_value
from .exceptions import InvalidInput, WeftError
from .http import principal_of
from .models import CustomDomain
from .permissions import can_tenant

# The branding's fields that the form edits as they are (the images are uploads).
PLAIN_FIELDS = (
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
        values = {name: data[name] for name in PLAIN_FIELDS}
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
    initial = {name: getattr(branding, name) for name in PLAIN_FIELDS}
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


class DomainForm(forms.Form):
    domain = forms.CharField(max_length=253, help_text="e.g. chat.acme.com")
    site = forms.ChoiceField(required=False, label="Serves")

    def __init__(self, *args: Any, sites: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["site"]).choices = [
            ("", "all the tenant's portals, at /c/<code>/"),
            *sites,
        ]


def _site_model() -> Any:
    # The portal sites' model, reached through the domain's string foreign key: this layer
    # does not import the apps layer above it.
    return CustomDomain._meta.get_field("site").related_model


def _site_choices(tenant: Any) -> list[tuple[str, str]]:
    site_model = _site_model()
    with tenant_context(tenant):
        return [
            (str(pk), f"only {title}, at the domain's root")
            for pk, title in site_model.objects.order_by("title").values_list("pk", "title")
        ]


def domains_view(request: HttpRequest, action: str = "") -> TemplateResponse | HttpResponseRedirect:
    """The tenant's custom domains: claim one (POST), verify or remove one (POST)."""
    from django.contrib import admin

    principal = principal_of(request)
    tenant = getattr(request, "tenant", None)
    if principal is None or tenant is None or not can_tenant(principal, "view"):
        raise PermissionDenied
    may_change = can_tenant(principal, "change")
    back = HttpResponseRedirect(reverse("admin:tenant_domains"))
    sites = _site_choices(tenant)
    form = DomainForm(request.POST if action == "add" else None, sites=sites)
    if request.method == "POST":
        if not may_change:
            raise PermissionDenied
        if action == "add" and form.is_valid():
            site = None
            if form.cleaned_data["site"]:
                from django.apps import apps as registry

                site = (
                    registry.get_model("apps", "Site")
                    .dangerously_unscoped.filter(tenant=tenant, pk=form.cleaned_data["site"])
                    .first()
                )
            try:
                domain_add(tenant=tenant, domain=form.cleaned_data["domain"], site=site)
            except WeftError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request, "Claimed: put the TXT record below in its DNS, then verify."
                )
                return back
        elif action in ("verify", "remove"):
            try:
                pk = uuid.UUID(request.POST.get("id", ""))
            except ValueError:
                raise Http404("No such domain.") from None
            with tenant_context(tenant):
                domain = CustomDomain.objects.filter(pk=pk).first()
            if domain is None:
                raise Http404("No such domain.")
            if action == "remove":
                domain_remove(tenant=tenant, domain=domain)
                messages.success(request, f"{domain.domain} no longer serves the portals.")
            elif domain_verify(domain=domain):
                messages.success(
                    request, f"{domain.domain} is verified: it serves the portals now."
                )
            else:
                messages.error(request, f"{domain.domain} is not verified: {domain.last_error}")
            return back
    with tenant_context(tenant):
        rows = [
            (row, record_name(row), record_value(row))
            for row in CustomDomain.objects.select_related("site").order_by("domain")
        ]
    context = {
        **admin.site.each_context(request),
        "title": f"Custom domains of {tenant.name}",
        "form": form,
        "rows": rows,
        "may_change": may_change,
    }
    return TemplateResponse(request, "tenants/domains.html", context)
