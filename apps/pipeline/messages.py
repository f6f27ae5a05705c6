"""A message's life as the pipeline runs it: taken by one process, its heartbeat renewed
while it is answered (and stop requests watched for), its end written, and its stream's
events."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from workflows import streams

from ..models import Conversation, Message, Source
from .events import AppSink, ChatEvents, dify_error
from .types import Task

logger = logging.getLogger(__name__)

STOP_POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 10.0
RETRIEVER_FROM: dict[str, str] = {
    Source.API: "api",
    Source.PORTAL: "web_app",
    Source.CONSOLE: "dev",
}


def claim(task: Task) -> Message | None:
    """Take the task's message for this process, loaded with what the turn needs; None when
    it is not running or another process has it (a message is answered once)."""
    rows = Message.dangerously_unscoped.filter(pk=str(task.message_id))
    if task.tenant_id:
        rows = rows.filter(tenant_id=task.tenant_id)
    with transaction.atomic():
        taken = rows.filter(status=Message.Status.RUNNING, heartbeat_at__isnull=True).update(
            heartbeat_at=timezone.now()
        )
    if not taken:
        return None
    return rows.select_related(
        "tenant", "app__tenant", "app_version", "conversation", "end_user", "created_by"
    ).get()


def beat(message_id: Any) -> None:
    Message.dangerously_unscoped.filter(pk=message_id, status=Message.Status.RUNNING).update(
        heartbeat_at=timezone.now()
    )


def elapsed_since(moment: datetime) -> float:
    return max(0.0, (timezone.now() - moment).total_seconds())


def save_message(message: Message, fields: dict[str, Any]) -> None:
    """Write a turn's end on its message and move its conversation to the top."""
    now = timezone.now()
    with transaction.atomic():
        Message.dangerously_unscoped.filter(pk=message.pk).update(**fields, updated_at=now)
        if message.conversation_id is not None:
            Conversation.dangerously_unscoped.filter(pk=message.conversation_id).update(
                updated_at=now
            )
    for name, value in fields.items():
        setattr(message, name, value)


class Watcher:
    """Renews a message's heartbeat while it is answered and, with `stop_id`, calls
    `on_stop` when a stop is requested for it. Ended by `close()`, not by cancelling it: a
    cancellation landing inside a Redis call can be swallowed there, and the watcher would
    then never end."""

    def __init__(self, message_id: str, *, stop_id: str | None, on_stop: Any = None) -> None:
        self.done = asyncio.Event()
        self.task = asyncio.create_task(self._run(message_id, stop_id, on_stop))

    async def close(self) -> None:
        self.done.set()
        await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self, message_id: str, stop_id: str | None, on_stop: Any) -> None:
        waited = 0.0
        while not self.done.is_set():
            try:
                await asyncio.wait_for(self.done.wait(), STOP_POLL_SECONDS)
                return
            except TimeoutError:
                waited += STOP_POLL_SECONDS
            await self._check(message_id, stop_id, on_stop, waited >= HEARTBEAT_SECONDS)
            if waited >= HEARTBEAT_SECONDS:
                waited = 0.0

    async def _check(
        self, message_id: str, stop_id: str | None, on_stop: Any, heartbeat: bool
    ) -> None:
        try:
            if stop_id is not None and await streams.stop_requested(stop_id):
                self.done.set()
                on_stop()
                return
            if heartbeat:
                await sync_to_async(beat)(message_id)
        except Exception:  # a Redis or database hiccup must not end the turn
            logger.warning("message %s: watcher check failed", message_id, exc_info=True)


def chat_events(task: Task, message: Message) -> ChatEvents:
    """The event builder of a message's stream."""
    return ChatEvents(
        AppSink(str(message.pk), {}),
        task_id=task.task_id,
        message_id=str(message.pk),
        conversation_id=str(message.conversation_id) if message.conversation_id else None,
        created_at=int(message.created_at.timestamp()),
    )


async def fail_early(task: Task, message: Message, exc: BaseException) -> None:
    """End a message that could not even start (its configuration no longer reads)."""
    status, code, text = dify_error(exc)
    await sync_to_async(save_message)(
        message,
        {
            "status": Message.Status.ERROR,
            "error": text,
            "latency": elapsed_since(message.created_at),
        },
    )
    await chat_events(task, message).error(status, code, text)
