"""Shared fixtures: tenants, members by role, and logged-in console clients."""

import pytest
from django.test import Client

from tenants.middleware import SESSION_KEY
from tenants.roles import Role

from .factories import MembershipFactory, TenantFactory, UserFactory

pytest_plugins = ["tests.fake_llm.plugin"]

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Uploads of a test go to its own temporary folder, never the data folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def fresh_limits():
    """No test sees plan limits another test's (rolled back) rows left in memory."""
    from billing import quota

    quota.forget()
    yield
    quota.forget()


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme", name="Acme")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(slug="globex", name="Globex")


@pytest.fixture
def make_member(db):
    """make_member(tenant, role) -> User with that role in that tenant."""

    def make(tenant, role=Role.MEMBER, **user_fields):
        user = UserFactory(**user_fields)
        MembershipFactory(tenant=tenant, user=user, role=role)
        return user

    return make


@pytest.fixture
def superuser(db):
    return UserFactory(email="root@example.com", is_superuser=True, is_staff=True)


@pytest.fixture
def console(db):
    """console(user, tenant=None) -> a Django test client logged in, with that active tenant."""

    def make(user, tenant=None):
        client = Client()
        client.force_login(user)
        if tenant is not None:
            session = client.session
            session[SESSION_KEY] = str(tenant.pk)
            session.save()
        return client

    return make


@pytest.fixture
def password():
    return PASSWORD


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that talked to the live Daphne shows the server's log with its error."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "daphne_server" in getattr(item, "fixturenames", ()):
        from tests.apps.live import LiveServer

        server = LiveServer._shared
        if server is not None:
            report.sections.append(("Daphne's log (its last 20,000 characters)", server.output()))
