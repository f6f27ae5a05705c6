"""One error envelope on /api/ and /v1/, never an HTML page; unknown hosts answer 404."""

import pytest
from django.test import Client, override_settings

from tests.factories import api_key


def assert_envelope(response, status, code):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert set(body) == {"code", "message", "status"}
    assert body["status"] == status and body["code"] == code
    assert body["message"]
    return body


def test_unknown_api_path_is_json_404(client, tenant):
    _, raw = api_key(tenant)
    assert_envelope(
        client.get("/api/nowhere/", HTTP_AUTHORIZATION=f"Bearer {raw}"), 404, "not_found"
    )
    assert_envelope(client.get("/api/nowhere/"), 404, "not_found")


def test_method_not_allowed_is_json_405(client, tenant):
    _, raw = api_key(tenant)
    response = client.put(
        "/api/tenant/", {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert_envelope(response, 405, "method_not_allowed")


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/test/boom", "/api/test/drf-boom", "/v1/test/boom"])
def test_unexpected_errors_are_json_500_without_details(db, path, debug, caplog):
    client = Client(raise_request_exception=False)
    with override_settings(ROOT_URLCONF="tests.error_urls", DEBUG=debug):
        response = client.get(path)
    body = assert_envelope(response, 500, "internal_error")
    assert "leak" not in body["message"] and "nor this" not in body["message"]
    assert any("unhandled error" in record.getMessage() for record in caplog.records)


def test_missing_tenant_context_is_a_500_not_a_data_leak(db, tenant):
    client = Client(raise_request_exception=False)
    with override_settings(ROOT_URLCONF="tests.error_urls"):
        response = client.get("/api/test/tenantless")
    assert_envelope(response, 500, "internal_error")


def test_unknown_host_is_404(client, db):
    assert client.get("/admin/login/", HTTP_HOST="evil.example.net").status_code == 404
    assert_envelope(client.get("/api/tenant/", HTTP_HOST="evil.example.net"), 404, "not_found")
    assert client.get("/admin/login/", HTTP_HOST="localhost:8000").status_code == 200


def test_console_404_stays_html(client, db):
    response = client.get("/admin-nowhere/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_schema_and_docs_are_published(client, db):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/members/" in text and "/api/keys/" in text and "/api/tenant/" in text
    assert client.get("/api/docs/").status_code == 200


def test_api_paths_take_an_optional_final_slash(client, tenant):
    _, raw = api_key(tenant)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    for path in ("/api/tenant", "/api/tenant/", "/api/members", "/api/keys", "/api/keys/"):
        assert client.get(path, **auth).status_code == 200, path
