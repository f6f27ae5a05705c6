import os
import subprocess
import uuid

import pytest

from billing import quota
from billing.models import Plan
from tests.apps.conftest import app_key, make_app  # noqa: F401 - shared fixtures

PANGO = ["libpango-1.0-0", "libpangoft2-1.0-0", "fonts-dejavu-core"]


def _ensure_pango() -> None:
    """WeasyPrint needs Pango from the system: apt-get install it when it is missing (the
    package lists updated once if they do not know it)."""
    try:
        import weasyprint  # noqa: F401
    except OSError:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PANGO]
        if subprocess.run(command, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
            subprocess.run(command, env=env, capture_output=True, check=True)


_ensure_pango()


@pytest.fixture
def on_plan(db):
    """on_plan(tenant, **plan fields) -> a new plan the tenant is now on."""

    def make(tenant, **fields):
        fields.setdefault("name", "Team")
        plan = Plan.objects.create(slug=f"plan-{uuid.uuid4().hex[:8]}", **fields)
        subscription = quota.subscription_for(tenant)
        subscription.plan = plan
        subscription.save()
        return plan

    return make


@pytest.fixture
def eager():
    """Celery tasks run in the calling process, as they are sent."""
    from config.celery import app as celery_app

    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False
