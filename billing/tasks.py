"""Billing's Celery work: the roll-up of recent days, the period close, invoice rendering
and soft-limit e-mails. Each is safe to run again."""

from __future__ import annotations

import datetime as dt
import logging
import smtplib

from celery import shared_task
from django.core.mail import send_mail
from django.utils import timezone

from tenants.models import Tenant

logger = logging.getLogger("weft.billing")


@shared_task(acks_late=True)
def rollup_recent() -> int:
    """Roll up yesterday and today for every active tenant (the ledger the dashboards read)."""
    from .usage import rollup_day

    today = timezone.now().astimezone(dt.UTC).date()
    done = 0
    for tenant in Tenant.objects.filter(status=Tenant.Status.ACTIVE):
        for day in (today - dt.timedelta(days=1), today):
            rollup_day(tenant, day)
        done += 1
    return done


# An invoice still waiting for its PDF this long after the close lost its render task (with
# a killed worker, say): the next close queues it again.
STALE_RENDER = dt.timedelta(minutes=15)


@shared_task(acks_late=True)
def close_periods() -> list[str]:
    """Close every ended period (each invoice renders in its own task), and queue again the
    renders that were lost. The invoices made."""
    from .invoices import close_due
    from .models import Invoice

    made = [str(invoice.pk) for invoice in close_due()]
    stale = Invoice.dangerously_unscoped.filter(
        status=Invoice.Status.PENDING, created_at__lt=timezone.now() - STALE_RENDER
    ).values_list("pk", flat=True)
    for invoice_id in stale:
        render_invoice.delay(str(invoice_id))
    return made


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=30, max_retries=5)
def render_invoice(invoice_id: str) -> str:
    from .invoices import render

    return render(invoice_id).status


@shared_task(
    acks_late=True, autoretry_for=(smtplib.SMTPException, OSError), retry_backoff=60, max_retries=5
)
def send_alert(tenant_id: str, metric: str, period_start: str, threshold: int) -> None:
    """E-mail the tenant's owners and admins that a limit is 80 % or fully used."""
    from tenants.branding import brand_context, sender

    from .models import Alert, Metric
    from .usage import admin_emails

    alert = Alert.dangerously_unscoped.filter(
        tenant_id=tenant_id, metric=metric, period_start=period_start, threshold=threshold
    ).first()
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if alert is None or tenant is None:
        return
    to = admin_emails(tenant)
    if not to:
        return
    label = Metric(metric).label
    state = "is fully used" if threshold >= 100 else f"is {threshold} % used"
    send_mail(
        subject=f"{brand_context(tenant)['product_name']}: {label} {state}",
        message=(
            f"{tenant.name} has used {alert.used:,} of its {alert.limit:,} ({label}).\n\n"
            "At the limit, further use is refused until the period resets or the plan grows."
        ),
        from_email=sender(tenant),
        recipient_list=to,
    )
