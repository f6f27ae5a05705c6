"""Apps and versions: create in every mode (runnable at once), publish, roll back, and what
a request runs."""

from __future__ import annotations

import pytest

from apps.config import parse_config
from apps.models import App, AppVersion
from apps.services.apps import AppUnavailable, app_publish, app_rollback, app_update, runnable
from tenants.exceptions import Conflict, InvalidInput, NotFound

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("mode", App.Mode.values)
def test_every_mode_publishes_from_its_starter(tenant, make_app, mode):
    app = make_app(tenant, mode)
    target = runnable(app)
    assert target.version is not None and target.version.number == 1
    if app.runs_workflow:
        assert target.workflow_version is not None and target.config is None
    else:
        assert target.config is not None
        assert target.config.model.name == "weft-offline-chat"


def test_unpublished_app_is_unavailable(tenant, make_app):
    app = make_app(tenant, publish=False)
    with pytest.raises(AppUnavailable):
        runnable(app)
    assert runnable(app, draft=True).version is None


def test_names_are_unique_per_tenant(tenant, other_tenant, make_app):
    make_app(tenant, name="Helper")
    make_app(other_tenant, name="Helper")
    with pytest.raises(Conflict):
        make_app(tenant, name="Helper")


def test_publish_unchanged_is_a_no_op_and_rollback_copies(tenant, make_app):
    app = make_app(tenant)
    first = app.published_version
    assert app_publish(tenant=tenant, app=app).pk == first.pk
    app_update(tenant=tenant, app=app, config={**app.config, "pre_prompt": "Be brief."})
    second = app_publish(tenant=tenant, app=app)
    assert second.number == 2 and second.config["pre_prompt"] == "Be brief."
    copy = app_rollback(tenant=tenant, app=app, version=first)
    app.refresh_from_db()
    assert copy.number == 3 and copy.restored_from == 1
    assert app.published_version_id == copy.pk and app.config["pre_prompt"] == ""


def test_pinned_version_by_id(tenant, make_app):
    app = make_app(tenant)
    first = app.published_version
    app_update(tenant=tenant, app=app, config={**app.config, "pre_prompt": "v2"})
    app_publish(tenant=tenant, app=app)
    assert runnable(app, version_id=str(first.pk)).config.pre_prompt == ""
    with pytest.raises(NotFound):
        runnable(app, version_id="not-a-uuid")


def test_workflow_app_pins_by_workflow_version_too(tenant, make_app):
    app = make_app(tenant, App.Mode.WORKFLOW)
    version = app.published_version
    assert runnable(app, version_id=str(version.workflow_version_id)).version.pk == version.pk


def test_bad_config_names_the_field(tenant, make_app):
    app = make_app(tenant)
    with pytest.raises(InvalidInput, match=r"model_config\.user_input_form"):
        app_update(
            tenant=tenant,
            app=app,
            config={"user_input_form": [{"text-input": {"variable": "1bad"}}]},
        )
    with pytest.raises(InvalidInput, match="features"):
        app_update(tenant=tenant, app=app, features={})
    assert AppVersion.dangerously_unscoped.filter(app=app).count() == 1


def test_config_keeps_unknown_keys():
    config = parse_config({"pre_prompt": "x", "some_future_key": {"a": 1}})
    assert config.model_dump()["some_future_key"] == {"a": 1}


def test_deleting_an_app_or_its_tenant_takes_its_workflow(tenant, make_app):
    from apps.services.apps import app_delete
    from workflows.models import Workflow

    chatflow = make_app(tenant, App.Mode.CHATFLOW)
    app_delete(tenant=tenant, app=chatflow)
    assert not Workflow.dangerously_unscoped.filter(pk=chatflow.workflow_id).exists()
    make_app(tenant, App.Mode.WORKFLOW, name="kept until the tenant goes")
    tenant.delete()
    assert not App.dangerously_unscoped.exists()
    assert not Workflow.dangerously_unscoped.exists()
