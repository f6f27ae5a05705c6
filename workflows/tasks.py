"""Celery tasks of workflows: runs that belong to no request (schedules, webhooks, async API
calls), on queue `workflows`, and the watchdog that ends runs whose process died."""

from __future__ import annotations

import datetime as dt

from asgiref.sync import async_to_sync
from celery import shared_task
from django.utils import timezone

from .models import WorkflowRun

# A run whose row has not heard from its process for this long is orphaned (the heartbeat
# comes every 10 s).
ORPHANED_AFTER = dt.timedelta(seconds=60)


@shared_task(acks_late=True, reject_on_worker_lost=False)
def run_workflow(run_id: str) -> str:
    """Execute a created run. A retried or duplicated task finds the run finished (or, if its
    worker died mid-run, failed by the watchdog) and does nothing: a run never executes twice,
    because its nodes may have had effects (HTTP calls, model spend)."""
    from .runner import run_execute

    row = WorkflowRun.dangerously_unscoped.only("status", "heartbeat_at").get(pk=run_id)
    if row.status != WorkflowRun.Status.RUNNING or row.heartbeat_at is not None:
        return row.status
    return async_to_sync(run_execute)(run_id).status


@shared_task
def fail_orphaned_runs() -> int:
    """Fail the runs whose process stopped heartbeating; how many."""
    now = timezone.now()
    stale = now - ORPHANED_AFTER
    orphaned = WorkflowRun.dangerously_unscoped.filter(status=WorkflowRun.Status.RUNNING).filter(
        heartbeat_at__lt=stale
    ) | WorkflowRun.dangerously_unscoped.filter(
        status=WorkflowRun.Status.RUNNING, heartbeat_at__isnull=True, created_at__lt=stale
    )
    return orphaned.update(
        status=WorkflowRun.Status.FAILED,
        error="The process running this workflow stopped before it finished.",
        finished_at=now,
        heartbeat_at=None,
    )
