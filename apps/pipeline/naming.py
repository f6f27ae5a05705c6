"""Short model calls around an answer: a conversation's name, and the questions a user may ask
next (Dify's "suggested questions after answer").

Both use the app's model (chat, agent-chat and completion apps) or the tenant's default chat
model (chatflow apps). The built-in offline model only quotes its context, so it writes neither:
a conversation is then named after the first words of its query, and no questions are
suggested.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from asgiref.sync import sync_to_async

from providers import services as models_runtime
from providers.models import Model, ModelKind, ProviderKind
from providers.runtime.types import ChatMessage
from providers.selectors import default_model
from tenants.context import tenant_context
from tenants.exceptions import WeftError
from workflows.nodes.calls import resolve_model
from workflows.nodes.prompts import parse_json

from ..config import parse_config
from ..models import App, Conversation, Message
from .prompts import history_text, previous_turns

logger = logging.getLogger(__name__)

NEW_CONVERSATION = "New conversation"
NAME_WORDS = 8
MAX_NAME_CHARS = 60
MAX_QUESTION_CHARS = 200
QUESTIONS = 3
# What the model is shown of a long query or answer.
EXCERPT_CHARS = 2000

NAME_PROMPT = (
    "Write a title for a conversation that begins with the user's message below: at most six "
    "words, in the language of the message. Answer with the title only, without quotes or "
    "punctuation at the end."
)
QUESTIONS_PROMPT = (
    "Suggest the three questions the user is most likely to ask next in this conversation. "
    "Each is short (under 20 words) and in the language of the conversation. Answer with a "
    'JSON array of three strings and nothing else, like ["…", "…", "…"].'
)
QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"
QUESTION_MARKS = ("?", "\uff1f")  # and the full-width one of Chinese and Japanese
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s*")
_LABEL = re.compile(r"^(?:title|name)\s*:\s*", re.IGNORECASE)


def first_words(query: str) -> str:
    """A name from the query itself: its first words."""
    words = query.split()
    name = " ".join(words[:NAME_WORDS])
    if len(name) > MAX_NAME_CHARS:
        name = name[: MAX_NAME_CHARS - 1].rstrip() + "…"
    elif len(words) > NAME_WORDS:
        name += "…"
    return name or NEW_CONVERSATION


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def model_for(app: App, config: dict[str, Any] | None) -> Model:
    """The model these calls use (tenant context required)."""
    if config is not None and not app.runs_workflow:
        settings = parse_config(config).model
        model, _ = resolve_model(
            tenant=app.tenant, kind=ModelKind.CHAT, provider=settings.provider, name=settings.name
        )
        return model
    return default_model(ModelKind.CHAT)


async def _ask(app: App, model: Model, messages: list[ChatMessage], max_tokens: int) -> str:
    text, _ = await models_runtime.chat_text(
        tenant=app.tenant,
        messages=messages,
        model=model,
        max_tokens=max_tokens,
        temperature=0.2,
        app_id=app.pk,
    )
    return text


async def generate_name(*, app: App, config: dict[str, Any] | None, query: str) -> str:
    """A conversation name for this first query: the model's, else its first words."""
    model = await sync_to_async(_model_in_context)(app, config)
    if model.provider == ProviderKind.OFFLINE:
        return first_words(query)
    try:
        text = await _ask(
            app,
            model,
            [ChatMessage("system", NAME_PROMPT), ChatMessage("user", _excerpt(query))],
            max_tokens=32,
        )
    except WeftError as exc:
        logger.info("conversation name not generated (%s); first words used", exc.code)
        return first_words(query)
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    name = _LABEL.sub("", line).strip().strip(QUOTES).rstrip(".").strip()
    if not name:
        return first_words(query)
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1].rstrip() + "…"


def _model_in_context(app: App, config: dict[str, Any] | None) -> Model:
    with tenant_context(app.tenant):
        return model_for(app, config)


def parse_questions(text: str) -> list[str]:
    """Up to three questions from a model's answer: a JSON array (bare, fenced or inside an
    object), else its lines without list marks."""
    found: Any
    try:
        found = parse_json(text)
    except ValueError:
        found = None
    if isinstance(found, dict):
        found = next((v for v in found.values() if isinstance(v, list)), None)
    if isinstance(found, list):
        items = [str(item) for item in found if isinstance(item, str | int | float)]
    else:
        items = [_LIST_MARK.sub("", line) for line in text.splitlines()]
        items = [item for item in items if item.strip().endswith(QUESTION_MARKS)]
    questions = []
    for item in items:
        item = item.strip().strip("\"'")
        if item and item not in questions:
            questions.append(item[:MAX_QUESTION_CHARS])
    return questions[:QUESTIONS]


def _conversation_so_far(message: Message) -> tuple[App, dict[str, Any] | None, Model, str]:
    with tenant_context(message.tenant):
        app = message.app
        version = message.app_version
        config = None if app.runs_workflow else (version.config if version else app.config)
        model = model_for(app, config)
        turns = previous_turns(message, 2)
    turns += [ChatMessage("user", message.query), ChatMessage("assistant", message.answer)]
    shown = [ChatMessage(m.role, _excerpt(m.content)) for m in turns]
    return app, config, model, history_text(shown)


async def questions_after(message: Message) -> list[str]:
    """Three questions the user may ask after this answer ([] when the model cannot say)."""
    app, _config, model, conversation = await sync_to_async(_conversation_so_far)(message)
    if model.provider == ProviderKind.OFFLINE or not message.answer:
        return []
    try:
        text = await _ask(
            app,
            model,
            [ChatMessage("system", QUESTIONS_PROMPT), ChatMessage("user", conversation)],
            max_tokens=256,
        )
    except WeftError as exc:
        logger.info("suggested questions not generated (%s)", exc.code)
        return []
    return parse_questions(text)


def save_name(conversation_id: uuid.UUID | str, name: str, *, only_if: str | None = None) -> bool:
    """Set a conversation's name (only while it is still `only_if`, when given)."""
    rows = Conversation.dangerously_unscoped.filter(pk=conversation_id)
    if only_if is not None:
        rows = rows.filter(name=only_if)
    return bool(rows.update(name=name[:255]))
