"""Chat and completion over real HTTP against a running Daphne: blocking, streaming (SSE
read line by line as a client does), Weft's `async` mode, stop, reconnect-and-resume with
`Last-Event-ID`, clients that leave, and each bad input with Dify's code and status."""

from __future__ import annotations

import time

import httpx
import pytest
from django.conf import settings

from apps.models import App, Conversation, Message
from tenants.context import tenant_context
from tests.apps import live
from tests.apps.live import envelope, read_sse, start_worker, wait_for
from tests.apps.pipeline_support import configure
from tests.providers import conftest as provider_fixtures

pytestmark = [pytest.mark.django_db(transaction=True)]

daphne_server = live.daphne_server
service_api = live.service_api
# runtime_state = provider_fixtures.runtime_state
credential = provider_fixtures.credential

WORDS = " ".join(f"w{i}" for i in range(40))


@pytest.fixture
def fake(credential, fake_llm):
    """The fake LLM, set up as the tenant's OpenAI provider."""
    credential()
    return fake_llm


@pytest.fixture
def slow(fake):
    """The fake LLM answering 40 words, 50 ms apart (two seconds in all)."""
    fake.latency_per_token = 0.05
    fake.script(WORDS, times=5)
    return fake


@pytest.fixture
def fake_app(tenant, make_app, fake):
    return configure(make_app(tenant, App.Mode.CHAT))


def ask(api, query="Hello there", user="alice", **fields):
    body = {"inputs": {}, "query": query, "user": user, **fields}
    return api.post("/chat-messages", body)


def stream(api, path, body=None, **kwargs):
    """The SSE events of a POST (or GET when no body), to their end."""
    method = "GET" if body is None else "POST"
    options = {"json": body} if body is not None else {}
    with api.stream(method, path, **options, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_sse(response)


def answer_of(events) -> str:
    text = ""
    for event in events:
        if event.name in ("message", "agent_message"):
            text += event.data["answer"]
        elif event.name == "message_replace":
            text = event.data["answer"]
    return text


def message_row(message_id) -> Message:
    return Message.dangerously_unscoped.get(pk=message_id)


# --- Blocking --------------------------------------------------------------------------------


def test_blocking_chat_answers_in_difys_shape(service_api):
    api = service_api()
    response = ask(api)
    assert response.status_code == 200
    body = response.json()
    assert body["event"] == "message" and body["mode"] == "chat"
    assert body["task_id"] == body["id"] == body["message_id"]
    assert body["answer"] and isinstance(body["created_at"], int)
    usage = body["metadata"]["usage"]
    assert {"prompt_tokens", "completion_tokens", "total_tokens", "total_price", "currency"} <= (
        set(usage)
    )
    assert body["metadata"]["retriever_resources"] == []
    saved = message_row(body["message_id"])
    assert saved.status == Message.Status.NORMAL and saved.answer == body["answer"]
    assert str(saved.conversation_id) == body["conversation_id"]


def test_a_conversation_goes_on_and_is_listed_with_its_history(service_api):
    api = service_api()
    first = ask(api, "First question").json()
    second = ask(api, "Second question", conversation_id=first["conversation_id"]).json()
    assert second["conversation_id"] == first["conversation_id"]

    conversations = api.get("/conversations", user="alice").json()
    assert conversations["has_more"] is False and conversations["limit"] == 20
    (item,) = conversations["data"]
    assert item["id"] == first["conversation_id"] and item["status"] == "normal"
    assert set(item) == {
        "id",
        "name",
        "inputs",
        "status",
        "introduction",
        "created_at",
        "updated_at",
    }

    history = api.get("/messages", user="alice", conversation_id=first["conversation_id"]).json()
    assert [m["query"] for m in history["data"]] == ["First question", "Second question"]
    assert [m["id"] for m in history["data"]] == [first["id"], second["id"]]
    newest = history["data"][-1]
    assert newest["answer"] == second["answer"] and newest["feedback"] is None
    assert newest["message_files"] == [] and newest["agent_thoughts"] == []
    # Another user sees none of it.
    assert api.get("/conversations", user="bob").json()["data"] == []
    refused = api.get("/messages", user="bob", conversation_id=first["conversation_id"])
    assert envelope(refused) == (404, "not_found")
    assert refused.json()["message"] == "Conversation Not Exists."


def test_completion_app_blocking_and_streaming(service_api, tenant, make_app):
    app = make_app(tenant, App.Mode.COMPLETION)
    api = service_api(app)
    body = api.post(
        "/completion-messages", {"inputs": {}, "query": "A haiku", "user": "alice"}
    ).json()
    assert body["mode"] == "completion" and body["answer"]
    assert "conversation_id" not in body or body["conversation_id"] is None
    events = stream(
        api,
        "/completion-messages",
        {
            "inputs": {},
            "query": "A haiku",
            "user": "alice",
            "response_mode": "streaming",
            "files": None,
        },
    )
    assert events[-1].name == "message_end"
    assert all("conversation_id" not in event.data for event in events)


# --- Streaming -------------------------------------------------------------------------------


def test_streaming_chat_sends_difys_events_with_ids(service_api):
    api = service_api()
    body = {"inputs": {}, "query": "Hi", "user": "alice", "response_mode": "streaming"}
    with api.stream("POST", "/chat-messages", json=body) as response:
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = read_sse(response)
    assert [e.name for e in events][-1] == "message_end"
    assert {e.name for e in events[:-1]} == {"message"}
    task_id = events[0].data["task_id"]
    for event in events:
        assert event.data["task_id"] == event.data["message_id"] == task_id
        assert event.data["conversation_id"] == events[0].data["conversation_id"]
    ids = [tuple(map(int, e.id.split("-"))) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert answer_of(events) == message_row(task_id).answer


def test_resume_after_the_stream_ended_with_last_event_id(service_api):
    api = service_api()
    events = stream(
        api,
        "/chat-messages",
        {"inputs": {}, "query": "Hi", "user": "alice", "response_mode": "streaming"},
    )
    task_id = events[0].data["task_id"]
    path = f"/chat-messages/{task_id}/events"
    everything = stream(api, path, params={"user": "alice"})
    assert [e.id for e in everything] == [e.id for e in events]
    rest = stream(api, path, params={"user": "alice"}, headers={"Last-Event-ID": events[0].id})
    assert [e.id for e in rest] == [e.id for e in events[1:]]
    # The query parameter does the same for clients that cannot set headers.
    tail = stream(api, path, params={"user": "alice", "last_event_id": events[-2].id})
    assert [e.name for e in tail] == ["message_end"]


def test_reconnect_mid_stream_resumes_where_it_left(service_api, fake_app, slow):
    api = service_api(fake_app)
    body = {
        "inputs": {},
        "query": "Count",
        "user": "alice",
        "response_mode": "streaming",
        "auto_generate_name": False,
    }
    with api.stream("POST", "/chat-messages", json=body) as response:
        first = read_sse(response, stop_after=3)  # then the client drops the connection
    task_id = first[0].data["task_id"]
    assert message_row(task_id).status == Message.Status.RUNNING
    rest = stream(
        api,
        f"/chat-messages/{task_id}/events",
        params={"user": "alice"},
        headers={"Last-Event-ID": first[-1].id},
    )
    assert rest[-1].name == "message_end"
    assert answer_of(first + rest) == WORDS
    assert [e.id for e in first + rest] == sorted({e.id for e in first + rest}, key=_order)
    saved = message_row(task_id)
    assert saved.status == Message.Status.NORMAL and saved.answer == WORDS


def _order(entry_id: str) -> tuple[int, int]:
    left, right = entry_id.split("-")
    return int(left), int(right)


def test_a_client_leaving_mid_stream_does_not_stop_the_task(service_api, fake_app, slow):
    api = service_api(fake_app)
    body = {"inputs": {}, "query": "Count", "user": "alice", "response_mode": "streaming"}
    body["auto_generate_name"] = False
    with api.stream("POST", "/chat-messages", json=body) as response:
        (first,) = read_sse(response, stop_after=1)
    task_id = first.data["task_id"]
    saved = wait_for(
        lambda: (m := message_row(task_id)).status != Message.Status.RUNNING and m, timeout=20
    )
    assert saved.status == Message.Status.NORMAL and saved.answer == WORDS
    assert slow.cancelled == 0


def test_a_blocking_client_leaving_does_not_stop_the_task(service_api, fake_app, slow):
    api = service_api(fake_app)
    api.client.timeout = httpx.Timeout(0.5)
    with pytest.raises(httpx.ReadTimeout):
        ask(api, "Count", auto_generate_name=False)
    with tenant_context(fake_app.tenant):
        assert wait_for(lambda: Message.objects.filter(app=fake_app).exists())
        message = Message.objects.get(app=fake_app)
    saved = wait_for(
        lambda: (m := message_row(message.pk)).status != Message.Status.RUNNING and m, timeout=20
    )
    assert saved.status == Message.Status.NORMAL and saved.answer == WORDS


def test_blocking_waits_out_a_slow_model(service_api, fake_app, fake):
    """A model that takes its time before its first word (longer than the Redis client's
    socket timeout, 5 s in redis-py 8) still gets its blocking answer."""
    fake.first_token_latency = 6.0
    fake.script("slow but sure")
    response = ask(service_api(fake_app), "Take your time", auto_generate_name=False)
    assert response.status_code == 200, response.text
    assert response.json()["answer"] == "slow but sure"


def test_pings_keep_a_quiet_stream_open_and_json_clients_survive_them(service_api, fake_app, fake):
    # The test server pings every second, once settings read WEFT_SSE_PING_SECONDS.
    every = 1.0 if hasattr(settings, "WEFT_SSE_PING_SECONDS") else 10.0
    fake.first_token_latency = every * 1.5
    fake.script("late but here")
    api = service_api(fake_app)
    body = {"inputs": {}, "query": "Wait", "user": "alice", "response_mode": "streaming"}
    body["auto_generate_name"] = False
    with api.stream("POST", "/chat-messages", json=body) as response:
        lines = list(response.iter_lines())
    pings = [line for line in lines if line == "event: ping"]
    data = [line for line in lines if line.startswith("data:")]
    assert pings, "a quiet stream gets pings"
    import json

    parsed = [json.loads(line[5:]) for line in data]  # a client parsing every data: line
    assert parsed[-1]["event"] == "message_end"


# --- Weft's async mode -----------------------------------------------------------------------


@pytest.mark.slow
def test_async_mode_answers_202_and_a_worker_runs_the_task(service_api):
    api = service_api()
    response = ask(api, "Later please", response_mode="async")
    assert response.status_code == 202
    accepted = response.json()
    assert set(accepted) == {"task_id", "message_id", "conversation_id"}
    assert accepted["task_id"] == accepted["message_id"]
    assert message_row(accepted["message_id"]).status == Message.Status.RUNNING
    worker = start_worker()
    try:
        events = stream(
            api, f"/chat-messages/{accepted['task_id']}/events", params={"user": "alice"}
        )
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert events[-1].name == "message_end"
    saved = message_row(accepted["message_id"])
    assert saved.status == Message.Status.NORMAL and saved.answer == answer_of(events)


# --- Stop ------------------------------------------------------------------------------------


def test_stop_ends_the_stream_and_keeps_what_was_said(service_api, fake_app, slow):
    api = service_api(fake_app)
    body = {"inputs": {}, "query": "Count", "user": "alice", "response_mode": "streaming"}
    body["auto_generate_name"] = False
    with api.stream("POST", "/chat-messages", json=body) as response:
        lines = response.iter_lines()
        events = []
        task_id = None
        fields = {}
        for line in lines:
            if line.startswith("data:"):
                import json

                fields = json.loads(line[5:])
                events.append(fields)
                if task_id is None:
                    task_id = fields["task_id"]
                    stopped = api.post(f"/chat-messages/{task_id}/stop", {"user": "alice"})
                    assert stopped.status_code == 200
                    assert stopped.json() == {"result": "success"}
    assert events[-1]["event"] == "message_end"
    saved = message_row(task_id)
    assert saved.status == Message.Status.STOPPED
    assert WORDS.startswith(saved.answer) and saved.answer != WORDS


def test_stopping_another_users_task_is_ignored(service_api, fake_app, slow):
    api = service_api(fake_app)
    body = {"inputs": {}, "query": "Count", "user": "alice", "response_mode": "streaming"}
    body["auto_generate_name"] = False
    with api.stream("POST", "/chat-messages", json=body) as response:
        (first,) = read_sse(response, stop_after=1)
    task_id = first.data["task_id"]
    refused = api.post(f"/chat-messages/{task_id}/stop", {"user": "mallory"})
    assert refused.status_code == 200 and refused.json() == {"result": "success"}
    unknown = api.post("/chat-messages/not-a-task/stop", {"user": "alice"})
    assert unknown.json() == {"result": "success"}
    saved = wait_for(
        lambda: (m := message_row(task_id)).status != Message.Status.RUNNING and m, timeout=20
    )
    assert saved.status == Message.Status.NORMAL and saved.answer == WORDS


def test_stop_a_completion(service_api, tenant, make_app, credential, fake_llm):
    credential()
    fake_llm.latency_per_token = 0.05
    fake_llm.script(WORDS)
    app = configure(make_app(tenant, App.Mode.COMPLETION, name="Slow completion"))
    api = service_api(app)
    body = {"inputs": {}, "query": "Count", "user": "alice", "response_mode": "streaming"}
    with api.stream("POST", "/completion-messages", json=body) as response:
        lines = response.iter_lines()
        (first,) = read_sse(lines, stop_after=1)
        task_id = first.data["task_id"]
        stopped = api.post(f"/completion-messages/{task_id}/stop", {"user": "alice"})
        assert stopped.json() == {"result": "success"}
        assert read_sse(lines)[-1].name == "message_end"
    saved = wait_for(lambda: (m := message_row(task_id)).status != Message.Status.RUNNING and m)
    assert saved.status == Message.Status.STOPPED and saved.conversation_id is None


def test_stop_needs_a_user_and_the_right_route(service_api, tenant, make_app):
    api = service_api()
    assert envelope(api.post("/chat-messages/x/stop", {})) == (400, "invalid_param")
    assert envelope(api.post("/completion-messages/x/stop", {"user": "a"})) == (
        400,
        "app_unavailable",
    )
    assert envelope(api.post("/workflows/tasks/x/stop", {"user": "a"})) == (
        400,
        "not_workflow_app",
    )


# --- Events of a task ------------------------------------------------------------------------


def test_events_of_a_foreign_or_unknown_task_are_404_and_expired_ones_410(
    service_api, tenant, other_tenant, make_app
):
    api = service_api()
    done = ask(api).json()
    path = f"/chat-messages/{done['task_id']}/events"
    assert envelope(api.get(path, user="bob")) == (404, "not_found")
    assert envelope(api.get("/chat-messages/nope/events", user="alice")) == (404, "not_found")
    assert envelope(api.get(path)) == (400, "invalid_param")  # no user
    bad_id = api.get(path, user="alice", last_event_id="yesterday")
    assert envelope(bad_id) == (400, "invalid_param")
    # Another tenant's key cannot reach it either.
    foreign = service_api(make_app(other_tenant))
    assert envelope(foreign.get(path, user="alice")) == (404, "not_found")
    # An hour later the stream is gone: 410.
    import redis
    from django.conf import settings

    from workflows import streams

    redis.Redis.from_url(settings.REDIS_URL).delete(streams.events_key(done["task_id"]))
    assert envelope(api.get(path, user="alice")) == (410, "events_expired")


# --- Limits ----------------------------------------------------------------------------------


def test_runs_at_once_are_limited_per_app(service_api, tenant, make_app, fake):
    from apps.services.apps import app_update

    app = configure(make_app(tenant, App.Mode.CHAT))
    app_update(tenant=tenant, app=app, max_active_requests=1)
    fake.latency_per_token = 0.05
    fake.script(WORDS)
    api = service_api(app)
    body = {"inputs": {}, "query": "Count", "user": "alice", "response_mode": "streaming"}
    body["auto_generate_name"] = False
    with api.stream("POST", "/chat-messages", json=body) as response:
        lines = response.iter_lines()
        (first,) = read_sse(lines, stop_after=1)
        refused = ask(api, "Me too", auto_generate_name=False)
        assert envelope(refused) == (429, "too_many_requests")
        assert read_sse(lines)[-1].name == "message_end"
    with tenant_context(tenant):
        assert Message.objects.filter(app=app).count() == 1  # the refused one wrote nothing
    wait_for(lambda: message_row(first.data["task_id"]).status == Message.Status.NORMAL)
    time.sleep(0.2)  # the place is given back as the task ends
    assert ask(api, "Now", auto_generate_name=False).status_code == 200


# --- Bad input, one by one -------------------------------------------------------------------


def _nothing_saved(app: App) -> bool:
    with tenant_context(app.tenant):
        return not Message.objects.filter(app=app).exists() and not (
            Conversation.objects.filter(app=app).exists()
        )


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        ({"inputs": {}, "query": "hi"}, "invalid_param", 400),  # no user
        ({"query": "hi", "user": "a"}, "invalid_param", 400),  # no inputs
        ({"inputs": "x", "query": "hi", "user": "a"}, "invalid_param", 400),
        ({"inputs": {}, "user": "a"}, "invalid_param", 400),  # no query
        ({"inputs": {}, "query": 3, "user": "a"}, "invalid_param", 400),
        ({"inputs": {}, "query": "hi", "user": "a", "response_mode": "x"}, "invalid_param", 400),
        ({"inputs": {}, "query": "hi", "user": "a", "files": "x"}, "invalid_param", 400),
        ({"inputs": {}, "query": "hi", "user": ["a"]}, "invalid_param", 400),
        ({"inputs": {}, "query": "hi", "user": "a", "conversation_id": "nope"}, "not_found", 404),
    ],
)
def test_bad_chat_bodies(service_api, tenant, make_app, body, code, status):
    app = make_app(tenant)
    response = service_api(app).post("/chat-messages", body)
    assert envelope(response) == (status, code)
    assert _nothing_saved(app)


def test_an_oversized_query_is_refused(service_api, tenant, make_app, settings):
    app = make_app(tenant)
    query = "x" * (settings.WEFT_APP_MAX_QUERY_CHARS + 1)
    response = ask(service_api(app), query)
    assert envelope(response) == (400, "invalid_param")
    assert "query" in response.json()["message"]
    assert _nothing_saved(app)


def test_a_body_that_is_not_json(service_api):
    api = service_api()
    response = api.client.post(
        "/chat-messages", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert envelope(response) == (400, "invalid_param")


def test_wrong_input_types_against_the_form(service_api, tenant, make_app):
    app = make_app(tenant, publish=False)
    configure_form = {
        "user_input_form": [
            {"number": {"variable": "age", "label": "Age", "required": True}},
            {"select": {"variable": "tone", "label": "Tone", "options": ["a", "b"]}},
        ]
    }
    from apps.services.apps import app_publish, app_update
    from tests.apps.pipeline_support import config

    app_update(
        tenant=tenant,
        app=app,
        config={**config(**configure_form), "model": app.config["model"]},
    )
    app_publish(tenant=tenant, app=app)
    api = service_api(app)
    for inputs in ({}, {"age": "old"}, {"age": 3, "tone": "c"}):
        response = ask(api, inputs=inputs)
        assert envelope(response) == (400, "invalid_param"), inputs
    assert _nothing_saved(app)
    assert ask(api, inputs={"age": 3, "tone": "a"}).status_code == 200


def test_someone_elses_conversation_is_not_found(service_api, tenant, make_app):
    api = service_api()
    mine = ask(api, user="alice").json()
    response = ask(api, user="bob", conversation_id=mine["conversation_id"])
    assert envelope(response) == (404, "not_found")
    assert response.json()["message"] == "Conversation Not Exists."


def test_a_chat_call_to_a_workflow_app_and_a_completion_call_to_a_chat_app(
    service_api, tenant, make_app
):
    workflow = service_api(mode=App.Mode.WORKFLOW)
    assert envelope(ask(workflow)) == (400, "not_chat_app")
    chat = service_api()
    response = chat.post("/completion-messages", {"inputs": {}, "user": "a"})
    assert envelope(response) == (400, "app_unavailable")
    response = chat.post("/workflows/run", {"inputs": {}, "user": "a"})
    assert envelope(response) == (400, "not_workflow_app")


def test_a_model_the_provider_does_not_have(service_api, fake_app, fake):
    fake.models = ["another-model"]  # the provider answers 404 for the app's model
    api = service_api(fake_app)
    response = ask(api, auto_generate_name=False)
    assert envelope(response) == (400, "provider_not_initialize")
    # Streaming, the failure comes as an `error` event on an answer that is already 200.
    events = stream(
        api,
        "/chat-messages",
        {"inputs": {}, "query": "hi", "user": "a", "response_mode": "streaming"},
    )
    assert events[-1].name == "error"
    assert events[-1].data["code"] == "provider_not_initialize"
    assert events[-1].data["status"] == 400


def test_a_provider_failing_mid_stream_sends_an_error_event(service_api, fake_app, fake):
    fake.script("one two three four five six seven eight")
    fake.cut_stream_after(4)
    events = stream(
        service_api(fake_app),
        "/chat-messages",
        {
            "inputs": {},
            "query": "count",
            "user": "a",
            "response_mode": "streaming",
            "auto_generate_name": False,
        },
    )
    assert events[-1].name == "error"
    assert events[-1].data["code"] == "completion_request_error"
    assert message_row(events[-1].data["task_id"]).status == Message.Status.ERROR


# --- Resources -------------------------------------------------------------------------------


def _server_connections() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_tasks_that_outlive_their_request_give_their_connections_back(service_api):
    """A conversation is named after its answer, when the request that started it may be
    over: the naming's database connection must still go back to the server's pool (one
    leaked per conversation would starve the pool of a busy server)."""
    api = service_api()
    ask(api, "Warm up")
    time.sleep(1.0)
    before = _server_connections()
    for n in range(12):
        events = stream(
            api,
            "/chat-messages",
            {"inputs": {}, "query": f"Topic {n}", "user": "alice", "response_mode": "streaming"},
        )
        assert events[-1].name == "message_end"
    time.sleep(1.0)  # the naming tasks end
    assert _server_connections() <= before + 2
