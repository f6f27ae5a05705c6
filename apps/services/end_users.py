"""End users: made on first use from the Service API's `user` string or a portal session."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from tenants.context import tenant_context
from tenants.exceptions import InvalidInput

from ..models import App, EndUser

MAX_SESSION_ID = 255


def end_user_for(*, app: App, session_id: str, kind: str = EndUser.Kind.SERVICE_API) -> EndUser:
    """The app's end user with this id, made when new (safe when two requests race)."""
    if not isinstance(session_id, str) or not session_id.strip():
        raise InvalidInput("user: this field is required.")
    if len(session_id) > MAX_SESSION_ID:
        raise InvalidInput(f"user: at most {MAX_SESSION_ID} characters.")
    with tenant_context(app.tenant):
        found = EndUser.objects.filter(app=app, kind=kind, session_id=session_id).first()
        if found is not None:
            return found
        try:
            with transaction.atomic():
                return EndUser.objects.create(
                    tenant=app.tenant, app=app, kind=kind, session_id=session_id
                )
        except IntegrityError:
            return EndUser.objects.get(app=app, kind=kind, session_id=session_id)


def end_user_find(
    *, app: App, session_id: str, kind: str = EndUser.Kind.SERVICE_API
) -> EndUser | None:
    """The app's end user with this id, or None (reads never make one)."""
    if not isinstance(session_id, str) or not session_id:
        return None
    with tenant_context(app.tenant):
        return EndUser.objects.filter(app=app, kind=kind, session_id=session_id).first()
