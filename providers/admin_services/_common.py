"""What every provider service shares: the permission check and field-named errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tenants import services as tenant_services
from tenants.exceptions import Forbidden, InvalidInput
from tenants.permissions import Principal, allowed


def require_manage(principal: Principal) -> None:
    if not allowed(principal, "provider", "manage"):
        raise Forbidden("Only owners and admins manage model providers.")


def raise_problems(problems: Mapping[str, str]) -> None:
    """One InvalidInput naming every field with a problem: `field: message; …`."""
    if problems:
        raise InvalidInput("; ".join(f"{field}: {message}" for field, message in problems.items()))


def full_clean(obj, *, exclude: Sequence[str] = ()) -> None:
    """Field-level checks (lengths, choices, decimals); uniqueness is checked separately, as
    a conflict."""
    tenant_services.full_clean(obj, exclude=exclude, validate_unique=False)
