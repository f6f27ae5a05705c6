"""Reads of apps' conversations, messages, feedback, uploads and runs, as the Service API
and the portal page them: cursor pages as Dify's (`last_id` for conversations, `first_id`
for messages, each with `has_more`), and `access_*` lookups that answer the same "not
found" for a missing, deleted, foreign or other user's row.

Every function runs inside the caller's tenant context (the default managers refuse to read
without one); each page costs a fixed number of queries, whatever its length.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.db.models import Prefetch, Q, QuerySet, TextField
from django.db.models.functions import Cast

from tenants.exceptions import InvalidInput, NotFound
from workflows.models import WorkflowRun

from .models import App, Conversation, EndUser, Message, MessageFeedback, UploadFile

T = TypeVar("T")

MAX_LIMIT = 100
CONVERSATION_SORTS = ("created_at", "-created_at", "updated_at", "-updated_at")
LOG_STATUSES = tuple(WorkflowRun.Status.values)


@dataclass
class Page(Generic[T]):
    """One page of a cursor-paged list."""

    data: list[T]
    limit: int
    has_more: bool


@dataclass
class NumberedPage(Generic[T]):
    """One page of a list paged by number (Dify's `page`, `limit`, `total`)."""

    data: list[T]
    page: int
    limit: int
    total: int
    has_more: bool = field(init=False)

    def __post_init__(self) -> None:
        self.has_more = self.page * self.limit < self.total


def as_uuid(value: Any) -> uuid.UUID | None:
    """The UUID a client's id names, or None when it is not one (a malformed id finds
    nothing, as an unknown one does)."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit: must be between 1 and {MAX_LIMIT}.")
    return limit


# Conversations


def conversations_of(*, app: App, end_user: EndUser | None) -> QuerySet[Conversation]:
    """The end user's conversations with the app that they have not deleted (none for an
    end user who never came)."""
    if end_user is None:
        return Conversation.objects.none()
    return Conversation.objects.filter(app=app, end_user=end_user, is_deleted=False)


def access_conversation(
    *, app: App, end_user: EndUser | None, conversation_id: Any
) -> Conversation:
    """The end user's live conversation with the app, or 404 "Conversation Not Exists."."""
    pk = as_uuid(conversation_id)
    found = conversations_of(app=app, end_user=end_user).filter(pk=pk).first() if pk else None
    if found is None:
        raise NotFound("Conversation Not Exists.")
    return found


def _after(rows: QuerySet, field_name: str, value: Any, pk: Any, *, descending: bool) -> QuerySet:
    """Rows strictly after (value, pk) in the order by field then id, either direction."""
    op = "lt" if descending else "gt"
    return rows.filter(
        Q(**{f"{field_name}__{op}": value}) | Q(**{field_name: value, f"pk__{op}": pk})
    )


def conversation_page(
    *,
    app: App,
    end_user: EndUser | None,
    last_id: str | None = None,
    limit: int = 20,
    sort_by: str = "-updated_at",
) -> Page[Conversation]:
    """Dify's conversation list: `limit` conversations in `sort_by` order after the one
    `last_id` names (404 "Last Conversation Not Exists." for one the user does not have)."""
    check_limit(limit)
    if sort_by not in CONVERSATION_SORTS:
        raise InvalidInput(f"sort_by: must be one of {', '.join(CONVERSATION_SORTS)}.")
    descending = sort_by.startswith("-")
    field_name = sort_by.lstrip("-")
    order = [sort_by, "-pk" if descending else "pk"]
    rows = conversations_of(app=app, end_user=end_user)
    if last_id:
        pk = as_uuid(last_id)
        last = rows.filter(pk=pk).first() if pk else None
        if last is None:
            raise NotFound("Last Conversation Not Exists.")
        rows = _after(rows, field_name, getattr(last, field_name), last.pk, descending=descending)
    found = list(rows.order_by(*order)[: limit + 1])
    return Page(found[:limit], limit, len(found) > limit)


# Messages


def _with_details(messages: QuerySet[Message]) -> QuerySet[Message]:
    """Messages with what their JSON shows: the end user's rating and the agent's steps."""
    return messages.prefetch_related(
        Prefetch(
            "feedbacks",
            queryset=MessageFeedback.objects.filter(source=MessageFeedback.From.USER),
            to_attr="user_feedbacks",
        ),
        "agent_thoughts",
    )


def message_page(
    *, conversation: Conversation, first_id: str | None = None, limit: int = 20
) -> Page[Message]:
    """Dify's history: the `limit` messages before the one `first_id` names (the newest
    without it), oldest first, and whether older ones remain (404 "First Message Not
    Exists." for a message not in the conversation)."""
    check_limit(limit)
    rows = Message.objects.filter(conversation=conversation)
    if first_id:
        pk = as_uuid(first_id)
        first = rows.filter(pk=pk).first() if pk else None
        if first is None:
            raise NotFound("First Message Not Exists.")
        rows = _after(rows, "created_at", first.created_at, first.pk, descending=True)
    found = list(_with_details(rows.order_by("-created_at", "-pk"))[: limit + 1])
    newest_first = found[:limit]
    return Page(list(reversed(newest_first)), limit, len(found) > limit)


def access_message(*, app: App, end_user: EndUser | None, message_id: Any) -> Message:
    """The end user's message in the app (outside deleted conversations), or 404
    "Message Not Exists."."""
    pk = as_uuid(message_id)
    found = None
    if pk is not None and end_user is not None:
        found = (
            Message.objects.filter(app=app, end_user=end_user, pk=pk)
            .exclude(conversation__is_deleted=True)
            .select_related("conversation")
            .first()
        )
    if found is None:
        raise NotFound("Message Not Exists.")
    return found


def feedback_page(*, app: App, page: int = 1, limit: int = 20) -> list[MessageFeedback]:
    """Every rating of the app's answers, by end users and members, newest first."""
    check_limit(limit)
    if page < 1:
        raise InvalidInput("page: must be 1 or more.")
    rows = MessageFeedback.objects.filter(app=app).order_by("-created_at", "-pk")
    return list(rows[(page - 1) * limit : page * limit])


# Files


def access_upload(*, app: App, end_user: EndUser | None, upload_id: Any) -> UploadFile:
    """A file the end user uploaded to the app, or 404."""
    pk = as_uuid(upload_id)
    found = None
    if pk is not None and end_user is not None:
        found = UploadFile.objects.filter(app=app, created_by_end_user=end_user, pk=pk).first()
    if found is None:
        raise NotFound("File not found.")
    return found


# Workflow runs


def runs_of(app: App) -> QuerySet[WorkflowRun]:
    """The runs of a chatflow or workflow app's own workflow (none for other modes)."""
    if app.workflow_id is None:
        return WorkflowRun.objects.none()
    return WorkflowRun.objects.filter(workflow_id=app.workflow_id)


def access_run(*, app: App, run_id: Any) -> WorkflowRun:
    """A run of the app's workflow, or 404 "Workflow run not found"."""
    pk = as_uuid(run_id)
    found = runs_of(app).filter(pk=pk).first() if pk else None
    if found is None:
        raise NotFound("Workflow run not found.")
    return found


def workflow_log_page(
    *,
    app: App,
    keyword: str = "",
    status: str | None = None,
    created_before: datetime | None = None,
    created_after: datetime | None = None,
    page: int = 1,
    limit: int = 20,
) -> NumberedPage[WorkflowRun]:
    """The app's runs as Dify's workflow logs list them: not the console's draft runs,
    newest first, filtered by status, creation time and a keyword found in the inputs,
    the outputs or the end user's own id."""
    check_limit(limit)
    if page < 1:
        raise InvalidInput("page: must be 1 or more.")
    rows = runs_of(app).exclude(triggered_from=WorkflowRun.TriggeredFrom.DEBUGGING)
    if status:
        if status not in LOG_STATUSES:
            raise InvalidInput(f"status: must be one of {', '.join(LOG_STATUSES)}.")
        rows = rows.filter(status=status)
    if created_before is not None:
        rows = rows.filter(created_at__lt=created_before)
    if created_after is not None:
        rows = rows.filter(created_at__gt=created_after)
    keyword = keyword.strip()
    if keyword:
        rows = rows.annotate(
            inputs_text=Cast("inputs", TextField()), outputs_text=Cast("outputs", TextField())
        ).filter(
            Q(inputs_text__icontains=keyword)
            | Q(outputs_text__icontains=keyword)
            | Q(created_by_end_user__in=_end_user_ids(app, keyword))
        )
    total = rows.count()
    rows = rows.select_related("version", "created_by").order_by("-created_at", "-pk")
    return NumberedPage(list(rows[(page - 1) * limit : page * limit]), page, limit, total)


def _end_user_ids(app: App, keyword: str) -> QuerySet:
    """The ids (as text, as runs keep them) of the app's end users whose own id holds
    `keyword`."""
    return (
        EndUser.objects.filter(app=app, session_id__icontains=keyword)
        .annotate(id_text=Cast("pk", TextField()))
        .values("id_text")
    )


def end_users_by_id(app: App, ids: list[str]) -> dict[str, EndUser]:
    """The app's end users among `ids` (as runs keep them: the end user's row id), by id,
    in one query."""
    pks = {pk for pk in (as_uuid(value) for value in ids) if pk is not None}
    if not pks:
        return {}
    return {str(row.pk): row for row in EndUser.objects.filter(app=app, pk__in=pks)}
