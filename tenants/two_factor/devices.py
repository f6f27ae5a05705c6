"""TOTP and backup-code devices: checking codes, enrolling, replacing, disabling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.db import transaction
from django.utils import timezone
from django.utils.timesince import timeuntil
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

BACKUP_CODE_COUNT = 10
# Below this wait the next try comes before the user has finished typing: not worth saying.
MENTION_WAIT_FROM_SECONDS = 8


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
