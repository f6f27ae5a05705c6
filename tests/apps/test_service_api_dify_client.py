"""Dify's own Python client (`dify-client`, unchanged) against a running Daphne: only its
`base_url` points at Weft."""

from __future__ import annotations

import json

import pytest
from dify_client import ChatClient, CompletionClient

from apps.models import App
from apps.services.apps import app_publish, app_update
from tests.apps import live

pytestmark = [pytest.mark.django_db(transaction=True)]

daphne_server = live.daphne_server


def client_for(cls, server, key):
    client = cls(key)
    client.base_url = f"{server.url}/v1"
    return client


@pytest.fixture
def chat_key(tenant, make_app, app_key):
    app = make_app(tenant, publish=False, name="Dify client chat")
    config = {
        **app.config,
        "opening_statement": "Welcome.",
        "file_upload": {
            "enabled": True,
            "allowed_file_types": ["document"],
            "allowed_file_upload_methods": ["local_file"],
        },
    }
    app_update(tenant=tenant, app=app, config=config)
    app_publish(tenant=tenant, app=app)
    return app_key(app)


def test_a_conversation_through_difys_client(daphne_server, chat_key):
    client = client_for(ChatClient, daphne_server, chat_key)

    parameters = client.get_application_parameters("alice")
    assert parameters.status_code == 200
    assert parameters.json()["opening_statement"] == "Welcome."

    blocking = client.create_chat_message({}, "What is weft?", "alice")
    assert blocking.status_code == 200
    first = blocking.json()
    assert first["answer"] and first["conversation_id"]

    streamed = client.create_chat_message(
        {},
        "And warp?",
        "alice",
        response_mode="streaming",
        conversation_id=first["conversation_id"],
    )
    assert streamed.status_code == 200
    events = [
        json.loads(line[len("data:") :])
        for line in streamed.iter_lines(decode_unicode=True)
        if line and line.startswith("data:")
    ]
    assert events[-1]["event"] == "message_end"
    assert events[0]["conversation_id"] == first["conversation_id"]

    history = client.get_conversation_messages("alice", first["conversation_id"], limit=10)
    assert [m["query"] for m in history.json()["data"]] == ["What is weft?", "And warp?"]
    older = client.get_conversation_messages(
        "alice", first["conversation_id"], first_id=history.json()["data"][1]["id"], limit=1
    )
    assert [m["query"] for m in older.json()["data"]] == ["What is weft?"]

    conversations = client.get_conversations("alice", limit=5)
    assert [c["id"] for c in conversations.json()["data"]] == [first["conversation_id"]]

    renamed = client.rename_conversation(first["conversation_id"], "Weaving", "alice")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Weaving"

    feedback = client.message_feedback(first["message_id"], "like", "alice")
    assert feedback.status_code == 200 and feedback.json() == {"result": "success"}

    uploaded = client.file_upload("alice", {"file": ("notes.txt", b"Warp and weft.", "text/plain")})
    assert uploaded.status_code == 201 and uploaded.json()["mime_type"] == "text/plain"
    with_file = client.create_chat_message(
        {},
        "Read this",
        "alice",
        files=[
            {
                "type": "document",
                "transfer_method": "local_file",
                "upload_file_id": uploaded.json()["id"],
            }
        ],
    )
    assert with_file.status_code == 200, with_file.text


def test_a_completion_through_difys_client(daphne_server, tenant, make_app, app_key):
    app = make_app(tenant, App.Mode.COMPLETION, publish=False, name="Dify client completion")
    app_update(tenant=tenant, app=app, config={**app.config, "pre_prompt": "Write a haiku."})
    app_publish(tenant=tenant, app=app)
    client = client_for(CompletionClient, daphne_server, app_key(app))
    blocking = client.create_completion_message({}, "blocking", "alice")
    assert blocking.status_code == 200 and blocking.json()["answer"]
    streamed = client.create_completion_message({}, "streaming", "alice")
    names = [
        json.loads(line[len("data:") :])["event"]
        for line in streamed.iter_lines(decode_unicode=True)
        if line and line.startswith("data:")
    ]
    assert names[-1] == "message_end" and "message" in names


def test_difys_client_sees_difys_errors(daphne_server, chat_key):
    client = client_for(ChatClient, daphne_server, chat_key)
    missing = client.create_chat_message({}, "Hi", "alice", conversation_id="nope")
    assert missing.status_code == 404
    assert missing.json() == {
        "code": "not_found",
        "message": "Conversation Not Exists.",
        "status": 404,
    }
    wrong = client_for(ChatClient, daphne_server, "app-" + "x" * 32)
    assert wrong.get_conversations("alice").json()["code"] == "unauthorized"
