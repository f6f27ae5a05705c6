"""Apps of every mode, published, with their keys (made through the services)."""

from __future__ import annotations

import pytest

from apps.models import App
from apps.services.apps import app_create, app_publish
from tenants.models import ApiKey
from tests.factories import api_key


@pytest.fixture
def make_app(db):
    """make_app(tenant, mode="chat", name=None, publish=True, **fields) -> App."""

    def make(tenant, mode: str = App.Mode.CHAT, name: str | None = None, publish=True, **fields):
        app = app_create(tenant=tenant, name=name or f"{mode} app", mode=mode, **fields)
        if publish:
            app_publish(tenant=tenant, app=app)
            app.refresh_from_db()
        return app

    return make


@pytest.fixture
def app_key():
    """app_key(app) -> the raw `app-` key of a new key for the app."""

    def make(app: App) -> str:
        return api_key(app.tenant, kind=ApiKey.Kind.APP, app_id=app.pk)[1]

    return make
