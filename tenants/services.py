"""Writes for tenancy: tenants, users, memberships and API keys.

Each service checks what the acting principal may do, runs in one transaction and leaves the
audit row to the audit signals (which see the actor in context).
"""

from __future__ import annotations

import logging
import secrets
import smtplib
from collections.abc import Sequence

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from . import keys
from .branding import sender
from .context import tenant_context
from .exceptions import Conflict, Forbidden, InvalidInput, NotFound, WeftError
from .models import ApiKey, Membership, Tenant, User
from .permissions import Principal, can_api_key, can_membership
from .roles import Role

logger = logging.getLogger(__name__)

PLATFORM = Principal(tenant_id=None, role=None, user=None, is_platform_admin=True)


def full_clean(obj, *, exclude: Sequence[str] = (), validate_unique: bool = True) -> None:
    """Django's model validation, as one InvalidInput naming each field: `field: message; …`.
    Services that report uniqueness as a conflict pass validate_unique=False."""
    try:
        obj.full_clean(
            exclude=list(exclude),
            validate_unique=validate_unique,
            validate_constraints=validate_unique,
        )
    except ValidationError as exc:
        parts = [
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in exc.message_dict.items()
        ]
        raise InvalidInput("; ".join(parts)) from exc


def tenant_create(*, slug: str, name: str, time_zone: str = "UTC") -> Tenant:
    """Create a tenant (platform operators only reach this)."""
    tenant = Tenant(slug=slug, name=name, time_zone=time_zone)
    full_clean(tenant)
    with transaction.atomic():
        tenant.save()
    return tenant


def user_create(*, email: str, password: str | None = None, name: str = "") -> User:
    """Create a console user; without a password the account waits for a set-password link."""
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidInput(f"“{email}” is not a valid e-mail address.") from exc
    if User.objects.filter(email=email).exists():
        raise Conflict(f"A user with the e-mail address {email} already exists.")
    if password is not None:
        from django.contrib.auth.password_validation import validate_password

        try:
            validate_password(password, User(email=email, name=name))
        except ValidationError as exc:
            raise InvalidInput(" ".join(exc.messages)) from exc
    return User.objects.create_user(email=email, password=password, name=name)


def set_password_link(user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})
    return f"{settings.WEFT_BASE_URL}{path}"


class EmailFailed(WeftError):
    code = "email_failed"
    status = 502


def _send_invitation(*, user_id: int, tenant_id, inviter: str) -> None:
    """E-mail a member their way in: a set-password link, or a sign-in link if they have a
    password already. Raises EmailFailed when the mail server refuses or cannot be reached."""
    user = User.objects.get(pk=user_id)
    tenant = Tenant.objects.get(pk=tenant_id)
    context = {
        "tenant": tenant,
        "inviter": inviter,
        "link": set_password_link(user) if not user.has_usable_password() else None,
        "console_url": f"{settings.WEFT_BASE_URL}{reverse('admin:index')}",
    }
    try:
        send_mail(
            subject=f"You have been invited to {tenant.name} on Weft",
            message=render_to_string("tenants/email/invitation.txt", context),
            from_email=sender(tenant),
            recipient_list=[user.email],
        )
    except (smtplib.SMTPException, OSError) as exc:
        # Never log the message: it carries a set-password link.
        logger.warning("invitation e-mail to user %s failed: %s", user_id, type(exc).__name__)
        raise EmailFailed(
            f"The invitation e-mail to {user.email} could not be sent ({type(exc).__name__}); "
            "check the e-mail settings, then send it again."
        ) from exc


def _send_invitation_quietly(**kwargs) -> None:
    """After an invitation commits: a mail failure must not fail the request that made the
    member (it is logged, and the invitation can be sent again)."""
    try:
        _send_invitation(**kwargs)
    except EmailFailed:
        pass


def membership_send_invitation(
    *, membership: Membership, principal: Principal, inviter: User | None = None
) -> None:
    """Send a member's invitation again, with a fresh link; mail failures are reported."""
    if not can_membership(principal, "invite", new_role=membership.role):
        raise Forbidden("You may not invite members with this role.")
    _send_invitation(
        user_id=membership.user_id,
        tenant_id=membership.tenant_id,
        inviter=inviter.get_full_name() if inviter else "A Weft operator",
    )


def membership_invite(
    *, tenant: Tenant, email: str, role: str, principal: Principal, inviter: User | None = None
) -> Membership:
    """Add a member by e-mail, creating the user if needed, and e-mail them a way in."""
    if role not in Role.values:
        raise InvalidInput(f"Unknown role “{role}”; use one of {', '.join(Role.values)}.")
    if not can_membership(principal, "invite", new_role=role):
        raise Forbidden(f"You may not invite members with the role {role}.")
    email = email.strip().lower()
    with transaction.atomic(), tenant_context(tenant):
        user = User.objects.filter(email=email).first() or user_create(email=email)
        if Membership.objects.filter(user=user).exists():
            raise Conflict(f"The user {email} is already a member of {tenant.name}.")
        from billing import quota

        quota.capacity(tenant, quota.Metric.MEMBERS)
        try:
            membership = Membership.objects.create(
                tenant=tenant, user=user, role=role, invited_by=inviter
            )
        except IntegrityError as exc:  # a concurrent invitation won the race
            raise Conflict(f"The user {email} is already a member of {tenant.name}.") from exc
        inviter_name = inviter.get_full_name() if inviter else "A Weft operator"
        transaction.on_commit(
            lambda: _send_invitation_quietly(
                user_id=user.pk, tenant_id=tenant.pk, inviter=inviter_name
            )
        )
    return membership


def _owners_left(membership: Membership) -> int:
    return (
        Membership.dangerously_unscoped.filter(tenant_id=membership.tenant_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .count()
    )


def membership_change_role(
    *, membership: Membership, role: str, principal: Principal
) -> Membership:
    """Change a member's role; only owners make admins or owners, and an owner always stays."""
    if role not in Role.values:
        raise InvalidInput(f"Unknown role “{role}”; use one of {', '.join(Role.values)}.")
    if not can_membership(principal, "change_role", membership, new_role=role):
        raise Forbidden("You may not give this member that role.")
    with transaction.atomic():
        locked = Membership.dangerously_unscoped.select_for_update().get(pk=membership.pk)
        if locked.role == Role.OWNER and role != Role.OWNER and _owners_left(locked) == 0:
            raise Conflict("A tenant needs at least one owner: make someone else owner first.")
        locked.role = role
        locked.save(update_fields=["role"])
    membership.role = role
    return locked


def membership_remove(*, membership: Membership, principal: Principal) -> None:
    """Remove a member from the tenant (the user account stays)."""
    if not can_membership(principal, "remove", membership):
        raise Forbidden("You may not remove this member.")
    with transaction.atomic():
        locked = Membership.dangerously_unscoped.select_for_update().get(pk=membership.pk)
        if locked.role == Role.OWNER and _owners_left(locked) == 0:
            raise Conflict("A tenant needs at least one owner: make someone else owner first.")
        locked.delete()


def api_key_create(
    *,
    tenant: Tenant,
    kind: str,
    principal: Principal,
    name: str = "",
    role: str = Role.ADMIN,
    app_id=None,
    created_by: User | None = None,
) -> tuple[ApiKey, str]:
    """Create an API key; returns it with the raw key, which is never available again."""
    if kind not in ApiKey.Kind.values:
        raise InvalidInput(f"Unknown key kind “{kind}”; use app, dataset or management.")
    if role not in Role.values:
        raise InvalidInput(f"Unknown role “{role}”; use one of {', '.join(Role.values)}.")
    if kind == ApiKey.Kind.APP and app_id is None:
        raise InvalidInput("An app key needs the id of its app.")
    if kind != ApiKey.Kind.APP and app_id is not None:
        raise InvalidInput("Only app keys belong to an app.")
    if not can_api_key(principal, "create", kind=kind, role=role):
        raise Forbidden("You may not create this kind of key.")
    raw, digest, prefix = keys.generate_key(kind)
    key = ApiKey(
        tenant=tenant,
        kind=kind,
        name=name[:100],
        prefix=prefix,
        key_hash=digest,
        role=role if kind == ApiKey.Kind.MANAGEMENT else Role.MEMBER,
        app_id=app_id,
        created_by=created_by,
    )
    with transaction.atomic(), tenant_context(tenant):
        key.save()
    return key, raw


def api_key_revoke(*, key: ApiKey, principal: Principal) -> ApiKey:
    """Revoke a key at once; revoking twice is harmless."""
    if not can_api_key(principal, "revoke", key):
        raise Forbidden("You may not revoke this key.")
    if key.revoked_at is None:
        with transaction.atomic():
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
    return key


def get_tenant_by_slug(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise NotFound(f"No tenant with the slug “{slug}”.")
    return tenant


def random_password() -> str:
    return secrets.token_urlsafe(15)


def demo_bootstrap(*, email: str = "admin@example.com") -> tuple[Tenant, User, str | None]:
    """First run: a demo tenant and a platform admin who owns it.

    Returns the password only when the admin was created now, so it is printed exactly once;
    on later runs the password is None and nothing changes.
    """
    with transaction.atomic():
        tenant = Tenant.objects.filter(slug="demo").first() or tenant_create(
            slug="demo", name="Demo"
        )
        user = User.objects.filter(email=email).first()
        password = None
        if user is None:
            password = random_password()
            user = User.objects.create_superuser(email=email, password=password, name="Admin")
        Membership.dangerously_unscoped.get_or_create(
            tenant=tenant, user=user, defaults={"role": Role.OWNER}
        )
    return tenant, user, password
