"""Every real Dify export without tool or agent nodes imports into a tenant with nothing but
the built-in models, runs to its end, and exports again. Nodes that need the internet (HTTP
calls to public hosts) are the only ones allowed to fail, and they must fail as the node's
clear error, not as a crash."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from tenants.context import tenant_context
from workflows import services
from workflows.dsl import load_dsl
from workflows.models import NodeExecution, Workflow
from workflows.runner import run_create, run_execute

from .conftest import SAMPLES

pytestmark = pytest.mark.django_db

# Errors of nodes that reach the internet, which these machines do not.
OFFLINE_ERRORS = {"outbound_failed", "outbound_timeout", "outbound_blocked"}
# Code that reads a URL with pandas: Weft's sandbox has no network and no pandas, by design
# (requests made for a tenant go through the guarded client, i.e. an HTTP node).
NETWORK_IN_CODE = ("No module named 'pandas'",)


def runnable_samples() -> list:
    if not SAMPLES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason="../shared is not here"))]
    found = []
    for path in sorted(SAMPLES.glob("*.yml")):
        document = load_dsl(path.read_bytes())
        types = {node.data.type for node in document.workflow.graph.nodes}
        if not types & {"tool", "agent"}:
            found.append(pytest.param(path, id=path.stem.split("__", 1)[-1]))
    return found


def sample_inputs(workflow: Workflow, base_url: str) -> dict:
    start = next(n for n in services.spec_of(workflow).graph.nodes if n.data.type == "start")
    inputs = {}
    for variable in start.data.variables:
        kind = variable.type
        if kind in ("text-input", "paragraph"):
            limit = variable.max_length or 48
            inputs[variable.variable] = "How do swept wings change lift at high speed?"[:limit]
        elif kind == "select":
            inputs[variable.variable] = variable.options[0] if variable.options else "a"
        elif kind == "number":
            inputs[variable.variable] = 3
        elif kind == "checkbox":
            inputs[variable.variable] = True
        elif kind in ("file", "file-list"):
            file = {
                "type": "document",
                "transfer_method": "remote_url",
                "url": f"{base_url}/file.md",
                "filename": "notes.md",
            }
            inputs[variable.variable] = file if kind == "file" else [file]
    return inputs


@pytest.mark.parametrize("path", runnable_samples())
def test_sample_imports_runs_and_exports(tenant, path, loopback):
    result = services.workflow_import(tenant=tenant, content=path.read_bytes())
    workflow = result.workflow
    run = run_create(
        tenant=tenant,
        workflow=workflow,
        inputs=sample_inputs(workflow, loopback[0]),
        system={"query": "How do swept wings change lift at high speed?"},
    )
    row = async_to_sync(run_execute)(run.pk)
    with tenant_context(tenant):
        failed = list(
            NodeExecution.objects.filter(run=row, status="failed").values_list(
                "node_id", "error_type", "error"
            )
        )
    if row.status == "failed":
        assert failed, row.error
        assert all(
            error_type in OFFLINE_ERRORS or any(m in error for m in NETWORK_IN_CODE)
            for _, error_type, error in failed
        ), failed
    else:
        assert row.status in ("succeeded", "partial-succeeded"), row.error
        assert row.outputs
    exported = services.workflow_export(workflow)
    assert load_dsl(exported).workflow.graph.nodes
