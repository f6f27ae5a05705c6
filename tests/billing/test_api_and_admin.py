"""Billing seen from outside: the plan's requests per minute on every API (429
`rate_limited` with Retry-After), quota errors in the envelope, the management API's usage
and invoices (cross-tenant 404, no-permission 403, PDF download), and the console's usage
page and invoices for owners and admins only."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.models import App
from billing import charts, quota
from billing.invoices import close_period, render
from billing.models import Invoice, Metric, Plan
from tenants.roles import Role
from tests.api_contract import TenantEndpointContract, bearer
from tests.factories import TenantFactory, api_key

pytestmark = pytest.mark.django_db


def closed_invoice(tenant, rendered=True):
    plan = Plan.objects.create(slug=f"p{tenant.slug}", name="Team", price=Decimal("12.50"))
    subscription = quota.subscription_for(tenant)
    now = timezone.now()
    subscription.plan = plan
    subscription.period_start = now - dt.timedelta(days=30)
    subscription.period_end = now - dt.timedelta(minutes=1)
    subscription.save()
    invoice = close_period(subscription.pk)
    return render(invoice.pk) if rendered else invoice


# --- Rate limits and errors on the APIs ---------------------------------------------------


def test_the_management_api_stops_at_the_plans_requests_per_minute(client, tenant, on_plan):
    on_plan(tenant, requests_per_minute=3)
    headers = bearer(api_key(tenant, role=Role.ADMIN)[1])
    other = bearer(api_key(TenantFactory(slug="initech"), role=Role.ADMIN)[1])
    for _ in range(3):
        assert client.get("/api/members/", **headers).status_code == 200
    refused = client.get("/api/members/", **headers)
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "rate_limited" and body["status"] == 429
    assert "3 API requests per minute" in body["message"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert client.get("/api/members/", **other).status_code == 200  # others go on


def test_the_service_api_stops_at_the_plans_requests_per_minute(
    client, tenant, on_plan, make_app, app_key
):
    app = make_app(tenant, App.Mode.CHAT)
    on_plan(tenant, requests_per_minute=2)
    headers = bearer(app_key(app))
    for _ in range(2):
        assert client.get("/v1/parameters", **headers).status_code == 200
    refused = client.get("/v1/parameters", **headers)
    assert (refused.status_code, refused.json()["code"]) == (429, "rate_limited")
    assert refused["Retry-After"]


def test_the_knowledge_api_stops_at_the_plans_requests_per_minute(client, tenant, on_plan):
    from tenants.models import ApiKey

    on_plan(tenant, requests_per_minute=1)
    headers = bearer(api_key(tenant, kind=ApiKey.Kind.DATASET)[1])
    assert client.get("/v1/datasets", **headers).status_code == 200
    refused = client.get("/v1/datasets", **headers)
    assert (refused.status_code, refused.json()["code"]) == (429, "rate_limited")


def test_a_quota_error_on_the_service_api_is_the_envelope_with_its_figures(
    client, tenant, on_plan, make_app, app_key
):
    app = make_app(tenant, App.Mode.CHAT)
    on_plan(tenant, messages_per_period=0)
    response = client.post(
        "/v1/chat-messages",
        {"inputs": {}, "query": "hi", "user": "alice", "response_mode": "blocking"},
        content_type="application/json",
        **bearer(app_key(app)),
    )
    assert response.status_code == 402
    body = response.json()
    assert (body["code"], body["status"], body["limit_name"]) == ("quota_exceeded", 402, "messages")
    assert (body["used"], body["limit"]) == (0, 0) and body["resets_at"]


def test_a_quota_error_on_the_management_api(client, tenant, on_plan):
    on_plan(tenant, max_apps=0)
    response = client.post(
        "/api/apps/",
        {"name": "One", "mode": "chat"},
        content_type="application/json",
        **bearer(api_key(tenant, role=Role.BUILDER)[1]),
    )
    assert response.status_code == 402, response.content
    assert response.json()["code"] == "quota_exceeded" and response.json()["limit_name"] == "apps"


def test_api_requests_reach_the_ledger(client, tenant, make_app, app_key):
    from billing.usage import breakdown, rollup_day

    app = make_app(tenant, App.Mode.CHAT)
    headers = bearer(app_key(app))
    for _ in range(3):
        client.get("/v1/parameters", **headers)
    today = timezone.now().astimezone(dt.UTC).date()
    rollup_day(tenant, today)
    rollup_day(tenant, today)
    rows = [r for r in breakdown(tenant, today, today)["apps"] if r["metric"] == "api_requests"]
    assert rows == [
        {
            "app_id": str(app.pk),
            "app_name": app.name,
            "metric": "api_requests",
            "quantity": 3,
            "cost": "0E-8",
        }
    ]


# --- Management API -----------------------------------------------------------------------


class TestInvoicesContract(TenantEndpointContract):
    list_url = "/api/billing/invoices/"
    allowed_role = Role.ADMIN
    denied_role = Role.BUILDER
    detail_methods = ("get",)

    def make_object(self, tenant):
        return closed_invoice(tenant, rendered=False)


def test_invoices_and_their_pdf_through_the_api(client, tenant):
    invoice = closed_invoice(tenant)
    headers = bearer(api_key(tenant, role=Role.OWNER)[1])
    shown = client.get(f"/api/billing/invoices/{invoice.pk}/", **headers).json()
    assert shown["number"] == invoice.label and shown["total"] == "12.50"
    assert shown["pdf_ready"] is True and shown["lines"][0]["amount"] == "12.50"
    pdf = client.get(f"/api/billing/invoices/{invoice.pk}/pdf/", **headers)
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")
    theirs = closed_invoice(TenantFactory(slug="initech"))
    assert client.get(f"/api/billing/invoices/{theirs.pk}/pdf/", **headers).status_code == 404
    builder = bearer(api_key(tenant, role=Role.BUILDER)[1])
    assert client.get(f"/api/billing/invoices/{invoice.pk}/pdf/", **builder).status_code == 403


def test_a_pdf_not_rendered_yet_is_a_clear_404(client, tenant):
    invoice = closed_invoice(tenant, rendered=False)
    headers = bearer(api_key(tenant, role=Role.OWNER)[1])
    response = client.get(f"/api/billing/invoices/{invoice.pk}/pdf/", **headers)
    assert response.status_code == 404 and "not ready" in response.json()["message"]


def test_usage_through_the_api(client, tenant, on_plan, make_app):
    app = make_app(tenant, App.Mode.CHAT)
    on_plan(
        tenant,
        max_apps=5,
        messages_per_period=100,
        tokens_per_period=10_000,
        overage_per_1k_tokens=Decimal("0.50"),
    )
    quota.consume(tenant, Metric.MESSAGES, 7, app_id=app.pk)
    headers = bearer(api_key(tenant, role=Role.ADMIN)[1])
    body = client.get("/api/billing/usage/", **headers).json()
    by_metric = {m["metric"]: m for m in body["metrics"]}
    assert (by_metric["apps"]["used"], by_metric["apps"]["limit"]) == (1, 5)
    assert (by_metric["messages"]["used"], by_metric["messages"]["percent"]) == (7, 7)
    assert (by_metric["messages"]["overage_price"], by_metric["messages"]["overage_per"]) == (
        None,
        None,
    )
    assert (by_metric["tokens"]["overage_price"], by_metric["tokens"]["overage_per"]) == (
        "0.5",
        1000,
    )
    assert body["plan"]["name"] == "Team"
    assert [r["quantity"] for r in body["apps"] if r["metric"] == "messages"] == [7]
    assert body["days"][-1]["messages"] == 7
    # Another tenant's key sees its own, empty usage.
    theirs = bearer(api_key(TenantFactory(slug="initech"), role=Role.ADMIN)[1])
    assert client.get("/api/billing/usage/", **theirs).json()["apps"] == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?from=yesterday", "from: expected a date"),
        ("?from=2026-02-01&to=2026-01-01", "must not be after"),
        ("?from=2020-01-01&to=2026-01-01", "At most 366 days"),
    ],
)
def test_usage_refuses_bad_dates(client, tenant, query, message):
    headers = bearer(api_key(tenant, role=Role.ADMIN)[1])
    response = client.get(f"/api/billing/usage/{query}", **headers)
    assert response.status_code == 400 and message in response.json()["message"]


def test_usage_needs_billing_view(client, tenant):
    headers = bearer(api_key(tenant, role=Role.BUILDER)[1])
    response = client.get("/api/billing/usage/", **headers)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert client.get("/api/billing/usage/").status_code == 401


# --- Console -------------------------------------------------------------------------------


def test_the_usage_page_for_owners_and_admins(console, tenant, make_member, on_plan, make_app):
    app = make_app(tenant, App.Mode.CHAT, name="Support helper")
    on_plan(
        tenant,
        messages_per_period=10,
        tokens_per_period=200_000,
        overage_per_1k_tokens=Decimal("0.50"),
    )
    quota.consume(tenant, Metric.MESSAGES, 9, app_id=app.pk)
    page = console(make_member(tenant, Role.ADMIN), tenant).get("/admin/usage/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Messages per period" in html and 'class="weft-meter warn"' in html
    assert "200,000" in html and "billed, 0.5 USD per 1,000" in html
    assert "<svg" in html and "Support helper" in html and "limit 10" in html
    operator = console(make_member(tenant, Role.OPERATOR), tenant)
    assert operator.get("/admin/usage/").status_code == 403
    # Markup in an app's name stays text in the charts.
    app.name = "<script>alert(1)</script>"
    app.save()
    html = console(make_member(tenant, Role.OWNER), tenant).get("/admin/usage/?metric=x").content
    assert b"<script>alert(1)" not in html and b"&lt;script&gt;" in html


def test_the_console_says_which_limit_stopped_an_addition(console, tenant, make_member, on_plan):
    """Over a limit the console shows the quota's message and adds nothing: an app, a member,
    a document."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from knowledge.models import Document
    from knowledge.services import dataset_create
    from tenants.models import Membership

    on_plan(tenant, max_apps=0, max_members=1, max_documents=0)
    admin = console(make_member(tenant, Role.ADMIN), tenant)

    def said(response) -> list[str]:
        return [str(message) for message in response.context["messages"]]

    app = admin.post("/admin/apps/app/add/", {"mode": "chat", "name": "Concierge"}, follow=True)
    assert "Quota exceeded: Apps — 0 of 0 used. Remove some, or ask for a larger plan." in said(app)
    assert not App.dangerously_unscoped.filter(tenant=tenant).exists()

    invite = admin.post(
        "/admin/tenants/membership/add/", {"email": "n@example.com", "role": "member"}, follow=True
    )
    assert any(m.startswith("Quota exceeded: Members — 1 of 1 used.") for m in said(invite))
    assert Membership.dangerously_unscoped.filter(tenant=tenant).count() == 1

    dataset = dataset_create(tenant=tenant, name="Handbook")
    upload = admin.post(
        f"/admin/knowledge/dataset/{dataset.pk}/upload/",
        {"uploads": [SimpleUploadedFile("notes.txt", b"Linen comes from flax.")]},
        follow=True,
    )
    assert any("Quota exceeded: Documents — 0 of 0 used." in m for m in said(upload))
    assert not Document.dangerously_unscoped.filter(dataset=dataset).exists()


def test_chart_labels_stay_inside_the_picture():
    shown = "141,300 tokens · 0.0628"
    svg = charts.horizontal_bars("Tokens by model", [("gpt-4o-mini", 141_300, shown)])
    value_x = float(re.findall(r'<text x="([\d.]+)"', svg)[1])
    assert value_x + 7 * len(shown) <= charts.WIDTH
    # A limit at the top of the scale has its label below the line, not cut off above.
    svg = charts.bars_over_time("Messages", ["2026-11-01"], [3], limit=400)
    label_y = float(re.search(r'<text x="[\d.]+" y="([\d.]+)"[^>]*>limit 400', svg)[1])
    assert label_y > charts.TOP + 11


def test_invoices_in_the_console_are_the_tenants_own(console, tenant, other_tenant, make_member):
    mine, theirs = closed_invoice(tenant), closed_invoice(other_tenant)
    client = console(make_member(tenant, Role.ADMIN), tenant)
    listing = client.get("/admin/billing/invoice/").content.decode()
    assert mine.label in listing and str(theirs.pk) not in listing
    pdf = client.get(f"/admin/billing/invoice/{mine.pk}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert client.get(f"/admin/billing/invoice/{theirs.pk}/pdf/").status_code == 404
    assert client.get(f"/admin/billing/invoice/{theirs.pk}/change/").status_code == 404
    builder = console(make_member(tenant, Role.BUILDER), tenant)
    assert builder.get(f"/admin/billing/invoice/{mine.pk}/pdf/").status_code == 403


def test_a_failed_render_shows_its_reason_and_the_operator_renders_it_again(
    console, tenant, superuser, monkeypatch, eager
):
    from billing import invoices

    invoice = closed_invoice(tenant, rendered=False)
    Invoice.dangerously_unscoped.filter(pk=invoice.pk).update(
        status=Invoice.Status.ERROR, error="OSError: disk full"
    )
    client = console(superuser, tenant)
    assert (
        "OSError: disk full"
        in client.get(f"/admin/billing/invoice/{invoice.pk}/change/").content.decode()
    )
    response = client.post(
        "/admin/billing/invoice/",
        {"action": "render_again", "_selected_action": [str(invoice.pk)]},
    )
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.READY and invoice.pdf
    assert invoices  # the module the action uses


def test_subscriptions_are_changed_by_platform_operators_only(
    console, tenant, superuser, make_member
):
    subscription = quota.subscription_for(tenant)
    owner = console(make_member(tenant, Role.OWNER), tenant)
    url = f"/admin/billing/subscription/{subscription.pk}/change/"
    assert owner.get(url).status_code == 200  # seen, read only
    assert owner.post(url, {"status": "cancelled"}).status_code == 403
    plan = Plan.objects.create(slug="big", name="Big")
    operator = console(superuser, tenant)
    response = operator.post(
        url,
        {
            "plan": str(plan.pk),
            "status": "active",
            "period_start_0": "2026-11-01",
            "period_start_1": "00:00:00",
            "period_end_0": "2026-12-01",
            "period_end_1": "00:00:00",
            "overrides-TOTAL_FORMS": "1",
            "overrides-INITIAL_FORMS": "0",
            "overrides-0-metric": "messages",
            "overrides-0-limit": "5",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert quota.limits_for(tenant).limit(Metric.MESSAGES) == 5


def test_an_operator_puts_a_tenant_on_trial(console, tenant, superuser):
    """Trial without an end takes the plan's trial days, and the period becomes the trial;
    on a plan without trial days the console asks for the end."""
    subscription = quota.subscription_for(tenant)
    operator = console(superuser, tenant)
    url = f"/admin/billing/subscription/{subscription.pk}/change/"
    form = {
        "status": "trialing",
        "period_start_0": "2026-11-01",
        "period_start_1": "00:00:00",
        "period_end_0": "2026-12-01",
        "period_end_1": "00:00:00",
        "overrides-TOTAL_FORMS": "0",
        "overrides-INITIAL_FORMS": "0",
    }
    refused = operator.post(url, {**form, "plan": str(subscription.plan_id)})
    assert refused.status_code == 200
    assert "Set when the trial ends: this plan has no trial days." in refused.content.decode()
    backwards = operator.post(
        url,
        {
            **form,
            "plan": str(subscription.plan_id),
            "trial_ends_at_0": "2026-10-20",
            "trial_ends_at_1": "00:00:00",
        },
    )
    assert "The trial must end after the period starts." in backwards.content.decode()
    subscription.refresh_from_db()
    assert subscription.status == "active"
    trial_plan = Plan.objects.create(slug="pro", name="Pro", price=Decimal("20"), trial_days=10)
    saved = operator.post(url, {**form, "plan": str(trial_plan.pk)})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    subscription.refresh_from_db()
    ends = dt.datetime(2026, 11, 11, tzinfo=dt.UTC)
    assert subscription.status == "trialing"
    assert subscription.trial_ends_at == subscription.period_end == ends


def test_a_period_that_ends_before_it_starts_is_refused_in_the_admin(console, tenant, superuser):
    subscription = quota.subscription_for(tenant)
    response = console(superuser, tenant).post(
        f"/admin/billing/subscription/{subscription.pk}/change/",
        {
            "plan": str(subscription.plan_id),
            "status": "active",
            "period_start_0": "2026-12-01",
            "period_start_1": "00:00:00",
            "period_end_0": "2026-11-01",
            "period_end_1": "00:00:00",
            "overrides-TOTAL_FORMS": "0",
            "overrides-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "must end after it starts" in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.period_end > subscription.period_start
