"""Authentication of the Dify-compatible Service and Knowledge APIs (`/v1/`), async.

`app-` keys open the Service API, `dataset-` keys the Knowledge API (`/v1/datasets…`), as in
Dify. A missing, malformed, unknown or revoked key answers 401 `unauthorized`, Dify's code.
"""

from __future__ import annotations

from . import audit, keys
from .aio import database
from .context import set_current_tenant
from .exceptions import Forbidden, TenantSuspended, Unauthorized
from .models import ApiKey

INVALID = "Access token is invalid"


def _lookup(raw: str) -> ApiKey | None:
    key = keys.find_key(raw)
    if key is not None:
        keys.touch(key)
    return key


async def authenticate_service_key(request, *, kind: str) -> ApiKey:
    """The request's live key of `kind`; sets the tenant context and audit actor."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise Unauthorized("Authorization header must be provided and start with 'Bearer'")
    raw = keys.bearer_token(header)
    if raw is None:
        raise Unauthorized("Authorization scheme must be 'Bearer'")
    key = await database(_lookup)(raw)
    if key is None:
        raise Unauthorized(INVALID)
    if key.kind != kind:
        raise Forbidden(
            f"A {key.get_kind_display()} key cannot call this API.", code="wrong_key_kind"
        )
    if not key.tenant.is_active:
        raise TenantSuspended()
    request.tenant = key.tenant
    request.api_key = key
    set_current_tenant(key.tenant)
    audit.set_actor(audit.request_actor(request, label=f"API key {key.prefix}…", source="api"))
    return key


def key_kind_for_path(path: str) -> str:
    return ApiKey.Kind.DATASET if path.startswith("/v1/datasets") else ApiKey.Kind.APP
