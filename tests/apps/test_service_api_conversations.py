"""Conversations, history, feedback and suggested questions over real HTTP against a running
Daphne: Dify's cursor pages (`last_id` + `sort_by`, `first_id` newest page first, each page
oldest first), rename and delete, ratings, and who may see what (other users, other apps,
other tenants: 404)."""

from __future__ import annotations

import pytest

from apps.models import App, Conversation, MessageFeedback
from apps.services.apps import app_publish, app_update
from tests.apps import live
from tests.apps.live import envelope

pytestmark = [pytest.mark.django_db(transaction=True)]

daphne_server = live.daphne_server
service_api = live.service_api


def ask(api, query, user="alice", conversation_id=None, **fields):
    body = {"inputs": {}, "query": query, "user": user, **fields}
    if conversation_id:
        body["conversation_id"] = conversation_id
    response = api.post("/chat-messages", body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def api(service_api):
    return service_api()


def ids(page) -> list[str]:
    return [item["id"] for item in page["data"]]


# --- Conversations ---------------------------------------------------------------------------


def test_conversations_page_by_last_id_in_every_order(api):
    made = [ask(api, f"Question {n}")["conversation_id"] for n in range(5)]
    # Touch the oldest so that updated_at and created_at orders differ.
    ask(api, "Again", conversation_id=made[0])
    by_created = list(reversed(made))
    by_updated = [made[0], *reversed(made[1:])]
    expected = {
        "-created_at": by_created,
        "created_at": made,
        "-updated_at": by_updated,
        "updated_at": list(reversed(by_updated)),
    }
    for sort_by, order in expected.items():
        seen: list[str] = []
        last_id = None
        while True:
            page = api.get(
                "/conversations", user="alice", limit=2, sort_by=sort_by, last_id=last_id
            ).json()
            assert page["limit"] == 2
            seen += ids(page)
            if not page["has_more"]:
                break
            last_id = page["data"][-1]["id"]
        assert seen == order, sort_by
    assert ids(api.get("/conversations", user="alice").json()) == by_updated  # -updated_at


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"limit": 0}, 400, "invalid_param"),
        ({"limit": 101}, 400, "invalid_param"),
        ({"limit": "many"}, 400, "invalid_param"),
        ({"sort_by": "name"}, 400, "invalid_param"),
        ({"last_id": "00000000-0000-0000-0000-000000000000"}, 404, "not_found"),
        ({"last_id": "garbage"}, 404, "not_found"),
        ({"user": None}, 400, "invalid_param"),
    ],
)
def test_bad_conversation_list_parameters(api, params, status, code):
    response = api.get("/conversations", **{"user": "alice", **params})
    assert envelope(response) == (status, code)


def test_conversations_are_per_user_and_per_app(api, service_api):
    mine = ask(api, "Hi")["conversation_id"]
    assert ids(api.get("/conversations", user="alice").json()) == [mine]
    assert ids(api.get("/conversations", user="bob").json()) == []
    other_app = service_api()
    assert ids(other_app.get("/conversations", user="alice").json()) == []
    workflow = service_api(mode=App.Mode.WORKFLOW)
    assert envelope(workflow.get("/conversations", user="alice")) == (400, "not_chat_app")


def test_rename_and_auto_generate(api):
    conversation_id = ask(api, "Tell me about wool socks")["conversation_id"]
    path = f"/conversations/{conversation_id}/name"
    renamed = api.post(path, {"name": "  Socks  ", "user": "alice"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Socks" and renamed.json()["id"] == conversation_id
    generated = api.post(path, {"auto_generate": True, "user": "alice"}).json()
    assert generated["name"] and generated["name"] != "Socks"
    assert ids(api.get("/conversations", user="alice").json()) == [conversation_id]
    assert envelope(api.post(path, {"user": "alice"})) == (400, "invalid_param")
    assert envelope(api.post(path, {"name": "   ", "user": "alice"})) == (400, "invalid_param")
    assert envelope(api.post(path, {"name": "x" * 300, "user": "alice"})) == (
        400,
        "invalid_param",
    )
    assert envelope(api.post(path, {"name": "Mine", "user": "bob"})) == (404, "not_found")
    assert envelope(api.post("/conversations/nope/name", {"name": "x", "user": "alice"})) == (
        404,
        "not_found",
    )


def test_delete_hides_the_conversation_from_its_user(api):
    conversation_id = ask(api, "Hi")["conversation_id"]
    assert envelope(api.delete(f"/conversations/{conversation_id}", {"user": "bob"})) == (
        404,
        "not_found",
    )
    deleted = api.delete(f"/conversations/{conversation_id}", {"user": "alice"})
    assert deleted.status_code == 204 and deleted.content == b""
    assert ids(api.get("/conversations", user="alice").json()) == []
    history = api.get("/messages", user="alice", conversation_id=conversation_id)
    assert envelope(history) == (404, "not_found")
    again = api.post(
        "/chat-messages",
        {"inputs": {}, "query": "More", "user": "alice", "conversation_id": conversation_id},
    )
    assert envelope(again) == (404, "not_found")
    assert again.json()["message"] == "Conversation Not Exists."
    assert Conversation.dangerously_unscoped.get(pk=conversation_id).is_deleted  # kept
    # The user may also name themselves in the query string (DELETE bodies get dropped).
    other = ask(api, "Hi")["conversation_id"]
    assert api.client.delete(f"/conversations/{other}", params={"user": "alice"}).status_code == 204


# --- History ---------------------------------------------------------------------------------


def test_history_pages_by_first_id_newest_page_first(api):
    conversation_id = None
    made = []
    for n in range(5):
        answer = ask(api, f"Q{n}", conversation_id=conversation_id)
        conversation_id = answer["conversation_id"]
        made.append(answer["id"])
    page = api.get("/messages", user="alice", conversation_id=conversation_id, limit=2).json()
    assert ids(page) == made[3:5] and page["has_more"] is True and page["limit"] == 2
    older = api.get(
        "/messages",
        user="alice",
        conversation_id=conversation_id,
        limit=2,
        first_id=page["data"][0]["id"],
    ).json()
    assert ids(older) == made[1:3] and older["has_more"] is True
    oldest = api.get(
        "/messages",
        user="alice",
        conversation_id=conversation_id,
        limit=2,
        first_id=older["data"][0]["id"],
    ).json()
    assert ids(oldest) == made[:1] and oldest["has_more"] is False
    everything = api.get("/messages", user="alice", conversation_id=conversation_id).json()
    assert [m["query"] for m in everything["data"]] == [f"Q{n}" for n in range(5)]
    assert everything["has_more"] is False


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"conversation_id": None}, 400, "invalid_param"),
        ({"limit": 0}, 400, "invalid_param"),
        ({"limit": 101}, 400, "invalid_param"),
        ({"first_id": "00000000-0000-0000-0000-000000000000"}, 404, "not_found"),
        ({"conversation_id": "nope"}, 404, "not_found"),
        ({"user": "bob"}, 404, "not_found"),
        ({"user": None}, 400, "invalid_param"),
    ],
)
def test_bad_history_parameters(api, params, status, code):
    conversation_id = ask(api, "Hi")["conversation_id"]
    query = {"user": "alice", "conversation_id": conversation_id, **params}
    assert envelope(api.get("/messages", **query)) == (status, code)


def test_history_of_a_completion_app_is_not_a_chat(service_api):
    completion = service_api(mode=App.Mode.COMPLETION)
    response = completion.get("/messages", user="alice", conversation_id="x")
    assert envelope(response) == (400, "not_chat_app")


# --- Feedback --------------------------------------------------------------------------------


def test_feedback_is_shown_in_history_and_listed_for_the_app(api):
    answer = ask(api, "Rate me")
    path = f"/messages/{answer['id']}/feedbacks"
    liked = api.post(path, {"rating": "like", "user": "alice", "content": "Nice"})
    assert liked.status_code == 200 and liked.json() == {"result": "success"}
    history = api.get("/messages", user="alice", conversation_id=answer["conversation_id"])
    assert history.json()["data"][0]["feedback"] == {"rating": "like"}
    (item,) = api.get("/app/feedbacks").json()["data"]
    assert item["message_id"] == answer["id"] and item["rating"] == "like"
    assert item["content"] == "Nice" and item["from_source"] == "user"
    assert item["conversation_id"] == answer["conversation_id"]
    assert isinstance(item["created_at"], str)

    api.post(path, {"rating": "dislike", "user": "alice"})
    assert [i["rating"] for i in api.get("/app/feedbacks").json()["data"]] == ["dislike"]
    api.post(path, {"rating": None, "user": "alice"})
    assert api.get("/app/feedbacks").json()["data"] == []
    history = api.get("/messages", user="alice", conversation_id=answer["conversation_id"])
    assert history.json()["data"][0]["feedback"] is None
    assert not MessageFeedback.dangerously_unscoped.exists()


def test_bad_feedback(api):
    answer = ask(api, "Rate me")
    path = f"/messages/{answer['id']}/feedbacks"
    assert envelope(api.post(path, {"rating": "meh", "user": "alice"})) == (400, "invalid_param")
    assert envelope(api.post(path, {"rating": "like"})) == (400, "invalid_param")
    assert envelope(api.post(path, {"rating": "like", "user": "bob"})) == (404, "not_found")
    response = api.post("/messages/nope/feedbacks", {"rating": "like", "user": "alice"})
    assert envelope(response) == (404, "not_found")
    assert envelope(api.get("/app/feedbacks", limit=0)) == (400, "invalid_param")
    assert envelope(api.get("/app/feedbacks", page=0)) == (400, "invalid_param")


def test_app_feedbacks_page(api):
    conversation_id = None
    for n in range(3):
        answer = ask(api, f"Q{n}", conversation_id=conversation_id)
        conversation_id = answer["conversation_id"]
        api.post(f"/messages/{answer['id']}/feedbacks", {"rating": "like", "user": "alice"})
    assert len(api.get("/app/feedbacks", limit=2).json()["data"]) == 2
    assert len(api.get("/app/feedbacks", limit=2, page=2).json()["data"]) == 1


# --- Suggested questions ---------------------------------------------------------------------


def test_suggested_questions_when_the_app_offers_them(service_api, tenant, make_app):
    app = make_app(tenant, publish=False, name="Suggests")
    config = {**app.config, "suggested_questions_after_answer": {"enabled": True}}
    app_update(tenant=tenant, app=app, config=config)
    app_publish(tenant=tenant, app=app)
    api = service_api(app)
    answer = ask(api, "Tell me about looms")
    response = api.get(f"/messages/{answer['id']}/suggested", user="alice")
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == "success" and isinstance(body["data"], list)
    assert all(isinstance(question, str) for question in body["data"])
    assert envelope(api.get(f"/messages/{answer['id']}/suggested", user="bob")) == (
        404,
        "not_found",
    )


def test_suggested_questions_when_the_app_does_not(api):
    answer = ask(api, "Hi")
    response = api.get(f"/messages/{answer['id']}/suggested", user="alice")
    assert envelope(response) == (403, "app_suggested_questions_after_answer_disabled")


# --- Another tenant --------------------------------------------------------------------------


def test_another_tenants_key_reaches_nothing_of_this_one(api, service_api, make_app, other_tenant):
    answer = ask(api, "Private")
    conversation_id, message_id = answer["conversation_id"], answer["id"]
    foreign = service_api(make_app(other_tenant, name="Theirs"))
    checks = [
        foreign.get("/messages", user="alice", conversation_id=conversation_id),
        foreign.post(f"/messages/{message_id}/feedbacks", {"rating": "like", "user": "alice"}),
        foreign.get(f"/messages/{message_id}/suggested", user="alice"),
        foreign.post(f"/conversations/{conversation_id}/name", {"name": "x", "user": "alice"}),
        foreign.delete(f"/conversations/{conversation_id}", {"user": "alice"}),
        foreign.get(f"/conversations/{conversation_id}/variables", user="alice"),
        foreign.get(f"/chat-messages/{message_id}/events", user="alice"),
        foreign.post(
            "/chat-messages",
            {"inputs": {}, "query": "x", "user": "alice", "conversation_id": conversation_id},
        ),
    ]
    assert [envelope(response) for response in checks] == [(404, "not_found")] * len(checks)
    assert foreign.get("/conversations", user="alice").json()["data"] == []
    assert foreign.get("/app/feedbacks").json()["data"] == []
    assert not Conversation.dangerously_unscoped.get(pk=conversation_id).is_deleted
