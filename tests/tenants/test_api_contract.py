"""The generic endpoint contract, applied to the tenants app's endpoints."""

from tenants.models import Membership
from tenants.roles import Role
from tests.api_contract import TenantEndpointContract
from tests.factories import MembershipFactory, api_key


class TestMembersEndpoint(TenantEndpointContract):
    list_url = "/api/members/"
    allowed_role = Role.OPERATOR
    denied_role = Role.MEMBER

    def make_object(self, tenant) -> Membership:
        return MembershipFactory(tenant=tenant, role=Role.MEMBER)


class TestKeysEndpoint(TenantEndpointContract):
    list_url = "/api/keys/"
    allowed_role = Role.BUILDER
    denied_role = Role.OPERATOR
    detail_methods = ("get", "delete")

    def make_object(self, tenant):
        return api_key(tenant, kind="dataset")[0]
