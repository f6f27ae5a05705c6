"""Reads of the workflows API, scoped by the tenant in context, and the `access_*` lookups
that answer the same 404 for a missing object and another tenant's.

A version or run named in the URL that does not exist is not found (404); one named in a
parameter or the body (`version`, `against`, `workflow_id`) is bad input (400), naming the
parameter.
"""

from __future__ import annotations

import uuid

from django.db.models import F, Max, Prefetch, QuerySet

from tenants.exceptions import InvalidInput, NotFound

from ..models import NodeExecution, Workflow, WorkflowRun, WorkflowVersion


def workflows(*, name: str | None = None, mode: str | None = None) -> QuerySet[Workflow]:
    """The tenant's workflows, newest change first, with their latest version number."""
    found = Workflow.objects.annotate(latest_version=Max("versions__number"))
    if name:
        found = found.filter(name__icontains=name)
    if mode:
        found = found.filter(mode=mode)
    return found.order_by("-updated_at")


def access_workflow(workflow_id: uuid.UUID | str) -> Workflow:
    """The tenant's workflow with its latest version number, or 404."""
    workflow = workflows().filter(pk=workflow_id).first()
    if workflow is None:
        raise NotFound("No such workflow.")
    return workflow


def workflow_named_in(workflow_id: uuid.UUID, *, param: str) -> Workflow:
    """The workflow a parameter names, or 400 naming the parameter."""
    workflow = Workflow.objects.filter(pk=workflow_id).first()
    if workflow is None:
        raise InvalidInput(f"{param}: no workflow with id {workflow_id} in this tenant.")
    return workflow


def versions(workflow: Workflow) -> QuerySet[WorkflowVersion]:
    """The workflow's versions, newest first, with their authors."""
    return (
        WorkflowVersion.objects.filter(workflow=workflow)
        .select_related("created_by")
        .order_by("-number")
    )


def access_version(workflow: Workflow, number: int) -> WorkflowVersion:
    """Version `number` of the workflow (named in the URL), or 404."""
    version = versions(workflow).filter(number=number).first()
    if version is None:
        raise NotFound(f"No version {number} of this workflow.")
    return version


def version_named_in(workflow: Workflow, number: int, *, param: str) -> WorkflowVersion:
    """Version `number` of the workflow named by a parameter, or 400 naming it."""
    version = versions(workflow).filter(number=number).first()
    if version is None:
        raise InvalidInput(f"{param}: this workflow has no version {number}.")
    return version


def _runs() -> QuerySet[WorkflowRun]:
    # The version's number only: a version row (its graph) is not needed to show a run.
    # Deferring is safe on runs only: they are not audited, and tenants.audit snapshots every
    # field of an audited row it loads, reloading deferred ones without end.
    return WorkflowRun.objects.annotate(version_number=F("version__number")).defer("graph")


def runs(*, workflow: Workflow, status: str | None = None) -> QuerySet[WorkflowRun]:
    """The workflow's runs, newest first, with their version numbers."""
    found = _runs().filter(workflow=workflow).defer("paused_state")
    if status:
        found = found.filter(status=status)
    return found.order_by("-created_at")


def run_with_nodes() -> QuerySet[WorkflowRun]:
    """Runs with their node executions in the order they started (one query for them all)."""
    ordered = NodeExecution.objects.order_by("index", "created_at")
    return _runs().prefetch_related(Prefetch("node_executions", queryset=ordered))


def access_run(run_id: uuid.UUID | str) -> WorkflowRun:
    """The tenant's run (without its graph), or 404."""
    run = WorkflowRun.objects.defer("graph").filter(pk=run_id).first()
    if run is None:
        raise NotFound("No such run.")
    return run
