"""The sign-in steps and the two-factor pages of the console."""

from __future__ import annotations

import time
from base64 import b32encode
from urllib.parse import urlencode

import django_otp
import segno
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model, logout
from django.contrib.auth import login as auth_login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from ..http import ConsoleRequest
from .devices import CodeForm, backup_codes_replace, two_factor_disable, two_factor_enable
from .policy import (
    needs_verification,
    tenants_requiring_2fa,
    user_is_verified,
    verification_required,
)

PENDING_KEY = "weft_2fa_pending"
# How long the code step waits after a correct password before asking for it again.
PENDING_SECONDS = 300


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
    if (
        isinstance(data, dict)
        and time.time() - data.get("at", 0) <= PENDING_SECONDS
        and (user_id := data.get("user")) is not None
    ):
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        # A password changed since step 1 voids it, as it would void a session.
        if user is not None and constant_time_compare(
            user.get_session_auth_hash(), data.get("hash", "")
        ):
            user.backend = data["backend"]
            return user
    request.session.pop(PENDING_KEY, None)
    return None


class PasswordStepView(LoginView):
    """Step 1: e-mail and password. A user with a device goes on to the code step."""

    site = None

    def form_valid(self, form):
        from ..middleware import active_tenant

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
        if not user_is_verified(user):
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


def overview(request: ConsoleRequest, site) -> HttpResponse:
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


def disable(request: ConsoleRequest, site) -> HttpResponse:
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
