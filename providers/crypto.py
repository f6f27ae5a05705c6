"""Secrets at rest: Fernet encryption with the keys in WEFT_SECRET_KEYS.

The first key encrypts; every key decrypts, so keys rotate by putting a new key first and
running `manage.py rotate_secrets`, then dropping the old key. Without WEFT_SECRET_KEYS a
key derived from SECRET_KEY is used, with a warning: fine on a developer machine, wrong in
production, where changing SECRET_KEY would make every stored secret unreadable.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

MASK = "••••••••"


class SecretUnreadable(Exception):
    """A stored secret no configured key decrypts (a key was dropped too early)."""


def _derived_key() -> str:
    digest = hashlib.sha256(b"weft-secrets:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.WEFT_SECRET_KEYS)
    if not keys:
        logger.warning(
            "WEFT_SECRET_KEYS is not set: secrets are encrypted with a key derived from "
            "SECRET_KEY. Set WEFT_SECRET_KEYS in production (see the README)."
        )
    try:
        fernets = [Fernet(key) for key in keys]
    except ValueError as exc:
        raise ImproperlyConfigured(
            "WEFT_SECRET_KEYS must be comma-separated Fernet keys (32 url-safe base64 bytes)."
        ) from exc
    # The derived key comes last: it encrypts only while no key is configured, and still
    # decrypts what was saved before WEFT_SECRET_KEYS was set (rotate_secrets moves it on).
    return MultiFernet([*fernets, Fernet(_derived_key())])


def reset_keys() -> None:
    """Forget the cached keys (after settings change, in tests and key rotation)."""
    _fernet.cache_clear()


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("No key in WEFT_SECRET_KEYS decrypts this secret.") from exc


def rotate(token: str) -> str:
    """The same secret, encrypted with the first key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("No key in WEFT_SECRET_KEYS decrypts this secret.") from exc


def mask(secret: str) -> str:
    """What the console and API show of a secret: never more than its last four characters,
    and nothing of a short one."""
    if not secret:
        return ""
    return f"{MASK}{secret[-4:]}" if len(secret) >= 16 else MASK
