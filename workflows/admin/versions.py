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


def source_name(source: Workflow | WorkflowVersion) -> str:
    return "the draft" if isinstance(source, Workflow) else f"version {source.number}"


class VersionPages(WorkflowPagesBase):
    """Publish, compare and rollback pages of WorkflowAdmin."""

    def version_urls(self) -> list:
        return [
            path(
                "<path:object_id>/publish/",
                self.in_tenant(self.publish_view),
                name="workflows_workflow_publish",
            ),
            path(
                "<path:object_id>/compare/",
                self.in_tenant(self.compare_view),
                name="workflows_workflow_compare",
            ),
            path(
                "<path:object_id>/rollback/<int:number>/",
                self.in_tenant(self.rollback_view),
                name="workflows_workflow_rollback",
            ),
        ]

    def publish_view(self, request: SignedInRequest, object_id: str):
        """Publish the draft; when it cannot be, back to its page, which lists why."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        workflow = self.workflow_for(request, object_id, "manage")
        back = HttpResponseRedirect(self.url("change", workflow.pk))
        latest = workflow.versions.order_by("-number").first()
        try:
            version = services.workflow_publish(
                tenant=workflow.tenant,
                workflow=workflow,
                note=request.POST.get("note", "").strip(),
                created_by=request.user,
            )
        except services.WorkflowInvalid as exc:
            self.message_user(
                request,
                f"Not published: the draft has {len(exc.errors)} problem(s), listed below.",
                messages.ERROR,
            )
            return back
        if latest is not None and version.pk == latest.pk:
            self.message_user(
                request,
                f"The draft is the same as version {version.number}: nothing new to publish.",
                messages.INFO,
            )
        else:
            self.message_user(request, f"Published version {version.number}.", messages.SUCCESS)
        return back

    def _source(self, workflow: Workflow, choice: str) -> Workflow | WorkflowVersion:
        return workflow if choice == DRAFT else self.version_for(workflow, choice)

    def compare_view(self, request: SignedInRequest, object_id: str):
        """Two of the draft and the versions side by side (default: the latest version
        against the draft)."""
        workflow = self.workflow_for(request, object_id, "view")
        choices = source_choices(workflow)
        latest = choices[1][0] if len(choices) > 1 else DRAFT
        data = request.GET if "old" in request.GET else {"old": latest, "new": DRAFT}
        form = CompareForm(data, choices=choices)
        context: dict[str, Any] = {"form": form}
        if form.is_valid():
            old = self._source(workflow, form.cleaned_data["old"])
            new = self._source(workflow, form.cleaned_data["new"])
            context.update(
                diff=diff_sections(services.version_diff(old, new)),
                old_name=source_name(old),
                new_name=source_name(new),
            )
        page = self.page(request, workflow, f"Compare: {workflow}", **context)
        return TemplateResponse(request, "workflows/compare.html", page)

    def rollback_view(self, request: SignedInRequest, object_id: str, number: int):
        """A confirmation showing what the draft becomes; confirmed, the version is
        published again as the newest and becomes the draft."""
        workflow = self.workflow_for(request, object_id, "manage")
        version = self.version_for(workflow, number)
        form = PublishForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            restored = services.workflow_rollback(
                tenant=workflow.tenant,
                workflow=workflow,
                version=version,
                note=form.cleaned_data["note"],
                created_by=request.user,
            )
            self.message_user(
                request,
                f"Rolled back: version {restored.number} is a copy of version "
                f"{version.number}, and the draft now matches it.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(self.url("change", workflow.pk))
        spec = services.spec_of(version, secrets="blank")
        page = self.page(
            request,
            workflow,
            f"Roll back {workflow} to version {version.number}",
            version=version,
            form=form,
            diff=diff_sections(services.version_diff(workflow, version)),
            graph=graph_svg(spec.graph, problems_by_node(problems_of(version))),
        )
        return TemplateResponse(request, "workflows/rollback.html", page)
