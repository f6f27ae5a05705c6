"""API keys: generation, hashing and lookup. A key is shown once; only its SHA-256 is kept.

Keys carry 192 bits of randomness, so a plain SHA-256 is enough to store them: there is
nothing to guess that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import ApiKey

SECRET_LENGTH = 32
_KEY_RE = re.compile(rf"^(app|dataset|wk)-([A-Za-z0-9_-]{{{SECRET_LENGTH}}})$")
KIND_BY_PREFIX = {prefix: kind for kind, prefix in ApiKey.PREFIXES.items()}
VISIBLE_CHARS = 6


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_key(kind: str) -> tuple[str, str, str]:
    """A new raw key for `kind`, with its hash and its visible prefix."""
    raw = ApiKey.PREFIXES[kind] + secrets.token_urlsafe(24)
    return raw, hash_key(raw), raw[: len(ApiKey.PREFIXES[kind]) + VISIBLE_CHARS]


def kind_of(raw: str) -> str | None:
    """The kind a well-formed key claims, or None for anything malformed."""
    match = _KEY_RE.match(raw)
    return KIND_BY_PREFIX[match.group(1) + "-"] if match else None


def find_key(raw: str) -> ApiKey | None:
    """The live key for `raw`, across tenants (keys are how a request finds its tenant)."""
    if kind_of(raw) is None:
        return None
    key = (
        ApiKey.dangerously_unscoped.select_related("tenant")
        .filter(key_hash=hash_key(raw), revoked_at__isnull=True)
        .first()
    )
    return key


def touch(key: ApiKey) -> None:
    """Record use, writing at most once a minute per key so busy keys cost no extra writes."""
    now = timezone.now()
    every = timedelta(seconds=settings.WEFT_API_KEY_TOUCH_SECONDS)
    if key.last_used_at is None or now - key.last_used_at >= every:
        ApiKey.dangerously_unscoped.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
