"""Ratings of answers: one by the end user who asked, one by a member reviewing it."""

from __future__ import annotations

from django.db import transaction

from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, NotFound
from tenants.models import User

from ..models import EndUser, Message, MessageFeedback

MESSAGE_NOT_FOUND = "Message Not Exists."
MAX_CONTENT = 10_000


def feedback_set(
    *,
    message: Message,
    rating: str | None,
    content: str = "",
    source: str = MessageFeedback.From.USER,
    end_user: EndUser | None = None,
    user: User | None = None,
) -> MessageFeedback | None:
    """Rate the answer `like` or `dislike` (replacing this source's earlier rating), or clear
    the rating with None. The end user's rating is theirs to give only on their own messages
    (NotFound otherwise, as for a missing one); a member's needs the member."""
    if rating is not None and rating not in MessageFeedback.Rating.values:
        raise InvalidInput("rating: expected like, dislike or null.")
    if source not in MessageFeedback.From.values:
        raise InvalidInput(f"source: expected one of {', '.join(MessageFeedback.From.values)}.")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise InvalidInput("content: expected text.")
    if len(content) > MAX_CONTENT:
        raise InvalidInput(f"content: at most {MAX_CONTENT:,} characters.")
    if source == MessageFeedback.From.USER:
        mine = (
            message.end_user_id == end_user.pk
            if end_user is not None
            else user is not None
            and message.end_user_id is None
            and message.created_by_id == user.pk
        )
        if not mine:
            raise NotFound(MESSAGE_NOT_FOUND)
    elif user is None:
        raise InvalidInput("user: a member's rating needs the member.")
    with tenant_context(message.tenant), transaction.atomic():
        # Two first ratings at once would both find none and both insert: the message's row
        # lock puts them one after the other.
        Message.objects.select_for_update().filter(pk=message.pk).first()
        existing = (
            MessageFeedback.objects.select_for_update()
            .filter(message=message, source=source)
            .first()
        )
        if rating is None:
            if existing is not None:
                existing.delete()
            return None
        feedback = existing or MessageFeedback(
            tenant=message.tenant,
            message=message,
            app_id=message.app_id,
            conversation_id=message.conversation_id,
            source=source,
        )
        feedback.rating = rating
        feedback.content = content
        feedback.end_user = end_user if source == MessageFeedback.From.USER else None
        feedback.created_by = user
        feedback.save()
    return feedback
