"""Runs: the list (all, or one workflow's), and the run page: status, inputs, outputs,
totals and the node timeline, refreshing itself while the run goes on; a Stop button; and
for a run waiting for a person, the human-input form, whose answer resumes it on Celery."""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from tenants.admin_base import TenantScopedAdmin
from tenants.context import tenant_context
from tenants.exceptions import WeftError
from tenants.http import SignedInRequest

from .. import runner, tasks
from ..models import NodeExecution, Workflow, WorkflowRun
from .base import changelist_without, runs_url
from .forms import AnswerForm
from .timeline import cost_shown, pretty, timeline

REFRESH_SECONDS = 2


class WorkflowFilter(admin.SimpleListFilter):
    """Filter by workflow, offering the workflows the list may show."""

    title = "workflow"
    parameter_name = "workflow__id__exact"

    def lookups(self, request, model_admin):
        workflows = (
            Workflow.dangerously_unscoped.all()
            if request.user.is_superuser
            else Workflow.objects.all()
        )
        return [(str(pk), name) for pk, name in workflows.values_list("pk", "name")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(workflow_id=self.value())
        return queryset


@admin.register(WorkflowRun)
class WorkflowRunAdmin(TenantScopedAdmin):
    """Runs are seen with `workflow.view` and stopped or answered with `workflow.run`;
    nobody edits or deletes them here."""

    permission_kind = "workflow"
    list_display = [
        "started",
        "workflow",
        "status",
        "triggered_from",
        "version_shown",
        "elapsed",
        "total_tokens",
        "cost",
        "created_by",
    ]
    list_filter = [WorkflowFilter, "status", "triggered_from"]
    list_select_related = ["workflow", "version", "created_by"]
    search_fields = ["workflow__name"]

    def get_changelist(self, request, **kwargs):
        return changelist_without("graph", "inputs", "outputs", "paused_state")

    @admin.display(description="started", ordering="created_at")
    def started(self, run: WorkflowRun):
        return run.created_at

    @admin.display(description="version", ordering="version__number")
    def version_shown(self, run: WorkflowRun) -> str:
        return f"v{run.version.number}" if run.version else "draft"

    @admin.display(description="elapsed", ordering="elapsed_time")
    def elapsed(self, run: WorkflowRun) -> str:
        return f"{run.elapsed_time:.2f} s"

    @admin.display(description="cost", ordering="total_price")
    def cost(self, run: WorkflowRun) -> str:
        return cost_shown(run.total_price, run.currency)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/stop/",
                self.admin_site.admin_view(self.stop_view),
                name="workflows_workflowrun_stop",
            ),
            *super().get_urls(),
        ]

    def _run(self, request: HttpRequest, object_id: str, action: str) -> WorkflowRun:
        """The run, 404 when missing or another tenant's; 403 without `action`."""
        try:
            pk = uuid.UUID(object_id)
        except ValueError as exc:
            raise Http404("Not found.") from exc
        queryset = self.get_queryset(request).select_related("workflow", "version", "created_by")
        run = get_object_or_404(queryset, pk=pk)
        if not self._allowed(request, action, run):
            raise PermissionDenied
        return run

    def _url(self, run: WorkflowRun) -> str:
        return reverse("admin:workflows_workflowrun_change", args=[run.pk])

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The run page; its POST is the answer to a paused run's form."""
        with tenant_context(self._object_tenant(request, object_id)):
            posted = request.method == "POST"
            run = self._run(request, object_id, "run" if posted else "view")
            form = None
            if run.status == WorkflowRun.Status.PAUSED and run.paused_state:
                paused_form = run.paused_state.get("form") or {}
                form = AnswerForm(request.POST if posted else None, form=paused_form)
            if posted:
                if form is None:
                    self.message_user(request, "This run is not waiting for an answer.")
                    return HttpResponseRedirect(self._url(run))
                if form.is_valid():
                    return self._resume(request, run, form.outputs())
            return self._render(request, run, form)

    def _resume(self, request: SignedInRequest, run: WorkflowRun, outputs: dict[str, Any]):
        try:
            resume = runner.run_resume_prepare(tenant=run.tenant, run=run, outputs=outputs)
        except WeftError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(self._url(run))
        run_id = str(run.pk)
        transaction.on_commit(
            lambda: tasks.resume_workflow.delay(run_id, resume.outputs, resume.handle)
        )
        self.message_user(request, "Answer sent: the run goes on.", messages.SUCCESS)
        return HttpResponseRedirect(self._url(run))

    def _render(self, request: SignedInRequest, run: WorkflowRun, form: AnswerForm | None):
        executions = list(NodeExecution.objects.filter(run=run).order_by("index", "created_at"))
        may_run = self._allowed(request, "run", run)
        running = run.status == WorkflowRun.Status.RUNNING
        stoppable = running or run.status == WorkflowRun.Status.PAUSED
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Run of {run.workflow}",
            "run": run,
            "original": run,
            "workflow_url": reverse("admin:workflows_workflow_change", args=[run.workflow_id]),
            "runs_url": runs_url(run.workflow),
            "inputs": pretty({k: v for k, v in run.inputs.items() if k != "__system"}),
            "outputs": pretty(run.outputs) if run.outputs else "",
            "rows": timeline(executions, run.elapsed_time),
            "cost": cost_shown(run.total_price, run.currency),
            "refresh": REFRESH_SECONDS if running else None,
            "may_stop": may_run and stoppable,
            "answer_form": form if may_run else None,
        }
        return TemplateResponse(request, "workflows/run.html", context)

    def stop_view(self, request: SignedInRequest, object_id: str):
        """Ask the run to stop, wherever it runs (a paused run stops at once)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        with tenant_context(self._object_tenant(request, object_id)):
            run = self._run(request, object_id, "run")
            async_to_sync(runner.run_stop)(tenant=run.tenant, run=run)
        self.message_user(request, "Asked the run to stop.", messages.SUCCESS)
        return HttpResponseRedirect(self._url(run))
