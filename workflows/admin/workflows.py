"""Workflows: the list (mode, latest version, last run), the change page (the draft as Dify
DSL text with its problems and a picture of its graph, the versions with publish, compare,
export and rollback), and the pages mixed in from versions, transfer and launch."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Max, OuterRef, Subquery
from django.http import HttpResponseRedirect
from django.utils.html import format_html, format_html_join

from tenants.http import require_tenant

from .. import services
from ..models import Workflow, WorkflowRun, WorkflowVersion
from .base import problems_by_node, problems_of, runs_url
from .forms import PublishForm, WorkflowForm, draft_text
from .graph import graph_svg
from .launch import LaunchPages
from .transfer import TransferPages
from .versions import VersionPages

DETAILS = ["name", "description", "mode"]
STAMPS = ["updated_at", "updated_by"]


@admin.register(Workflow)
class WorkflowAdmin(VersionPages, TransferPages, LaunchPages):
    """Operators see workflows and run them; builders and up edit, import, publish, roll
    back and delete. Every write goes through workflows.services."""

    form = WorkflowForm
    change_form_template = "workflows/workflow_change_form.html"
    change_list_template = "workflows/workflow_change_list.html"
    list_display = ["name", "mode", "latest_version", "last_run", "updated_at", "pages"]
    list_filter = ["mode"]
    search_fields = ["name", "description"]

    def get_queryset(self, request):
        last_status = (
            WorkflowRun.dangerously_unscoped.filter(workflow=OuterRef("pk"))
            .order_by("-created_at")
            .values("status")[:1]
        )
        return (
            super()
            .get_queryset(request)
            .annotate(latest=Max("versions__number"), last_status=Subquery(last_status))
        )

    @admin.display(description="latest version", ordering="latest")
    def latest_version(self, workflow: Workflow) -> str:
        latest = getattr(workflow, "latest", None)
        return f"v{latest}" if latest else "—"

    @admin.display(description="last run")
    def last_run(self, workflow: Workflow) -> str:
        status = getattr(workflow, "last_status", None)
        if not status:
            return "—"
        label = WorkflowRun.Status(status).label
        return format_html('<a href="{}">{}</a>', runs_url(workflow), label)

    @admin.display(description="")
    def pages(self, workflow: Workflow) -> str:
        links = [(self.url("run", workflow.pk), "Run"), (runs_url(workflow), "Runs")]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    @admin.display(description="draft")
    def draft_shown(self, workflow: Workflow) -> str:
        return format_html('<pre class="weft-dsl">{}</pre>', draft_text(workflow))

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (None, {"fields": DETAILS}),
                ("Draft", {"fields": ["draft"], "description": "Empty: an empty graph."}),
            ]
        if not self.has_change_permission(request, obj):
            # Django shows a view-only page field by field from the object: the draft is
            # shown through draft_shown, since `draft` is a form field only.
            return [(None, {"fields": [*DETAILS, *STAMPS]}), ("Draft", {"fields": ["draft_shown"]})]
        return [
            (None, {"fields": [*DETAILS, *STAMPS]}),
            ("Draft", {"fields": ["draft", "checksum"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if not self.has_change_permission(request, obj):
            return [*DETAILS, *STAMPS, "draft_shown"]
        # The draft service has no mode change: the mode a workflow is created with stays.
        return ["mode", *STAMPS]

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if change:
            saved = services.workflow_update(
                tenant=obj.tenant,
                workflow=obj,
                name=data["name"],
                description=data["description"],
                spec=data.get("spec"),
                expected_checksum=data["checksum"],
                updated_by=request.user,
            )
        else:
            saved = services.workflow_create(
                tenant=require_tenant(request),
                name=data["name"],
                description=data["description"],
                mode=data["mode"],
                spec=data.get("spec"),
                created_by=request.user,
            )
        obj.__dict__.update(saved.__dict__)

    def response_change(self, request, obj):
        # A draft that cannot run is saved all the same; its page lists what to fix.
        problems = problems_of(obj)
        if not problems:
            return super().response_change(request, obj)
        self.message_user(
            request,
            f"Saved. The draft has {len(problems)} problem(s), listed below: it cannot run "
            "or be published until they are fixed.",
            messages.WARNING,
        )
        return HttpResponseRedirect(self.url("change", obj.pk))

    def delete_model(self, request, obj) -> None:
        services.workflow_delete(tenant=obj.tenant, workflow=obj)

    def delete_queryset(self, request, queryset) -> None:
        for workflow in queryset.select_related("tenant"):
            self.delete_model(request, workflow)

    def get_deleted_objects(self, objs, request):
        """A summary (workflows, versions, runs), not one line per node execution."""
        workflows = list(objs)
        refused = {"workflow" for w in workflows if not self.may(request, "manage", w)}
        counts = {
            "workflows": len(workflows),
            "versions": WorkflowVersion.dangerously_unscoped.filter(workflow__in=workflows).count(),
            "runs": WorkflowRun.dangerously_unscoped.filter(workflow__in=workflows).count(),
        }
        return [str(w) for w in workflows], counts, refused, []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._draft_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _draft_context(self, request, workflow: Workflow) -> dict[str, Any]:
        problems = problems_of(workflow)
        graph = services.spec_of(workflow, secrets="blank").graph
        versions = workflow.versions.select_related("created_by").order_by("-number")
        return {
            "problems": problems,
            "graph": graph_svg(graph, problems_by_node(problems)),
            "versions": versions,
            "publish_form": PublishForm(),
            "may_manage": self.may(request, "manage", workflow),
            "may_run": self.may(request, "run", workflow),
            "runs_url": runs_url(workflow),
        }

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "may_import": self.may(request, "manage")}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            *self.transfer_urls(),
            *self.version_urls(),
            *self.launch_urls(),
            *super().get_urls(),
        ]
