"""Code sandbox latency and throughput, against a baseline measured in the same run: a bare
`subprocess.run([sys.executable, "-c", …])` doing the same work (unconfined, so the cheapest
way to get a fresh process per execution).

Latency: p50/p95 of one trivial `main` at a time, back to back (the pool's replacements race
the next request) and paced 10 ms apart (a warm worker is always waiting).
Throughput: N executions started at once with asyncio.gather, run at most `--workers` at a
time by the pool, and N subprocesses started at once for the baseline.

    .venv/bin/python bench/workflows/sandbox.py --runs 200 --workers 2 --concurrent 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from workflows.sandbox import SandboxOptions, SandboxPool

CODE = "def main(a: int, b: int) -> dict:\n    return {'sum': a + b}\n"
BASELINE = CODE + (
    "import json, sys\nprint(json.dumps(main(**json.loads(sys.argv[1]))))\n"
)  # the same main, called the way the sandbox does
INPUTS = {"a": 20, "b": 22}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


async def pool_latency(pool: SandboxPool, runs: int, pause: float) -> list[float]:
    samples = []
    for _ in range(runs):
        if pause:
            await asyncio.sleep(pause)
        started = time.perf_counter()
        result = await pool.run(CODE, INPUTS)
        samples.append(time.perf_counter() - started)
        assert result.outputs == {"sum": 42}
    return samples


def subprocess_once() -> None:
    completed = subprocess.run(  # noqa: S603 (this interpreter, our own code)
        [sys.executable, "-c", BASELINE, json.dumps(INPUTS)],
        capture_output=True,
        check=True,
    )
    assert json.loads(completed.stdout) == {"sum": 42}


def subprocess_latency(runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess_once()
        samples.append(time.perf_counter() - started)
    return samples


async def pool_throughput(pool: SandboxPool, count: int) -> float:
    started = time.perf_counter()
    results = await asyncio.gather(*(pool.run(CODE, INPUTS) for _ in range(count)))
    elapsed = time.perf_counter() - started
    assert all(result.outputs == {"sum": 42} for result in results)
    return count / elapsed


async def subprocess_throughput(count: int) -> float:
    async def once() -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            BASELINE,
            json.dumps(INPUTS),
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await process.communicate()
        assert json.loads(stdout) == {"sum": 42}

    started = time.perf_counter()
    await asyncio.gather(*(once() for _ in range(count)))
    return count / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="sequential executions")
    parser.add_argument("--baseline-runs", type=int, default=40, help="sequential subprocesses")
    parser.add_argument("--workers", type=int, default=2, help="pool size")
    parser.add_argument("--concurrent", type=int, default=64, help="executions started at once")
    args = parser.parse_args()

    pool = SandboxPool(SandboxOptions(workers=args.workers))
    try:
        started = time.perf_counter()
        await pool.run(CODE, INPUTS)
        print(f"pool start + first execution: {(time.perf_counter() - started) * 1000:.0f} ms")
        await asyncio.sleep(0.5)

        base50, base95 = percentiles(subprocess_latency(args.baseline_runs))
        print(f"subprocess.run baseline   p50 {base50:7.2f} ms  p95 {base95:7.2f} ms")
        for label, pause in (("back to back", 0.0), ("paced 10 ms", 0.01)):
            p50, p95 = percentiles(await pool_latency(pool, args.runs, pause))
            print(
                f"pool, {label:<13}    p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
                f"(baseline/pool: p50 x{base50 / p50:.1f}, p95 x{base95 / p95:.1f})"
            )

        await asyncio.sleep(0.5)
        pool_rate = await pool_throughput(pool, args.concurrent)
        base_rate = await subprocess_throughput(args.concurrent)
        print(
            f"throughput, {args.concurrent} at once: pool ({args.workers} workers) "
            f"{pool_rate:.0f}/s, subprocesses {base_rate:.0f}/s "
            f"(pool/baseline x{pool_rate / base_rate:.1f})"
        )
    finally:
        pool.close()


if __name__ == "__main__":
    asyncio.run(main())
