"""The workflows management API, DRF part: drafts (secrets masked, concurrent edits), Dify DSL
import and export, validation, schema, versions (publish, diff, rollback), reading runs; the
generic contract, and every endpoint's cross-tenant 404, no-permission 403 and 401 (the async
run endpoints included: their own tests are in test_api_runs.py)."""

from __future__ import annotations

import uuid

import pytest
import yaml
from django.utils import timezone

from providers import crypto
from tenants.context import tenant_context
from tenants.roles import Role
from tests.api_contract import TenantEndpointContract, bearer
from tests.factories import TenantFactory, api_key
from workflows import services
from workflows.models import NodeExecution, Workflow, WorkflowRun, WorkflowVersion

from .conftest import llm_data, make_document, make_edge, make_node

pytestmark = pytest.mark.django_db

BASE = "/api/workflows"
SECRET = "sk-very-secret-value-1234"


def echo_graph(*, output: str = "echo") -> dict:
    """start (q, required text) → end (`output` = q), as Dify writes a graph."""
    return {
        "nodes": [
            make_node(
                "start",
                "start",
                variables=[{"variable": "q", "label": "Q", "type": "text-input", "required": True}],
            ),
            make_node(
                "end", "end", outputs=[{"variable": output, "value_selector": ["start", "q"]}]
            ),
        ],
        "edges": [make_edge("start", "end")],
    }


def secret_env(value: str = SECRET) -> list[dict]:
    return [{"name": "api_key", "value_type": "secret", "value": value}]


def make_workflow(tenant, name="Echo", *, graph=None, env=None, **fields) -> Workflow:
    spec = services.parse_spec({"graph": graph or echo_graph(), "environment_variables": env or []})
    return services.workflow_create(tenant=tenant, name=name, spec=spec, **fields)


def make_run(workflow, *, status=WorkflowRun.Status.SUCCEEDED, nodes=2, **fields) -> WorkflowRun:
    """A finished run row with `nodes` node executions (written as the recorder would)."""
    run = WorkflowRun.dangerously_unscoped.create(
        tenant_id=workflow.tenant_id,
        workflow=workflow,
        graph=workflow.graph,
        status=status,
        inputs={"q": "hi"},
        outputs={"echo": "hi"},
        finished_at=timezone.now(),
        **fields,
    )
    NodeExecution.dangerously_unscoped.bulk_create(
        NodeExecution(
            tenant_id=workflow.tenant_id,
            run=run,
            execution_id=uuid.uuid4(),
            node_id=f"n{index}",
            node_type="start",
            index=index,
            status="succeeded",
            created_at=timezone.now(),
        )
        # Written out of order: the API gives them in the order they started.
        for index in reversed(range(1, nodes + 1))
    )
    return run


def auth(tenant, role):
    return bearer(api_key(tenant, role=role)[1])


def warm(client, headers):
    """Use the key once, so that counted requests do not include recording its first use."""
    assert client.get(f"{BASE}/schema", **headers).status_code == 200


@pytest.fixture
def builder(tenant):
    return auth(tenant, Role.BUILDER)


@pytest.fixture
def operator(tenant):
    return auth(tenant, Role.OPERATOR)


def post(client, url, data, headers):
    return client.post(url, data, content_type="application/json", **headers)


def patch(client, url, data, headers):
    return client.patch(url, data, content_type="application/json", **headers)


# --- The generic contract, and every endpoint ---------------------------------------------


class TestWorkflowsEndpoint(TenantEndpointContract):
    list_url = f"{BASE}/"
    allowed_role = Role.OPERATOR
    denied_role = Role.MEMBER

    def make_object(self, tenant):
        return make_workflow(tenant)


# (method, path, what the endpoint needs); {wf} and {run} are filled in per test.
OBJECT_ENDPOINTS = [
    ("get", "/{wf}/", "view"),
    ("patch", "/{wf}/", "manage"),
    ("delete", "/{wf}/", "manage"),
    ("get", "/{wf}/export", "view"),
    ("post", "/{wf}/validate", "view"),
    ("post", "/{wf}/publish", "manage"),
    ("get", "/{wf}/versions/", "view"),
    ("get", "/{wf}/versions/1", "view"),
    ("get", "/{wf}/versions/1/diff?against=draft", "view"),
    ("post", "/{wf}/versions/1/rollback", "manage"),
    ("get", "/{wf}/runs/", "view"),
    ("post", "/{wf}/run", "run"),
    ("get", "/runs/{run}", "view"),
    ("get", "/runs/{run}/events", "view"),
    ("post", "/runs/{run}/stop", "run"),
    ("post", "/runs/{run}/resume", "run"),
]
TENANT_ENDPOINTS = [
    ("get", "/", "view"),
    ("post", "/", "manage"),
    ("post", "/import", "manage"),
    ("get", "/schema", "view"),
]
# The highest role each permission leaves out.
WITHOUT = {"view": Role.MEMBER, "run": Role.MEMBER, "manage": Role.OPERATOR}
BODIES = {
    "/": {"name": "New", "graph": echo_graph()},
    "/{wf}/": {"name": "Renamed"},
    "/{wf}/run": {"inputs": {"q": "hi"}},
    "/runs/{run}/resume": {"inputs": {"decision": "yes"}},
    "/import": {"content": yaml.safe_dump(make_document(**echo_graph()))},
}


@pytest.fixture
def published(tenant):
    """A workflow with version 1 and a finished run."""
    workflow = make_workflow(tenant)
    services.workflow_publish(tenant=tenant, workflow=workflow)
    return workflow, make_run(workflow)


def call(client, method, template, headers, workflow=None, run=None):
    url = BASE + template.format(wf=getattr(workflow, "pk", ""), run=getattr(run, "pk", ""))
    return getattr(client, method)(
        url, BODIES.get(template, {}), content_type="application/json", **headers
    )


def unchanged(tenant, workflow, run):
    with tenant_context(tenant):
        workflow_now = Workflow.objects.get(pk=workflow.pk)
        assert workflow_now.name == workflow.name and workflow_now.graph == workflow.graph
        assert list(WorkflowVersion.objects.values_list("number", flat=True)) == [1]
        assert list(WorkflowRun.objects.values_list("pk", "status")) == [(run.pk, run.status)]


@pytest.mark.parametrize(("method", "template", "needs"), OBJECT_ENDPOINTS)
def test_another_tenants_objects_are_not_found(client, published, method, template, needs):
    workflow, run = published
    theirs = workflow.tenant
    mine = TenantFactory(slug="mine")
    response = call(client, method, template, auth(mine, Role.OWNER), workflow, run)
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    unchanged(theirs, workflow, run)


@pytest.mark.parametrize(("method", "template", "needs"), OBJECT_ENDPOINTS + TENANT_ENDPOINTS)
def test_a_role_without_the_permission_is_refused(
    client, tenant, published, method, template, needs
):
    workflow, run = published
    response = call(client, method, template, auth(tenant, WITHOUT[needs]), workflow, run)
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "forbidden" and body["status"] == 403
    unchanged(tenant, workflow, run)


@pytest.mark.parametrize(("method", "template", "needs"), OBJECT_ENDPOINTS + TENANT_ENDPOINTS)
def test_no_credentials_is_401(client, published, method, template, needs):
    workflow, run = published
    response = call(client, method, template, {}, workflow, run)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "unauthorized"
    assert response["WWW-Authenticate"] == "Bearer"


# --- Drafts --------------------------------------------------------------------------------


def test_create_read_and_list_keep_secrets_masked(client, tenant, builder):
    created = post(
        client,
        f"{BASE}/",
        {
            "name": "Echo",
            "description": "Says it back",
            "graph": echo_graph(),
            "environment_variables": secret_env(),
        },
        builder,
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert SECRET not in created.content.decode()
    assert body["environment_variables"][0]["value"].endswith("1234")
    assert body["mode"] == "workflow" and body["latest_version"] is None
    assert [node["id"] for node in body["graph"]["nodes"]] == ["start", "end"]
    stored = Workflow.dangerously_unscoped.get(pk=body["id"])
    assert stored.tenant_id == tenant.pk and stored.draft_checksum == body["draft_checksum"]
    assert crypto.decrypt(stored.environment_variables[0]["value"]) == SECRET

    shown = client.get(f"{BASE}/{stored.pk}", **builder)
    assert shown.json() == body
    listed = client.get(f"{BASE}/", **builder).json()
    assert listed["count"] == 1
    assert set(listed["results"][0]) == {
        "id",
        "name",
        "description",
        "mode",
        "draft_checksum",
        "latest_version",
        "created_at",
        "updated_at",
    }


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (
            {
                "name": "Bad",
                "graph": {"nodes": [{"id": "s", "data": {"type": "start", "variables": 1}}]},
            },
            400,
            "invalid_param",
            "workflow.graph.nodes.0.data.start.variables: Input should be a valid list",
        ),
        (
            {"name": "Bad", "environment_variables": [{"value": "x"}]},
            400,
            "invalid_param",
            "workflow.environment_variables.0.name: Field required",
        ),
        (
            {"name": "Bad", "mode": "chat"},
            400,
            "invalid_param",
            'mode: "chat" is not a valid choice.',
        ),
        ({"graph": echo_graph()}, 400, "invalid_param", "name: This field is required."),
        ({"name": "  "}, 400, "invalid_param", "name: This field may not be blank."),
        ({"name": "Taken"}, 409, "conflict", "name: a workflow called “Taken” already exists."),
    ],
)
def test_bad_drafts_are_refused_naming_the_field(
    client, tenant, builder, body, status, code, message
):
    make_workflow(tenant, "Taken")
    response = post(client, f"{BASE}/", body, builder)
    assert response.status_code == status
    assert response.json() == {"code": code, "message": message, "status": status}
    assert Workflow.dangerously_unscoped.count() == 1


def test_list_filters_paginates_and_costs_the_same_for_more_rows(
    client, tenant, operator, django_assert_num_queries
):
    make_workflow(tenant, "Support triage")
    make_workflow(tenant, "Chat helper", mode=Workflow.Mode.CHATFLOW)
    make_workflow(TenantFactory(slug="other"), "Support elsewhere")

    def names(query):
        response = client.get(f"{BASE}/{query}", **operator)
        assert response.status_code == 200, response.content
        return [row["name"] for row in response.json()["results"]]

    assert names("?name=support") == ["Support triage"]
    assert names("?mode=advanced-chat") == ["Chat helper"]
    assert names("?limit=1&offset=1") == ["Support triage"]
    refused = client.get(f"{BASE}/?mode=chat", **operator)
    assert refused.status_code == 400
    assert refused.json()["message"] == (
        "mode: unknown value “chat”; use one of workflow, advanced-chat."
    )

    with django_assert_num_queries(3) as few:  # key, count, page
        client.get(f"{BASE}/", **operator)
    for index in range(5):
        workflow = make_workflow(tenant, f"More {index}")
        services.workflow_publish(tenant=tenant, workflow=workflow)
    with django_assert_num_queries(len(few.captured_queries)):
        rows = client.get(f"{BASE}/", **operator).json()["results"]
    assert {row["latest_version"] for row in rows} == {None, 1}


def test_update_is_partial_keeps_secrets_and_refuses_stale_drafts(client, tenant, builder):
    workflow = make_workflow(tenant, env=secret_env())
    stored_secret = workflow.environment_variables[0]["value"]
    url = f"{BASE}/{workflow.pk}/"

    renamed = patch(client, url, {"name": "Echo 2", "description": "new"}, builder)
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["draft_checksum"] == workflow.draft_checksum  # the draft is the same
    graph = echo_graph(output="said")
    changed = patch(
        client,
        url,
        {"graph": graph, "expected_checksum": workflow.draft_checksum},
        builder,
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert body["name"] == "Echo 2" and body["description"] == "new"
    assert body["graph"]["nodes"][1]["data"]["outputs"][0]["variable"] == "said"
    assert body["draft_checksum"] != workflow.draft_checksum
    workflow.refresh_from_db()
    # Only the graph was sent: the secret is the one stored, not re-encrypted from its mask.
    assert workflow.environment_variables[0]["value"] == stored_secret

    stale = patch(client, url, {"graph": echo_graph(), "expected_checksum": "0" * 64}, builder)
    assert stale.status_code == 409 and stale.json()["code"] == "conflict"
    assert "changed by someone else" in stale.json()["message"]
    mode = patch(client, url, {"mode": "advanced-chat"}, builder)
    assert mode.status_code == 400
    assert mode.json()["message"] == "mode: a workflow keeps its mode; import or create another."
    bad = patch(client, url, {"graph": {"edges": [{"source": "start"}]}}, builder)
    assert bad.status_code == 400
    assert bad.json()["message"] == "workflow.graph.edges.0.id: Field required (and 1 more)"
    workflow.refresh_from_db()
    assert workflow.graph == services.parse_spec({"graph": graph}).graph.model_dump(
        mode="json", exclude_unset=True
    )


def test_delete_takes_versions_and_runs_with_it(client, tenant, builder, published):
    workflow, run = published
    assert client.delete(f"{BASE}/{workflow.pk}", **builder).status_code == 204
    assert not Workflow.dangerously_unscoped.filter(pk=workflow.pk).exists()
    assert not WorkflowRun.dangerously_unscoped.filter(pk=run.pk).exists()
    assert client.get(f"{BASE}/{workflow.pk}", **builder).status_code == 404


# --- Import and export ---------------------------------------------------------------------


def llm_document(**app) -> dict:
    nodes = [
        make_node("start", "start", variables=[]),
        make_node("llm", "llm", **llm_data("Say hi")),
        make_node("end", "end", outputs=[{"variable": "text", "value_selector": ["llm", "text"]}]),
    ]
    document = make_document(nodes, [make_edge("start", "llm"), make_edge("llm", "end")])
    document["app"].update(app)
    return document


def test_import_as_json_or_file_reports_what_it_mapped(client, tenant, builder):
    content = yaml.safe_dump(llm_document(name="Greeter"))
    created = post(client, f"{BASE}/import", {"content": content}, builder)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["workflow"]["name"] == "Greeter" and body["report"]["version"] == "0.5.0"
    assert body["report"]["warnings"] == [
        {
            "code": "model_mapped",
            "message": "openai/gpt-4o is not set up in this tenant: using the default chat "
            "model weft-offline-chat instead.",
            "node_id": "llm",
            "edge_id": None,
            "field": "data.model",
        }
    ]
    llm = body["workflow"]["graph"]["nodes"][1]["data"]["model"]
    assert (llm["provider"], llm["name"]) == ("offline", "weft-offline-chat")

    upload = client.post(
        f"{BASE}/import",
        {"file": _file(content), "name": "Uploaded"},
        **builder,
    )
    assert upload.status_code == 201, upload.content
    assert upload.json()["workflow"]["name"] == "Uploaded"

    target = make_workflow(tenant, "Target")
    replaced = post(
        client, f"{BASE}/import", {"content": content, "workflow_id": str(target.pk)}, builder
    )
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["workflow"]["id"] == str(target.pk)
    target.refresh_from_db()
    assert [node["id"] for node in target.graph["nodes"]] == ["start", "llm", "end"]
    assert Workflow.dangerously_unscoped.filter(tenant=tenant).count() == 3


def _file(content: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("greeter.yml", content.encode(), content_type="application/x-yaml")


def test_import_of_a_newer_minor_version_warns(client, tenant, builder):
    document = llm_document()
    document["version"] = "0.9.0"
    response = post(client, f"{BASE}/import", {"content": yaml.safe_dump(document)}, builder)
    assert response.status_code == 201, response.content
    newer = [w for w in response.json()["report"]["warnings"] if w["field"] == "version"]
    assert newer and "0.9.0 is newer than 0.5.0" in newer[0]["message"]


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"content": "workflow: [unclosed"}, "invalid_dsl", "line"),
        (
            {"content": "version: '1.0.0'\nkind: app\napp: {mode: workflow}\nworkflow: {}"},
            "invalid_dsl",
            "DSL version 1.0.0 is newer than this importer reads",
        ),
        (
            {"content": "kind: app\napp: {mode: chat, name: c}\nmodel_config: {}"},
            "invalid_dsl",
            "chat",
        ),
        ({}, "invalid_param", "Send the DSL as `content` or as `file`, one of the two."),
        (
            {"content": "x", "workflow_id": "00000000-0000-0000-0000-000000000000"},
            "invalid_param",
            "workflow_id: no workflow with id 00000000-0000-0000-0000-000000000000 in this tenant.",
        ),
    ],
)
def test_import_refuses_bad_files(client, tenant, builder, body, code, fragment):
    response = post(client, f"{BASE}/import", body, builder)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code and fragment in response.json()["message"]
    assert not Workflow.dangerously_unscoped.exists()


def test_import_cannot_replace_another_tenants_draft(client, tenant, builder):
    theirs = make_workflow(TenantFactory(slug="theirs"), "Theirs")
    content = yaml.safe_dump(llm_document())
    response = post(
        client, f"{BASE}/import", {"content": content, "workflow_id": str(theirs.pk)}, builder
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("workflow_id: no workflow with id")
    theirs.refresh_from_db()
    assert [node["id"] for node in theirs.graph["nodes"]] == ["start", "end"]


def test_export_is_yaml_with_secrets_only_for_those_who_manage(client, tenant, builder, operator):
    workflow = make_workflow(tenant, "Echo bot", env=secret_env())
    url = f"{BASE}/{workflow.pk}/export"
    plain = client.get(url, HTTP_ACCEPT="application/x-yaml", **operator)
    assert plain.status_code == 200, plain.content
    assert plain["Content-Type"] == "application/x-yaml; charset=utf-8"
    assert plain["Content-Disposition"] == 'attachment; filename="Echo bot.yml"'
    document = yaml.safe_load(plain.content)
    assert document["app"]["name"] == "Echo bot" and document["kind"] == "app"
    assert document["workflow"]["environment_variables"][0]["value"] == ""
    assert SECRET not in plain.content.decode()

    refused = client.get(f"{url}?include_secrets=true", **operator)
    assert refused.status_code == 403 and refused["Content-Type"] == "application/json"
    assert refused.json()["code"] == "forbidden"
    with_secret = client.get(f"{url}?include_secrets=true", **builder)
    assert (
        yaml.safe_load(with_secret.content)["workflow"]["environment_variables"][0]["value"]
        == SECRET
    )

    # A round trip: the export imports as the same workflow.
    again = post(
        client, f"{BASE}/import", {"content": with_secret.content.decode(), "name": "Copy"}, builder
    )
    assert again.status_code == 201, again.content
    copy = Workflow.dangerously_unscoped.get(pk=again.json()["workflow"]["id"])
    assert copy.draft_checksum == workflow.draft_checksum


def test_export_of_a_version(client, tenant, operator):
    workflow = make_workflow(tenant)
    services.workflow_publish(tenant=tenant, workflow=workflow)
    services.workflow_update(
        tenant=tenant,
        workflow=workflow,
        spec=services.parse_spec({"graph": echo_graph(output="said")}),
    )
    url = f"{BASE}/{workflow.pk}/export"
    version = client.get(f"{url}?version=1", **operator)
    assert version["Content-Disposition"] == 'attachment; filename="Echo-v1.yml"'
    end = yaml.safe_load(version.content)["workflow"]["graph"]["nodes"][1]
    assert end["data"]["outputs"][0]["variable"] == "echo"
    draft = yaml.safe_load(client.get(url, **operator).content)
    assert draft["workflow"]["graph"]["nodes"][1]["data"]["outputs"][0]["variable"] == "said"
    for query, message in [
        ("version=2", "version: this workflow has no version 2."),
        ("version=x", "version: “x” is not a version number (1, 2, …)."),
        ("version=²", "version: “²” is not a version number (1, 2, …)."),
        ("version=99999999999", "version: “99999999999” is not a version number (1, 2, …)."),
        ("include_secrets=maybe", "include_secrets: use true or false."),
    ]:
        response = client.get(f"{url}?{query}", **operator)
        assert response.status_code == 400 and response.json()["message"] == message


# --- Validation and schema -----------------------------------------------------------------


def test_validate_lists_every_error_with_where_it_is(client, tenant, operator):
    good = make_workflow(tenant)
    valid = client.post(f"{BASE}/{good.pk}/validate", **operator)
    assert valid.status_code == 200 and valid.json() == {"valid": True, "errors": []}

    graph = echo_graph()
    graph["nodes"].append(make_node("weird", "no-such-type"))
    graph["edges"].append(make_edge("start", "weird"))
    broken = make_workflow(tenant, "Broken", graph=graph)
    body = client.post(f"{BASE}/{broken.pk}/validate", **operator).json()
    assert body["valid"] is False
    assert {"code", "message", "node_id", "edge_id", "field"} == set(body["errors"][0])
    assert any(
        error["node_id"] == "weird" and "no-such-type" in error["message"]
        for error in body["errors"]
    )


def test_schema_describes_the_dsl(client, tenant, operator):
    workflow = client.get(f"{BASE}/schema", **operator).json()
    assert workflow["$schema"].startswith("https://json-schema.org/")
    assert {"graph", "environment_variables"} <= set(workflow["properties"])
    dsl = client.get(f"{BASE}/schema?of=dsl", **operator).json()
    assert dsl["required"] == ["app", "workflow"]
    graph = client.get(f"{BASE}/schema/?of=graph", **operator).json()
    assert {"nodes", "edges"} <= set(graph["properties"])
    bad = client.get(f"{BASE}/schema?of=yaml", **operator)
    assert bad.status_code == 400 and "use one of workflow, graph, dsl" in bad.json()["message"]


def test_the_api_is_in_the_openapi_schema(client, db):
    paths = yaml.safe_load(client.get("/api/schema/").content)["paths"]
    expected = {
        "/api/workflows/": {"get", "post"},
        "/api/workflows/import/": {"post"},
        "/api/workflows/schema/": {"get"},
        "/api/workflows/{id}/": {"get", "patch", "delete"},
        "/api/workflows/{id}/export/": {"get"},
        "/api/workflows/{id}/validate/": {"post"},
        "/api/workflows/{id}/publish/": {"post"},
        "/api/workflows/{id}/run/": {"post"},
        "/api/workflows/{workflow_pk}/runs/": {"get"},
        "/api/workflows/{workflow_pk}/versions/": {"get"},
        "/api/workflows/{workflow_pk}/versions/{number}/": {"get"},
        "/api/workflows/{workflow_pk}/versions/{number}/diff/": {"get"},
        "/api/workflows/{workflow_pk}/versions/{number}/rollback/": {"post"},
        "/api/workflows/runs/{run_id}/": {"get"},
        "/api/workflows/runs/{run_id}/events/": {"get"},
        "/api/workflows/runs/{run_id}/stop/": {"post"},
        "/api/workflows/runs/{run_id}/resume/": {"post"},
    }
    assert {path: set(paths[path]) for path in expected} == expected
    run = paths["/api/workflows/{id}/run/"]["post"]
    assert set(run["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert set(run["requestBody"]["content"]) == {"application/json"}
    assert run["security"] == [{"managementKey": []}]


# --- Versions ------------------------------------------------------------------------------


def test_publish_numbers_versions_and_refuses_a_broken_draft(client, tenant, builder):
    workflow = make_workflow(tenant, env=secret_env())
    url = f"{BASE}/{workflow.pk}/publish"
    first = post(client, url, {"note": "first"}, builder)
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["number"], body["note"], body["restored_from"]) == (1, "first", None)
    assert body["environment_variables"][0]["value"].endswith("1234")
    assert SECRET not in first.content.decode()
    again = post(client, url, {}, builder)
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert client.get(f"{BASE}/{workflow.pk}", **builder).json()["latest_version"] == 1

    graph = echo_graph()
    graph["nodes"].append(make_node("weird", "no-such-type"))
    graph["edges"].append(make_edge("start", "weird"))
    patch(client, f"{BASE}/{workflow.pk}", {"graph": graph}, builder)
    refused = post(client, url, {"note": "broken"}, builder)
    assert refused.status_code == 400
    envelope = refused.json()
    assert set(envelope) == {"code", "message", "status", "errors"}
    assert envelope["code"] == "workflow_invalid" and envelope["status"] == 400
    assert envelope["message"].startswith("The workflow has errors: weird:")
    weird = [error for error in envelope["errors"] if error["node_id"] == "weird"]
    assert weird and set(weird[0]) == {"code", "message", "node_id", "edge_id", "field"}
    assert WorkflowVersion.dangerously_unscoped.count() == 1


def test_versions_list_read_diff_and_roll_back(
    client, tenant, builder, operator, django_assert_num_queries
):
    workflow = make_workflow(tenant)
    services.workflow_publish(tenant=tenant, workflow=workflow, note="first")
    services.workflow_update(
        tenant=tenant,
        workflow=workflow,
        spec=services.parse_spec({"graph": echo_graph(output="said")}),
    )
    services.workflow_publish(tenant=tenant, workflow=workflow, note="renamed")
    versions_url = f"{BASE}/{workflow.pk}/versions"

    warm(client, operator)
    with django_assert_num_queries(4):  # key, workflow, count, page (authors joined)
        listed = client.get(f"{versions_url}/", **operator).json()
    assert [(row["number"], row["note"]) for row in listed["results"]] == [
        (2, "renamed"),
        (1, "first"),
    ]
    assert "graph" not in listed["results"][0]
    one = client.get(f"{versions_url}/1", **operator).json()
    assert one["graph"]["nodes"][1]["data"]["outputs"][0]["variable"] == "echo"
    missing = client.get(f"{versions_url}/9", **operator)
    assert (
        missing.status_code == 404 and missing.json()["message"] == "No version 9 of this workflow."
    )

    diff = client.get(f"{versions_url}/2/diff", **operator).json()  # against the one before
    assert (diff["older"], diff["newer"], diff["empty"]) == ("1", "2", False)
    [changed] = diff["changes"]["nodes_changed"]
    assert changed["node"]["node_id"] == "end"
    assert changed["changes"] == [
        {"path": "data.outputs[0].variable", "old": "echo", "new": "said"}
    ]
    assert "said" in diff["text"]
    backwards = client.get(f"{versions_url}/1/diff?against=2", **operator).json()
    assert (backwards["older"], backwards["newer"]) == ("1", "2")
    assert backwards["changes"] == diff["changes"]
    draft = client.get(f"{versions_url}/2/diff?against=draft", **operator).json()
    assert (draft["older"], draft["newer"], draft["empty"]) == ("2", "draft", True)
    assert draft["text"] == "No changes."
    for query, message in [
        ("against=7", "against: this workflow has no version 7."),
        ("against=latest", "against: “latest” is not a version number or `draft`."),
        ("against=0", "against: “0” is not a version number or `draft`."),
    ]:
        bad = client.get(f"{versions_url}/2/diff?{query}", **operator)
        assert bad.status_code == 400 and bad.json()["message"] == message
    first = client.get(f"{versions_url}/1/diff", **operator)
    assert first.status_code == 400
    assert first.json()["message"] == "against: version 1 is the first; name a version or `draft`."

    restored = post(client, f"{versions_url}/1/rollback", {}, builder)
    assert restored.status_code == 201, restored.content
    body = restored.json()
    assert (body["number"], body["restored_from"], body["note"]) == (
        3,
        1,
        "Rolled back to version 1.",
    )
    workflow.refresh_from_db()
    assert (
        workflow.graph
        == WorkflowVersion.dangerously_unscoped.get(workflow=workflow, number=1).graph
    )


# --- Reading runs --------------------------------------------------------------------------


def test_runs_of_a_workflow_are_listed_newest_first_and_filtered(
    client, tenant, operator, django_assert_num_queries
):
    workflow = make_workflow(tenant)
    version = services.workflow_publish(tenant=tenant, workflow=workflow)
    failed = make_run(workflow, status=WorkflowRun.Status.FAILED, error="boom")
    done = make_run(workflow, version=version)
    make_run(make_workflow(tenant, "Other"))
    url = f"{BASE}/{workflow.pk}/runs/"

    warm(client, operator)
    with django_assert_num_queries(4) as few:  # key, workflow, count, page
        rows = client.get(url, **operator).json()["results"]
    assert [(row["id"], row["version"]) for row in rows] == [
        (str(done.pk), 1),
        (str(failed.pk), None),
    ]
    assert rows[1]["error"] == "boom" and rows[0]["outputs"] == {"echo": "hi"}
    for _ in range(4):
        make_run(workflow, version=version)
    with django_assert_num_queries(len(few.captured_queries)):
        assert client.get(url, **operator).json()["count"] == 6
    only = client.get(f"{url}?status=failed", **operator).json()["results"]
    assert [row["id"] for row in only] == [str(failed.pk)]
    bad = client.get(f"{url}?status=done", **operator)
    assert bad.status_code == 400 and bad.json()["message"].startswith("status: unknown value")


def test_a_run_shows_its_node_executions_in_order_in_one_query(
    client, tenant, operator, django_assert_num_queries
):
    workflow = make_workflow(tenant)
    small, large = make_run(workflow, nodes=2), make_run(workflow, nodes=12)

    warm(client, operator)
    with django_assert_num_queries(3) as few:  # key, run (+ version), its node executions
        small_body = client.get(f"{BASE}/runs/{small.pk}", **operator).json()
    with django_assert_num_queries(len(few.captured_queries)):
        large_body = client.get(f"{BASE}/runs/{large.pk}/", **operator).json()
    assert [row["node_id"] for row in small_body["node_executions"]] == ["n1", "n2"]
    assert [row["index"] for row in large_body["node_executions"]] == list(range(1, 13))
    assert small_body["paused"] is None and small_body["status"] == "succeeded"
