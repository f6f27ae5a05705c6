"""The tenant's own models, and (platform operators) the global catalog's prices."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from tenants.context import tenant_context
from tenants.exceptions import Conflict, Forbidden, InvalidInput
from tenants.models import Tenant
from tenants.permissions import Principal

from ..models import Model, ProviderCredential, ProviderKind
from ._common import full_clean, raise_problems, require_manage

MODEL_FIELDS = (
    "provider",
    "credential",
    "name",
    "label",
    "kind",
    "context_window",
    "max_output_tokens",
    "dimensions",
    "supports_tools",
    "supports_json_schema",
    "supports_vision",
    "input_price",
    "output_price",
    "currency",
    "enabled",
)
# Global catalog rows are shared by every tenant: what they call and where stays fixed.
GLOBAL_FIXED_FIELDS = ("provider", "credential", "name", "kind")


def model_problems(
    *,
    provider: str,
    credential: ProviderCredential | None,
    context_window: Any,
    input_price: Any,
    output_price: Any,
    currency: str,
    is_global: bool = False,
) -> dict[str, str]:
    """Field → readable message for every problem of a model's values."""
    problems: dict[str, str] = {}
    if provider == ProviderKind.OFFLINE and not is_global:
        problems["provider"] = "The built-in offline models are part of the global catalog."
    if credential is not None and credential.kind != provider:
        wanted = ProviderKind(provider).label if provider in ProviderKind.values else provider
        problems["credential"] = (
            f"“{credential.name}” is a credential for {credential.get_kind_display()}; choose "
            f"one for {wanted}."
        )
    if isinstance(context_window, int) and context_window < 1:
        problems["context_window"] = "The context window must be at least 1 token."
    for field, price in (("input_price", input_price), ("output_price", output_price)):
        if isinstance(price, Decimal | int | float) and price < 0:
            problems[field] = "A price cannot be negative."
    if not re.fullmatch(r"[A-Za-z]{3}", currency or ""):
        problems["currency"] = "Use a three-letter currency code, e.g. USD or EUR."
    return problems


def model_name_taken(
    *, tenant_id, provider: str, credential: ProviderCredential | None, name: str, exclude_pk
) -> bool:
    """Whether the tenant has another own model with this provider, credential and name."""
    return (
        Model.dangerously_unscoped.filter(
            tenant_id=tenant_id, provider=provider, credential=credential, name=name
        )
        .exclude(pk=exclude_pk)
        .exists()
    )


def _model_conflict(model: Model) -> Conflict:
    where = f"on “{model.credential.name}”" if model.credential else f"for {model.provider}"
    return Conflict(f"You already have a model named “{model.name}” {where}.")


def _save_model(model: Model) -> None:
    if model.credential is not None and model.credential.tenant_id != model.tenant_id:
        raise InvalidInput("credential: no such credential in this tenant.")
    raise_problems(
        model_problems(
            provider=model.provider,
            credential=model.credential,
            context_window=model.context_window,
            input_price=model.input_price,
            output_price=model.output_price,
            currency=model.currency,
            is_global=model.is_global,
        )
    )
    full_clean(model, exclude=["tenant", "credential"])
    if not model.is_global and model_name_taken(
        tenant_id=model.tenant_id,
        provider=model.provider,
        credential=model.credential,
        name=model.name,
        exclude_pk=model.pk,
    ):
        raise _model_conflict(model)
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError as exc:
        raise _model_conflict(model) from exc


def _apply(model: Model, data: Mapping[str, Any]) -> None:
    unknown = sorted(set(data) - set(MODEL_FIELDS))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a field of a model.")
    for field, value in data.items():
        if isinstance(value, str):
            value = value.strip().upper() if field == "currency" else value.strip()
        setattr(model, field, value)


def model_create(*, tenant: Tenant, principal: Principal, data: Mapping[str, Any]) -> Model:
    """Add one of the tenant's own models (`data`: fields named in MODEL_FIELDS)."""
    require_manage(principal)
    model = Model(tenant=tenant)
    _apply(model, data)
    with tenant_context(tenant):
        _save_model(model)
    return model


def _global_refused(model: Model, doing: str) -> Forbidden:
    return Forbidden(
        f"“{model}” is in the global catalog, which only platform operators {doing}; add "
        "your own model instead."
    )


def model_update(*, model: Model, principal: Principal, data: Mapping[str, Any]) -> Model:
    """Change a model: a tenant's own (admins), or a global catalog row's prices, limits and
    features (platform operators only)."""
    require_manage(principal)
    if model.is_global:
        if not principal.is_platform_admin:
            raise _global_refused(model, "change")
        fixed = sorted(
            field
            for field in set(data) & set(GLOBAL_FIXED_FIELDS)
            if data[field] != getattr(model, field)
        )
        if fixed:
            raise InvalidInput(f"{fixed[0]}: a global catalog entry keeps its {fixed[0]}.")
    _apply(model, data)
    with tenant_context(model.tenant):
        _save_model(model)
    return model


def model_delete(*, model: Model, principal: Principal) -> None:
    """Delete one of the tenant's own models (defaults that use it go with it). Global
    catalog rows are never deleted: every tenant may use them; disable one instead."""
    require_manage(principal)
    if model.is_global:
        if principal.is_platform_admin:
            raise Forbidden(
                f"“{model}” is in the global catalog and other tenants may use it: disable it "
                "instead of deleting it."
            )
        raise _global_refused(model, "delete")
    with transaction.atomic(), tenant_context(model.tenant):
        model.delete()
