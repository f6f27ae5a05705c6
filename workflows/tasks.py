"""Celery tasks of workflows: runs that belong to no request (schedules, webhooks, async API
calls), on queue `workflows`, and the watchdog that ends runs whose process died."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from . import streams
from .models import WorkflowRun

# A run whose row has not heard from its process for this long is orphaned (the heartbeat
# comes every 10 s); one no process ever took, after much longer (it may wait in a queue).
ORPHANED_AFTER = dt.timedelta(seconds=60)
NEVER_STARTED_AFTER = dt.timedelta(hours=1)


@shared_task(acks_late=True, reject_on_worker_lost=False)
def run_workflow(run_id: str) -> str:
    """Execute a created run. A retried or duplicated task finds the run finished (or, if its
    worker died mid-run, failed by the watchdog) and does nothing: a run never executes twice,
    because its nodes may have had effects (HTTP calls, model spend)."""
    from .runner import run_execute

    return streams.run_sync(run_execute, run_id).status


@shared_task(acks_late=True, reject_on_worker_lost=False)
def resume_workflow(
    run_id: str, outputs: dict, handle: str | None = None, expired: bool = False
) -> str:
    """Continue a paused run with a person's answer (marked running by
    `runner.run_resume_prepare`); a duplicate finds it underway or finished and does
    nothing."""
    from .runner import Resume, run_execute

    resume = Resume(outputs=outputs, handle=handle, expired=expired)
    return streams.run_sync(run_execute, run_id, resume=resume).status


@shared_task
def fail_orphaned_runs() -> int:
    """Fail the runs whose process stopped heartbeating; how many."""
    now = timezone.now()
    running = WorkflowRun.dangerously_unscoped.filter(status=WorkflowRun.Status.RUNNING)
    died = running.filter(heartbeat_at__lt=now - ORPHANED_AFTER).update(
        status=WorkflowRun.Status.FAILED,
        error="The process running this workflow stopped before it finished.",
        finished_at=now,
        heartbeat_at=None,
    )
    never = running.filter(
        heartbeat_at__isnull=True, created_at__lt=now - NEVER_STARTED_AFTER
    ).update(
        status=WorkflowRun.Status.FAILED,
        error="No worker started this run in time.",
        finished_at=now,
    )
    return died + never


@shared_task
def expire_human_input() -> int:
    """Resume the paused runs whose form nobody answered in time: the human-input node then
    fails with a timeout, and its error strategy decides what follows; how many."""
    now = int(timezone.now().timestamp())
    expired = 0
    paused = WorkflowRun.dangerously_unscoped.filter(
        status=WorkflowRun.Status.PAUSED, paused_state__form__expires_at__lt=now
    ).values_list("pk", flat=True)
    for run_id in paused:
        # Only one caller turns a paused run back to running: a person answering at the same
        # moment, or this task run twice, loses the race and does nothing.
        taken = WorkflowRun.dangerously_unscoped.filter(
            pk=run_id, status=WorkflowRun.Status.PAUSED
        ).update(status=WorkflowRun.Status.RUNNING)
        if taken:
            resume_workflow.delay(str(run_id), {}, None, True)
            expired += 1
    return expired
