"""What a client reads about the app before it talks to it: `GET /parameters` (the input
form and the features), `/info`, `/meta` (tool icons) and `/site` (web app settings)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from workflows.dsl.nodes_data import StartVariable

from ...config import dump
from ...models import App
from ...services.apps import runnable
from .base import Caller, ok
from .shapes import info_json, site_json

MB = 1 << 20
UNKNOWN_TOOL_ICON = {"background": "#252525", "content": "🔧"}


def _start_form(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """A workflow's start variables as Dify's `user_input_form` (its old structure:
    `[{type: {variable, label, required, …}}]`)."""
    for node in graph.get("nodes") or []:
        data = node.get("data") or {}
        if data.get("type") == "start" and not node.get("parentId"):
            form = []
            for raw in data.get("variables") or []:
                variable = StartVariable.model_validate(raw).model_dump(
                    mode="json", exclude_none=True
                )
                form.append({variable["type"]: variable})
            return form
    return []


def parameters_json(app: App) -> dict[str, Any]:
    """Dify's `/parameters` of the version the API runs."""
    target = runnable(app)
    features = dump(target.features)
    if target.config is not None:
        form = features.get("user_input_form", [])
    else:
        assert target.workflow_version is not None  # noqa: S101 - workflow modes have one
        form = _start_form(target.workflow_version.graph)
    upload = features.get("file_upload") or {}
    limit_mb = max(1, settings.WEFT_UPLOAD_MAX_BYTES // MB)
    return {
        "opening_statement": features.get("opening_statement", ""),
        "suggested_questions": features.get("suggested_questions", []),
        "suggested_questions_after_answer": features.get(
            "suggested_questions_after_answer", {"enabled": False}
        ),
        "speech_to_text": features.get("speech_to_text", {"enabled": False}),
        "text_to_speech": features.get("text_to_speech", {"enabled": False}),
        "retriever_resource": features.get("retriever_resource", {"enabled": True}),
        "annotation_reply": features.get("annotation_reply", {"enabled": False}),
        "more_like_this": features.get("more_like_this", {"enabled": False}),
        "user_input_form": form,
        "sensitive_word_avoidance": features.get(
            "sensitive_word_avoidance", {"enabled": False, "type": "", "config": {}}
        ),
        "file_upload": {
            **upload,
            # Older clients read the image block alone.
            "image": {
                "enabled": bool(upload.get("enabled"))
                and "image" in (upload.get("allowed_file_types") or []),
                "number_limits": upload.get("number_limits", 3),
                "detail": "high",
                "transfer_methods": upload.get(
                    "allowed_file_upload_methods", ["local_file", "remote_url"]
                ),
            },
        },
        "system_parameters": {
            "file_size_limit": limit_mb,
            "image_file_size_limit": limit_mb,
            "audio_file_size_limit": limit_mb,
            "video_file_size_limit": limit_mb,
            "workflow_file_upload_limit": upload.get("number_limits", 3),
        },
    }


def parameters(request: HttpRequest, caller: Caller) -> HttpResponse:
    """The input form and the features of the published version."""
    return ok(parameters_json(caller.app))


def info(request: HttpRequest, caller: Caller) -> HttpResponse:
    """The app's name, description, mode and author."""
    return ok(info_json(caller.app))


def _tool_names(app: App) -> list[tuple[str, str]]:
    """(provider, tool) of each tool the published app may call."""
    version = app.published_version
    if version is None:
        return []
    found: list[tuple[str, str]] = []
    if version.workflow_version is not None:
        for node in version.workflow_version.graph.get("nodes") or []:
            data = node.get("data") or {}
            if data.get("type") == "tool":
                found.append((str(data.get("provider_id", "")), str(data.get("tool_name", ""))))
    else:
        tools = ((version.config or {}).get("agent_mode") or {}).get("tools") or []
        for tool in tools:
            if isinstance(tool, dict) and tool.get("enabled", True):
                found.append((str(tool.get("provider_id", "")), str(tool.get("tool_name", ""))))
    return found


def _icon(provider: str, tool: str) -> dict[str, str]:
    """A tool's icon as Dify's `/meta` gives one: an emoji on a background (a wrench for a
    tool Weft does not have, or before the tool registry is there)."""
    try:
        from workflows.tools import registry
    except ImportError:  # the tools package is optional to this endpoint
        return dict(UNKNOWN_TOOL_ICON)
    found = registry.get(provider, tool)
    return found.icon if found is not None else dict(UNKNOWN_TOOL_ICON)


def meta(request: HttpRequest, caller: Caller) -> HttpResponse:
    """The icons of the tools the app may call."""
    icons = {tool: _icon(provider, tool) for provider, tool in _tool_names(caller.app) if tool}
    return ok({"tool_icons": icons})


def site(request: HttpRequest, caller: Caller) -> HttpResponse:
    """The app's web app settings."""
    return ok(site_json(caller.app))
