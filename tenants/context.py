"""The current tenant of this request, task or command, kept in a contextvar.

Set by the console middleware, API authentication, portal routing and the Celery task base;
read by every tenant-owned model's default manager, which refuses to query without it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Tenant

_current: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar(
    "weft_tenant", default=None
)


class TenantContextMissing(RuntimeError):
    """A tenant-owned table was queried with no tenant in context."""


def get_current_tenant() -> Tenant | None:
    return _current.get()


def require_current_tenant() -> Tenant:
    tenant = _current.get()
    if tenant is None:
        raise TenantContextMissing(
            "No tenant in context: set one with tenant_context(tenant), "
            "or use the model's dangerously_unscoped manager on purpose."
        )
    return tenant


@contextmanager
def tenant_context(tenant: Tenant | None) -> Iterator[Tenant | None]:
    """Make `tenant` current inside the block (None: no tenant, so tenant rows are refused)."""
    token = _current.set(tenant)
    try:
        yield tenant
    finally:
        _current.reset(token)


def set_current_tenant(tenant: Tenant | None) -> contextvars.Token:
    """Low-level setter for middleware; pair it with reset_current_tenant(token)."""
    return _current.set(tenant)


def reset_current_tenant(token: contextvars.Token) -> None:
    _current.reset(token)
