"""The workflows console: the list, the draft editor (Dify DSL text, problems by node, a
conflict on a stale draft, masked secrets), the graph picture, import and export, publish /
compare / rollback, the Run page, runs with their node timeline, Stop and human-input
answers, and who sees what (roles, other tenants).

Runs are queued on Celery by the console; tests catch the queued task (`queued`) and run
the engine in-process with `runner.run_execute` where the result matters."""

from __future__ import annotations

import pytest
import yaml
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from providers import crypto
from tenants.context import tenant_context
from tenants.models import AuditLog
from tenants.roles import Role
from workflows import runner, services, streams, tasks
from workflows.admin.forms import CONFLICT
from workflows.admin.graph import graph_svg
from workflows.dsl import Graph, WorkflowSpec
from workflows.models import Workflow, WorkflowRun, WorkflowVersion

from .conftest import llm_data, make_document, make_edge, make_node

pytestmark = pytest.mark.django_db

WORKFLOWS = "/admin/workflows/workflow/"
RUNS = "/admin/workflows/workflowrun/"
SECRET = "sk-console-secret-value-9876"


def echo_nodes(title: str = "Start", **end_outputs: list[str]) -> list[dict]:
    """start (inputs q, n, pick, flag, data, doc) → end (echo = q, or the outputs given)."""
    variables = [
        {"variable": "q", "label": "Question", "type": "text-input", "required": True},
        {"variable": "n", "label": "Count", "type": "number"},
        {"variable": "pick", "label": "Pick", "type": "select", "options": ["a", "b"]},
        {"variable": "flag", "label": "Flag", "type": "checkbox"},
        {"variable": "data", "label": "Data", "type": "json_object"},
        {"variable": "doc", "label": "Document", "type": "file"},
    ]
    outputs = end_outputs or {"echo": ["start", "q"]}
    return [
        make_node("start", "start", title=title, variables=variables),
        make_node(
            "end",
            "end",
            outputs=[{"variable": k, "value_selector": v} for k, v in outputs.items()],
        ),
    ]


def spec_of(nodes: list[dict], edges: list[dict] | None = None, **workflow) -> WorkflowSpec:
    edges = [make_edge("start", "end")] if edges is None else edges
    return WorkflowSpec.model_validate(make_document(nodes, edges, **workflow)["workflow"])


def text_of(response) -> str:
    return response.content.decode()


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def fresh(row):
    return type(row).dangerously_unscoped.get(pk=row.pk)


@pytest.fixture
def builder_user(tenant, make_member):
    return make_member(tenant, Role.BUILDER)


@pytest.fixture
def builder(console, builder_user, tenant):
    return console(builder_user, tenant)


@pytest.fixture
def operator(console, make_member, tenant):
    return console(make_member(tenant, Role.OPERATOR), tenant)


@pytest.fixture
def workflow(tenant, builder_user):
    return services.workflow_create(
        tenant=tenant, name="Echo", spec=spec_of(echo_nodes()), created_by=builder_user
    )


@pytest.fixture
def queued(monkeypatch):
    """The Celery tasks the console queued, as (task name, args), instead of a broker."""
    calls: list[tuple[str, tuple]] = []
    for task in (tasks.run_workflow, tasks.resume_workflow):
        monkeypatch.setattr(task, "delay", lambda *args, name=task.name: calls.append((name, args)))
    return calls


def change_form(client, workflow, **fields) -> dict:
    """The change page's form as the browser would post it unchanged, with `fields` over it."""
    page = client.get(f"{WORKFLOWS}{workflow.pk}/change/")
    form = page.context["adminform"].form
    data = {
        "name": form["name"].value(),
        "description": form["description"].value(),
        "draft": form["draft"].value(),
        "checksum": form["checksum"].value(),
        "_continue": "Save",
    }
    data.update(fields)
    return data


def edited(draft: str, change) -> str:
    """The editor's YAML with `change(document)` applied."""
    document = yaml.safe_load(draft)
    change(document)
    return yaml.safe_dump(document, allow_unicode=True)


def end_reads(selector: list[str]):
    def change(document: dict) -> None:
        end = document["workflow"]["graph"]["nodes"][1]
        end["data"]["outputs"][0]["value_selector"] = selector

    return change


def paused_run(workflow, **form) -> WorkflowRun:
    """A run waiting at human-input node `ask` (or form["node_id"]), as the engine leaves one;
    its graph holds that node, with the form's inputs and actions."""
    node_id = form.get("node_id", "ask")
    human = make_node(
        node_id,
        "human-input",
        inputs=[
            {"type": i["type"], "output_variable_name": i["output_variable_name"]}
            for i in form.get("inputs", [])
            if isinstance(i, dict)  # a form of another shape has no node inputs to match
        ],
        user_actions=[{"id": a["id"], "title": a["title"]} for a in form.get("actions", [])],
    )
    graph = {**workflow.graph, "nodes": [*workflow.graph.get("nodes", []), human]}
    return WorkflowRun.dangerously_unscoped.create(
        tenant=workflow.tenant,
        workflow=workflow,
        graph=graph,
        status=WorkflowRun.Status.PAUSED,
        paused_state={"node_id": node_id, "form": form, "pool": {}, "scope": {}},
    )


# --- List and access ----------------------------------------------------------------------


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_list_shows_mode_latest_version_and_last_run(builder, tenant, workflow):
    services.workflow_publish(tenant=tenant, workflow=workflow, note="first")
    runner.run_create(tenant=tenant, workflow=workflow, inputs={"q": "hi"})
    one = count_queries(builder, WORKFLOWS)
    for name in ("Idle", "Spare", "Third"):
        services.workflow_create(tenant=tenant, name=name)
    assert count_queries(builder, WORKFLOWS) == one  # no query per row
    page = builder.get(WORKFLOWS)
    rows = {w.name: w for w in page.context["cl"].result_list}
    assert (rows["Echo"].latest, rows["Echo"].last_status) == (1, "running")
    assert (rows["Idle"].latest, rows["Idle"].last_status) == (None, None)
    body = text_of(page)
    assert "v1" in body and "Running" in body
    assert f"{WORKFLOWS}{workflow.pk}/run/" in body
    assert f"{WORKFLOWS}import/" in body


def test_operator_sees_and_runs_but_changes_nothing(operator, tenant, workflow):
    version = services.workflow_publish(tenant=tenant, workflow=workflow)
    run = runner.run_create(tenant=tenant, workflow=workflow, inputs={"q": "hi"})
    base = f"{WORKFLOWS}{workflow.pk}"
    for url in (
        WORKFLOWS,
        f"{base}/change/",
        f"{base}/compare/",
        f"{base}/run/",
        f"{base}/run/?version={version.number}",
        RUNS,
        f"{RUNS}{run.pk}/change/",
    ):
        assert operator.get(url).status_code == 200, url
    change = text_of(operator.get(f"{base}/change/"))
    assert 'name="draft"' not in change and "weft-publish" not in change
    assert 'class="weft-dsl"' in change  # the draft, read-only
    exported = operator.get(f"{base}/export/")
    assert exported.status_code == 200 and b"workflow:" in exported.content
    refused = [
        ("get", f"{WORKFLOWS}add/"),
        ("get", f"{WORKFLOWS}import/"),
        ("get", f"{base}/import/"),
        ("get", f"{base}/export/?secrets=1"),
        ("post", f"{base}/publish/"),
        ("get", f"{base}/rollback/{version.number}/"),
        ("get", f"{base}/delete/"),
        ("post", f"{base}/change/"),
    ]
    for method, url in refused:
        assert getattr(operator, method)(url).status_code == 403, url
    assert WorkflowVersion.dangerously_unscoped.filter(workflow=workflow).count() == 1


def test_a_member_has_no_console_access(console, make_member, tenant, workflow):
    member = console(make_member(tenant, Role.MEMBER), tenant)
    run = runner.run_create(tenant=tenant, workflow=workflow, inputs={"q": "hi"})
    for url in (
        WORKFLOWS,
        f"{WORKFLOWS}{workflow.pk}/change/",
        f"{WORKFLOWS}{workflow.pk}/compare/",
        f"{WORKFLOWS}{workflow.pk}/export/",
        f"{WORKFLOWS}{workflow.pk}/run/",
        f"{WORKFLOWS}import/",
        RUNS,
        f"{RUNS}{run.pk}/change/",
    ):
        response = member.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_another_tenants_workflow_version_and_run_answer_404(builder, other_tenant, queued):
    foreign = services.workflow_create(
        tenant=other_tenant, name="Globex flow", spec=spec_of(echo_nodes())
    )
    version = services.workflow_publish(tenant=other_tenant, workflow=foreign)
    run = runner.run_create(tenant=other_tenant, workflow=foreign, inputs={"q": "hi"})
    base = f"{WORKFLOWS}{foreign.pk}"
    for method, url in [
        ("get", f"{base}/change/"),
        ("post", f"{base}/change/"),
        ("get", f"{base}/delete/"),
        ("get", f"{base}/compare/"),
        ("get", f"{base}/export/"),
        ("get", f"{base}/export/?version={version.number}"),
        ("get", f"{base}/import/"),
        ("post", f"{base}/publish/"),
        ("get", f"{base}/rollback/{version.number}/"),
        ("get", f"{base}/run/"),
        ("post", f"{base}/run/"),
        ("get", f"{RUNS}{run.pk}/change/"),
        ("post", f"{RUNS}{run.pk}/change/"),
        ("post", f"{RUNS}{run.pk}/stop/"),
    ]:
        assert getattr(builder, method)(url).status_code == 404, (method, url)
    assert "Globex flow" not in text_of(builder.get(WORKFLOWS))
    assert "Globex flow" not in text_of(builder.get(RUNS))
    assert not queued and fresh(run).status == WorkflowRun.Status.RUNNING


def test_a_missing_version_answers_404(builder, workflow):
    assert builder.get(f"{WORKFLOWS}{workflow.pk}/export/?version=7").status_code == 404
    assert builder.get(f"{WORKFLOWS}{workflow.pk}/rollback/7/").status_code == 404
    compared = builder.get(f"{WORKFLOWS}{workflow.pk}/compare/?old=7&new=draft")
    assert compared.context["form"].errors["old"] and "diff" not in compared.context


# --- Add, edit, delete ----------------------------------------------------------------------


def test_builder_adds_a_chatflow(builder, builder_user, tenant):
    response = builder.post(
        f"{WORKFLOWS}add/",
        {"name": "Helpdesk", "description": "Answers", "mode": "advanced-chat", "draft": ""},
    )
    assert response.status_code == 302
    with tenant_context(tenant):
        created = Workflow.objects.get(name="Helpdesk")
    assert created.mode == "advanced-chat" and created.created_by == builder_user
    assert not services.spec_of(created).graph.nodes


def test_editing_the_dsl_stores_the_draft_through_the_service(builder, builder_user, workflow):
    data = change_form(builder, workflow)
    assert "kind: app" in data["draft"] and "value_selector" in data["draft"]
    data["draft"] = data["draft"].replace("variable: echo", "variable: said")
    data["description"] = "Says it back"
    response = builder.post(f"{WORKFLOWS}{workflow.pk}/change/", data)
    assert response.status_code == 302
    saved = fresh(workflow)
    assert saved.description == "Says it back" and saved.updated_by == builder_user
    end = services.spec_of(saved).graph.node("end")
    assert end is not None and end.data.outputs[0].variable == "said"
    assert saved.draft_checksum != workflow.draft_checksum
    row = AuditLog.dangerously_unscoped.filter(
        object_type="workflows.workflow", object_id=str(workflow.pk), action="update"
    ).latest("id")
    assert row.actor == builder_user and "graph" in row.changes


def test_saving_unchanged_text_keeps_the_draft(builder, workflow):
    response = builder.post(f"{WORKFLOWS}{workflow.pk}/change/", change_form(builder, workflow))
    assert response.status_code == 302
    assert fresh(workflow).draft_checksum == workflow.draft_checksum


def test_validation_errors_are_listed_by_node_and_outlined_in_the_graph(builder, workflow):
    data = change_form(builder, workflow)
    data["draft"] = edited(data["draft"], end_reads(["ghost", "q"]))
    response = builder.post(f"{WORKFLOWS}{workflow.pk}/change/", data, follow=True)
    assert "Saved. The draft has 1 problem(s)" in " ".join(page_messages(response))
    problems = response.context["problems"]
    assert [(p.node_id, p.field) for p in problems] == [("end", "data.outputs[0].value_selector")]
    body = text_of(response)
    assert "names node ghost, which does not exist" in body
    assert 'class="weft-node weft-invalid" data-node-id="end"' in body
    assert 'class="weft-node" data-node-id="start"' in body
    assert 'id="weft-publish"' not in body and "cannot be published" in body


def test_malformed_yaml_keeps_the_text_and_names_the_line(builder, workflow):
    data = change_form(builder, workflow)
    broken = data["draft"].replace("kind: app", "kind: [app")
    response = builder.post(f"{WORKFLOWS}{workflow.pk}/change/", {**data, "draft": broken})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["draft"]
    assert "malformed YAML at line" in errors[0]
    assert escape(broken) in text_of(response)
    assert fresh(workflow).draft_checksum == workflow.draft_checksum


def test_a_draft_that_is_not_a_workflow_is_refused_readably(builder, workflow):
    data = change_form(builder, workflow)
    response = builder.post(
        f"{WORKFLOWS}{workflow.pk}/change/",
        {**data, "draft": '{"graph": {"nodes": [{"id": "x", "data": {"title": "t"}}]}}'},
    )
    assert response.status_code == 200
    (error,) = response.context["adminform"].form.errors["draft"]
    assert error.startswith("workflow.graph.nodes.0.data")
    assert fresh(workflow).draft_checksum == workflow.draft_checksum


def test_json_of_the_spec_is_accepted(builder, workflow):
    spec = spec_of(echo_nodes(said=["start", "q"]))
    data = change_form(builder, workflow, draft=spec.model_dump_json(exclude_unset=True))
    assert builder.post(f"{WORKFLOWS}{workflow.pk}/change/", data).status_code == 302
    end = services.spec_of(fresh(workflow)).graph.node("end")
    assert end is not None and end.data.outputs[0].variable == "said"


def test_a_stale_draft_is_refused_with_the_text_kept(builder, tenant, workflow):
    data = change_form(builder, workflow)
    theirs = spec_of(echo_nodes(theirs=["start", "q"]))
    services.workflow_update(tenant=tenant, workflow=workflow, spec=theirs)
    mine = data["draft"].replace("variable: echo", "variable: mine")
    response = builder.post(f"{WORKFLOWS}{workflow.pk}/change/", {**data, "draft": mine})
    assert response.status_code == 200
    assert CONFLICT in response.context["adminform"].form.non_field_errors()
    assert escape(mine) in text_of(response)
    end = services.spec_of(fresh(workflow)).graph.node("end")
    assert end is not None and end.data.outputs[0].variable == "theirs"


def test_secrets_are_shown_masked_and_kept_when_sent_back(builder, tenant):
    env = [{"name": "api_key", "value_type": "secret", "value": SECRET}]
    workflow = services.workflow_create(
        tenant=tenant, name="Keyed", spec=spec_of(echo_nodes(), environment_variables=env)
    )
    stored = workflow.environment_variables[0]["value"]
    data = change_form(builder, workflow)
    page = text_of(builder.get(f"{WORKFLOWS}{workflow.pk}/change/"))
    assert SECRET not in page and SECRET[-4:] in data["draft"]
    data["description"] = "edited"
    assert builder.post(f"{WORKFLOWS}{workflow.pk}/change/", data).status_code == 302
    saved = fresh(workflow)
    assert saved.description == "edited"
    assert saved.environment_variables[0]["value"] == stored
    assert crypto.decrypt(saved.environment_variables[0]["value"]) == SECRET


def test_builder_deletes_a_workflow_with_its_runs(builder, tenant, workflow):
    runner.run_create(tenant=tenant, workflow=workflow, inputs={"q": "hi"})
    confirm = builder.get(f"{WORKFLOWS}{workflow.pk}/delete/")
    assert confirm.status_code == 200 and "<li>Runs: 1</li>" in text_of(confirm)
    response = builder.post(f"{WORKFLOWS}{workflow.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Workflow.dangerously_unscoped.filter(pk=workflow.pk).exists()
    assert not WorkflowRun.dangerously_unscoped.filter(workflow_id=workflow.pk).exists()


# --- The graph picture ----------------------------------------------------------------------


def test_the_graph_shows_every_node_and_escapes_titles(builder, tenant):
    title = "<script>alert('x')</script>"
    nodes = [*echo_nodes(title=title), make_node("later", "end", outputs=[])]
    workflow = services.workflow_create(tenant=tenant, name="Shown", spec=spec_of(nodes))
    body = text_of(builder.get(f"{WORKFLOWS}{workflow.pk}/change/"))
    assert "<script>alert(" not in body
    assert escape(title)[:20] in body
    for node_id in ("start", "end", "later"):
        assert f'data-node-id="{node_id}"' in body


def test_graph_layers_frames_and_branch_labels():
    nodes = [
        make_node("start", "start", variables=[]),
        make_node(
            "check",
            "if-else",
            cases=[{"case_id": "yes", "logical_operator": "and", "conditions": []}],
        ),
        make_node("loop", "iteration", iterator_selector=["start", "list"], start_node_id="in"),
        make_node("in", "iteration-start", parent="loop"),
        make_node("end", "end", outputs=[]),
    ]
    edges = [
        make_edge("start", "check"),
        make_edge("check", "loop", "yes"),
        make_edge("check", "end", "false"),
        make_edge("loop", "end"),
    ]
    svg = str(graph_svg(Graph.model_validate({"nodes": nodes, "edges": edges}), {"end": ["x"]}))
    columns = {}
    for node_id in ("start", "check", "loop", "end"):
        tag = svg.split(f'data-node-id="{node_id}"', 1)[1]
        columns[node_id] = int(tag.split('<rect x="', 1)[1].split('"', 1)[0])
    assert columns["start"] < columns["check"] < columns["loop"] < columns["end"]
    assert 'class="weft-node weft-frame" data-node-id="loop"' in svg
    inner = int(svg.split('data-node-id="in"', 1)[1].split('<rect x="', 1)[1].split('"', 1)[0])
    assert inner > columns["loop"]  # drawn inside its frame
    assert ">case yes</text>" in svg and ">else</text>" in svg
    assert 'class="weft-node weft-invalid" data-node-id="end"' in svg


# --- Import and export ----------------------------------------------------------------------


def llm_document() -> str:
    nodes = [
        make_node("start", "start", variables=[]),
        make_node("llm", "llm", **llm_data("Say hi")),
        make_node("end", "end", outputs=[{"variable": "text", "value_selector": ["llm", "text"]}]),
    ]
    edges = [make_edge("start", "llm"), make_edge("llm", "end")]
    return yaml.safe_dump(make_document(nodes, edges))


def test_import_shows_the_models_it_mapped(builder, builder_user, tenant):
    response = builder.post(f"{WORKFLOWS}import/", {"text": llm_document(), "name": "Greeter"})
    assert response.status_code == 200
    with tenant_context(tenant):
        imported = Workflow.objects.get(name="Greeter")
    assert imported.created_by == builder_user
    groups = dict(response.context["groups"])
    (mapped,) = [item for item in groups["node llm"] if item.code == "model_mapped"]
    assert mapped.field == "data.model"
    body = text_of(response)
    assert "openai/gpt-4o is not set up in this tenant" in body
    assert f"{WORKFLOWS}{imported.pk}/change/" in body


def test_import_an_uploaded_file_replacing_a_draft(builder, workflow):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("flow.yml", llm_document().encode(), "application/x-yaml")
    response = builder.post(f"{WORKFLOWS}{workflow.pk}/import/", {"file": upload})
    assert response.status_code == 200 and "report" in response.context
    saved = fresh(workflow)
    assert saved.name == "Echo"
    assert services.spec_of(saved).graph.node("llm") is not None


def test_import_refuses_a_broken_file_readably(builder):
    response = builder.post(f"{WORKFLOWS}import/", {"text": "workflow: [unclosed"})
    assert response.status_code == 200
    (error,) = response.context["form"].non_field_errors()
    assert "malformed YAML at line" in error
    taken = builder.post(f"{WORKFLOWS}import/", {"text": llm_document(), "name": "Same"})
    assert taken.status_code == 200
    again = builder.post(f"{WORKFLOWS}import/", {"text": llm_document(), "name": "Same"})
    assert "already exists" in again.context["form"].errors["name"][0]


def test_export_draft_version_and_secrets_after_a_confirmation(builder, tenant):
    env = [{"name": "api_key", "value_type": "secret", "value": SECRET}]
    workflow = services.workflow_create(
        tenant=tenant, name="Keyed flow", spec=spec_of(echo_nodes(), environment_variables=env)
    )
    services.workflow_publish(tenant=tenant, workflow=workflow)
    base = f"{WORKFLOWS}{workflow.pk}/export/"
    draft = builder.get(base)
    assert draft["Content-Disposition"] == 'attachment; filename="keyed-flow-draft.yml"'
    assert SECRET not in draft.content.decode()
    assert yaml.safe_load(draft.content)["app"]["name"] == "Keyed flow"
    version = builder.get(f"{base}?version=1")
    assert 'filename="keyed-flow-v1.yml"' in version["Content-Disposition"]
    confirm = builder.get(f"{base}?secrets=1")
    assert confirm.status_code == 200 and SECRET not in text_of(confirm)
    assert "in clear text" in text_of(confirm)
    with_secrets = builder.post(f"{base}?secrets=1&version=1")
    assert SECRET in with_secrets.content.decode()


# --- Versions -------------------------------------------------------------------------------


def test_publish_compare_and_rollback(builder, builder_user, workflow):
    base = f"{WORKFLOWS}{workflow.pk}"
    published = builder.post(f"{base}/publish/", {"note": "first"}, follow=True)
    assert "Published version 1." in page_messages(published)
    again = builder.post(f"{base}/publish/", {}, follow=True)
    assert "nothing new to publish" in " ".join(page_messages(again))

    data = change_form(builder, workflow)
    data["draft"] = data["draft"].replace("variable: echo", "variable: said")
    builder.post(f"{base}/change/", data)
    compared = builder.get(f"{base}/compare/")  # the latest version against the draft
    ((node, changes),) = compared.context["diff"]["nodes_changed"]
    assert node.node_id == "end"
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("data.outputs[0].variable", '"echo"', '"said"')
    ]
    assert "data.outputs[0].variable" in text_of(compared)

    builder.post(f"{base}/publish/", {"note": "renamed"})
    between = builder.get(f"{base}/compare/?old=1&new=2")
    assert between.context["old_name"] == "version 1" and not between.context["diff"]["empty"]
    same = builder.get(f"{base}/compare/?old=2&new=draft")
    assert same.context["diff"]["empty"] and "No changes" in text_of(same)

    confirm = builder.get(f"{base}/rollback/1/")
    assert confirm.status_code == 200
    assert confirm.context["diff"]["nodes_changed"][0][1][0].new == '"echo"'
    rolled = builder.post(f"{base}/rollback/1/", {"note": ""}, follow=True)
    assert "version 3 is a copy of version 1" in " ".join(page_messages(rolled))
    with tenant_context(workflow.tenant):
        v1, v3 = (WorkflowVersion.objects.get(workflow=workflow, number=n) for n in (1, 3))
    assert v3.restored_from == 1 and v3.created_by == builder_user
    assert fresh(workflow).graph == v1.graph
    assert "v3" in text_of(rolled) and "copy of v1" in text_of(rolled)


def test_publish_is_refused_with_the_problems(builder, tenant):
    broken = spec_of(echo_nodes(echo=["ghost", "q"]))
    workflow = services.workflow_create(tenant=tenant, name="Broken", spec=broken)
    response = builder.post(f"{WORKFLOWS}{workflow.pk}/publish/", {"note": "x"}, follow=True)
    assert "Not published: the draft has 1 problem(s)" in " ".join(page_messages(response))
    assert "names node ghost" in text_of(response)
    assert not WorkflowVersion.dangerously_unscoped.filter(workflow=workflow).exists()


# --- Runs -----------------------------------------------------------------------------------


def test_run_form_validates_inputs_and_queues_a_run(
    operator, workflow, queued, django_capture_on_commit_callbacks
):
    url = f"{WORKFLOWS}{workflow.pk}/run/"
    page = operator.get(url)
    form = page.context["form"]
    assert list(form.fields) == ["q", "n", "pick", "flag", "data"]
    assert [v.variable for v in form.skipped] == ["doc"]
    assert 'name="inputs-q"' in text_of(page) and "File inputs cannot be given" in text_of(page)

    missing = operator.post(url, {"inputs-n": "3"})
    assert missing.status_code == 200 and "inputs-q" in text_of(missing)
    assert missing.context["form"].errors["q"]
    not_a_number = operator.post(url, {"inputs-q": "hi", "inputs-n": "three"})
    assert not_a_number.context["form"].errors["n"] == ["inputs.n: expected a number."]
    bad_json = operator.post(url, {"inputs-q": "hi", "inputs-data": "[1]"})
    assert "expected a JSON object" in bad_json.context["form"].errors["data"][0]
    assert not WorkflowRun.dangerously_unscoped.filter(workflow=workflow).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            url,
            {
                "inputs-q": "hello",
                "inputs-n": "3",
                "inputs-pick": "b",
                "inputs-flag": "on",
                "inputs-data": '{"k": 1}',
            },
        )
    run = WorkflowRun.dangerously_unscoped.get(workflow=workflow)
    assert response.status_code == 302 and response["Location"] == f"{RUNS}{run.pk}/change/"
    assert run.inputs == {
        "q": "hello",
        "n": 3,
        "pick": "b",
        "flag": True,
        "data": {"k": 1},
        "doc": None,
    }
    assert run.version is None and run.triggered_from == "debugging"
    assert queued == [(tasks.run_workflow.name, (str(run.pk),))]


def test_run_a_version_and_refuse_a_broken_draft(builder, tenant, workflow, queued):
    version = services.workflow_publish(tenant=tenant, workflow=workflow)
    services.workflow_update(
        tenant=tenant, workflow=workflow, spec=spec_of(echo_nodes(echo=["ghost", "q"]))
    )
    broken = builder.get(f"{WORKFLOWS}{workflow.pk}/run/")
    assert [p.node_id for p in broken.context["problems"]] == ["end"]
    assert 'value="Run the draft"' not in text_of(broken)
    response = builder.post(
        f"{WORKFLOWS}{workflow.pk}/run/", {"version": "1", "inputs-q": "from v1"}
    )
    run = WorkflowRun.dangerously_unscoped.get(workflow=workflow)
    assert response.status_code == 302 and run.version == version


def test_run_page_shows_the_node_timeline(operator, tenant, workflow):
    run = runner.run_create(tenant=tenant, workflow=workflow, inputs={"q": "hello"})
    running = operator.get(f"{RUNS}{run.pk}/change/")
    body = text_of(running)
    assert '<meta http-equiv="refresh" content="2">' in body
    assert 'id="weft-stop"' in body and "No node has started yet." in body

    async_to_sync(runner.run_execute)(run.pk)
    page = operator.get(f"{RUNS}{run.pk}/change/")
    body = text_of(page)
    assert fresh(run).status == WorkflowRun.Status.SUCCEEDED
    assert "http-equiv" not in body and 'id="weft-stop"' not in body
    rows = page.context["rows"]
    assert [(r.execution.index, r.execution.node_id) for r in rows] == [(1, "start"), (2, "end")]
    assert all(0 <= r.offset <= 100 and 0 < r.width <= 100 for r in rows)
    assert 'data-node-id="start"' in body and 'data-node-id="end"' in body
    assert [name for name, _ in rows[1].sections] == ["inputs", "outputs"]
    assert '"echo": "hello"' in page.context["outputs"]
    assert "<details><summary>outputs</summary>" in body


def test_run_lists_all_and_per_workflow(operator, tenant, workflow):
    other = services.workflow_create(tenant=tenant, name="Other", spec=spec_of(echo_nodes()))
    mine = runner.run_create(tenant=tenant, workflow=workflow, inputs={"q": "a"})
    async_to_sync(runner.run_execute)(mine.pk)
    one = count_queries(operator, RUNS)
    runner.run_create(tenant=tenant, workflow=other, inputs={"q": "b"}, user=None)
    version = services.workflow_publish(tenant=tenant, workflow=other)
    runner.run_create(tenant=tenant, workflow=other, inputs={"q": "c"}, version=version)
    assert count_queries(operator, RUNS) == one  # no query per row
    everything = operator.get(RUNS)
    assert len(everything.context["cl"].result_list) == 3
    assert "v1" in text_of(everything)
    filtered = operator.get(f"{RUNS}?workflow__id__exact={workflow.pk}")
    (shown,) = filtered.context["cl"].result_list
    assert shown.pk == mine.pk
    body = text_of(filtered)
    assert "Succeeded" in body and "draft" in body and "0 USD" in body


def test_stop_button_reaches_a_running_run_and_ends_a_paused_one(operator, tenant, workflow):
    running = runner.run_create(tenant=tenant, workflow=workflow, inputs={"q": "hi"})
    response = operator.post(f"{RUNS}{running.pk}/stop/", follow=True)
    assert "Asked the run to stop." in page_messages(response)
    assert async_to_sync(streams.stop_requested)(str(running.pk))
    paused = paused_run(workflow, form_content="Approve?")
    assert 'id="weft-stop"' in text_of(operator.get(f"{RUNS}{paused.pk}/change/"))
    operator.post(f"{RUNS}{paused.pk}/stop/")
    assert fresh(paused).status == WorkflowRun.Status.STOPPED
    assert operator.get(f"{RUNS}{paused.pk}/stop/").status_code == 405


def test_human_input_answer_resumes_the_run(
    operator, workflow, queued, django_capture_on_commit_callbacks
):
    # The form as the human-input node writes it (workflows.nodes.human.build_form).
    run = paused_run(
        workflow,
        node_id="review",
        node_title="Review <b>",
        form_content="Approve <b>Ada</b>? Why: {{#$outputs.reason#}}",
        inputs=[{"type": "paragraph", "output_variable_name": "reason", "default": "Fine"}],
        actions=[
            {"id": "approve", "title": "Approve", "button_style": "primary"},
            {"id": "reject", "title": "Reject", "button_style": "default"},
        ],
        timeout=36,
        timeout_unit="hour",
        expires_at=1767225600,
    )
    url = f"{RUNS}{run.pk}/change/"
    page = operator.get(url)
    body = text_of(page)
    assert "Approve &lt;b&gt;Ada&lt;/b&gt;? Why: [reason]" in body
    assert "at “Review &lt;b&gt;”" in body and "Answer by" in body
    assert "expires_at" not in body and "timeout_unit" not in body
    assert 'name="answer-reason"' in body and "Fine</textarea>" in body
    assert 'name="answer-action" value="approve"' in body and ">Reject</button>" in body
    assert "http-equiv" not in body

    unchosen = operator.post(url, {"answer-reason": "ok"})
    assert unchosen.status_code == 200 and "Choose one of the buttons." in text_of(unchosen)
    unknown = operator.post(url, {"answer-reason": "ok", "answer-action": "maybe"})
    assert unknown.status_code == 200 and unknown.context["answer_form"].errors["action"]
    assert not queued and fresh(run).status == WorkflowRun.Status.PAUSED

    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(url, {"answer-reason": "All good", "answer-action": "approve"})
    assert response.status_code == 302
    assert fresh(run).status == WorkflowRun.Status.RUNNING
    outputs = {"reason": "All good", "action_id": "approve"}
    assert queued == [(tasks.resume_workflow.name, (str(run.pk), outputs, "approve"))]
    again = operator.post(url, {"answer-reason": "twice", "answer-action": "approve"}, follow=True)
    assert "not waiting for an answer" in " ".join(page_messages(again))
    assert len(queued) == 1


def test_a_form_of_any_shape_is_shown(operator, workflow):
    run = paused_run(workflow, question="Approve Ada?", inputs={"decision": "yes"})
    body = text_of(operator.get(f"{RUNS}{run.pk}/change/"))
    assert "<strong>question</strong>" in body and "Approve Ada?" in body
    assert 'name="answer-decision"' in body and 'value="yes"' in body
    assert 'value="Send"' in body


def test_superuser_opens_another_tenants_workflow_and_run(console, superuser, other_tenant):
    foreign = services.workflow_create(
        tenant=other_tenant, name="Globex flow", spec=spec_of(echo_nodes())
    )
    run = runner.run_create(tenant=other_tenant, workflow=foreign, inputs={"q": "hi"})
    admin = console(superuser)
    assert "Globex flow" in text_of(admin.get(WORKFLOWS))
    assert admin.get(f"{WORKFLOWS}{foreign.pk}/change/").status_code == 200
    assert admin.get(f"{WORKFLOWS}{foreign.pk}/run/").status_code == 200
    assert admin.get(f"{RUNS}{run.pk}/change/").status_code == 200
