"""The ledger rolled up from usage (the same numbers however often), and the period close:
the invoice's lines and arithmetic in Decimal, numbers without gaps, nothing new on a second
run, a plan change from the next period, the PDF in the tenant's branding read back, a
failed render left in `error` and retried, and the e-mail."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pypdf
import pytest
from django.core import mail
from django.utils import timezone

from billing import quota
from billing.invoices import close_due, close_period, overage, render
from billing.models import Invoice, InvoiceLine, Metric, Plan, UsageDay, UsageRecord
from billing.usage import period_totals, rollup_day
from providers.models import UsageEvent
from tenants.branding import branding_update
from tenants.roles import Role
from tests import artefacts

pytestmark = pytest.mark.django_db

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99"
    b"=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


def ended(tenant, plan, days=30, **fields):
    """Put the tenant on `plan` for a period that ended a minute ago."""
    subscription = quota.subscription_for(tenant)
    now = timezone.now()
    subscription.plan = plan
    subscription.period_start = now - dt.timedelta(days=days)
    subscription.period_end = now - dt.timedelta(minutes=1)
    for name, value in fields.items():
        setattr(subscription, name, value)
    subscription.save()
    return subscription


def used_days_ago(tenant, metric, quantity, days, app_id=None):
    UsageRecord.dangerously_unscoped.create(
        tenant=tenant, metric=metric, quantity=quantity, app_id=app_id
    )
    UsageRecord.dangerously_unscoped.filter(
        tenant=tenant, created_at__gte=timezone.now() - dt.timedelta(seconds=5)
    ).update(created_at=timezone.now() - dt.timedelta(days=days))


def model_call(tenant, tokens, cost, days, model="gpt-4o-mini", app_id=None):
    event = UsageEvent.dangerously_unscoped.create(
        tenant=tenant,
        operation="chat",
        provider="openai",
        model_name=model,
        total_tokens=tokens,
        prompt_tokens=tokens,
        cost=Decimal(cost),
        app_id=app_id,
    )
    UsageEvent.dangerously_unscoped.filter(pk=event.pk).update(
        created_at=timezone.now() - dt.timedelta(days=days)
    )


def lines_of(invoice):
    return [
        (line.description, line.quantity, line.amount)
        for line in InvoiceLine.dangerously_unscoped.filter(invoice=invoice)
    ]


def test_the_roll_up_gives_the_same_rows_every_time(tenant, make_app):
    app = make_app(tenant, "chat")
    for _ in range(3):
        used_days_ago(tenant, Metric.MESSAGES, 1, 2, app_id=app.pk)
    model_call(tenant, 1200, "0.0030", 2, app_id=app.pk)
    model_call(tenant, 800, "0.0020", 2, app_id=app.pk)
    model_call(tenant, 500, "0.0100", 2, model="claude-haiku")
    day = (timezone.now() - dt.timedelta(days=2)).astimezone(dt.UTC).date()

    def snapshot():
        return sorted(
            UsageDay.dangerously_unscoped.filter(tenant=tenant, day=day).values_list(
                "metric", "app_id", "model", "quantity", "cost"
            ),
            key=str,
        )

    rollup_day(tenant, day)
    first = snapshot()
    rollup_day(tenant, day)
    assert snapshot() == first
    assert (Metric.MESSAGES.value, app.pk, "", 3, Decimal(0)) in first
    assert (Metric.TOKENS.value, app.pk, "gpt-4o-mini", 2000, Decimal("0.005")) in first
    assert (Metric.TOKENS.value, None, "claude-haiku", 500, Decimal("0.01")) in first


def test_overage_arithmetic_is_exact():
    assert overage(100, 100, Decimal("0.02"), 1) == (0, Decimal(0))
    assert overage(103, 100, Decimal("0.02"), 1) == (3, Decimal("0.06"))
    # 12,345 tokens past, at 0.003 per 1,000: 0.037035 → 0.04
    assert overage(112_345, 100_000, Decimal("0.003"), 1000) == (12_345, Decimal("0.04"))
    # 0.1 + 0.2 in binary floating point is not 0.3; here it is.
    assert overage(3, 0, Decimal("0.1"), 1)[1] == Decimal("0.30")
    assert overage(50, None, Decimal("1"), 1) == (0, Decimal(0))


def test_the_close_makes_one_invoice_with_plan_overage_and_tax(tenant, make_member):
    make_member(tenant, Role.OWNER)
    plan = Plan.objects.create(
        slug="team",
        name="Team",
        price=Decimal("49.00"),
        messages_per_period=10,
        overage_per_message=Decimal("0.02"),
        tokens_per_period=1000,
        overage_per_1k_tokens=Decimal("0.50"),
    )
    subscription = ended(tenant, plan, tax_rate=Decimal("20"), billing_address="1 Loom Lane")
    used_days_ago(tenant, Metric.MESSAGES, 13, 3)
    model_call(tenant, 3500, "0.01", 3)
    invoice = close_period(subscription.pk)
    assert invoice.number == 1 and invoice.label.endswith("-00001")
    assert lines_of(invoice) == [
        (
            f"Team plan, {subscription.period_start:%d %b %Y} to "
            f"{subscription.period_end:%d %b %Y}",
            Decimal(1),
            Decimal("49.00"),
        ),
        ("Messages per period: 3 past the plan's 10", Decimal(3), Decimal("0.06")),
        ("Tokens per period: 2,500 past the plan's 1,000", Decimal(2500), Decimal("1.25")),
    ]
    assert (invoice.subtotal, invoice.tax, invoice.total) == (
        Decimal("50.31"),
        Decimal("10.06"),
        Decimal("60.37"),
    )
    assert invoice.totals["messages"]["quantity"] == 13
    # Again: nothing new, and the subscription moved on to the next period.
    assert close_period(subscription.pk) is None
    assert close_due() == []
    assert Invoice.dangerously_unscoped.filter(tenant=tenant).count() == 1
    subscription.refresh_from_db()
    assert subscription.period_start == invoice.period_end
    assert subscription.last_invoice_number == 1


def test_numbers_have_no_gaps_and_a_plan_change_waits_for_the_next_period(tenant, other_tenant):
    small = Plan.objects.create(slug="small", name="Small", price=Decimal("10"))
    large = Plan.objects.create(slug="large", name="Large", price=Decimal("99"))
    subscription = ended(tenant, small, days=90, next_plan=large)
    ended(other_tenant, small)
    # Three months behind (the beat was down): three invoices, one per period, in order.
    subscription.period_end = subscription.period_start + dt.timedelta(days=30)
    subscription.save()
    made = close_due()
    mine = [i for i in made if i.tenant_id == tenant.pk]
    assert [i.number for i in mine] == [1, 2]
    assert [i.plan_name for i in mine] == ["Small", "Large"]
    theirs = [i for i in made if i.tenant_id == other_tenant.pk]
    assert [i.number for i in theirs] == [1]
    subscription.refresh_from_db()
    assert subscription.plan == large and subscription.next_plan is None


def test_a_trial_period_is_not_charged(tenant):
    plan = Plan.objects.create(slug="pro", name="Pro", price=Decimal("20"))
    subscription = ended(
        tenant, plan, status="trialing", trial_ends_at=timezone.now() + dt.timedelta(days=1)
    )
    invoice = close_period(subscription.pk)
    assert invoice.total == Decimal("0.00") and "(trial)" in lines_of(invoice)[0][0]


def test_a_new_tenant_starts_with_the_default_plans_trial_then_pays(db):
    from tests.factories import TenantFactory

    Plan.objects.filter(is_default=True).update(price=Decimal("15"), trial_days=14)
    quota.forget()
    subscription = quota.subscription_for(TenantFactory(slug="newco"))
    today = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert subscription.status == "trialing"
    assert subscription.period_start == today
    assert subscription.period_end == subscription.trial_ends_at == today + dt.timedelta(days=14)
    # The trial closes free, and the paid months follow it.
    trial = close_period(subscription.pk, now=subscription.period_end)
    assert trial.total == Decimal("0.00") and "(trial)" in lines_of(trial)[0][0]
    subscription.refresh_from_db()
    assert subscription.status == "active" and subscription.period_start == trial.period_end
    assert subscription.period_end == quota.add_months(trial.period_end, 1)
    paid = close_period(subscription.pk, now=subscription.period_end)
    assert paid.total == Decimal("15.00") and paid.number == 2


def test_the_pdf_renders_in_the_tenants_branding_with_its_totals(tenant, make_member):
    owner = make_member(tenant, Role.OWNER)
    branding_update(tenant=tenant, product_name="Loomworks", logo=PNG, primary_color="#7a1f5c")
    plan = Plan.objects.create(
        slug="team",
        name="Team",
        price=Decimal("49.00"),
        messages_per_period=1000,
        overage_per_message=Decimal("0.02"),
    )
    subscription = ended(tenant, plan, tax_rate=Decimal("8.5"), billing_name="Acme Weaving Ltd")
    used_days_ago(tenant, Metric.MESSAGES, 1250, 3)
    invoice = render(close_period(subscription.pk).pk)
    assert invoice.status == Invoice.Status.READY and invoice.error == ""
    assert invoice.pdf.name.endswith(f"acme-{invoice.label}.pdf")
    with invoice.pdf.open("rb") as handle:
        data = handle.read()
    (artefacts.folder("billing") / invoice.pdf.name.rsplit("/", 1)[-1]).write_bytes(data)
    reader = pypdf.PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    for expected in (
        invoice.label,
        "Acme Weaving Ltd",
        "Team plan",
        "49.00",
        "Messages per period: 250 past the plan's 1,000",
        "0.02",
        "Messages per period: 1,250",
        "5.00",
        "54.00",
        "4.59",
        "58.59",
        "Tax (8.5 %)",
        "Total due",
    ):
        assert expected in text, (expected, text)
    # The logo went in (an image on the page), and the brand colour #7a1f5c is drawn
    # (the table's heading row), as PDF's fill colour 122/255 31/255 92/255.
    page = reader.pages[0]
    assert page["/Resources"]["/XObject"], "no logo image in the PDF"
    assert b"0.478431 0.121569 0.360784 rg" in page.get_contents().get_data()
    # It was e-mailed once, with the PDF attached, under the tenant's sender name.
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == [owner.email] and invoice.label in sent.subject
    assert sent.attachments[0][0].endswith(".pdf") and sent.attachments[0][1] == data
    render(invoice.pk)
    assert len(mail.outbox) == 1


def test_a_failed_render_leaves_the_invoice_in_error_and_a_retry_mends_it(tenant, monkeypatch):
    from billing import invoices

    plan = Plan.objects.create(slug="team", name="Team", price=Decimal("5"))
    invoice = close_period(ended(tenant, plan).pk)

    def broken(_):
        raise OSError("the font cache is unreadable")

    monkeypatch.setattr(invoices, "render_pdf", broken)
    with pytest.raises(OSError):
        render(invoice.pk)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.ERROR
    assert invoice.error == "OSError: the font cache is unreadable" and not invoice.pdf
    monkeypatch.undo()
    assert render(invoice.pk).status == Invoice.Status.READY


def test_ledger_totals_match_what_quotas_counted(tenant, make_app):
    from tests.apps.pipeline_support import ask, user_of

    app = make_app(tenant, "chat")
    alice = user_of(app)
    for query in ("one", "two", "three"):
        ask(app, alice, query, auto_generate_name=False)
    limits = quota.limits_for(tenant)
    rollup_day(tenant, timezone.now().astimezone(dt.UTC).date())
    totals = period_totals(tenant, limits.period_start, limits.period_end)
    assert totals[Metric.MESSAGES]["quantity"] == quota.used(tenant, Metric.MESSAGES) == 3
    assert totals[Metric.TOKENS]["quantity"] == quota.used(tenant, Metric.TOKENS) > 0


def test_a_deleted_tenant_takes_its_invoice_pdfs_with_it(
    tenant, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    plan = Plan.objects.create(slug="team", name="Team", price=Decimal("5"))
    invoice = render(close_period(ended(tenant, plan).pk).pk)
    name = invoice.pdf.name
    assert default_storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        tenant.delete()
    assert not default_storage.exists(name)


def test_back_to_back_periods_off_midnight_count_each_day_once(tenant):
    from billing.usage import period_days

    start = dt.datetime(2026, 10, 1, 14, 55, tzinfo=dt.UTC)
    middle = dt.datetime(2026, 11, 1, 14, 55, tzinfo=dt.UTC)
    end = dt.datetime(2026, 12, 1, 14, 55, tzinfo=dt.UTC)
    assert period_days(start, middle) == (dt.date(2026, 10, 2), dt.date(2026, 11, 1))
    assert period_days(middle, end) == (dt.date(2026, 11, 2), dt.date(2026, 12, 1))
    midnight = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert period_days(midnight, dt.datetime(2026, 12, 1, tzinfo=dt.UTC)) == (
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 30),
    )
    UsageDay.dangerously_unscoped.create(
        tenant=tenant, day=dt.date(2026, 11, 1), metric=Metric.MESSAGES, quantity=4
    )
    first = period_totals(tenant, start, middle)[Metric.MESSAGES]["quantity"]
    second = period_totals(tenant, middle, end)[Metric.MESSAGES]["quantity"]
    assert (first, second) == (4, 0)


def test_the_close_bills_past_the_tenants_override_not_the_plans(tenant):
    from billing.models import Override

    plan = Plan.objects.create(
        slug="team",
        name="Team",
        price=Decimal("10"),
        messages_per_period=10,
        overage_per_message=Decimal("1"),
    )
    subscription = ended(tenant, plan)
    Override.dangerously_unscoped.create(
        tenant=tenant, subscription=subscription, metric=Metric.MESSAGES, limit=12
    )
    used_days_ago(tenant, Metric.MESSAGES, 15, 3)
    invoice = close_period(subscription.pk)
    assert lines_of(invoice)[1] == (
        "Messages per period: 3 past the plan's 12",
        Decimal(3),
        Decimal("3.00"),
    )
