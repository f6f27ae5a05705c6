"""Portal sites: made with their app, their settings checked before any is written, the
password kept hashed, and `/v1/site` in Dify's shape."""

from __future__ import annotations

import pytest

from apps.api.service.shapes import site_json
from apps.models import App, Site
from apps.services import sites as site_services
from tenants.exceptions import InvalidInput
from tenants.roles import Role

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


# --- The console's portal page ----------------------------------------------------------------

APPS = "/admin/apps/app/"


def form_of(site: Site, **changes) -> dict:
    data = {
        "title": site.title,
        "description": site.description,
        "icon": site.icon,
        "icon_background": site.icon_background,
        "default_language": site.default_language,
        "input_placeholder": site.input_placeholder,
        "custom_disclaimer": site.custom_disclaimer,
        "copyright": site.copyright,
        "privacy_policy": site.privacy_policy,
        "chat_color_theme": site.chat_color_theme,
        "access_mode": site.access_mode,
        "password": "",
        "allowed_email_domains": "\n".join(site.allowed_email_domains),
        "embed_origins": "\n".join(site.embed_origins),
    }
    if site.show_workflow_steps:
        data["show_workflow_steps"] = "on"
    data.update(changes)
    return data


def test_a_builder_sets_up_the_portal(console, make_member, tenant, site):
    builder = console(make_member(tenant, Role.BUILDER), tenant)
    url = f"{APPS}{site.app_id}/site/"
    page = builder.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert f"/c/{site.code}/" in body and "data-weft-site" in body and "?embed=1" in body
    saved = builder.post(
        url,
        form_of(
            site,
            title="Loom help",
            access_mode="password",
            password="warp-and-weft",
            embed_origins="https://shop.example.com\nhttp://localhost:8080",
        ),
        follow=True,
    )
    assert "The portal site is saved." in saved.content.decode()
    site.refresh_from_db()
    assert site.title == "Loom help" and site.access_mode == Site.Access.PASSWORD
    assert site.password_hash and site.embed_origins == [
        "https://shop.example.com",
        "http://localhost:8080",
    ]
    old = site.code
    builder.post(f"{url}new-code/")
    site.refresh_from_db()
    assert site.code != old


def test_bad_settings_are_shown_and_nothing_is_saved(console, make_member, tenant, site):
    builder = console(make_member(tenant, Role.BUILDER), tenant)
    url = f"{APPS}{site.app_id}/site/"
    refused = builder.post(url, form_of(site, title="Changed", embed_origins="*"))
    assert refused.status_code == 200
    assert "is not an origin" in refused.content.decode()
    site.refresh_from_db()
    assert site.title == "Help desk" and site.embed_origins == []


def test_operators_see_the_portal_page_but_cannot_change_it(console, make_member, tenant, site):
    operator = console(make_member(tenant, Role.OPERATOR), tenant)
    url = f"{APPS}{site.app_id}/site/"
    assert operator.get(url).status_code == 200
    assert operator.post(url, form_of(site, title="Mine")).status_code == 403
    assert operator.post(f"{url}new-code/").status_code == 403


def test_another_tenants_portal_page_is_not_found(console, make_member, other_tenant, site):
    stranger = console(make_member(other_tenant, Role.OWNER), other_tenant)
    assert stranger.get(f"{APPS}{site.app_id}/site/").status_code == 404


# --- Management API ------------------------------------------------------------------------------


@pytest.fixture
def api_as(tenant):
    """api_as(role, tenant=tenant) -> a DRF client with a `wk-` key of that role."""
    from rest_framework.test import APIClient

    from tests.factories import api_key

    def make(role, of=None):
        client = APIClient()
        raw = api_key(of or tenant, kind="management", role=role)[1]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    return make


def test_the_site_over_the_management_api(api_as, site):
    builder = api_as(Role.BUILDER)
    url = f"/api/apps/{site.app_id}/site/"
    shown = builder.get(url).json()
    assert shown["portal_path"] == f"/c/{site.code}/" and shown["has_password"] is False
    changed = builder.patch(
        url,
        {
            "access_mode": "password",
            "password": "warp-and-weft",
            "embed_origins": ["https://a.example"],
        },
        format="json",
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert body["access_mode"] == "password" and body["has_password"] is True
    assert "password" not in body and "password_hash" not in body
    refused = builder.patch(url, {"title": "New", "embed_origins": ["*"]}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_param"
    site.refresh_from_db()
    assert site.title == "Help desk"
    old = site.code
    assert builder.post(f"{url}new-code/").json()["code"] != old


def test_the_site_api_needs_its_permissions_and_its_tenant(api_as, site, other_tenant):
    url = f"/api/apps/{site.app_id}/site/"
    operator = api_as(Role.OPERATOR)
    assert operator.get(url).status_code == 200
    assert operator.patch(url, {"title": "Mine"}, format="json").status_code == 403
    assert operator.post(f"{url}new-code/").status_code == 403
    stranger = api_as(Role.OWNER, other_tenant)
    assert stranger.get(url).status_code == 404
    assert stranger.patch(url, {"title": "Mine"}, format="json").status_code == 404
