"""Retries with jittered exponential backoff, a circuit breaker per credential, and the
order in which a call tries its targets (credentials of a model, then fallback models)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .types import ProviderAuthFailed, ProviderUnavailable
from .wire import Retryable

T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # per target
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A Retry-After longer than this is not waited for: the next target is tried instead.
    max_retry_after: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up on this target."""
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        # "Full jitter": spreads retries of many callers hit by the same outage.
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


@dataclass
class CircuitBreaker:
    """Per key (a credential): opens after `threshold` failures in a row, refuses calls while
    open, lets one probe through after `cooldown` seconds (half-open), and closes again when
    the probe succeeds. State is per process."""

    threshold: int = 5
    cooldown: float = 30.0
    _circuits: dict[str, _Circuit] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str) -> bool:
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None or circuit.opened_at is None:
                return True
            if time.monotonic() - circuit.opened_at < self.cooldown or circuit.probing:
                return False
            circuit.probing = True
            return True

    def state(self, key: str) -> str:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return "closed"
        return "half-open" if circuit.probing else "open"

    def success(self, key: str) -> None:
        with self._lock:
            self._circuits.pop(key, None)

    def failure(self, key: str) -> None:
        with self._lock:
            circuit = self._circuits.setdefault(key, _Circuit())
            circuit.failures += 1
            if circuit.probing or circuit.failures >= self.threshold:
                circuit.opened_at = time.monotonic()
            circuit.probing = False


# The process's circuits and retry policy; tests may swap the policy for a faster one.
breaker = CircuitBreaker()
default_policy = RetryPolicy()


def weighted_order(items: Sequence[T], weight: Callable[[T], int]) -> list[T]:
    """Items in a random order where heavier ones tend to come first (load balancing)."""
    keyed = [(random.random() ** (1.0 / max(1, weight(item))), item) for item in items]  # noqa: S311
    return [item for _, item in sorted(keyed, key=lambda pair: pair[0], reverse=True)]


@dataclass(frozen=True)
class Target(Generic[K]):
    """One way to serve a call; `key` names its circuit (the credential)."""

    key: str
    value: K


async def run(
    targets: Sequence[Target[K]],
    call: Callable[[K], Awaitable[T]],
    *,
    policy: RetryPolicy | None = None,
    circuits: CircuitBreaker | None = None,
) -> tuple[K, T]:
    """Call the targets in order until one answers: retry a target on Retryable failures
    (waiting as the policy or the provider's Retry-After says), skip a target whose circuit
    is open, move on after an auth failure (another credential may work). Other errors are
    the caller's (bad request, unknown model) and stop at once."""
    policy = policy or default_policy
    circuits = circuits or breaker
    last: Exception | None = None
    for target in targets:
        if not circuits.allow(target.key):
            last = last or ProviderUnavailable("The provider is failing; its circuit is open.")
            continue
        for attempt in range(policy.attempts):
            try:
                result = await call(target.value)
            except Retryable as exc:
                circuits.failure(target.key)
                last = exc
                wait = policy.delay(attempt, exc.retry_after)
                if wait is None or attempt + 1 == policy.attempts or not circuits.allow(target.key):
                    break
                await asyncio.sleep(wait)
            except ProviderAuthFailed as exc:
                last = exc
                break
            else:
                circuits.success(target.key)
                return target.value, result
    if isinstance(last, ProviderAuthFailed):
        raise last
    message = last.message if isinstance(last, ProviderUnavailable) else "No provider answered."
    raise ProviderUnavailable(message)
