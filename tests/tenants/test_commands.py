"""Operator commands: they do their job, and refuse bad arguments clearly with exit code 1."""

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tenants.models import ApiKey, Membership, Tenant, User
from tests.processes import database_env

ROOT = Path(__file__).resolve().parents[2]


def run(*args, stdin=None):
    out = StringIO()
    if stdin is not None:
        sys.stdin = StringIO(stdin)
    try:
        call_command(*args, stdout=out)
    finally:
        sys.stdin = sys.__stdin__
    return out.getvalue()


def test_create_tenant(db):
    out = run(
        "create_tenant", "--slug", "initech", "--name", "Initech", "--time-zone", "Europe/Berlin"
    )
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.time_zone == "Europe/Berlin"
    assert out.strip().splitlines()[-1] == str(tenant.pk)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slug", "Bad Slug", "--name", "X"], "slug"),
        (["--slug", "ok", "--name", "X", "--time-zone", "Mars/Base"], "time zone"),
        (["--slug", "acme", "--name", "Again"], "already exists"),
        (["--slug", "ok", "--name", ""], "name"),
    ],
)
def test_create_tenant_refuses(tenant, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_tenant", *args)
    assert Tenant.objects.count() == 1


def test_create_user_with_password_from_stdin(tenant):
    out = run(
        "create_user",
        "--email",
        "Ops@Example.com",
        "--tenant",
        "acme",
        "--role",
        "operator",
        "--password-stdin",
        stdin="a long enough passphrase\n",
    )
    user = User.objects.get(email="ops@example.com")
    assert user.check_password("a long enough passphrase")
    assert Membership.dangerously_unscoped.get(user=user).role == "operator"
    assert "Created ops@example.com as operator of acme." in out


def test_create_user_without_password_prints_a_link(tenant):
    out = run("create_user", "--email", "b@example.com", "--tenant", "acme", "--role", "builder")
    assert "/accounts/set-password/" in out.strip().splitlines()[-1]
    assert not User.objects.get(email="b@example.com").has_usable_password()


def test_create_user_adds_existing_user_to_another_tenant(tenant, other_tenant):
    run("create_user", "--email", "c@example.com", "--tenant", "acme", "--role", "member")
    out = run("create_user", "--email", "c@example.com", "--tenant", "globex", "--role", "admin")
    assert "Added c@example.com as admin of globex." in out
    assert Membership.dangerously_unscoped.filter(user__email="c@example.com").count() == 2


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--email", "x@example.com", "--tenant", "nope", "--role", "member"], None, "No tenant"),
        (
            ["--email", "not-an-email", "--tenant", "acme", "--role", "member"],
            None,
            "not a valid e-mail",
        ),
        (
            [
                "--email",
                "x@example.com",
                "--tenant",
                "acme",
                "--role",
                "member",
                "--password-stdin",
            ],
            "short\n",
            "too short",
        ),
        (
            [
                "--email",
                "x@example.com",
                "--tenant",
                "acme",
                "--role",
                "member",
                "--password-stdin",
            ],
            "",
            "No password",
        ),
    ],
)
def test_create_user_refuses(tenant, args, stdin, message):
    with pytest.raises(CommandError, match=message):
        run("create_user", *args, stdin=stdin)
    assert not User.objects.filter(email="x@example.com").exists()


def test_create_user_refuses_duplicate_membership(tenant):
    run("create_user", "--email", "d@example.com", "--tenant", "acme", "--role", "member")
    with pytest.raises(CommandError, match="already a member"):
        run("create_user", "--email", "d@example.com", "--tenant", "acme", "--role", "admin")


def test_create_api_key_kinds(tenant):
    app_id = "6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b"
    for kind, prefix in [("app", "app-"), ("dataset", "dataset-"), ("management", "wk-")]:
        extra = ["--app", app_id] if kind == "app" else []
        out = run("create_api_key", "--tenant", "acme", "--kind", kind, *extra)
        assert out.strip().splitlines()[-1].startswith(prefix)
    assert str(ApiKey.dangerously_unscoped.get(kind="app").app_id) == app_id


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "acme", "--kind", "app"], "needs the id of its app"),
        (["--tenant", "acme", "--kind", "app", "--app", "123"], "must be an app id"),
        (
            [
                "--tenant",
                "acme",
                "--kind",
                "dataset",
                "--app",
                "6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b",
            ],
            "Only app keys",
        ),
        (["--tenant", "missing", "--kind", "dataset"], "No tenant"),
    ],
)
def test_create_api_key_refuses(tenant, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert ApiKey.dangerously_unscoped.count() == 0


def manage(*args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=database_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bad_arguments_exit_with_a_message(tenant):
    """As an operator's script sees it: a real process, its exit code and its stderr."""
    result = manage("create_api_key", "--tenant", "acme", "--kind", "wizard")
    assert result.returncode == 2  # argparse's code for a bad choice
    assert "invalid choice: 'wizard'" in result.stderr
    result = manage("create_tenant", "--slug", "Not Valid", "--name", "X")
    assert result.returncode == 1
    assert "CommandError: slug:" in result.stderr
