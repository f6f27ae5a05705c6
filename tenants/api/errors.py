"""One error envelope for `/api/` and `/v1/`: `{"code", "message", "status"}`, never HTML."""

from __future__ import annotations

import logging
from dataclasses import asdict, is_dataclass

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from ..context import TenantContextMissing
from ..exceptions import WeftError
from ..middleware_base import HybridMiddleware

logger = logging.getLogger("weft.api")

API_PREFIXES = ("/api/", "/v1/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def envelope(code: str, message: str, status: int) -> dict:
    return {"code": code, "message": message, "status": status}


def error_response(code: str, message: str, status: int, headers=None) -> JsonResponse:
    return JsonResponse(envelope(code, message, status), status=status, headers=headers)


def weft_envelope(exc: WeftError) -> dict:
    """A typed error's envelope. An error that itemises its problems in an `errors` list
    (every reason a workflow cannot run, say) carries them in an `errors` field too."""
    body = {**exc.extra, **envelope(exc.code, exc.message, exc.status)}
    items = getattr(exc, "errors", None)
    if isinstance(items, list):
        body["errors"] = [
            asdict(item) if is_dataclass(item) and not isinstance(item, type) else item
            for item in items
        ]
    return body


def weft_response(exc: WeftError) -> JsonResponse:
    """A typed error answered: its envelope, status and headers."""
    return JsonResponse(weft_envelope(exc), status=exc.status, headers=exc.headers or None)


def _flatten(detail, prefix: str = "") -> list[str]:
    """DRF validation details as readable `field: message` lines."""
    if isinstance(detail, dict):
        lines: list[str] = []
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else f"{prefix}{key}"
            lines += _flatten(value, f"{name}." if name else "")
        return lines
    if isinstance(detail, list):
        lines = []
        for item in detail:
            lines += _flatten(item, prefix)
        return lines
    field = prefix.rstrip(".")
    return [f"{field}: {detail}" if field else str(detail)]


_DRF_CODES = {
    drf.NotAuthenticated: "unauthorized",
    drf.AuthenticationFailed: "unauthorized",
    drf.PermissionDenied: "forbidden",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
    drf.ParseError: "invalid_request",
    drf.ValidationError: "invalid_param",
}


def describe(exc) -> tuple[dict, dict[str, str]] | None:
    """The envelope and headers answering an API error; None for an unexpected exception."""
    headers: dict[str, str] = {}
    if isinstance(exc, WeftError):
        return weft_envelope(exc), dict(exc.headers)
    if isinstance(exc, Http404):
        exc = drf.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.APIException):
        status = exc.status_code
        if isinstance(exc, drf.ValidationError):
            message = "; ".join(_flatten(exc.detail)) or "Invalid input."
        else:
            message = str(exc.detail)
        code = _DRF_CODES.get(type(exc))
        if code is None:
            code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
        detail_code = getattr(exc.detail, "code", None)
        if isinstance(detail_code, str) and detail_code not in {
            "not_authenticated",
            "authentication_failed",
            "permission_denied",
            "not_found",
            "method_not_allowed",
            "parse_error",
            "invalid",
            "throttled",
            "error",
            "unsupported_media_type",
            "not_acceptable",
        }:
            code = detail_code
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)  # drf.Throttled's seconds to wait
        if wait:
            headers["Retry-After"] = str(int(wait))
        return envelope(code, message, status), headers
    return None


def exception_handler(exc, context):
    """DRF's exception handler: every error becomes the envelope."""
    described = describe(exc)
    if described is None:
        return None  # unexpected: the middleware answers 500 and logs it
    body, headers = described
    return Response(body, status=body["status"], headers=headers)


def _unexpected(request, exc) -> JsonResponse:
    if isinstance(exc, WeftError):
        return JsonResponse(weft_envelope(exc), status=exc.status)
    if isinstance(exc, Http404):
        return error_response("not_found", "Not found.", 404)
    if isinstance(exc, DjangoPermissionDenied):
        return error_response("forbidden", "You do not have permission to do this.", 403)
    if isinstance(exc, TenantContextMissing):
        logger.error("tenant context missing on %s", request.path, exc_info=exc)
    else:
        logger.error("unhandled error on %s", request.path, exc_info=exc)
    return error_response("internal_error", "Internal server error.", 500)


class ApiErrorMiddleware(HybridMiddleware):
    """Turn any exception escaping an API view into the envelope, in DEBUG too."""

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        if is_api_path(request.path):
            return _unexpected(request, exc)
        return None


def json_or_html(status: int, code: str, message: str, default_view):
    def view(request, exception=None, **kwargs):
        if is_api_path(request.path):
            return error_response(code, message, status)
        if exception is not None:
            return default_view(request, exception, **kwargs)
        return default_view(request, **kwargs)

    return view


def csrf_failure(request, reason=""):
    if is_api_path(request.path):
        return error_response("csrf_failed", f"CSRF check failed: {reason}", 403)
    from django.views.csrf import csrf_failure as default

    return default(request, reason=reason)
