"""Each tenant's default model per kind, with its ordered fallbacks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction

from tenants.context import tenant_context
from tenants.exceptions import Conflict, InvalidInput
from tenants.models import Tenant
from tenants.permissions import Principal

from ..models import DefaultModel, Fallback, Model, ModelKind
from ._common import require_manage


def _usable(kind: str, ids: Sequence[Any], field: str) -> list[Model]:
    """The tenant's enabled models of `kind` with these ids, in the order given; a missing,
    foreign, disabled or other-kind id is refused, naming the field."""
    wanted = []
    for value in ids:
        if isinstance(value, Model):
            wanted.append(value.pk)
        elif isinstance(value, int) and not isinstance(value, bool):
            wanted.append(value)
        else:
            raise InvalidInput(f"{field}: “{value}” is not a model id.")
    found = Model.objects.filter(pk__in=wanted, kind=kind, enabled=True).in_bulk()
    for pk in wanted:
        if pk not in found:
            raise InvalidInput(
                f"{field}: no enabled {ModelKind(kind).label.lower()} model with id {pk} is "
                "available to this tenant."
            )
    return [found[pk] for pk in wanted]


def default_set(
    *,
    tenant: Tenant,
    principal: Principal,
    kind: str,
    model: Model | int,
    fallbacks: Sequence[Model | int] = (),
) -> DefaultModel:
    """Choose the tenant's default model of `kind` and its fallbacks, in order (replacing
    any previous choice)."""
    require_manage(principal)
    if kind not in ModelKind.values:
        raise InvalidInput(f"kind: unknown kind “{kind}”; use {', '.join(ModelKind.values)}.")
    with transaction.atomic(), tenant_context(tenant):
        (primary,) = _usable(kind, [model], "model")
        chosen = _usable(kind, list(fallbacks), "fallbacks")
        if primary.pk in {m.pk for m in chosen}:
            raise InvalidInput(f"fallbacks: {primary} is the default itself.")
        if len({m.pk for m in chosen}) != len(chosen):
            raise InvalidInput("fallbacks: a model is listed twice.")
        default = DefaultModel.objects.select_for_update().filter(kind=kind).first()
        if default is None:
            default = DefaultModel(tenant=tenant, kind=kind, model=primary)
        default.model = primary
        try:
            with transaction.atomic():
                default.save()
        except IntegrityError as exc:  # a concurrent request chose one first
            raise Conflict(
                f"The default {kind} model was just chosen by someone else; try again."
            ) from exc
        existing = list(Fallback.objects.filter(default=default))
        if [f.model_id for f in existing] != [m.pk for m in chosen]:
            for fallback in existing:
                fallback.delete()
            for position, fallback_model in enumerate(chosen):
                Fallback.objects.create(
                    tenant=tenant, default=default, model=fallback_model, position=position
                )
    return default


def default_clear(*, tenant: Tenant, principal: Principal, kind: str) -> None:
    """Forget the tenant's default of `kind`: the built-in offline model serves it again."""
    require_manage(principal)
    with transaction.atomic(), tenant_context(tenant):
        for default in DefaultModel.objects.filter(kind=kind):
            default.delete()
