"""What the Service API adds to a model call, on one Daphne process, against the fake OpenAI
server on loopback (run as its own process, so it shares no interpreter with either side).

    .venv/bin/python bench/api/chat.py [--requests 200] [--streams 1000]

A throwaway tenant gets an OpenAI-compatible credential for the fake, a chat app on its model,
published, and an `app-` key. Then, each as a ratio to the same call made straight to the fake
(the baseline, measured in the same run):

- blocking `POST /v1/chat-messages` against `POST /v1/chat/completions`: p50 and p95 latency
  and requests per second, with 1 and with 50 clients at once;
- streaming: time to the first `message` event against the fake's first content chunk;
- memory: Daphne's resident memory with `--streams` SSE streams open at once (their answers
  held back by a second fake that waits before its first token), per stream.

The database must be migrated (`.venv/bin/python manage.py migrate`). The tenant is deleted
at the end, even on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fake-chat"
QUERY = "Tell me about the weather in Paris this afternoon"


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def raise_file_limit() -> None:
    """Thousands of sockets: the soft limit up to the hard one (children inherit it)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_fake(first_token_latency: float = 0.0) -> tuple[subprocess.Popen, str, str]:
    """The fake LLM in its own process: (process, OpenAI base URL, key)."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "tests.fake_llm",
            "--port",
            "0",
            "--first-token-latency",
            str(first_token_latency),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    key = url = ""
    deadline = time.monotonic() + 20
    while not url:
        line = process.stdout.readline()
        if not line or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the fake LLM did not start")
        if "API key" in line:
            key = line.rsplit(" ", 1)[1].strip()
        if "OpenAI base URL" in line:
            url = line.rsplit(" ", 1)[1].strip()
    return process, url, key


def start_daphne(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "WEFT_OUTBOUND_ALLOWLIST": "127.0.0.0/8",
        "WEFT_APP_API_RPM": "0",
        "WEFT_APP_END_USER_RPM": "0",
        "WEFT_APP_MAX_ACTIVE_REQUESTS": "0",
    }
    process = subprocess.Popen(  # noqa: S603 - the venv's daphne
        [
            str(Path(sys.executable).parent / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        # BENCH_DAPHNE_LOG=file keeps the server's log, to see why a request failed.
        stderr=open(os.environ.get("BENCH_DAPHNE_LOG", os.devnull), "w"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # Up once it answers (503 too: no Celery worker runs beside it here).
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("Daphne did not start")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def make_app(tenant, base_url: str, key: str, name: str) -> str:
    """A published chat app on the fake's model; its raw `app-` key."""
    from apps.services.apps import app_create, app_publish
    from providers.models import Model, ModelKind, ProviderCredential, ProviderKind
    from tenants import services as tenant_services
    from tenants.context import tenant_context
    from tenants.models import ApiKey

    with tenant_context(tenant):
        credential = ProviderCredential(
            kind=ProviderKind.OPENAI_COMPATIBLE, name=f"fake {name}", base_url=base_url
        )
        credential.secret = key
        credential.save()
        Model.objects.create(
            tenant=tenant,
            provider=ProviderKind.OPENAI_COMPATIBLE,
            credential=credential,
            name=MODEL,
            kind=ModelKind.CHAT,
        )
    config = {
        "model": {"provider": ProviderKind.OPENAI_COMPATIBLE.value, "name": MODEL, "mode": "chat"},
        "memory": {"window": {"enabled": False, "size": 1}},
    }
    app = app_create(tenant=tenant, name=name, mode="chat", config=config)
    app_publish(tenant=tenant, app=app)
    return tenant_services.api_key_create(
        tenant=tenant,
        kind=ApiKey.Kind.APP,
        app_id=app.pk,
        principal=tenant_services.PLATFORM,
    )[1]


async def timed_batch(
    call: Callable[[int], Awaitable[None]], requests: int, concurrency: int
) -> tuple[list[float], float]:
    """Each call's seconds, and the batch's wall time."""
    gate = asyncio.Semaphore(concurrency)
    times: list[float] = []

    async def one(index: int) -> None:
        async with gate:
            started = time.perf_counter()
            await call(index)
            times.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return times, time.perf_counter() - started


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def measure(args, fake_url: str, fake_key: str, api: str, app_key: str) -> list[str]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
    lines = []
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def direct(index: int, stream: bool = False) -> None:
            response = await client.post(
                f"{fake_url}/chat/completions",
                headers={"Authorization": f"Bearer {fake_key}"},
                json={"model": MODEL, "messages": [{"role": "user", "content": QUERY}]},
            )
            response.raise_for_status()

        async def blocking(index: int) -> None:
            response = await client.post(
                f"{api}/v1/chat-messages",
                headers={"Authorization": f"Bearer {app_key}"},
                json={
                    "inputs": {},
                    "query": QUERY,
                    "user": f"bench-{index}",
                    "response_mode": "blocking",
                },
            )
            if response.status_code != 200:
                status = response.status_code
                raise RuntimeError(f"chat-messages answered {status}: {response.text}")

        for warm in range(5):
            await direct(warm)
            await blocking(warm)
        lines.append(
            f"{'':<34}{'p50 ms':>9}{'p95 ms':>9}{'req/s':>9}{'p50 ratio':>11}{'p95 ratio':>11}"
        )
        for concurrency in (1, 50):
            base, base_wall = await timed_batch(direct, args.requests, concurrency)
            ours, our_wall = await timed_batch(blocking, args.requests, concurrency)
            for label, values, wall in (
                (f"fake LLM direct, {concurrency} at once", base, base_wall),
                (f"chat-messages blocking, {concurrency} at once", ours, our_wall),
            ):
                lines.append(
                    f"{label:<34}{p(values, 50) * 1000:>9.2f}{p(values, 95) * 1000:>9.2f}"
                    f"{len(values) / wall:>9.0f}{p(values, 50) / p(base, 50):>10.1f}x"
                    f"{p(values, 95) / p(base, 95):>10.1f}x"
                )
            lines.append(
                f"  added at {concurrency} at once: p50 "
                f"{(p(ours, 50) - p(base, 50)) * 1000:.1f} ms, p95 "
                f"{(p(ours, 95) - p(base, 95)) * 1000:.1f} ms"
            )

        async def first_direct() -> float:
            started = time.perf_counter()
            async with client.stream(
                "POST",
                f"{fake_url}/chat/completions",
                headers={"Authorization": f"Bearer {fake_key}"},
                json={
                    "model": MODEL,
                    "stream": True,
                    "messages": [{"role": "user", "content": QUERY}],
                },
            ) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {") and '"content"' in line:
                        return time.perf_counter() - started
            raise RuntimeError("no content chunk")

        async def first_ours() -> float:
            started = time.perf_counter()
            async with client.stream(
                "POST",
                f"{api}/v1/chat-messages",
                headers={"Authorization": f"Bearer {app_key}"},
                json={"inputs": {}, "query": QUERY, "user": "ttft", "response_mode": "streaming"},
            ) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and json.loads(line[6:])["event"] == "message":
                        return time.perf_counter() - started
            raise RuntimeError("no message event")

        base_first = [await first_direct() for _ in range(args.requests // 4)]
        our_first = [await first_ours() for _ in range(args.requests // 4)]
        lines.append(
            f"time to first token: fake direct p50 {p(base_first, 50) * 1000:.2f} ms, "
            f"through chat-messages p50 {p(our_first, 50) * 1000:.2f} ms "
            f"(added {(p(our_first, 50) - p(base_first, 50)) * 1000:.1f} ms, "
            f"{p(our_first, 50) / p(base_first, 50):.1f}x); p95 {p(base_first, 95) * 1000:.2f} "
            f"vs {p(our_first, 95) * 1000:.2f} ms"
        )
    return lines


async def hold_streams(api: str, app_key: str, count: int, pid: int) -> list[str]:
    """Open `count` streams that stay open (the model waits), then read Daphne's memory."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    before = rss_kb(pid)
    opened = 0
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        ready = asyncio.Event()
        release = asyncio.Event()

        async def one(index: int) -> None:
            nonlocal opened
            async with client.stream(
                "POST",
                f"{api}/v1/chat-messages",
                headers={"Authorization": f"Bearer {app_key}"},
                json={
                    "inputs": {},
                    "query": QUERY,
                    "user": f"hold-{index}",
                    "response_mode": "streaming",
                },
            ) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"stream {index}: {response.status_code}")
                opened += 1
                if opened == count:
                    ready.set()
                await release.wait()

        tasks = [asyncio.create_task(one(i)) for i in range(count)]
        await asyncio.wait_for(ready.wait(), timeout=240)
        open_seconds = time.perf_counter() - started
        await asyncio.sleep(2)  # let every run reach its model call
        during = rss_kb(pid)
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    per_stream = (during - before) / count
    return [
        f"{count} SSE streams open at once on one Daphne process (opened in {open_seconds:.1f} s): "
        f"resident memory {before / 1024:.0f} MB before, {during / 1024:.0f} MB with them open, "
        f"{per_stream:.0f} KB per stream"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--streams", type=int, default=1000)
    args = parser.parse_args()
    raise_file_limit()
    setup_django()
    from tenants.models import Tenant

    fake, fake_url, fake_key = start_fake()
    slow, slow_url, slow_key = start_fake(first_token_latency=120.0)
    suffix = uuid.uuid4().hex[:8]
    tenant = Tenant.objects.create(slug=f"bench-{suffix}", name=f"Bench {suffix}")
    port = free_port()
    daphne = None
    try:
        app_key = make_app(tenant, fake_url, fake_key, "Bench chat")
        held_key = make_app(tenant, slow_url, slow_key, "Bench held chat")
        daphne = start_daphne(port)
        api = f"http://127.0.0.1:{port}"
        for line in asyncio.run(measure(args, fake_url, fake_key, api, app_key)):
            print(line, flush=True)
        if args.streams:
            for line in asyncio.run(hold_streams(api, held_key, args.streams, daphne.pid)):
                print(line, flush=True)
    finally:
        for process in (daphne, fake, slow):
            if process is not None:
                process.kill()
                process.wait()
        tenant.delete()


if __name__ == "__main__":
    main()
