# syntax=docker/dockerfile:1
# Weft: one image for every process (web, worker, beat, migrate); see docker-compose.yml.
FROM python:3.11-slim-bookworm

COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /bin/uv

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/weft/venv \
    PATH=/opt/weft/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=config.settings \
    WEFT_DATA_DIR=/data

WORKDIR /app

# Pango and a font for WeasyPrint, which renders invoices.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, from the lock file alone, so code changes reuse this layer.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-project

COPY . .

RUN useradd --system --uid 10001 --home-dir /app weft \
    && mkdir -p /data \
    && chown weft:weft /data
USER weft

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "config.asgi:application"]
