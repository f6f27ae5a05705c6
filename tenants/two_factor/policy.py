"""Who must pass a second factor before the console opens."""

from __future__ import annotations

import django_otp

from ..models import Membership, Tenant


def user_is_verified(user) -> bool:
    is_verified = getattr(user, "is_verified", None)  # installed by OTPMiddleware
    return bool(is_verified is not None and is_verified())


def needs_verification(user, tenant: Tenant | None) -> bool:
    """True when `user` must pass a second factor before using the console in `tenant`.

    Platform superusers follow the same rule: their own devices, and their active tenant's
    policy (a superuser working in a tenant that requires 2FA must have it too).
    """
    if not user.is_authenticated or user_is_verified(user):
        return False
    return bool(tenant is not None and tenant.require_2fa) or django_otp.user_has_device(user)


def verification_required(request) -> bool:
    """True when the signed-in user must still pass a second factor (see needs_verification)."""
    return needs_verification(request.user, getattr(request, "tenant", None))


def tenants_requiring_2fa(user, active: Tenant | None) -> list[str]:
    """Names of the user's tenants (and active tenant) whose policy requires 2FA."""
    member_of = Membership.dangerously_unscoped.filter(user=user).values("tenant_id")
    names = set(
        Tenant.objects.filter(require_2fa=True, pk__in=member_of).values_list("name", flat=True)
    )
    if active is not None and active.require_2fa:
        names.add(active.name)
    return sorted(names)
