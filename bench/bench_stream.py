"""Streaming overhead of the model runtime against a raw httpx client, on the same fake
OpenAI server (run as a separate process, so it does not share this one's interpreter).

    .venv/bin/python bench/bench_stream.py [--tokens 2000] [--streams 40] [--concurrency 10]

Both sides stream the same answers; the baseline only splits SSE lines and parses each JSON
chunk, the runtime does everything a call does (guarded client with DNS check, SSE framing,
deltas, usage, error mapping, retry wrapper). Prints times and runtime/baseline ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("WEFT_OUTBOUND_ALLOWLIST", "127.0.0.0/8")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402

from providers.http import guarded_client  # noqa: E402
from providers.runtime import resilience  # noqa: E402
from providers.runtime.openai import OpenAICompatible  # noqa: E402
from providers.runtime.types import ChatMessage, TextDelta  # noqa: E402

MESSAGES = [ChatMessage("user", "stream me a long answer")]


def start_fake() -> tuple[subprocess.Popen, str, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_llm", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    key = url = ""
    while not url:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the fake LLM did not start")
        if match := re.search(r"API key (\S+)", line):
            key = match.group(1)
        if match := re.search(r"OpenAI base URL:\s+(\S+)", line):
            url = match.group(1)
    return process, url, key


async def baseline_stream(client: httpx.AsyncClient, url: str, key: str, tokens: int) -> int:
    payload = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "stream me a long answer"}],
    }
    headers = {"Authorization": f"Bearer {key}", "X-Fake-Scenario": f"words={tokens}"}
    pieces = 0
    async with client.stream("POST", f"{url}/chat/completions", json=payload, headers=headers) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                for choice in chunk.get("choices") or []:
                    if choice.get("delta", {}).get("content"):
                        pieces += 1
    return pieces


async def runtime_stream(client: httpx.AsyncClient, url: str, key: str, tokens: int) -> int:
    impl = OpenAICompatible(
        client=client,
        base_url=url,
        api_key=key,
        model="gpt-4o-mini",
        options={"headers": {"X-Fake-Scenario": f"words={tokens}"}},
    )

    async def open_stream(_target):
        events = impl.chat(MESSAGES)
        first = await anext(events)
        return events, first

    _, (events, first) = await resilience.run([resilience.Target("bench", None)], open_stream)
    pieces = 1 if isinstance(first, TextDelta) else 0
    async for event in events:
        pieces += isinstance(event, TextDelta)
    return pieces


async def measure(
    kind: str, url: str, key: str, tokens: int, streams: int, concurrency: int
) -> float:
    limit = asyncio.Semaphore(concurrency)
    client = guarded_client() if kind == "runtime" else httpx.AsyncClient(timeout=120)
    run = runtime_stream if kind == "runtime" else baseline_stream

    async def one() -> int:
        async with limit:
            return await run(client, url, key, tokens)

    async with client:
        await one()  # warm the connection pool
        started = time.perf_counter()
        counts = await asyncio.gather(*(one() for _ in range(streams)))
        elapsed = time.perf_counter() - started
    assert all(count >= tokens for count in counts), counts[:3]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    process, url, key = start_fake()
    try:
        print(
            f"{options.streams} streams of {options.tokens} tokens, {options.concurrency} at a "
            f"time, best of {options.rounds} rounds (baseline and runtime alternate)"
        )
        best = {"baseline": float("inf"), "runtime": float("inf")}
        for _ in range(options.rounds):
            for kind in ("baseline", "runtime"):
                elapsed = asyncio.run(
                    measure(kind, url, key, options.tokens, options.streams, options.concurrency)
                )
                best[kind] = min(best[kind], elapsed)
        total_tokens = options.tokens * options.streams
        for kind, elapsed in best.items():
            print(f"  {kind:8}  {elapsed:6.2f} s   {total_tokens / elapsed:10,.0f} tokens/s")
        ratio = best["runtime"] / best["baseline"]
        overhead_us = (best["runtime"] - best["baseline"]) / total_tokens * 1e6
        print(f"  runtime / baseline time: {ratio:.2f}x   (+{overhead_us:.1f} µs per token)")
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
