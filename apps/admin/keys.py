"""An app's Service API keys: the list (name, prefix, creator, last use, status), a new key
shown once with a copy button, and revocation. Listing needs `app.view`; creating and
revoking `app.manage` (and the key rules of tenants.services)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path

from tenants import services as tenant_services
from tenants.exceptions import WeftError
from tenants.http import SignedInRequest, require_principal
from tenants.models import ApiKey

from ..api.manage.selectors import app_keys
from .base import AppPagesBase
from .forms import KeyForm


class KeyPages(AppPagesBase):
    """The keys page of AppAdmin."""

    def key_urls(self) -> list:
        return [
            path(
                "<path:object_id>/keys/",
                self.in_tenant(self.keys_view),
                name="apps_app_keys",
            ),
            path(
                "<path:object_id>/keys/<str:key_id>/revoke/",
                self.in_tenant(self.revoke_key_view),
                name="apps_app_revoke_key",
            ),
        ]

    def keys_view(self, request: SignedInRequest, object_id: str):
        """The app's keys; a POST creates one and shows it, once."""
        posted = request.method == "POST"
        app = self.app_for(request, object_id, "manage" if posted else "view")
        form = KeyForm(request.POST if posted else None)
        if posted and form.is_valid():
            try:
                key, raw = tenant_services.api_key_create(
                    tenant=app.tenant,
                    kind=ApiKey.Kind.APP,
                    principal=require_principal(request),
                    name=form.cleaned_data["name"],
                    app_id=app.pk,
                    created_by=request.user,
                )
            except WeftError as exc:
                form.add_error(None, exc.message)
            else:
                page = self.page(request, app, f"New API key of {app}", key=key, raw_key=raw)
                # admin_view already marks the page never_cache (no-store).
                return TemplateResponse(request, "apps/key_created.html", page)
        page = self.page(
            request,
            app,
            f"API keys of {app}",
            keys=app_keys(app),
            form=form,
        )
        return TemplateResponse(request, "apps/keys.html", page)

    def revoke_key_view(self, request: SignedInRequest, object_id: str, key_id: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        app = self.app_for(request, object_id, "manage")
        try:
            pk = uuid.UUID(key_id)
        except ValueError as exc:
            raise Http404("Not found.") from exc
        key = app_keys(app).filter(pk=pk).first()
        if key is None:
            raise Http404("Not found.")
        try:
            tenant_services.api_key_revoke(key=key, principal=require_principal(request))
        except WeftError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"Revoked {key}.", messages.SUCCESS)
        return HttpResponseRedirect(self.url("keys", app.pk))
