"""/healthz against the real database, Redis and a real worker's heartbeat."""

import socket
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.conf import settings as django_settings

from config.celery import HEARTBEAT_KEY_PREFIX, app, heartbeat_key
from config.health import CHECK_TIMEOUT

# A Redis database of the tests' own: no worker of a running `manage.py up` counts here, and
# deleting heartbeats here deletes none of its.
HEALTH_TEST_REDIS_DB = 13


def with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":  # unix:///path?db=N (urlunsplit would drop the empty host)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def delete_heartbeats(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{HEARTBEAT_KEY_PREFIX}*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def heartbeat_redis(settings):
    """settings.REDIS_URL pointed at the tests' own Redis database, with no heartbeats in it."""
    settings.REDIS_URL = with_redis_db(django_settings.REDIS_URL, HEALTH_TEST_REDIS_DB)
    delete_heartbeats(settings.REDIS_URL)
    yield settings.REDIS_URL
    delete_heartbeats(settings.REDIS_URL)


@pytest.mark.django_db(transaction=True)  # the worker closes connections when it starts
def test_healthy_with_a_running_worker(client, heartbeat_redis):
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["weft-health-test"]) as w:
        key = heartbeat_key(w.hostname)
        assert redis.Redis.from_url(heartbeat_redis).ttl(key) > 0

        response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "worker": True,
    }
    assert w.hostname in body["checks"]["worker"]["workers"]
    # A worker that stops takes its heartbeat with it.
    assert not redis.Redis.from_url(heartbeat_redis).exists(key)


def test_no_worker_heartbeat_fails_naming_worker(client, db, heartbeat_redis):
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["failed"] == ["worker"]
    assert body["checks"]["worker"] == {
        "ok": False,
        "error": "no worker heartbeat",
        "ms": body["checks"]["worker"]["ms"],
    }
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True


def test_expired_heartbeat_does_not_count(client, db, heartbeat_redis):
    client_redis = redis.Redis.from_url(heartbeat_redis)
    client_redis.set(heartbeat_key("celery@gone"), '{"at": 0}', px=50)
    time.sleep(0.1)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["worker"]


def test_unreachable_redis_fails_naming_redis(client, db, settings, tmp_path):
    settings.REDIS_URL = f"unix://{tmp_path}/no-redis.sock?db=0"

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert "redis" in body["failed"]
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    # The public answer names the error, not the socket path behind it.
    assert str(tmp_path) not in response.content.decode()


def test_silent_redis_fails_within_the_timeout(client, db, settings, tmp_path):
    # A socket that accepts connections but never answers: only the timeout ends the check.
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(path))
        silent.listen(8)
        settings.REDIS_URL = f"unix://{path}?db=0"

        started = time.monotonic()
        response = client.get("/healthz")
        elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert "redis" in response.json()["failed"]
    assert elapsed < CHECK_TIMEOUT + 1.5
