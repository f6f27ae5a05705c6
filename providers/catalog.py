"""The global model catalog: the built-in offline models and the main hosted models, with
list prices per million tokens (USD) as published when this file was last edited. Operators
change prices in the console; `catalog_sync` adds new entries and never overwrites edits."""

from __future__ import annotations

from decimal import Decimal

from .models import Model, ModelKind, ProviderKind

OPENAI_TEST_MODEL = "gpt-4o-mini"
ANTHROPIC_TEST_MODEL = "claude-3-5-haiku-latest"

D = Decimal

ENTRIES: list[dict] = [
    # Built-in, offline, free: a fresh install works end to end with no key.
    dict(
        provider=ProviderKind.OFFLINE,
        name="weft-offline-chat",
        label="Built-in extractive chat",
        kind=ModelKind.CHAT,
        context_window=32768,
        max_output_tokens=1024,
        supports_json_schema=True,
    ),
    dict(
        provider=ProviderKind.OFFLINE,
        name="weft-offline-embedding",
        label="Built-in hashing embedder",
        kind=ModelKind.EMBEDDING,
        context_window=8192,
        dimensions=512,
    ),
    dict(
        provider=ProviderKind.OFFLINE,
        name="weft-offline-rerank",
        label="Built-in lexical reranker",
        kind=ModelKind.RERANK,
        context_window=8192,
    ),
    # OpenAI
    dict(
        provider=ProviderKind.OPENAI,
        name="gpt-4o",
        kind=ModelKind.CHAT,
        context_window=128000,
        max_output_tokens=16384,
        supports_tools=True,
        supports_json_schema=True,
        supports_vision=True,
        input_price=D("2.50"),
        output_price=D("10.00"),
    ),
    dict(
        provider=ProviderKind.OPENAI,
        name="gpt-4o-mini",
        kind=ModelKind.CHAT,
        context_window=128000,
        max_output_tokens=16384,
        supports_tools=True,
        supports_json_schema=True,
        supports_vision=True,
        input_price=D("0.15"),
        output_price=D("0.60"),
    ),
    dict(
        provider=ProviderKind.OPENAI,
        name="gpt-4.1",
        kind=ModelKind.CHAT,
        context_window=1047576,
        max_output_tokens=32768,
        supports_tools=True,
        supports_json_schema=True,
        supports_vision=True,
        input_price=D("2.00"),
        output_price=D("8.00"),
    ),
    dict(
        provider=ProviderKind.OPENAI,
        name="gpt-4.1-mini",
        kind=ModelKind.CHAT,
        context_window=1047576,
        max_output_tokens=32768,
        supports_tools=True,
        supports_json_schema=True,
        supports_vision=True,
        input_price=D("0.40"),
        output_price=D("1.60"),
    ),
    dict(
        provider=ProviderKind.OPENAI,
        name="text-embedding-3-small",
        kind=ModelKind.EMBEDDING,
        context_window=8191,
        dimensions=1536,
        input_price=D("0.02"),
    ),
    dict(
        provider=ProviderKind.OPENAI,
        name="text-embedding-3-large",
        kind=ModelKind.EMBEDDING,
        context_window=8191,
        dimensions=3072,
        input_price=D("0.13"),
    ),
    # Anthropic
    dict(
        provider=ProviderKind.ANTHROPIC,
        name="claude-3-5-haiku-latest",
        kind=ModelKind.CHAT,
        context_window=200000,
        max_output_tokens=8192,
        supports_tools=True,
        supports_json_schema=True,
        input_price=D("0.80"),
        output_price=D("4.00"),
    ),
    dict(
        provider=ProviderKind.ANTHROPIC,
        name="claude-sonnet-4-0",
        kind=ModelKind.CHAT,
        context_window=200000,
        max_output_tokens=64000,
        supports_tools=True,
        supports_json_schema=True,
        supports_vision=True,
        input_price=D("3.00"),
        output_price=D("15.00"),
    ),
    dict(
        provider=ProviderKind.ANTHROPIC,
        name="claude-opus-4-0",
        kind=ModelKind.CHAT,
        context_window=200000,
        max_output_tokens=32000,
        supports_tools=True,
        supports_json_schema=True,
        supports_vision=True,
        input_price=D("15.00"),
        output_price=D("75.00"),
    ),
]


def catalog_sync() -> int:
    """Add the catalog entries that are missing; returns how many were added."""
    added = 0
    for entry in ENTRIES:
        _, created = Model.catalog.get_or_create(
            provider=entry["provider"], name=entry["name"], defaults=entry
        )
        added += created
    return added
