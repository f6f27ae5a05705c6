"""Management API: the tenant's usage against its plan, and its invoices (read only).
Owners and admins (`billing.view`); another tenant's invoice is not found."""

from __future__ import annotations

import datetime as dt

from django.http import FileResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tenants.api.views import TenantScopedViewSet
from tenants.exceptions import InvalidInput, NotFound

from ..models import Invoice, InvoiceLine
from ..usage import breakdown, rollup_day, summary

MAX_DAYS = 366


class InvoiceLineOut(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = ["position", "description", "quantity", "unit_price", "amount"]


class InvoiceOut(serializers.ModelSerializer):
    number = serializers.CharField(source="label")
    lines = InvoiceLineOut(many=True, read_only=True)
    pdf_ready = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "id", "number", "period_start", "period_end", "plan_name", "currency", "subtotal",
            "tax_rate", "tax", "total", "status", "error", "totals", "lines", "pdf_ready",
            "created_at",
        ]  # fmt: skip

    def get_pdf_ready(self, invoice: Invoice) -> bool:
        return invoice.status == Invoice.Status.READY and bool(invoice.pdf)


def _day(request, name: str, default: dt.date) -> dt.date:
    value = request.query_params.get(name)
    if not value:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name}: expected a date as YYYY-MM-DD.") from None


class UsageView(viewsets.ViewSet):
    """The plan, the period, each limit against its use now, and the ledger per day, app and
    model between `from` and `to` (the last 30 days by default)."""

    permission_kind = "billing"
    permission_actions = {"retrieve": "view"}

    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, description="First day, YYYY-MM-DD."),
            OpenApiParameter("to", str, description="Last day, YYYY-MM-DD."),
        ],
        responses={200: dict},
    )
    def retrieve(self, request):
        tenant = request._request.tenant
        today = timezone.now().astimezone(dt.UTC).date()
        last = _day(request, "to", today)
        first = _day(request, "from", last - dt.timedelta(days=29))
        if first > last:
            raise InvalidInput("from: must not be after to.")
        if (last - first).days >= MAX_DAYS:
            raise InvalidInput(f"At most {MAX_DAYS} days at a time.")
        capacity = rollup_day(tenant, today)  # today's figures as they stand
        return Response(
            {
                **summary(tenant, capacity),
                "from": first,
                "to": last,
                **breakdown(tenant, first, last),
            }
        )


class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's invoices, newest first, with their lines; `…/pdf/` is the PDF."""

    model = Invoice
    serializer_class = InvoiceOut
    permission_kind = "billing"
    permission_actions = {"list": "view", "retrieve": "view", "pdf": "view"}

    def get_queryset(self):
        return super().get_queryset().prefetch_related("lines")

    @extend_schema(responses={(200, "application/pdf"): bytes})
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        invoice = self.get_object()
        if invoice.status != Invoice.Status.READY or not invoice.pdf:
            raise NotFound("This invoice's PDF is not ready.")
        name = invoice.pdf.name.rsplit("/", 1)[-1]
        return FileResponse(invoice.pdf.open("rb"), content_type="application/pdf", filename=name)
