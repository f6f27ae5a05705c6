"""The Run page of a workflow: a form made from the start node's variables, for the draft
or a chosen version; a valid one creates the run and queues it on Celery (queue
`workflows`), and the user lands on the run's page."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from tenants.exceptions import InvalidInput
from tenants.http import SignedInRequest

from .. import runner, services, tasks
from ..models import Workflow, WorkflowVersion
from .base import WorkflowPagesBase, problems_of
from .forms import RunForm, source_choices, start_variables


class LaunchPages(WorkflowPagesBase):
    """The Run page of WorkflowAdmin."""

    def launch_urls(self) -> list:
        return [
            path(
                "<path:object_id>/run/",
                self.in_tenant(self.run_view),
                name="workflows_workflow_run",
            )
        ]

    def run_view(self, request: SignedInRequest, object_id: str):
        workflow = self.workflow_for(request, object_id, "run")
        number = request.POST.get("version") or request.GET.get("version") or ""
        version = self.version_for(workflow, number) if number else None
        source: Workflow | WorkflowVersion = version or workflow
        form = RunForm(request.POST or None, variables=start_variables(source))
        problems = problems_of(source)
        if request.method == "POST" and form.is_valid():
            try:
                run = runner.run_create(
                    tenant=workflow.tenant,
                    workflow=workflow,
                    inputs=form.inputs(),
                    version=version,
                    user=request.user,
                )
            except services.WorkflowInvalid as exc:
                problems = exc.errors
            except InvalidInput as exc:
                form.add_service_error(exc.message)
            else:
                run_id = str(run.pk)
                transaction.on_commit(lambda: tasks.run_workflow.delay(run_id))
                self.message_user(
                    request, "The run is queued; this page follows it.", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:workflows_workflowrun_change", args=[run.pk])
                )
        page = self.page(
            request,
            workflow,
            f"Run {workflow}",
            form=form,
            problems=problems,
            version=version,
            number=number,
            choices=source_choices(workflow),
        )
        return TemplateResponse(request, "workflows/run_start.html", page)
