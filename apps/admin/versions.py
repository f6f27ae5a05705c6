"""Versions of an app: publish the draft with a note, compare any two of the draft and its
versions (the fields of `model_config`, or the workflow diff for chatflow and workflow apps),
roll back to a version after a confirmation showing what changes."""

from __future__ import annotations

from typing import Any

from tenants.exceptions import InvalidInput
from tenants.http import SignedInRequest
from workflows.admin.versions import NotPublished, ShownChange, VersionedPages, diff_sections

from ..api.manage.selectors import AppDiff, app_diff, shown
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


class VersionPages(VersionedPages, AppPagesBase):
    """Publish, compare and rollback pages of AppAdmin."""

    url_prefix = "apps_app"
    compare_template = "apps/compare.html"
    rollback_template = "apps/rollback.html"
    published_note = " The API and the portal run it now."

    def owner_for(self, request: SignedInRequest, object_id: str, action: str) -> App:
        return self.app_for(request, object_id, action)

    def draft_of(self, owner: App) -> None:
        return None

    def publish_draft(self, owner: App, note: str, user: Any) -> AppVersion:
        try:
            return app_publish(tenant=owner.tenant, app=owner, note=note, created_by=user)
        except InvalidInput as exc:
            raise NotPublished(exc.message) from exc

    def roll_back(self, owner: App, version: AppVersion, note: str, user: Any) -> AppVersion:
        return app_rollback(
            tenant=owner.tenant, app=owner, version=version, note=note, created_by=user
        )

    def diff_sections_of(
        self, owner: App, old: AppVersion | None, new: AppVersion | None
    ) -> dict[str, Any]:
        return app_diff_sections(app_diff(owner, old, new))
