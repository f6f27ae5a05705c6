"""Console sign-in throttling: django-axes locks an e-mail address out after repeated failures."""

import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tenants.roles import Role

LOGIN = "/admin/login/"


@pytest.fixture
def operator(tenant, make_member):
    return make_member(tenant, Role.OPERATOR)


def attempt(client, email, password, **extra):
    return client.post(LOGIN, {"username": email, "password": password}, **extra)


def fail_until_locked(client, email):
    """Wrong passwords up to the limit; returns the responses."""
    return [attempt(client, email, "not the password") for _ in range(settings.AXES_FAILURE_LIMIT)]


def assert_locked_out(response):
    assert response.status_code == 429
    assert "registration/locked_out.html" in [t.name for t in response.templates]
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    text = re.sub(r"\s+", " ", response.content.decode())
    assert f"Too many failed sign-in attempts. Try again in {minutes} minutes" in text
    assert response["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))


def test_lockout_after_failure_limit_refuses_even_the_right_password(operator, password):
    client = Client()
    responses = fail_until_locked(client, operator.email)
    for response in responses[:-1]:
        assert response.status_code == 200
        assert "Please enter the correct e-mail address and password" in response.content.decode()
    assert_locked_out(responses[-1])

    response = attempt(client, operator.email, password)
    assert_locked_out(response)
    assert operator.email in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_lockout_follows_the_address_not_only_the_client(operator, password):
    fail_until_locked(Client(), operator.email)
    elsewhere = attempt(Client(), operator.email, password, REMOTE_ADDR="203.0.113.9")
    assert_locked_out(elsewhere)


def test_lockout_ends_after_the_cool_off(operator, password):
    client = Client()
    fail_until_locked(client, operator.email)
    assert_locked_out(attempt(client, operator.email, password))

    # Let the cool-off pass: every recorded failure is now older than AXES_COOLOFF_TIME.
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(minutes=1)
    )
    response = attempt(client, operator.email, password)
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_admin_reset_lifts_the_lockout(operator, password):
    client = Client()
    fail_until_locked(client, operator.email)
    assert reset(username=operator.email) > 0
    assert reset(ip="127.0.0.1") >= 0
    assert attempt(client, operator.email, password).status_code == 302


def test_success_clears_earlier_failures(operator, password):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, operator.email, "not the password")
    assert attempt(client, operator.email, password).status_code == 302
    client.post("/admin/logout/")

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, operator.email, "not the password").status_code == 200
    assert attempt(client, operator.email, password).status_code == 302


def test_lockout_answers_json_to_scripts(operator):
    client = Client()
    fail_until_locked(client, operator.email)
    response = attempt(client, operator.email, "x", HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "locked_out"
    assert body["status"] == 429
    assert body["message"].startswith("Too many failed sign-in attempts")


def test_sign_in_and_lockout_ignore_the_case_of_the_address(operator, password):
    upper = operator.email.upper()
    assert attempt(Client(), upper, password).status_code == 302  # signed in
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        email = upper if i % 2 else operator.email
        response = attempt(client, email, "not the password", REMOTE_ADDR=f"198.51.100.{i + 1}")
    assert_locked_out(response)
    assert_locked_out(attempt(Client(), upper, password, REMOTE_ADDR="192.0.2.77"))
