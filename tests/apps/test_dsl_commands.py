"""manage.py import_dsl and export_dsl: the report then the app id alone on the last line, a
readable error and exit code 1 for a bad file with nothing created, exports to stdout or a file."""

from __future__ import annotations

import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from apps.dsl import app_export
from apps.models import App
from tenants.context import tenant_context
from tenants.models import AuditLog
from tests.processes import database_env

from .test_dsl import AGENT_DSL, CHAT_DSL, COMPLETION_DSL

ROOT = Path(__file__).resolve().parents[2]


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def dsl_file(tmp_path):
    def write(text: str | bytes, name: str = "app.yml") -> str:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def apps_of(tenant) -> list[App]:
    with tenant_context(tenant):
        return list(App.objects.all())


def test_import_prints_the_report_then_the_id(tenant, dsl_file):
    out = run("import_dsl", "--tenant", "acme", dsl_file(AGENT_DSL))
    lines = out.strip().splitlines()
    (app,) = apps_of(tenant)
    assert lines[-1] == str(app.pk)
    assert (
        lines[0] == "Imported agent chat app “Clock agent” into acme from a DSL of version 0.3.0."
    )
    assert "Published as version 1." in lines
    disabled = [line for line in lines if line.lstrip().startswith("tool_disabled")]
    assert len(disabled) == 2
    assert "[model_config.agent_mode.tools[1]]" in disabled[0]
    assert "google_search" in disabled[0]
    assert any(line.lstrip().startswith("model_mapped") for line in lines)
    # Audited as the command, as every operator command is.
    with tenant_context(tenant):
        created = AuditLog.objects.get(
            object_type="apps.app", object_id=str(app.pk), action="create"
        )
    assert created.source == "command" and created.actor_label.startswith("manage.py import_dsl")


def test_import_with_a_name_and_an_actor(tenant, dsl_file, make_member):
    user = make_member(tenant, email="builder@example.com")
    out = run(
        "import_dsl",
        "--tenant",
        "acme",
        dsl_file(COMPLETION_DSL),
        "--name",
        "Glossary translator",
        "--actor",
        "Builder@Example.com",
    )
    (app,) = apps_of(tenant)
    assert out.strip().splitlines()[-1] == str(app.pk)
    assert app.name == "Glossary translator" and app.created_by == user
    with tenant_context(tenant):
        created = AuditLog.objects.get(
            object_type="apps.app", object_id=str(app.pk), action="create"
        )
    assert created.actor_id == user.pk and created.source == "command"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("app: [unclosed\n", "malformed YAML at line"),
        (CHAT_DSL.replace("kind: app", "kind: dataset"), "kind must be app"),
        (CHAT_DSL.replace("version: 0.1.5", "version: 2.0.0"), "newer than"),
        (CHAT_DSL.split("kind: app\n")[0] + "kind: app\n", "no `model_config`"),
        (b"\xff\xfe not utf-8", "not UTF-8"),
    ],
)
def test_bad_files_fail_readably_with_nothing_created(tenant, dsl_file, content, message):
    with pytest.raises(CommandError, match=message):
        run("import_dsl", "--tenant", "acme", dsl_file(content))
    assert apps_of(tenant) == []


def test_bad_arguments(tenant, dsl_file, make_member, other_tenant):
    with pytest.raises(CommandError, match="Cannot read"):
        run("import_dsl", "--tenant", "acme", "/nonexistent/app.yml")
    with pytest.raises(CommandError, match="No tenant"):
        run("import_dsl", "--tenant", "missing", dsl_file(CHAT_DSL))
    make_member(other_tenant, email="outsider@example.com")
    with pytest.raises(CommandError, match="not a member of acme"):
        run("import_dsl", "--tenant", "acme", dsl_file(CHAT_DSL), "--actor", "outsider@example.com")
    with pytest.raises(CommandError, match="larger than 10485760"):
        run("import_dsl", "--tenant", "acme", dsl_file(b"#" * (11 * 1024 * 1024)))
    assert apps_of(tenant) == []


def test_export_to_stdout_and_to_a_file(tenant, dsl_file, tmp_path):
    app_id = run("import_dsl", "--tenant", "acme", dsl_file(AGENT_DSL)).strip().splitlines()[-1]
    (app,) = apps_of(tenant)
    out = run("export_dsl", "--tenant", "acme", app_id)
    assert out == app_export(app)
    assert yaml.safe_load(out)["app"]["mode"] == "agent-chat"
    target = tmp_path / "out.yml"
    message = run("export_dsl", "--tenant", "acme", app_id, "--version", "1", "-o", str(target))
    assert message.strip() == f"Exported version 1 of “Clock agent” to {target}."
    assert target.read_text(encoding="utf-8") == app_export(app, version=1)
    with_secrets = yaml.safe_load(
        run("export_dsl", "--tenant", "acme", app_id, "--include-secrets")
    )
    assert "credential_id" in with_secrets["model_config"]["agent_mode"]["tools"][2]
    # The export imports back as the same app.
    again = run("import_dsl", "--tenant", "acme", str(target)).strip().splitlines()[-1]
    with tenant_context(tenant):
        copy = App.objects.get(pk=again)
    assert copy.name == "Clock agent (2)"
    exported = yaml.safe_load(target.read_text(encoding="utf-8"))["model_config"]
    assert yaml.safe_load(app_export(copy))["model_config"] == exported


def test_export_refuses_unknown_apps_and_versions(tenant, other_tenant, dsl_file):
    app_id = run("import_dsl", "--tenant", "acme", dsl_file(CHAT_DSL)).strip().splitlines()[-1]
    with pytest.raises(CommandError, match="globex has no app"):
        run("export_dsl", "--tenant", "globex", app_id)
    with pytest.raises(CommandError, match="acme has no app"):
        run("export_dsl", "--tenant", "acme", str(uuid.uuid4()))
    with pytest.raises(CommandError, match="a UUID"):
        run("export_dsl", "--tenant", "acme", "42")
    with pytest.raises(CommandError, match="no version 3"):
        run("export_dsl", "--tenant", "acme", app_id, "--version", "3")


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


@pytest.mark.django_db(transaction=True)
def test_as_an_operator_script_sees_it(tenant, dsl_file):
    """Real processes: the id alone on the last line of stdout; a bad file exits 1."""
    result = manage("import_dsl", "--tenant", "acme", dsl_file(CHAT_DSL))
    assert result.returncode == 0, result.stderr
    app_id = result.stdout.strip().splitlines()[-1]
    (app,) = apps_of(tenant)
    assert app_id == str(app.pk) and app.published_version_id is not None
    exported = manage("export_dsl", "--tenant", "acme", app_id)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == app_export(app)
    bad = manage("import_dsl", "--tenant", "acme", dsl_file("kind: app\napp: {mode: chat}\n"))
    assert bad.returncode == 1
    assert "CommandError: the DSL has no `model_config`: a chat app" in bad.stderr
    assert len(apps_of(tenant)) == 1
