"""The chat pipeline of chat and completion apps, on real PostgreSQL and Redis, against the
fake LLM server (vendor wire) or the built-in offline model: the stream in Dify's shapes,
the saved message, memory, retrieval, prompts, moderation, annotation reply, failures."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from apps.models import App, Conversation, Message
from apps.pipeline import (
    AnnotationHit,
    SuggestionsDisabled,
    blocking_result,
    prepare,
    register_annotation_reply,
    suggested_questions,
    unregister_annotation_reply,
)
from apps.pipeline.events import AppSink
from apps.pipeline.naming import NAME_PROMPT, parse_questions
from providers.models import UsageEvent
from tenants.context import tenant_context
from tenants.exceptions import WeftError
from tests.providers import conftest as provider_fixtures
from tests.workflows.test_nodes_model import make_dataset
from workflows import streams

from .pipeline_support import (
    answer_of,
    ask,
    configure,
    names,
    read_events,
    request,
    run_task,
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
def chat_app(tenant, make_app, fake):
    return configure(make_app(tenant, App.Mode.CHAT), pre_prompt="You are terse.")


def sent(fake_llm, index: int = -1) -> list[tuple[str, str]]:
    """The messages of an answer's model request (conversation naming left out)."""
    answers = [r for r in fake_llm.requests if NAME_PROMPT not in str(r.json["messages"][0])]
    return [(m["role"], m["content"]) for m in answers[index].json["messages"]]


# --- A turn, streamed and saved --------------------------------------------------------------


def test_a_turn_streams_in_difys_shapes_and_is_saved(tenant, chat_app, fake):
    alice = user_of(chat_app)
    task, events, message = ask(chat_app, alice, "Is wool warm?")
    assert names(events)[-1] == "message_end"
    assert set(names(events)[:-1]) == {"message"}
    first = events[0]
    assert first["task_id"] == task.task_id == first["message_id"] == first["id"]
    assert first["conversation_id"] == task.conversation_id
    assert isinstance(first["created_at"], int)
    assert answer_of(events) == "You said: Is wool warm?"
    assert sent(fake) == [("system", "You are terse."), ("user", "Is wool warm?")]
    end = events[-1]
    usage = end["metadata"]["usage"]
    assert usage["prompt_tokens"] == 6 and usage["completion_tokens"] == 5
    assert usage["total_tokens"] == 11 and usage["currency"] == "USD"
    assert Decimal(usage["total_price"]) == Decimal(usage["prompt_price"]) + Decimal(
        usage["completion_price"]
    )
    assert end["metadata"]["retriever_resources"] == []
    assert message.status == Message.Status.NORMAL
    assert message.answer == "You said: Is wool warm?"
    assert (message.message_tokens, message.answer_tokens) == (6, 5)
    assert message.model_name == "gpt-4o-mini" and message.model_provider == "openai"
    assert message.latency > 0 and 0 < message.time_to_first_token <= message.latency
    assert message.total_price == Decimal(usage["total_price"])
    assert message.heartbeat_at is not None
    with tenant_context(tenant):
        event = UsageEvent.objects.get(message_id=message.pk)
    assert event.app_id == chat_app.pk and event.total_tokens == 11


def test_blocking_result_is_difys_blocking_body(chat_app):
    task, _, message = ask(chat_app, user_of(chat_app), "Hi")
    result = async_to_sync(blocking_result)(task)
    assert result["event"] == "message"
    assert result["id"] == result["message_id"] == task.message_id == result["task_id"]
    assert result["conversation_id"] == task.conversation_id
    assert result["mode"] == "chat"
    assert result["answer"] == message.answer == "You said: Hi"
    assert result["metadata"]["usage"]["total_tokens"] == 7
    assert result["created_at"] == int(message.created_at.timestamp())


def test_text_deltas_are_written_in_batches(chat_app, fake):
    fake.script(" ".join(f"w{i}" for i in range(300)))
    _, events, message = ask(chat_app, user_of(chat_app))
    assert len(message.answer.split()) == 300
    # 300 deltas arrive faster than Redis round trips: far fewer entries than tokens.
    assert len(events) < 100
    assert answer_of(events) == message.answer


def test_app_sink_merges_only_pending_deltas_of_one_kind():
    stream_id = f"merge-test-{uuid.uuid4()}"

    async def go():
        sink = AppSink(stream_id, {})
        sink.pending = [streams.entry("message", {"event": "message", "answer": "a"})]
        sink.writing = None
        await sink.add(
            [
                streams.entry("message", {"event": "message", "answer": "b"}),
                streams.entry("agent_thought", {"event": "agent_thought"}),
                streams.entry("message", {"event": "message", "answer": "c"}),
            ]
        )
        await sink.flush()

    # Written to a real stream: the three entries that stay apart.
    async_to_sync(go)()
    events = read_events_after(stream_id, 3)
    assert [(e["event"], e.get("answer")) for e in events] == [
        ("message", "ab"),
        ("agent_thought", None),
        ("message", "c"),
    ]


def read_events_after(stream_id: str, count: int) -> list[dict]:
    import json

    async def go():
        found = []
        async for _id, body in streams.read(stream_id, block_ms=200):
            if body is None:
                break
            found.append(json.loads(body))
            if len(found) == count:
                break
        await streams.client().delete(streams.events_key(stream_id))
        return found

    return async_to_sync(go)()


def test_the_built_in_model_answers_without_a_provider(tenant, make_app):
    app = make_app(tenant, App.Mode.CHAT)  # the starter config: the offline model
    _, events, message = ask(app, user_of(app), "hello")
    assert message.status == Message.Status.NORMAL
    assert message.model_provider == "offline"
    assert answer_of(events) == message.answer != ""
    assert names(events)[-1] == "message_end"


def test_the_run_slot_is_released(chat_app):
    from apps import limits

    task = prepare(request(chat_app, user_of(chat_app), query="x"))
    async_to_sync(limits.run_acquire)(str(chat_app.pk), task.task_id, 1)
    with pytest.raises(limits.TooManyRequests):
        async_to_sync(limits.run_acquire)(str(chat_app.pk), "other", 1)
    run_task(task)

    async def again():
        await limits.run_acquire(str(chat_app.pk), "next", 1)  # free again: no 429
        await limits.run_release(str(chat_app.pk), "next")

    async_to_sync(again)()


# --- Memory and conversations --------------------------------------------------------------


def test_memory_sends_the_previous_turns_within_the_window(chat_app, fake):
    configure(chat_app, pre_prompt="", memory={"window": {"enabled": True, "size": 2}})
    alice = user_of(chat_app)
    task, _, _ = ask(chat_app, alice, "one")
    for query in ("two", "three", "four"):
        ask(chat_app, alice, query, conversation_id=task.conversation_id)
    assert sent(fake) == [
        ("user", "two"),
        ("assistant", "You said: two"),
        ("user", "three"),
        ("assistant", "You said: three"),
        ("user", "four"),
    ]
    conversation = Conversation.dangerously_unscoped.get(pk=task.conversation_id)
    assert conversation.dialogue_count == 4
    assert Message.dangerously_unscoped.filter(conversation=conversation).count() == 4


def test_a_new_conversation_keeps_its_inputs_and_opening_statement(chat_app, fake):
    configure(
        chat_app,
        pre_prompt="Speak as {{persona}}.",
        opening_statement="Welcome!",
        user_input_form=[{"text-input": {"variable": "persona", "label": "P", "required": True}}],
    )
    alice = user_of(chat_app)
    task, _, _ = ask(chat_app, alice, "hi", inputs={"persona": "a pirate"})
    # Later turns keep the conversation's inputs whatever they send.
    ask(
        chat_app,
        alice,
        "again",
        inputs={"persona": "a judge"},
        conversation_id=task.conversation_id,
    )
    assert sent(fake)[0] == ("system", "Speak as a pirate.")
    conversation = Conversation.dangerously_unscoped.get(pk=task.conversation_id)
    assert conversation.inputs == {"persona": "a pirate"}
    assert conversation.introduction == "Welcome!"


def test_conversation_gets_a_generated_name_after_the_first_answer(chat_app, fake):
    fake.script("Hello!", match="Is wool warm")
    fake.script('"Wool and warmth."', match="title")
    task, _, _ = ask(chat_app, user_of(chat_app), "Is wool warm in winter?")
    conversation = Conversation.dangerously_unscoped.get(pk=task.conversation_id)
    assert conversation.name == "Wool and warmth"
    # The name came after the answer: the answer's request was the first.
    assert "Is wool warm" in fake.requests[0].json["messages"][-1]["content"]


def test_a_failed_name_falls_back_to_the_first_words(chat_app, fake):
    fake.script("Hello!", match="Is wool warm")
    fake.fail_next(status=400, match="title")
    task, _, _ = ask(
        chat_app, user_of(chat_app), "Is wool warm in winter when the wind blows hard today?"
    )
    conversation = Conversation.dangerously_unscoped.get(pk=task.conversation_id)
    assert conversation.name == "Is wool warm in winter when the wind…"


def test_no_name_is_generated_when_not_asked(chat_app, fake):
    task, _, _ = ask(chat_app, user_of(chat_app), "Is wool warm?", auto_generate_name=False)
    conversation = Conversation.dangerously_unscoped.get(pk=task.conversation_id)
    assert conversation.name == "New conversation"
    assert len(fake.requests) == 1


# --- Completion apps -------------------------------------------------------------------------


def test_a_completion_app_answers_its_prompt_without_a_conversation(tenant, make_app, fake):
    app = configure(
        make_app(tenant, App.Mode.COMPLETION),
        pre_prompt="Translate to French: {{text}}",
        user_input_form=[{"paragraph": {"variable": "text", "label": "Text", "required": True}}],
    )
    task, events, message = ask(app, user_of(app), "", inputs={"text": "good morning"})
    assert task.conversation_id is None and message.conversation_id is None
    assert "conversation_id" not in events[0]
    assert sent(fake) == [("user", "Translate to French: good morning")]
    result = async_to_sync(blocking_result)(task)
    assert result["mode"] == "completion" and "conversation_id" not in result
    assert result["answer"] == "You said: Translate to French: good morning"


def test_a_completion_apps_query_is_its_dataset_query_variable(tenant, make_app, fake):
    app = configure(
        make_app(tenant, App.Mode.COMPLETION),
        pre_prompt="Answer briefly.",
        dataset_query_variable="question",
        user_input_form=[{"text-input": {"variable": "question", "label": "Q"}}],
    )
    _, _, message = ask(app, user_of(app), "", inputs={"question": "Why is the sky blue?"})
    assert message.query == "Why is the sky blue?"
    assert sent(fake) == [("system", "Answer briefly."), ("user", "Why is the sky blue?")]


# --- Prompts ---------------------------------------------------------------------------------


def test_advanced_chat_prompt_fills_context_query_and_inputs(chat_app, fake):
    configure(
        chat_app,
        prompt_type="advanced",
        chat_prompt_config={
            "prompt": [
                {"role": "system", "text": "Tone: {{tone}}. Known: {{#context#}}"},
                {"role": "user", "text": "Q={{#query#}} {{unknown}}"},
            ]
        },
        user_input_form=[{"select": {"variable": "tone", "label": "T", "options": ["dry"]}}],
    )
    ask(chat_app, user_of(chat_app), "why {{tone}}?", inputs={"tone": "dry"})
    # The query is put in as typed: it is never read as a reference.
    assert sent(fake) == [("system", "Tone: dry. Known: "), ("user", "Q=why {{tone}}? {{unknown}}")]


def test_advanced_chat_history_goes_before_the_item_that_quotes_the_query(chat_app, fake):
    configure(
        chat_app,
        prompt_type="advanced",
        chat_prompt_config={
            "prompt": [
                {"role": "system", "text": "Be kind."},
                {"role": "user", "text": "Q={{#query#}}"},
            ]
        },
    )
    alice = user_of(chat_app)
    task, _, _ = ask(chat_app, alice, "first")
    ask(chat_app, alice, "second", conversation_id=task.conversation_id)
    assert sent(fake) == [
        ("system", "Be kind."),
        ("user", "first"),
        ("assistant", "You said: Q=first"),
        ("user", "Q=second"),
    ]


def test_advanced_completion_prompt_with_histories(chat_app, fake):
    configure(
        chat_app,
        prompt_type="advanced",
        model={"provider": "openai", "name": "gpt-4o-mini", "mode": "completion"},
        completion_prompt_config={
            "prompt": {"text": "{{#histories#}}\nMe: {{#query#}}"},
            "conversation_histories_role": {"user_prefix": "Me", "assistant_prefix": "Bot"},
        },
    )
    alice = user_of(chat_app)
    task, _, _ = ask(chat_app, alice, "first")
    ask(chat_app, alice, "second", conversation_id=task.conversation_id)
    assert sent(fake) == [("user", "Me: first\nBot: You said: \nMe: first\nMe: second")]


# --- Retrieval -------------------------------------------------------------------------------


def test_retrieval_puts_the_context_in_the_prompt_and_the_resources_in_message_end(
    tenant, chat_app, fake
):
    dataset = make_dataset(tenant)
    configure(
        chat_app,
        pre_prompt="",
        dataset_configs={
            "retrieval_model": "multiple",
            "top_k": 2,
            "datasets": {"datasets": [{"dataset": {"enabled": True, "id": str(dataset.pk)}}]},
        },
    )
    _, events, message = ask(chat_app, user_of(chat_app), "which fibre comes from sheep wool")
    system = sent(fake)[0]
    assert system[0] == "system" and "<context>" in system[1]
    assert "Wool is a protein fibre shorn from sheep" in system[1]
    resources = events[-1]["metadata"]["retriever_resources"]
    assert 1 <= len(resources) <= 2
    top = resources[0]
    assert top["position"] == 1 and top["dataset_id"] == str(dataset.pk)
    assert top["dataset_name"] == "Textiles" and top["document_name"] == "wool.txt"
    assert top["content"].startswith("Wool is a protein fibre")
    assert {"document_id", "segment_id", "score"} <= set(top)
    assert top["retriever_from"] == "api"
    assert message.retriever_resources == resources


def test_retrieval_on_the_built_in_model_answers_from_the_knowledge(tenant, make_app):
    dataset = make_dataset(tenant)
    app = make_app(tenant, App.Mode.CHAT)
    configure(
        app,
        model={"provider": "weft", "name": "weft-offline-chat", "mode": "chat"},
        dataset_configs={"datasets": {"datasets": [{"dataset": {"id": str(dataset.pk)}}]}},
    )
    _, events, _ = ask(app, user_of(app), "What gives denim its blue colour?")
    assert "Indigo dye gives denim its blue colour" in answer_of(events)


def test_resources_are_not_shown_when_the_feature_is_off(tenant, chat_app, fake):
    dataset = make_dataset(tenant)
    configure(
        chat_app,
        retriever_resource={"enabled": False},
        dataset_configs={"datasets": {"datasets": [{"dataset": {"id": str(dataset.pk)}}]}},
    )
    _, events, message = ask(chat_app, user_of(chat_app), "sheep wool")
    assert events[-1]["metadata"]["retriever_resources"] == []
    assert message.retriever_resources  # kept for the logs


# --- Moderation ------------------------------------------------------------------------------

MODERATION = {
    "enabled": True,
    "type": "keywords",
    "config": {
        "keywords": "forbidden\nsecret plan",
        "inputs_config": {"enabled": True, "preset_response": "I cannot talk about that."},
        "outputs_config": {"enabled": True, "preset_response": "[withheld]"},
    },
}


def test_refused_input_answers_the_preset_response(chat_app, fake):
    configure(chat_app, sensitive_word_avoidance=MODERATION)
    _, events, message = ask(chat_app, user_of(chat_app), "Tell me the FORBIDDEN thing")
    assert names(events) == ["message", "message_end"]
    assert events[0]["answer"] == "I cannot talk about that."
    assert message.answer == "I cannot talk about that."
    assert message.status == Message.Status.NORMAL
    assert fake.requests == []  # the model was never called, not even to name it
    assert message.conversation.name == "New conversation"


def test_an_answer_with_a_keyword_is_replaced(chat_app, fake):
    configure(chat_app, sensitive_word_avoidance=MODERATION)
    fake.script("Here is the secret plan in full detail")
    _, events, message = ask(chat_app, user_of(chat_app), "What is up?")
    assert "message_replace" in names(events)
    replace = events[names(events).index("message_replace")]
    assert replace["answer"] == "[withheld]" and replace["reason"] == "output_moderation"
    # The keyword, split over two deltas, never reached the client.
    assert "secret" not in "".join(e.get("answer", "") for e in events if e["event"] == "message")
    assert answer_of(events) == message.answer == "[withheld]"
    assert names(events)[-1] == "message_end"


# --- Annotation reply ------------------------------------------------------------------------


def test_annotation_reply_hook_answers_instead_of_the_model(chat_app, fake):
    configure(chat_app, annotation_reply={"enabled": True})
    asked = []

    async def reply(*, app, message, query):
        asked.append((app.pk, message.pk, query))
        if "opening hours" in query:
            return AnnotationHit(id="ann-1", answer="9 to 5.", account={"id": "u1", "name": "Ann"})
        return None

    register_annotation_reply(reply)
    try:
        _, events, message = ask(chat_app, user_of(chat_app), "What are your opening hours?")
        _, _, other = ask(chat_app, user_of(chat_app), "Something else")
    finally:
        unregister_annotation_reply(reply)
    assert answer_of(events) == "9 to 5." == message.answer
    assert events[-1]["metadata"]["annotation_reply"] == {
        "id": "ann-1",
        "account": {"id": "u1", "name": "Ann"},
    }
    assert message.annotation_reply["id"] == "ann-1"
    assert other.answer == "You said: Something else"
    assert len(fake.requests) >= 1 and len(asked) == 2


def test_no_annotation_hook_and_no_feature_do_nothing(chat_app, fake):
    called = []

    async def reply(*, app, message, query):
        called.append(query)
        return AnnotationHit(id="x", answer="never")

    register_annotation_reply(reply)
    try:
        _, _, message = ask(chat_app, user_of(chat_app), "hi")  # the feature is off
    finally:
        unregister_annotation_reply(reply)
    assert called == [] and message.answer == "You said: hi"


# --- Failures --------------------------------------------------------------------------------


def test_provider_failure_mid_stream_saves_the_partial_answer_as_error(chat_app, fake):
    fake.script("one two three four five six seven eight")
    fake.cut_stream_after(4)
    task, events, message = ask(chat_app, user_of(chat_app), "count")
    assert names(events)[-1] == "error"
    error = events[-1]
    assert error["code"] == "completion_request_error" and error["status"] == 400
    assert error["message"] and error["task_id"] == task.task_id
    assert message.status == Message.Status.ERROR and message.error == error["message"]
    assert message.answer and "one two three four five six seven eight".startswith(message.answer)
    assert answer_of(events) == message.answer
    with pytest.raises(WeftError) as raised:
        async_to_sync(blocking_result)(task)
    assert raised.value.code == "completion_request_error"


def test_a_provider_refusing_at_once_ends_with_error(chat_app, fake):
    fake.fail_next(status=400)
    _, events, message = ask(chat_app, user_of(chat_app), "hi")
    assert names(events) == ["error"]
    assert message.status == Message.Status.ERROR and message.answer == ""


def test_a_message_is_answered_once(chat_app, fake):
    task = prepare(request(chat_app, user_of(chat_app), query="once"))
    run_task(task)
    run_task(task)  # delivered again: nothing happens
    assert len([r for r in fake.requests if "once" in str(r.json["messages"][-1])]) == 2
    assert sent(fake, 0) == [("system", "You are terse."), ("user", "once")]
    assert len(fake.requests) == 2  # the answer and the conversation's name, once each
    assert names(read_events(task.task_id)).count("message_end") == 1


# --- Suggested questions -----------------------------------------------------------------------


def test_suggested_questions_are_asked_once_and_kept(chat_app, fake):
    configure(chat_app, suggested_questions_after_answer={"enabled": True})
    _, _, message = ask(chat_app, user_of(chat_app), "Is wool warm?", auto_generate_name=False)
    fake.script('Sure: ["Is wool itchy?", "How is wool washed?", "Where does wool come from?"]')
    questions = async_to_sync(suggested_questions)(message)
    assert questions == ["Is wool itchy?", "How is wool washed?", "Where does wool come from?"]
    asked = fake.requests[-1].json["messages"]
    assert "Human: Is wool warm?" in asked[-1]["content"]
    assert "Assistant: You said: Is wool warm?" in asked[-1]["content"]
    message.refresh_from_db()
    assert message.suggested_questions == questions
    count = len(fake.requests)
    assert async_to_sync(suggested_questions)(message) == questions
    assert len(fake.requests) == count  # kept, not asked again


def test_suggested_questions_disabled_or_offline(tenant, make_app, chat_app):
    _, _, message = ask(chat_app, user_of(chat_app), "hi", auto_generate_name=False)
    with pytest.raises(SuggestionsDisabled) as raised:
        async_to_sync(suggested_questions)(message)
    assert raised.value.code == "bad_request" and raised.value.status == 400
    offline = configure(
        make_app(tenant, App.Mode.CHAT, name="offline"),
        model={"provider": "weft", "name": "weft-offline-chat"},
        suggested_questions_after_answer={"enabled": True},
    )
    _, _, answered = ask(offline, user_of(offline), "hi", auto_generate_name=False)
    # The built-in model only quotes its context: it suggests nothing.
    assert async_to_sync(suggested_questions)(answered) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('["a?", "b?", "c?", "d?"]', ["a?", "b?", "c?"]),
        ('```json\n["one?", "two?"]\n```', ["one?", "two?"]),
        ('{"questions": ["x?", "y?"]}', ["x?", "y?"]),
        ("1. First?\n2. Second?\n- Third?\nnot a question", ["First?", "Second?", "Third?"]),
        ("nothing useful", []),
    ],
)
def test_questions_are_parsed_leniently(text, expected):
    assert parse_questions(text) == expected


def test_prices_are_plain_decimal_text_as_dify_writes_them():
    from decimal import Decimal

    from apps.pipeline.events import decimal_text

    assert decimal_text(Decimal("0E-8")) == "0"
    assert decimal_text(Decimal("0.00012300")) == "0.000123"
    assert decimal_text(Decimal("1.5E+3")) == "1500"
