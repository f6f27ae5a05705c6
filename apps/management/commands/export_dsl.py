"""manage.py export_dsl: an app as Dify's DSL (YAML)."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.core.management.base import CommandError

from apps.dsl import app_export
from apps.models import App
from tenants import services
from tenants.context import tenant_context
from tenants.management.base import OperatorCommand


class Command(OperatorCommand):
    help = (
        "Export an app as a Dify DSL (YAML): its draft, or a published version. Secret values "
        "are left out unless --include-secrets is given."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version names an app version here, in place of Django's --version (its own).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("app_id", help="The app's id.")
        parser.add_argument(
            "--version",
            type=int,
            default=None,
            help="A published version's number (default: the draft).",
        )
        parser.add_argument(
            "--include-secrets",
            action="store_true",
            help="Write secret environment values and tool credential ids in clear.",
        )
        parser.add_argument("-o", "--output", default=None, help="Write to this file, not stdout.")

    def handle(self, *args, tenant, app_id, version, include_secrets, output, **options):
        tenant_obj = services.get_tenant_by_slug(tenant)
        try:
            pk = uuid.UUID(app_id)
        except ValueError as exc:
            raise CommandError(f"APP_ID must be an app id (a UUID), not “{app_id}”.") from exc
        with tenant_context(tenant_obj):
            app = App.objects.filter(pk=pk).first()
        if app is None:
            raise CommandError(f"{tenant_obj.slug} has no app {app_id}.")
        text = app_export(app, version=version, include_secrets=include_secrets)
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror or exc}.") from exc
        which = f"version {version}" if version is not None else "the draft"
        self.stdout.write(f"Exported {which} of “{app.name}” to {output}.")
