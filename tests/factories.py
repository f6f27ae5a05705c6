"""factory_boy factories, rooted at TenantFactory."""

import factory

from tenants.models import ApiKey, Membership, Tenant, User
from tenants.roles import Role


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.Sequence(lambda n: f"Tenant {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # The manager is tenant-scoped; creating needs no context, saving sets nothing extra.
        return model_class.dangerously_unscoped.create(*args, **kwargs)


def api_key(tenant, kind=ApiKey.Kind.MANAGEMENT, role=Role.ADMIN, app_id=None, name="test"):
    """A key created through the service, as a platform operator would; returns (key, raw)."""
    import uuid

    from tenants import services

    if kind == ApiKey.Kind.APP and app_id is None:
        app_id = uuid.uuid4()
    return services.api_key_create(
        tenant=tenant,
        kind=kind,
        role=role,
        app_id=app_id,
        name=name,
        principal=services.PLATFORM,
    )
