"""Reads of apps for the management API and the console, scoped by the tenant in context,
each in a fixed number of queries, and the `access_*` lookups that answer the same 404 for a
missing object and another tenant's.

A version named in the URL that does not exist is not found (404); one named in a parameter
(`against`, `version`) is bad input (400), naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from tenants.exceptions import InvalidInput, NotFound
from tenants.models import ApiKey
from workflows.dsl import SpecDiff
from workflows.dsl.diff import ABSENT, FieldChange
from workflows.models import Workflow, WorkflowVersion
from workflows.services import version_diff

from ...models import (
    App,
    AppVersion,
    Conversation,
    Message,
    MessageAgentThought,
    MessageFeedback,
)

DRAFT = "draft"
RATINGS = ("like", "dislike", "none")


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _count(model: Any, link: str, **where: Any) -> Coalesce:
    """How many rows of `model` point at the outer row through `link` (a subquery, so that
    several counts do not multiply each other's joins). Correlated to the outer row, which
    is already the tenant's, so the unscoped manager is safe here."""
    rows = (
        model.dangerously_unscoped.filter(**{link: OuterRef("pk")}, **where)
        .order_by()
        .values(link)
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


# Apps


def with_activity(found: QuerySet[App]) -> QuerySet[App]:
    """Apps with their published version, conversation count and messages of the last 24 h."""
    since = timezone.now() - dt.timedelta(hours=24)
    return found.select_related("published_version").annotate(
        conversation_total=_count(Conversation, "app"),
        messages_24h=_count(Message, "app", created_at__gte=since),
    )


def apps(*, name: str | None = None, mode: str | None = None) -> QuerySet[App]:
    """The tenant's apps, most recently changed first, with their activity."""
    found = App.objects.all()
    if name:
        found = found.filter(name__icontains=name)
    if mode:
        found = found.filter(mode=mode)
    return with_activity(found).order_by("-updated_at", "pk")


def access_app(app_id: Any) -> App:
    """The tenant's app with its activity, or 404."""
    pk = _uuid(app_id)
    app = with_activity(App.objects.filter(pk=pk)).select_related("tenant").first() if pk else None
    if app is None:
        raise NotFound("No such app.")
    return app


def app_named_in(app_id: Any, *, param: str) -> App:
    """The app a parameter names, or 400 naming the parameter."""
    pk = _uuid(app_id)
    app = App.objects.select_related("tenant").filter(pk=pk).first() if pk else None
    if app is None:
        raise InvalidInput(f"{param}: no app with id {app_id} in this tenant.")
    return app


# Versions


def versions(app: App) -> QuerySet[AppVersion]:
    """The app's versions, newest first, with their authors and workflow versions."""
    return (
        AppVersion.objects.filter(app=app)
        .select_related("created_by", "workflow_version")
        .order_by("-number")
    )


def access_version(app: App, number: int) -> AppVersion:
    """Version `number` of the app (named in the URL), or 404."""
    version = versions(app).filter(number=number).first()
    if version is None:
        raise NotFound(f"No version {number} of this app.")
    version.app = app
    return version


def version_named_in(app: App, number: int, *, param: str) -> AppVersion:
    """Version `number` of the app named by a parameter, or 400 naming it."""
    version = versions(app).filter(number=number).first()
    if version is None:
        raise InvalidInput(f"{param}: this app has no version {number}.")
    version.app = app
    return version


@dataclass
class AppDiff:
    """What changed from one configuration of an app to another: the fields of `model_config`
    (chat, agent-chat and completion apps) or the workflow diff (chatflow and workflow apps)."""

    older: str  # a version number, or "draft"
    newer: str
    config: list[FieldChange] = field(default_factory=list)
    workflow: SpecDiff | None = None

    def is_empty(self) -> bool:
        return not self.config and (self.workflow is None or self.workflow.is_empty())

    def render(self) -> str:
        """The diff as text for people."""
        if self.is_empty():
            return "No changes."
        if self.workflow is not None:
            return self.workflow.render()
        return "\n".join(f"~ {c.path}: {shown(c.old)} → {shown(c.new)}" for c in self.config)


def shown(value: Any, limit: int = 300) -> str:
    """A value of a diff as people read it."""
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def config_changes(old: Any, new: Any, path: str = "") -> Iterator[FieldChange]:
    """Changes between two JSON values, at the deepest path where they differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            where = f"{path}.{key}" if path else str(key)
            yield from config_changes(old.get(key, ABSENT), new.get(key, ABSENT), where)
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            before = old[index] if index < len(old) else ABSENT
            after = new[index] if index < len(new) else ABSENT
            yield from config_changes(before, after, f"{path}[{index}]")
    elif old != new or type(old) is not type(new):
        yield FieldChange(path, old, new)


def label(source: AppVersion | None) -> str:
    """A side of a comparison: the version's number, or `draft`."""
    return DRAFT if source is None else str(source.number)


def _age(source: AppVersion | None) -> float:
    return float("inf") if source is None else source.number


def version_compare(app: App, one: AppVersion | None, other: AppVersion | None) -> AppDiff:
    """What changed between two of the draft (None) and the app's versions, read forward in
    time: from the older of the two to the newer (the draft is the newest)."""
    older, newer = sorted((one, other), key=_age)
    return app_diff(app, older, newer)


def app_diff(app: App, old: AppVersion | None, new: AppVersion | None) -> AppDiff:
    """What changes from `old` to `new` (None: the draft), in that order."""
    diff = AppDiff(older=label(old), newer=label(new))
    if app.runs_workflow:
        diff.workflow = version_diff(_workflow_side(app, old), _workflow_side(app, new))
    else:
        before = app.config if old is None else old.config
        after = app.config if new is None else new.config
        diff.config = list(config_changes(before, after))
    return diff


def _workflow_side(app: App, source: AppVersion | None) -> Workflow | WorkflowVersion:
    if source is None:
        if app.workflow is None:
            raise NotFound("This app has no workflow.")
        return app.workflow
    if source.workflow_version is None:
        raise NotFound(f"Version {source.number} has no workflow.")
    return source.workflow_version


# Keys


def app_keys(app: App) -> QuerySet[ApiKey]:
    """The app's `app-` keys, newest first, revoked ones included."""
    return (
        ApiKey.objects.filter(kind=ApiKey.Kind.APP, app_id=app.pk)
        .select_related("created_by")
        .order_by("-created_at")
    )


def access_key(app: App, key_id: Any) -> ApiKey:
    """One of the app's keys, or 404."""
    pk = _uuid(key_id)
    key = app_keys(app).filter(pk=pk).first() if pk else None
    if key is None:
        raise NotFound("No such key of this app.")
    return key


# Logs


@dataclass(frozen=True)
class LogFilters:
    """What a log list is narrowed to; every part is optional."""

    app: App | None = None
    end_user_id: uuid.UUID | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    rating: str | None = None  # like, dislike, none
    status: str | None = None  # a Message status
    source: str | None = None  # api, portal, console


def _rated(link: str, rating: str) -> Q:
    """Rows with (like, dislike) or without (none) a rating, whoever gave it."""
    feedbacks = MessageFeedback.dangerously_unscoped.filter(**{link: OuterRef("pk")})
    if rating == "none":
        return ~Q(Exists(feedbacks))
    return Q(Exists(feedbacks.filter(rating=rating)))


def _rating_by(source: str) -> Subquery:
    rows = MessageFeedback.dangerously_unscoped.filter(
        message=OuterRef("pk"), source=source
    ).values("rating")[:1]
    return Subquery(rows)


def rated_messages(found: QuerySet[Message]) -> QuerySet[Message]:
    """Messages with their end user's and a member's ratings (`user_rating`,
    `admin_rating`: like, dislike or None)."""
    return found.annotate(
        user_rating=_rating_by(MessageFeedback.From.USER),
        admin_rating=_rating_by(MessageFeedback.From.ADMIN),
    )


def counted_conversations(found: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Conversations with their numbers of messages, likes and dislikes."""
    return found.annotate(
        message_total=_count(Message, "conversation"),
        likes=_count(MessageFeedback, "conversation", rating=MessageFeedback.Rating.LIKE),
        dislikes=_count(MessageFeedback, "conversation", rating=MessageFeedback.Rating.DISLIKE),
    )


def conversations(filters: LogFilters) -> QuerySet[Conversation]:
    """The tenant's conversations (deleted ones included: logs keep them), newest first."""
    found = Conversation.objects.select_related("end_user")
    if filters.app is not None:
        found = found.filter(app=filters.app)
    if filters.end_user_id is not None:
        found = found.filter(end_user_id=filters.end_user_id)
    if filters.since is not None:
        found = found.filter(created_at__gte=filters.since)
    if filters.until is not None:
        found = found.filter(created_at__lt=filters.until)
    if filters.rating:
        found = found.filter(_rated("conversation", filters.rating))
    if filters.status:
        having = Message.dangerously_unscoped.filter(
            conversation=OuterRef("pk"), status=filters.status
        )
        found = found.filter(Exists(having))
    if filters.source:
        found = found.filter(source=filters.source)
    return counted_conversations(found).order_by("-created_at", "pk")


def _feedbacks_of_message() -> QuerySet[MessageFeedback]:
    return MessageFeedback.objects.select_related("end_user", "created_by").order_by("source")


def conversation_turns() -> Prefetch:
    """A conversation's messages in order, each with its agent steps and ratings."""
    ordered = (
        Message.objects.select_related("end_user")
        .prefetch_related(
            Prefetch("agent_thoughts", queryset=MessageAgentThought.objects.order_by("position")),
            Prefetch("feedbacks", queryset=_feedbacks_of_message()),
        )
        .order_by("created_at", "pk")
    )
    return Prefetch("messages", queryset=ordered)


def access_conversation(conversation_id: Any) -> Conversation:
    """The tenant's conversation with its messages, agent steps and ratings, or 404."""
    pk = _uuid(conversation_id)
    found = (
        counted_conversations(Conversation.objects.filter(pk=pk))
        .select_related("app", "end_user", "created_by")
        .prefetch_related(conversation_turns())
        .first()
        if pk
        else None
    )
    if found is None:
        raise NotFound("No such conversation.")
    return found


def messages(filters: LogFilters, *, conversation: Conversation | None = None) -> QuerySet[Message]:
    """The tenant's messages, newest first, with their ratings."""
    found = Message.objects.select_related("end_user")
    if filters.app is not None:
        found = found.filter(app=filters.app)
    if conversation is not None:
        found = found.filter(conversation=conversation)
    if filters.end_user_id is not None:
        found = found.filter(end_user_id=filters.end_user_id)
    if filters.since is not None:
        found = found.filter(created_at__gte=filters.since)
    if filters.until is not None:
        found = found.filter(created_at__lt=filters.until)
    if filters.rating:
        found = found.filter(_rated("message", filters.rating))
    if filters.status:
        found = found.filter(status=filters.status)
    if filters.source:
        found = found.filter(source=filters.source)
    return rated_messages(found).order_by("-created_at", "pk")


def access_message(message_id: Any) -> Message:
    """The tenant's message with its agent steps and ratings, or 404."""
    pk = _uuid(message_id)
    found = (
        Message.objects.filter(pk=pk)
        .select_related("app", "end_user", "conversation", "created_by")
        .prefetch_related(
            Prefetch("agent_thoughts", queryset=MessageAgentThought.objects.order_by("position")),
            Prefetch("feedbacks", queryset=_feedbacks_of_message()),
        )
        .first()
        if pk
        else None
    )
    if found is None:
        raise NotFound("No such message.")
    return found


def feedbacks(
    *, app: App | None = None, rating: str | None = None, source: str | None = None
) -> QuerySet[MessageFeedback]:
    """The tenant's ratings, newest first."""
    found = MessageFeedback.objects.select_related("end_user", "created_by")
    if app is not None:
        found = found.filter(app=app)
    if rating:
        found = found.filter(rating=rating)
    if source:
        found = found.filter(source=source)
    return found.order_by("-created_at", "pk")
