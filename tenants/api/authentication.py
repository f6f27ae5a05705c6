"""Authentication for the management API: `wk-` keys, or a console session.

DRF views authenticate through the classes below; the few async views of `/api/` (workflow
runs and their event streams) through `authenticate_management_key`, which makes the same
checks and raises the same errors without leaving the event loop but for one lookup.
"""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework import authentication, exceptions

from .. import audit, keys
from ..aio import database
from ..context import set_current_tenant
from ..exceptions import Forbidden, TenantSuspended
from ..models import ApiKey
from ..permissions import Principal
from ..two_factor import verification_required

BEARER_REQUIRED = "Use an `Authorization: Bearer <key>` header."
KEY_INVALID = "The API key is malformed, unknown or revoked."


def _raw_key(header: str) -> str:
    raw = keys.bearer_token(header)
    if raw is None:
        raise exceptions.AuthenticationFailed(BEARER_REQUIRED, code="invalid_api_key")
    return raw


def _live_key(raw: str) -> ApiKey:
    """The live management key for `raw`, its use recorded; refused keys raise."""
    key = keys.find_key(raw)
    if key is None:
        raise exceptions.AuthenticationFailed(KEY_INVALID, code="invalid_api_key")
    if key.kind != ApiKey.Kind.MANAGEMENT:
        raise Forbidden(
            f"A {key.get_kind_display()} key cannot call the management API; "
            "use a management (wk-) key.",
            code="wrong_key_kind",
        )
    if not key.tenant.is_active:
        raise TenantSuspended()
    keys.touch(key)
    return key


def _act_as(key: ApiKey, request: HttpRequest) -> Principal:
    """The key's tenant becomes the request's tenant, the key its actor."""
    principal = Principal(tenant_id=key.tenant_id, role=key.role, user=None)
    request.tenant = key.tenant  # type: ignore[attr-defined]
    request.principal = principal  # type: ignore[attr-defined]
    set_current_tenant(key.tenant)
    audit.set_actor(audit.request_actor(request, label=f"API key {key.prefix}…", source="api"))
    return principal


class ManagementKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer wk-…`: the key's tenant becomes the request's tenant."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        key = _live_key(_raw_key(header))
        _act_as(key, request._request)
        return (None, key)

    def authenticate_header(self, request):
        return self.keyword


async def authenticate_management_key(request: HttpRequest) -> Principal:
    """The async views' twin of ManagementKeyAuthentication (same checks, same errors; no
    header at all is NotAuthenticated, as DRF answers when no class authenticates)."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise exceptions.NotAuthenticated()
    key = await database(_live_key)(_raw_key(header))
    return _act_as(key, request)


class ConsoleSessionAuthentication(authentication.SessionAuthentication):
    """A logged-in console user (CSRF enforced), acting in their active tenant."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        django_request = request._request
        if getattr(django_request, "tenant", None) is None:
            return None
        if verification_required(django_request):
            raise exceptions.AuthenticationFailed(
                "Two-factor verification is required: sign in to the console first.",
                code="otp_required",
            )
        return (user, django_request.principal)
