"""The usage ledger: capacity counted from the database, and the roll-up of a day's use
into `UsageDay` rows (by metric, app and model), rebuilt whole each time so that running it
again gives the same numbers. Reports read the ledger."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from tenants.models import Membership, Tenant
from tenants.roles import Role

from .models import CAPACITY, COUNTED, OVERAGE_FIELD, Metric, UsageDay, UsageRecord


def admin_emails(tenant: Tenant) -> list[str]:
    """Where billing mail goes when no billing address is set: the owners and admins."""
    return sorted(
        Membership.dangerously_unscoped.filter(
            tenant=tenant, role__in=[Role.OWNER, Role.ADMIN]
        ).values_list("user__email", flat=True)
    )


def count_capacity(tenant: Tenant, metric: str) -> int:
    """How much of a capacity metric the tenant holds now."""
    from apps.models import App, UploadFile
    from knowledge.models import Chunk, Document

    if metric == Metric.MEMBERS:
        return Membership.dangerously_unscoped.filter(tenant_id=tenant.pk).count()
    if metric == Metric.APPS:
        return App.dangerously_unscoped.filter(tenant_id=tenant.pk).count()
    if metric == Metric.DOCUMENTS:
        return Document.dangerously_unscoped.filter(tenant_id=tenant.pk).count()
    if metric == Metric.VECTOR_CHUNKS:
        # A document being indexed counts as the chunks it will hold, whatever it has
        # written so far.
        settled = Chunk.dangerously_unscoped.filter(
            tenant_id=tenant.pk, document__chunks_planned=0
        ).count()
        planned = Document.dangerously_unscoped.filter(tenant_id=tenant.pk).aggregate(
            n=Coalesce(Sum("chunks_planned"), 0)
        )["n"]
        return settled + int(planned)
    if metric == Metric.STORAGE_BYTES:
        documents = Document.dangerously_unscoped.filter(tenant_id=tenant.pk).aggregate(
            n=Coalesce(Sum("size"), 0)
        )["n"]
        uploads = UploadFile.dangerously_unscoped.filter(tenant_id=tenant.pk).aggregate(
            n=Coalesce(Sum("size"), 0)
        )["n"]
        return int(documents) + int(uploads)
    raise ValueError(f"{metric} is not a capacity metric")


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def rollup_day(tenant: Tenant, day: dt.date) -> dict[str, int]:
    """Rebuild the tenant's ledger rows of `day` (UTC) from the usage records and model
    calls; the capacity metrics are recorded for today only (past days keep theirs). The
    capacity counted (for today; empty for another day)."""
    from providers.models import UsageEvent

    start, end = _day_bounds(day)
    rows: dict[tuple[str, Any, str], list] = defaultdict(lambda: [0, Decimal(0)])
    records = (
        UsageRecord.dangerously_unscoped.filter(
            tenant_id=tenant.pk, created_at__gte=start, created_at__lt=end
        )
        .values("metric", "app_id")
        .annotate(n=Sum("quantity"))
    )
    for record in records:
        rows[(record["metric"], record["app_id"], "")][0] += record["n"]
    calls = (
        UsageEvent.dangerously_unscoped.filter(
            tenant_id=tenant.pk, created_at__gte=start, created_at__lt=end
        )
        .values("app_id", "model_name")
        .annotate(n=Sum("total_tokens"), cost=Sum("cost"))
    )
    for call in calls:
        row = rows[(Metric.TOKENS.value, call["app_id"], call["model_name"])]
        row[0] += call["n"] or 0
        row[1] += call["cost"] or Decimal(0)
    # API requests are counted in Redis by day (nothing is written on a request's path);
    # a day whose count has expired there keeps the rows copied before.
    from tenants.windows import redis_client

    from .quota import NO_APP, api_day_key

    api_counts = redis_client().hgetall(api_day_key(tenant.pk, day))
    for field, count in api_counts.items():
        field = field.decode()
        rows[(Metric.API_REQUESTS.value, None if field == NO_APP else field, "")][0] += int(count)
    today = timezone.now().astimezone(dt.UTC).date()
    capacity = {str(m): count_capacity(tenant, m) for m in CAPACITY} if day == today else {}
    with transaction.atomic():
        stale = UsageDay.dangerously_unscoped.filter(tenant_id=tenant.pk, day=day)
        if day != today:
            stale = stale.exclude(metric__in=CAPACITY)
        if not api_counts:
            stale = stale.exclude(metric=Metric.API_REQUESTS)
        stale.delete()
        made = [
            UsageDay(
                tenant=tenant,
                day=day,
                metric=metric,
                app_id=app_id,
                model=model,
                quantity=quantity,
                cost=cost,
            )
            for (metric, app_id, model), (quantity, cost) in rows.items()
        ]
        made += [
            UsageDay(tenant=tenant, day=day, metric=metric, quantity=quantity)
            for metric, quantity in capacity.items()
        ]
        UsageDay.dangerously_unscoped.bulk_create(made)
    return capacity


def period_days(start: dt.datetime, end: dt.datetime) -> tuple[dt.date, dt.date]:
    """The first and last UTC day a period counts: the days whose midnight falls in it, so
    that back-to-back periods share none (a period from midnight counts its own days)."""
    tick = dt.timedelta(microseconds=1)
    first = (start.astimezone(dt.UTC) - tick).date() + dt.timedelta(days=1)
    return first, (end.astimezone(dt.UTC) - tick).date()


def rollup_range(tenant: Tenant, start: dt.datetime, end: dt.datetime) -> None:
    """Roll up every day the period counts."""
    day, last = period_days(start, end)
    while day <= last:
        rollup_day(tenant, day)
        day += dt.timedelta(days=1)


def period_totals(tenant: Tenant, start: dt.datetime, end: dt.datetime) -> dict[str, dict]:
    """The ledger's totals of the counted metrics (and API requests) over a period: each
    metric's quantity and cost."""
    first, last = period_days(start, end)
    totals: dict[str, dict[str, Any]] = {
        str(m): {"quantity": 0, "cost": Decimal(0)} for m in (*COUNTED, Metric.API_REQUESTS)
    }
    rows = (
        UsageDay.dangerously_unscoped.filter(
            tenant_id=tenant.pk, day__gte=first, day__lte=last, metric__in=list(totals)
        )
        .values("metric")
        .annotate(quantity=Sum("quantity"), cost=Sum("cost"))
    )
    for row in rows:
        totals[row["metric"]] = {"quantity": int(row["quantity"]), "cost": row["cost"]}
    return totals


def breakdown(tenant: Tenant, first: dt.date, last: dt.date) -> dict[str, Any]:
    """The ledger between two days, for reports: per day and metric, per app, per model."""
    from apps.models import App

    rows = UsageDay.dangerously_unscoped.filter(tenant_id=tenant.pk, day__gte=first, day__lte=last)
    per_day: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows.values("day", "metric").annotate(n=Sum("quantity")).order_by("day"):
        per_day[row["day"].isoformat()][row["metric"]] = int(row["n"])
    names: dict[Any, str] = dict(
        App.dangerously_unscoped.filter(tenant_id=tenant.pk).values_list("pk", "name")
    )
    per_app = [
        {
            "app_id": str(row["app_id"]),
            "app_name": names.get(row["app_id"], "(deleted app)"),
            "metric": row["metric"],
            "quantity": int(row["n"]),
            "cost": str(row["cost"]),
        }
        for row in rows.filter(app_id__isnull=False, metric__in=[*COUNTED, Metric.API_REQUESTS])
        .values("app_id", "metric")
        .annotate(n=Sum("quantity"), cost=Sum("cost"))
        .order_by("-n")
    ]
    per_model = [
        {"model": row["model"], "tokens": int(row["n"]), "cost": str(row["cost"])}
        for row in rows.filter(metric=Metric.TOKENS)
        .exclude(model="")
        .values("model")
        .annotate(n=Sum("quantity"), cost=Sum("cost"))
        .order_by("-n")
    ]
    return {
        "days": [{"day": day, **values} for day, values in per_day.items()],
        "apps": per_app,
        "models": per_model,
    }


def summary(tenant: Tenant, capacity: dict[str, int] | None = None) -> dict[str, Any]:
    """The tenant's plan, period and each limit against its use now (`capacity`: the
    capacity metrics just counted, as `rollup_day` gives them for today)."""
    from .quota import limits_for, used

    limits = limits_for(tenant)
    capacity = capacity or {}
    metrics = []
    for metric in (*CAPACITY, *COUNTED, Metric.REQUESTS_PER_MINUTE):
        limit = limits.limit(metric)
        if metric == Metric.REQUESTS_PER_MINUTE:
            now_used = None
        elif metric in capacity:
            now_used = capacity[metric]
        else:
            now_used = used(tenant, metric, limits)
        price = limits.overage_price(metric)
        metrics.append(
            {
                "metric": metric.value,
                "label": metric.label,
                "used": now_used,
                "limit": limit,
                "percent": (
                    min(999, round(100 * now_used / limit))
                    if limit and now_used is not None
                    else None
                ),
                # Past the limit, billed at this price per `overage_per` units.
                "overage_price": format(price.normalize(), "f") if price is not None else None,
                "overage_per": OVERAGE_FIELD[metric][1] if price is not None else None,
                "resets_at": limits.period_end.isoformat() if metric in COUNTED else None,
            }
        )
    plan = limits.plan
    return {
        "plan": {
            "slug": plan.slug,
            "name": plan.name,
            "price": str(plan.price),
            "currency": plan.currency,
        },
        "status": limits.subscription.status,
        "period_start": limits.period_start.isoformat(),
        "period_end": limits.period_end.isoformat(),
        "metrics": metrics,
    }
