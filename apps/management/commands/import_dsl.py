"""manage.py import_dsl: a Dify DSL file becomes a new app of a tenant."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

from django.core.management.base import CommandError

from apps.dsl import app_import
from tenants import services
from tenants.audit import Actor, acting_as
from tenants.context import tenant_context
from tenants.management.base import OperatorCommand
from tenants.models import Membership, Tenant, User
from workflows.dsl import MAX_DSL_BYTES


class Command(OperatorCommand):
    help = (
        "Import a Dify app DSL (YAML export of any app mode) as a new app, published at once "
        "when it can run. Prints the import report, then the app's id alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("file", help="The DSL file (YAML); - reads standard input.")
        parser.add_argument("--name", default=None, help="The app's name (default: the DSL's).")
        parser.add_argument(
            "--actor",
            default=None,
            metavar="EMAIL",
            help="A member of the tenant recorded as the app's creator and in the audit trail.",
        )

    def handle(self, *args, tenant, file, name, actor, **options):
        tenant_obj = services.get_tenant_by_slug(tenant)
        user = _member(tenant_obj, actor) if actor else None
        content = _read(file)
        acting = (
            acting_as(
                Actor(user_id=user.pk, label=f"{user.email} ({self._name()})", source="command")
            )
            if user is not None
            else nullcontext()
        )
        with acting:
            app, report = app_import(tenant=tenant_obj, content=content, name=name, created_by=user)
        self.stdout.write(
            f"Imported {app.get_mode_display().lower()} app “{app.name}” into {tenant_obj.slug} "
            f"from a DSL of version {report.version}."
        )
        for item in report.warnings:
            where = f" [{item.node_id or item.field}]" if item.node_id or item.field else ""
            self.stdout.write(f"  {item.code}{where}: {item.message}")
        if app.published_version is not None:
            self.stdout.write(f"Published as version {app.published_version.number}.")
        else:
            self.stdout.write("Not published: fix what the report says, then publish it.")
        self.stdout.write(str(app.pk))


def _member(tenant: Tenant, email: str) -> User:
    user = User.objects.filter(email=email.strip().lower()).first()
    with tenant_context(tenant):
        if user is None or not Membership.objects.filter(user=user).exists():
            raise CommandError(f"--actor: {email} is not a member of {tenant.slug}.")
    return user


def _read(file: str) -> bytes:
    """The file's bytes; one byte past the limit is enough to refuse it."""
    try:
        if file == "-":
            content = sys.stdin.buffer.read(MAX_DSL_BYTES + 1)
        else:
            with Path(file).open("rb") as handle:
                content = handle.read(MAX_DSL_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"Cannot read {file}: {exc.strerror or exc}.") from exc
    if len(content) > MAX_DSL_BYTES:
        raise CommandError(f"{file} is larger than {MAX_DSL_BYTES} bytes (10 MB): not a Dify DSL.")
    return content
