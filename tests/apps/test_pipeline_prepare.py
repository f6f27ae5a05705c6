"""`prepare` refuses bad requests one by one with Dify's codes, and writes nothing when it
does; what it writes when it accepts."""

from __future__ import annotations

import io

import pytest
from django.test import override_settings

from apps.models import App, Conversation, Message, Source, UploadFile
from apps.pipeline import prepare
from apps.services.conversations import conversation_delete
from apps.services.files import upload_create
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, NotFound
from workflows.models import WorkflowRun

from .pipeline_support import configure, request, run_task, user_of

pytestmark = pytest.mark.django_db

FORM = [
    {"text-input": {"variable": "name", "label": "Name", "required": True, "max_length": 10}},
    {"number": {"variable": "age", "label": "Age"}},
    {"select": {"variable": "tone", "label": "Tone", "options": ["dry", "warm"]}},
]


@pytest.fixture
def chat_app(tenant, make_app):
    app = make_app(tenant, App.Mode.CHAT)
    return configure(
        app,
        model={"provider": "weft", "name": "weft-offline-chat"},
        user_input_form=FORM,
        file_upload={
            "enabled": True,
            "allowed_file_types": ["image", "document"],
            "allowed_file_upload_methods": ["local_file", "remote_url"],
            "number_limits": 2,
        },
    )


def counts(tenant) -> tuple[int, int, int]:
    with tenant_context(tenant):
        return (
            Conversation.objects.count(),
            Message.objects.count(),
            WorkflowRun.objects.count(),
        )


def refused(tenant, req, error=InvalidInput, match=None):
    before = counts(tenant)
    with pytest.raises(error, match=match) as raised:
        prepare(req)
    assert counts(tenant) == before, "prepare wrote rows before refusing"
    return raised.value


GOOD = {"name": "Ann", "age": 30, "tone": "dry"}


def upload(app, end_user, data=b"hello there, plain text", name="note.txt"):
    file = io.BytesIO(data)
    file.name = name
    return upload_create(app=app, end_user=end_user, uploaded=file)


def test_a_good_request_writes_the_conversation_and_a_running_message(tenant, chat_app):
    alice = user_of(chat_app)
    task = prepare(request(chat_app, alice, query="hi", inputs={**GOOD, "extra": "dropped"}))
    message = Message.dangerously_unscoped.get(pk=task.message_id)
    assert task.task_id == task.message_id and task.mode == "chat"
    assert task.tenant_id == str(tenant.pk) and task.app_id == str(chat_app.pk)
    assert task.auto_generate_name and task.workflow_run_id is None
    assert message.status == Message.Status.RUNNING and message.heartbeat_at is None
    assert message.inputs == GOOD and message.query == "hi"
    assert message.end_user == alice and message.source == Source.API
    assert message.app_version_id == chat_app.published_version_id
    conversation = message.conversation
    assert str(conversation.pk) == task.conversation_id
    assert conversation.inputs == GOOD and conversation.dialogue_count == 1
    assert conversation.name == "New conversation"


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"age": 3}, r"inputs\.name is required"),
        ({**GOOD, "name": "x" * 11}, r"inputs\.name: at most 10"),
        ({**GOOD, "name": 12}, r"inputs\.name: expected text"),
        ({**GOOD, "age": "old"}, r"inputs\.age: expected a number"),
        ({**GOOD, "age": True}, r"inputs\.age: expected a number"),
        ({**GOOD, "tone": "loud"}, r"inputs\.tone: “loud” is not one of"),
        ("not an object", r"inputs: expected an object"),
    ],
)
def test_bad_inputs_are_refused_one_by_one(tenant, chat_app, inputs, match):
    error = refused(tenant, request(chat_app, user_of(chat_app), query="hi", inputs=inputs))
    assert error.code == "invalid_param" and error.status == 400
    assert error.message


def test_query_is_required_and_bounded(tenant, chat_app):
    alice = user_of(chat_app)
    refused(tenant, request(chat_app, alice, query="   ", inputs=GOOD), match="query: this field")
    refused(tenant, request(chat_app, alice, query=42, inputs=GOOD), match="query: expected text")
    with override_settings(WEFT_APP_MAX_QUERY_CHARS=20):
        refused(
            tenant,
            request(chat_app, alice, query="x" * 21, inputs=GOOD),
            match="query: at most 20 characters",
        )


def test_a_caller_is_required(tenant, chat_app):
    refused(tenant, request(chat_app, None, query="hi", inputs=GOOD), match="user: this field")


def test_unknown_malformed_deleted_and_foreign_conversations_are_the_same_404(
    tenant, other_tenant, make_app, chat_app
):
    alice, bob = user_of(chat_app, "alice"), user_of(chat_app, "bob")
    theirs = prepare(request(chat_app, bob, query="hi", inputs=GOOD))
    other_app = configure(
        make_app(tenant, App.Mode.CHAT, name="other"),
        model={"provider": "weft", "name": "weft-offline-chat"},
    )
    elsewhere = prepare(request(other_app, user_of(other_app, "alice"), query="hi"))
    foreign_tenant_app = make_app(other_tenant, App.Mode.CHAT)
    abroad = prepare(request(foreign_tenant_app, user_of(foreign_tenant_app, "alice"), query="x"))
    mine = prepare(request(chat_app, alice, query="hi", inputs=GOOD))
    conversation = Conversation.dangerously_unscoped.get(pk=mine.conversation_id)
    conversation_delete(conversation=conversation)
    for conversation_id in (
        "3f1ee6a5-5b4c-4c39-a7b4-8f6f1c1c9e1d",
        "not-a-uuid",
        theirs.conversation_id,  # another end user's
        elsewhere.conversation_id,  # another app's
        abroad.conversation_id,  # another tenant's
        mine.conversation_id,  # deleted
    ):
        error = refused(
            tenant,
            request(chat_app, alice, query="again", inputs=GOOD, conversation_id=conversation_id),
            NotFound,
        )
        assert error.message == "Conversation Not Exists." and error.status == 404


def test_a_continued_conversation_keeps_its_inputs_and_counts_turns(chat_app):
    alice = user_of(chat_app)
    first = prepare(request(chat_app, alice, query="hi", inputs=GOOD))
    second = prepare(
        request(chat_app, alice, query="again", inputs={}, conversation_id=first.conversation_id)
    )
    assert second.conversation_id == first.conversation_id and not second.auto_generate_name
    message = Message.dangerously_unscoped.get(pk=second.message_id)
    assert message.inputs == GOOD
    assert message.conversation.dialogue_count == 2


# --- Files -----------------------------------------------------------------------------------


def test_files_are_checked_and_kept_in_difys_shape(chat_app):
    alice = user_of(chat_app)
    note = upload(chat_app, alice)
    task = prepare(
        request(
            chat_app,
            alice,
            query="read this",
            inputs=GOOD,
            files=[
                {
                    "type": "document",
                    "transfer_method": "local_file",
                    "upload_file_id": str(note.pk),
                },
                {"type": "image", "transfer_method": "remote_url", "url": "https://x.test/a.png"},
            ],
        )
    )
    local, remote = Message.dangerously_unscoped.get(pk=task.message_id).files
    assert local["upload_file_id"] == str(note.pk) and local["type"] == "document"
    assert local["filename"] == "note.txt" and local["mime_type"] == "text/plain"
    assert local["belongs_to"] == "user" and local["id"]
    assert remote["url"] == "https://x.test/a.png" and remote["mime_type"] == "image/png"


def test_bad_files_are_refused_one_by_one(tenant, chat_app, make_app):
    alice, bob = user_of(chat_app, "alice"), user_of(chat_app, "bob")
    mine, bobs = upload(chat_app, alice), upload(chat_app, bob)
    local = {"type": "document", "transfer_method": "local_file"}
    cases = [
        ("not a list", "files: expected a list"),
        (["nope"], r"files\[0\]: expected a file object"),
        ([{**local, "transfer_method": "ftp"}], r"transfer_method: expected local_file"),
        ([{**local, "upload_file_id": "x"}], r"upload_file_id: “x” is not a file id"),
        ([{**local, "upload_file_id": str(bobs.pk)}], r"files\[0\]: the upload .* was not found"),
        ([{**local, "type": "video", "upload_file_id": str(mine.pk)}], "does not take video"),
        (
            [{**local, "type": "image", "upload_file_id": str(mine.pk)}],
            "is a document, not an image",
        ),
        ([{"type": "image", "transfer_method": "remote_url", "url": "file:///etc/passwd"}], "http"),
        ([{**local, "upload_file_id": str(mine.pk)}] * 3, "files: at most 2 files"),
    ]
    for files, match in cases:
        refused(tenant, request(chat_app, alice, query="q", inputs=GOOD, files=files), match=match)
    plain = configure(
        make_app(tenant, App.Mode.CHAT, name="no files"),
        model={"provider": "weft", "name": "weft-offline-chat"},
    )
    refused(
        tenant,
        request(plain, user_of(plain), query="q", files=[{**local, "upload_file_id": "x"}]),
        match="does not take files",
    )


def test_another_tenants_upload_is_not_found(tenant, other_tenant, make_app, chat_app):
    theirs_app = make_app(other_tenant, App.Mode.CHAT)
    theirs = upload(theirs_app, user_of(theirs_app, "alice"))
    refused(
        tenant,
        request(
            chat_app,
            user_of(chat_app, "alice"),
            query="q",
            inputs=GOOD,
            files=[
                {
                    "type": "document",
                    "transfer_method": "local_file",
                    "upload_file_id": str(theirs.pk),
                }
            ],
        ),
        match="was not found",
    )
    assert UploadFile.dangerously_unscoped.filter(pk=theirs.pk).exists()


# --- Agent, completion, workflow modes ---------------------------------------------------------


def test_an_agent_with_a_tool_weft_lacks_is_refused(tenant, make_app):
    app = configure(
        make_app(tenant, App.Mode.AGENT_CHAT),
        agent_mode={
            "enabled": True,
            "tools": [{"provider_id": "nowhere", "tool_name": "teleport", "enabled": True}],
        },
    )
    error = refused(tenant, request(app, user_of(app), query="go"))
    assert "nowhere/teleport" in error.message and error.code == "invalid_param"


def test_a_completion_app_needs_no_query_and_makes_no_conversation(tenant, make_app):
    app = make_app(tenant, App.Mode.COMPLETION)
    task = prepare(request(app, user_of(app), query=""))
    assert task.conversation_id is None
    with tenant_context(tenant):
        assert Conversation.objects.count() == 0


def test_workflow_app_inputs_are_checked_against_its_start_node(tenant, make_app):
    app = make_app(tenant, App.Mode.WORKFLOW)  # start: query (paragraph, required)
    error = refused(tenant, request(app, user_of(app), inputs={}))
    assert "inputs.query is required" in error.message
    task = prepare(request(app, user_of(app), inputs={"query": "go"}))
    assert task.task_id == task.workflow_run_id and task.message_id is None
    run = WorkflowRun.dangerously_unscoped.get(pk=task.workflow_run_id)
    assert run.inputs["query"] == "go"
    assert run.inputs["__system"]["user_id"] == "alice"
    assert run.inputs["__system"]["app_id"] == str(app.pk)
    assert run.triggered_from == WorkflowRun.TriggeredFrom.APP_RUN


def test_chatflow_writes_message_and_run_together_or_nothing(tenant, make_app):
    app = make_app(tenant, App.Mode.CHATFLOW)
    refused(tenant, request(app, user_of(app), query=""), match="query: this field")
    task = prepare(request(app, user_of(app), query="hello"))
    message = Message.dangerously_unscoped.get(pk=task.message_id)
    assert str(message.workflow_run_id) == task.workflow_run_id
    system = message.workflow_run.inputs["__system"]
    assert system["query"] == "hello" and system["conversation_id"] == task.conversation_id
    assert system["dialogue_count"] == 1 and system["files"] == []
    run_task(task)  # and it runs
    message.refresh_from_db()
    assert message.status == Message.Status.NORMAL
