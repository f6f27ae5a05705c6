"""The OpenAI-compatible implementation against the fake server's OpenAI wire format."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync

from providers.http import guarded_client
from providers.runtime.openai import OpenAICompatible
from providers.runtime.types import (
    ChatMessage,
    Finish,
    ModelNotFound,
    ProviderAuthFailed,
    ProviderProtocolError,
    ResponseFormat,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from providers.runtime.wire import Retryable

QUESTION = [ChatMessage("system", "Be brief."), ChatMessage("user", "what is weft")]
WEATHER = Tool(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def collect(fake_llm, key=None, model="gpt-4o-mini", azure=False, **chat_kwargs):
    async def go():
        async with guarded_client() as client:
            impl = OpenAICompatible(
                client=client,
                base_url=fake_llm.base_url if azure else fake_llm.openai_base_url,
                api_key=fake_llm.api_key if key is None else key,
                model=model,
                azure=azure,
            )
            return [
                event
                async for event in impl.chat(chat_kwargs.pop("messages", QUESTION), **chat_kwargs)
            ]

    return async_to_sync(go)()


def text_of(events):
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize("stream", [True, False])
def test_chat_text_and_usage(fake_llm, stream):
    events = collect(fake_llm, stream=stream)
    assert text_of(events) == "You said: what is weft"
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "stop"
    assert finish.usage.completion_tokens == 5 and not finish.usage.estimated
    assert sum(isinstance(e, Finish) for e in events) == 1
    sent = fake_llm.last_request
    assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.json["stream"] is stream
    assert sent.headers["authorization"] == f"Bearer {fake_llm.api_key}"
    assert fake_llm.api_key not in json.dumps(sent.json)
    if stream:
        assert sent.json["stream_options"] == {"include_usage": True}
        assert sum(isinstance(e, TextDelta) for e in events) > 1


@pytest.mark.parametrize("stream", [True, False])
def test_tool_calls(fake_llm, stream):
    fake_llm.script(
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Zürich"}, "id": "call_1"}]
    )
    events = collect(fake_llm, tools=[WEATHER], stream=stream)
    fragments = [e for e in events if isinstance(e, ToolCallDelta)]
    assert fragments[0].id == "call_1" and fragments[0].name == "get_weather"
    assert json.loads("".join(f.arguments for f in fragments)) == {"city": "Zürich"}
    assert events[-1].reason == "tool_calls"
    assert fake_llm.last_request.json["tools"][0]["function"]["name"] == "get_weather"


def test_tool_results_travel_back(fake_llm):
    messages = [
        ChatMessage("user", "weather in Bern?"),
        ChatMessage(
            "assistant", "", tool_calls=(ToolCall("call_9", "get_weather", '{"city":"Bern"}'),)
        ),
        ChatMessage("tool", "sunny, 21°C", tool_call_id="call_9"),
    ]
    events = collect(fake_llm, messages=messages, tools=[WEATHER])
    assert text_of(events) == "Tool said: sunny, 21°C"
    sent = fake_llm.last_request.json["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Bern"}',
    }
    assert sent[2] == {"role": "tool", "content": "sunny, 21°C", "tool_call_id": "call_9"}


def test_json_schema_response_format(fake_llm):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    fake_llm.script(json_output={"answer": "a weaving term"})
    events = collect(
        fake_llm, response_format=ResponseFormat("json_schema", schema=schema, name="a")
    )
    assert json.loads(text_of(events)) == {"answer": "a weaving term"}
    sent = fake_llm.last_request.json["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema


def test_max_tokens_gives_length(fake_llm):
    events = collect(fake_llm, max_tokens=2)
    assert events[-1].reason == "length"


def test_wrong_key_is_auth_failed_with_the_providers_message(fake_llm):
    with pytest.raises(ProviderAuthFailed) as caught:
        collect(fake_llm, key="sk-wrong-key-123456789wxyz")
    assert caught.value.code == "provider_auth_failed"
    assert "Incorrect API key" in caught.value.message
    assert "sk-wrong-key-123456789" not in caught.value.message


def test_unknown_model(fake_llm):
    with pytest.raises(ModelNotFound, match="does not exist"):
        collect(fake_llm, model="gpt-nonexistent")


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_overload_and_server_errors_are_retryable(fake_llm, status):
    fake_llm.fail_next(status, retry_after=3 if status == 429 else None)
    with pytest.raises(Retryable) as caught:
        collect(fake_llm)
    assert caught.value.upstream_status == status
    assert caught.value.retry_after == (3 if status == 429 else None)


def test_cut_stream_is_a_protocol_error(fake_llm):
    fake_llm.cut_stream_after(2)
    with pytest.raises(ProviderProtocolError, match="stream"):
        collect(fake_llm)


def test_malformed_chunk_is_a_protocol_error(fake_llm):
    fake_llm.malformed_chunk_after(1)
    with pytest.raises(ProviderProtocolError, match="not JSON"):
        collect(fake_llm)


def test_azure_paths_and_key_header(fake_llm):
    events = collect(fake_llm, azure=True, model="gpt-4o-mini")
    assert text_of(events) == "You said: what is weft"
    sent = fake_llm.last_request
    assert sent.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert sent.query.get("api-version") and sent.headers["api-key"] == fake_llm.api_key
    assert "authorization" not in sent.headers


def test_embeddings_in_batches_keep_order(fake_llm):
    texts = [f"text number {i}" for i in range(7)]

    async def go():
        async with guarded_client() as client:
            impl = OpenAICompatible(
                client=client,
                base_url=fake_llm.openai_base_url,
                api_key=fake_llm.api_key,
                model="text-embedding-3-small",
                options={"embedding_batch": 3},
            )
            return await impl.embed(texts), await impl.embed(texts[2:3])

    result, single = async_to_sync(go)()
    assert len(result.vectors) == 7 and len(result.vectors[0]) == fake_llm.embedding_dim
    assert result.vectors[2] == single.vectors[0]
    assert [len(r.json["input"]) for r in fake_llm.requests[:3]] == [3, 3, 1]
    assert result.usage.prompt_tokens > 0 and not result.usage.estimated


def test_rerank(fake_llm):
    async def go():
        async with guarded_client() as client:
            impl = OpenAICompatible(
                client=client,
                base_url=fake_llm.openai_base_url,
                api_key=fake_llm.api_key,
                model="fake-rerank",
            )
            return await impl.rerank(
                "loom weaving", ["cooking pasta", "the loom and weaving", "a loom"], top_n=2
            )

    result = async_to_sync(go)()
    assert [index for index, _ in result.ranking] == [1, 2]
    assert result.ranking[0][1] >= result.ranking[1][1]


def test_leaving_a_stream_cancels_the_upstream_request(fake_llm):
    fake_llm.hang(after_chunks=2)

    async def go():
        async with guarded_client() as client:
            impl = OpenAICompatible(
                client=client,
                base_url=fake_llm.openai_base_url,
                api_key=fake_llm.api_key,
                model="gpt-4o-mini",
            )
            events = impl.chat(QUESTION)
            first = await asyncio.wait_for(anext(events), 5)
            await events.aclose()  # the caller gives up while the server still streams
            return first

    first = async_to_sync(go)()
    assert isinstance(first, TextDelta)
    fake_llm.wait_until(lambda: fake_llm.cancelled == 1)


def test_extra_headers_from_options_never_replace_the_key(fake_llm):
    async def go():
        async with guarded_client() as client:
            impl = OpenAICompatible(
                client=client,
                base_url=fake_llm.openai_base_url,
                api_key=fake_llm.api_key,
                model="gpt-4o-mini",
                options={"headers": {"X-Title": "Weft", "Authorization": "Bearer stolen"}},
            )
            return [e async for e in impl.chat(QUESTION, stream=False)]

    async_to_sync(go)()
    sent = fake_llm.last_request.headers
    assert sent["x-title"] == "Weft" and sent["authorization"] == f"Bearer {fake_llm.api_key}"
