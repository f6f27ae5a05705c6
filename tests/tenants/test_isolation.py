"""A tenant's rows are invisible to another tenant: in the ORM, the console and the API."""

import pytest

from tenants.context import TenantContextMissing, tenant_context
from tenants.models import ApiKey, AuditLog, Membership
from tenants.roles import Role
from tests.factories import UserFactory, api_key


@pytest.fixture
def two_tenants(tenant, other_tenant, make_member):
    a_admin = make_member(tenant, Role.ADMIN, email="a-admin@example.com")
    b_admin = make_member(other_tenant, Role.ADMIN, email="b-admin@example.com")
    make_member(other_tenant, Role.BUILDER, email="b-builder@example.com")
    return a_admin, b_admin


# --- ORM ---------------------------------------------------------------------------------


def test_default_manager_raises_without_tenant(two_tenants):
    with pytest.raises(TenantContextMissing):
        Membership.objects.all()
    with pytest.raises(TenantContextMissing):
        Membership.objects.filter(role=Role.ADMIN).count()


def test_related_managers_are_scoped_too(two_tenants):
    a_admin, _ = two_tenants
    with pytest.raises(TenantContextMissing):
        list(a_admin.memberships.all())


def test_default_manager_sees_only_current_tenant(tenant, other_tenant, two_tenants):
    with tenant_context(tenant):
        assert {m.user.email for m in Membership.objects.all()} == {"a-admin@example.com"}
    with tenant_context(other_tenant):
        assert Membership.objects.count() == 2
        assert not Membership.objects.filter(user__email="a-admin@example.com").exists()
    assert Membership.dangerously_unscoped.count() == 3


def test_saving_a_new_row_needs_a_tenant(tenant):
    user = UserFactory()
    with pytest.raises(TenantContextMissing):
        Membership(user=user).save()
    with tenant_context(tenant):
        membership = Membership.objects.create(user=user)
    assert membership.tenant_id == tenant.pk


def test_related_rows_resolve_through_unscoped_base_manager(tenant, two_tenants):
    membership = Membership.dangerously_unscoped.select_related(None).first()
    # Forward relations and saves work on a row in hand, with no context at all.
    assert membership.user.email
    membership.role = Role.OPERATOR
    membership.save()


# --- Console -----------------------------------------------------------------------------


def test_console_lists_only_own_tenant_rows(console, tenant, other_tenant, two_tenants):
    a_admin, _ = two_tenants
    client = console(a_admin, tenant)
    response = client.get("/admin/tenants/membership/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "a-admin@example.com" in body
    assert "b-admin@example.com" not in body
    assert "b-builder@example.com" not in body


def test_console_other_tenants_object_is_404(console, tenant, other_tenant, two_tenants):
    a_admin, _ = two_tenants
    foreign = Membership.dangerously_unscoped.get(user__email="b-builder@example.com")
    key, _ = api_key(other_tenant)
    client = console(a_admin, tenant)
    assert client.get(f"/admin/tenants/membership/{foreign.pk}/change/").status_code == 404
    assert (
        client.post(f"/admin/tenants/membership/{foreign.pk}/delete/", {"post": "yes"}).status_code
        == 404
    )
    assert client.get(f"/admin/tenants/apikey/{key.pk}/change/").status_code == 404
    assert client.get(f"/admin/tenants/tenant/{other_tenant.pk}/change/").status_code == 404
    assert Membership.dangerously_unscoped.filter(pk=foreign.pk).exists()


def test_console_cannot_switch_into_a_foreign_tenant(console, tenant, other_tenant, two_tenants):
    a_admin, _ = two_tenants
    client = console(a_admin, tenant)
    for target in (str(other_tenant.pk), "not-a-uuid", "8c5d3f2e-0000-4000-8000-000000000000"):
        assert client.post("/admin/switch-tenant/", {"tenant": target}).status_code == 404
    body = client.get("/admin/tenants/membership/").content.decode()
    assert "b-builder@example.com" not in body
    assert "a-admin@example.com" in body


def test_switcher_moves_between_own_tenants(console, tenant, other_tenant, make_member):
    user = make_member(tenant, Role.ADMIN, email="both@example.com")
    with tenant_context(other_tenant):
        Membership.objects.create(user=user, role=Role.ADMIN)
    make_member(other_tenant, Role.MEMBER, email="only-b@example.com")
    client = console(user, tenant)
    index = client.get("/admin/").content.decode()
    assert 'id="weft-tenant"' in index and "Globex" in index
    assert "only-b@example.com" not in client.get("/admin/tenants/membership/").content.decode()
    client.post("/admin/switch-tenant/", {"tenant": str(other_tenant.pk), "next": "/admin/"})
    assert "only-b@example.com" in client.get("/admin/tenants/membership/").content.decode()


def test_tenant_page_shows_only_own_tenant(console, tenant, other_tenant, two_tenants):
    a_admin, _ = two_tenants
    body = console(a_admin, tenant).get("/admin/tenants/tenant/").content.decode()
    assert "Acme" in body and "Globex" not in body


def test_superuser_sees_all_tenants_with_tenant_column(
    console, superuser, tenant, other_tenant, two_tenants
):
    client = console(superuser, tenant)
    body = client.get("/admin/tenants/membership/").content.decode()
    assert "a-admin@example.com" in body and "b-builder@example.com" in body
    assert "column-tenant" in body
    assert "By tenant" in body or "tenant__id__exact" in body
    foreign = Membership.dangerously_unscoped.get(user__email="b-builder@example.com")
    assert client.get(f"/admin/tenants/membership/{foreign.pk}/change/").status_code == 200


def test_superuser_edits_another_tenants_row_in_that_tenant(
    console, superuser, tenant, other_tenant, two_tenants
):
    foreign = Membership.dangerously_unscoped.get(user__email="b-builder@example.com")
    client = console(superuser, tenant)
    response = client.post(
        f"/admin/tenants/membership/{foreign.pk}/change/", {"role": Role.OPERATOR}
    )
    assert response.status_code == 302, response.content
    foreign.refresh_from_db()
    assert foreign.role == Role.OPERATOR
    assert foreign.tenant_id == other_tenant.pk


def test_audit_log_is_tenant_scoped_in_console(console, tenant, other_tenant, two_tenants):
    a_admin, b_admin = two_tenants
    console(b_admin, other_tenant).post(
        "/admin/tenants/membership/add/", {"email": "newb@example.com", "role": Role.MEMBER}
    )
    assert AuditLog.dangerously_unscoped.filter(tenant=other_tenant).exists()
    foreign = AuditLog.dangerously_unscoped.filter(tenant=other_tenant).first()
    client = console(a_admin, tenant)
    assert "newb@example.com" not in client.get("/admin/tenants/auditlog/").content.decode()
    assert client.get(f"/admin/tenants/auditlog/{foreign.pk}/change/").status_code == 404


# --- API ---------------------------------------------------------------------------------


def _auth(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_api_lists_only_own_tenant(client, tenant, other_tenant, two_tenants):
    _, raw = api_key(tenant)
    response = client.get("/api/members/", **_auth(raw))
    assert response.status_code == 200
    emails = {row["email"] for row in response.json()["results"]}
    assert emails == {"a-admin@example.com"}


def test_api_other_tenants_objects_are_404(client, tenant, other_tenant, two_tenants):
    _, raw = api_key(tenant)
    foreign_member = Membership.dangerously_unscoped.get(user__email="b-builder@example.com")
    foreign_key, _ = api_key(other_tenant)
    for method, url, data in [
        ("get", f"/api/members/{foreign_member.pk}/", None),
        ("patch", f"/api/members/{foreign_member.pk}/", {"role": "member"}),
        ("delete", f"/api/members/{foreign_member.pk}/", None),
        ("get", f"/api/keys/{foreign_key.pk}/", None),
        ("post", f"/api/keys/{foreign_key.pk}/revoke/", None),
        ("delete", f"/api/keys/{foreign_key.pk}/", None),
    ]:
        kwargs = {"data": data, "content_type": "application/json"} if data else {}
        response = getattr(client, method)(url, **kwargs, **_auth(raw))
        assert response.status_code == 404, (method, url, response.content)
        assert response.json() == {"code": "not_found", "message": "Not found.", "status": 404}
    foreign_member.refresh_from_db()
    foreign_key.refresh_from_db()
    assert foreign_member.role == Role.BUILDER
    assert foreign_key.revoked_at is None


def test_api_tenant_endpoint_is_the_keys_tenant(client, tenant, other_tenant):
    _, raw = api_key(other_tenant)
    assert client.get("/api/tenant/", **_auth(raw)).json()["slug"] == "globex"


def test_api_keys_list_is_scoped_and_never_shows_secrets(client, tenant, other_tenant):
    _, raw = api_key(tenant, name="mine")
    api_key(other_tenant, name="theirs")
    rows = client.get("/api/keys/", **_auth(raw)).json()["results"]
    assert [row["name"] for row in rows] == ["mine"]
    assert "key" not in rows[0] and "key_hash" not in rows[0]
    assert ApiKey.dangerously_unscoped.count() == 2


def test_active_tenant_prefers_one_whose_console_is_open(client, make_member, password):
    from tests.factories import TenantFactory

    alpha = TenantFactory(slug="alpha", name="Alpha")
    beta = TenantFactory(slug="beta", name="Beta")
    user = make_member(alpha, Role.MEMBER, email="two-hats@example.com")
    with tenant_context(beta):
        Membership.objects.create(user=user, role=Role.ADMIN)
    response = client.post(
        "/admin/login/", {"username": "two-hats@example.com", "password": password}, follow=True
    )
    assert response.status_code == 200
    assert response.context["active_tenant"] == beta
    # From a tenant whose console is closed to them, they can still switch back out.
    assert client.post("/admin/switch-tenant/", {"tenant": str(alpha.pk)}).status_code == 302
    assert client.get("/admin/").status_code == 302  # member role: console closed
    back = client.post("/admin/switch-tenant/", {"tenant": str(beta.pk), "next": "/admin/"})
    assert back.status_code == 302
    assert client.get("/admin/").status_code == 200
