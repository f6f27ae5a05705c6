"""What the views of the apps management API share: the viewset base (tenant-scoped rows,
`app` permissions through apps.permissions.can_app) and the query parameters of log lists."""

from __future__ import annotations

import datetime as dt
import uuid

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import permissions
from rest_framework.request import Request

from tenants.api.views import TenantScopedViewSet
from tenants.exceptions import InvalidInput
from tenants.models import User
from workflows.api.base import choice_param

from ...models import Message, Source
from ...permissions import can_app
from . import selectors
from .selectors import RATINGS, LogFilters

READ = {"list": "view", "retrieve": "view"}


class AppAccess(permissions.BasePermission):
    """A tenant principal allowed the view's action on apps (`permission_actions`)."""

    def has_permission(self, request, view) -> bool:
        principal = getattr(request._request, "principal", None)
        if principal is None or principal.tenant_id is None:
            return False
        if getattr(view, "action", None) is None:
            return True  # a method the view does not serve: let DRF answer 405
        action = view.permission_actions.get(view.action)
        return action is not None and can_app(principal, action)


class AppScopedViewSet(TenantScopedViewSet):
    """Base of the apps viewsets: the `app` entries of the role matrix."""

    permission_kind = "app"
    permission_classes = [AppAccess]

    @property
    def user(self) -> User | None:
        """The console user acting, if any (management keys act as no user)."""
        user = self.request.user
        return user if isinstance(user, User) else None


def moment_param(request: Request, name: str) -> dt.datetime | None:
    """A time parameter: an ISO 8601 date-time (UTC when it names no zone) or a date (its
    start, UTC)."""
    raw = request.query_params.get(name) or ""
    if not raw:
        return None
    try:
        moment = parse_datetime(raw)
        if moment is None:
            day = parse_date(raw)
            if day is not None:
                moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidInput(f"{name}: “{raw}” is not a date (2025-01-31) or date-time (ISO 8601).")
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)


def uuid_param(request: Request, name: str) -> uuid.UUID | None:
    raw = request.query_params.get(name) or ""
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidInput(f"{name}: “{raw}” is not an id.") from None


def log_filters(request: Request) -> LogFilters:
    """The filters of a conversation or message list, from its query parameters."""
    app_id = uuid_param(request, "app")
    since = moment_param(request, "since")
    until = moment_param(request, "until")
    if since and until and since >= until:
        raise InvalidInput("until: must be later than since.")
    return LogFilters(
        app=selectors.app_named_in(app_id, param="app") if app_id else None,
        end_user_id=uuid_param(request, "end_user"),
        since=since,
        until=until,
        rating=choice_param(request, "rating", list(RATINGS)),
        status=choice_param(request, "status", Message.Status.values),
        source=choice_param(request, "source", Source.values),
    )
