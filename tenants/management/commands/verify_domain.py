"""`manage.py verify_domain DOMAIN` (or `--all`): look for custom domains' TXT records now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tenants.domains import domain_verify, record_name, record_value
from tenants.models import CustomDomain


class Command(BaseCommand):
    help = "Check custom domains' verification TXT records; exits 1 when one is not verified."

    def add_arguments(self, parser) -> None:
        parser.add_argument("domain", nargs="?", help="a claimed domain, e.g. chat.acme.com")
        parser.add_argument(
            "--all", action="store_true", help="every domain not verified yet, and none other"
        )

    def handle(self, *args, **options) -> None:
        if options["all"] == bool(options["domain"]):
            raise CommandError("Name one domain, or give --all.")
        if options["all"]:
            domains = list(
                CustomDomain.dangerously_unscoped.select_related("tenant").filter(
                    verified_at__isnull=True
                )
            )
        else:
            name = options["domain"].strip().lower().rstrip(".")
            found = CustomDomain.dangerously_unscoped.select_related("tenant").filter(domain=name)
            domains = list(found)
            if not domains:
                raise CommandError(f"No tenant has claimed {name}.")
        failed = 0
        for domain in domains:
            if domain_verify(domain=domain):
                self.stdout.write(f"{domain.domain}: verified")
            else:
                failed += 1
                self.stdout.write(
                    f"{domain.domain}: not verified: {domain.last_error} "
                    f"(expected TXT {record_name(domain)} = {record_value(domain)})"
                )
        if failed:
            raise SystemExit(1)
