"""Reads behind the console and the management API, each in a fixed number of queries.

All of them read the current tenant's rows (the scoped managers raise without one).
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import QuerySet

from . import crypto
from .models import (
    DefaultModel,
    Fallback,
    Model,
    ModelKind,
    ProviderCredential,
    ProviderKind,
    UsageEvent,
)

UNREADABLE = "(unreadable: enter the secret again)"


def secret_shown(credential: ProviderCredential) -> str:
    """The masked secret, or a note when no configured key decrypts it (never an error
    page over one bad row)."""
    try:
        return credential.secret_masked
    except crypto.SecretUnreadable:
        return UNREADABLE


def model_callable(model: Model) -> bool:
    """Whether the current tenant has what it takes to call the model: the built-in models
    always; others through their own credential, else an enabled credential of their kind."""
    if model.provider == ProviderKind.OFFLINE:
        return True
    if model.credential_id is not None:
        return bool(model.credential and model.credential.enabled)
    return ProviderCredential.objects.filter(kind=model.provider, enabled=True).exists()


def credential_list() -> QuerySet[ProviderCredential]:
    return ProviderCredential.objects.order_by("name")


def model_list(
    *, kind: str | None = None, provider: str | None = None, scope: str | None = None
) -> QuerySet[Model]:
    """The global catalog and the tenant's own models; `scope` is `global` or `own`."""
    models = Model.objects.all()
    if kind:
        models = models.filter(kind=kind)
    if provider:
        models = models.filter(provider=provider)
    if scope:
        models = models.filter(tenant__isnull=scope == "global")
    return models.order_by("kind", "provider", "name", "id")


@dataclass(frozen=True)
class EffectiveDefault:
    """What the runtime uses for one kind: the tenant's choice, or the built-in model."""

    kind: str
    model: Model | None
    fallbacks: list[Model] = field(default_factory=list)
    default: DefaultModel | None = None

    @property
    def id(self):
        return self.default.pk if self.default else None

    @property
    def builtin(self) -> bool:
        return self.default is None

    @property
    def kind_label(self) -> str:
        return ModelKind(self.kind).label


def default_model(kind: str) -> Model:
    """The model a call of this kind uses when it names none: the tenant's default, else the
    built-in one (tenant context required)."""
    chosen = DefaultModel.objects.filter(kind=kind).select_related("model").first()
    if chosen is not None:
        return chosen.model
    return Model.catalog.get(provider=ProviderKind.OFFLINE, kind=kind)


def defaults_effective() -> list[EffectiveDefault]:
    """One entry per model kind, in kind order (three queries at most)."""
    defaults = {d.kind: d for d in DefaultModel.objects.select_related("model")}
    fallbacks: dict[object, list[Model]] = defaultdict(list)
    if defaults:
        for fallback in Fallback.objects.filter(
            default_id__in=[d.pk for d in defaults.values()]
        ).select_related("model"):
            fallbacks[fallback.default_id].append(fallback.model)
    builtin: dict[str, Model] = {}
    if len(defaults) < len(ModelKind.values):
        builtin = {m.kind: m for m in Model.catalog.filter(provider=ProviderKind.OFFLINE)}
    effective = []
    for kind in ModelKind.values:
        default = defaults.get(kind)
        if default is None:
            effective.append(EffectiveDefault(kind=kind, model=builtin.get(kind)))
        else:
            effective.append(
                EffectiveDefault(
                    kind=kind,
                    model=default.model,
                    fallbacks=fallbacks[default.pk],
                    default=default,
                )
            )
    return effective


def usage_list(
    *,
    model_name: str | None = None,
    operation: str | None = None,
    status: str | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> QuerySet[UsageEvent]:
    """The tenant's model calls, newest first; `until` is exclusive."""
    events = UsageEvent.objects.all()
    if model_name:
        events = events.filter(model_name=model_name)
    if operation:
        events = events.filter(operation=operation)
    if status:
        events = events.filter(status=status)
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return events.order_by("-created_at", "-id")
