"""What the DRF views of the workflows API share: the viewset base and query parameters."""

from __future__ import annotations

import re

from rest_framework.request import Request

from tenants.api.views import TenantScopedViewSet
from tenants.exceptions import InvalidInput
from tenants.models import User

READ = {"list": "view", "retrieve": "view"}


def choice_param(request: Request, name: str, choices: list[str]) -> str | None:
    """A query parameter that must be one of `choices` (None when absent)."""
    value = request.query_params.get(name) or None
    if value is not None and value not in choices:
        raise InvalidInput(f"{name}: unknown value “{value}”; use one of {', '.join(choices)}.")
    return value


def version_number(name: str, raw: str, *, expected: str = "a version number (1, 2, …)") -> int:
    """A version number named by a parameter."""
    if not re.fullmatch(r"[1-9][0-9]{0,8}", raw):
        raise InvalidInput(f"{name}: “{raw}” is not {expected}.")
    return int(raw)


def flag_param(request: Request, name: str) -> bool:
    """A true/false query parameter (false when absent)."""
    raw = request.query_params.get(name, "").lower()
    if raw not in ("", "true", "false", "1", "0"):
        raise InvalidInput(f"{name}: use true or false.")
    return raw in ("true", "1")


class WorkflowScopedViewSet(TenantScopedViewSet):
    """Base of the workflows viewsets: the `workflow` entries of the role matrix."""

    permission_kind = "workflow"

    @property
    def user(self) -> User | None:
        """The console user acting, if any (management keys act as no user)."""
        user = self.request.user
        return user if isinstance(user, User) else None
