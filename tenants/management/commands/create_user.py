import sys

from django.core.management.base import CommandError

from tenants import services
from tenants.context import tenant_context
from tenants.management.base import OperatorCommand
from tenants.models import Membership, User
from tenants.roles import Role


class Command(OperatorCommand):
    help = (
        "Create a console user as a member of a tenant (or add an existing user to it). "
        "Without --password-stdin, a set-password link is printed instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--password-stdin", action="store_true", help="Read the password from standard input."
        )

    def handle(self, *args, email, tenant, role, name, password_stdin, **options):
        tenant_obj = services.get_tenant_by_slug(tenant)
        password = None
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
            if not password:
                raise CommandError("No password on standard input.")
        email = email.strip().lower()
        user = User.objects.filter(email=email).first()
        created = user is None
        if user is None:
            user = services.user_create(email=email, password=password, name=name)
        with tenant_context(tenant_obj):
            if Membership.objects.filter(user=user).exists():
                raise CommandError(f"{email} is already a member of {tenant_obj.slug}.")
            Membership.objects.create(user=user, role=role)
        self.stdout.write(
            f"{'Created' if created else 'Added'} {email} as {role} of {tenant_obj.slug}."
        )
        if created and password is None:
            self.stdout.write("Set-password link (valid for three days):")
            self.stdout.write(services.set_password_link(user))
