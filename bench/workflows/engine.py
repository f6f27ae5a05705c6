"""Workflow engine overhead and parallelism, as ratios to baselines measured in the same run.

1. A chain of N cheap nodes (variable-aggregator, each passing the previous value on), run
   through `runner.run_execute` (recorded to PostgreSQL, streamed to Redis, traced), and by
   the bare engine with no sinks, against a plain Python loop doing the same work (take the
   first non-empty value of a list, N times): the engine's cost per node.
2. A fan-out of B parallel branches, each an LLM node whose model (the fake OpenAI server,
   run as its own process) answers after 100 ms: the run's wall time against 100 ms.

    .venv/bin/python bench/workflows/engine.py [--nodes 200] [--branches 50] [--repeat 5]

The database must be migrated; a throwaway tenant is made and deleted.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("WEFT_OUTBOUND_ALLOWLIST", "127.0.0.0/8")

import django  # noqa: E402

django.setup()

from asgiref.sync import async_to_sync  # noqa: E402

from bench.bench_stream import start_fake  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from workflows import nodes as _nodes  # noqa: E402, F401 - registers the executors
from workflows import services  # noqa: E402
from workflows.dsl import WorkflowSpec  # noqa: E402
from workflows.engine import RunContext, RuntimeGraph, VariablePool, WorkflowRun  # noqa: E402
from workflows.runner import run_create, run_execute  # noqa: E402

LLM_DELAY = 0.1


def node(node_id: str, node_type: str, **data) -> dict:
    return {"id": node_id, "type": "custom", "data": {"type": node_type, "title": node_id, **data}}


def edge(source: str, target: str) -> dict:
    return {
        "id": f"{source}-{target}",
        "source": source,
        "target": target,
        "sourceHandle": "source",
    }


def chain_spec(count: int) -> WorkflowSpec:
    variables = [{"variable": "x", "label": "x", "type": "text-input", "max_length": 100}]
    nodes = [node("start", "start", variables=variables)]
    previous = ["start", "x"]
    for i in range(count):
        nodes.append(node(f"n{i}", "variable-aggregator", variables=[previous]))
        previous = [f"n{i}", "output"]
    nodes.append(node("end", "end", outputs=[{"variable": "x", "value_selector": previous}]))
    ids = [n["id"] for n in nodes]
    edges = [edge(a, b) for a, b in itertools.pairwise(ids)]
    return WorkflowSpec.model_validate({"graph": {"nodes": nodes, "edges": edges}})


def fan_out_spec(branches: int, model: str) -> WorkflowSpec:
    llm = {
        "model": {"provider": "openai_api_compatible", "name": model, "mode": "chat"},
        "prompt_template": [{"role": "user", "text": "Say hi"}],
    }
    nodes = [node("start", "start", variables=[])]
    nodes += [node(f"llm{i}", "llm", **llm) for i in range(branches)]
    outputs = [
        {"variable": f"o{i}", "value_selector": [f"llm{i}", "text"]} for i in range(branches)
    ]
    nodes.append(node("end", "end", outputs=outputs))
    edges = [edge("start", f"llm{i}") for i in range(branches)]
    edges += [edge(f"llm{i}", "end") for i in range(branches)]
    return WorkflowSpec.model_validate({"graph": {"nodes": nodes, "edges": edges}})


def plain_loop(count: int) -> float:
    """The chain's work without the engine: pick the first non-empty value, N times."""
    started = time.perf_counter()
    values = {"start": {"x": "hello"}}
    previous = ("start", "x")
    for i in range(count):
        candidates = [values[previous[0]][previous[1]]]
        values[f"n{i}"] = {"output": next(v for v in candidates if v is not None)}
        previous = (f"n{i}", "output")
    assert values[previous[0]]["output"] == "hello"
    return time.perf_counter() - started


def bare_engine(spec: WorkflowSpec) -> float:
    graph = RuntimeGraph.build(spec.graph)

    async def go() -> float:
        started = time.perf_counter()
        run = WorkflowRun(
            graph, RunContext(workflow_id="bench", inputs={"x": "hello"}), VariablePool()
        )
        async for _ in run.events({"x": "hello"}):
            pass
        assert run.status == "succeeded", run.error
        return time.perf_counter() - started

    return async_to_sync(go)()


def recorded(tenant: Tenant, workflow, inputs: dict) -> float:
    run = run_create(tenant=tenant, workflow=workflow, inputs=inputs)
    started = time.perf_counter()
    row = async_to_sync(run_execute)(run.pk)
    elapsed = time.perf_counter() - started
    assert row.status == "succeeded", row.error
    return elapsed


def fake_model(tenant: Tenant) -> tuple[object, str]:
    """The fake server as an OpenAI-compatible credential and chat model of the tenant."""
    from providers.models import Model, ModelKind, ProviderCredential, ProviderKind
    from tenants.context import tenant_context

    process, url, key = start_fake()
    with tenant_context(tenant):
        credential = ProviderCredential(
            name="fake",
            kind=ProviderKind.OPENAI_COMPATIBLE,
            base_url=url,
            options={"headers": {"X-Fake-Scenario": f"first_token_latency={LLM_DELAY},words=3"}},
        )
        credential.secret = key
        credential.save()
        Model.objects.create(
            tenant=tenant,
            provider=ProviderKind.OPENAI_COMPATIBLE,
            credential=credential,
            name="gpt-4o-mini",
            kind=ModelKind.CHAT,
        )
    return process, "gpt-4o-mini"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    tenant = Tenant.objects.create(slug=f"bench-{suffix}", name=f"Bench {suffix}")
    fake = None
    try:
        spec = chain_spec(args.nodes)
        workflow = services.workflow_create(tenant=tenant, name="chain", spec=spec)
        bare_engine(spec)  # warm imports and caches
        loop = statistics.median(plain_loop(args.nodes) for _ in range(args.repeat))
        bare = statistics.median(bare_engine(spec) for _ in range(args.repeat))
        full = statistics.median(
            recorded(tenant, workflow, {"x": "hello"}) for _ in range(args.repeat)
        )
        steps = args.nodes + 2
        print(
            f"chain of {args.nodes} variable-aggregator nodes (+ start, end), median of "
            f"{args.repeat} runs"
        )
        print(f"{'':36} {'total ms':>10} {'ms/node':>9} {'vs loop':>9}")
        for label, seconds in (
            ("plain Python loop (baseline)", loop),
            ("engine, no sinks", bare),
            ("engine, recorded + streamed + traced", full),
        ):
            print(
                f"{label:36} {seconds * 1000:>10.2f} {seconds * 1000 / steps:>9.3f} "
                f"{seconds / loop:>8.0f}x"
            )
        print(
            f"engine overhead per node: {(bare - loop) * 1000 / steps:.3f} ms bare, "
            f"{(full - loop) * 1000 / steps:.3f} ms recorded"
        )

        fake, model = fake_model(tenant)
        fan = services.workflow_create(
            tenant=tenant, name="fan-out", spec=fan_out_spec(args.branches, model)
        )
        recorded(tenant, fan, {})  # warm the connection pool
        wall = statistics.median(recorded(tenant, fan, {}) for _ in range(args.repeat))
        print(
            f"fan-out of {args.branches} LLM branches, each answering after "
            f"{LLM_DELAY * 1000:.0f} ms: {wall * 1000:.0f} ms wall, "
            f"{wall / LLM_DELAY:.2f}x one call (serial would be {args.branches}x)"
        )
    finally:
        if fake is not None:
            fake.terminate()
        tenant.delete()


if __name__ == "__main__":
    main()
