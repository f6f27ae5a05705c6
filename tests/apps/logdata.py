"""Conversations, messages, ratings and agent steps as the pipeline leaves them, written
straight to the database for the console and management API tests of the logs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.models import App, Conversation, Message, MessageAgentThought, MessageFeedback, Source
from apps.services.end_users import end_user_for


def make_conversation(app: App, user: str = "alice", **fields: Any) -> Conversation:
    """A conversation of an end user with the app, as the pipeline leaves one."""
    end_user = end_user_for(app=app, session_id=user) if user else None
    fields.setdefault("name", f"{user}'s questions")
    return Conversation.dangerously_unscoped.create(
        tenant=app.tenant, app=app, end_user=end_user, source=Source.API, **fields
    )


def make_message(
    app: App,
    conversation: Conversation | None = None,
    *,
    query: str = "How many days of leave?",
    answer: str = "25 days a year.",
    status: str = Message.Status.NORMAL,
    ago: dt.timedelta | None = None,
    **fields: Any,
) -> Message:
    """A finished turn with tokens, cost and timings; `ago` moves it back in time."""
    fields.setdefault("end_user", conversation.end_user if conversation else None)
    message = Message.dangerously_unscoped.create(
        tenant=app.tenant,
        app=app,
        conversation=conversation,
        query=query,
        answer=answer,
        status=status,
        message_tokens=12,
        answer_tokens=30,
        total_price=Decimal("0.0012"),
        latency=1.25,
        time_to_first_token=0.4,
        model_provider="offline",
        model_name="weft-offline-chat",
        **fields,
    )
    if ago is not None:
        moved = timezone.now() - ago
        Message.dangerously_unscoped.filter(pk=message.pk).update(created_at=moved)
        if conversation is not None:
            Conversation.dangerously_unscoped.filter(pk=conversation.pk).update(created_at=moved)
        message.created_at = moved
    return message


def rate(message: Message, rating: str, source: str = MessageFeedback.From.USER, **fields: Any):
    return MessageFeedback.dangerously_unscoped.create(
        tenant=message.tenant,
        message=message,
        app=message.app,
        conversation=message.conversation,
        rating=rating,
        source=source,
        end_user=message.end_user if source == MessageFeedback.From.USER else None,
        **fields,
    )


def agent_turn(app: App, conversation: Conversation) -> Message:
    """An agent's answer with two steps (a tool call, then the answer) and two sources."""
    message = make_message(
        app,
        conversation,
        query="What time is it in Tokyo?",
        answer="It is 9:00 in Tokyo.",
        agent_based=True,
        retriever_resources=[
            {
                "dataset_name": "Handbook",
                "document_name": "leave.md",
                "score": 0.873,
                "content": "Staff get 25 days of leave.",
            },
            {"dataset_name": "Handbook", "document_name": "time.md", "content": "Offices …"},
        ],
    )
    for position, (tool, tool_input, observation) in enumerate(
        [("current_time", '{"timezone": "Asia/Tokyo"}', "09:00"), ("", "", "")], start=1
    ):
        MessageAgentThought.dangerously_unscoped.create(
            tenant=app.tenant,
            message=message,
            position=position,
            thought="I should look at the clock." if tool else "Now I can answer.",
            tool=tool,
            tool_input=tool_input,
            observation=observation,
            tokens=7,
            latency=0.2,
        )
    return message


CHAT_EXPORT = """\
version: 0.1.5
kind: app
app:
  name: Handbook helper
  mode: chat
  icon: 📘
model_config:
  model:
    provider: langgenius/openai/openai
    name: gpt-4o-mini
    mode: chat
    completion_params: {temperature: 0.2}
  pre_prompt: You answer questions about the handbook.
  opening_statement: Hello!
"""
