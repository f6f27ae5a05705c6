"""Provider credentials: add, change, delete and test; the secret is write-only."""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction

from tenants.context import tenant_context
from tenants.exceptions import Conflict, InvalidInput
from tenants.models import Tenant
from tenants.permissions import Principal

from .. import crypto, services
from ..models import ProviderCredential, ProviderKind
from ..validators import base_url_error
from ._common import full_clean, raise_problems, require_manage

NEEDS_BASE_URL: dict[str, str] = {
    ProviderKind.OPENAI_COMPATIBLE: "An OpenAI-compatible server needs its base URL, "
    "e.g. http://ollama:11434/v1.",
    ProviderKind.AZURE_OPENAI: "Azure OpenAI needs the resource's base URL, "
    "e.g. https://my-resource.openai.azure.com.",
}
# Credentials exist for remote providers only; the built-in models need none.
CREDENTIAL_KIND_CHOICES = [c for c in ProviderKind.choices if c[0] != ProviderKind.OFFLINE]
CREDENTIAL_KINDS = [kind for kind, _ in CREDENTIAL_KIND_CHOICES]
MAX_WEIGHT = 32767  # PositiveSmallIntegerField
# Option names that suggest a secret: options are shown to builders, the secret never is.
SECRET_OPTION = re.compile(r"secret|passw|api[_-]?key|access[_-]?key|token$|^key$|^authorization$")


def base_url_problem(kind: str, base_url: str) -> str | None:
    """What is wrong with a credential's base URL for its kind, or None."""
    if not base_url:
        return NEEDS_BASE_URL.get(kind)
    return base_url_error(base_url)


def options_problem(options: Any) -> str | None:
    """What is wrong with a credential's options, or None."""
    if not isinstance(options, dict):
        return 'Options must be a JSON object, e.g. {"api_version": "2024-10-21"}.'
    secretish = sorted(name for name in options if SECRET_OPTION.search(str(name).lower()))
    if secretish:
        return (
            f"“{secretish[0]}” looks like a secret: put the key in the secret field (options "
            "are shown to builders, the secret never is)."
        )
    return None


def weight_problem(weight: Any) -> str | None:
    if isinstance(weight, bool) or not isinstance(weight, int):
        return "The weight must be a whole number."
    if not 1 <= weight <= MAX_WEIGHT:
        return f"The weight must be between 1 and {MAX_WEIGHT} (a share of calls)."
    return None


def credential_problems(*, kind: str, base_url: str, options: Any, weight: Any) -> dict[str, str]:
    """Field → readable message for every problem of these values (the console's form and
    the services share it)."""
    checks = {
        "base_url": base_url_problem(kind, base_url),
        "options": options_problem(options),
        "weight": weight_problem(weight),
    }
    return {field: message for field, message in checks.items() if message}


def credential_name_taken(name: str, *, exclude_pk=None) -> bool:
    """Whether the current tenant has another credential with this name."""
    return ProviderCredential.objects.filter(name=name).exclude(pk=exclude_pk).exists()


def _name_conflict(name: str) -> Conflict:
    return Conflict(f"A credential named “{name}” already exists in this tenant.")


def _save_credential(credential: ProviderCredential) -> None:
    if credential.kind not in CREDENTIAL_KINDS:
        raise InvalidInput(
            f"kind: unknown provider “{credential.kind}”; use one of {', '.join(CREDENTIAL_KINDS)}."
        )
    raise_problems(
        credential_problems(
            kind=credential.kind,
            base_url=credential.base_url,
            options=credential.options,
            weight=credential.weight,
        )
    )
    full_clean(credential, exclude=["base_url", "weight", "tenant"])
    if credential_name_taken(credential.name, exclude_pk=credential.pk):
        raise _name_conflict(credential.name)
    try:
        with transaction.atomic():
            credential.save()
    except IntegrityError as exc:  # a concurrent write took the name
        raise _name_conflict(credential.name) from exc


def credential_create(
    *,
    tenant: Tenant,
    principal: Principal,
    kind: str,
    name: str,
    base_url: str = "",
    secret: str = "",
    options: Any = None,
    enabled: bool = True,
    weight: Any = 1,
) -> ProviderCredential:
    """Add a provider credential; the secret is encrypted before it is stored."""
    require_manage(principal)
    credential = ProviderCredential(
        tenant=tenant,
        kind=kind,
        name=name.strip(),
        base_url=base_url.strip(),
        options={} if options is None else options,
        enabled=enabled,
        weight=weight,
    )
    credential.secret = secret.strip()
    with tenant_context(tenant):
        _save_credential(credential)
    return credential


def credential_update(
    *,
    credential: ProviderCredential,
    principal: Principal,
    name: str | None = None,
    base_url: str | None = None,
    secret: str | None = None,
    options: Any = None,
    enabled: bool | None = None,
    weight: Any = None,
) -> ProviderCredential:
    """Change a credential; None leaves a field as it is, and an empty secret removes the
    stored one (servers such as Ollama need none). The kind never changes: its models
    depend on it."""
    require_manage(principal)
    changes = {
        "name": name.strip() if name is not None else None,
        "base_url": base_url.strip() if base_url is not None else None,
        "options": options,
        "enabled": enabled,
        "weight": weight,
    }
    for field, value in changes.items():
        if value is not None:
            setattr(credential, field, value)
    if secret is not None:
        credential.secret = secret.strip()
    with tenant_context(credential.tenant):
        _save_credential(credential)
    return credential


def credential_delete(*, credential: ProviderCredential, principal: Principal) -> None:
    """Delete a credential, and with it the tenant's models served by it."""
    require_manage(principal)
    with transaction.atomic(), tenant_context(credential.tenant):
        credential.delete()


CANNOT_DECRYPT = (
    "The stored secret cannot be decrypted with the keys in WEFT_SECRET_KEYS; enter the "
    "secret again."
)


def credential_test(*, credential: ProviderCredential, principal: Principal) -> tuple[bool, str]:
    """Make a real request with the credential (see services.credential_check) and record
    the outcome on it; returns (worked, what the provider or the connection said), with the
    secret never part of the message."""
    require_manage(principal)
    try:
        secret = credential.secret
    except crypto.SecretUnreadable:
        with transaction.atomic():
            ProviderCredential.dangerously_unscoped.filter(pk=credential.pk).update(
                status=ProviderCredential.Status.FAILED, last_error=CANNOT_DECRYPT
            )
        credential.status = ProviderCredential.Status.FAILED
        credential.last_error = CANNOT_DECRYPT
        return False, CANNOT_DECRYPT
    with tenant_context(credential.tenant):
        worked, said = services.credential_check(credential=credential)
    if secret and secret in said:
        # A provider that echoes the key back must not put it on a page or in the trail.
        said = said.replace(secret, crypto.mask(secret))
        credential.last_error = credential.last_error.replace(secret, crypto.mask(secret))
        ProviderCredential.dangerously_unscoped.filter(pk=credential.pk).update(
            last_error=credential.last_error
        )
    return worked, said
