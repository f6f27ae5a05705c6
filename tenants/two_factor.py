"""Two-factor sign-in for the console: authenticator apps (TOTP) and backup codes.

Signing in takes two steps. The password step (ConsoleAuthenticationForm; django-axes counts
its failures) never logs in a user who has a confirmed device: it parks the user in the
session for a few minutes, and only a valid code on the second step calls `auth.login` and
`django_otp.login`. A user without a device whose active tenant requires 2FA is logged in
unverified and sent to enrolment; `WeftAdminSite.has_permission` refuses unverified users,
so enrolment and verification are the only pages they can reach. Codes are checked by the
django-otp devices themselves, whose throttling doubles the wait after each wrong code.
"""

from __future__ import annotations

import math
import time
from base64 import b32encode
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import django_otp
import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model, logout
from django.contrib.auth import login as auth_login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timesince import timeuntil
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .api.errors import envelope, is_api_path
from .models import Membership, Tenant

PENDING_KEY = "weft_2fa_pending"
# How long the code step waits after a correct password before asking for it again.
PENDING_SECONDS = 300
BACKUP_CODE_COUNT = 10
# Below this wait the next try comes before the user has finished typing: not worth saying.
MENTION_WAIT_FROM_SECONDS = 8


# --- Policy -----------------------------------------------------------------------------


def _is_verified(user) -> bool:
    is_verified = getattr(user, "is_verified", None)  # installed by OTPMiddleware
    return bool(is_verified is not None and is_verified())


def needs_verification(user, tenant: Tenant | None) -> bool:
    """True when `user` must pass a second factor before using the console in `tenant`.

    Platform superusers follow the same rule: their own devices, and their active tenant's
    policy (a superuser working in a tenant that requires 2FA must have it too).
    """
    if not user.is_authenticated or _is_verified(user):
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


# --- Codes and devices ------------------------------------------------------------------


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of checking one code: the device that took it, or why none did."""

    device: TOTPDevice | StaticDevice | None
    tried: bool  # False when every device that could take the code is throttled
    retry_at: datetime | None


def _token(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def check_code(*, user, code: str, enrolling: TOTPDevice | None = None) -> CodeCheck:
    """Check a code against the user's confirmed devices (or the device being enrolled).

    A run of digits goes to the TOTP device, anything else to the backup codes, so a wrong
    code counts against one device's throttling only. Rows are locked while checking, so two
    requests cannot both spend one code.
    """
    token = _token(code)
    tried, retry_at = False, None
    with transaction.atomic():
        if enrolling is not None:
            devices = list(
                TOTPDevice.objects.filter(pk=enrolling.pk, user=user).select_for_update()
            )
        elif token.isdigit():
            devices = [
                device
                for device in TOTPDevice.objects.devices_for_user(user, confirmed=True)
                .select_for_update()
                .order_by("pk")
                if len(token) == device.digits
            ]
        else:
            devices = list(
                StaticDevice.objects.devices_for_user(user, confirmed=True).select_for_update()
            )
        for device in devices:
            allowed, _ = device.verify_is_allowed()
            if allowed:
                tried = True
                if device.verify_token(token):
                    return CodeCheck(device=device, tried=True, retry_at=None)
            allowed, info = device.verify_is_allowed()
            if not allowed:
                retry_at = max(filter(None, [retry_at, info["locked_until"]]))
    return CodeCheck(device=None, tried=tried, retry_at=retry_at)


def _wait_text(until: datetime) -> str:
    now = timezone.now()
    seconds = max(1, math.ceil((until - now).total_seconds()))
    when = timezone.localtime(until).strftime("%H:%M:%S %Z")
    span = f"{seconds} seconds" if seconds < 120 else timeuntil(until, now)
    return f"{span} (at {when})"


def code_error(result: CodeCheck, *, backup_codes: bool = True) -> str:
    """What to tell the user about a code no device took."""
    if not result.tried and result.retry_at is not None:
        return f"Too many wrong codes. Try again in {_wait_text(result.retry_at)}."
    message = "That code is not valid. Check that your phone's clock is right and enter the "
    message += "current 6-digit code from your authenticator app"
    message += ", or one of your backup codes." if backup_codes else "."
    if result.retry_at is not None and (
        (result.retry_at - timezone.now()).total_seconds() >= MENTION_WAIT_FROM_SECONDS
    ):
        message += f" After several wrong codes, wait {_wait_text(result.retry_at)}."
    return message


def backup_codes_replace(*, user) -> list[str]:
    """Give the user a fresh set of single-use backup codes; the old ones stop working."""
    with transaction.atomic():
        # Keep the device row: the session may have been verified with it.
        device = StaticDevice.objects.filter(user=user).order_by("pk").first()
        if device is None:
            device = StaticDevice.objects.create(user=user, name="Backup codes")
        StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.token_set.all().delete()
        device.confirmed = True
        device.throttle_reset(commit=False)
        device.save()
        codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def two_factor_enable(*, user, device: TOTPDevice) -> list[str]:
    """Confirm the enrolled TOTP device, drop abandoned enrolments; returns backup codes."""
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return backup_codes_replace(user=user)


def two_factor_disable(*, user) -> None:
    """Remove every device of the user: authenticator apps and backup codes."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()


class CodeForm(forms.Form):
    """One code: the current one from the authenticator app, or an unused backup code."""

    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autofocus": True,
                "spellcheck": "false",
                "autocapitalize": "off",
                "size": 12,
            }
        ),
    )

    def __init__(self, *args, user, enrolling: TOTPDevice | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user, self.enrolling, self.device = user, enrolling, None

    def clean_code(self) -> str:
        code = self.cleaned_data["code"]
        result = check_code(user=self.user, code=code, enrolling=self.enrolling)
        if result.device is None:
            error = code_error(result, backup_codes=self.enrolling is None)
            raise forms.ValidationError(error, code="invalid_code")
        self.device = result.device
        return code


# --- Views ------------------------------------------------------------------------------


def _url(site, name: str) -> str:
    return reverse(f"{site.name}:{name}", current_app=site.name)


def _next(request: HttpRequest, default: str) -> str:
    target = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and safe else default


def _with_next(url: str, next_url: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"{url}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")


def _render(request, site, template: str, context: dict, status: int = 200) -> HttpResponse:
    request.current_app = site.name
    return render(request, template, {**site.each_context(request), **context}, status=status)


def _bound(request) -> dict | None:
    return request.POST if request.method == "POST" else None


def _park(request: HttpRequest, user) -> None:
    if request.user.is_authenticated and request.user.pk != user.pk:
        logout(request)
    request.session[PENDING_KEY] = {
        "user": user.pk,
        "backend": user.backend,
        "hash": user.get_session_auth_hash(),
        "at": int(time.time()),
    }


def _parked_user(request: HttpRequest):
    data = request.session.get(PENDING_KEY)
    user = None
    if isinstance(data, dict) and time.time() - data.get("at", 0) <= PENDING_SECONDS:
        user = get_user_model().objects.filter(pk=data.get("user"), is_active=True).first()
    # A password changed since step 1 voids it, as it would void a session.
    if user is None or not constant_time_compare(
        user.get_session_auth_hash(), data.get("hash", "")
    ):
        request.session.pop(PENDING_KEY, None)
        return None
    user.backend = data["backend"]
    return user


class PasswordStepView(LoginView):
    """Step 1: e-mail and password. A user with a device goes on to the code step."""

    site = None

    def form_valid(self, form):
        from .middleware import active_tenant

        user, site = form.get_user(), self.site
        next_url = self.get_redirect_url() or _url(site, "index")
        if django_otp.user_has_device(user):
            _park(self.request, user)
            return _with_next(_url(site, "two_factor_login_code"), next_url)
        auth_login(self.request, user)
        tenant, _ = active_tenant(self.request, user)
        if needs_verification(user, tenant):
            return _with_next(_url(site, "two_factor_setup"), next_url)
        return HttpResponseRedirect(next_url)


def login_view(site, request, extra_context=None):
    """The console's sign-in page (step 1); signed-in users who still owe a code go on."""
    index = _url(site, "index")
    if request.method == "GET" and request.user.is_authenticated:
        if verification_required(request):
            has_device = django_otp.user_has_device(request.user)
            step = "two_factor_verify" if has_device else "two_factor_setup"
            return _with_next(_url(site, step), _next(request, index))
        if site.has_permission(request):
            return HttpResponseRedirect(index)
    context = {
        **site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
    }
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        context[REDIRECT_FIELD_NAME] = index
    context.update(extra_context or {})
    request.current_app = site.name
    return PasswordStepView.as_view(
        site=site,
        extra_context=context,
        authentication_form=site.login_form or AdminAuthenticationForm,
        template_name=site.login_template or "admin/login.html",
    )(request)


def _code_step(request: HttpRequest, site, *, user, signing_in: bool) -> HttpResponse:
    next_url = _next(request, _url(site, "index"))
    form = CodeForm(_bound(request), user=user)
    if form.is_valid():
        if signing_in:
            del request.session[PENDING_KEY]
            auth_login(request, user, backend=user.backend)  # also a new session key
        else:
            request.session.cycle_key()
        django_otp.login(request, form.device)
        return HttpResponseRedirect(next_url)
    context = {"form": form, "next": next_url, "account": user, "signing_in": signing_in}
    context["title"] = "Two-factor authentication"
    return _render(request, site, "tenants/two_factor/verify.html", context)


def login_code(request: HttpRequest, site) -> HttpResponse:
    """Step 2 of signing in: a code from the authenticator app, or a backup code."""
    user = _parked_user(request)
    if user is None:
        messages.info(request, "Sign in with your e-mail and password first.")
        return _with_next(_url(site, "login"), _next(request, _url(site, "index")))
    return _code_step(request, site, user=user, signing_in=True)


def verify(request: HttpRequest, site) -> HttpResponse:
    """The second factor for a user signed in with a password only (e.g. an older session)."""
    next_url = _next(request, _url(site, "index"))
    if not verification_required(request):
        return HttpResponseRedirect(next_url)
    if not django_otp.user_has_device(request.user):
        return _with_next(_url(site, "two_factor_setup"), next_url)
    return _code_step(request, site, user=request.user, signing_in=False)


def setup(request: HttpRequest, site) -> HttpResponse:
    """Enrolment: scan the QR code, confirm with a first code, then keep the backup codes."""
    user = request.user
    next_url = _next(request, _url(site, "index"))
    if django_otp.user_has_device(user):
        if not _is_verified(user):
            return _with_next(_url(site, "two_factor_verify"), next_url)
        messages.info(request, "Two-factor authentication is already on.")
        return HttpResponseRedirect(_url(site, "two_factor"))
    # Reuse a pending enrolment, so reloading the page does not change a scanned secret.
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = CodeForm(_bound(request), user=user, enrolling=device)
    if form.is_valid():
        codes = two_factor_enable(user=user, device=form.device)
        request.session.cycle_key()
        django_otp.login(request, form.device)
        context = {
            "codes": codes,
            "next": next_url,
            "enrolled": True,
            "title": "Two-factor authentication is on",
        }
        return _render(request, site, "tenants/two_factor/backup_codes.html", context)
    secret = b32encode(device.bin_key).decode()
    qr = segno.make(device.config_url, error="m")
    context = {
        "form": form,
        "next": next_url,
        "title": "Set up two-factor authentication",
        "qr_svg": qr.svg_inline(scale=5, dark="#000", light="#fff", title="QR code"),
        "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "required_by": tenants_requiring_2fa(user, getattr(request, "tenant", None)),
    }
    return _render(request, site, "tenants/two_factor/setup.html", context)


def overview(request: HttpRequest, site) -> HttpResponse:
    """The user's 2FA settings: status, backup codes left, and what they can change."""
    user = request.user
    context = {
        "title": "Two-factor authentication",
        "totp": TOTPDevice.objects.devices_for_user(user, confirmed=True).first(),
        "backup_codes_left": StaticToken.objects.filter(
            device__user=user, device__confirmed=True
        ).count(),
        "required_by": tenants_requiring_2fa(user, request.tenant),
    }
    return _render(request, site, "tenants/two_factor/settings.html", context)


def backup_codes(request: HttpRequest, site) -> HttpResponse:
    """Replace the backup codes and show the new ones, once."""
    if not TOTPDevice.objects.devices_for_user(request.user, confirmed=True).exists():
        messages.error(request, "Turn on two-factor authentication first.")
        return HttpResponseRedirect(_url(site, "two_factor"))
    codes = backup_codes_replace(user=request.user)
    context = {
        "codes": codes,
        "next": _url(site, "two_factor"),
        "enrolled": False,
        "title": "New backup codes",
    }
    return _render(request, site, "tenants/two_factor/backup_codes.html", context)


def disable(request: HttpRequest, site) -> HttpResponse:
    """Turn 2FA off after a current code; refused while a tenant of the user requires it."""
    required_by = tenants_requiring_2fa(request.user, request.tenant)
    context = {"title": "Turn off two-factor authentication", "required_by": required_by}
    if required_by:
        status = 403 if request.method == "POST" else 200
        return _render(request, site, "tenants/two_factor/disable.html", context, status=status)
    if not django_otp.user_has_device(request.user):
        messages.info(request, "Two-factor authentication is already off.")
        return HttpResponseRedirect(_url(site, "two_factor"))
    form = CodeForm(_bound(request), user=request.user)
    if form.is_valid():
        two_factor_disable(user=request.user)
        request.session.pop(django_otp.DEVICE_ID_SESSION_KEY, None)
        messages.success(request, "Two-factor authentication is off for your account.")
        return HttpResponseRedirect(_url(site, "two_factor"))
    return _render(request, site, "tenants/two_factor/disable.html", {**context, "form": form})


def urlpatterns(site) -> list:
    """The 2FA pages, mounted in the console's URL namespace by WeftAdminSite.get_urls."""

    def signed_in(view):
        # Not site.admin_view: it requires verification, which these pages provide.
        return never_cache(login_required(view, login_url=f"{site.name}:login"))

    kwargs = {"site": site}
    return [
        path("login/code/", never_cache(login_code), kwargs, name="two_factor_login_code"),
        path("two-factor/setup/", signed_in(setup), kwargs, name="two_factor_setup"),
        path("two-factor/verify/", signed_in(verify), kwargs, name="two_factor_verify"),
        path("two-factor/", site.admin_view(overview), kwargs, name="two_factor"),
        path(
            "two-factor/backup-codes/",
            site.admin_view(require_POST(backup_codes)),
            kwargs,
            name="two_factor_backup_codes",
        ),
        path("two-factor/disable/", site.admin_view(disable), kwargs, name="two_factor_disable"),
    ]


# --- Login throttling (django-axes) -----------------------------------------------------


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' answer to a locked-out sign-in (AXES_LOCKOUT_CALLABLE): when to retry."""
    from axes.helpers import get_client_username, get_cool_off

    status = settings.AXES_HTTP_RESPONSE_CODE
    now = timezone.now()
    cool_off = get_cool_off(request)
    # Every attempt during the lockout restarts the cool-off, so it runs from now.
    retry_at = now + cool_off if cool_off else None
    if retry_at is not None:
        message = (
            "Too many failed sign-in attempts. "
            f"Try again in {timeuntil(retry_at, now)} "
            f"(at {timezone.localtime(retry_at):%H:%M %Z})."
        )
    else:
        message = "Too many failed sign-in attempts. Ask an administrator to unlock the account."
    if is_api_path(request.path) or request.headers.get("x-requested-with") == "XMLHttpRequest":
        response = JsonResponse(envelope("locked_out", message, status), status=status)
    else:
        context = {
            "title": "Sign-in locked",
            "message": message,
            "username": get_client_username(request, credentials) or "",
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "retry_at": retry_at,
        }
        response = render(request, settings.AXES_LOCKOUT_TEMPLATE, context, status=status)
    if cool_off:
        response["Retry-After"] = str(math.ceil(cool_off.total_seconds()))
    return response
