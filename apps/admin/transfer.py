"""Dify app DSL in and out: import a file (a new app, or an app's draft replaced by an export
of the same mode) and show what the import mapped or left out; export the draft or a
version, with secret values only for `app.manage` and only after a confirmation."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from tenants.exceptions import Conflict, InvalidInput
from tenants.http import SignedInRequest, require_tenant
from workflows.admin.forms import ImportForm
from workflows.admin.transfer import report_groups

from ..dsl import app_export, app_import
from .base import AppPagesBase


class TransferPages(AppPagesBase):
    """Import and export pages of AppAdmin."""

    def transfer_urls(self) -> list:
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="apps_app_import",
            ),
            path(
                "<path:object_id>/import/",
                self.in_tenant(self.import_view),
                name="apps_app_replace",
            ),
            path(
                "<path:object_id>/export/",
                self.in_tenant(self.export_view),
                name="apps_app_export",
            ),
        ]

    def import_view(self, request: SignedInRequest, object_id: str | None = None):
        """A Dify app export as a new app, or (with `object_id`) as that app's draft; then the
        import report."""
        app = self.app_for(request, object_id, "manage") if object_id else None
        if app is None and not self.may(request, "manage"):
            raise PermissionDenied
        posted = request.method == "POST"
        form = ImportForm(
            request.POST if posted else None,
            request.FILES if posted else None,
            replacing=bool(app),
        )
        context: dict[str, Any] = {"form": form, "replacing": app}
        if posted and form.is_valid():
            tenant = app.tenant if app is not None else require_tenant(request)
            try:
                imported, report = app_import(
                    tenant=tenant,
                    content=form.cleaned_data["content"],
                    name=form.cleaned_data.get("name") or None,
                    app=app,
                    created_by=request.user,
                )
            except Conflict as exc:
                form.add_error("name" if "name" in form.fields else None, exc.message)
            except InvalidInput as exc:
                form.add_error(None, exc.message)
            else:
                published = imported.published_version_id is not None
                self.message_user(
                    request,
                    f"Imported “{imported}” ({imported.get_mode_display()})"
                    + (", published" if published and app is None else "")
                    + f", with {len(report.warnings)} note(s), below.",
                    messages.SUCCESS,
                )
                context.update(
                    imported=imported,
                    imported_url=self.url("change", imported.pk),
                    report=report,
                    groups=report_groups(report),
                )
        title = f"Replace the draft of {app}" if app else "Import a Dify app"
        page = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "app": app,
            "app_url": self.url("change", app.pk) if app else None,
            **context,
        }
        return TemplateResponse(request, "apps/import.html", page)

    def export_view(self, request: SignedInRequest, object_id: str):
        """Dify's YAML of the draft (or `?version=N`). `?secrets=1` asks to include secret
        values: `app.manage` only, shown a confirmation first, sent on its POST."""
        with_secrets = request.GET.get("secrets") == "1"
        app = self.app_for(request, object_id, "manage" if with_secrets else "view")
        number = request.GET.get("version")
        version = self.version_for(app, number) if number else None
        if with_secrets and request.method != "POST":
            what = f"version {number}" if number else "the draft"
            page = self.page(request, app, f"Export {app} with secrets", what=what)
            return TemplateResponse(request, "apps/export_confirm.html", page)
        text = app_export(app, version=version, include_secrets=with_secrets)
        suffix = f"v{number}" if number else "draft"
        filename = f"{slugify(app.name) or 'app'}-{suffix}.yml"
        return HttpResponse(
            text,
            content_type="application/x-yaml; charset=utf-8",
            headers={"Content-Disposition": content_disposition_header(True, filename)},
        )
