"""Apps management API: the logs. Conversations (with their messages), messages (with their
agent steps and ratings), feedback, and a member's rating of an answer.

All of it needs `app.logs` (operators and up). Lists are filtered by query parameters:
`app`, `end_user` (ids), `since` and `until` (ISO 8601), `rating` (like, dislike, none),
`status` (of a message; for conversations: having such a message) and `source`.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins
from rest_framework.response import Response

from tenants.exceptions import InvalidInput
from tenants.models import ApiKey, User
from workflows.api.base import choice_param

from ...models import Conversation, Message, MessageFeedback, Source
from ...services.feedback import feedback_set
from . import selectors
from . import serializers as s
from .base import AppScopedViewSet, log_filters, uuid_param
from .selectors import RATINGS

LOGS = {"list": "logs", "retrieve": "logs"}
FILTERS = [
    OpenApiParameter("app", str, description="An app's id."),
    OpenApiParameter("end_user", str, description="An end user's id (`end_user_id`)."),
    OpenApiParameter("since", str, description="From this time on (ISO 8601, UTC if no zone)."),
    OpenApiParameter("until", str, description="Before this time."),
    OpenApiParameter("rating", enum=list(RATINGS), description="none: not rated at all."),
    OpenApiParameter("status", enum=Message.Status.values),
    OpenApiParameter("source", enum=Source.values),
]


class ConversationViewSet(mixins.ListModelMixin, AppScopedViewSet):
    """Conversations of the tenant's apps, deleted ones included (their users deleted them
    from their own lists; the logs keep them)."""

    model = Conversation
    serializer_class = s.ConversationRow
    permission_actions = LOGS

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        return selectors.conversations(log_filters(self.request))

    @extend_schema(parameters=FILTERS)
    def list(self, request, *args, **kwargs):
        """Conversations, newest first, with their numbers of messages, likes and dislikes;
        `status` keeps those with a message of that status."""
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=s.ConversationOut)
    def retrieve(self, request, pk=None):
        """The conversation with every turn, oldest first: query, answer, status, error,
        tokens, cost, latency, agent steps, retrieval sources and ratings."""
        return Response(s.ConversationOut(selectors.access_conversation(pk)).data)


class MessageViewSet(mixins.ListModelMixin, AppScopedViewSet):
    """Messages of the tenant's apps, and a member's rating of one."""

    model = Message
    serializer_class = s.MessageRow
    permission_actions = {**LOGS, "rate": "logs"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        conversation = None
        conversation_id = uuid_param(self.request, "conversation")
        if conversation_id is not None:
            conversation = Conversation.objects.filter(pk=conversation_id).first()
            if conversation is None:
                raise InvalidInput(
                    f"conversation: no conversation with id {conversation_id} in this tenant."
                )
        return selectors.messages(log_filters(self.request), conversation=conversation)

    @extend_schema(
        parameters=[
            *FILTERS,
            OpenApiParameter("conversation", str, description="A conversation's id."),
        ]
    )
    def list(self, request, *args, **kwargs):
        """Messages, newest first, with the end user's and a member's ratings."""
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=s.MessageOut)
    def retrieve(self, request, pk=None):
        """The message with its files, retrieval sources, agent steps and ratings."""
        return Response(s.MessageOut(selectors.access_message(pk)).data)

    def member(self) -> User | None:
        """Who rates: the console user, or the member who created the management key."""
        if self.user is not None:
            return self.user
        key = self.request.auth
        return key.created_by if isinstance(key, ApiKey) else None

    @extend_schema(request=s.RatingIn, responses=s.MessageOut)
    def rate(self, request, pk=None):
        """A member's rating of the answer (like, dislike, or null to clear it), kept apart
        from the end user's own."""
        message = selectors.access_message(pk)
        data = s.RatingIn(data=request.data)
        data.is_valid(raise_exception=True)
        member = self.member()
        if member is None:
            raise InvalidInput(
                "A member's rating needs a member: use a console session, or a management key "
                "a member created (it rates as that member)."
            )
        feedback_set(
            message=message,
            rating=data.validated_data["rating"],
            content=data.validated_data["content"],
            source=MessageFeedback.From.ADMIN,
            end_user=None,
            user=member,
        )
        return Response(s.MessageOut(selectors.access_message(pk)).data)


class FeedbackViewSet(mixins.ListModelMixin, AppScopedViewSet):
    """Ratings of answers, by end users and members."""

    model = MessageFeedback
    serializer_class = s.FeedbackOut
    permission_actions = {"list": "logs"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        app_id = uuid_param(self.request, "app")
        return selectors.feedbacks(
            app=selectors.app_named_in(app_id, param="app") if app_id else None,
            rating=choice_param(self.request, "rating", MessageFeedback.Rating.values),
            source=choice_param(self.request, "source", MessageFeedback.From.values),
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("app", str, description="An app's id."),
            OpenApiParameter("rating", enum=MessageFeedback.Rating.values),
            OpenApiParameter("source", enum=MessageFeedback.From.values),
        ]
    )
    def list(self, request, *args, **kwargs):
        """Ratings, newest first: `source` user (end users) or admin (members)."""
        return super().list(request, *args, **kwargs)
