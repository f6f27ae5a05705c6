"""Chatflow and workflow apps through the pipeline: the chat stream a chatflow run becomes,
its memory and conversation variables across turns, uploads read by its nodes, stop and
failure; a workflow app's own stream with its text chunks."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from asgiref.sync import async_to_sync

from apps.models import App, Conversation, Message
from apps.pipeline import blocking_result, execute, prepare, stop
from apps.services.files import upload_create
from tenants.exceptions import WeftError
from tests.providers import conftest as provider_fixtures
from tests.workflows.conftest import make_node
from workflows import streams
from workflows.dsl import Graph, WorkflowSpec
from workflows.models import WorkflowRun
from workflows.services.definitions import parse_spec

from .pipeline_support import (
    answer_of,
    ask,
    chain,
    counting_chatflow,
    names,
    read_events,
    request,
    user_of,
)

pytestmark = pytest.mark.django_db

runtime_state = provider_fixtures.runtime_state
credential = provider_fixtures.credential


@pytest.fixture
def fake(credential, fake_llm):
    credential()
    return fake_llm


@pytest.fixture
def chatflow(tenant, make_app, fake):
    return make_app(tenant, App.Mode.CHATFLOW, spec=parse_spec(counting_chatflow()))


def test_a_chatflow_turn_streams_as_chat_and_saves_the_message(chatflow, fake):
    task, events, message = ask(chatflow, user_of(chatflow), "Hello flow", auto_generate_name=False)
    kinds = names(events)
    assert kinds[0] == "workflow_started"
    assert kinds[-2:] == ["workflow_finished", "message_end"]
    assert "text_chunk" not in kinds and "message" in kinds
    for event in events:
        assert event["conversation_id"] == task.conversation_id
        assert event["message_id"] == task.message_id and event["task_id"] == task.task_id
    started = events[0]
    assert started["workflow_run_id"] == task.workflow_run_id and "data" in started
    assert answer_of(events) == message.answer == "You said: Hello flow"
    usage = events[-1]["metadata"]["usage"]
    assert usage["prompt_tokens"] == 6 and usage["completion_tokens"] == 4
    assert message.status == Message.Status.NORMAL
    assert (message.message_tokens, message.answer_tokens) == (6, 4)
    assert message.time_to_first_token is not None and message.latency > 0
    run = WorkflowRun.dangerously_unscoped.get(pk=task.workflow_run_id)
    assert run.status == "succeeded" and run.triggered_from == "app-run"
    result = async_to_sync(blocking_result)(task)
    assert result["mode"] == "advanced-chat" and result["answer"] == message.answer


def test_memory_and_conversation_variables_carry_across_turns(chatflow, fake):
    alice = user_of(chatflow)
    first, _, _ = ask(chatflow, alice, "wool?", auto_generate_name=False)
    conversation = Conversation.dangerously_unscoped.get(pk=first.conversation_id)
    assert conversation.variables == {"count": 1, "topics": ["wool?"]}
    second, _, _ = ask(chatflow, alice, "and cotton?", conversation_id=first.conversation_id)
    messages = [(m["role"], m["content"]) for m in fake.requests[1].json["messages"]]
    assert messages == [
        ("system", "Turns so far: 1"),
        ("user", "wool?"),
        ("assistant", "You said: wool?"),
        ("user", "and cotton?"),
    ]
    conversation.refresh_from_db()
    assert conversation.variables == {"count": 2, "topics": ["wool?", "and cotton?"]}
    assert conversation.dialogue_count == 2
    system = WorkflowRun.dangerously_unscoped.get(pk=second.workflow_run_id).inputs["__system"]
    assert system["dialogue_count"] == 2 and system["conversation_id"] == first.conversation_id


def test_an_earlier_conversation_goes_on_after_the_form_gains_a_required_field(
    tenant, chatflow, fake
):
    from apps.services.apps import app_publish
    from workflows.services.definitions import workflow_update

    alice = user_of(chatflow)
    first, _, _ = ask(chatflow, alice, "wool?", auto_generate_name=False)
    changed = counting_chatflow()
    changed["graph"]["nodes"][0] = make_node(
        "start",
        "start",
        variables=[{"variable": "team", "label": "Team", "type": "text-input", "required": True}],
    )
    workflow_update(tenant=tenant, workflow=chatflow.workflow, spec=parse_spec(changed))
    app_publish(tenant=tenant, app=chatflow)
    chatflow.refresh_from_db()
    # The conversation keeps the inputs of its first turn; a new one must fill the new form.
    _, events, message = ask(chatflow, alice, "and silk?", conversation_id=first.conversation_id)
    assert names(events)[-1] == "message_end", json.dumps(events[-3:])[-1500:]
    assert message.answer == "You said: and silk?"
    with pytest.raises(WeftError, match="team"):
        ask(chatflow, alice, "new one")


def test_a_failed_chatflow_run_ends_with_error(chatflow, fake):
    fake.fail_next(status=400)
    task, events, message = ask(chatflow, user_of(chatflow), "boom", auto_generate_name=False)
    assert names(events)[-2:] == ["workflow_finished", "error"]
    assert events[-2]["data"]["status"] == "failed"
    assert events[-1]["message"].startswith("Run failed:")
    assert message.status == Message.Status.ERROR and message.error
    with pytest.raises(WeftError):
        async_to_sync(blocking_result)(task)


def test_stopping_a_chatflow_stops_its_run_and_keeps_the_partial_answer(chatflow, fake):
    fake.latency_per_token = 0.02
    fake.script(" ".join(f"w{i}" for i in range(200)))
    alice = user_of(chatflow)
    task = prepare(request(chatflow, alice, query="long", auto_generate_name=False))

    async def go():
        running = asyncio.ensure_future(execute(task))
        async for _id, body in streams.read(task.task_id, block_ms=200):
            if body is not None and json.loads(body)["event"] == "message":
                break
        await stop(app=chatflow, task_id=task.task_id, end_user=alice)
        await asyncio.wait_for(running, 20)

    async_to_sync(go)()
    events = read_events(task.task_id)
    message = Message.dangerously_unscoped.get(pk=task.message_id)
    assert names(events)[-2:] == ["workflow_finished", "message_end"]
    assert events[-2]["data"]["status"] == "stopped"
    assert message.status == Message.Status.STOPPED
    assert 0 < len(message.answer.split()) < 200 and answer_of(events) == message.answer


def test_refused_input_skips_the_run(tenant, make_app, fake):
    spec = counting_chatflow()
    spec["features"] = {
        "sensitive_word_avoidance": {
            "enabled": True,
            "type": "keywords",
            "config": {
                "keywords": "forbidden",
                "inputs_config": {"enabled": True, "preset_response": "No."},
                "outputs_config": {"enabled": False},
            },
        }
    }
    app = make_app(tenant, App.Mode.CHATFLOW, spec=parse_spec(spec))
    task, events, message = ask(app, user_of(app), "the forbidden word")
    assert names(events) == ["message", "message_end"] and answer_of(events) == "No."
    assert message.workflow_run_id is None and fake.requests == []
    assert not WorkflowRun.dangerously_unscoped.filter(pk=task.workflow_run_id).exists()


def test_a_chatflow_node_reads_this_users_upload(tenant, make_app):
    nodes = [
        make_node("start", "start", variables=[]),
        make_node("extract", "document-extractor", variable_selector=["sys", "files"]),
        make_node("answer", "answer", answer="{{#extract.text#}}"),
    ]
    spec = {
        "graph": {"nodes": nodes, "edges": chain("start", "extract", "answer")},
        "features": {"file_upload": {"enabled": True, "allowed_file_types": ["document"]}},
    }
    app = make_app(tenant, App.Mode.CHATFLOW, spec=parse_spec(spec))
    alice = user_of(app)
    file = io.BytesIO(b"Linen is woven from flax fibres.")
    file.name = "linen.txt"
    upload = upload_create(app=app, end_user=alice, uploaded=file)
    files = [
        {"type": "document", "transfer_method": "local_file", "upload_file_id": str(upload.pk)}
    ]
    _, events, message = ask(app, alice, "read it", files=files, auto_generate_name=False)
    assert message.status == Message.Status.NORMAL, message.error
    assert "Linen is woven from flax fibres." in message.answer
    assert answer_of(events) == message.answer


# --- Workflow apps -----------------------------------------------------------------------------


def test_a_workflow_app_streams_its_own_events_with_text_chunks(tenant, make_app):
    app = make_app(tenant, App.Mode.WORKFLOW)  # start(query) → llm (built-in model) → end
    task = prepare(request(app, user_of(app), inputs={"query": "hello"}))
    async_to_sync(execute)(task)
    events = read_events(task.task_id)
    kinds = names(events)
    assert kinds[0] == "workflow_started" and kinds[-1] == "workflow_finished"
    chunks = [e for e in events if e["event"] == "text_chunk"]
    assert chunks, kinds
    for event in events:
        assert event["task_id"] == event["workflow_run_id"] == task.workflow_run_id
        assert "data" in event and "conversation_id" not in event
    finished = events[-1]["data"]
    assert finished["status"] == "succeeded"
    assert "".join(c["data"]["text"] for c in chunks) == finished["outputs"]["text"]
    result = async_to_sync(blocking_result)(task)
    assert result["task_id"] == result["workflow_run_id"] == task.workflow_run_id
    assert result["data"]["status"] == "succeeded"
    assert result["data"]["outputs"] == finished["outputs"]
    assert set(result["data"]) == {
        "id",
        "workflow_id",
        "status",
        "outputs",
        "error",
        "elapsed_time",
        "total_tokens",
        "total_steps",
        "created_at",
        "finished_at",
    }


def test_a_turn_keeps_a_variable_set_through_the_api_while_it_ran(chatflow, fake):
    from apps.pipeline import chatflow as chatflow_pipeline

    alice = user_of(chatflow)
    first, _, _ = ask(chatflow, alice, "wool?", auto_generate_name=False)
    conversation = Conversation.dangerously_unscoped.get(pk=first.conversation_id)
    message = Message.dangerously_unscoped.select_related("conversation").get(pk=first.message_id)
    # The run began with these; meanwhile the API set a new variable `mood`.
    before = dict(conversation.variables)
    Conversation.dangerously_unscoped.filter(pk=conversation.pk).update(
        variables={**before, "mood": "calm"}
    )
    chatflow_pipeline._save_turn(message, {}, before, {**before, "count": 5})
    conversation.refresh_from_db()
    assert conversation.variables == {"count": 5, "topics": ["wool?"], "mood": "calm"}


def test_a_turn_parses_its_graph_once(chatflow, fake, monkeypatch):
    """Parsing a large graph costs milliseconds: a turn of a published chatflow parses it
    once, to run it, and not again for its start form, its features or its validity."""
    alice = user_of(chatflow)
    first, _, _ = ask(chatflow, alice, "wool?", auto_generate_name=False)
    parsed: list[str] = []
    for model in (WorkflowSpec, Graph):
        original = model.model_validate

        def counted(data, *args, _original=original, _name=model.__name__, **kwargs):
            parsed.append(_name)
            return _original(data, *args, **kwargs)

        monkeypatch.setattr(model, "model_validate", counted)
    ask(chatflow, alice, "and cotton?", conversation_id=first.conversation_id)
    assert parsed == ["WorkflowSpec"]
    parsed.clear()
    ask(chatflow, alice, "a new conversation", auto_generate_name=False)
    assert parsed == ["WorkflowSpec"]
