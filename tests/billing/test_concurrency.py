"""Many callers at the edge of a limit at once: never more than the limit gets through.

In process, 50 threads (each with its own database connection) consume from one counter;
over HTTP, 50 clients send chat messages to the live Daphne at once. The figures are printed
(`-s`) for the record, never asserted on time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection

from apps.models import App, Message
from billing import quota
from billing.models import Counter, Metric, UsageRecord
from tests.apps import live

pytestmark = pytest.mark.django_db(transaction=True)

daphne_server = live.daphne_server
service_api = live.service_api
PARALLEL = 50
LIMIT = 20


def _at_once(count: int, work):
    """Run `work` in `count` threads released together; their results."""
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        try:
            return work()
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_fifty_parallel_consumptions_never_pass_the_limit(tenant, on_plan):
    on_plan(tenant, messages_per_period=LIMIT)

    def take():
        try:
            quota.consume(tenant, Metric.MESSAGES)
            return "ok"
        except quota.QuotaExceeded:
            return "refused"

    started = time.perf_counter()
    outcomes = _at_once(PARALLEL, take)
    took = time.perf_counter() - started
    print(
        f"\n{PARALLEL} parallel consume() at a limit of {LIMIT}: {outcomes.count('ok')} "
        f"admitted, {outcomes.count('refused')} refused, in {took * 1000:.0f} ms"
    )
    assert outcomes.count("ok") == LIMIT and outcomes.count("refused") == PARALLEL - LIMIT
    assert Counter.dangerously_unscoped.get(tenant=tenant, metric=Metric.MESSAGES).used == LIMIT
    assert UsageRecord.dangerously_unscoped.filter(tenant=tenant).count() == LIMIT


def test_parallel_creations_never_pass_a_capacity_limit(tenant, on_plan):
    from apps.services.apps import app_create

    on_plan(tenant, max_apps=3)
    names = iter(range(PARALLEL))
    lock = threading.Lock()

    def create():
        with lock:
            name = f"App {next(names)}"
        try:
            app_create(tenant=tenant, name=name, mode=App.Mode.CHAT)
            return "ok"
        except quota.QuotaExceeded:
            return "refused"

    outcomes = _at_once(20, create)
    assert outcomes.count("ok") == 3
    assert App.dangerously_unscoped.filter(tenant=tenant).count() == 3


def test_fifty_parallel_chat_requests_at_the_edge_over_http(tenant, on_plan, service_api):
    """Through the Service API on the live server: exactly the limit's worth of messages are
    answered, the rest get 402 `quota_exceeded`, and no message row is left over."""
    api = service_api()  # a chat app on the built-in model
    on_plan(tenant, messages_per_period=LIMIT)

    def ask(index):
        return httpx.post(
            f"{api.base_url}/v1/chat-messages",
            headers={"Authorization": f"Bearer {api.key}"},
            json={
                "inputs": {},
                "query": f"hello {index}",
                "user": f"u{index}",
                "response_mode": "blocking",
                "auto_generate_name": False,
            },
            timeout=120,
        )

    barrier = threading.Barrier(PARALLEL)

    def one(index):
        barrier.wait()
        return ask(index)

    started = time.perf_counter()
    with ThreadPoolExecutor(PARALLEL) as pool:
        responses = list(pool.map(one, range(PARALLEL)))
    took = time.perf_counter() - started
    statuses = [r.status_code for r in responses]
    print(
        f"\n{PARALLEL} parallel chat-messages at a limit of {LIMIT}: {statuses.count(200)} "
        f"answered, {statuses.count(402)} refused with 402, in {took:.1f} s"
    )
    assert statuses.count(200) == LIMIT and statuses.count(402) == PARALLEL - LIMIT, statuses
    refused = next(r for r in responses if r.status_code == 402).json()
    assert refused["code"] == "quota_exceeded" and refused["limit_name"] == "messages"
    assert refused["used"] == LIMIT and refused["limit"] == LIMIT and refused["resets_at"]
    assert Message.dangerously_unscoped.filter(app__tenant=tenant).count() == LIMIT
    assert Counter.dangerously_unscoped.get(tenant=tenant, metric=Metric.MESSAGES).used == LIMIT
