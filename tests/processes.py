"""Helpers for tests that start real Weft processes (manage.py commands, Celery workers)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit


def database_env() -> dict[str, str]:
    """The environment for a child process that talks to this run's test database (and the
    same Redis and data folder)."""
    from django.conf import settings
    from django.db import connection

    url = urlsplit(settings.DATABASE_URL)._replace(path="/" + connection.settings_dict["NAME"])
    return {
        **os.environ,
        "DATABASE_URL": urlunsplit(url),
        "REDIS_URL": settings.REDIS_URL,
        "WEFT_DATA_DIR": str(settings.DATA_DIR),
    }
