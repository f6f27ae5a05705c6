"""Authentication for the management API: `wk-` keys, or a console session."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from .. import audit, keys
from ..context import set_current_tenant
from ..exceptions import Forbidden, TenantSuspended
from ..models import ApiKey
from ..permissions import Principal
from ..two_factor import verification_required


class ManagementKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer wk-…`: the key's tenant becomes the request's tenant."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        raw = keys.bearer_token(header)
        if raw is None:
            raise exceptions.AuthenticationFailed(
                "Use an `Authorization: Bearer <key>` header.", code="invalid_api_key"
            )
        key = keys.find_key(raw)
        if key is None:
            raise exceptions.AuthenticationFailed(
                "The API key is malformed, unknown or revoked.", code="invalid_api_key"
            )
        if key.kind != ApiKey.Kind.MANAGEMENT:
            raise Forbidden(
                f"A {key.get_kind_display()} key cannot call the management API; "
                "use a management (wk-) key.",
                code="wrong_key_kind",
            )
        if not key.tenant.is_active:
            raise TenantSuspended()
        keys.touch(key)
        request._request.tenant = key.tenant
        principal = Principal(tenant_id=key.tenant_id, role=key.role, user=None)
        request._request.principal = principal
        set_current_tenant(key.tenant)
        audit.set_actor(
            audit.request_actor(request._request, label=f"API key {key.prefix}…", source="api")
        )
        return (None, key)

    def authenticate_header(self, request):
        return self.keyword


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
