"""Model providers: credentials (secrets encrypted), the model catalog with prices, each
tenant's default models, and the usage of every call."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from tenants.context import require_current_tenant
from tenants.models import Tenant, TenantOwned, UnscopedManager

from . import crypto
from .validators import validate_base_url


class ProviderKind(models.TextChoices):
    OFFLINE = "offline", "Built-in (offline)"
    OPENAI = "openai", "OpenAI"
    OPENAI_COMPATIBLE = (
        "openai_compatible",
        "OpenAI-compatible (Ollama, vLLM, LM Studio, DeepSeek …)",
    )
    AZURE_OPENAI = "azure_openai", "Azure OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"


DEFAULT_BASE_URLS: dict[str, str] = {
    ProviderKind.OPENAI: "https://api.openai.com/v1",
    ProviderKind.ANTHROPIC: "https://api.anthropic.com",
}


class ModelKind(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"
    RERANK = "rerank", "Rerank"


class ProviderCredential(TenantOwned):
    """A tenant's access to one provider account or server; the secret is stored encrypted."""

    class Status(models.TextChoices):
        UNCHECKED = "unchecked", "Not tested yet"
        OK = "ok", "Working"
        FAILED = "failed", "Failing"

    kind = models.CharField(
        max_length=32, choices=[c for c in ProviderKind.choices if c[0] != ProviderKind.OFFLINE]
    )
    name = models.CharField(max_length=100)
    base_url = models.CharField(
        blank=True,
        max_length=500,
        validators=[validate_base_url],
        help_text="Leave empty for the provider's own address; required for compatible servers "
        "and Azure (e.g. http://ollama:11434/v1).",
    )
    secret_encrypted = models.TextField(blank=True, editable=False)
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text='Non-secret settings, e.g. {"api_version": "2024-10-21"} for Azure or '
        '{"organization": "org-…"} for OpenAI.',
    )
    enabled = models.BooleanField(default=True)
    weight = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="Share of calls among this provider's credentials (load balancing).",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNCHECKED)
    last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="credential_unique_name")
        ]
        indexes = [models.Index(fields=["tenant", "kind"], name="credential_tenant_kind")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted) if self.secret_encrypted else ""

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = crypto.encrypt(value) if value else ""

    @property
    def secret_masked(self) -> str:
        return crypto.mask(self.secret) if self.secret_encrypted else ""

    @property
    def effective_base_url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URLS.get(self.kind, "")).rstrip("/")


class CatalogManager(models.Manager):
    """The models a tenant can use: the global catalog plus its own; raises without a tenant."""

    def get_queryset(self) -> models.QuerySet:
        tenant = require_current_tenant()
        return super().get_queryset().filter(Q(tenant__isnull=True) | Q(tenant_id=tenant.pk))


class GlobalCatalogManager(models.Manager):
    """The global catalog alone (no tenant rows), readable without a tenant."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(tenant__isnull=True)


class Model(models.Model):
    """A model Weft can call: a global catalog entry (tenant empty) or a tenant's own, with
    its limits, features and prices per million tokens."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="+", editable=False
    )
    provider = models.CharField(max_length=32, choices=ProviderKind.choices)
    credential = models.ForeignKey(
        ProviderCredential,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="served_models",
        help_text="For a compatible server or Azure: the credential that serves this model.",
    )
    name = models.CharField(max_length=200, help_text="The model id the provider knows.")
    label = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    context_window = models.PositiveIntegerField(default=8192)
    max_output_tokens = models.PositiveIntegerField(default=4096)
    dimensions = models.PositiveIntegerField(
        null=True, blank=True, help_text="Vector size, for embedding models."
    )
    supports_tools = models.BooleanField(default=False)
    supports_json_schema = models.BooleanField(default=False)
    supports_vision = models.BooleanField(default=False)
    input_price = models.DecimalField(
        max_digits=12, decimal_places=4, default=Decimal(0), help_text="Per million input tokens."
    )
    output_price = models.DecimalField(
        max_digits=12, decimal_places=4, default=Decimal(0), help_text="Per million output tokens."
    )
    currency = models.CharField(max_length=3, default="USD")
    enabled = models.BooleanField(default=True)

    objects = CatalogManager()
    catalog = GlobalCatalogManager()
    dangerously_unscoped = UnscopedManager()

    class Meta:
        base_manager_name = "dangerously_unscoped"
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "name"],
                condition=Q(tenant__isnull=True),
                name="model_unique_global",
            ),
            models.UniqueConstraint(
                fields=["tenant", "provider", "credential", "name"],
                condition=Q(tenant__isnull=False),
                nulls_distinct=False,
                name="model_unique_tenant",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "kind"], name="model_tenant_kind")]
        ordering = ["kind", "provider", "name"]

    def __str__(self) -> str:
        return self.label or self.name

    @property
    def is_global(self) -> bool:
        return self.tenant_id is None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """What a call with these token counts costs, at this model's prices."""
        million = Decimal(1_000_000)
        return (
            self.input_price * prompt_tokens / million
            + self.output_price * completion_tokens / million
        ).quantize(Decimal("0.00000001"))


class DefaultModel(TenantOwned):
    """The model a tenant uses for one kind when a caller names none, and the fallbacks
    tried in order when it fails."""

    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="+")

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind"], name="default_model_unique_kind")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.model}"


class Fallback(TenantOwned):
    """One fallback model of a default, in order."""

    default = models.ForeignKey(DefaultModel, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta(TenantOwned.Meta):
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["default", "model"], name="fallback_unique_model")
        ]


class UsageEvent(TenantOwned):
    """One model call: tokens, cost, latency and outcome. Billing rolls these up."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"

    operation = models.CharField(max_length=16, choices=ModelKind.choices)
    provider = models.CharField(max_length=32, choices=ProviderKind.choices)
    model_name = models.CharField(max_length=200)
    credential = models.ForeignKey(
        ProviderCredential, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    app_id = models.UUIDField(null=True, blank=True)
    workflow_run_id = models.UUIDField(null=True, blank=True)
    message_id = models.UUIDField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=Decimal(0))
    currency = models.CharField(max_length=3, default="USD")
    latency_ms = models.PositiveIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OK)
    error_code = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # One row per model call: far too many, and written by no person, for the audit trail.
    audit_trail: ClassVar[bool] = False

    class Meta(TenantOwned.Meta):
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="usage_tenant_created"),
            models.Index(fields=["tenant", "model_name", "-created_at"], name="usage_tenant_model"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.operation} {self.model_name} {self.total_tokens} tokens"
