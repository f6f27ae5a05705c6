"""Fixtures for the model runtime's tests: the fake LLM reachable through the guarded
client, quick retries, fresh circuits, and a tenant with credentials for it."""

import pytest

from providers import http as guarded
from providers.models import ProviderCredential, ProviderKind
from providers.runtime import resilience
from tenants.context import tenant_context


@pytest.fixture(autouse=True)
def runtime_state(settings, monkeypatch):
    """Loopback allowed (the fake LLM lives there), fast retries, all circuits closed."""
    settings.WEFT_OUTBOUND_ALLOWLIST = ["127.0.0.0/8"]
    guarded.reset_allowlist()
    monkeypatch.setattr(
        resilience, "default_policy", resilience.RetryPolicy(base_delay=0.01, max_delay=0.05)
    )
    resilience.breaker._circuits.clear()
    yield
    resilience.breaker._circuits.clear()
    guarded.reset_allowlist()


@pytest.fixture
def credential(tenant, fake_llm):
    """make(kind="openai", secret=fake key, **fields) -> a credential pointing at the fake."""

    def make(kind=ProviderKind.OPENAI, secret=None, name=None, **fields):
        base = fake_llm.openai_base_url if kind != ProviderKind.ANTHROPIC else fake_llm.base_url
        if kind == ProviderKind.AZURE_OPENAI:
            base = fake_llm.base_url
        with tenant_context(tenant):
            row = ProviderCredential(
                kind=kind,
                name=name or f"{kind}-{ProviderCredential.objects.count() + 1}",
                base_url=fields.pop("base_url", base),
                **fields,
            )
            row.secret = fake_llm.api_key if secret is None else secret
            row.save()
        return row

    return make
