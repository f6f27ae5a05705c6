"""The annotation reply hook: where the annotations layer (which sits above apps and so cannot be
imported here) plugs in "a close enough question is answered with the approved answer".

The annotations layer registers an async callable at start-up (its AppConfig.ready):

    from apps.pipeline import AnnotationHit, register_annotation_reply

    async def reply(*, app, message, query) -> AnnotationHit | None: ...
    register_annotation_reply(reply)

For a chat, agent-chat, completion or chatflow turn of an app whose `annotation_reply` feature
is on, after input moderation and before memory and retrieval, the pipeline awaits each hook in
the order they were registered; the first hit answers the turn (streamed as the answer, then
`message_end` with `metadata.annotation_reply`), and the model is not called. With no hook
registered, or the feature off, nothing happens. A hook that raises is logged and skipped: a
broken annotation index must not break the chat.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..config import Features
from ..models import App, Message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnotationHit:
    """An approved answer for the query: the annotation's id, its answer, and who wrote it
    (`{"id", "name"}`, Dify's `annotation_reply.account`)."""

    id: str
    answer: str
    account: dict[str, Any] | None = None

    def metadata(self) -> dict[str, Any]:
        """Dify's `message_end.metadata.annotation_reply`."""
        return {"id": self.id, "account": self.account or {"id": "", "name": ""}}


AnnotationReplyHook = Callable[..., Awaitable[AnnotationHit | None]]
_hooks: list[AnnotationReplyHook] = []


def register_annotation_reply(hook: AnnotationReplyHook) -> AnnotationReplyHook:
    """Add a hook (once, however often it is registered); gives it back, so it can decorate."""
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def unregister_annotation_reply(hook: AnnotationReplyHook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


async def annotation_reply(
    *, app: App, features: Features, message: Message, query: str
) -> AnnotationHit | None:
    """The first hit of the registered hooks, or None (feature off, no hook, no hit)."""
    if not features.annotation_reply.enabled or not query:
        return None
    for hook in list(_hooks):
        try:
            hit = await hook(app=app, message=message, query=query)
        except Exception:
            logger.exception("annotation reply hook %r failed; skipped", hook)
            continue
        if hit is not None:
            return hit
    return None
