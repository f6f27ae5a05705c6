"""Which handler answers a path, in which vendor's dialect, and whose key opens it."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import anthropic_api, openai_api
from .http11 import HttpRequest
from .wire import Call, Flavor, JsonResult, StreamResult


@dataclass(frozen=True)
class Route:
    """A handler, the dialect of its errors, and how to read its request's prompt."""

    flavor: Flavor
    prompt: Callable[[dict[str, Any]], str]
    handle: Callable[[Call], JsonResult | StreamResult]
    validate: Callable[[dict[str, Any]], None] | None = None
    needs_model: bool = True


def _chat_prompt(body: dict[str, Any]) -> str:
    return openai_api.chat_prompt(body).text


def _messages_prompt(body: dict[str, Any]) -> str:
    return anthropic_api.messages_prompt(body).text


def _no_prompt(body: dict[str, Any]) -> str:
    return ""


CHAT = Route("openai", _chat_prompt, openai_api.chat, openai_api.validate_chat)
EMBEDDINGS = Route(
    "openai", openai_api.embeddings_prompt, openai_api.embeddings, openai_api.validate_embeddings
)
ROUTES = {
    ("POST", "/v1/chat/completions"): CHAT,
    ("POST", "/v1/embeddings"): EMBEDDINGS,
    ("POST", "/v1/rerank"): Route(
        "openai", openai_api.rerank_prompt, openai_api.rerank, openai_api.validate_rerank
    ),
    ("GET", "/v1/models"): Route("openai", _no_prompt, openai_api.models, needs_model=False),
    ("POST", "/v1/messages"): Route(
        "anthropic", _messages_prompt, anthropic_api.messages, anthropic_api.validate_messages
    ),
}
ANTHROPIC_MODELS = Route("anthropic", _no_prompt, anthropic_api.models, needs_model=False)
AZURE_PATH = re.compile(r"/openai/deployments/(?P<deployment>[^/]+)/(?P<operation>.+)")
AZURE_OPERATIONS = {"chat/completions": CHAT, "embeddings": EMBEDDINGS}


def speaks_anthropic(request: HttpRequest) -> bool:
    return request.path == "/v1/messages" or "anthropic-version" in request.headers


def route_for(request: HttpRequest) -> tuple[Route | None, str | None]:
    """The route, and the model an Azure-style deployment path names."""
    if request.method == "GET" and request.path == "/v1/models" and speaks_anthropic(request):
        return ANTHROPIC_MODELS, None
    azure = AZURE_PATH.fullmatch(request.path)
    if azure and request.method == "POST":
        return AZURE_OPERATIONS.get(azure["operation"]), azure["deployment"]
    return ROUTES.get((request.method, request.path)), None


def authenticate(flavor: Flavor, headers: dict[str, str], api_key: str) -> None:
    """Raise the vendor's error unless the request carries `api_key` where the vendor takes it.

    OpenAI takes a bearer token (Azure an `api-key` header); Anthropic takes `x-api-key`, and
    a bearer token too, which is how recent versions of its SDK send the key.
    """
    authorization = headers.get("authorization", "")
    bearer: str | None = None
    if authorization.lower().startswith("bearer "):
        bearer = authorization[len("bearer ") :].strip()
    if flavor == "anthropic":
        key: str | None = headers.get("x-api-key") or bearer
        if not key or not secrets.compare_digest(key.encode(), api_key.encode()):
            raise anthropic_api.auth_error(key)
        if "anthropic-version" not in headers:
            raise anthropic_api.version_error()
        return
    key = bearer or headers.get("api-key")
    if not key or not secrets.compare_digest(key.encode(), api_key.encode()):
        raise openai_api.auth_error(key)
