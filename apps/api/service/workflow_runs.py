"""Reads of a workflow app's runs: `GET /workflows/run/{id}` and `GET /workflows/logs`."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tenants.exceptions import InvalidInput

from ... import selectors
from .base import Caller, int_param, ok, require_workflow
from .shapes import log_json, run_json


def run_detail(request: HttpRequest, caller: Caller, run_id: str) -> HttpResponse:
    require_workflow(caller.app, chatflow=True)
    return ok(run_json(selectors.access_run(app=caller.app, run_id=run_id)))


def _moment(request: HttpRequest, name: str) -> datetime | None:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    try:
        moment = parse_datetime(raw.replace(" ", "+") if raw.count(" ") == 1 else raw)
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidInput(f"{name}: “{raw}” is not an ISO 8601 date and time.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


def logs(request: HttpRequest, caller: Caller) -> HttpResponse:
    """Dify's workflow logs: the app's runs (not the console's), newest first, by page."""
    require_workflow(caller.app, chatflow=True)
    page = selectors.workflow_log_page(
        app=caller.app,
        keyword=request.GET.get("keyword", ""),
        status=request.GET.get("status") or None,
        created_before=_moment(request, "created_at__before"),
        created_after=_moment(request, "created_at__after"),
        page=int_param(request, "page", 1),
        limit=int_param(request, "limit", 20),
    )
    runs = page.data
    end_users = selectors.end_users_by_id(
        caller.app, [run.created_by_end_user for run in runs if run.created_by_end_user]
    )
    return ok(
        {
            "page": page.page,
            "limit": page.limit,
            "total": page.total,
            "has_more": page.has_more,
            "data": [log_json(run, end_users.get(run.created_by_end_user)) for run in runs],
        }
    )
