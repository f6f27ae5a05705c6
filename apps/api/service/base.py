"""The plumbing every Service API endpoint shares: an async view that authenticates the
`app-` key and finds its app in one trip to the database, counts the request against the
key's and the end user's per-minute limits, and answers every error in Dify's envelope.

Handlers are plain functions, `handler(request, caller, **url_kwargs)`. A sync handler runs
in one `tenants.aio.database` batch (its ORM work and the services it calls); an async one (runs,
streams) batches its own. `@uses_user(where)` says where a handler reads Dify's `user`
(the end user's id chosen by the caller): the JSON body, the query string or the form.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from billing import quota
from tenants import audit, keys
from tenants.aio import database
from tenants.api.errors import error_response, weft_response
from tenants.context import set_current_tenant, tenant_context
from tenants.exceptions import Forbidden, InvalidInput, TenantSuspended, Unauthorized, WeftError
from tenants.models import ApiKey, Tenant
from tenants.service_auth import INVALID

from ... import limits
from ...models import App, EndUser, Source
from ...services.end_users import end_user_find, end_user_for
from .schema import describe

UserSource = Literal["json", "query", "form"]
MAX_USER_CHARS = 255


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: its app, the end user it acts for (the `user` an API
    client names, or a portal visitor's session id), and the `app-` key when a program
    calls (None for a portal visitor)."""

    app: App
    user: str | None = None
    key: ApiKey | None = None
    kind: str = EndUser.Kind.SERVICE_API  # of end user
    source: str = Source.API  # of the messages it sends

    @property
    def tenant(self) -> Tenant:
        return self.app.tenant

    def end_user(self) -> EndUser:
        """The app's end user the request names, made on first use (sync)."""
        if not self.user:
            raise InvalidInput("user: this field is required.")
        return end_user_for(app=self.app, session_id=self.user, kind=self.kind)

    def known_end_user(self) -> EndUser | None:
        """The app's end user the request names, or None when there is none yet (sync;
        reads never make one)."""
        if not self.user:
            return None
        return end_user_find(app=self.app, session_id=self.user, kind=self.kind)


# Authentication


def _key_and_app(raw: str) -> tuple[ApiKey | None, App | None]:
    key = keys.find_key(raw)
    if key is None:
        return None, None
    keys.touch(key)
    if key.kind != ApiKey.Kind.APP or key.app_id is None:
        return key, None
    with tenant_context(key.tenant):
        app = (
            # What every endpoint reads; the draft workflow (large) only when a run needs it.
            App.objects.select_related(
                "tenant", "published_version__workflow_version", "created_by"
            )
            .filter(pk=key.app_id)
            .first()
        )
    return key, app


async def authenticate(headers: Any, request: Any) -> tuple[ApiKey, App]:
    """The live `app-` key of the `Authorization` header and its app, checked as Dify
    checks them: a missing, malformed, unknown or revoked key is 401; another kind of key,
    a deleted app or an app whose API is off is 403. Sets the tenant context and the audit
    actor (`request` is the HTTP request, or a stand-in with `META` for a WebSocket)."""
    header = headers.get("Authorization", "") or ""
    if not header:
        raise Unauthorized("Authorization header must be provided and start with 'Bearer'")
    raw = keys.bearer_token(header)
    if raw is None:
        raise Unauthorized("Authorization scheme must be 'Bearer'")
    key, app = await database(_key_and_app)(raw)
    if key is None:
        raise Unauthorized(INVALID)
    if key.kind != ApiKey.Kind.APP:
        raise Forbidden(
            f"A {key.get_kind_display()} key cannot call this API.", code="wrong_key_kind"
        )
    if not key.tenant.is_active:
        raise TenantSuspended()
    if app is None:
        raise Forbidden("The app no longer exists.")
    if not app.enable_api:
        raise Forbidden("The app's API service has been disabled.")
    request.tenant = key.tenant
    request.api_key = key
    set_current_tenant(key.tenant)
    audit.set_actor(audit.request_actor(request, label=f"API key {key.prefix}…", source="api"))
    return key, app


def _user_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


async def count_request(key: ApiKey, app: App, user: str | None) -> None:
    """Count a request against the key's and (when it names one) the end user's limits
    per minute; RateLimited (429 with Retry-After) past either."""
    await limits.per_minute(
        f"key:{key.pk}", app.api_rpm or settings.WEFT_APP_API_RPM, what="this API key"
    )
    if user:
        await limits.per_minute(
            f"end-user:{app.pk}:{_user_digest(user)}",
            app.end_user_rpm or settings.WEFT_APP_END_USER_RPM,
            what="this user",
        )
    await quota.api_request_async(key.tenant, app.pk)


def check_user(value: Any) -> str | None:
    """Dify's `user` as sent (None when absent or blank); 400 for one that is no id."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidInput("user: must be a string.")
    value = str(value)
    if len(value) > MAX_USER_CHARS:
        raise InvalidInput(f"user: at most {MAX_USER_CHARS} characters.")
    return value


# The view


def uses_user(where: UserSource, *, required: bool = True) -> Callable[[Any], Any]:
    """Mark a handler as acting for the end user named by `user` in `where` (the JSON body
    also accepts it in the query string, as some clients send DELETE bodies nowhere)."""

    def mark(handler: Any) -> Any:
        handler.user_from = where
        handler.user_required = required
        return handler

    return mark


def _user_in(request: HttpRequest, where: UserSource) -> Any:
    if where == "json":
        value = json_body(request).get("user")
        return value if value not in (None, "") else request.GET.get("user")
    if where == "form":
        return request.POST.get("user") or request.GET.get("user")
    return request.GET.get("user")


# Who calls: from the request (its URL's arguments included, which it may take), the Caller,
# or a WeftError.
Identify = Callable[[HttpRequest, Any, dict[str, Any]], Awaitable[Caller]]


async def api_caller(request: HttpRequest, handler: Any, kwargs: dict[str, Any]) -> Caller:
    """A program with an `app-` key, acting for the `user` it names where the handler reads
    it; counted against the key's and that user's limits."""
    key, app = await authenticate(request.headers, request)
    user = None
    where = getattr(handler, "user_from", None)
    if where is not None:
        # A multipart body is parsed off the event loop (it may be a large file).
        found = (
            await sync_to_async(_user_in)(request, where)
            if where == "form"
            else _user_in(request, where)
        )
        user = check_user(found)
        if user is None and handler.user_required:
            raise InvalidInput("user: this field is required.")
    await count_request(key, app, user)
    return Caller(app=app, user=user, key=key)


async def serve(
    request: HttpRequest, handler: Any, kwargs: dict[str, Any], identify: Identify
) -> HttpResponseBase:
    """Run a handler for the caller `identify` finds, every error in the envelope."""
    try:
        caller = await identify(request, handler, kwargs)
        if inspect.iscoroutinefunction(handler):
            return await handler(request, caller, **kwargs)
        return await database(handler)(request, caller, **kwargs)
    except WeftError as exc:
        return weft_response(exc)
    except RequestDataTooBig:
        return error_response(
            "file_too_large", "The request body is larger than this server accepts.", 413
        )
    except (SuspiciousOperation, MultiPartParserError) as exc:
        return error_response("invalid_param", f"The request cannot be read: {exc}", 400)


def not_allowed() -> JsonResponse:
    return error_response(
        "method_not_allowed", "The method is not allowed for the requested URL.", 405
    )


def endpoint(**handlers: Callable[..., Any]) -> Callable[..., Any]:
    """An async Service API view serving these methods (`GET=…, POST=…`)."""

    async def view(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        handler = handlers.get(request.method or "")
        if handler is None:
            return not_allowed()
        return await serve(request, handler, kwargs, api_caller)

    exempt = csrf_exempt(view)  # bearer keys, never cookies: no CSRF to forge
    exempt.handlers = handlers  # type: ignore[attr-defined]  # the portal serves them too
    # What the OpenAPI schema shows of it (requests never use this class).
    exempt.cls = describe(handlers)  # type: ignore[attr-defined]
    exempt.initkwargs = {}  # type: ignore[attr-defined]
    return exempt


def ok(payload: Any, status: int = 200) -> JsonResponse:
    return JsonResponse(
        payload, status=status, safe=False, json_dumps_params={"ensure_ascii": False}
    )


def no_content() -> HttpResponse:
    return HttpResponse(status=204)


# Input


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, parsed once (an empty body is an empty object)."""
    cached = getattr(request, "_service_json", None)
    if cached is not None:
        return cached
    body: Any = {}
    if request.body:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"The body is not valid JSON: {exc}.") from exc
        if not isinstance(body, dict):
            raise InvalidInput("The body must be a JSON object.")
    request._service_json = body  # type: ignore[attr-defined]
    return body


def object_field(body: dict[str, Any], name: str, *, required: bool = False) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"{name}: this field is required.")
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}: must be an object.")
    return value


def list_field(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{name}: must be a list.")
    return value


def bool_field(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidInput(f"{name}: must be true or false.")
    return value


def int_param(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name}: must be a whole number.") from None


# Modes, as Dify checks them per route


def require_chat(app: App) -> None:
    if not app.is_chat:
        raise InvalidInput(
            "Please check if your Chat app mode matches the right API route.",
            code="not_chat_app",
        )


def require_workflow(app: App, *, chatflow: bool = False) -> None:
    allowed = App.WORKFLOW_MODES if chatflow else (App.Mode.WORKFLOW,)
    if app.mode not in allowed:
        raise InvalidInput(
            "Please check if your Workflow app mode matches the right API route.",
            code="not_workflow_app",
        )


def require_completion(app: App) -> None:
    if app.mode != App.Mode.COMPLETION:
        raise InvalidInput(
            "App unavailable, please check your app configurations.", code="app_unavailable"
        )
