"""The runtime as Weft calls it: model choice, retries, load balancing, circuit breaking,
fallbacks, cancellation, and a UsageEvent for every call — against the fake LLM server."""

import asyncio
import time
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from providers import services
from providers.models import DefaultModel, Fallback, Model, ModelKind, ProviderKind, UsageEvent
from providers.runtime import resilience
from providers.runtime.types import (
    ChatMessage,
    Finish,
    ModelNotFound,
    ProviderAuthFailed,
    ProviderProtocolError,
    ProviderUnavailable,
    TextDelta,
)
from tenants.context import tenant_context

HELLO = [ChatMessage("user", "hello there")]


def chat(**kwargs):
    async def go():
        return [event async for event in services.chat(**kwargs)]

    return async_to_sync(go)()


def text_of(events):
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def usage_rows(tenant):
    return list(UsageEvent.dangerously_unscoped.filter(tenant=tenant).order_by("created_at"))


def set_default(tenant, kind, name, fallbacks=()):
    with tenant_context(tenant):
        default = DefaultModel.objects.create(kind=kind, model=Model.objects.get(name=name))
        for position, fallback in enumerate(fallbacks):
            Fallback.objects.create(
                default=default, model=Model.objects.get(name=fallback), position=position
            )


def test_fresh_tenant_chats_with_the_built_in_model(tenant):
    events = chat(
        tenant=tenant,
        messages=[
            ChatMessage(
                "system", "<context>Weft stores vectors in PostgreSQL with pgvector.</context>"
            ),
            ChatMessage("user", "Where does Weft store vectors?"),
        ],
    )
    assert "pgvector" in text_of(events)
    (row,) = usage_rows(tenant)
    assert row.provider == ProviderKind.OFFLINE and row.model_name == "weft-offline-chat"
    assert row.status == "ok" and row.cost == 0 and row.total_tokens > 0 and row.tokens_estimated


def test_chat_through_a_credential_is_metered_with_cost(tenant, credential, fake_llm):
    credential()
    events = chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini", app_id=None)
    assert text_of(events) == "You said: hello there"
    finish = events[-1]
    (row,) = usage_rows(tenant)
    assert (row.prompt_tokens, row.completion_tokens) == (
        finish.usage.prompt_tokens,
        finish.usage.completion_tokens,
    )
    gpt = Model.catalog.get(name="gpt-4o-mini")
    assert row.cost == gpt.cost(row.prompt_tokens, row.completion_tokens) > 0
    assert row.time_to_first_token_ms is not None and row.latency_ms >= row.time_to_first_token_ms
    assert row.credential is not None and not row.tokens_estimated


def test_retries_on_429_honouring_retry_after(tenant, credential, fake_llm):
    credential()
    fake_llm.fail_next(429, retry_after=0.2, times=2)
    started = time.monotonic()
    events = chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini")
    assert text_of(events) == "You said: hello there"
    assert len(fake_llm.requests) == 3
    assert time.monotonic() - started >= 0.4


def test_down_after_retries_is_provider_unavailable_and_metered(tenant, credential, fake_llm):
    credential()
    fake_llm.fail_next(503, times=10)
    with pytest.raises(ProviderUnavailable) as caught:
        chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini")
    assert caught.value.code == "provider_unavailable"
    assert len(fake_llm.requests) == resilience.default_policy.attempts
    (row,) = usage_rows(tenant)
    assert row.status == "error" and row.error_code == "provider_unavailable"


def test_load_balancing_skips_a_credential_with_a_wrong_key(tenant, credential, fake_llm):
    credential(name="broken", secret="sk-wrong-0000000000000000", weight=100)
    good = credential(name="good", weight=1)
    for _ in range(3):
        assert (
            text_of(chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini"))
            == "You said: hello there"
        )
    assert {row.credential_id for row in usage_rows(tenant)} == {good.pk}


def test_only_wrong_keys_is_auth_failed_without_the_secret(tenant, credential, fake_llm):
    credential(secret="sk-wrong-1111111111111111abcd")
    with pytest.raises(ProviderAuthFailed) as caught:
        chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini")
    assert "Incorrect API key" in caught.value.message
    assert "sk-wrong-1111111111111111" not in caught.value.message


def test_circuit_opens_and_then_skips_the_failing_credential(tenant, credential, fake_llm):
    credential()
    fake_llm.fail_next(500, times=100)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini")
    sent = len(fake_llm.requests)
    assert sent == resilience.breaker.threshold
    with pytest.raises(ProviderUnavailable, match="circuit is open"):
        chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini")
    assert len(fake_llm.requests) == sent  # not even tried


def test_fallback_model_answers_when_the_default_is_down(tenant, credential, fake_llm):
    credential()
    set_default(tenant, ModelKind.CHAT, "gpt-4o-mini", fallbacks=["weft-offline-chat"])
    fake_llm.fail_next(502, times=100)
    events = chat(
        tenant=tenant,
        messages=[
            ChatMessage("system", "Looms weave cloth."),
            ChatMessage("user", "What do looms do?"),
        ],
    )
    assert "Looms weave cloth" in text_of(events)
    assert usage_rows(tenant)[-1].model_name == "weft-offline-chat"


def test_unknown_model_and_missing_credential(tenant):
    with pytest.raises(ModelNotFound, match="No chat model “gpt-9”"):
        chat(tenant=tenant, messages=HELLO, model="gpt-9")
    with pytest.raises(ModelNotFound, match="no enabled credential"):
        chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini")


def test_another_tenants_model_is_not_found(tenant, other_tenant, credential):
    own = credential(kind=ProviderKind.OPENAI_COMPATIBLE, name="ollama")
    with tenant_context(tenant):
        Model.objects.create(
            tenant=tenant,
            provider=ProviderKind.OPENAI_COMPATIBLE,
            credential=own,
            name="fake-chat",
            kind=ModelKind.CHAT,
        )
    assert text_of(chat(tenant=tenant, messages=HELLO, model="fake-chat"))
    with pytest.raises(ModelNotFound):
        chat(tenant=other_tenant, messages=HELLO, model="fake-chat")


def test_broken_stream_after_text_ends_with_a_protocol_error(tenant, credential, fake_llm):
    credential()
    fake_llm.cut_stream_after(3)

    async def go():
        seen = []
        with pytest.raises(ProviderProtocolError):
            async for event in services.chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini"):
                seen.append(event)
        return seen

    seen = async_to_sync(go)()
    assert seen and not any(isinstance(e, Finish) for e in seen)
    assert usage_rows(tenant)[-1].error_code == "provider_protocol_error"
    assert len(fake_llm.requests) == 1  # text had flowed: no retry


def test_cancelling_the_caller_cancels_upstream_and_is_metered(tenant, credential, fake_llm):
    credential()
    fake_llm.hang(after_chunks=2)

    async def go():
        async def consume():
            async for _event in services.chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini"):
                pass

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async_to_sync(go)()
    fake_llm.wait_until(lambda: fake_llm.cancelled == 1)
    assert usage_rows(tenant)[-1].status == "cancelled"


def test_embed_and_rerank_default_to_built_in_and_are_metered(tenant):
    vectors = async_to_sync(services.embed)(tenant=tenant, texts=["loom", "weaving loom", "soup"])
    assert len(vectors.vectors) == 3 and len(vectors.vectors[0]) == 512
    ranking = async_to_sync(services.rerank)(
        tenant=tenant, query="weaving loom", documents=["soup recipe", "a weaving loom"]
    )
    assert ranking.ranking[0][0] == 1
    assert [row.operation for row in usage_rows(tenant)] == ["embedding", "rerank"]


def test_embed_through_a_credential(tenant, credential, fake_llm):
    credential()
    result = async_to_sync(services.embed)(
        tenant=tenant, texts=["a", "b"], model="text-embedding-3-small"
    )
    assert len(result.vectors) == 2
    row = usage_rows(tenant)[-1]
    assert (
        row.model_name == "text-embedding-3-small"
        and row.cost == Decimal("0.02") * row.prompt_tokens / 1_000_000
    )


def test_anthropic_through_a_credential(tenant, credential, fake_llm):
    credential(kind=ProviderKind.ANTHROPIC)
    events = chat(tenant=tenant, messages=HELLO, model="claude-3-5-haiku-latest")
    assert text_of(events) == "You said: hello there"
    assert usage_rows(tenant)[-1].provider == ProviderKind.ANTHROPIC


def test_leaving_after_the_finish_event_is_not_a_cancellation(tenant, credential, fake_llm):
    credential()

    async def go():
        async for event in services.chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini"):
            if isinstance(event, Finish):
                break

    async_to_sync(go)()
    (row,) = usage_rows(tenant)
    assert row.status == "ok" and row.completion_tokens > 0


def test_calls_on_one_loop_share_one_client(tenant, credential, fake_llm):
    from providers.http import shared_client

    credential()

    async def go():
        first = shared_client()
        for _ in range(2):
            await services.chat_text(tenant=tenant, messages=HELLO, model="gpt-4o-mini")
        return first is shared_client() and not first.is_closed

    assert async_to_sync(go)()


def test_a_tenants_own_model_wins_over_the_catalog_entry_of_the_same_name(
    tenant, credential, fake_llm
):
    server = credential(kind=ProviderKind.OPENAI_COMPATIBLE, name="gateway")
    with tenant_context(tenant):
        own = Model.objects.create(
            tenant=tenant,
            provider=ProviderKind.OPENAI_COMPATIBLE,
            credential=server,
            name="gpt-4o-mini",
            kind=ModelKind.CHAT,
            input_price=Decimal("1"),
        )
    chat(tenant=tenant, messages=HELLO, model="gpt-4o-mini")
    row = usage_rows(tenant)[-1]
    assert row.provider == ProviderKind.OPENAI_COMPATIBLE and row.credential_id == server.pk
    assert row.cost == own.cost(row.prompt_tokens, row.completion_tokens)
