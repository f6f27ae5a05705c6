"""The period close and the invoice's PDF on a real Celery worker; running the close again
makes nothing new, and an invoice whose render was lost with its worker is rendered by the
next close."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import quota
from billing.models import Invoice, Plan
from billing.tasks import close_periods
from tests.apps import live
from tests.apps.live import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

daphne_server = live.daphne_server


def test_the_close_and_the_pdf_run_on_a_worker(daphne_server, tenant):
    plan = Plan.objects.create(slug="team", name="Team", price=Decimal("30"))
    subscription = quota.subscription_for(tenant)
    subscription.plan = plan
    subscription.period_start = timezone.now() - dt.timedelta(days=30)
    subscription.period_end = timezone.now() - dt.timedelta(minutes=1)
    subscription.save()
    from config.celery import app as celery_app

    # Sent as the beat would, on the broker the test worker listens to.
    with celery_app.connection_for_write(live.broker_url()) as connection:
        close_periods.apply_async(connection=connection)
    worker = live.start_worker("default")
    try:
        invoice = wait_for(
            lambda: Invoice.dangerously_unscoped.filter(
                tenant=tenant, status=Invoice.Status.READY
            ).first(),
            timeout=60,
        )
        assert invoice.pdf.name.endswith(".pdf") and invoice.total == Decimal("30.00")
        # The beat runs the close again: nothing new.
        from billing.invoices import close_due

        assert close_due() == []
        assert Invoice.dangerously_unscoped.filter(tenant=tenant).count() == 1
    finally:
        worker.terminate()
        worker.wait(timeout=15)


def test_a_render_lost_with_its_worker_is_queued_again_by_the_next_close(tenant, monkeypatch):
    from billing import tasks
    from billing.invoices import close_period

    plan = Plan.objects.create(slug="team", name="Team", price=Decimal("30"))
    subscription = quota.subscription_for(tenant)
    subscription.plan = plan
    subscription.period_start = timezone.now() - dt.timedelta(days=30)
    subscription.period_end = timezone.now() - dt.timedelta(minutes=1)
    subscription.save()
    invoice = close_period(subscription.pk)  # its render task went with a killed worker
    queued = []
    monkeypatch.setattr(tasks.render_invoice, "delay", queued.append)
    tasks.close_periods()
    assert queued == []  # too fresh: its task may still be on its way
    Invoice.dangerously_unscoped.filter(pk=invoice.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=30)
    )
    tasks.close_periods()
    assert queued == [str(invoice.pk)]
