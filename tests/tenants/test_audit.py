"""The audit trail: who changed what, from where; read-only for everyone in the console."""

import pytest
from django.core.management import call_command

from tenants.models import AuditLog, Membership, Tenant
from tenants.roles import Role
from tests.factories import api_key


def logs(tenant, **filters):
    return list(AuditLog.dangerously_unscoped.filter(tenant=tenant, **filters).order_by("id"))


def test_console_change_is_recorded_with_fields_ip_and_agent(console, tenant, make_member):
    admin = make_member(tenant, Role.ADMIN, email="boss@example.com")
    target = Membership.dangerously_unscoped.get(user=make_member(tenant, Role.MEMBER))
    client = console(admin, tenant)
    client.post(
        f"/admin/tenants/membership/{target.pk}/change/",
        {"role": Role.BUILDER},
        HTTP_USER_AGENT="pytest-browser/1.0",
        REMOTE_ADDR="203.0.113.9",
    )
    (row,) = logs(tenant, action="update")
    assert row.actor_id == admin.pk and row.actor_label == "boss@example.com"
    assert row.source == "console"
    assert row.object_type == "tenants.membership" and row.object_id == str(target.pk)
    assert row.changes == {"role": ["member", "builder"]}
    assert row.ip == "203.0.113.9" and row.user_agent == "pytest-browser/1.0"


def test_create_and_delete_are_recorded(console, tenant, make_member):
    admin = make_member(tenant, Role.ADMIN)
    client = console(admin, tenant)
    client.post("/admin/tenants/membership/add/", {"email": "n@example.com", "role": "operator"})
    created = logs(tenant, action="create", object_type="tenants.membership")
    assert len(created) == 1 and created[0].changes["role"] == [None, "operator"]
    membership = Membership.dangerously_unscoped.get(user__email="n@example.com")
    client.post(f"/admin/tenants/membership/{membership.pk}/delete/", {"post": "yes"})
    deleted = logs(tenant, action="delete")
    assert [row.object_id for row in deleted] == [str(membership.pk)]


def test_api_writes_are_recorded_with_the_key_and_secrets_masked(client, tenant):
    key, raw = api_key(tenant)
    response = client.post(
        "/api/keys/",
        {"kind": "dataset", "name": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    new_raw = response.json()["key"]
    (row,) = logs(tenant, action="create", object_type="tenants.apikey")
    assert row.source == "api" and row.actor_label == f"API key {key.prefix}…"
    assert row.actor_id is None
    assert row.changes["key_hash"] == [None, "••••••"]
    assert new_raw not in str(row.changes)
    client.patch(
        "/api/tenant/",
        {"name": "Acme 2"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    (tenant_row,) = logs(tenant, object_type="tenants.tenant")
    assert tenant_row.changes == {"name": ["Acme", "Acme 2"]}


def test_commands_are_recorded(db):
    call_command("create_tenant", "--slug", "initech", "--name", "Initech")
    tenant = Tenant.objects.get(slug="initech")
    # The tenant, and its subscription to the default plan.
    rows = logs(tenant)
    assert {row.object_type for row in rows} == {"tenants.tenant", "billing.subscription"}
    for row in rows:
        assert row.source == "command" and row.actor_label.startswith("manage.py create_tenant")


def test_writes_without_an_actor_are_not_recorded(tenant):
    api_key(tenant)  # a service call from code, with no request or command around it
    assert AuditLog.dangerously_unscoped.count() == 0


def test_password_changes_never_reach_the_trail(console, superuser, tenant):
    client = console(superuser, tenant)
    response = client.post(
        f"/admin/tenants/user/{superuser.pk}/password/",
        {
            "password1": "another long passphrase",
            "password2": "another long passphrase",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content
    rows = AuditLog.dangerously_unscoped.filter(object_type="tenants.user")
    assert rows.exists()
    for row in rows:
        assert row.changes.get("password", ["", "••••••"])[1] == "••••••"


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_audit_log_is_read_only_in_console(console, tenant, make_member, role):
    admin = make_member(tenant, role)
    client = console(admin, tenant)
    client.post("/admin/tenants/membership/add/", {"email": "z@example.com", "role": "member"})
    row = logs(tenant)[0]
    assert client.get("/admin/tenants/auditlog/").status_code == 200
    assert client.get(f"/admin/tenants/auditlog/{row.pk}/change/").status_code == 200
    assert (
        client.post(f"/admin/tenants/auditlog/{row.pk}/change/", {"object_repr": "x"}).status_code
        == 403
    )
    assert (
        client.post(f"/admin/tenants/auditlog/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert client.get("/admin/tenants/auditlog/add/").status_code == 403
    response = client.post(
        "/admin/tenants/auditlog/", {"action": "delete_selected", "_selected_action": [row.pk]}
    )
    assert AuditLog.dangerously_unscoped.filter(pk=row.pk).exists()
    assert response.status_code in {200, 302}


def test_trail_outlives_a_deleted_tenant(console, superuser, tenant, make_member):
    make_member(tenant, Role.ADMIN)
    client = console(superuser, tenant)
    response = client.post(f"/admin/tenants/tenant/{tenant.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    rows = AuditLog.dangerously_unscoped.filter(action="delete")
    assert {row.object_type for row in rows} >= {"tenants.tenant", "tenants.membership"}


def test_second_factor_changes_are_recorded_with_secrets_masked(tenant, make_member):
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tenants.audit import MASKED, Actor, acting_as

    user = make_member(tenant, Role.ADMIN)
    with acting_as(Actor(user_id=user.pk, label=user.email, source="console")):
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=False)
        device.confirmed = True
        device.save()
        static = StaticDevice.objects.create(user=user, name="backup")
        static.token_set.create(token="abcd1234")
    rows = AuditLog.dangerously_unscoped.filter(object_type__startswith="otp_").order_by("id")
    kinds = [(row.object_type, row.action) for row in rows]
    assert kinds == [
        ("otp_totp.totpdevice", "create"),
        ("otp_totp.totpdevice", "update"),
        ("otp_static.staticdevice", "create"),
        ("otp_static.statictoken", "create"),
    ]
    assert rows[0].changes["key"] == [None, MASKED]
    assert rows[1].changes == {"confirmed": [False, True]}
    assert rows[3].changes["token"] == [None, MASKED]
    assert "abcd1234" not in str([row.changes for row in rows])


def test_rows_loaded_with_deferred_fields_are_audited_without_loading_them(tenant, make_member):
    from tenants.audit import Actor, acting_as

    user = make_member(tenant, Role.ADMIN)
    with acting_as(Actor(user_id=user.pk, label=user.email, source="console")):
        loaded = Tenant.objects.only("name").get(pk=tenant.pk)
        loaded.name = "Renamed"
        loaded.save(update_fields=["name"])
    row = AuditLog.dangerously_unscoped.get(object_type="tenants.tenant", action="update")
    assert row.changes == {"name": [tenant.name, "Renamed"]}
