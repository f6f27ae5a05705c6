"""Output shapes of the Service API: Weft's rows in Dify's field names, as plain dicts.

Times are unix seconds (Dify's `TimestampField`) except where Dify itself sends text, ids
are strings."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from workflows.models import WorkflowRun

from ...models import (
    App,
    Conversation,
    EndUser,
    Message,
    MessageAgentThought,
    MessageFeedback,
    UploadFile,
)

SYSTEM_INPUTS = "__system"  # where a run keeps its sys.* values, beside the inputs


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def _id(value: object) -> str | None:
    return str(value) if value is not None else None


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.pk),
        "name": conversation.name,
        "inputs": conversation.inputs,
        "status": "normal",
        "introduction": conversation.introduction,
        "created_at": unix(conversation.created_at),
        "updated_at": unix(conversation.updated_at),
    }


def thought_json(thought: MessageAgentThought) -> dict[str, Any]:
    return {
        "id": str(thought.pk),
        "chain_id": None,
        "message_id": str(thought.message_id),
        "position": thought.position,
        "thought": thought.thought,
        "tool": thought.tool,
        "tool_labels": {},
        "tool_input": thought.tool_input,
        "observation": thought.observation,
        "files": [item.get("id") for item in thought.message_files if isinstance(item, dict)],
        "created_at": unix(thought.created_at),
    }


def message_json(message: Message) -> dict[str, Any]:
    """A message as `GET /messages` lists it; `user_feedbacks` and `agent_thoughts` come
    prefetched by the selector."""
    feedbacks: list[MessageFeedback] = getattr(message, "user_feedbacks", [])
    return {
        "id": str(message.pk),
        "conversation_id": _id(message.conversation_id),
        "parent_message_id": None,
        "inputs": message.inputs,
        "query": message.query,
        "answer": message.answer,
        "status": message.status,
        "error": message.error or None,
        "message_files": message.files,
        "feedback": {"rating": feedbacks[0].rating} if feedbacks else None,
        "retriever_resources": message.retriever_resources,
        "agent_thoughts": [thought_json(t) for t in message.agent_thoughts.all()],
        "created_at": unix(message.created_at),
    }


def feedback_json(feedback: MessageFeedback) -> dict[str, Any]:
    """A rating as `GET /app/feedbacks` lists it (Dify sends these two times as text)."""
    return {
        "id": str(feedback.pk),
        "app_id": str(feedback.app_id),
        "conversation_id": _id(feedback.conversation_id),
        "message_id": str(feedback.message_id),
        "rating": feedback.rating,
        "content": feedback.content or None,
        "from_source": feedback.source,
        "from_end_user_id": _id(feedback.end_user_id),
        "from_account_id": _id(feedback.created_by_id),
        "created_at": feedback.created_at.isoformat(),
        "updated_at": feedback.updated_at.isoformat(),
    }


def upload_json(upload: UploadFile) -> dict[str, Any]:
    return {
        "id": str(upload.pk),
        "name": upload.name,
        "size": upload.size,
        "extension": upload.extension,
        "mime_type": upload.mime_type,
        "created_by": _id(upload.created_by_end_user_id or upload.created_by_id),
        "created_at": unix(upload.created_at),
    }


def run_inputs(run: WorkflowRun) -> dict[str, Any]:
    """The inputs the caller gave, without the sys.* values kept beside them."""
    return {k: v for k, v in (run.inputs or {}).items() if k != SYSTEM_INPUTS}


def run_json(run: WorkflowRun) -> dict[str, Any]:
    """A run as `GET /workflows/run/{id}` shows it: `inputs` as a JSON string, as Dify."""
    return {
        "id": str(run.pk),
        "workflow_id": str(run.workflow_id),
        "status": run.status,
        "inputs": json.dumps(run_inputs(run), ensure_ascii=False, default=str),
        "outputs": run.outputs,
        "error": run.error or None,
        "total_steps": run.total_steps,
        "total_tokens": run.total_tokens,
        "created_at": unix(run.created_at),
        "finished_at": unix(run.finished_at),
        "elapsed_time": run.elapsed_time,
    }


def end_user_json(end_user: EndUser) -> dict[str, Any]:
    return {
        "id": str(end_user.pk),
        "type": end_user.kind,
        "is_anonymous": False,
        "session_id": end_user.session_id,
    }


def _created_from(run: WorkflowRun, end_user: EndUser | None) -> str:
    """Dify's origin of a logged run: its API, its web app (the portal), or Weft's own."""
    if end_user is not None:
        return "service-api" if end_user.kind == EndUser.Kind.SERVICE_API else "web-app"
    return run.triggered_from


def log_json(run: WorkflowRun, end_user: EndUser | None) -> dict[str, Any]:
    """A run as `GET /workflows/logs` lists it (Dify's workflow app log)."""
    from_member = run.created_by_id is not None
    return {
        "id": str(run.pk),
        "workflow_run": {
            "id": str(run.pk),
            "version": str(run.version.number) if run.version is not None else "draft",
            "status": run.status,
            "triggered_from": run.triggered_from,
            "error": run.error or None,
            "elapsed_time": run.elapsed_time,
            "total_tokens": run.total_tokens,
            "total_steps": run.total_steps,
            "exceptions_count": run.exceptions_count,
            "created_at": unix(run.created_at),
            "finished_at": unix(run.finished_at),
        },
        "created_from": _created_from(run, end_user),
        "created_by_role": "account" if from_member else "end_user",
        "created_by_account": (
            {"id": str(run.created_by_id), "name": run.created_by.name, "email": None}
            if from_member and run.created_by is not None
            else None
        ),
        "created_by_end_user": end_user_json(end_user) if end_user is not None else None,
        "created_at": unix(run.created_at),
    }


def info_json(app: App) -> dict[str, Any]:
    author = app.created_by
    return {
        "name": app.name,
        "description": app.description,
        "tags": [],
        "mode": app.mode,
        "author_name": (author.name or author.email) if author is not None else "",
    }


def site_json(app: App) -> dict[str, Any]:
    """Dify's web app settings: the app's portal site."""
    site = app.site
    return {
        "title": site.title,
        "chat_color_theme": site.chat_color_theme or None,
        "chat_color_theme_inverted": site.chat_color_theme_inverted,
        "icon_type": site.icon_type,
        "icon": site.icon,
        "icon_background": site.icon_background,
        "icon_url": None,
        "description": site.description,
        "copyright": site.copyright or None,
        "privacy_policy": site.privacy_policy or None,
        "custom_disclaimer": site.custom_disclaimer,
        "input_placeholder": site.input_placeholder,
        "default_language": site.default_language,
        "show_workflow_steps": site.show_workflow_steps,
        "use_icon_as_answer_icon": site.use_icon_as_answer_icon,
    }
