"""Tenancy: users, tenants, memberships, API keys and the audit log."""

from __future__ import annotations

import secrets
import uuid
import zoneinfo
from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from .context import require_current_tenant
from .roles import Role


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"“{value}” is not a known time zone (e.g. Europe/Berlin, UTC).")


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    # The stubs allow None; ModelBackend never passes it (it returns early without one).
    def get_by_natural_key(self, username: str) -> User:  # type: ignore[override]
        # Addresses are stored lower-case, so sign-in ignores the case typed.
        return self.get(email=username.strip().lower())

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractUser):
    """A console user: logs in with e-mail and password, may belong to several tenants."""

    # Removing AbstractUser's fields is Django's documented idiom; the stubs type them as str.
    username = None  # type: ignore[assignment]
    first_name = None  # type: ignore[assignment]
    last_name = None  # type: ignore[assignment]
    email = models.EmailField("e-mail address", unique=True)
    name = models.CharField(max_length=150, blank=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []
    # Ours replaces auth's UserManager, which the stubs pin AbstractUser.objects to.
    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email


class Tenant(models.Model):
    """An organisation using Weft: its own members, roles, settings, data and bill."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(
        max_length=63,
        unique=True,
        validators=[
            RegexValidator(
                r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
                "Use lower-case letters, digits and inner hyphens only.",
            )
        ],
    )
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    require_2fa = models.BooleanField(
        "require two-factor authentication",
        default=False,
        help_text="Members must enrol and use an authenticator app to reach the console.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class TenantScopedManager(models.Manager):
    """Rows of the current tenant only; raises TenantContextMissing when there is none."""

    def get_queryset(self) -> models.QuerySet:
        tenant = require_current_tenant()
        return super().get_queryset().filter(tenant_id=tenant.pk)


class UnscopedManager(models.Manager):
    """Every tenant's rows. Only platform-wide code may use it, under this loud name."""


class TenantOwned(models.Model):
    """Base of every tenant-owned row: UUID key, indexed tenant, fail-closed default manager.

    `objects` sees the current tenant's rows only. `dangerously_unscoped` sees every tenant's
    rows: only platform-wide code (superuser admin, billing close, key lookup) may use it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="+", editable=False, db_index=True
    )

    objects = TenantScopedManager()
    dangerously_unscoped = UnscopedManager()

    class Meta:
        abstract = True
        # Saves, deletes and related lookups go through the base manager: they act on rows
        # already in hand, so they must not depend on (or be filtered by) the context.
        base_manager_name = "dangerously_unscoped"

    def save(self, *args, **kwargs) -> None:
        if self.tenant_id is None:
            self.tenant = require_current_tenant()
        super().save(*args, **kwargs)


class Membership(TenantOwned):
    """A user's place in a tenant, with one role."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user")
        ]
        indexes = [models.Index(fields=["tenant", "role"], name="membership_tenant_role")]
        ordering = ["user__email"]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"


class ApiKey(TenantOwned):
    """A hashed API key: `app-` (one app, Service API), `dataset-` (Knowledge API), `wk-`."""

    class Kind(models.TextChoices):
        APP = "app", "App (Service API)"
        DATASET = "dataset", "Dataset (Knowledge API)"
        MANAGEMENT = "management", "Management API"

    PREFIXES: ClassVar[dict[str, str]] = {
        Kind.APP: "app-",
        Kind.DATASET: "dataset-",
        Kind.MANAGEMENT: "wk-",
    }

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(
        max_length=24, editable=False, help_text="The visible start of the key."
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    role = models.CharField(
        max_length=16,
        choices=Role.choices,
        default=Role.ADMIN,
        help_text="What a management key may do, as if it were a member with this role.",
    )
    app_id = models.UUIDField(null=True, blank=True, help_text="The app an `app-` key belongs to.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    # The key itself, set only on the instance `api_key_create` returns; never stored.
    raw_key: str

    class Meta(TenantOwned.Meta):
        verbose_name = "API key"
        indexes = [models.Index(fields=["tenant", "kind"], name="apikey_tenant_kind")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or self.get_kind_display()} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class AuditLog(models.Model):
    """One write in the console, the API or a command: who, what, from where, which fields."""

    class Action(models.TextChoices):
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        DELETE = "delete", "Delete"

    id = models.BigAutoField(primary_key=True)
    # No database constraints: the trail outlives the tenants and users it names.
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=16, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = TenantScopedManager()
    dangerously_unscoped = UnscopedManager()

    class Meta:
        base_manager_name = "dangerously_unscoped"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="audit_tenant_created"),
            models.Index(fields=["tenant", "object_type", "object_id"], name="audit_tenant_object"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type} {self.object_repr}"


class Branding(TenantOwned):
    """How a tenant's portals (and its console header) look: its product's name, logo,
    favicon and colours, and the lines of its footer."""

    product_name = models.CharField(max_length=80, blank=True)
    primary_color = models.CharField(max_length=7, default="#155EEF")
    accent_color = models.CharField(max_length=7, default="#0F766E")
    # Small images, kept in the row (sniffed PNG or JPEG, at most WEFT_BRAND_IMAGE_MAX_BYTES).
    logo = models.BinaryField(null=True, blank=True, editable=False)
    logo_type = models.CharField(max_length=32, blank=True, editable=False)
    favicon = models.BinaryField(null=True, blank=True, editable=False)
    favicon_type = models.CharField(max_length=32, blank=True, editable=False)
    show_powered_by = models.BooleanField(default=True)
    # Kept as cleaned by tenants.css (and cleaned again when a page uses it).
    custom_css = models.TextField(blank=True)
    footer_text = models.CharField(max_length=200, blank=True)
    copyright = models.CharField(max_length=200, blank=True)
    privacy_url = models.URLField(max_length=500, blank=True)
    email_sender_name = models.CharField(max_length=80, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant"], name="branding_one_per_tenant")]

    def __str__(self) -> str:
        return self.product_name or "Branding"


def new_domain_token() -> str:
    return secrets.token_urlsafe(24)


class CustomDomain(TenantOwned):
    """A domain of the tenant's own serving its portals: all its sites (under /c/<code>/),
    or one site at its root. It answers only once verified: the tenant puts
    `weft-verify=<token>` in a TXT record at `_weft-verify.<domain>` (tenants.domains)."""

    domain = models.CharField(max_length=253, unique=True)
    site = models.ForeignKey(
        "apps.Site", on_delete=models.CASCADE, null=True, blank=True, related_name="domains"
    )
    verification_token = models.CharField(max_length=64, default=new_domain_token)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.domain
