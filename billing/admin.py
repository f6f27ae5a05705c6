"""Billing in the console. Platform operators define plans and put tenants on them (with
per-tenant overrides); tenant owners and admins see their subscription, their usage page and
their invoices, never another tenant's."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from tenants.admin_base import NotFoundAdminMixin, TenantScopedAdmin
from tenants.http import principal_of
from tenants.permissions import allowed

from . import charts
from .invoices import money, overage_lines
from .models import (
    COUNTED,
    OVERAGE_FIELD,
    Invoice,
    InvoiceLine,
    Metric,
    Override,
    Plan,
    Subscription,
)
from .quota import limits_for
from .usage import breakdown, rollup_day, summary


class OperatorsChange:
    """Only platform operators add, change and delete (a tenant is deleted with all it has)."""

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


class PlatformOnly(OperatorsChange, NotFoundAdminMixin, admin.ModelAdmin):
    """Platform operators only, to see as well."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


@admin.register(Plan)
class PlanAdmin(PlatformOnly):
    list_display = ("name", "slug", "price", "currency", "is_default", "tenants")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "description", "is_default")}),
        ("Price", {"fields": ("price", "currency", "period_months", "trial_days")}),
        (
            "Limits",
            {
                "fields": (
                    "max_members",
                    "max_apps",
                    "max_documents",
                    "max_storage_bytes",
                    "max_vector_chunks",
                    "messages_per_period",
                    "tokens_per_period",
                    "workflow_runs_per_period",
                    "requests_per_minute",
                )
            },
        ),
        (
            "Overage",
            {
                "fields": [field for field, _ in OVERAGE_FIELD.values()],
                "description": "A counted limit with an overage price does not stop use: "
                "what passes it is billed at the close.",
            },
        ),
        ("Features", {"fields": ("remove_powered_by", "custom_domains", "sso")}),
    )

    @admin.display(description="Tenants")
    def tenants(self, plan: Plan) -> int:
        return plan.subscriptions.count()

    def delete_view(self, request, object_id, extra_context=None):
        plan = Plan.objects.filter(pk=object_id).first()
        if plan is not None and (plan.is_default or plan.subscriptions.exists()):
            self.message_user(
                request,
                "This plan is the default or has tenants on it: move them first.",
                messages.ERROR,
            )
            return self.response_post_save_change(request, plan)
        return super().delete_view(request, object_id, extra_context)


class OverrideInline(OperatorsChange, admin.TabularInline):
    model = Override
    extra = 0
    fields = ("metric", "limit", "note")


@admin.register(Subscription)
class SubscriptionAdmin(OperatorsChange, TenantScopedAdmin):
    """Tenant admins see their own subscription; platform operators change it."""

    permission_kind = "billing"
    list_display = ("__str__", "plan", "next_plan", "status", "period_start", "period_end")
    list_filter = ("status", "plan")
    inlines = (OverrideInline,)
    fields = (
        "plan", "next_plan", "status", "period_start", "period_end", "trial_ends_at",
        "tax_rate", "billing_name", "billing_address", "billing_email",
    )  # fmt: skip

    def save_formset(self, request, form, formset, change) -> None:
        for override in formset.save(commit=False):
            override.tenant_id = form.instance.tenant_id
            override.save()
        for gone in formset.deleted_objects:
            gone.delete()


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    fields = ("description", "quantity", "unit_price", "amount")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(TenantScopedAdmin):
    permission_kind = "billing"
    list_display = ("label", "period_start", "period_end", "total_shown", "status", "pdf_link")
    list_filter = ("status",)
    inlines = (InvoiceLineInline,)
    readonly_fields = (
        "label", "period_start", "period_end", "plan_name", "billing_name", "billing_address",
        "subtotal", "tax_rate", "tax", "total", "status", "error", "pdf_link", "emailed_at",
    )  # fmt: skip
    fields = readonly_fields
    actions = ("render_again",)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Platform operators only, as a tenant is deleted with everything it has.
        return request.user.is_superuser

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("render_again", None)
        return actions

    @admin.display(description="Number")
    def label(self, invoice: Invoice) -> str:
        return invoice.label

    @admin.display(description="Total")
    def total_shown(self, invoice: Invoice) -> str:
        return f"{invoice.total} {invoice.currency}"

    @admin.display(description="PDF")
    def pdf_link(self, invoice: Invoice) -> str:
        if invoice.status != Invoice.Status.READY or not invoice.pdf:
            return invoice.get_status_display()
        url = reverse("admin:billing_invoice_pdf", args=[invoice.pk])
        return format_html('<a href="{}">Download</a>', url)

    @admin.action(description="Render the PDF again (and e-mail it if it was not)")
    def render_again(self, request, queryset) -> None:
        from .tasks import render_invoice

        for invoice in queryset:
            Invoice.dangerously_unscoped.filter(pk=invoice.pk).update(
                status=Invoice.Status.PENDING, error=""
            )
            render_invoice.delay(str(invoice.pk))
        self.message_user(request, f"{queryset.count()} invoice(s) queued to render.")

    def get_urls(self):
        extra = [
            path(
                "<uuid:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="billing_invoice_pdf",
            )
        ]
        return extra + super().get_urls()

    def pdf_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        invoice = self.get_queryset(request).filter(pk=pk).first()
        if invoice is None or invoice.status != Invoice.Status.READY or not invoice.pdf:
            raise Http404("No such invoice PDF.")
        name = invoice.pdf.name.rsplit("/", 1)[-1]
        return FileResponse(invoice.pdf.open("rb"), content_type="application/pdf", filename=name)


# --- The usage page --------------------------------------------------------------------------

CHART_METRICS = (*COUNTED, Metric.API_REQUESTS, Metric.VECTOR_CHUNKS, Metric.STORAGE_BYTES)


def _estimate(limits, figures: dict) -> dict:
    """What this period would be billed if it closed now (before tax), from the use in
    `figures` (the summary's)."""
    used_now = {row["metric"]: row["used"] for row in figures["metrics"]}
    lines = [(f"{limits.plan.name} plan", money(limits.plan.price))]
    lines += [(line[0], line[3]) for line in overage_lines(limits, used_now)]
    return {"lines": lines, "total": money(sum((a for _, a in lines), Decimal(0)))}


def usage_view(request: HttpRequest) -> TemplateResponse:
    """The active tenant's plan, each limit against its use, charts of the last 30 days and
    the invoices (owners, admins and platform operators)."""
    principal = principal_of(request)
    tenant = getattr(request, "tenant", None)
    if principal is None or tenant is None or not allowed(principal, "billing", "view"):
        raise PermissionDenied
    chosen = request.GET.get("metric") or Metric.MESSAGES.value
    if chosen not in CHART_METRICS:
        chosen = Metric.MESSAGES.value
    today = timezone.now().astimezone(dt.UTC).date()
    capacity = rollup_day(tenant, today)
    limits = limits_for(tenant)
    figures = summary(tenant, capacity)
    first = today - dt.timedelta(days=29)
    ledger = breakdown(tenant, first, today)
    by_day = {row["day"]: row for row in ledger["days"]}
    days = [(first + dt.timedelta(days=n)).isoformat() for n in range(30)]
    values = [by_day.get(day, {}).get(chosen, 0) for day in days]
    period_first = limits.period_start.astimezone(dt.UTC).date().isoformat()
    cumulative, running = [], 0
    counted = chosen in COUNTED or chosen == Metric.API_REQUESTS
    for day, value in zip(days, values, strict=True):
        running = running + value if day >= period_first else 0
        cumulative.append(running)
    label = Metric(chosen).label
    over_time = charts.bars_over_time(
        f"{label}, per day" + (" (line: running total this period)" if counted else ""),
        days,
        values,
        limit=limits.limit(chosen),
        cumulative=cumulative if counted else None,
    )
    metric_rows = [row for row in ledger["apps"] if row["metric"] == chosen]
    by_app = charts.horizontal_bars(
        f"{label} by app, last 30 days",
        [(row["app_name"], row["quantity"], f"{row['quantity']:,}") for row in metric_rows],
    )
    by_model = charts.horizontal_bars(
        "Tokens by model, last 30 days",
        [
            (row["model"], row["tokens"], f"{row['tokens']:,} tokens · {Decimal(row['cost']):.4f}")
            for row in ledger["models"]
        ],
        colour="#0F766E",
    )
    context = {
        **admin.site.each_context(request),
        "title": f"Usage of {tenant.name}",
        "summary": figures,
        "charts": [over_time, by_app, by_model],
        "chart_metrics": [(m.value, Metric(m).label) for m in CHART_METRICS],
        "chosen": chosen,
        "estimate": _estimate(limits, figures),
        "invoices": Invoice.dangerously_unscoped.filter(tenant=tenant)[:12],
    }
    return TemplateResponse(request, "billing/usage.html", context)
