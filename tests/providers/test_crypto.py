"""Secrets at rest: Fernet round trip, masking, the development key, and key rotation with
`manage.py rotate_secrets` (all or nothing)."""

import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from providers import crypto
from providers.models import ProviderCredential, ProviderKind
from tenants.models import AuditLog

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
SECRET = "sk-live-0123456789abcdefghij"


@pytest.fixture
def keys(settings):
    """keys(*fernet_keys): configure WEFT_SECRET_KEYS and forget the cached ones."""

    def set_(*configured):
        settings.WEFT_SECRET_KEYS = list(configured)
        crypto.reset_keys()

    yield set_
    crypto.reset_keys()


def make_credential(tenant, name, secret=SECRET):
    credential = ProviderCredential(tenant=tenant, kind=ProviderKind.OPENAI, name=name)
    credential.secret = secret
    credential.save()
    return credential


def stored_tokens():
    return dict(ProviderCredential.dangerously_unscoped.values_list("name", "secret_encrypted"))


def test_round_trip_and_ciphertext_hides_the_plaintext(keys):
    keys(NEW_KEY)
    token = crypto.encrypt(SECRET)
    assert crypto.decrypt(token) == SECRET
    assert token != SECRET and SECRET not in token and "0123456789" not in token
    assert crypto.encrypt(SECRET) != token  # a fresh IV each time


def test_a_secret_from_an_unknown_key_is_refused(keys):
    keys(OLD_KEY)
    token = crypto.encrypt(SECRET)
    keys(NEW_KEY)
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt(token)


def test_bad_keys_are_a_configuration_error(keys):
    from django.core.exceptions import ImproperlyConfigured

    keys("not-a-fernet-key")
    with pytest.raises(ImproperlyConfigured, match="WEFT_SECRET_KEYS must be"):
        crypto.encrypt("x")


@pytest.mark.parametrize(
    "secret", ["", "a", "abcd", "short-secret", "fifteen-chars!!", "sixteen-chars!!!", SECRET]
)
def test_mask_shows_at_most_the_last_four_characters(secret):
    masked = crypto.mask(secret)
    if not secret:
        assert masked == ""
        return
    assert masked.startswith(crypto.MASK)
    visible = masked.removeprefix(crypto.MASK)
    assert len(visible) <= 4 and secret.endswith(visible)
    if len(secret) < 16:
        assert visible == ""  # nothing at all of a short secret
    else:
        assert visible == secret[-4:]


def test_development_key_comes_from_secret_key_with_a_warning(keys, settings, caplog):
    settings.SECRET_KEY = "one-secret-key-for-this-test"
    with caplog.at_level(logging.WARNING, logger="providers.crypto"):
        keys()
        token = crypto.encrypt(SECRET)
    assert crypto.decrypt(token) == SECRET
    assert any(
        "WEFT_SECRET_KEYS is not set" in record.getMessage() and record.levelno == logging.WARNING
        for record in caplog.records
    )
    # The same SECRET_KEY gives the same key; another one cannot read the secret.
    keys()
    assert crypto.decrypt(token) == SECRET
    settings.SECRET_KEY = "another-secret-key"
    keys()
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt(token)


def test_rotate_secrets_re_encrypts_everything_with_the_first_key(
    keys, tenant, other_tenant, capsys
):
    keys(OLD_KEY)
    make_credential(tenant, "a")
    make_credential(other_tenant, "b", secret="sk-other-tenant-secret-0000")
    no_secret = ProviderCredential.dangerously_unscoped.create(
        tenant=tenant, kind=ProviderKind.OPENAI_COMPATIBLE, name="ollama", base_url="http://o:1"
    )
    before = stored_tokens()

    keys(NEW_KEY, OLD_KEY)
    call_command("rotate_secrets")
    assert capsys.readouterr().out.strip() == (
        "Rotated 2 secret(s) to the first key in WEFT_SECRET_KEYS."
    )
    after = stored_tokens()
    assert after["a"] != before["a"] and after["b"] != before["b"]
    assert after["ollama"] == ""
    no_secret.refresh_from_db()
    assert no_secret.secret == ""

    keys(NEW_KEY)  # the old key is gone: every secret still reads
    secrets = {c.name: c.secret for c in ProviderCredential.dangerously_unscoped.all()}
    assert secrets == {"a": SECRET, "b": "sk-other-tenant-secret-0000", "ollama": ""}
    # Bulk re-encryption is bookkeeping, not a change anyone made: no audit rows.
    assert not AuditLog.dangerously_unscoped.filter(action="update").exists()


def test_rotate_secrets_changes_nothing_when_a_secret_is_unreadable(keys, tenant, capsys):
    keys(OLD_KEY)
    make_credential(tenant, "old")
    keys(NEW_KEY)
    make_credential(tenant, "new")
    before = stored_tokens()

    keys(NEW_KEY)  # the key of "old" is missing
    with pytest.raises(CommandError) as failure:
        call_command("rotate_secrets")
    message = str(failure.value)
    assert message.startswith("1 secret(s) cannot be decrypted by any key in WEFT_SECRET_KEYS:")
    assert f"{tenant.slug}/old" in message and "Nothing was changed." in message
    assert stored_tokens() == before
    assert "Rotated" not in capsys.readouterr().out


def test_rotate_secrets_needs_configured_keys(keys, tenant):
    keys()
    make_credential(tenant, "a")
    before = stored_tokens()
    with pytest.raises(CommandError, match="WEFT_SECRET_KEYS is empty"):
        call_command("rotate_secrets")
    assert stored_tokens() == before


def test_rotate_secrets_exits_1_from_the_command_line(keys, transactional_db, settings):
    """The operator's view: a real process, a readable message on stderr, exit status 1."""
    from django.db import connection

    from tests.factories import TenantFactory

    keys(OLD_KEY)
    make_credential(TenantFactory(slug="acme"), "old")
    url = urlsplit(settings.DATABASE_URL)._replace(path="/" + connection.settings_dict["NAME"])
    result = subprocess.run(
        [sys.executable, "manage.py", "rotate_secrets"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DATABASE_URL": urlunsplit(url), "WEFT_SECRET_KEYS": NEW_KEY},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "CommandError: 1 secret(s) cannot be decrypted" in result.stderr
    assert "acme/old" in result.stderr and SECRET not in result.stderr + result.stdout


def test_secrets_saved_before_keys_were_configured_stay_readable_and_rotate(
    keys, settings, tenant, capsys
):
    settings.SECRET_KEY = "the-development-secret-key"
    keys()
    make_credential(tenant, "early")
    configured = Fernet.generate_key().decode()
    keys(configured)
    early = ProviderCredential.dangerously_unscoped.get(name="early")
    assert early.secret == SECRET  # the derived key still decrypts
    call_command("rotate_secrets")
    rotated = stored_tokens()["early"]
    assert Fernet(configured.encode()).decrypt(rotated.encode()).decode() == SECRET
