"""Versions of a workflow: publish the draft with a note, compare any two of the draft and
its versions, roll back to a version (after a confirmation showing what changes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path

from tenants.http import SignedInRequest

from .. import services
from ..dsl import SpecDiff
from ..dsl.diff import ABSENT, MASKED, FieldChange
from ..models import Workflow, WorkflowVersion
from .base import WorkflowPagesBase, problems_by_node, problems_of
from .forms import DRAFT, CompareForm, PublishForm, source_choices
from .graph import graph_svg

SHOWN_CHARS = 300


@dataclass(frozen=True)
class ShownChange:
    """A field's change as the page shows it."""

    path: str
    old: str
    new: str


def _shown(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    if value == MASKED:
        return MASKED
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _changes(changes: list[FieldChange]) -> list[ShownChange]:
    return [ShownChange(c.path, _shown(c.old), _shown(c.new)) for c in changes]


def diff_sections(diff: SpecDiff) -> dict[str, Any]:
    """A diff grouped for the page: nodes, edges, variables, features."""
    return {
        "empty": diff.is_empty(),
        "nodes_added": diff.nodes_added,
        "nodes_removed": diff.nodes_removed,
        "nodes_changed": [(c.node, _changes(c.changes)) for c in diff.nodes_changed],
        "edges_added": [str(edge) for edge in diff.edges_added],
        "edges_removed": [str(edge) for edge in diff.edges_removed],
        "variables": [(v, _changes(v.changes)) for v in diff.variables],
        "features": _changes(diff.features),
    }


class NotPublished(Exception):
    """The draft cannot be published; the message says why, for the admin page."""


class VersionedPages:
    """Publish, compare and rollback pages of an admin whose objects have a draft and
    numbered versions (workflows here, apps in apps.admin). A subclass finds its objects and
    says how to publish, diff and roll them back; the pages and their messages are shared."""

    url_prefix = ""  # the admin's url name prefix, e.g. "workflows_workflow"
    compare_template = ""
    rollback_template = ""
    published_note = ""  # said after "Published version N."

    # What a subclass provides (with the admin base's `page`, `url`, `message_user`,
    # `in_tenant` and `version_for`).

    def owner_for(self, request: SignedInRequest, object_id: str, action: str) -> Any:
        raise NotImplementedError

    def draft_of(self, owner: Any) -> Any:
        """What the compare form's "draft" choice stands for."""
        raise NotImplementedError

    def publish_draft(self, owner: Any, note: str, user: Any) -> Any:
        """The version published (or the latest, when the draft is unchanged); raises
        NotPublished."""
        raise NotImplementedError

    def roll_back(self, owner: Any, version: Any, note: str, user: Any) -> Any:
        raise NotImplementedError

    def diff_sections_of(self, owner: Any, old: Any, new: Any) -> dict[str, Any]:
        raise NotImplementedError

    def rollback_context(self, owner: Any, version: Any) -> dict[str, Any]:
        """More for the rollback page (the workflow's graph)."""
        return {}

    # The pages.

    def version_urls(self) -> list:
        return [
            path(
                "<path:object_id>/publish/",
                self.in_tenant(self.publish_view),  # type: ignore[attr-defined]
                name=f"{self.url_prefix}_publish",
            ),
            path(
                "<path:object_id>/compare/",
                self.in_tenant(self.compare_view),  # type: ignore[attr-defined]
                name=f"{self.url_prefix}_compare",
            ),
            path(
                "<path:object_id>/rollback/<int:number>/",
                self.in_tenant(self.rollback_view),  # type: ignore[attr-defined]
                name=f"{self.url_prefix}_rollback",
            ),
        ]

    def publish_view(self, request: SignedInRequest, object_id: str):
        """Publish the draft; when it cannot be, back to the object's page with the reason."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        owner = self.owner_for(request, object_id, "manage")
        back = HttpResponseRedirect(self.url("change", owner.pk))  # type: ignore[attr-defined]
        latest = owner.versions.order_by("-number").first()
        tell = self.message_user  # type: ignore[attr-defined]
        try:
            version = self.publish_draft(owner, request.POST.get("note", "").strip(), request.user)
        except NotPublished as exc:
            tell(request, f"Not published: {exc}", messages.ERROR)
            return back
        if latest is not None and version.pk == latest.pk:
            tell(
                request,
                f"The draft is the same as version {version.number}: nothing new to publish.",
                messages.INFO,
            )
        else:
            said = f"Published version {version.number}.{self.published_note}"
            tell(request, said, messages.SUCCESS)
        return back

    def _source(self, owner: Any, choice: str) -> tuple[float, Any, str]:
        """(its age, the source, its name): the draft is the newest."""
        if choice == DRAFT:
            return float("inf"), self.draft_of(owner), "the draft"
        version = self.version_for(owner, choice)  # type: ignore[attr-defined]
        return version.number, version, f"version {version.number}"

    def compare_view(self, request: SignedInRequest, object_id: str):
        """Two of the draft and the versions side by side, read forward in time whichever
        order they are picked in (default: the latest version against the draft)."""
        owner = self.owner_for(request, object_id, "view")
        choices = source_choices(owner)
        latest = choices[1][0] if len(choices) > 1 else DRAFT
        data = request.GET if "old" in request.GET else {"old": latest, "new": DRAFT}
        form = CompareForm(data, choices=choices)
        context: dict[str, Any] = {"form": form}
        if form.is_valid():
            (_, old, old_name), (_, new, new_name) = sorted(
                (
                    self._source(owner, form.cleaned_data["old"]),
                    self._source(owner, form.cleaned_data["new"]),
                ),
                key=lambda source: source[0],
            )
            context.update(
                diff=self.diff_sections_of(owner, old, new), old_name=old_name, new_name=new_name
            )
        page = self.page(request, owner, f"Compare: {owner}", **context)  # type: ignore[attr-defined]
        return TemplateResponse(request, self.compare_template, page)

    def rollback_view(self, request: SignedInRequest, object_id: str, number: int):
        """A confirmation showing what the draft becomes; confirmed, the version is
        published again as the newest and becomes the draft."""
        owner = self.owner_for(request, object_id, "manage")
        version = self.version_for(owner, number)  # type: ignore[attr-defined]
        form = PublishForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            restored = self.roll_back(owner, version, form.cleaned_data["note"], request.user)
            self.message_user(  # type: ignore[attr-defined]
                request,
                f"Rolled back: version {restored.number} is a copy of version "
                f"{version.number}, and the draft now matches it.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(self.url("change", owner.pk))  # type: ignore[attr-defined]
        page = self.page(  # type: ignore[attr-defined]
            request,
            owner,
            f"Roll back {owner} to version {version.number}",
            version=version,
            form=form,
            diff=self.diff_sections_of(owner, self.draft_of(owner), version),
            **self.rollback_context(owner, version),
        )
        return TemplateResponse(request, self.rollback_template, page)


class VersionPages(VersionedPages, WorkflowPagesBase):
    """Publish, compare and rollback pages of WorkflowAdmin."""

    url_prefix = "workflows_workflow"
    compare_template = "workflows/compare.html"
    rollback_template = "workflows/rollback.html"

    def owner_for(self, request: SignedInRequest, object_id: str, action: str) -> Workflow:
        return self.workflow_for(request, object_id, action)

    def draft_of(self, owner: Workflow) -> Workflow:
        return owner

    def publish_draft(self, owner: Workflow, note: str, user: Any) -> WorkflowVersion:
        try:
            return services.workflow_publish(
                tenant=owner.tenant, workflow=owner, note=note, created_by=user
            )
        except services.WorkflowInvalid as exc:
            raise NotPublished(
                f"the draft has {len(exc.errors)} problem(s), listed below."
            ) from exc

    def roll_back(
        self, owner: Workflow, version: WorkflowVersion, note: str, user: Any
    ) -> WorkflowVersion:
        return services.workflow_rollback(
            tenant=owner.tenant, workflow=owner, version=version, note=note, created_by=user
        )

    def diff_sections_of(
        self, owner: Workflow, old: Workflow | WorkflowVersion, new: Workflow | WorkflowVersion
    ) -> dict[str, Any]:
        return diff_sections(services.version_diff(old, new))

    def rollback_context(self, owner: Workflow, version: WorkflowVersion) -> dict[str, Any]:
        spec = services.spec_of(version, secrets="blank")
        return {"graph": graph_svg(spec.graph, problems_by_node(problems_of(version)))}
