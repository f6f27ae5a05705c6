"""Tenant branding: checked values, sniffed images, readable colours, the plan's say on
"Powered by", what pages get, and the public brand images."""

from __future__ import annotations

import pytest

from tenants import branding
from tenants.exceptions import InvalidInput
from tenants.models import Branding

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
        ({"logo": b"GIF89a...."}, "PNG or a JPEG"),
        ({"logo": b"<svg onload=alert(1)></svg>"}, "PNG or a JPEG"),
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
    tenant.white_label_allowed = True
    tenant.save()
    branding.branding_update(tenant=tenant, show_powered_by=False)
    assert branding.brand_context(tenant)["show_powered_by"] is False
    tenant.white_label_allowed = False
    tenant.save()
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
