"""Retry policy, circuit breaker and target order, as pure logic (the network-facing
behaviour is tested against the fake LLM server in test_runtime_*)."""

import time

import pytest
from asgiref.sync import async_to_sync

from providers.runtime import resilience
from providers.runtime.resilience import CircuitBreaker, RetryPolicy, Target
from providers.runtime.types import ProviderAuthFailed, ProviderBadRequest, ProviderUnavailable
from providers.runtime.wire import Retryable

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002)


def run(targets, call, **kwargs):
    return async_to_sync(resilience.run)(targets, call, **kwargs)


def test_backoff_is_jittered_exponential_and_honours_retry_after():
    policy = RetryPolicy(base_delay=0.5, max_delay=8, max_retry_after=20)
    for attempt in range(6):
        assert 0 <= policy.delay(attempt, None) <= min(8, 0.5 * 2**attempt)
    assert len({policy.delay(3, None) for _ in range(20)}) > 1
    assert policy.delay(0, 2.5) == 2.5
    assert policy.delay(0, 60) is None  # too long: move on to another target


def test_breaker_opens_after_threshold_and_probes_once_after_cooldown():
    breaker = CircuitBreaker(threshold=3, cooldown=0.05)
    for _ in range(3):
        assert breaker.allow("c")
        breaker.failure("c")
    assert not breaker.allow("c") and breaker.state("c") == "open"
    time.sleep(0.06)
    assert breaker.allow("c")  # the one probe
    assert not breaker.allow("c") and breaker.state("c") == "half-open"
    breaker.failure("c")  # probe failed: open again
    assert not breaker.allow("c")
    time.sleep(0.06)
    assert breaker.allow("c")
    breaker.success("c")
    assert breaker.state("c") == "closed" and breaker.allow("c") and breaker.allow("c")


def test_retries_then_succeeds_on_same_target():
    calls = []

    async def call(value):
        calls.append(value)
        if len(calls) < 3:
            raise Retryable("busy", status=503)
        return "ok"

    assert run([Target("a", "A")], call, policy=FAST, circuits=CircuitBreaker()) == ("A", "ok")
    assert calls == ["A", "A", "A"]


def test_moves_to_next_target_after_attempts_and_on_auth_failure():
    calls = []

    async def call(value):
        calls.append(value)
        if value == "A":
            raise Retryable("down", status=502)
        if value == "B":
            raise ProviderAuthFailed("bad key")
        return "served"

    targets = [Target("a", "A"), Target("b", "B"), Target("c", "C")]
    assert run(targets, call, policy=FAST, circuits=CircuitBreaker()) == ("C", "served")
    assert calls == ["A", "A", "A", "B", "C"]


def test_bad_request_stops_at_once():
    calls = []

    async def call(value):
        calls.append(value)
        raise ProviderBadRequest("too long")

    with pytest.raises(ProviderBadRequest):
        run([Target("a", "A"), Target("b", "B")], call, policy=FAST, circuits=CircuitBreaker())
    assert calls == ["A"]


def test_all_down_is_provider_unavailable_with_the_last_message():
    async def call(value):
        raise Retryable(f"{value} is overloaded", status=529)

    with pytest.raises(ProviderUnavailable, match="B is overloaded"):
        run([Target("a", "A"), Target("b", "B")], call, policy=FAST, circuits=CircuitBreaker())


def test_open_circuit_is_skipped():
    breaker = CircuitBreaker(threshold=1, cooldown=60)
    breaker.failure("a")
    calls = []

    async def call(value):
        calls.append(value)
        return value

    assert run([Target("a", "A"), Target("b", "B")], call, policy=FAST, circuits=breaker) == (
        "B",
        "B",
    )
    assert calls == ["B"]


def test_weighted_order_prefers_heavier_items():
    firsts = [
        resilience.weighted_order(["light", "heavy"], {"light": 1, "heavy": 9}.get)[0]
        for _ in range(2000)
    ]
    share = firsts.count("heavy") / len(firsts)
    assert 0.85 < share < 0.95  # 9 / (9 + 1)
