"""Console pages for tenants, members, API keys, users and the audit log."""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from . import services
from .admin_base import NotFoundAdminMixin, TenantScopedAdmin
from .exceptions import WeftError
from .http import principal_of, require_principal
from .models import ApiKey, AuditLog, Membership, Tenant, User
from .permissions import Principal, allowed, can_api_key, can_membership, can_tenant
from .roles import Role


@admin.register(Tenant)
class TenantAdmin(NotFoundAdminMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "status", "time_zone", "require_2fa", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "slug"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        tenant = getattr(request, "tenant", None)
        return queryset.filter(pk=tenant.pk) if tenant else queryset.none()

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return ["created_at", "updated_at"]
        return ["slug", "status", "created_at", "updated_at"]

    def _principal_allows(self, request, action: str, obj=None) -> bool:
        principal = principal_of(request)
        if principal is None:
            return False
        if obj is not None and not request.user.is_superuser and obj.pk != principal.tenant_id:
            return False
        return can_tenant(principal, action)

    def has_module_permission(self, request) -> bool:
        return self._principal_allows(request, "view")

    def has_view_permission(self, request, obj=None) -> bool:
        return self._principal_allows(request, "view", obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._principal_allows(request, "change", obj)

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


class InviteForm(forms.ModelForm):
    email = forms.EmailField(label="E-mail address", help_text="They get a link to sign in.")

    class Meta:
        model = Membership
        fields = ["role"]


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    permission_kind = "membership"
    add_action = "invite"
    change_action = "change_role"
    delete_action = "remove"
    list_display = ["user", "role", "invited_by", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "user__name"]
    list_select_related = ["user", "invited_by"]
    readonly_fields = ["user", "invited_by", "created_at"]
    actions = ["send_invitation"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "invited_by")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = InviteForm
            kwargs["fields"] = ["role"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["email", "role"]
        return ["user", "role", "invited_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        principal = require_principal(request)
        if change:
            services.membership_change_role(
                membership=Membership.objects.get(pk=obj.pk),
                role=form.cleaned_data["role"],
                principal=principal,
            )
            return
        created = services.membership_invite(
            tenant=request.tenant,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            principal=principal,
            inviter=request.user,
        )
        obj.pk = created.pk
        obj.user = created.user
        obj.tenant = created.tenant

    @admin.action(description="Send the invitation e-mail again")
    def send_invitation(self, request, queryset):
        sent = 0
        for membership in queryset.select_related("user"):
            try:
                services.membership_send_invitation(
                    membership=membership,
                    principal=require_principal(request),
                    inviter=request.user,
                )
                sent += 1
            except WeftError as exc:
                self.message_user(request, f"{membership.user}: {exc.message}", messages.ERROR)
        if sent:
            self.message_user(request, f"Sent {sent} invitation(s).", messages.SUCCESS)

    def get_actions(self, request):
        actions = super().get_actions(request)
        principal = principal_of(request)
        if principal is None or not allowed(principal, "membership", "invite"):
            actions.pop("send_invitation", None)
        return actions

    def delete_model(self, request, obj) -> None:
        services.membership_remove(membership=obj, principal=require_principal(request))

    def delete_queryset(self, request, queryset) -> None:
        for membership in queryset:
            services.membership_remove(membership=membership, principal=require_principal(request))

    def has_change_permission(self, request, obj=None) -> bool:
        principal = principal_of(request)
        return principal is not None and can_membership(principal, "change_role", obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        principal = principal_of(request)
        return principal is not None and can_membership(principal, "remove", obj)

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role":
            principal = principal_of(request)
            kwargs["choices"] = [
                (value, label)
                for value, label in Role.choices
                if principal is not None and can_membership(principal, "invite", new_role=value)
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)


class ApiKeyForm(forms.ModelForm):
    principal: Principal | None = None  # set by ApiKeyAdmin.get_form

    class Meta:
        model = ApiKey
        fields = ["kind", "name", "role", "app_id"]

    def clean(self):
        super().clean()
        data = self.cleaned_data
        kind = data.get("kind")
        principal = self.principal
        if kind and (
            principal is None
            or not can_api_key(principal, "create", kind=kind, role=data.get("role"))
        ):
            raise forms.ValidationError("You may not create this kind of key.")
        if kind == ApiKey.Kind.APP and not data.get("app_id"):
            self.add_error("app_id", "An app key needs the id of its app.")
        if kind and kind != ApiKey.Kind.APP and data.get("app_id"):
            self.add_error("app_id", "Only app keys belong to an app.")
        return data


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    permission_kind = "api_key"
    add_action = "create"
    change_action = "revoke"
    list_display = ["name", "kind", "prefix_shown", "role", "created_by", "last_used_at", "status"]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    actions = ["revoke_keys"]
    form = ApiKeyForm

    @admin.display(description="key")
    def prefix_shown(self, key: ApiKey) -> str:
        return f"{key.prefix}…"

    @admin.display(description="status")
    def status(self, key: ApiKey) -> str:
        return "revoked" if key.is_revoked else "active"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "kind",
            "name",
            "prefix_shown",
            "role",
            "app_id",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["kind", "name", "role", "app_id"]
        return self.get_readonly_fields(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        # Keys are never edited; the change page is read-only, revocation is an action.
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request, "view", obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def get_actions(self, request):
        actions = super().get_actions(request)
        principal = principal_of(request)
        if principal is None or not allowed(principal, "api_key", "revoke"):
            actions.pop("revoke_keys", None)
        return actions

    def get_form(self, request, obj=None, change=False, **kwargs):
        # A subclass of self.form (ApiKeyForm), made by modelform_factory.
        form = cast(type[ApiKeyForm], super().get_form(request, obj, change=change, **kwargs))
        form.principal = principal_of(request)
        return form

    def save_model(self, request, obj, form, change) -> None:
        key, raw = services.api_key_create(
            tenant=request.tenant,
            principal=require_principal(request),
            created_by=request.user,
            kind=form.cleaned_data["kind"],
            name=form.cleaned_data["name"],
            role=form.cleaned_data["role"],
            app_id=form.cleaned_data["app_id"],
        )
        obj.__dict__.update(key.__dict__)
        obj.raw_key = raw

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "key": obj,
            "raw_key": obj.raw_key,
            "title": "API key created",
        }
        # admin_view already marks the page never_cache (no-store).
        return TemplateResponse(request, "tenants/api_key_created.html", context)

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset):
        principal = require_principal(request)
        revoked = 0
        for key in queryset:
            try:
                services.api_key_revoke(key=key, principal=principal)
                revoked += 1
            except WeftError as exc:
                self.message_user(request, f"{key}: {exc.message}", messages.ERROR)
        if revoked:
            self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


@admin.register(AuditLog)
class AuditLogAdmin(NotFoundAdminMixin, admin.ModelAdmin):
    """The audit trail: read-only for everyone, tenant admins see their tenant's rows."""

    list_display = [
        "created_at",
        "actor_label",
        "source",
        "action",
        "object_type",
        "object_repr",
        "ip",
    ]
    list_filter = ["action", "source", "object_type"]
    search_fields = ["actor_label", "object_repr", "object_id"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "created_at",
        "tenant",
        "actor_label",
        "source",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "changes",
        "ip",
        "user_agent",
    ]
    fields = [*readonly_fields]

    def get_queryset(self, request):
        if request.user.is_superuser:
            return AuditLog.dangerously_unscoped.select_related("tenant")
        return AuditLog.objects.all()

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        return [*columns, "tenant"] if request.user.is_superuser else columns

    def has_module_permission(self, request) -> bool:
        principal = principal_of(request)
        return principal is not None and allowed(principal, "audit_log", "view")

    def has_view_permission(self, request, obj=None) -> bool:
        principal = principal_of(request)
        if principal is None:
            return False
        if (
            obj is not None
            and not request.user.is_superuser
            and obj.tenant_id != principal.tenant_id
        ):
            return False
        return allowed(principal, "audit_log", "view")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ConsoleUserCreationForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class ConsoleUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Platform users: superusers only; tenant admins manage people through Members."""

    form = ConsoleUserChangeForm
    add_form = ConsoleUserCreationForm
    ordering = ["email"]
    list_display = ["email", "name", "is_active", "is_superuser", "last_login"]
    search_fields = ["email", "name"]
    list_filter = ["is_active", "is_superuser"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    readonly_fields = ["last_login", "date_joined"]
    filter_horizontal = ()

    def _superuser(self, request, obj=None) -> bool:
        return request.user.is_superuser

    has_module_permission = _superuser
    has_view_permission = _superuser
    has_add_permission = _superuser
    has_change_permission = _superuser
    has_delete_permission = _superuser

    def user_change_password(self, request, id, form_url=""):
        if not request.user.is_superuser:
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)
