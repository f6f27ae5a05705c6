"""Members: invite by e-mail with a set-password link, change role, remove; in console and API."""

import re

import pytest
from django.core import mail
from django.test import Client

from tenants.models import Membership, User
from tenants.roles import Role
from tests.factories import api_key


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_invite_in_console_sends_a_working_set_password_link(
    console, tenant, make_member, django_capture_on_commit_callbacks
):
    admin = make_member(tenant, Role.ADMIN)
    with django_capture_on_commit_callbacks(execute=True):  # the e-mail leaves on commit
        response = console(admin, tenant).post(
            "/admin/tenants/membership/add/",
            {"email": "New.Person@Example.com", "role": Role.OPERATOR},
        )
    assert response.status_code == 302, response.content
    membership = Membership.dangerously_unscoped.get(user__email="new.person@example.com")
    assert membership.role == Role.OPERATOR and membership.invited_by == admin
    assert not membership.user.has_usable_password()

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.person@example.com"] and "Acme" in message.subject
    link = re.search(r"http://\S+/accounts/set-password/\S+/", message.body).group(0)

    client = Client()
    path = link.split("127.0.0.1:8000", 1)[1]
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200 and b"new_password1" in form_page.content
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "a long new passphrase", "new_password2": "a long new passphrase"},
    )
    assert done.status_code == 302
    assert User.objects.get(email="new.person@example.com").check_password("a long new passphrase")
    # The link works once.
    assert b"new_password1" not in Client().get(path, follow=True).content


def test_invite_existing_user_says_sign_in(
    console, tenant, other_tenant, make_member, django_capture_on_commit_callbacks
):
    admin = make_member(tenant, Role.ADMIN)
    make_member(other_tenant, Role.MEMBER, email="known@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        console(admin, tenant).post(
            "/admin/tenants/membership/add/", {"email": "known@example.com", "role": "member"}
        )
    assert "Sign in with your existing account" in mail.outbox[0].body
    assert Membership.dangerously_unscoped.filter(user__email="known@example.com").count() == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-email", "role": "member"}, "Enter a valid email address."),
        ({"email": "x@example.com", "role": "emperor"}, "Select a valid choice."),
        (
            {"email": "x@example.com", "role": "admin"},
            "Select a valid choice.",
        ),  # admins cannot make admins
    ],
)
def test_console_invite_bad_input(console, tenant, make_member, data, message):
    admin = make_member(tenant, Role.ADMIN)
    response = console(admin, tenant).post("/admin/tenants/membership/add/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.filter(email="x@example.com").exists()
    assert mail.outbox == []


def test_console_invite_duplicate_is_a_readable_error(console, tenant, make_member):
    admin = make_member(tenant, Role.ADMIN)
    make_member(tenant, Role.MEMBER, email="dup@example.com")
    response = console(admin, tenant).post(
        "/admin/tenants/membership/add/",
        {"email": "dup@example.com", "role": "member"},
        follow=True,
    )
    assert "The user dup@example.com is already a member of Acme." in response.content.decode()
    assert Membership.dangerously_unscoped.filter(user__email="dup@example.com").count() == 1


def test_console_change_role_only_owner_makes_admins(console, tenant, make_member):
    owner = make_member(tenant, Role.OWNER)
    admin = make_member(tenant, Role.ADMIN)
    target = Membership.dangerously_unscoped.get(user=make_member(tenant, Role.MEMBER))
    url = f"/admin/tenants/membership/{target.pk}/change/"
    refused = console(admin, tenant).post(url, {"role": Role.ADMIN})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    target.refresh_from_db()
    assert target.role == Role.MEMBER
    assert console(owner, tenant).post(url, {"role": Role.ADMIN}).status_code == 302
    target.refresh_from_db()
    assert target.role == Role.ADMIN


def test_console_remove_member(console, tenant, make_member):
    admin = make_member(tenant, Role.ADMIN)
    target = Membership.dangerously_unscoped.get(user=make_member(tenant, Role.BUILDER))
    response = console(admin, tenant).post(
        f"/admin/tenants/membership/{target.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Membership.dangerously_unscoped.filter(pk=target.pk).exists()
    assert User.objects.filter(pk=target.user_id).exists()


def test_console_refuses_members_below_operator(console, tenant, make_member):
    member = make_member(tenant, Role.MEMBER)
    response = console(member, tenant).get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_operator_sees_members_but_cannot_change_them(console, tenant, make_member):
    operator = make_member(tenant, Role.OPERATOR)
    target = Membership.dangerously_unscoped.get(user=make_member(tenant, Role.MEMBER))
    client = console(operator, tenant)
    assert client.get("/admin/tenants/membership/").status_code == 200
    assert client.get("/admin/tenants/membership/add/").status_code == 403
    assert (
        client.post(
            f"/admin/tenants/membership/{target.pk}/change/", {"role": "builder"}
        ).status_code
        == 403
    )
    assert client.get("/admin/tenants/apikey/").status_code == 403
    assert client.get("/admin/tenants/auditlog/").status_code == 403


# --- API ---------------------------------------------------------------------------------


def test_api_invite_change_remove(client, tenant, django_capture_on_commit_callbacks):
    _, raw = api_key(tenant, role=Role.ADMIN)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            "/api/members/",
            {"email": "api@example.com", "role": "builder"},
            content_type="application/json",
            **bearer(raw),
        )
    assert created.status_code == 201, created.content
    member_id = created.json()["id"]
    assert created.json()["email"] == "api@example.com" and len(mail.outbox) == 1

    changed = client.patch(
        f"/api/members/{member_id}/",
        {"role": "operator"},
        content_type="application/json",
        **bearer(raw),
    )
    assert changed.status_code == 200 and changed.json()["role"] == "operator"

    refused = client.patch(
        f"/api/members/{member_id}/",
        {"role": "owner"},
        content_type="application/json",
        **bearer(raw),
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"

    assert client.delete(f"/api/members/{member_id}/", **bearer(raw)).status_code == 204
    assert not Membership.dangerously_unscoped.filter(pk=member_id).exists()


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        ({"email": "nope", "role": "member"}, "invalid_param", 400),
        ({"role": "member"}, "invalid_param", 400),
        ({"email": "a@example.com", "role": "tsar"}, "invalid_param", 400),
        ({"email": "a@example.com", "role": "owner"}, "forbidden", 403),
    ],
)
def test_api_invite_bad_input(client, tenant, data, code, status):
    _, raw = api_key(tenant, role=Role.ADMIN)
    response = client.post("/api/members/", data, content_type="application/json", **bearer(raw))
    assert response.status_code == status
    assert response.json()["code"] == code
    assert not User.objects.filter(email="a@example.com").exists()


def test_api_invite_duplicate_is_409(client, tenant, make_member):
    _, raw = api_key(tenant, role=Role.ADMIN)
    make_member(tenant, email="dup@example.com")
    response = client.post(
        "/api/members/",
        {"email": "dup@example.com"},
        content_type="application/json",
        **bearer(raw),
    )
    assert response.status_code == 409 and response.json()["code"] == "conflict"


def test_api_last_owner_cannot_be_removed(client, tenant, make_member):
    owner = make_member(tenant, Role.OWNER)
    membership = Membership.dangerously_unscoped.get(user=owner)
    _, raw = api_key(tenant, role=Role.OWNER)
    response = client.delete(f"/api/members/{membership.pk}/", **bearer(raw))
    assert response.status_code == 409
    assert "at least one owner" in response.json()["message"]


def test_api_member_list_query_count(client, tenant, make_member, django_assert_max_num_queries):
    _, raw = api_key(tenant, role=Role.ADMIN)
    for _ in range(10):
        make_member(tenant)
    with django_assert_max_num_queries(6):
        response = client.get("/api/members/", **bearer(raw))
    assert len(response.json()["results"]) == 10


def test_api_session_user_acts_in_active_tenant(console, tenant, make_member):
    admin = make_member(tenant, Role.ADMIN)
    client = console(admin, tenant)
    assert client.get("/api/tenant/").json()["slug"] == "acme"
    # Session writes need the CSRF token, as in the browser.
    client.handler.enforce_csrf_checks = True
    refused = client.patch("/api/tenant/", {"name": "X"}, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["code"] in {"forbidden", "csrf_failed"}


def test_api_tenant_settings(client, tenant):
    _, raw = api_key(tenant, role=Role.ADMIN)
    ok = client.patch(
        "/api/tenant/",
        {"name": "Acme Inc", "require_2fa": True},
        content_type="application/json",
        **bearer(raw),
    )
    assert ok.status_code == 200 and ok.json()["name"] == "Acme Inc" and ok.json()["require_2fa"]
    bad = client.patch(
        "/api/tenant/",
        {"time_zone": "Mars/Olympus"},
        content_type="application/json",
        **bearer(raw),
    )
    assert bad.status_code == 400 and "time_zone" in bad.json()["message"]
    _, builder = api_key(tenant, role=Role.BUILDER)
    assert (
        client.patch(
            "/api/tenant/", {"name": "Y"}, content_type="application/json", **bearer(builder)
        ).status_code
        == 403
    )
    tenant.refresh_from_db()
    assert tenant.name == "Acme Inc"


@pytest.fixture
def dead_smtp(settings):
    """E-mail through an SMTP server that is not there (a closed loopback port)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    return port


def test_mail_failure_keeps_the_member_and_says_so_on_resend(
    console, tenant, make_member, dead_smtp, django_capture_on_commit_callbacks, caplog
):
    admin = make_member(tenant, Role.ADMIN)
    client = console(admin, tenant)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/tenants/membership/add/", {"email": "late@example.com", "role": "member"}
        )
    assert response.status_code == 302
    membership = Membership.dangerously_unscoped.get(user__email="late@example.com")
    assert "invitation e-mail to user" in caplog.text and "set-password" not in caplog.text

    page = client.post(
        "/admin/tenants/membership/",
        {"action": "send_invitation", "_selected_action": [str(membership.pk)]},
        follow=True,
    ).content.decode()
    assert "could not be sent (ConnectionRefusedError)" in page


def test_resend_invitation_sends_a_fresh_link(console, tenant, make_member):
    admin = make_member(tenant, Role.ADMIN)
    invited = User.objects.create_user(email="again@example.com")
    membership = Membership.dangerously_unscoped.create(tenant=tenant, user=invited)
    response = console(admin, tenant).post(
        "/admin/tenants/membership/",
        {"action": "send_invitation", "_selected_action": [str(membership.pk)]},
        follow=True,
    )
    assert "Sent 1 invitation(s)." in response.content.decode()
    assert "/accounts/set-password/" in mail.outbox[0].body
