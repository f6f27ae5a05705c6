"""What Weft's middleware adds to Django's request, and the helpers that read it.

ConsoleTenantMiddleware (and the management API's key authentication) set `tenant` and
`principal` on every console and management-API request. The classes here only describe
those requests for the type checker: Django builds the requests, never these classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

if TYPE_CHECKING:
    from .models import Tenant, User
    from .permissions import Principal


class ConsoleRequest(HttpRequest):
    """A request past ConsoleTenantMiddleware: the active tenant and who acts in it (both
    None when signed out, or on paths the middleware skips)."""

    tenant: Tenant | None
    principal: Principal | None


class SignedInRequest(ConsoleRequest):
    """A ConsoleRequest behind `login_required`: its user is a signed-in console user."""

    user: User


def principal_of(request: HttpRequest) -> Principal | None:
    """The request's principal, or None when the middleware set none."""
    return getattr(request, "principal", None)


def require_principal(request: HttpRequest) -> Principal:
    """The request's principal where one must exist (behind the console's or the API's
    permission checks); a request without one is refused."""
    principal = principal_of(request)
    if principal is None:
        raise PermissionDenied
    return principal


def require_tenant(request: HttpRequest) -> Tenant:
    """The request's active tenant where one must exist; a request without one is refused."""
    tenant: Tenant | None = getattr(request, "tenant", None)
    if tenant is None:
        raise PermissionDenied
    return tenant
