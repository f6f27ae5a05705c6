"""Celery tasks of apps: tasks run in `async` mode (queue `workflows`), and the watchdog that
ends messages whose process died."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, cast

import redis
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tenants.tasks import TenantTask
from workflows import streams

from .models import Message

logger = logging.getLogger(__name__)

# A message whose process has not renewed its heartbeat (every 10 s) for this long is
# orphaned; one no process ever took, after much longer (it may wait in a queue).
ORPHANED_AFTER = dt.timedelta(seconds=60)
NEVER_STARTED_AFTER = dt.timedelta(hours=1)
DIED = "The process answering this message stopped before it finished."
NEVER_STARTED = "No worker started answering this message in time."


@shared_task(base=TenantTask, acks_late=True, reject_on_worker_lost=True)
def execute_task(
    *,
    tenant_id: str,
    task_id: str,
    mode: str,
    message_id: str | None,
    conversation_id: str | None,
    workflow_run_id: str | None,
    app_id: str = "",
    auto_generate_name: bool = False,
) -> None:
    """Execute a prepared task (apps.pipeline.execute). Delivered twice, or again after its
    worker died, it does nothing: a message or run is taken by one process only, and one no
    longer running is left as it is."""
    from .pipeline import Task, execute

    task = Task(
        task_id=task_id,
        mode=mode,
        message_id=message_id,
        conversation_id=conversation_id,
        workflow_run_id=workflow_run_id,
        tenant_id=tenant_id,
        app_id=app_id,
        auto_generate_name=auto_generate_name,
    )
    streams.run_sync(execute, task, wait_follow_ups=True)


def _end_streams(rows: list[tuple], reason: str) -> None:
    """Give each message's stream its `error` end, so that readers stop waiting."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        with client.pipeline(transaction=False) as pipe:
            for message_id, conversation_id in rows:
                body = {
                    "event": "error",
                    "task_id": str(message_id),
                    "message_id": str(message_id),
                    "status": 500,
                    "code": "internal_server_error",
                    "message": reason,
                }
                if conversation_id is not None:
                    body["conversation_id"] = str(conversation_id)
                key = streams.events_key(str(message_id))
                pipe.xadd(
                    key, cast(Any, streams.entry("error", body, last=True)), maxlen=streams.MAXLEN
                )
                pipe.expire(key, streams.TTL_SECONDS)
            pipe.execute()
    finally:
        client.close()


@shared_task
def fail_orphaned_messages() -> int:
    """End, with status error and a reason, the messages still running long after their
    process last said it was alive (or that no process ever took); how many."""
    now = timezone.now()
    running = Message.dangerously_unscoped.filter(status=Message.Status.RUNNING)
    ended = 0
    never_started = running.filter(
        heartbeat_at__isnull=True, created_at__lt=now - NEVER_STARTED_AFTER
    )
    for rows, reason in (
        (running.filter(heartbeat_at__lt=now - ORPHANED_AFTER), DIED),
        (never_started, NEVER_STARTED),
    ):
        with transaction.atomic():
            # Locked, so that a message ending at this moment keeps its own end.
            found = list(
                rows.select_for_update(skip_locked=True).values_list("pk", "conversation_id")
            )
            Message.dangerously_unscoped.filter(pk__in=[pk for pk, _ in found]).update(
                status=Message.Status.ERROR, error=reason, updated_at=now
            )
        if found:
            _end_streams(found, reason)
            ended += len(found)
    if ended:
        logger.warning("%s orphaned message(s) failed", ended)
    return ended
