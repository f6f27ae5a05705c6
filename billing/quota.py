"""The one place limits are checked and use is counted.

- Counted metrics (messages, tokens, workflow runs) add up per period in a `Counter` row.
  `consume` raises it with one conditional UPDATE (`used + n <= limit`), so parallel calls
  at the edge of a limit never pass it together; call it in the transaction that writes
  what is being counted, and a failure undoes both.
- Capacity metrics (members, apps, documents, storage, vector chunks) are recounted from
  the database by `capacity`, under a transaction-scoped advisory lock per tenant and metric
  so that two creations at once cannot both take the last place.
- Requests per minute are a sliding window in Redis (`api_request` and
  `api_request_async`), which also counts the day's API requests for the ledger.

A metric whose plan sets an overage price does not stop at its limit: the use past it is
billed. Over a hard limit the caller gets `QuotaExceeded` (402, which limit, used, limit and
when it resets), over the rate `RateLimited` (429 with Retry-After).
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import math
import time
import zlib
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tenants import windows
from tenants.exceptions import WeftError
from tenants.models import Tenant
from tenants.windows import Tally

from .models import (
    CAPACITY,
    COUNTED,
    LIMIT_FIELD,
    OVERAGE_FIELD,
    Alert,
    Counter,
    Metric,
    Override,
    Plan,
    Subscription,
    UsageRecord,
)

THRESHOLDS = (80, 100)
RATE_WINDOW = 60.0


class QuotaExceeded(WeftError):
    """A plan's limit is reached: which one, how much is used, and when it resets."""

    code = "quota_exceeded"
    status = 402

    def __init__(self, metric: str, used: int, limit: int, resets_at: dt.datetime | None):
        label = Metric(metric).label
        when = (
            f" It resets on {resets_at:%Y-%m-%d %H:%M} UTC."
            if resets_at is not None
            else " Remove some, or ask for a larger plan."
        )
        super().__init__(f"Quota exceeded: {label} — {used:,} of {limit:,} used.{when}")
        self.metric, self.used, self.limit, self.resets_at = metric, used, limit, resets_at

    @property
    def extra(self) -> dict[str, Any]:
        return {
            "limit_name": self.metric,
            "used": self.used,
            "limit": self.limit,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
        }


class RateLimited(WeftError):
    """The tenant's requests per minute are spent."""

    code = "rate_limited"
    status = 429

    def __init__(self, limit: int, retry_after: int):
        super().__init__(
            f"Rate limit exceeded: this workspace's plan allows {limit:,} API requests per "
            f"minute. Retry in {retry_after} s."
        )
        self.limit, self.retry_after = limit, retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

    @property
    def extra(self) -> dict[str, Any]:
        return {"limit_name": Metric.REQUESTS_PER_MINUTE.value, "limit": self.limit}


# --- Plans and periods -----------------------------------------------------------------------


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def month_start(moment: dt.datetime) -> dt.datetime:
    moment = moment.astimezone(dt.UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def default_plan() -> Plan:
    """The plan of tenants without a subscription (made, with no limits, if none is)."""
    found = Plan.objects.filter(is_default=True).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Plan.objects.create(slug="default", name="Default", is_default=True)
    except IntegrityError:
        return Plan.objects.get(is_default=True)


def first_period(plan: Plan, now: dt.datetime) -> dict[str, Any]:
    """A new subscription's first period: the plan's free trial from today (a period of its
    own), or else this calendar month."""
    if plan.trial_days:
        start = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(days=plan.trial_days)
        return {
            "period_start": start,
            "period_end": end,
            "status": Subscription.Status.TRIALING,
            "trial_ends_at": end,
        }
    start = month_start(now)
    return {"period_start": start, "period_end": add_months(start, plan.period_months)}


def subscription_for(tenant: Tenant) -> Subscription:
    """The tenant's subscription; a tenant with none is put on the default plan (see
    `first_period`)."""
    found = (
        Subscription.dangerously_unscoped.select_related("plan").filter(tenant_id=tenant.pk).first()
    )
    if found is not None:
        return found
    plan = default_plan()
    try:
        with transaction.atomic():
            return Subscription.dangerously_unscoped.create(
                tenant=tenant, plan=plan, **first_period(plan, timezone.now())
            )
    except IntegrityError:  # made by a parallel request
        return Subscription.dangerously_unscoped.select_related("plan").get(tenant_id=tenant.pk)


def current_period(
    subscription: Subscription, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """The period `now` falls in: the subscription's, or (before the close job has moved it
    on) the one after it, counted in whole periods."""
    now = now or timezone.now()
    start, end = subscription.period_start, subscription.period_end
    months = subscription.plan.period_months
    while now >= end:
        start, end = end, add_months(end, months)
    return start, end


@dataclass(frozen=True)
class Limits:
    """The limits in force for one tenant now."""

    subscription: Subscription
    plan: Plan
    overrides: dict[str, int | None]
    period_start: dt.datetime
    period_end: dt.datetime

    def limit(self, metric: str) -> int | None:
        if metric in self.overrides:
            return self.overrides[metric]
        if metric not in LIMIT_FIELD:
            return None
        return self.plan.limit(metric)

    def overage_price(self, metric: str):
        field = OVERAGE_FIELD.get(Metric(metric))
        return getattr(self.plan, field[0]) if field else None

    def hard(self, metric: str) -> int | None:
        """The limit that stops use (None when there is none, or overage is billed)."""
        return None if self.overage_price(metric) is not None else self.limit(metric)


# Limits read in the last few seconds, per tenant: every request and message needs them.
# A change made in this process forgets them at once (signals); other processes see it
# within LIMITS_TTL seconds.
LIMITS_TTL = 5.0
_limits: dict[Any, tuple[float, Limits]] = {}


def forget(tenant_id: Any = None) -> None:
    """Drop the limits held for a tenant (all tenants without one)."""
    if tenant_id is None:
        _limits.clear()
    else:
        _limits.pop(str(tenant_id), None)


def limits_for(tenant: Tenant) -> Limits:
    """The limits in force for the tenant now."""
    held = _held(tenant)
    if held is not None:
        return held
    limits = limits_of(subscription_for(tenant))
    _limits[str(tenant.pk)] = (time.monotonic() + LIMITS_TTL, limits)
    return limits


def limits_of(subscription: Subscription, now: dt.datetime | None = None) -> Limits:
    """The limits of a subscription as it is given (the period close passes the row it
    has locked), in the period `now` falls in."""
    overrides = dict(
        Override.dangerously_unscoped.filter(subscription=subscription).values_list(
            "metric", "limit"
        )
    )
    start, end = current_period(subscription, now)
    return Limits(subscription, subscription.plan, overrides, start, end)


def _held(tenant: Tenant) -> Limits | None:
    held = _limits.get(str(tenant.pk))
    if held is None or held[0] <= time.monotonic() or held[1].period_end <= timezone.now():
        return None
    return held[1]


def feature(tenant: Tenant, name: str) -> bool:
    """A plan's feature flag (`remove_powered_by`, `custom_domains`, `sso`)."""
    return bool(getattr(limits_for(tenant).plan, name))


# --- Counted metrics -------------------------------------------------------------------------


def _counter_row(tenant: Tenant, metric: str, period_start: dt.datetime) -> None:
    Counter.dangerously_unscoped.bulk_create(
        [Counter(tenant=tenant, metric=metric, period_start=period_start)],
        ignore_conflicts=True,
    )


def used(tenant: Tenant, metric: str, limits: Limits | None = None) -> int:
    """This period's use of a counted metric, or the current amount of a capacity one."""
    limits = limits or limits_for(tenant)
    if metric in CAPACITY:
        from .usage import count_capacity

        return count_capacity(tenant, metric)
    return (
        Counter.dangerously_unscoped.filter(
            tenant_id=tenant.pk, metric=metric, period_start=limits.period_start
        )
        .values_list("used", flat=True)
        .first()
        or 0
    )


def check(tenant: Tenant, metric: str, amount: int = 1) -> None:
    """QuotaExceeded when `amount` more of a counted metric would pass its hard limit
    (for a use whose size is known only afterwards, such as tokens: checked before,
    consumed after)."""
    limits = limits_for(tenant)
    hard = limits.hard(metric)
    if hard is None:
        return
    now_used = used(tenant, metric, limits)
    if now_used + amount > hard:
        raise QuotaExceeded(metric, now_used, hard, limits.period_end)


def consume(
    tenant: Tenant,
    metric: str,
    amount: int = 1,
    *,
    app_id: Any = None,
    enforce: bool = True,
    record: bool = True,
) -> int:
    """Count `amount` of a counted metric; QuotaExceeded (and nothing counted) when it
    would pass the hard limit and `enforce`. The new total. `record` also writes the
    ledger's UsageRecord (tokens have theirs: the model call's UsageEvent)."""
    if metric not in COUNTED:
        raise ValueError(f"{metric} is not a counted metric")
    amount = int(amount)
    if amount <= 0:
        return used(tenant, metric)
    limits = limits_for(tenant)
    hard = limits.hard(metric) if enforce else None
    with transaction.atomic() if record else contextlib.nullcontext():
        total = _add_within(tenant, metric, amount, limits.period_start, hard)
        if total is None:
            _counter_row(tenant, metric, limits.period_start)  # the period's first use
            total = _add_within(tenant, metric, amount, limits.period_start, hard)
        if total is None:
            assert hard is not None  # noqa: S101 - without a limit the row takes any amount
            raise QuotaExceeded(metric, used(tenant, metric, limits), hard, limits.period_end)
        if record:
            UsageRecord.dangerously_unscoped.create(
                tenant=tenant, metric=metric, quantity=amount, app_id=app_id
            )
        _maybe_alert(tenant, metric, total - amount, total, limits)
    return total


def _add_within(tenant: Tenant, metric: str, amount: int, period_start, hard: int | None):
    """Add `amount` to the counter in one statement, only if it stays within `hard`: the
    new total, or None (no row yet, or the limit would be passed)."""
    within = "" if hard is None else " AND used <= %s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Counter._meta.db_table} SET used = used + %s "  # noqa: S608 - no input
            f"WHERE tenant_id = %s AND metric = %s AND period_start = %s{within} RETURNING used",
            [amount, tenant.pk, metric, period_start, *([] if hard is None else [hard - amount])],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _maybe_alert(tenant: Tenant, metric: str, before: int, after: int, limits: Limits) -> None:
    limit = limits.limit(metric)
    if not limit:
        return
    for threshold in THRESHOLDS:
        edge = math.ceil(limit * threshold / 100)
        if before < edge <= after:
            _alert(tenant, metric, threshold, after, limit, limits.period_start)


def _alert(tenant, metric, threshold, now_used, limit, period_start) -> None:
    """Note the warning once per period, and e-mail it when the transaction commits."""
    _, created = Alert.dangerously_unscoped.get_or_create(
        tenant=tenant,
        metric=metric,
        period_start=period_start,
        threshold=threshold,
        defaults={"used": now_used, "limit": limit},
    )
    if created:
        from .tasks import send_alert

        alert_key = (str(tenant.pk), metric, period_start.isoformat(), threshold)
        transaction.on_commit(lambda: send_alert.delay(*alert_key))


# --- Capacity metrics ------------------------------------------------------------------------


def capacity(tenant: Tenant, metric: str, adding: int = 1) -> None:
    """QuotaExceeded when `adding` more would pass the tenant's capacity limit. Call it in
    the transaction that adds them: the lock it takes holds other additions of the same
    metric for the tenant until that transaction ends."""
    if metric not in CAPACITY:
        raise ValueError(f"{metric} is not a capacity metric")
    limits = limits_for(tenant)
    limit = limits.limit(metric)
    if limit is None or adding <= 0:
        return
    if connection.in_atomic_block:
        key = zlib.crc32(f"{tenant.pk}:{metric}".encode())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7011, key - 2**31])
    from .usage import count_capacity

    current = count_capacity(tenant, metric)
    if current + adding > limit:
        raise QuotaExceeded(metric, current, limit, None)
    _maybe_alert(tenant, metric, current, current + adding, limits)


# --- API requests: the rate per minute, and the count per day ------------------------------

# Days the per-day API counts stay in Redis: the roll-up copies them into the ledger long
# before (it runs every 15 minutes for today and yesterday).
API_DAYS_KEPT = 40
NO_APP = "-"


def api_day_key(tenant_id: Any, day: dt.date) -> str:
    return f"weft:api:{tenant_id}:{day.isoformat()}"


def _window(tenant: Tenant, limit: int | None, app_id: Any) -> dict[str, Any]:
    """The tenant's window and the day's count, as `tenants.windows.take` takes them: one
    round trip, and nothing in the database on a request's path."""
    day = timezone.now().astimezone(dt.UTC).date()
    tally = Tally(
        api_day_key(tenant.pk, day), str(app_id) if app_id else NO_APP, API_DAYS_KEPT * 86400
    )
    return {
        "key": f"weft:tenant-rpm:{tenant.pk}",
        "limit": limit or 0,
        "window": RATE_WINDOW,
        "tally": tally,
    }


def api_request(tenant: Tenant, app_id: Any = None) -> None:
    """An API request: counted against the tenant's requests per minute (RateLimited past
    it) and in the day's API requests."""
    limit = limits_for(tenant).limit(Metric.REQUESTS_PER_MINUTE)
    if retry := windows.take_sync(**_window(tenant, limit, app_id)):
        raise RateLimited(limit or 0, retry)


async def api_request_async(tenant: Tenant, app_id: Any = None) -> None:
    """`api_request` for async views (the limits read on the request gate's threads when
    they are not held)."""
    from tenants.aio import database

    limits = _held(tenant) or await database(limits_for)(tenant)
    limit = limits.limit(Metric.REQUESTS_PER_MINUTE)
    if retry := await windows.take(**_window(tenant, limit, app_id)):
        raise RateLimited(limit or 0, retry)
