"""Plans and what each tenant is on, the live counters quotas are checked against, the
usage ledger, and invoices.

Limits are kept as one column each (NULL: no limit), so that the admin validates them as
numbers and a report can sort by them. Money is Decimal throughout."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from tenants.models import TenantOwned

# A limit above this is a typing mistake, not a plan: refused in the admin.
ABSURD = 10**15


def money_field(**options) -> models.DecimalField:
    return models.DecimalField(max_digits=14, decimal_places=2, **options)


def unit_price_field(**options) -> models.DecimalField:
    return models.DecimalField(max_digits=14, decimal_places=6, **options)


class Metric(models.TextChoices):
    """What is limited and counted. Capacity metrics are recounted from the database;
    counted ones add up per period; `requests_per_minute` is a sliding window."""

    MEMBERS = "members", "Members"
    APPS = "apps", "Apps"
    DOCUMENTS = "documents", "Documents"
    STORAGE_BYTES = "storage_bytes", "Storage (bytes)"
    VECTOR_CHUNKS = "vector_chunks", "Vector chunks"
    MESSAGES = "messages", "Messages per period"
    TOKENS = "tokens", "Tokens per period"
    WORKFLOW_RUNS = "workflow_runs", "Workflow runs per period"
    API_REQUESTS = "api_requests", "API requests"
    REQUESTS_PER_MINUTE = "requests_per_minute", "Requests per minute"


CAPACITY = (
    Metric.MEMBERS,
    Metric.APPS,
    Metric.DOCUMENTS,
    Metric.STORAGE_BYTES,
    Metric.VECTOR_CHUNKS,
)
COUNTED = (Metric.MESSAGES, Metric.TOKENS, Metric.WORKFLOW_RUNS)
# The plan's column holding each metric's limit.
LIMIT_FIELD = {
    Metric.MEMBERS: "max_members",
    Metric.APPS: "max_apps",
    Metric.DOCUMENTS: "max_documents",
    Metric.STORAGE_BYTES: "max_storage_bytes",
    Metric.VECTOR_CHUNKS: "max_vector_chunks",
    Metric.MESSAGES: "messages_per_period",
    Metric.TOKENS: "tokens_per_period",
    Metric.WORKFLOW_RUNS: "workflow_runs_per_period",
    Metric.REQUESTS_PER_MINUTE: "requests_per_minute",
}
# The plan's column holding each counted metric's overage price, and the units it is per.
OVERAGE_FIELD = {
    Metric.MESSAGES: ("overage_per_message", 1),
    Metric.TOKENS: ("overage_per_1k_tokens", 1000),
    Metric.WORKFLOW_RUNS: ("overage_per_workflow_run", 1),
}


def _limit(help_text: str) -> models.PositiveBigIntegerField:
    return models.PositiveBigIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(ABSURD)],
        help_text=f"{help_text} Blank: no limit.",
    )


def _price(help_text: str) -> models.DecimalField:
    return unit_price_field(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(10**6))],
        help_text=f"{help_text} Blank: the limit is a hard stop; set: usage past it is "
        "allowed and billed at this price.",
    )


class Plan(models.Model):
    """What a tenant may use in a period and what it pays. Platform-wide."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(
        default=False, help_text="The plan of every tenant without a subscription (one only)."
    )
    price = money_field(
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(10**9))],
        help_text="Per period, before tax.",
    )
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code in capitals, e.g. USD.")],
    )
    period_months = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(12)]
    )
    trial_days = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(365)],
        help_text="Free days before the first paid period: a new tenant on the default plan "
        "starts with them, and a subscription put on trial on this plan gets them.",
    )

    max_members = _limit("Members of the tenant.")
    max_apps = _limit("Apps.")
    max_documents = _limit("Knowledge documents.")
    max_storage_bytes = _limit("Bytes of uploaded files and documents.")
    max_vector_chunks = _limit("Indexed chunks.")
    messages_per_period = _limit("Chat and completion messages per period.")
    tokens_per_period = _limit("Model tokens per period.")
    workflow_runs_per_period = _limit("Workflow runs per period.")
    requests_per_minute = _limit("API requests per minute, for the whole tenant.")

    overage_per_message = _price("Per message past the limit.")
    overage_per_1k_tokens = _price("Per 1,000 tokens past the limit.")
    overage_per_workflow_run = _price("Per workflow run past the limit.")

    remove_powered_by = models.BooleanField(
        default=False, help_text="Tenants may hide “Powered by Weft” on their portals."
    )
    custom_domains = models.BooleanField(
        default=True, help_text="Tenants may serve their portals on their own domains."
    )
    sso = models.BooleanField(default=False, help_text="Tenants may sign in with SSO.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["price", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="plan_one_default",
                violation_error_message="There can be only one default plan: untick the "
                "other one first.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def limit(self, metric: str) -> int | None:
        return getattr(self, LIMIT_FIELD[Metric(metric)])


class Subscription(TenantOwned):
    """The tenant's plan and its current period. A plan change waits for the next period
    (`next_plan`); the operator raises a limit at once with an override."""

    class Status(models.TextChoices):
        TRIALING = "trialing", "Trial"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELLED = "cancelled", "Cancelled"

    plan = models.ForeignKey(
        Plan,
        on_delete=models.PROTECT,
        related_name="subscriptions",
        help_text="Changed here, it applies at once and bills the whole period; to change "
        "plans when the period ends, set the next plan.",
    )
    next_plan = models.ForeignKey(
        Plan,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Takes over when the current period closes.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    trial_ends_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="While on trial the period is the trial: it ends then, without the plan's "
        "price. Blank on a trial: the plan's trial days from the period's start.",
    )
    tax_rate = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        help_text="Percent. Blank: the platform's WEFT_TAX_RATE.",
    )
    billing_name = models.CharField(max_length=200, blank=True)
    billing_address = models.TextField(blank=True)
    billing_email = models.EmailField(
        blank=True, help_text="Where invoices go; blank: the tenant's owners and admins."
    )
    # The last invoice number given: the next is one more, in the same transaction.
    last_invoice_number = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="subscription_one_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.plan} ({self.get_status_display()})"

    def clean(self) -> None:
        if self.status == self.Status.TRIALING and self.period_start and self.plan_id:
            self._clean_trial()
        if self.period_start and self.period_end and self.period_end <= self.period_start:
            raise ValidationError({"period_end": "The period must end after it starts."})

    def _clean_trial(self) -> None:
        """A trial is a period of its own, ending when the trial does."""
        if self.trial_ends_at is None:
            if not self.plan.trial_days:
                raise ValidationError(
                    {"trial_ends_at": "Set when the trial ends: this plan has no trial days."}
                )
            self.trial_ends_at = self.period_start + dt.timedelta(days=self.plan.trial_days)
        if self.trial_ends_at <= self.period_start:
            raise ValidationError({"trial_ends_at": "The trial must end after the period starts."})
        self.period_end = self.trial_ends_at


class Override(TenantOwned):
    """One limit of one tenant set apart from its plan's."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="overrides"
    )
    metric = models.CharField(max_length=32, choices=Metric.choices)
    limit = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(ABSURD)],
        help_text="Blank: no limit.",
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "metric"], name="override_one_per_metric")
        ]

    def __str__(self) -> str:
        return f"{self.get_metric_display()}: {self.limit if self.limit is not None else '∞'}"


class Counter(TenantOwned):
    """A counted metric's use in one period, as quotas check it: raised by one conditional
    UPDATE, so that parallel requests at the edge never pass the limit together."""

    metric = models.CharField(max_length=32, choices=Metric.choices)
    period_start = models.DateTimeField()
    used = models.BigIntegerField(default=0)

    audit_trail: ClassVar[bool] = False

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "metric", "period_start"], name="counter_unique"
            )
        ]


class Alert(TenantOwned):
    """A soft-limit warning sent (80 % or 100 % of a limit), at most once per period."""

    metric = models.CharField(max_length=32, choices=Metric.choices)
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField()
    used = models.BigIntegerField()
    limit = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    audit_trail: ClassVar[bool] = False

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "metric", "period_start", "threshold"], name="alert_once"
            )
        ]


class UsageRecord(TenantOwned):
    """One counted use (a message, a workflow run, an API request): what the ledger is
    rebuilt from, with the model calls' UsageEvent rows. Kept when the app is deleted."""

    metric = models.CharField(max_length=32, choices=Metric.choices)
    quantity = models.BigIntegerField(default=1)
    app_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    audit_trail: ClassVar[bool] = False

    class Meta(TenantOwned.Meta):
        indexes = [models.Index(fields=["tenant", "created_at"], name="usage_record_created")]


class UsageDay(TenantOwned):
    """The ledger: one metric's use on one day, by app and model where they apply.
    Rebuilt whole for a day by the roll-up, so re-running it gives the same rows."""

    day = models.DateField()
    metric = models.CharField(max_length=32, choices=Metric.choices)
    app_id = models.UUIDField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True)
    quantity = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=Decimal(0))

    audit_trail: ClassVar[bool] = False

    class Meta(TenantOwned.Meta):
        indexes = [models.Index(fields=["tenant", "day", "metric"], name="usage_day_metric")]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "metric", "app_id", "model"],
                name="usage_day_unique",
                nulls_distinct=False,
            )
        ]


class Invoice(TenantOwned):
    """A closed period's bill: its lines frozen at the close, then its PDF."""

    class Status(models.TextChoices):
        PENDING = "pending", "Rendering"
        READY = "ready", "Ready"
        ERROR = "error", "Render failed"

    number = models.PositiveIntegerField()
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    plan_name = models.CharField(max_length=100)
    currency = models.CharField(max_length=3)
    subtotal = money_field()
    tax_rate = models.DecimalField(max_digits=5, decimal_places=2)
    tax = money_field()
    total = money_field()
    billing_name = models.CharField(max_length=200, blank=True)
    billing_address = models.TextField(blank=True)
    totals = models.JSONField(default=dict, help_text="The period's use per metric, frozen.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    pdf = models.FileField(upload_to="invoices/", blank=True, max_length=300)
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwned.Meta):
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="invoice_number_unique"),
            models.UniqueConstraint(
                fields=["tenant", "period_start"], name="invoice_one_per_period"
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"INV-{self.period_start:%Y}-{self.number:05d}"

    @property
    def tax_rate_shown(self) -> str:
        return format(self.tax_rate.normalize(), "f")

    @property
    def usage_shown(self) -> list[tuple[str, str]]:
        """The frozen use of the period, named and written as people read it."""
        return [
            (Metric(m).label, f"{v['quantity']:,}") for m, v in self.totals.items() if m in Metric
        ]


class InvoiceLine(TenantOwned):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    description = models.CharField(max_length=200)
    quantity = models.DecimalField(max_digits=20, decimal_places=0)
    unit_price = unit_price_field()
    amount = money_field()

    class Meta(TenantOwned.Meta):
        ordering = ["position"]

    @property
    def quantity_shown(self) -> str:
        return f"{self.quantity:,}"

    @property
    def unit_price_shown(self) -> str:
        """At least cents, and no zeros past them: 49.00, 0.02, 0.0005."""
        value = self.unit_price.normalize()
        exponent = value.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < -2 else 2
        return f"{value:,.{places}f}"
