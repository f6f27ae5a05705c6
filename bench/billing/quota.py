"""What a quota check costs, against the cheapest thing that could do its job, measured in
the same run.

    .venv/bin/python bench/billing/quota.py [--calls 2000] [--threads 50]

- `consume()` of a counted metric with a limit (one conditional UPDATE … RETURNING, the
  ledger's insert, in a transaction) against a bare `UPDATE … SET used = used + 1` of the
  same row: per call, one caller, then `--threads` callers at once on one tenant's counter
  (the row lock they share is the point of the test);
- `api_request()` (the tenant's sliding window and the day's count, one Lua script) against
  a bare Redis `INCR`.

The database must be migrated (`.venv/bin/python manage.py migrate`). The throwaway tenant
is deleted at the end, even on failure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def timed(fn, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def parallel(fn, calls: int, threads: int) -> float:
    """Calls per second with `threads` callers sharing `calls`."""
    from django.db import connection

    barrier = threading.Barrier(threads)
    share = calls // threads

    def run(_):
        barrier.wait()
        try:
            for _ in range(share):
                fn()
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    return share * threads / (time.perf_counter() - started)


def row(name: str, values: list[float], base: list[float]) -> str:
    p50, b50 = statistics.median(values), statistics.median(base)
    p95 = statistics.quantiles(values, n=20)[18]
    b95 = statistics.quantiles(base, n=20)[18]
    return (
        f"| {name} | {p50:.3f} | {p95:.3f} | {b50:.3f} | {b95:.3f} | "
        f"{p50 / b50:.1f}x | {p95 / b95:.1f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=50)
    options = parser.parse_args()
    setup_django()

    from django.db import connection, transaction

    from billing import quota
    from billing.models import Counter, Metric, Plan
    from tenants.models import Tenant

    tenant = Tenant.objects.create(slug=f"bench-{uuid.uuid4().hex[:8]}", name="Bench")
    plan = Plan.objects.create(
        slug=f"bench-{uuid.uuid4().hex[:8]}",
        name="Bench",
        messages_per_period=10**12,
        requests_per_minute=10**9,
    )
    try:
        subscription = quota.subscription_for(tenant)
        subscription.plan = plan
        subscription.save()
        quota.consume(tenant, Metric.MESSAGES)  # the period's row exists from here
        counter = Counter.dangerously_unscoped.get(tenant=tenant, metric=Metric.MESSAGES)

        def bare_update():
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE billing_counter SET used = used + 1 WHERE id = %s", [counter.pk]
                )

        def consume():
            with transaction.atomic():
                quota.consume(tenant, Metric.MESSAGES)

        from tenants.windows import redis_client

        redis = redis_client()
        bare_key = f"weft:bench:{uuid.uuid4().hex}"

        def bare_incr():
            redis.incr(bare_key)

        def api_request():
            quota.api_request(tenant)

        for fn in (bare_update, consume, bare_incr, api_request):
            timed(fn, 50)  # warm up
        print(f"{options.calls} calls each, one caller (ms per call)\n")
        print("| call | p50 | p95 | baseline p50 | baseline p95 | p50 ratio | p95 ratio |")
        print("|---|---|---|---|---|---|---|")
        print(
            row(
                "consume() vs bare UPDATE",
                timed(consume, options.calls),
                timed(bare_update, options.calls),
            )
        )
        print(
            row(
                "api_request() vs Redis INCR",
                timed(api_request, options.calls),
                timed(bare_incr, options.calls),
            )
        )
        base = parallel(bare_update, options.calls, options.threads)
        ours = parallel(consume, options.calls, options.threads)
        print(
            f"\n{options.threads} callers at once on one counter: consume() {ours:,.0f}/s, "
            f"bare UPDATE {base:,.0f}/s ({ours / base:.2f}x the baseline)"
        )
        used = Counter.dangerously_unscoped.get(pk=counter.pk).used
        share = options.calls // options.threads * options.threads
        expected = 1 + 2 * (50 + options.calls + share)  # both kinds of calls add one
        print(f"counter after the run: {used:,}, calls made: {expected:,}")
        redis.delete(bare_key)
    finally:
        tenant.delete()
        plan.delete()


if __name__ == "__main__":
    main()
