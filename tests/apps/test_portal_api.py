"""The portal's pages and API in-process: the branded 404 and closed pages, the page's
Content-Security-Policy and language, passports for each access mode, and what a passport
opens (its own site, its own visitor's rows) and does not."""

from __future__ import annotations

import json
import re
import secrets

import pytest
from django.core import mail
from django.test import Client

from apps.models import App, Conversation, EndUser, Site
from apps.services import sites as site_services
from apps.services.end_users import end_user_for
from tenants.models import Membership
from tenants.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def client(settings):
    """A browser of its own address: the per-address limits of one test (or of another
    worker's) never reach another's."""
    settings.WEFT_PORTAL_SIGN_IN_RPM = 1000
    return Client(REMOTE_ADDR=f"10.9.{secrets.randbelow(250)}.{secrets.randbelow(250)}")


@pytest.fixture
def chat(tenant, make_app):
    return make_app(tenant, App.Mode.CHAT, name="Help desk")


def page_url(site: Site) -> str:
    return f"/c/{site.code}/"


def api(site: Site, path: str) -> str:
    return f"/c/{site.code}/api/{path}"


def passport_for(client: Client, site: Site, **body) -> str:
    response = client.post(api(site, "passport"), body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()["passport"]


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def config_of(response) -> dict:
    found = re.search(
        r'<script id="weft-portal-config" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert found, "no page config"
    return json.loads(found.group(1))


# --- Pages ----------------------------------------------------------------------------------


def test_the_page_of_an_open_site(client, chat):
    response = client.get(page_url(chat.site))
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert f'nonce="{nonce}"' in response.content.decode()
    assert "frame-ancestors 'self'" in policy and "script-src 'self' 'nonce-" in policy
    assert "X-Frame-Options" not in response
    config = config_of(response)
    assert config["mode"] == "chat" and config["access_mode"] == "public"
    assert config["api"] == f"/c/{chat.site.code}/api/"
    assert "passport" not in json.dumps(config)


def test_embedding_origins_become_frame_ancestors(client, chat, tenant):
    site_services.site_update(
        tenant=tenant, site=chat.site, embed_origins=["https://shop.example.com/"]
    )
    policy = client.get(page_url(chat.site))["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://shop.example.com" in policy


def test_unknown_and_closed_sites(client, chat):
    missing = client.get("/c/nothing-here/")
    assert missing.status_code == 404
    assert "Page not found" in missing.content.decode()
    assert "Content-Security-Policy" in missing
    App.dangerously_unscoped.filter(pk=chat.pk).update(enable_site=False)
    closed = client.get(page_url(chat.site))
    assert closed.status_code == 403
    assert "not available" in closed.content.decode()
    refused = client.post(api(chat.site, "passport"), {}, content_type="application/json")
    assert (refused.status_code, refused.json()["code"]) == (403, "site_closed")


def test_the_language_follows_the_browser_then_the_site(client, chat, tenant):
    zh = client.get(page_url(chat.site), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert 'lang="zh-Hans"' in zh.content.decode() and "发送" in zh.content.decode()
    assert config_of(zh)["strings"]["copy"] == "复制"
    site_services.site_update(tenant=tenant, site=chat.site, default_language="zh-Hans")
    french = client.get(page_url(chat.site), HTTP_ACCEPT_LANGUAGE="fr-FR")
    assert 'lang="zh-Hans"' in french.content.decode()
    english = client.get(page_url(chat.site), HTTP_ACCEPT_LANGUAGE="en-GB,zh;q=0.5")
    assert 'lang="en"' in english.content.decode()


def test_markup_in_the_site_title_is_escaped(client, chat, tenant):
    site_services.site_update(tenant=tenant, site=chat.site, title="<script>alert(1)</script>")
    body = client.get(page_url(chat.site)).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


# --- Passports ------------------------------------------------------------------------------


def test_a_public_passport_opens_the_api_of_its_own_site_only(
    client, chat, tenant, other_tenant, make_app
):
    token = passport_for(client, chat.site)
    assert client.get(api(chat.site, "parameters"), **bearer(token)).status_code == 200
    assert client.get(api(chat.site, "site")).json()["code"] == "passport_required"
    forged = client.get(api(chat.site, "parameters"), **bearer(token + "x"))
    assert (forged.status_code, forged.json()["code"]) == (401, "passport_expired")
    other = make_app(other_tenant, App.Mode.CHAT, name="Elsewhere")
    crossed = client.get(api(other.site, "parameters"), **bearer(token))
    assert (crossed.status_code, crossed.json()["code"]) == (401, "passport_expired")


def test_a_new_code_ends_the_passports_given_before(client, chat, tenant):
    token = passport_for(client, chat.site)
    old_code = chat.site.code
    site_services.site_regenerate_code(tenant=tenant, site=chat.site)
    assert chat.site.code != old_code
    assert client.get(f"/c/{old_code}/").status_code == 404
    assert client.get(api(chat.site, "parameters"), **bearer(token)).status_code == 401


def test_a_password_site(client, chat, tenant):
    site_services.site_set_password(tenant=tenant, site=chat.site, password="warp-and-weft")
    site_services.site_update(tenant=tenant, site=chat.site, access_mode="password")
    for body in ({}, {"password": "wrong"}, {"password": 12}):
        refused = client.post(api(chat.site, "passport"), body, content_type="application/json")
        assert refused.status_code in (400, 401), refused.content
    token = passport_for(client, chat.site, password="warp-and-weft")
    assert client.get(api(chat.site, "parameters"), **bearer(token)).status_code == 200
    site_services.site_set_password(tenant=tenant, site=chat.site, password="a-new-password")
    assert client.get(api(chat.site, "parameters"), **bearer(token)).status_code == 401


def test_an_email_domain_site(client, chat, tenant):
    site_services.site_update(
        tenant=tenant,
        site=chat.site,
        allowed_email_domains=["Acme.test"],
        access_mode="email_domains",
    )
    url = api(chat.site, "passport")
    elsewhere = client.post(url, {"email": "eve@evil.test"}, content_type="application/json")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (400, "email_not_allowed")
    sent = client.post(url, {"email": "Ann@acme.test"}, content_type="application/json")
    assert sent.status_code == 202 and len(mail.outbox) == 1
    code = re.search(r"\b(\d{6})\b", mail.outbox[0].body).group(1)
    wrong = client.post(
        url,
        {"email": "ann@acme.test", "code": "000000" if code != "000000" else "111111"},
        content_type="application/json",
    )
    assert (wrong.status_code, wrong.json()["code"]) == (400, "wrong_code")
    token = passport_for(client, chat.site, email="ann@acme.test", code=code)
    reused = client.post(
        url, {"email": "ann@acme.test", "code": code}, content_type="application/json"
    )
    assert reused.json()["code"] == "code_expired"  # a code works once
    assert client.get(api(chat.site, "parameters"), **bearer(token)).status_code == 200
    site_services.site_update(tenant=tenant, site=chat.site, allowed_email_domains=["other.test"])
    assert client.get(api(chat.site, "parameters"), **bearer(token)).status_code == 401


def test_an_email_code_allows_five_tries_even_in_parallel(chat, tenant):
    from concurrent.futures import ThreadPoolExecutor

    from tenants.exceptions import WeftError

    site_services.site_update(
        tenant=tenant, site=chat.site, allowed_email_domains=["acme.test"],
        access_mode="email_domains",
    )  # fmt: skip
    site_services.email_code_send(site=chat.site, email="ann@acme.test")
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    wrong = "000000" if code != "000000" else "111111"

    def guess(_):
        try:
            site_services.email_code_check(site=chat.site, email="ann@acme.test", code=wrong)
        except WeftError as error:
            return error.code

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(guess, range(8)))
    assert answers.count("wrong_code") == 5, answers
    # Past the tries the code is gone, right or not.
    with pytest.raises(WeftError) as refused:
        site_services.email_code_check(site=chat.site, email="ann@acme.test", code=code)
    assert refused.value.code in ("too_many_requests", "code_expired")


def test_a_members_site(client, chat, tenant, other_tenant, make_member):
    site_services.site_update(tenant=tenant, site=chat.site, access_mode="members")
    url = api(chat.site, "passport")
    anonymous = client.post(url, {}, content_type="application/json")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "login_required")
    client.force_login(make_member(other_tenant, Role.MEMBER))
    stranger = client.post(url, {}, content_type="application/json")
    assert (stranger.status_code, stranger.json()["code"]) == (403, "not_member")
    member = make_member(tenant, Role.MEMBER)
    client.force_login(member)
    token = passport_for(client, chat.site)
    assert client.get(api(chat.site, "parameters"), **bearer(token)).status_code == 200
    Membership.dangerously_unscoped.filter(user=member).delete()
    assert client.get(api(chat.site, "parameters"), **bearer(token)).status_code == 401


def test_a_members_passport_needs_the_pages_csrf_token(chat, tenant, make_member):
    site_services.site_update(tenant=tenant, site=chat.site, access_mode="members")
    strict = Client(enforce_csrf_checks=True, REMOTE_ADDR="10.8.0.1")
    strict.force_login(make_member(tenant, Role.MEMBER))
    refused = strict.post(api(chat.site, "passport"), {}, content_type="application/json")
    assert (refused.status_code, refused.json()["code"]) == (403, "csrf_failed")


def test_a_visitor_sees_only_their_own_conversations(client, chat, tenant):
    token = passport_for(client, chat.site)
    someone = end_user_for(app=chat, session_id="someone-else", kind=EndUser.Kind.BROWSER)
    theirs = Conversation.dangerously_unscoped.create(
        tenant=tenant, app=chat, end_user=someone, source="portal", name="Theirs"
    )
    listed = client.get(api(chat.site, "conversations"), **bearer(token)).json()
    assert listed["data"] == []
    peek = client.get(api(chat.site, f"messages?conversation_id={theirs.pk}"), **bearer(token))
    assert peek.status_code == 404


def test_the_service_api_key_does_not_open_the_portal_api(client, chat, app_key):
    key = app_key(chat)
    refused = client.get(api(chat.site, "parameters"), **bearer(key))
    assert refused.status_code == 401


def test_sign_in_attempts_are_limited_per_address(client, chat, tenant, settings):
    settings.WEFT_PORTAL_SIGN_IN_RPM = 3
    site_services.site_set_password(tenant=tenant, site=chat.site, password="warp-and-weft")
    site_services.site_update(tenant=tenant, site=chat.site, access_mode="password")
    url = api(chat.site, "passport")
    codes = [
        client.post(url, {"password": "guess"}, content_type="application/json").status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    limited = client.post(url, {"password": "warp-and-weft"}, content_type="application/json")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0


def test_a_method_a_route_does_not_take_answers_405(client, chat):
    token = passport_for(client, chat.site)
    wrong = client.put(api(chat.site, "parameters"), **bearer(token))
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")
    assert client.get(api(chat.site, "passport")).status_code == 405


def test_a_tenant_over_its_messages_gets_a_readable_refusal_in_the_portal(client, chat, tenant):
    from billing import quota
    from billing.models import Plan

    subscription = quota.subscription_for(tenant)
    subscription.plan = Plan.objects.create(slug="tiny", name="Tiny", messages_per_period=0)
    subscription.save()
    token = passport_for(client, chat.site)
    response = client.post(
        api(chat.site, "chat-messages"),
        {"inputs": {}, "query": "hello", "response_mode": "blocking"},
        content_type="application/json",
        **bearer(token),
    )
    assert response.status_code == 402
    body = response.json()
    assert body["code"] == "quota_exceeded" and body["message"].startswith("Quota exceeded:")
    assert not Conversation.dangerously_unscoped.filter(app=chat).exists()
