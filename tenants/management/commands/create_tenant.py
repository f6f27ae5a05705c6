from tenants import services
from tenants.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Create a tenant."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True, help="Short name used in URLs, e.g. acme.")
        parser.add_argument("--name", required=True, help="Display name, e.g. 'Acme Corp'.")
        parser.add_argument("--time-zone", default="UTC", help="IANA time zone (default UTC).")

    def handle(self, *args, slug, name, time_zone, **options):
        tenant = services.tenant_create(slug=slug, name=name, time_zone=time_zone)
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.name}), id:")
        self.stdout.write(str(tenant.pk))
