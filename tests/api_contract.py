"""A generic contract every tenant-scoped management endpoint passes.

Subclass `TenantEndpointContract` in a test module, name the endpoint and how to make one of
its objects, and pytest collects: the list shows only the caller's tenant, another tenant's
object answers 404 to every method, a role without the permission gets 403, and no
credentials get 401 — all in the error envelope.
"""

from __future__ import annotations

import pytest

from tenants.roles import Role
from tests.factories import TenantFactory, api_key


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


class TenantEndpointContract:
    list_url: str = ""
    allowed_role: str = Role.ADMIN  # may list and read
    denied_role: str = Role.MEMBER  # may not list
    detail_methods: tuple[str, ...] = ("get", "patch", "delete")

    def make_object(self, tenant):  # pragma: no cover - each subclass supplies it
        raise NotImplementedError

    def detail_url(self, obj) -> str:
        return f"{self.list_url}{obj.pk}/"

    @pytest.fixture
    def tenants(self, db):
        return TenantFactory(slug="mine"), TenantFactory(slug="theirs")

    def test_list_shows_only_own_tenant(self, client, tenants):
        mine, theirs = tenants
        own = self.make_object(mine)
        foreign = self.make_object(theirs)
        _, raw = api_key(mine, role=self.allowed_role)
        response = client.get(self.list_url, **bearer(raw))
        assert response.status_code == 200, response.content
        ids = {str(row["id"]) for row in response.json()["results"]}
        assert str(own.pk) in ids and str(foreign.pk) not in ids

    def test_other_tenants_object_is_404(self, client, tenants):
        mine, theirs = tenants
        foreign = self.make_object(theirs)
        _, raw = api_key(mine, role=Role.OWNER)
        for method in self.detail_methods:
            response = getattr(client, method)(
                self.detail_url(foreign), {}, content_type="application/json", **bearer(raw)
            )
            assert response.status_code == 404, (method, response.content)
            assert response.json()["code"] == "not_found"

    def test_role_without_permission_is_403(self, client, tenants):
        mine, _ = tenants
        self.make_object(mine)
        _, raw = api_key(mine, role=self.denied_role)
        response = client.get(self.list_url, **bearer(raw))
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"

    def test_no_credentials_is_401(self, client, db):
        response = client.get(self.list_url)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
