"""Dify DSL in and out: import a file (a new workflow, or a workflow's draft replaced) and
show what the import mapped or could not read; export the draft or a version, with secret
values only for `workflow.manage` and only after a confirmation."""

from __future__ import annotations

from collections import defaultdict
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

from .. import services
from ..dsl import ImportReport, ReportItem
from ..models import Workflow, WorkflowVersion
from .base import WorkflowPagesBase
from .forms import ImportForm


def report_groups(report: ImportReport) -> list[tuple[str, list[ReportItem]]]:
    """The report's warnings by what they are about: each node (or edge), then the rest."""
    groups: dict[str, list[ReportItem]] = defaultdict(list)
    for item in report.warnings:
        if item.node_id:
            groups[f"node {item.node_id}"].append(item)
        elif item.edge_id:
            groups[f"edge {item.edge_id}"].append(item)
        else:
            groups["workflow"].append(item)
    return sorted(groups.items(), key=lambda group: group[0] != "workflow")


class TransferPages(WorkflowPagesBase):
    """Import and export pages of WorkflowAdmin."""

    def transfer_urls(self) -> list:
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="workflows_workflow_import",
            ),
            path(
                "<path:object_id>/import/",
                self.in_tenant(self.import_view),
                name="workflows_workflow_replace",
            ),
            path(
                "<path:object_id>/export/",
                self.in_tenant(self.export_view),
                name="workflows_workflow_export",
            ),
        ]

    def import_view(self, request: SignedInRequest, object_id: str | None = None):
        """A Dify export as a new workflow, or (with `object_id`) as that workflow's draft;
        then the import report."""
        workflow = self.workflow_for(request, object_id, "manage") if object_id else None
        if workflow is None and not self.may(request, "manage"):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None, replacing=bool(workflow))
        context: dict[str, Any] = {"form": form, "replacing": workflow}
        if request.method == "POST" and form.is_valid():
            tenant = workflow.tenant if workflow is not None else require_tenant(request)
            try:
                result = services.workflow_import(
                    tenant=tenant,
                    content=form.cleaned_data["content"],
                    name=form.cleaned_data.get("name") or None,
                    workflow=workflow,
                    created_by=request.user,
                )
            except Conflict as exc:
                form.add_error("name" if "name" in form.fields else None, exc.message)
            except InvalidInput as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    f"Imported “{result.workflow}” with {len(result.report.warnings)} "
                    "note(s), below.",
                    messages.SUCCESS,
                )
                context.update(
                    imported=result.workflow,
                    imported_url=self.url("change", result.workflow.pk),
                    report=result.report,
                    groups=report_groups(result.report),
                )
        title = f"Replace the draft of {workflow}" if workflow else "Import a Dify workflow"
        page = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "workflow": workflow,
            "workflow_url": self.url("change", workflow.pk) if workflow else None,
            **context,
        }
        return TemplateResponse(request, "workflows/import.html", page)

    def export_view(self, request: SignedInRequest, object_id: str):
        """Dify's YAML of the draft (or `?version=N`). `?secrets=1` asks to include secret
        values: `workflow.manage` only, shown a confirmation first, sent on its POST."""
        with_secrets = request.GET.get("secrets") == "1"
        workflow = self.workflow_for(request, object_id, "manage" if with_secrets else "view")
        number = request.GET.get("version")
        source: Workflow | WorkflowVersion = (
            self.version_for(workflow, number) if number else workflow
        )
        if with_secrets and request.method != "POST":
            what = f"version {number}" if number else "the draft"
            page = self.page(request, workflow, f"Export {workflow} with secrets", what=what)
            return TemplateResponse(request, "workflows/export_confirm.html", page)
        text = services.workflow_export(source, include_secrets=with_secrets)
        suffix = f"v{number}" if number else "draft"
        filename = f"{slugify(workflow.name) or 'workflow'}-{suffix}.yml"
        return HttpResponse(
            text,
            content_type="application/x-yaml; charset=utf-8",
            headers={"Content-Disposition": content_disposition_header(True, filename)},
        )
