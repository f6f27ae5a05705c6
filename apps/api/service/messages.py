"""Messages: a conversation's history (`GET /messages`), feedback on an answer and the
app's feedback list, and suggested follow-up questions."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from knowledge.api.base import text_field
from tenants.aio import database
from tenants.exceptions import Forbidden, InvalidInput

from ... import selectors
from ...models import MessageFeedback
from ...pipeline import SuggestionsDisabled, suggested_questions
from ...services.feedback import feedback_set
from .base import Caller, int_param, json_body, ok, require_chat, uses_user
from .shapes import feedback_json, message_json

MAX_FEEDBACK_CHARS = 10_000


@uses_user("query")
def message_list(request: HttpRequest, caller: Caller) -> HttpResponse:
    """Dify's history of one conversation: newest page first, each page oldest first."""
    require_chat(caller.app)
    conversation_id = request.GET.get("conversation_id", "").strip()
    if not conversation_id:
        raise InvalidInput("conversation_id: this field is required.")
    conversation = selectors.access_conversation(
        app=caller.app, end_user=caller.known_end_user(), conversation_id=conversation_id
    )
    page = selectors.message_page(
        conversation=conversation,
        first_id=request.GET.get("first_id") or None,
        limit=int_param(request, "limit", 20),
    )
    return ok(
        {
            "limit": page.limit,
            "has_more": page.has_more,
            "data": [message_json(message) for message in page.data],
        }
    )


@uses_user("json")
def feedback_create(request: HttpRequest, caller: Caller, message_id: str) -> HttpResponse:
    """Rate an answer (`like`, `dislike`, or null to take the rating back)."""
    body = json_body(request)
    rating = body.get("rating")
    if rating not in (None, *MessageFeedback.Rating.values):
        raise InvalidInput("rating: must be like, dislike or null.")
    content = text_field(body, "content", max_length=MAX_FEEDBACK_CHARS) or ""
    end_user = caller.known_end_user()
    message = selectors.access_message(app=caller.app, end_user=end_user, message_id=message_id)
    feedback_set(
        message=message,
        rating=rating,
        content=content,
        source=MessageFeedback.From.USER,
        end_user=end_user,
    )
    return ok({"result": "success"})


def feedback_list(request: HttpRequest, caller: Caller) -> HttpResponse:
    """Every rating of the app's answers, newest first (Dify's `page` and `limit`)."""
    rows = selectors.feedback_page(
        app=caller.app, page=int_param(request, "page", 1), limit=int_param(request, "limit", 20)
    )
    return ok({"data": [feedback_json(row) for row in rows]})


@uses_user("query")
async def suggested(request: HttpRequest, caller: Caller, message_id: str) -> HttpResponse:
    """Follow-up questions after an answer, when the app offers them."""

    def find():
        require_chat(caller.app)
        return selectors.access_message(
            app=caller.app, end_user=caller.known_end_user(), message_id=message_id
        )

    message = await database(find)()
    try:
        questions = await suggested_questions(message)
    except SuggestionsDisabled as exc:
        raise Forbidden(
            "Function Suggested questions after answer disabled.",
            code="app_suggested_questions_after_answer_disabled",
        ) from exc
    return ok({"result": "success", "data": questions})
