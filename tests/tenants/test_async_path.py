"""The same rules on the ASGI path that Daphne serves (async middleware), not only on WSGI."""

from asgiref.sync import async_to_sync
from django.test import AsyncClient

from tenants.context import get_current_tenant
from tenants.middleware import SESSION_KEY
from tenants.models import Membership, Tenant
from tenants.roles import Role
from tests.factories import api_key


def run(coroutine_function):
    return async_to_sync(coroutine_function)()


def test_api_isolation_on_the_async_path(tenant, other_tenant, make_member):
    make_member(tenant, Role.ADMIN, email="mine@example.com")
    make_member(other_tenant, Role.ADMIN, email="theirs@example.com")
    foreign = Membership.dangerously_unscoped.get(user__email="theirs@example.com")
    _, raw = api_key(tenant)
    auth = {"Authorization": f"Bearer {raw}"}

    async def go():
        client = AsyncClient()
        listing = await client.get("/api/members/", headers=auth)
        other = await client.get(f"/api/members/{foreign.pk}/", headers=auth)
        return listing, other

    listing, other = run(go)
    assert [row["email"] for row in listing.json()["results"]] == ["mine@example.com"]
    assert other.status_code == 404 and other.json()["code"] == "not_found"
    assert get_current_tenant() is None


def test_console_on_the_async_path(tenant, other_tenant, make_member):
    admin = make_member(tenant, Role.ADMIN, email="boss@example.com")
    make_member(other_tenant, Role.MEMBER, email="stranger@example.com")

    async def go():
        client = AsyncClient()
        await client.aforce_login(admin)
        session = await client.asession()
        await session.aset(SESSION_KEY, str(tenant.pk))
        await session.asave()
        page = await client.get("/admin/tenants/membership/")
        await Tenant.objects.filter(pk=tenant.pk).aupdate(status=Tenant.Status.SUSPENDED)
        suspended = await client.get("/admin/")
        return page, suspended

    page, suspended = run(go)
    body = page.content.decode()
    assert page.status_code == 200
    assert "boss@example.com" in body and "stranger@example.com" not in body
    assert suspended.status_code == 403


def test_service_api_and_hosts_on_the_async_path(tenant):
    _, app_raw = api_key(tenant, kind="app")

    async def go():
        client = AsyncClient()
        return (
            await client.post("/v1/chat-messages"),
            await client.post("/v1/chat-messages", headers={"Authorization": f"Bearer {app_raw}"}),
            await client.get("/admin/login/", headers={"Host": "evil.example.net"}),
        )

    missing, known, foreign_host = run(go)
    assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
    # A live key of an app that does not exist: Dify's 403, answered on the async path.
    assert known.status_code == 403 and known.json()["code"] == "forbidden"
    assert foreign_host.status_code == 404
