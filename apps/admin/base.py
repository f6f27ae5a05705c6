"""The base of the app console pages: permissions through apps.permissions.can_app, the app
or version a page is about (404 when missing or another tenant's), the links between pages,
and the context every page shares."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse

from tenants.admin_base import TenantScopedAdmin
from tenants.context import tenant_context
from tenants.http import principal_of

from ..models import App, AppVersion
from ..permissions import can_app

MAX_VERSION_DIGITS = 9  # more would overflow the column, and no app has that many versions


def pretty(value: Any) -> str:
    """JSON for people: indented, Unicode as is."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def cost_shown(price: Decimal, currency: str) -> str:
    """A price without trailing zeros (0.0012000000 USD → 0.0012 USD)."""
    return f"{price.normalize():f} {currency}"


def logs_url(app: App | None = None, what: str = "conversation", **params: Any) -> str:
    """The conversation (or message) list, narrowed to one app and `params`."""
    query = {**({"app": app.pk} if app is not None else {}), **params}
    suffix = "&".join(f"{key}={value}" for key, value in query.items())
    url = reverse(f"admin:apps_{what}_changelist")
    return f"{url}?{suffix}" if suffix else url


class AppConsoleAdmin(TenantScopedAdmin):
    """Console pages of apps and their logs: every check goes through can_app."""

    permission_kind = "app"

    def _allowed(self, request, action: str | None, obj=None) -> bool:
        if action is None:
            return False
        return can_app(principal_of(request), action, obj if isinstance(obj, App) else None)

    def in_tenant(self, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        """An admin view of one row, run in that row's tenant (a superuser may open any
        tenant's)."""

        def scoped(request: HttpRequest, object_id: str, *args: Any, **kwargs: Any):
            with tenant_context(self._object_tenant(request, object_id)):
                return view(request, object_id, *args, **kwargs)

        return self.admin_site.admin_view(scoped)


class AppPagesBase(AppConsoleAdmin):
    """What the app pages share; the pages themselves are mixed into AppAdmin."""

    view_action = "view"
    add_action: str | None = "manage"
    change_action: str | None = "manage"
    delete_action: str | None = "manage"

    def may(self, request: HttpRequest, action: str, app: App | None = None) -> bool:
        return self._allowed(request, action, app)

    def url(self, name: str, *args: Any) -> str:
        return reverse(f"admin:apps_app_{name}", args=args)

    def apps(self, request: HttpRequest) -> QuerySet[App]:
        if request.user.is_superuser:
            return App.dangerously_unscoped.all()
        return App.objects.all()

    def app_for(self, request: HttpRequest, object_id: str, action: str) -> App:
        """The app, 404 when missing or another tenant's; 403 without `action`."""
        try:
            pk = uuid.UUID(object_id)
        except ValueError as exc:
            raise Http404("Not found.") from exc
        app = get_object_or_404(
            self.apps(request).select_related("tenant", "published_version"), pk=pk
        )
        if not self.may(request, action, app):
            raise PermissionDenied
        return app

    def version_for(self, app: App, number: Any) -> AppVersion:
        """Version `number` of the app; 404 when it has none such."""
        if not str(number).isdigit() or len(str(number)) > MAX_VERSION_DIGITS:
            raise Http404("Not found.")
        version = get_object_or_404(
            AppVersion.objects.select_related("workflow_version", "created_by"),
            app=app,
            number=int(number),
        )
        version.app = app
        return version

    def page(self, request: HttpRequest, app: App, title: str, **context: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "app": app,
            "original": app,
            "app_url": self.url("change", app.pk),
            "may_manage": self.may(request, "manage", app),
            "may_logs": self.may(request, "logs", app),
            **context,
        }
