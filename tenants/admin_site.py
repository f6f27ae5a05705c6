"""The operator console: Django's admin, opened to tenant members by role, with 2FA."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.urls import path

from .models import Membership
from .permissions import can_access_console
from .roles import RANK, Role


class ConsoleAuthenticationForm(AdminAuthenticationForm):
    """Console sign-in: platform superusers and members with a console role anywhere."""

    def confirm_login_allowed(self, user) -> None:
        if not user.is_active:
            raise ValidationError(self.error_messages["inactive"], code="inactive")
        if user.is_superuser:
            return
        roles = Membership.dangerously_unscoped.filter(
            user=user, tenant__status="active"
        ).values_list("role", flat=True)
        if not any(RANK[role] >= RANK[Role.OPERATOR] for role in roles):
            raise ValidationError(
                "This account has no access to the console. Ask a tenant admin for a role.",
                code="no_console_access",
            )


class WeftAdminSite(admin.AdminSite):
    site_header = "Weft console"
    site_title = "Weft"
    index_title = "Console"
    site_url = None  # no public home page to link to
    login_form = ConsoleAuthenticationForm
    enable_nav_sidebar = True

    def has_permission(self, request) -> bool:
        from .two_factor import verification_required

        user = request.user
        if not (user.is_active and user.is_authenticated):
            return False
        principal = getattr(request, "principal", None)
        if principal is None or not can_access_console(principal):
            return False
        return not verification_required(request)

    def get_urls(self):
        from billing.admin import usage_view

        from . import two_factor, views
        from .branding_admin import branding_view, domains_view

        extra = [
            # Not admin_view: a user must be able to leave a tenant whose console is closed
            # to them (too low a role, or 2FA owed there) for one where it is open.
            path("switch-tenant/", views.switch_tenant, name="switch_tenant"),
            path("branding/", self.admin_view(branding_view), name="tenant_branding"),
            path("usage/", self.admin_view(usage_view), name="billing_usage"),
            path("domains/", self.admin_view(domains_view), name="tenant_domains"),
            path("domains/<str:action>/", self.admin_view(domains_view), name="tenant_domain_act"),
            *two_factor.urlpatterns(self),
        ]
        return extra + super().get_urls()

    def login(self, request, extra_context=None):
        from .two_factor import login_view

        return login_view(self, request, extra_context)
