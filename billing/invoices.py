"""Closing a period: its use frozen from the ledger, the invoice computed (plan price,
overage lines, tax) with the tenant's next number, the subscription moved on; then the PDF
rendered with WeasyPrint in the tenant's branding, stored and e-mailed.

The close is one transaction keyed on (tenant, period start): running it again for a
closed period finds the invoice and makes nothing. Numbers come from the subscription row,
locked by the same transaction, so they have no gaps. Rendering is a separate, retryable
step: a failure leaves the invoice in `error` with the reason."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from tenants.branding import brand_context, branding_for, sender

from .models import COUNTED, OVERAGE_FIELD, Invoice, InvoiceLine, Metric, Subscription
from .quota import Limits, add_months, limits_of
from .usage import admin_emails, period_totals, rollup_range

logger = logging.getLogger("weft.billing")

CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def overage(quantity: int, included: int | None, price: Decimal | None, per: int) -> tuple:
    """(units past the limit, amount) of a counted metric; nothing without a price."""
    if price is None or included is None or quantity <= included:
        return 0, Decimal(0)
    over = quantity - included
    return over, money(Decimal(over) * price / Decimal(per))


def overage_lines(limits: Limits, used: dict[str, int]) -> list[tuple]:
    """(description, units, unit price, amount) for each counted metric used past its
    limit whose plan bills the excess."""
    lines = []
    for metric in COUNTED:
        price, per = limits.overage_price(metric), OVERAGE_FIELD[metric][1]
        over, amount = overage(used[metric], limits.limit(metric), price, per)
        if over:
            description = (
                f"{Metric(metric).label}: {over:,} past the plan's {limits.limit(metric):,}"
            )
            lines.append((description, Decimal(over), price / per, amount))
    return lines


def close_due(now: dt.datetime | None = None) -> list[Invoice]:
    """Close every period that has ended (several for a subscription left behind)."""
    now = now or timezone.now()
    made = []
    due = Subscription.dangerously_unscoped.filter(period_end__lte=now).values_list("pk", flat=True)
    for pk in list(due):
        while (invoice := close_period(pk, now)) is not None:
            made.append(invoice)
    return made


def close_period(subscription_id, now: dt.datetime | None = None) -> Invoice | None:
    """Close the subscription's current period if it has ended: the invoice, or None when
    there was nothing to close."""
    now = now or timezone.now()
    with transaction.atomic():
        subscription = (
            Subscription.dangerously_unscoped.select_for_update()
            .select_related("plan", "tenant")
            .get(pk=subscription_id)
        )
        if subscription.period_end > now:
            return None
        tenant = subscription.tenant
        start, end = subscription.period_start, subscription.period_end
        if Invoice.dangerously_unscoped.filter(tenant=tenant, period_start=start).exists():
            return None  # closed before; the subscription moved on with it
        plan = subscription.plan
        # The period being closed, on the locked row's plan and overrides.
        limits = limits_of(subscription, start)
        rollup_range(tenant, start, end)
        totals = period_totals(tenant, start, end)
        trial = (
            subscription.status == Subscription.Status.TRIALING
            and subscription.trial_ends_at is not None
            and subscription.trial_ends_at >= end
        )
        price = Decimal(0) if trial else plan.price
        lines = [
            (
                f"{plan.name} plan, {start:%d %b %Y} to {end:%d %b %Y}"
                + (" (trial)" if trial else ""),
                Decimal(1),
                price,
                money(price),
            ),
            *overage_lines(limits, {m: totals[m]["quantity"] for m in COUNTED}),
        ]
        subtotal = money(sum((line[3] for line in lines), Decimal(0)))
        rate = (
            subscription.tax_rate
            if subscription.tax_rate is not None
            else Decimal(str(settings.WEFT_TAX_RATE))
        )
        tax = money(subtotal * rate / 100)
        subscription.last_invoice_number += 1
        invoice = Invoice.dangerously_unscoped.create(
            tenant=tenant,
            number=subscription.last_invoice_number,
            period_start=start,
            period_end=end,
            plan_name=plan.name,
            currency=plan.currency,
            subtotal=subtotal,
            tax_rate=rate,
            tax=tax,
            total=subtotal + tax,
            billing_name=subscription.billing_name or tenant.name,
            billing_address=subscription.billing_address,
            totals={
                metric: {"quantity": value["quantity"], "cost": str(value["cost"])}
                for metric, value in totals.items()
            },
        )
        InvoiceLine.dangerously_unscoped.bulk_create(
            InvoiceLine(
                tenant=tenant,
                invoice=invoice,
                position=index,
                description=description[:200],
                quantity=quantity,
                unit_price=unit,
                amount=amount,
            )
            for index, (description, quantity, unit, amount) in enumerate(lines)
        )
        if subscription.next_plan is not None:
            subscription.plan = subscription.next_plan
            subscription.next_plan = None
        subscription.period_start = end
        subscription.period_end = add_months(end, subscription.plan.period_months)
        if subscription.status == Subscription.Status.TRIALING and (
            subscription.trial_ends_at is None or subscription.trial_ends_at <= end
        ):
            subscription.status = Subscription.Status.ACTIVE  # the trial is over
        subscription.save()
        from .tasks import render_invoice

        transaction.on_commit(lambda: render_invoice.delay(str(invoice.pk)))
    return invoice


def _logo_data(tenant) -> str:
    branding = branding_for(tenant)
    if not branding.logo_type or not branding.logo:
        return ""
    encoded = base64.b64encode(bytes(branding.logo)).decode()
    return f"data:{branding.logo_type};base64,{encoded}"


def invoice_html(invoice: Invoice) -> str:
    tenant = invoice.tenant
    return render_to_string(
        "billing/invoice.html",
        {
            "invoice": invoice,
            "lines": list(InvoiceLine.dangerously_unscoped.filter(invoice=invoice)),
            "brand": brand_context(tenant),
            "logo": _logo_data(tenant),
            "issuer": settings.WEFT_INVOICE_ISSUER,
            "tenant": tenant,
        },
    )


def render_pdf(invoice: Invoice) -> bytes:
    import weasyprint

    # The PDF may use the images inlined in it (the logo), and fetches nothing.
    fetcher = weasyprint.URLFetcher(allowed_protocols={"data"}, timeout=1)
    return weasyprint.HTML(string=invoice_html(invoice), url_fetcher=fetcher).write_pdf()


def render(invoice_id) -> Invoice:
    """Render, store and e-mail the invoice's PDF (what is done already is skipped). A
    failure leaves it in `error` with the reason, and raises for the task to retry."""
    invoice = Invoice.dangerously_unscoped.select_related("tenant").get(pk=invoice_id)
    if invoice.status != Invoice.Status.READY or not invoice.pdf:
        try:
            data = render_pdf(invoice)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            Invoice.dangerously_unscoped.filter(pk=invoice.pk).update(
                status=Invoice.Status.ERROR, error=reason
            )
            logger.warning("invoice %s did not render: %s", invoice.pk, reason)
            raise
        name = f"{invoice.tenant.slug}-{invoice.label}.pdf"
        invoice.pdf.save(name, ContentFile(data), save=False)
        invoice.status, invoice.error = Invoice.Status.READY, ""
        invoice.save(update_fields=["pdf", "status", "error"])
    if invoice.emailed_at is None:
        _email(invoice)
    return invoice


def recipients(invoice: Invoice) -> list[str]:
    subscription = Subscription.dangerously_unscoped.filter(tenant=invoice.tenant).first()
    if subscription is not None and subscription.billing_email:
        return [subscription.billing_email]
    return admin_emails(invoice.tenant)


def _email(invoice: Invoice) -> None:
    to = recipients(invoice)
    if not to:
        return
    brand = brand_context(invoice.tenant)["product_name"]
    message = EmailMessage(
        subject=f"{brand}: invoice {invoice.label}",
        body=(
            f"Your invoice {invoice.label} for {invoice.period_start:%d %b %Y} to "
            f"{invoice.period_end:%d %b %Y} is attached: {invoice.total} {invoice.currency}."
        ),
        from_email=sender(invoice.tenant),
        to=to,
    )
    with invoice.pdf.open("rb") as handle:
        message.attach(str(invoice.pdf.name).rsplit("/", 1)[-1], handle.read(), "application/pdf")
    message.send()
    # Marked only once sent: a retry after a failed send sends it then, not twice.
    Invoice.dangerously_unscoped.filter(pk=invoice.pk).update(emailed_at=timezone.now())
