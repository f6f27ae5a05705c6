"""Logs: conversations and messages, filtered by app, time, rating, status and end user; a
conversation's page with every turn (query, answer, status, error, agent steps, retrieval
sources, tokens, cost, latency, time to first token, ratings); and a member's rating of an
answer (like, dislike, clear) through apps.services.feedback. All of it needs `app.logs`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.http import Http404, HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from tenants.context import tenant_context
from tenants.exceptions import WeftError
from tenants.http import SignedInRequest

from ..api.manage.selectors import conversation_turns, counted_conversations, rated_messages
from ..models import App, Conversation, EndUser, Message, MessageAgentThought, MessageFeedback
from ..services.feedback import feedback_set
from .base import AppConsoleAdmin, cost_shown, logs_url, pretty

SHORT = 80
RANGES = {
    "1h": ("Last hour", dt.timedelta(hours=1)),
    "24h": ("Last 24 hours", dt.timedelta(hours=24)),
    "7d": ("Last 7 days", dt.timedelta(days=7)),
    "30d": ("Last 30 days", dt.timedelta(days=30)),
    "90d": ("Last 90 days", dt.timedelta(days=90)),
}


class AppFilter(admin.SimpleListFilter):
    """Filter by app, offering the apps the list may show."""

    title = "app"
    parameter_name = "app"

    def lookups(self, request, model_admin):
        apps = App.dangerously_unscoped.all() if request.user.is_superuser else App.objects.all()
        return [(str(pk), name) for pk, name in apps.order_by("name").values_list("pk", "name")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(app_id=uuid.UUID(value))
        except ValueError:
            return queryset.none()


class TimeFilter(admin.SimpleListFilter):
    """Since when (the date hierarchy above the list picks a day, month or year)."""

    title = "time"
    parameter_name = "since"

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in RANGES.items()]

    def queryset(self, request, queryset):
        chosen = RANGES.get(self.value() or "")
        if chosen is None:
            return queryset
        return queryset.filter(created_at__gte=timezone.now() - chosen[1])


class RatingFilter(admin.SimpleListFilter):
    """Rated like or dislike (by the end user or a member), or not rated at all."""

    title = "rating"
    parameter_name = "rating"
    link = "message"

    def lookups(self, request, model_admin):
        return [("like", "Liked"), ("dislike", "Disliked"), ("none", "Not rated")]

    def queryset(self, request, queryset):
        value = self.value()
        if value not in ("like", "dislike", "none"):
            return queryset
        feedbacks = MessageFeedback.dangerously_unscoped.filter(**{self.link: OuterRef("pk")})
        if value == "none":
            return queryset.filter(~Exists(feedbacks))
        return queryset.filter(Exists(feedbacks.filter(rating=value)))


class ConversationRatingFilter(RatingFilter):
    link = "conversation"


class StatusFilter(admin.SimpleListFilter):
    """Conversations with a message of this status."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return Message.Status.choices

    def queryset(self, request, queryset):
        if self.value() not in Message.Status.values:
            return queryset
        having = Message.dangerously_unscoped.filter(
            conversation=OuterRef("pk"), status=self.value()
        )
        return queryset.filter(Exists(having))


class EndUserFilter(admin.SimpleListFilter):
    """One end user's rows (reached from an end user's link in a list)."""

    title = "end user"
    parameter_name = "end_user"

    def lookups(self, request, model_admin):
        value = self.value()
        try:
            pk = uuid.UUID(value or "")
        except ValueError:
            return []
        end_users = (
            EndUser.dangerously_unscoped if request.user.is_superuser else EndUser.objects
        ).filter(pk=pk)
        return [(str(user.pk), str(user)) for user in end_users]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(end_user_id=uuid.UUID(value))
        except ValueError:
            return queryset.none()


def end_user_link(admin_name: str, row: Conversation | Message) -> str:
    """Who: the end user (a link to their rows), or the member who asked."""
    if row.end_user is not None:
        url = f"{reverse(f'admin:apps_{admin_name}_changelist')}?end_user={row.end_user_id}"
        return format_html('<a href="{}">{}</a>', url, row.end_user)
    return "member" if row.created_by_id else "—"


def rating_shown(rating: str | None) -> str:
    return {"like": "👍", "dislike": "👎"}.get(rating or "", "")


class LogsAdmin(AppConsoleAdmin):
    """Read-only rows of the logs; nobody adds, changes or deletes them here."""

    view_action = "logs"

    def _allowed(self, request, action: str | None, obj=None) -> bool:
        return super()._allowed(request, action, getattr(obj, "app", None))

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request, "logs", obj)

    def has_module_permission(self, request) -> bool:
        return self._allowed(request, "logs")


@admin.register(Conversation)
class ConversationAdmin(LogsAdmin):
    list_display = [
        "started",
        "app",
        "title",
        "who",
        "source",
        "message_count",
        "ratings",
        "updated_at",
    ]
    list_filter = [
        AppFilter,
        TimeFilter,
        ConversationRatingFilter,
        StatusFilter,
        EndUserFilter,
        "source",
        "is_deleted",
    ]
    list_select_related = ["app", "end_user"]
    search_fields = ["name", "end_user__session_id"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return counted_conversations(super().get_queryset(request))

    @admin.display(description="started", ordering="created_at")
    def started(self, conversation: Conversation):
        return conversation.created_at

    @admin.display(description="conversation")
    def title(self, conversation: Conversation) -> str:
        return conversation.name or "(unnamed)"

    @admin.display(description="who")
    def who(self, conversation: Conversation) -> str:
        return end_user_link("conversation", conversation)

    @admin.display(description="messages", ordering="message_total")
    def message_count(self, conversation: Conversation) -> int:
        return getattr(conversation, "message_total", 0)

    @admin.display(description="ratings")
    def ratings(self, conversation: Conversation) -> str:
        likes, dislikes = getattr(conversation, "likes", 0), getattr(conversation, "dislikes", 0)
        parts = [f"👍 {likes}" if likes else "", f"👎 {dislikes}" if dislikes else ""]
        return " ".join(part for part in parts if part) or "—"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The conversation, turn by turn."""
        with tenant_context(self._object_tenant(request, object_id)):
            conversation = self._conversation(request, object_id)
            turns = list(conversation.messages.all())
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"Conversation: {conversation.name or conversation.pk}",
                "conversation": conversation,
                "original": conversation,
                "app": conversation.app,
                "app_url": reverse("admin:apps_app_change", args=[conversation.app_id]),
                "turns": [turn_of(message) for message in turns],
                "inputs": pretty(conversation.inputs) if conversation.inputs else "",
                "variables": pretty(conversation.variables) if conversation.variables else "",
                "list_url": logs_url(conversation.app),
                "may_rate": self._allowed(request, "logs", conversation),
            }
            return TemplateResponse(request, "apps/conversation.html", context)

    def _conversation(self, request: HttpRequest, object_id: str) -> Conversation:
        try:
            pk = uuid.UUID(object_id)
        except ValueError as exc:
            raise Http404("Not found.") from exc
        found = (
            counted_conversations(self.get_queryset(request))
            .select_related("app", "end_user", "created_by")
            .prefetch_related(conversation_turns())
        )
        conversation = get_object_or_404(found, pk=pk)
        if not self._allowed(request, "logs", conversation):
            raise PermissionDenied
        return conversation


def turn_of(message: Message) -> dict[str, Any]:
    """A message as a conversation page shows it."""
    thoughts: list[MessageAgentThought] = list(message.agent_thoughts.all())
    feedbacks = {f.source: f for f in message.feedbacks.all()}
    return {
        "message": message,
        "thoughts": thoughts,
        "sources": [source_of(item) for item in message.retriever_resources or []],
        "cost": cost_shown(message.total_price, message.currency),
        "user_feedback": feedbacks.get(MessageFeedback.From.USER),
        "admin_feedback": feedbacks.get(MessageFeedback.From.ADMIN),
        "inputs": pretty(message.inputs) if message.inputs and not message.conversation_id else "",
        "files": pretty(message.files) if message.files else "",
    }


def source_of(item: Any) -> dict[str, Any]:
    """One retrieval source (Dify's `retriever_resources` item) as the page shows it."""
    if not isinstance(item, dict):
        return {"title": str(item), "score": None, "content": ""}
    title = " · ".join(
        str(part) for part in (item.get("dataset_name"), item.get("document_name")) if part
    )
    score = item.get("score")
    return {
        "title": title or str(item.get("segment_id") or "source"),
        "score": score if isinstance(score, int | float) else None,
        "content": str(item.get("content") or ""),
    }


@admin.register(Message)
class MessageAdmin(LogsAdmin):
    list_display = [
        "sent",
        "app",
        "query_shown",
        "answer_shown",
        "status",
        "who",
        "tokens",
        "cost",
        "latency_shown",
        "first_token",
        "rating",
    ]
    list_filter = [AppFilter, TimeFilter, RatingFilter, "status", EndUserFilter, "source"]
    list_select_related = ["app", "end_user"]
    search_fields = ["query", "answer", "end_user__session_id"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return rated_messages(super().get_queryset(request))

    @admin.display(description="sent", ordering="created_at")
    def sent(self, message: Message):
        return message.created_at

    @admin.display(description="query")
    def query_shown(self, message: Message) -> str:
        return Truncator(message.query).chars(SHORT)

    @admin.display(description="answer")
    def answer_shown(self, message: Message) -> str:
        return Truncator(message.error or message.answer).chars(SHORT)

    @admin.display(description="who")
    def who(self, message: Message) -> str:
        return end_user_link("message", message)

    @admin.display(description="tokens")
    def tokens(self, message: Message) -> int:
        return message.total_tokens

    @admin.display(description="cost", ordering="total_price")
    def cost(self, message: Message) -> str:
        return cost_shown(message.total_price, message.currency)

    @admin.display(description="latency", ordering="latency")
    def latency_shown(self, message: Message) -> str:
        return f"{message.latency:.2f} s"

    @admin.display(description="first token", ordering="time_to_first_token")
    def first_token(self, message: Message) -> str:
        ttft = message.time_to_first_token
        return f"{ttft:.2f} s" if ttft is not None else "—"

    @admin.display(description="rating")
    def rating(self, message: Message) -> str:
        user = rating_shown(getattr(message, "user_rating", None))
        member = rating_shown(getattr(message, "admin_rating", None))
        parts = [f"user {user}" if user else "", f"member {member}" if member else ""]
        return " · ".join(part for part in parts if part) or "—"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/rate/",
                self.admin_site.admin_view(self.rate_view),
                name="apps_message_rate",
            ),
            *super().get_urls(),
        ]

    def _message(self, request: HttpRequest, object_id: str) -> Message:
        try:
            pk = uuid.UUID(object_id)
        except ValueError as exc:
            raise Http404("Not found.") from exc
        found = (
            self.get_queryset(request)
            .select_related("app", "end_user", "conversation", "created_by")
            .prefetch_related("agent_thoughts", "feedbacks")
        )
        message = get_object_or_404(found, pk=pk)
        if not self._allowed(request, "logs", message):
            raise PermissionDenied
        return message

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """One message as its conversation page shows it, with a link to the conversation."""
        with tenant_context(self._object_tenant(request, object_id)):
            message = self._message(request, object_id)
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"Message: {Truncator(message.query).chars(SHORT) or message.pk}",
                "message": message,
                "original": message,
                "app": message.app,
                "app_url": reverse("admin:apps_app_change", args=[message.app_id]),
                "turns": [turn_of(message)],
                "list_url": logs_url(message.app, "message"),
                "conversation_url": reverse(
                    "admin:apps_conversation_change", args=[message.conversation_id]
                )
                if message.conversation_id
                else "",
                "may_rate": self._allowed(request, "logs", message),
            }
            return TemplateResponse(request, "apps/message.html", context)

    def rate_view(self, request: SignedInRequest, object_id: str):
        """A member's rating: like, dislike, or clear; back to where it was given."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        with tenant_context(self._object_tenant(request, object_id)):
            message = self._message(request, object_id)
            choice = request.POST.get("rating", "")
            if message.conversation_id:
                back = reverse("admin:apps_conversation_change", args=[message.conversation_id])
            else:
                back = reverse("admin:apps_message_change", args=[message.pk])
            back = f"{back}#turn-{message.pk}"
            if choice not in ("like", "dislike", "clear"):
                self.message_user(request, "Choose like, dislike or clear.", messages.ERROR)
                return HttpResponseRedirect(back)
            try:
                feedback_set(
                    message=message,
                    rating=None if choice == "clear" else choice,
                    content=request.POST.get("content", "").strip(),
                    source=MessageFeedback.From.ADMIN,
                    end_user=None,
                    user=request.user,
                )
            except WeftError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                done = "Cleared your rating." if choice == "clear" else f"Rated it {choice}."
                self.message_user(request, done, messages.SUCCESS)
            return HttpResponseRedirect(back)
