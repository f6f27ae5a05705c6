"""The role matrix, tested as a table, plus the rules on top of it."""

import re
from pathlib import Path

import pytest
from guardian.shortcuts import assign_perm

from tenants import services
from tenants.context import tenant_context
from tenants.exceptions import Conflict, Forbidden
from tenants.models import ApiKey, Membership
from tenants.permissions import (
    MATRIX,
    Principal,
    allowed,
    can_api_key,
    can_membership,
    principal_for_user,
)
from tenants.roles import Role
from tests.factories import api_key

O, A, B, P, M = Role.OWNER, Role.ADMIN, Role.BUILDER, Role.OPERATOR, Role.MEMBER  # noqa: E741
ROLES = [O, A, B, P, M]

# Written out by hand, independently of MATRIX: which roles may do each action.
EXPECTED = {
    ("console", "access"): {O, A, B, P},
    ("tenant", "view"): {O, A, B, P, M},
    ("tenant", "change"): {O, A},
    ("membership", "view"): {O, A, B, P},
    ("membership", "invite"): {O, A},
    ("membership", "change_role"): {O, A},
    ("membership", "remove"): {O, A},
    ("api_key", "view"): {O, A, B},
    ("api_key", "create"): {O, A, B},
    ("api_key", "revoke"): {O, A, B},
    ("audit_log", "view"): {O, A},
    ("provider", "view"): {O, A, B},
    ("provider", "manage"): {O, A},
    ("dataset", "view"): {O, A, B, P},
    ("dataset", "create"): {O, A, B},
    ("dataset", "manage"): {O, A, B},
    ("workflow", "view"): {O, A, B, P},
    ("workflow", "manage"): {O, A, B},
    ("workflow", "run"): {O, A, B, P},
    ("document", "upload"): {O, A, B, P},
    ("app", "view"): {O, A, B, P},
    ("app", "manage"): {O, A, B},
    ("app", "logs"): {O, A, B, P},
    ("billing", "view"): {O, A},
}


def test_matrix_covers_exactly_the_expected_actions():
    assert set(MATRIX) == set(EXPECTED)


@pytest.mark.parametrize("kind_action", sorted(EXPECTED))
@pytest.mark.parametrize("role", ROLES)
def test_matrix(role, kind_action):
    principal = Principal(tenant_id=1, role=role)
    assert allowed(principal, *kind_action) == (role in EXPECTED[kind_action])


@pytest.mark.parametrize("kind_action", sorted(EXPECTED))
def test_no_role_may_do_nothing_and_platform_admin_everything(kind_action):
    assert not allowed(Principal(tenant_id=1, role=None), *kind_action)
    assert allowed(Principal(tenant_id=None, role=None, is_platform_admin=True), *kind_action)


def test_readme_table_is_the_matrix():
    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text()
    block = text.split("<!-- permission-matrix:start -->")[1].split(
        "<!-- permission-matrix:end -->"
    )[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        kind, action = re.fullmatch(r"`(\w+)\.(\w+)`", cells[0]).groups()
        table[(kind, action)] = {
            role for role, cell in zip(ROLES, cells[1:6], strict=True) if cell == "✓"
        }
    assert table == EXPECTED


# --- Rules on top of the matrix --------------------------------------------------------


def _principal(user, tenant):
    return principal_for_user(user, tenant)


@pytest.mark.parametrize(
    ("actor_role", "new_role", "ok"),
    [
        (O, O, True),
        (O, A, True),
        (O, B, True),
        (A, A, False),
        (A, O, False),
        (A, B, True),
        (A, P, True),
        (A, M, True),
        (B, M, False),
        (P, M, False),
        (M, M, False),
    ],
)
def test_who_may_grant_which_role(tenant, make_member, actor_role, new_role, ok):
    actor = make_member(tenant, actor_role)
    target_user = make_member(tenant, M)
    target = Membership.dangerously_unscoped.get(user=target_user)
    principal = _principal(actor, tenant)
    assert can_membership(principal, "invite", new_role=new_role) is ok
    assert can_membership(principal, "change_role", target, new_role=new_role) is ok


def test_admin_cannot_touch_admins_or_owners(tenant, make_member):
    admin = make_member(tenant, A)
    other_admin = Membership.dangerously_unscoped.get(user=make_member(tenant, A))
    owner = Membership.dangerously_unscoped.get(user=make_member(tenant, O))
    principal = _principal(admin, tenant)
    for target in (other_admin, owner):
        assert not can_membership(principal, "remove", target)
        assert not can_membership(principal, "change_role", target, new_role=M)
        with pytest.raises(Forbidden):
            services.membership_remove(membership=target, principal=principal)
    assert Membership.dangerously_unscoped.filter(pk=owner.pk).exists()


def test_last_owner_stays(tenant, make_member):
    owner_user = make_member(tenant, O)
    owner = Membership.dangerously_unscoped.get(user=owner_user)
    principal = _principal(owner_user, tenant)
    with pytest.raises(Conflict):
        services.membership_change_role(membership=owner, role=A, principal=principal)
    with pytest.raises(Conflict):
        services.membership_remove(membership=owner, principal=principal)
    second = Membership.dangerously_unscoped.get(user=make_member(tenant, O))
    services.membership_change_role(membership=owner, role=A, principal=principal)
    owner.refresh_from_db()
    assert owner.role == A
    assert second.role == O


def test_other_tenants_objects_are_never_allowed(tenant, other_tenant, make_member):
    owner = make_member(tenant, O)
    foreign = Membership.dangerously_unscoped.get(user=make_member(other_tenant, M))
    assert not can_membership(_principal(owner, tenant), "remove", foreign)


def test_management_keys_need_admin_and_no_higher_role(tenant, make_member):
    builder = _principal(make_member(tenant, B), tenant)
    admin = _principal(make_member(tenant, A), tenant)
    owner = _principal(make_member(tenant, O), tenant)
    assert can_api_key(builder, "create", kind="app")
    assert can_api_key(builder, "create", kind="dataset")
    assert not can_api_key(builder, "create", kind="management", role=M)
    assert can_api_key(admin, "create", kind="management", role=A)
    assert not can_api_key(admin, "create", kind="management", role=O)
    assert can_api_key(owner, "create", kind="management", role=O)
    with pytest.raises(Forbidden):
        services.api_key_create(tenant=tenant, kind="management", role=O, principal=admin)


def test_guardian_grant_allows_one_object_only(tenant, make_member):
    member_user = make_member(tenant, M)
    granted, _ = api_key(tenant, kind="dataset", name="granted")
    other, _ = api_key(tenant, kind="dataset", name="other")
    principal = _principal(member_user, tenant)
    assert not can_api_key(principal, "revoke", granted)
    assign_perm("tenants.change_apikey", member_user, granted)
    member_user = type(member_user).objects.get(pk=member_user.pk)  # fresh permission cache
    principal = _principal(member_user, tenant)
    assert can_api_key(principal, "revoke", granted)
    assert not can_api_key(principal, "revoke", other)
    services.api_key_revoke(key=granted, principal=principal)
    with pytest.raises(Forbidden):
        services.api_key_revoke(key=other, principal=principal)
    with tenant_context(tenant):
        assert ApiKey.objects.get(pk=granted.pk).is_revoked
        assert not ApiKey.objects.get(pk=other.pk).is_revoked
