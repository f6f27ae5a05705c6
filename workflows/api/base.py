"""What the DRF views of the workflows API share (and the apps API with them): the viewset
base, query parameters, and Dify DSL files in and out."""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpResponse
from django.utils.http import content_disposition_header
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from tenants.api.views import TenantScopedViewSet
from tenants.exceptions import InvalidInput
from tenants.models import User

from ..dsl import MAX_DSL_BYTES

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


def dsl_sent(values: dict[str, Any]) -> str | bytes:
    """The DSL an import sends, as an uploaded `file` or as `content`."""
    if "file" in values:
        # A byte past the limit is enough for the DSL reader to refuse a file too large.
        return values["file"].read(MAX_DSL_BYTES + 1)
    return values["content"]


def dsl_file(text: str, name: str, number: int | None) -> HttpResponse:
    """A DSL export as a YAML download named after its object (and version)."""
    suffix = f"-v{number}" if number else ""
    return HttpResponse(
        text,
        content_type="application/x-yaml; charset=utf-8",
        headers={
            "Content-Disposition": content_disposition_header(
                as_attachment=True, filename=f"{name}{suffix}.yml"
            )
        },
    )


class ExportsDsl:
    """A viewset whose `export` action answers YAML whatever the client accepts
    (`Accept: application/x-yaml` included, which no renderer of the API offers); its errors
    stay JSON."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        if getattr(self, "action", None) == "export":
            return (JSONRenderer(), JSONRenderer.media_type)
        return super().perform_content_negotiation(request, force)  # type: ignore[misc]


class WorkflowScopedViewSet(TenantScopedViewSet):
    """Base of the workflows viewsets: the `workflow` entries of the role matrix."""

    permission_kind = "workflow"

    @property
    def user(self) -> User | None:
        """The console user acting, if any (management keys act as no user)."""
        user = self.request.user
        return user if isinstance(user, User) else None
