"""An app's portal site in the console: its look and words, who may use it (a password kept
hashed, allowed e-mail domains, members), where it may be embedded, a new share code, and
the snippets to embed it. Seeing it needs `app.view`; changing it `app.manage`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import escape

from tenants.exceptions import InvalidInput
from tenants.http import SignedInRequest

from ..models import Site
from ..services import sites as site_services
from .base import AppPagesBase


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class SiteForm(forms.Form):
    """The site's settings as the page edits them (lists one per line)."""

    title = forms.CharField(max_length=255)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    icon = forms.CharField(max_length=255, required=False, help_text="An emoji.")
    icon_background = forms.CharField(max_length=16, required=False)
    default_language = forms.ChoiceField(choices=Site.Language.choices)
    input_placeholder = forms.CharField(max_length=255, required=False)
    custom_disclaimer = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=1000
    )
    copyright = forms.CharField(max_length=255, required=False)
    privacy_policy = forms.CharField(max_length=500, required=False, label="Privacy policy link")
    chat_color_theme = forms.CharField(
        max_length=7, required=False, label="Chat colour", help_text="#rrggbb, or blank."
    )
    show_workflow_steps = forms.BooleanField(required=False)
    access_mode = forms.ChoiceField(choices=Site.Access.choices, label="Who may use it")
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Set a new password (8 to 128 characters); blank keeps the current one.",
    )
    allowed_email_domains = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="One domain per line, e.g. acme.com: its addresses get a one-time code.",
    )
    embed_origins = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        label="Allowed embedding origins",
        help_text="One per line, e.g. https://www.acme.com: pages there may embed the portal.",
    )

    @classmethod
    def of(cls, site: Site, data: Any = None) -> SiteForm:
        initial = {name: getattr(site, name) for name in cls.base_fields if hasattr(site, name)}
        initial["allowed_email_domains"] = "\n".join(site.allowed_email_domains or [])
        initial["embed_origins"] = "\n".join(site.embed_origins or [])
        initial.pop("password", None)
        return cls(data, initial=initial)

    def values(self) -> dict[str, Any]:
        values = dict(self.cleaned_data)
        values.pop("password")
        values["allowed_email_domains"] = _lines(values["allowed_email_domains"])
        values["embed_origins"] = _lines(values["embed_origins"])
        return values


class SitePages(AppPagesBase):
    """The portal page of AppAdmin."""

    def site_urls(self) -> list:
        return [
            path("<path:object_id>/site/", self.in_tenant(self.site_view), name="apps_app_site"),
            path(
                "<path:object_id>/site/new-code/",
                self.in_tenant(self.site_code_view),
                name="apps_app_site_code",
            ),
        ]

    def site_view(self, request: SignedInRequest, object_id: str):
        """The site's settings and embed snippets; a POST saves the settings (and the
        password first, so that a password site can be opened in the same step)."""
        posted = request.method == "POST"
        app = self.app_for(request, object_id, "manage" if posted else "view")
        site = app.site
        form = SiteForm.of(site, request.POST if posted else None)
        if posted and form.is_valid():
            try:
                if form.cleaned_data["password"]:
                    site_services.site_set_password(
                        tenant=app.tenant, site=site, password=form.cleaned_data["password"]
                    )
                site_services.site_update(tenant=app.tenant, site=site, **form.values())
            except InvalidInput as exc:
                site.refresh_from_db()
                form.add_error(None, exc.message)
            else:
                self.message_user(request, "The portal site is saved.", messages.SUCCESS)
                return HttpResponseRedirect(self.url("site", app.pk))
        host = request.get_host()
        base = f"{request.scheme}://{host}"
        portal = f"{base}/c/{site.code}/"
        page = self.page(
            request,
            app,
            f"Portal site of {app}",
            site=site,
            form=form,
            portal_url=portal,
            iframe_snippet=(
                f'<iframe src="{portal}?embed=1" title="{escape(site.title)}" '
                'style="width:100%;height:640px;border:0" allow="clipboard-write"></iframe>'
            ),
            bubble_snippet=(
                f'<script src="{base}/static/portal/embed.js" '
                f'data-weft-site="{site.code}" defer></script>'
            ),
            has_password=bool(site.password_hash),
        )
        return TemplateResponse(request, "apps/site.html", page)

    def site_code_view(self, request: SignedInRequest, object_id: str):
        """A new share code: the old link and its visitors' passports stop working."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        app = self.app_for(request, object_id, "manage")
        site_services.site_regenerate_code(tenant=app.tenant, site=app.site)
        self.message_user(
            request,
            "The portal has a new address; the old link no longer works.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self.url("site", app.pk))
