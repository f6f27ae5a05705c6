"""How the Service API appears in the OpenAPI schema (`/api/schema/`).

Its views are plain async functions, which drf-spectacular does not see. Each gets a DRF
view class for its description only (`describe`): the methods it serves, each described by
its handler's docstring, the `user` it reads and the `app-` key it needs. Requests never go
through these classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.views import APIView

TAG = "Service API (Dify-compatible)"
ERRORS = {
    400: OpenApiResponse(description="`invalid_param`, `app_unavailable`, `not_chat_app` …"),
    401: OpenApiResponse(description="`unauthorized`: no, a malformed or an unknown key."),
    403: OpenApiResponse(description="`forbidden`: the app is gone or its API is off."),
    404: OpenApiResponse(description="`not_found`"),
    429: OpenApiResponse(description="`too_many_requests`, with `Retry-After` per minute."),
}
# Handlers that answer with events (in `streaming` mode, or always).
STREAMING = frozenset({"chat", "completion", "workflow_run", "workflow_run_version"})
EVENTS_ONLY = frozenset({"chat_events", "run_events"})
STREAMED = OpenApiResponse(
    OpenApiTypes.STR,
    description="`text/event-stream`: per event an `id:` line and `data: {json}` in Dify's "
    "shapes; `event: ping` every 10 s while nothing happens.",
)


class AppKeyAuthentication(BaseAuthentication):
    """The Service API's `app-` key, as the schema shows it (base.authenticate checks it)."""

    def authenticate(self, request: Any) -> None:
        return None


class AppKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.service.schema.AppKeyAuthentication"
    name = "appKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An app's key: `Authorization: Bearer app-…`.",
        }


class ServiceApiView(APIView):
    """Base of the Service API's descriptions."""

    authentication_classes = [AppKeyAuthentication]
    permission_classes: list[Any] = []
    parser_classes = [JSONParser]


def _described(handler: Callable[..., Any], method: str) -> Callable[..., Any]:
    parameters = []
    where = getattr(handler, "user_from", None)
    if where == "query":
        parameters.append(
            OpenApiParameter(
                "user",
                str,
                required=getattr(handler, "user_required", True),
                description="The end user's id, chosen by the caller.",
            )
        )
    body = OpenApiTypes.OBJECT if method in ("post", "put", "patch") else None
    name = handler.__name__
    responses: dict[Any, Any] = {**ERRORS}
    if name == "upload":
        responses[201] = OpenApiTypes.OBJECT
    elif name == "preview":
        responses[(200, "application/octet-stream")] = OpenApiTypes.BINARY
    elif name == "conversation_delete":
        responses[204] = None
    elif name not in EVENTS_ONLY:
        responses[(200, "application/json")] = OpenApiTypes.OBJECT
    if name in STREAMING or name in EVENTS_ONLY:
        responses[(200, "text/event-stream")] = STREAMED
    if name in STREAMING:
        responses[(202, "application/json")] = OpenApiResponse(
            OpenApiTypes.OBJECT,
            description="Weft's `response_mode: async`: `{task_id, message_id, "
            "conversation_id}` (and `workflow_run_id`), run by a worker.",
        )

    def described(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError  # pragma: no cover - requests go to the async view

    described.__doc__ = handler.__doc__
    described.__name__ = method
    doc = (handler.__doc__ or "").strip()
    return extend_schema(
        operation_id=f"v1_{handler.__name__}",
        summary=doc.split("\n\n", 1)[0].replace("\n", " ") or None,
        description=doc or None,
        tags=[TAG],
        parameters=parameters,
        request=body,
        responses=responses,
    )(described)


def describe(handlers: dict[str, Callable[..., Any]]) -> type[APIView]:
    """A view class describing the endpoint that serves `handlers` (by HTTP method)."""
    methods = {method.lower(): _described(h, method.lower()) for method, h in handlers.items()}
    first = next(iter(handlers.values()))
    name = "".join(part.title() for part in first.__name__.split("_"))
    attributes: dict[str, Any] = {"__doc__": first.__doc__, **methods}
    if any(getattr(h, "user_from", None) == "form" for h in handlers.values()):
        attributes["parser_classes"] = [MultiPartParser]
    return type(f"{name}ServiceApi", (ServiceApiView,), attributes)
