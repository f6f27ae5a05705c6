"""Versions of an app: publish the draft with a note, compare any two of the draft and its
versions (the fields of `model_config`, or the workflow diff for chatflow and workflow apps),
roll back to a version after a confirmation showing what changes."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path

from tenants.exceptions import InvalidInput
from tenants.http import SignedInRequest
from workflows.admin.forms import DRAFT, CompareForm, source_choices
from workflows.admin.versions import ShownChange, diff_sections

from ..api.manage.selectors import AppDiff, app_diff, shown, version_compare
from ..models import App, AppVersion
from ..services.apps import app_publish, app_rollback
from .base import AppPagesBase


def app_diff_sections(diff: AppDiff) -> dict[str, Any]:
    """A diff as the compare and rollback pages show it: config field changes, or the
    workflow diff grouped as the workflow pages group it."""
    if diff.workflow is not None:
        return {**diff_sections(diff.workflow), "kind": "workflow"}
    return {
        "kind": "config",
        "empty": diff.is_empty(),
        "config": [ShownChange(c.path, shown(c.old), shown(c.new)) for c in diff.config],
    }


def source_name(source: AppVersion | None) -> str:
    return "the draft" if source is None else f"version {source.number}"


class VersionPages(AppPagesBase):
    """Publish, compare and rollback pages of AppAdmin."""

    def version_urls(self) -> list:
        return [
            path(
                "<path:object_id>/publish/",
                self.in_tenant(self.publish_view),
                name="apps_app_publish",
            ),
            path(
                "<path:object_id>/compare/",
                self.in_tenant(self.compare_view),
                name="apps_app_compare",
            ),
            path(
                "<path:object_id>/rollback/<int:number>/",
                self.in_tenant(self.rollback_view),
                name="apps_app_rollback",
            ),
        ]

    def publish_view(self, request: SignedInRequest, object_id: str):
        """Publish the draft; when it cannot be, back to the app's page with the reason."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        app = self.app_for(request, object_id, "manage")
        back = HttpResponseRedirect(self.url("change", app.pk))
        latest = app.versions.order_by("-number").first()
        try:
            version = app_publish(
                tenant=app.tenant,
                app=app,
                note=request.POST.get("note", "").strip(),
                created_by=request.user,
            )
        except InvalidInput as exc:
            self.message_user(request, f"Not published: {exc.message}", messages.ERROR)
            return back
        if latest is not None and version.pk == latest.pk:
            self.message_user(
                request,
                f"The draft is the same as version {version.number}: nothing new to publish.",
                messages.INFO,
            )
        else:
            self.message_user(
                request,
                f"Published version {version.number}: the API and the portal run it now.",
                messages.SUCCESS,
            )
        return back

    def _source(self, app: App, choice: str) -> AppVersion | None:
        return None if choice == DRAFT else self.version_for(app, choice)

    def compare_view(self, request: SignedInRequest, object_id: str):
        """Two of the draft and the versions side by side (default: the latest version
        against the draft)."""
        app = self.app_for(request, object_id, "view")
        choices = source_choices(app)
        latest = choices[1][0] if len(choices) > 1 else DRAFT
        data = request.GET if "old" in request.GET else {"old": latest, "new": DRAFT}
        form = CompareForm(data, choices=choices)
        context: dict[str, Any] = {"form": form}
        if form.is_valid():
            old = self._source(app, form.cleaned_data["old"])
            new = self._source(app, form.cleaned_data["new"])
            context.update(
                diff=app_diff_sections(version_compare(app, old, new)),
                old_name=source_name(old),
                new_name=source_name(new),
            )
        page = self.page(request, app, f"Compare: {app}", **context)
        return TemplateResponse(request, "apps/compare.html", page)

    def rollback_view(self, request: SignedInRequest, object_id: str, number: int):
        """A confirmation showing what the draft becomes; confirmed, the version is
        published again as the newest and becomes the draft."""
        app = self.app_for(request, object_id, "manage")
        version = self.version_for(app, number)
        if request.method == "POST":
            restored = app_rollback(
                tenant=app.tenant, app=app, version=version, created_by=request.user
            )
            self.message_user(
                request,
                f"Rolled back: version {restored.number} is a copy of version "
                f"{version.number}, and the draft now matches it.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(self.url("change", app.pk))
        page = self.page(
            request,
            app,
            f"Roll back {app} to version {version.number}",
            version=version,
            diff=app_diff_sections(app_diff(app, None, version)),
        )
        return TemplateResponse(request, "apps/rollback.html", page)
