"""Portal sites: made with their app, their settings checked before any is written, the
password kept hashed, and `/v1/site` in Dify's shape."""

from __future__ import annotations

import pytest

from apps.api.service.shapes import site_json
from apps.models import App, Site
from apps.services import sites as site_services
from tenants.exceptions import InvalidInput

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(tenant, make_app) -> Site:
    return make_app(tenant, App.Mode.CHAT, name="Help desk", icon="🧶").site


def test_an_app_gets_its_site(site):
    assert site.title == "Help desk" and site.icon == "🧶"
    assert len(site.code) == 16 and site.access_mode == Site.Access.PUBLIC


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"embed_origins": ["*"]}, "not an origin"),
        ({"embed_origins": ["https://a.example/path"]}, "not an origin"),
        ({"embed_origins": ["javascript:alert(1)"]}, "not an origin"),
        ({"embed_origins": ["https://a.example:99999"]}, "port"),
        ({"embed_origins": "https://a.example"}, "must be a list"),
        ({"allowed_email_domains": ["not a domain"]}, "not a domain"),
        ({"chat_color_theme": "blue"}, "colour"),
        ({"privacy_policy": "javascript:alert(1)"}, "http(s) link"),
        ({"default_language": "fr-FR"}, "default_language"),
        ({"access_mode": "everyone"}, "access_mode"),
        ({"access_mode": "email_domains"}, "at least one domain"),
        ({"access_mode": "password"}, "set a password"),
        ({"title": ""}, "needs a title"),
        ({"title": "x" * 300}, "at most 255"),
        ({"show_workflow_steps": "yes"}, "true or false"),
        ({"code": "mine"}, "not a site setting"),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_written(tenant, site, fields, message):
    before = Site.dangerously_unscoped.get(pk=site.pk)
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        site_services.site_update(tenant=tenant, site=site, **{"title": "Changed", **fields})
    after = Site.dangerously_unscoped.get(pk=site.pk)
    assert (after.title, after.access_mode) == (before.title, before.access_mode)


def test_settings_are_cleaned(tenant, site):
    site_services.site_update(
        tenant=tenant,
        site=site,
        embed_origins=[
            "https://Shop.Example.com/",
            "https://shop.example.com",
            "http://a.test:8080",
        ],
        allowed_email_domains=["@Acme.Test", "acme.test"],
        chat_color_theme="#7A1F5C",
    )
    site.refresh_from_db()
    assert site.embed_origins == ["https://shop.example.com", "http://a.test:8080"]
    assert site.allowed_email_domains == ["acme.test"]


def test_the_password_is_kept_hashed(tenant, site):
    with pytest.raises(InvalidInput, match="between 8 and 128"):
        site_services.site_set_password(tenant=tenant, site=site, password="short")
    site_services.site_set_password(tenant=tenant, site=site, password="warp-and-weft")
    site.refresh_from_db()
    assert site.password_hash and "warp-and-weft" not in site.password_hash


def test_another_tenants_site_is_not_changed(other_tenant, site):
    with pytest.raises(InvalidInput):
        site_services.site_update(tenant=other_tenant, site=site, title="Mine now")
    with pytest.raises(InvalidInput):
        site_services.site_set_password(tenant=other_tenant, site=site, password="12345678")


def test_v1_site_is_difys_shape(tenant, site):
    site_services.site_update(
        tenant=tenant,
        site=site,
        copyright="Acme Ltd",
        input_placeholder="Ask about looms",
        default_language="zh-Hans",
        chat_color_theme="#7A1F5C",
    )
    shown = site_json(site.app)
    assert shown["title"] == "Help desk" and shown["copyright"] == "Acme Ltd"
    assert shown["default_language"] == "zh-Hans" and shown["chat_color_theme"] == "#7A1F5C"
    assert shown["privacy_policy"] is None and shown["input_placeholder"] == "Ask about looms"
    assert "password" not in str(shown) and "code" not in shown
