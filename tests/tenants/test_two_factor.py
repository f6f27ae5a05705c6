"""Two-factor sign-in for the console: password step, code step, enrolment, backup codes."""

import re
import time
from base64 import b32encode
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from django_otp.oath import hotp, totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.roles import Role
from tenants.two_factor import devices, views

LOGIN = "/admin/login/"
CODE_STEP = "/admin/login/code/"
SETUP = "/admin/two-factor/setup/"


def _time_step(device) -> int:
    return int((time.time() - device.t0) // device.step) + device.drift


def code_for(device):
    """The device's next acceptable code: now, or one step later if now's code is spent."""
    device.refresh_from_db()
    ahead = max(0, device.last_t + 1 - _time_step(device))
    value = totp(device.bin_key, device.step, device.t0, device.digits, device.drift + ahead)
    return str(value).zfill(device.digits)


def wrong_code_for(device):
    device.refresh_from_db()
    now = _time_step(device)
    valid = {f"{hotp(device.bin_key, t):06d}" for t in range(now - 2, now + 4)}
    return next(c for c in (f"{n:06d}" for n in range(10**6)) if c not in valid)


def let_throttle_pass(device):
    """Move the device's last failure far enough back that the next try is allowed."""
    type(device).objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(hours=1)
    )


def phone(user):
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def submit_password(client, user, password, next_url=None):
    data = {"username": user.email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return client.post(LOGIN, data)


def sign_in(user, password, device):
    """A client through both steps, verified with the device's next code."""
    client = Client()
    submit_password(client, user, password)
    response = client.post(CODE_STEP, {"code": code_for(device)})
    assert response.status_code == 302, response.content
    return client


def errors(response) -> str:
    return " ".join(re.findall(r'<p class="errornote">\s*(.*?)\s*</p>', response.content.decode()))


@pytest.fixture
def operator(tenant, make_member):
    return make_member(tenant, Role.OPERATOR)


def test_password_alone_opens_console_without_device_or_policy(operator, password):
    client = Client()
    response = submit_password(client, operator, password)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    index = client.get("/admin/")
    assert index.status_code == 200
    assert index.context["has_permission"] is True
    assert index.context["user"] == operator


def test_member_role_is_refused_with_a_readable_message(tenant, make_member, password):
    member = make_member(tenant, Role.MEMBER)
    client = Client()
    response = submit_password(client, member, password)
    assert response.status_code == 200
    assert "This account has no access to the console" in errors(response)
    assert "_auth_user_id" not in client.session


def test_device_user_must_pass_code_step(operator, password):
    device = phone(operator)
    client = Client()
    response = submit_password(client, operator, password, next_url="/admin/tenants/")
    assert response.status_code == 302
    assert response["Location"] == f"{CODE_STEP}?next=%2Fadmin%2Ftenants%2F"
    # The password alone does not log in: the console still sends them to sign in.
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert operator.email in page.content.decode()

    wrong = client.post(CODE_STEP, {"code": wrong_code_for(device), "next": "/admin/tenants/"})
    assert wrong.status_code == 200
    assert "That code is not valid" in errors(wrong)
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302

    let_throttle_pass(device)
    right = client.post(CODE_STEP, {"code": code_for(device), "next": "/admin/tenants/"})
    assert right.status_code == 302
    assert right["Location"] == "/admin/tenants/"
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    index = client.get("/admin/")
    assert index.status_code == 200
    assert index.context["user"].is_verified()


@override_settings(OTP_TOTP_THROTTLE_FACTOR=60)
def test_throttled_code_step_says_when_to_retry(operator, password):
    device = phone(operator)
    client = Client()
    submit_password(client, operator, password)
    client.post(CODE_STEP, {"code": wrong_code_for(device)})

    # Even the right code is refused while the device is throttled, and the page says until when.
    response = client.post(CODE_STEP, {"code": code_for(device)})
    assert response.status_code == 200
    assert re.search(r"Too many wrong codes\. Try again in \d+ seconds", errors(response))
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    assert "_auth_user_id" not in client.session


def test_backup_code_works_once(operator, password):
    phone(operator)
    codes = devices.backup_codes_replace(user=operator)
    assert len(codes) == 10
    spent = codes[0]

    first = Client()
    submit_password(first, operator, password)
    response = first.post(CODE_STEP, {"code": f"{spent[:4]}-{spent[4:].upper()}"})
    assert response.status_code == 302
    assert first.get("/admin/").status_code == 200
    assert StaticToken.objects.filter(device__user=operator).count() == 9

    second = Client()
    submit_password(second, operator, password)
    again = second.post(CODE_STEP, {"code": spent})
    assert again.status_code == 200
    assert "That code is not valid" in errors(again)
    assert StaticDevice.objects.get(user=operator).throttling_failure_count == 1
    assert second.get("/admin/").status_code == 302


def test_code_step_expires(operator, password):
    phone(operator)
    client = Client()
    submit_password(client, operator, password)
    session = client.session
    session[views.PENDING_KEY]["at"] -= views.PENDING_SECONDS + 1
    session.save()
    response = client.get(CODE_STEP)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
    assert views.PENDING_KEY not in client.session


def test_unsafe_next_is_ignored(operator, password):
    client = Client()
    response = submit_password(client, operator, password, next_url="https://evil.example/")
    assert response["Location"] == "/admin/"


def test_required_policy_sends_user_without_device_to_enrolment(tenant, operator, password):
    tenant.require_2fa = True
    tenant.save()
    client = Client()
    response = submit_password(client, operator, password)
    assert response.status_code == 302
    assert response["Location"] == f"{SETUP}?next=%2Fadmin%2F"

    # No console page opens before enrolment; the sign-in page forwards to it.
    assert client.get("/admin/tenants/").status_code == 302
    chain = client.get("/admin/", follow=True).redirect_chain
    assert chain[-1][0].startswith(SETUP)

    page = client.get(SETUP)
    assert page.status_code == 200
    content = page.content.decode()
    device = TOTPDevice.objects.get(user=operator, confirmed=False)
    assert re.search(r'<div class="weft-qr"><svg [^>]*class="segno"', content)
    secret = b32encode(device.bin_key).decode()
    shown = re.search(r'id="weft-totp-secret">([A-Z2-7 ]+)<', content).group(1)
    assert shown.replace(" ", "") == secret
    assert "Acme requires two-factor authentication" in content
    # Reloading keeps the secret the user may already have scanned.
    client.get(SETUP)
    assert TOTPDevice.objects.filter(user=operator).count() == 1

    wrong = client.post(SETUP, {"code": wrong_code_for(device), "next": "/admin/"})
    assert "That code is not valid" in errors(wrong)
    device.refresh_from_db()
    assert not device.confirmed

    let_throttle_pass(device)
    done = client.post(SETUP, {"code": code_for(device), "next": "/admin/"})
    assert done.status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    shown_codes = re.findall(r"<code>([a-z2-7]{4})-([a-z2-7]{4})</code>", done.content.decode())
    stored = set(StaticToken.objects.filter(device__user=operator).values_list("token", flat=True))
    assert len(shown_codes) == 10
    assert {a + b for a, b in shown_codes} == stored
    assert client.get("/admin/").status_code == 200


def test_enrolment_page_needs_login():
    response = Client().get(SETUP)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


def test_superuser_follows_active_tenant_policy(tenant, superuser, console):
    tenant.require_2fa = True
    tenant.save()
    client = console(superuser, tenant)
    chain = client.get("/admin/", follow=True).redirect_chain
    assert chain[-1][0].startswith(SETUP)


def test_older_password_only_session_must_verify(operator, console, tenant):
    device = phone(operator)
    client = console(operator, tenant)
    chain = client.get("/admin/tenants/", follow=True).redirect_chain
    verify_url = chain[-1][0]
    assert verify_url.startswith("/admin/two-factor/verify/")

    wrong = client.post(verify_url, {"code": wrong_code_for(device)})
    assert "That code is not valid" in errors(wrong)
    assert client.get("/admin/").status_code == 302

    let_throttle_pass(device)
    right = client.post(verify_url, {"code": code_for(device)})
    assert right["Location"] == "/admin/tenants/"
    assert client.get("/admin/").status_code == 200


def test_management_api_refuses_unverified_session(operator, console, tenant):
    phone(operator)
    response = console(operator, tenant).get("/api/tenant/")
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "otp_required"
    assert body["message"].startswith("Two-factor verification is required")


def test_disable_refused_while_tenant_requires_it(tenant, operator, password):
    device = phone(operator)
    client = sign_in(operator, password, device)
    tenant.require_2fa = True
    tenant.save()

    page = client.get("/admin/two-factor/disable/")
    assert page.status_code == 200
    assert "You cannot turn off two-factor authentication: Acme requires it" in errors(page)

    refused = client.post("/admin/two-factor/disable/", {"code": code_for(device)})
    assert refused.status_code == 403
    assert TOTPDevice.objects.filter(pk=device.pk, confirmed=True).exists()


def test_disable_with_a_current_code(operator, password):
    device = phone(operator)
    devices.backup_codes_replace(user=operator)
    client = sign_in(operator, password, device)

    wrong = client.post("/admin/two-factor/disable/", {"code": wrong_code_for(device)})
    assert "That code is not valid" in errors(wrong)
    assert TOTPDevice.objects.filter(user=operator).exists()

    let_throttle_pass(device)
    done = client.post("/admin/two-factor/disable/", {"code": code_for(device)})
    assert done["Location"] == "/admin/two-factor/"
    assert not TOTPDevice.objects.filter(user=operator).exists()
    assert not StaticDevice.objects.filter(user=operator).exists()
    # Without a device and without a policy, the console stays open.
    settings_page = client.get("/admin/two-factor/")
    assert settings_page.status_code == 200
    assert "<strong>Off.</strong>" in settings_page.content.decode()


def test_regenerate_backup_codes(operator, password):
    device = phone(operator)
    old = set(devices.backup_codes_replace(user=operator))
    client = sign_in(operator, password, device)

    page = client.get("/admin/two-factor/")
    assert 'id="weft-backup-codes-left">10<' in page.content.decode()
    response = client.post("/admin/two-factor/backup-codes/")
    assert response.status_code == 200
    pairs = re.findall(r"<code>(\w{4})-(\w{4})</code>", response.content.decode())
    shown = {a + b for a, b in pairs}
    stored = set(StaticToken.objects.filter(device__user=operator).values_list("token", flat=True))
    assert len(shown) == 10
    assert shown == stored
    assert not old & stored
    assert client.get("/admin/two-factor/backup-codes/").status_code == 405
