"""Audit trail: every create, update and delete made by a known actor is recorded.

The actor (a console user, an API key or a command) is kept in a contextvar set by the
console middleware, the API authentication and the management commands. Model signals then
write one AuditLog row per change, in the same transaction as the change itself, with the
fields that changed. Writes made with no actor in context (migrations, internal bookkeeping)
are not recorded.
"""

from __future__ import annotations

import contextvars
import datetime
import decimal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models.signals import post_delete, post_init, post_save

from .context import get_current_tenant

MASKED = "••••••"
# Fields never written into the audit trail, whatever the model.
SECRET_FIELDS = {"password", "key_hash", "key", "secret", "secret_encrypted", "token"}
# Fields that change on their own and say nothing about who did what.
NOISE_FIELDS = {
    "last_login",
    "last_used_at",
    "updated_at",
    "created_at",
    # django-otp device bookkeeping, touched on every code checked
    "last_t",
    "drift",
    "throttling_failure_timestamp",
    "throttling_failure_count",
    # A chunk's vector and search terms: kilobytes derived from its content, which is logged
    "embedding",
    "terms",
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user, or an API key / command described by `label`."""

    user_id: int | None
    label: str
    source: str  # "console", "api", "command"
    ip: str | None = None
    user_agent: str = ""


_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("weft_actor", default=None)


def get_actor() -> Actor | None:
    return _actor.get()


def set_actor(actor: Actor | None) -> contextvars.Token:
    return _actor.set(actor)


def reset_actor(token: contextvars.Token) -> None:
    _actor.reset(token)


@contextmanager
def acting_as(actor: Actor | None) -> Iterator[Actor | None]:
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR (a trusted proxy rewrites it, see the README)."""
    return request.META.get("REMOTE_ADDR") or None


def request_actor(request, *, user=None, label: str | None = None, source: str) -> Actor:
    user = user if user is not None else getattr(request, "user", None)
    user_id = user.pk if user is not None and user.is_authenticated else None
    return Actor(
        user_id=user_id,
        label=label or (user.get_username() if user_id else "anonymous"),
        source=source,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:400],
    )


def _is_audited(model: type[models.Model]) -> bool:
    from .models import AuditLog

    return (
        getattr(model._meta, "app_label", "") in AUDITED_APPS
        and model is not AuditLog
        and getattr(model, "audit_trail", True)
    )


AUDITED_APPS = {
    "tenants",
    "billing",
    "providers",
    "knowledge",
    "workflows",
    "apps",
    "annotations",
    "otp_totp",
    "otp_static",  # enrolling and dropping second factors
}


def _plain(value: Any) -> Any:
    """A JSON-safe rendering of a field value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dict | list):
        return value
    return str(value)


def _snapshot(instance: models.Model) -> dict[str, Any]:
    # A deferred field is not read: reading it loads the row again, and that load's own
    # snapshot would read it again, without end.
    deferred = instance.get_deferred_fields()
    return {
        field.attname: getattr(instance, field.attname, None)
        for field in instance._meta.concrete_fields
        if field.attname not in NOISE_FIELDS and field.attname not in deferred
    }


def _field_name(attname: str) -> str:
    return attname[:-3] if attname.endswith("_id") else attname


def _render(attname: str, value: Any) -> Any:
    if _field_name(attname) in SECRET_FIELDS and value not in (None, ""):
        return MASKED
    return _plain(value)


def _record(instance: models.Model, action: str, changes: dict[str, Any]) -> None:
    from .models import AuditLog, Tenant

    actor = _actor.get()
    if actor is None:
        return
    tenant_id: uuid.UUID | None
    if isinstance(instance, Tenant):
        tenant_id = instance.pk
    else:
        tenant_id = getattr(instance, "tenant_id", None)
        if tenant_id is None and (current := get_current_tenant()) is not None:
            tenant_id = current.pk
    if action == AuditLog.Action.DELETE and isinstance(instance, Tenant):
        tenant_id = None  # the tenant's own rows go with it
    AuditLog.dangerously_unscoped.create(
        tenant_id=tenant_id,
        actor_id=actor.user_id,
        actor_label=actor.label[:200],
        source=actor.source,
        action=action,
        object_type=instance._meta.label_lower,
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        changes=changes,
        ip=actor.ip,
        user_agent=actor.user_agent,
    )


def _on_init(sender, instance, **kwargs) -> None:
    if _is_audited(sender) and _actor.get() is not None:
        instance._audit_snapshot = _snapshot(instance)


def _on_save(sender, instance, created, raw=False, **kwargs) -> None:
    if raw or not _is_audited(sender) or _actor.get() is None:
        return
    now = _snapshot(instance)
    if created:
        changes = {
            _field_name(k): [None, _render(k, v)] for k, v in now.items() if v not in (None, "")
        }
        _record(instance, "create", changes)
    else:
        before = getattr(instance, "_audit_snapshot", None) or {}
        changes = {
            _field_name(k): [_render(k, before.get(k)), _render(k, v)]
            for k, v in now.items()
            if k in before and before[k] != v
        }
        if not changes:
            return
        _record(instance, "update", changes)
    instance._audit_snapshot = now


def _on_delete(sender, instance, **kwargs) -> None:
    if _is_audited(sender) and _actor.get() is not None:
        _record(instance, "delete", {})


def connect() -> None:
    post_init.connect(_on_init, dispatch_uid="weft_audit_init")
    post_save.connect(_on_save, dispatch_uid="weft_audit_save")
    post_delete.connect(_on_delete, dispatch_uid="weft_audit_delete")
