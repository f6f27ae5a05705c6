"""The app execution pipeline: what runs when someone sends a message to an app or runs a
workflow app, whoever calls (Service API, portal, console).

    task = prepare(Request(app=app, runnable=runnable(app), source=Source.API,
                           end_user=end_user, inputs={...}, query="Hello"))
    await apps.limits.run_acquire(str(app.pk), task.task_id, app.max_active_requests)
    start_detached(task)               # or enqueue(task) for Celery (`async` mode)
    async for entry_id, body in workflows.streams.read(task.task_id): ...   # streaming
    answer = await blocking_result(task)                                      # blocking
    await stop(app=app, task_id=task.task_id, end_user=end_user)

`prepare` checks everything and writes the rows in one transaction (nothing when it refuses);
`execute` (detached, or on Celery) runs the task to its end, writing its events — Dify's SSE
bodies — to the task's Redis stream (`workflows.streams`, keyed by the task id), the last one
marked last, and releases the app's run slot. Chat, agent-chat and completion apps run the chat
pipeline (`chat`, `agent`); chatflow and workflow apps their workflow (`chatflow`). Annotation
reply plugs in through `register_annotation_reply` (`annotations`).
"""

from .annotations import (
    AnnotationHit,
    AnnotationReplyHook,
    register_annotation_reply,
    unregister_annotation_reply,
)
from .prepare import CONVERSATION_NOT_FOUND, prepare
from .runs import (
    SuggestionsDisabled,
    blocking_result,
    enqueue,
    execute,
    start_detached,
    stop,
    suggested_questions,
)
from .types import Request, Task

__all__ = [
    "CONVERSATION_NOT_FOUND",
    "AnnotationHit",
    "AnnotationReplyHook",
    "Request",
    "SuggestionsDisabled",
    "Task",
    "blocking_result",
    "enqueue",
    "execute",
    "prepare",
    "register_annotation_reply",
    "start_detached",
    "stop",
    "suggested_questions",
    "unregister_annotation_reply",
]
