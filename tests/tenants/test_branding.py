"""Tenant branding: checked values, sniffed images, readable colours, the plan's say on
"Powered by", what pages get, and the public brand images."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tenants import branding
from tenants.exceptions import InvalidInput
from tenants.models import Branding
from tenants.roles import Role

pytestmark = pytest.mark.django_db

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e221bc330000000049454e44ae426082"
)


def test_contrast_ratios_as_wcag_computes_them():
    assert round(branding.contrast_ratio("#FFFFFF", "#000000"), 2) == 21.0
    assert round(branding.contrast_ratio("#777777", "#FFFFFF"), 2) == 4.48
    assert branding.text_on("#155EEF") == branding.WHITE
    assert branding.text_on("#F5D90A") == branding.INK


def test_a_light_primary_colour_is_warned_of_not_refused(tenant):
    warnings = branding.branding_update(tenant=tenant, primary_color="#f5d90a")
    assert len(warnings) == 1 and "below the 4.5:1" in warnings[0]
    assert branding.brand_context(tenant)["primary_color"] == "#F5D90A"
    assert branding.brand_context(tenant)["on_primary"] == branding.INK


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"primary_color": "red"}, "colour"),
        ({"privacy_url": "javascript:alert(1)"}, "http"),
        ({"product_name": "x" * 81}, "at most 80"),
        ({"logo": b"GIF89a...."}, "PNG, a JPEG or an SVG"),
        ({"logo": b"<svg onload=alert(1)></svg>"}, "does not parse"),
        ({"logo": b"<html><script>alert(1)</script></html>"}, "PNG, a JPEG or an SVG"),
        ({"logo": "not bytes"}, "bytes"),
        ({"show_powered_by": False}, "does not allow"),
        ({"custom": "x"}, "not a branding setting"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_written(tenant, fields, message):
    with pytest.raises(InvalidInput, match=message):
        branding.branding_update(tenant=tenant, **{"product_name": "Changed", **fields})
    assert not Branding.dangerously_unscoped.filter(tenant=tenant).exists()


def test_images_are_capped(tenant, settings):
    settings.WEFT_BRAND_IMAGE_MAX_BYTES = 100
    with pytest.raises(InvalidInput, match="larger than"):
        branding.branding_update(tenant=tenant, logo=PNG + b"\0" * 200)


def test_powered_by_may_be_hidden_when_the_plan_allows(tenant):
    from billing.quota import subscription_for

    plan = subscription_for(tenant).plan
    plan.remove_powered_by = True
    plan.save()
    branding.branding_update(tenant=tenant, show_powered_by=False)
    assert branding.brand_context(tenant)["show_powered_by"] is False
    plan.remove_powered_by = False
    plan.save()
    assert branding.brand_context(tenant)["show_powered_by"] is True


def test_what_pages_get(tenant, other_tenant):
    branding.branding_update(tenant=tenant, product_name="Loomworks", logo=PNG)
    brand = branding.brand_context(tenant)
    assert brand["product_name"] == "Loomworks"
    assert brand["logo_url"].startswith(f"/branding/{tenant.pk}/logo?v=")
    assert brand["favicon_url"] == ""
    assert branding.brand_context(other_tenant)["product_name"] == other_tenant.name
    assert branding.brand_context(None)["product_name"] == "Weft"


def test_brand_images_are_served_as_sniffed(client, tenant):
    branding.branding_update(tenant=tenant, logo=PNG)
    response = client.get(f"/branding/{tenant.pk}/logo")
    assert response.status_code == 200 and response.content == PNG
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert client.get(f"/branding/{tenant.pk}/favicon").status_code == 404
    assert client.get(f"/branding/{tenant.pk}/script").status_code == 404
    assert client.get("/branding/00000000-0000-0000-0000-000000000000/logo").status_code == 404
    assert client.post(f"/branding/{tenant.pk}/logo").status_code == 405


# --- The console's Branding page, and the console in the tenant's colours -----------------------

BRANDING = "/admin/branding/"


def test_an_admin_brands_the_tenant_and_the_console_follows(console, make_member, tenant):
    admin_client = console(make_member(tenant, Role.ADMIN), tenant)
    assert admin_client.get(BRANDING).status_code == 200
    logo = SimpleUploadedFile("logo.png", PNG, content_type="image/png")
    saved = admin_client.post(
        BRANDING,
        {
            "product_name": "Loomworks",
            "primary_color": "#7a1f5c",
            "accent_color": "#f5d90a",
            "show_powered_by": "on",
            "logo": logo,
        },
        follow=True,
    )
    text = saved.content.decode()
    assert "The branding is saved." in text
    assert "contrast of" in text  # the light accent is warned of
    assert "Loomworks console" in text and "--header-bg: #7A1F5C" in text
    assert f"/branding/{tenant.pk}/logo?v=" in text


def test_a_bad_upload_is_refused_with_a_message(console, make_member, tenant):
    admin_client = console(make_member(tenant, Role.ADMIN), tenant)
    refused = admin_client.post(
        BRANDING,
        {
            "product_name": "Loomworks",
            "primary_color": "#7a1f5c",
            "accent_color": "#0f766e",
            "show_powered_by": "on",
            "logo": SimpleUploadedFile(
                "logo.png", b"<svg onload=alert(1)>", content_type="image/png"
            ),
        },
    )
    assert refused.status_code == 200
    assert "The SVG file does not parse" in refused.content.decode()
    assert not Branding.dangerously_unscoped.filter(tenant=tenant).exists()


def test_builders_see_the_branding_but_cannot_change_it(console, make_member, tenant):
    builder = console(make_member(tenant, Role.BUILDER), tenant)
    page = builder.get(BRANDING)
    assert page.status_code == 200 and "weft-branding-form" not in page.content.decode()
    assert (
        builder.post(
            BRANDING,
            {"product_name": "Mine", "primary_color": "#000000", "accent_color": "#000000"},
        ).status_code
        == 403
    )


def test_each_tenant_sees_its_own_branding(console, make_member, tenant, other_tenant):
    branding.branding_update(tenant=tenant, product_name="Loomworks")
    other = console(make_member(other_tenant, Role.OWNER), other_tenant)
    text = other.get(BRANDING).content.decode()
    assert "Loomworks" not in text and other_tenant.name in text


def test_mail_goes_out_under_the_tenants_sender_name(tenant, settings):
    settings.DEFAULT_FROM_EMAIL = "Weft <weft@example.com>"
    assert branding.sender(tenant) == "Weft <weft@example.com>"
    branding.branding_update(tenant=tenant, email_sender_name="Loomworks Support")
    assert branding.sender(tenant) == "Loomworks Support <weft@example.com>"


# --- Custom CSS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("css", "gone"),
    [
        ("@import url(https://evil.example/x.css);", "@import"),
        (".a { background: url(javascript:alert(1)) }", "javascript"),
        (".a { width: expression(alert(1)) }", "expression"),
        (".a { behavior: url(x.htc) }", "behavior"),
        (".a { -moz-binding: url(https://x.example/b.xml#x) }", "binding"),
        (".a { background: url(http://plain.example/x.png) }", "http://plain"),
        (".a { background: url(data:text/html,<script>alert(1)</script>) }", "data:text"),
        ('.a { background: image("https://evil.example/x.png") }', "evil.example"),
    ],
)
def test_custom_css_loses_what_could_load_or_run_something(tenant, css, gone):
    warnings = branding.branding_update(tenant=tenant, custom_css=css + " .kept { color: red }")
    kept = branding.brand_context(tenant)["css"]
    assert gone not in kept.lower()
    assert ".kept { color: red; }" in kept
    assert any(w.startswith("Removed from the custom CSS") for w in warnings)


def test_custom_css_nested_too_deeply_is_refused_whole(tenant):
    warnings = branding.branding_update(tenant=tenant, custom_css="@media print {" * 1400)
    assert branding.brand_context(tenant)["css"] == ""
    assert any("nest" in w for w in warnings)


def test_an_svg_attribute_may_only_point_inside_the_image():
    from tenants.svg import clean_svg

    cleaned = clean_svg(
        b'<svg xmlns="http://www.w3.org/2000/svg"><rect fill="url(https://evil.example/a)"/>'
        b'<rect id="r" fill="url(#grad)" filter="url( \'https://x.example\' )"/></svg>'
    )
    svg = cleaned.data.decode()
    assert "evil.example" not in svg and "x.example" not in svg and 'fill="url(#grad)"' in svg
    assert cleaned.removed


def test_custom_css_cannot_close_its_style_element(tenant):
    branding.branding_update(
        tenant=tenant, custom_css='.a::after { content: "</style><script>alert(1)</script>" }'
    )
    css = branding.brand_context(tenant)["css"]
    assert "<" not in css and "\\3c /style>" in css


def test_good_css_is_kept(tenant):
    good = (
        "@media (max-width: 600px) { .weft-header { padding: 2px; } }\n"
        "@font-face { font-family: Brand; src: url(https://fonts.example/brand.woff2); }\n"
        ".weft-header { font-family: Brand, sans-serif; background-image: "
        "url(data:image/png;base64,AAAA); }"
    )
    assert branding.branding_update(tenant=tenant, custom_css=good) == []
    css = branding.brand_context(tenant)["css"]
    assert "@media (max-width: 600px)" in css and "fonts.example/brand.woff2" in css
    assert "data:image/png;base64,AAAA" in css


def test_custom_css_is_capped(tenant, settings):
    settings.WEFT_BRAND_CSS_MAX_BYTES = 100
    with pytest.raises(InvalidInput, match="at most"):
        branding.branding_update(tenant=tenant, custom_css=".a { color: red } " * 20)


def test_the_portal_uses_the_cleaned_css(client, tenant):
    from apps.models import App
    from apps.services.apps import app_create

    app = app_create(tenant=tenant, name="Styled", mode=App.Mode.CHAT)
    branding.branding_update(tenant=tenant, custom_css=".weft-header { letter-spacing: 1px }")
    # A row written around the service is cleaned again on the way out.
    Branding.dangerously_unscoped.filter(tenant=tenant).update(
        custom_css="@import url(https://evil.example/x.css); .x { color: blue }"
    )
    body = client.get(f"/c/{app.site.code}/").content.decode()
    assert "evil.example" not in body and ".x { color: blue; }" in body


SVG = b"""<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     onload="alert(1)" viewBox="0 0 10 10"><script>alert(1)</script>
<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>
<a href="javascript:alert(1)"><rect width="1" height="1"/></a>
<use xlink:href="https://evil.example/x.svg#a"/><use href="#mark"/><text>&xxe;</text>
<style>@import url(https://evil.example/x.css);</style>
<circle id="mark" r="4" fill="#155EEF" onclick="alert(2)" style="fill:url(https://x.example)"/></svg>"""


def test_an_svg_logo_keeps_its_drawing_and_loses_the_rest(client, tenant):
    branding.branding_update(tenant=tenant, logo=SVG)
    response = client.get(f"/branding/{tenant.pk}/logo")
    assert response["Content-Type"] == "image/svg+xml"
    assert "sandbox" in response["Content-Security-Policy"]
    svg = response.content.decode()
    assert '<circle id="mark" r="4" fill="#155EEF"/>' in svg and '<use href="#mark"/>' in svg
    for gone in (
        "script",
        "onload",
        "onclick",
        "foreignObject",
        "javascript",
        "evil.example",
        "passwd",
        "ENTITY",
        "@import",
        "url(",
    ):
        assert gone not in svg, gone
