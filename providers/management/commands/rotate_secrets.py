"""Re-encrypt every stored secret with the first key in WEFT_SECRET_KEYS."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction

from providers import crypto
from providers.models import ProviderCredential
from tenants.management.base import OperatorCommand


class Command(OperatorCommand):
    help = (
        "Re-encrypt every stored secret (all tenants) with the first key in WEFT_SECRET_KEYS. "
        "Rotate keys by putting the new key first, running this, then dropping the old key. "
        "All or nothing: if any secret cannot be decrypted, nothing changes."
    )

    def handle(self, *args, **options):
        if not settings.WEFT_SECRET_KEYS:
            raise CommandError(
                "WEFT_SECRET_KEYS is empty: set it (new key first, then the old ones) and run "
                "again. Secrets are re-encrypted with its first key."
            )
        crypto.reset_keys()  # the keys configured now, whatever this process read before
        with transaction.atomic():
            # Locked, so that a secret changed meanwhile is not overwritten with its old value.
            credentials = list(
                ProviderCredential.dangerously_unscoped.select_for_update()
                .exclude(secret_encrypted="")
                .select_related("tenant")
                .order_by("pk")
            )
            unreadable = []
            for credential in credentials:
                try:
                    credential.secret_encrypted = crypto.rotate(credential.secret_encrypted)
                except crypto.SecretUnreadable:
                    unreadable.append(credential)
            if unreadable:
                names = ", ".join(f"{c.tenant.slug}/{c.name} ({c.pk})" for c in unreadable[:10]) + (
                    " …" if len(unreadable) > 10 else ""
                )
                raise CommandError(
                    f"{len(unreadable)} secret(s) cannot be decrypted by any key in "
                    f"WEFT_SECRET_KEYS: {names}. Nothing was changed. Add the key they were "
                    "encrypted with to WEFT_SECRET_KEYS (after the new one) and run again."
                )
            ProviderCredential.dangerously_unscoped.bulk_update(
                credentials, ["secret_encrypted"], batch_size=500
            )
        self.stdout.write(
            f"Rotated {len(credentials)} secret(s) to the first key in WEFT_SECRET_KEYS."
        )
