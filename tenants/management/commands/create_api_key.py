import uuid

from django.core.management.base import CommandError

from tenants import services
from tenants.management.base import OperatorCommand
from tenants.models import ApiKey
from tenants.roles import Role

KINDS = {
    "app": ApiKey.Kind.APP,
    "dataset": ApiKey.Kind.DATASET,
    "management": ApiKey.Kind.MANAGEMENT,
}


class Command(OperatorCommand):
    help = "Create an API key; the key is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--kind", required=True, choices=sorted(KINDS))
        parser.add_argument("--app", default=None, help="App id (required for app keys).")
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--role",
            default=Role.ADMIN,
            choices=Role.values,
            help="Role of a management key (default admin).",
        )

    def handle(self, *args, tenant, kind, app, name, role, **options):
        tenant_obj = services.get_tenant_by_slug(tenant)
        app_id = None
        if app is not None:
            try:
                app_id = uuid.UUID(app)
            except ValueError as exc:
                raise CommandError(f"--app must be an app id (a UUID), not “{app}”.") from exc
        key, raw = services.api_key_create(
            tenant=tenant_obj,
            kind=KINDS[kind],
            name=name,
            role=role,
            app_id=app_id,
            principal=services.PLATFORM,
        )
        self.stdout.write(
            f"Created {key.get_kind_display()} key {key.prefix}… for {tenant_obj.slug}."
        )
        self.stdout.write("Store it now; it is not shown again:")
        self.stdout.write(raw)
