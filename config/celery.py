"""The Celery app. Workers run `celery -A config worker`, beat `celery -A config beat`.

Every worker's main process writes a heartbeat key to Redis (`weft:worker:heartbeat:<node>`)
every CELERY_WORKER_HEARTBEAT_SECONDS, with a time to live of three intervals; `/healthz`
reports the workers whose key is present. The beat rides the worker's own timer (its event
loop under the prefork pool), so a wedged main process stops beating and drops out.

Queues: default, indexing, workflows, triggers (see QUEUES); `manage.py up` consumes all.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time

import redis
from celery import Celery, bootsteps
from kombu import Queue
from redis.backoff import NoBackoff
from redis.retry import Retry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

QUEUES = ("default", "indexing", "workflows", "triggers")
HEARTBEAT_KEY_PREFIX = "weft:worker:heartbeat:"
# Redis calls from the worker's timer must not stall its event loop for long.
HEARTBEAT_REDIS_TIMEOUT = 2.0


def heartbeat_key(hostname: str) -> str:
    return f"{HEARTBEAT_KEY_PREFIX}{hostname}"


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Write this worker's heartbeat key now and every interval; delete it when stopping.

    A consumer step, started once the worker consumes its queues and stopped (key deleted)
    when it loses the broker or shuts down.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, consumer, **kwargs) -> None:
        super().__init__(consumer, **kwargs)
        self.tref = None
        self.client: redis.Redis | None = None
        self.key = heartbeat_key(consumer.hostname)

    def start(self, consumer) -> None:
        from django.conf import settings

        self.interval = float(settings.CELERY_WORKER_HEARTBEAT_SECONDS)
        self.ttl = max(1, round(3 * self.interval))
        self.client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=HEARTBEAT_REDIS_TIMEOUT,
            socket_connect_timeout=HEARTBEAT_REDIS_TIMEOUT,
            # No retries with backoff inside a beat: the next beat is the retry.
            retry=Retry(NoBackoff(), 0),
        )
        self.payload = {
            "hostname": consumer.hostname,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        self.beat()
        self.tref = consumer.timer.call_repeatedly(self.interval, self.beat)

    def beat(self) -> None:
        if self.client is None:
            return
        try:
            self.client.set(self.key, json.dumps({**self.payload, "at": time.time()}), ex=self.ttl)
        except (redis.RedisError, OSError) as exc:
            # A missed beat shows on /healthz; the worker itself keeps going.
            logger.warning("worker heartbeat not written: %s", exc)

    def stop(self, consumer) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.client is not None:
            try:
                self.client.delete(self.key)
            except (redis.RedisError, OSError) as exc:
                logger.warning("worker heartbeat not removed: %s", exc)
            self.client.close()
            self.client = None

    shutdown = stop


app = Celery("weft")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each queue gets its own routing key: with one shared key, a message would reach them all.
app.conf.task_queues = [Queue(name, routing_key=name) for name in QUEUES]
app.steps["consumer"].add(WorkerHeartbeat)
app.autodiscover_tasks()
