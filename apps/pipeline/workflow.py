"""Workflow apps: their run, executed by `workflows.runner.run_execute` with the uploads of
whoever started it, keeping the runner's own stream and event shapes (`task_id`,
`workflow_run_id`, `data`) and ending with `workflow_finished`."""

from __future__ import annotations

import uuid

from asgiref.sync import sync_to_async

from tenants.models import User
from workflows import streams
from workflows.models import WorkflowRun
from workflows.runner import Hooks, run_execute

from ..models import EndUser
from .events import dify_error
from .files import upload_reader
from .types import Task


def _people(run: WorkflowRun) -> tuple[EndUser | None, User | None]:
    """Who started the run: the end user whose row id `prepare` kept on it, or the member."""
    end_user = None
    try:
        end_user_id = uuid.UUID(run.created_by_end_user) if run.created_by_end_user else None
    except ValueError:
        end_user_id = None
    if end_user_id is not None:
        end_user = EndUser.dangerously_unscoped.filter(
            pk=end_user_id, tenant_id=run.tenant_id
        ).first()
    return end_user, run.created_by


def _load_run(task: Task) -> WorkflowRun | None:
    rows = WorkflowRun.dangerously_unscoped.filter(pk=str(task.workflow_run_id))
    if task.tenant_id:
        rows = rows.filter(tenant_id=task.tenant_id)
    return rows.select_related("tenant", "created_by").first()


async def run_workflow_app(task: Task) -> None:
    """Run a workflow app's run to its end (its own stream and shapes)."""
    run = await sync_to_async(_load_run)(task)
    if run is None or run.status != WorkflowRun.Status.RUNNING:
        return
    end_user, user = await sync_to_async(_people)(run)
    hooks = Hooks(services={"read_upload": upload_reader(run.tenant, end_user, user)})
    try:
        await run_execute(run.pk, hooks=hooks)
    except Exception as exc:
        # The runner has marked the run failed; its stream still needs an end.
        status, code, text = dify_error(exc)
        body = {
            "event": "error",
            "task_id": task.task_id,
            "workflow_run_id": str(run.pk),
            "status": status,
            "code": code,
            "message": text,
        }
        await streams.append(str(run.pk), [streams.entry("error", body, last=True)])
