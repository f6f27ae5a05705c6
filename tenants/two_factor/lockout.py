"""The page shown to a locked-out sign-in (django-axes)."""

from __future__ import annotations

import math

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.timesince import timeuntil

from ..api.errors import envelope, is_api_path


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' answer to a locked-out sign-in (AXES_LOCKOUT_CALLABLE): when to retry."""
    from axes.helpers import get_client_username, get_cool_off

    status = settings.AXES_HTTP_RESPONSE_CODE
    now = timezone.now()
    cool_off = get_cool_off(request)
    # Every attempt during the lockout restarts the cool-off, so it runs from now.
    retry_at = now + cool_off if cool_off else None
    if retry_at is not None:
        message = (
            "Too many failed sign-in attempts. "
            f"Try again in {timeuntil(retry_at, now)} "
            f"(at {timezone.localtime(retry_at):%H:%M %Z})."
        )
    else:
        message = "Too many failed sign-in attempts. Ask an administrator to unlock the account."
    if is_api_path(request.path) or request.headers.get("x-requested-with") == "XMLHttpRequest":
        response: HttpResponse = JsonResponse(
            envelope("locked_out", message, status), status=status
        )
    else:
        context = {
            "title": "Sign-in locked",
            "message": message,
            "username": get_client_username(request, credentials) or "",
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "retry_at": retry_at,
        }
        response = render(request, settings.AXES_LOCKOUT_TEMPLATE, context, status=status)
    if cool_off:
        response["Retry-After"] = str(math.ceil(cool_off.total_seconds()))
    return response


def lockout_username(request, credentials) -> str | None:
    """The address failures are counted under: lower-cased, as sign-in compares it."""
    username = (credentials or {}).get("username") or request.POST.get("username")
    return username.strip().lower() if username else None
