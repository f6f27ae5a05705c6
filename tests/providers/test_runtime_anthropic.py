"""The Anthropic implementation against the fake server's Messages API."""

import json

import pytest
from asgiref.sync import async_to_sync

from providers.http import guarded_client
from providers.runtime.anthropic import Anthropic
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

MODEL = "claude-3-5-haiku-latest"
QUESTION = [ChatMessage("system", "Answer in one line."), ChatMessage("user", "name a fibre")]
WEATHER = Tool(
    "get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}
)


def collect(fake_llm, key=None, model=MODEL, **chat_kwargs):
    async def go():
        async with guarded_client() as client:
            impl = Anthropic(
                client=client,
                base_url=fake_llm.anthropic_base_url,
                api_key=fake_llm.api_key if key is None else key,
                model=model,
            )
            messages = chat_kwargs.pop("messages", QUESTION)
            return [event async for event in impl.chat(messages, **chat_kwargs)]

    return async_to_sync(go)()


def text_of(events):
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize("stream", [True, False])
def test_chat_with_system_prompt(fake_llm, stream):
    events = collect(fake_llm, stream=stream)
    assert text_of(events) == "You said: name a fibre"
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "stop"
    assert finish.usage.prompt_tokens > 0 and finish.usage.completion_tokens == 5
    sent = fake_llm.last_request
    assert sent.path == "/v1/messages"
    assert sent.json["system"] == "Answer in one line."
    assert sent.json["messages"] == [{"role": "user", "content": "name a fibre"}]
    assert sent.json["max_tokens"] == 4096
    assert sent.headers["x-api-key"] == fake_llm.api_key and sent.headers["anthropic-version"]


@pytest.mark.parametrize("stream", [True, False])
def test_tool_use(fake_llm, stream):
    fake_llm.script(
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "toolu_1"}]
    )
    events = collect(fake_llm, tools=[WEATHER], stream=stream)
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert calls[0].id == "toolu_1" and calls[0].name == "get_weather"
    assert json.loads("".join(c.arguments for c in calls)) == {"city": "Oslo"}
    assert events[-1].reason == "tool_calls"
    assert fake_llm.last_request.json["tools"][0]["input_schema"] == WEATHER.parameters


def test_tool_results_become_user_blocks(fake_llm):
    messages = [
        ChatMessage("user", "weather in Oslo?"),
        ChatMessage(
            "assistant",
            "Checking.",
            tool_calls=(ToolCall("toolu_7", "get_weather", '{"city":"Oslo"}'),),
        ),
        ChatMessage("tool", "snow", tool_call_id="toolu_7"),
    ]
    events = collect(fake_llm, messages=messages, tools=[WEATHER])
    assert text_of(events) == "Tool said: snow"
    sent = fake_llm.last_request.json["messages"]
    assert sent[1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_7",
        "name": "get_weather",
        "input": {"city": "Oslo"},
    }
    assert sent[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_7", "content": "snow"}],
    }


def test_json_schema_is_asked_through_a_forced_tool(fake_llm):
    schema = {"type": "object", "properties": {"fibre": {"type": "string"}}, "required": ["fibre"]}
    for stream in (True, False):
        fake_llm.script(json_output={"fibre": "wool"})
        events = collect(
            fake_llm, response_format=ResponseFormat("json_schema", schema=schema), stream=stream
        )
        assert json.loads(text_of(events)) == {"fibre": "wool"}
        assert events[-1].reason == "stop"
        assert not any(isinstance(e, ToolCallDelta) for e in events)
    assert fake_llm.last_request.json["tool_choice"] == {"type": "tool", "name": "respond_in_json"}


def test_errors(fake_llm):
    with pytest.raises(ProviderAuthFailed, match="invalid x-api-key"):
        collect(fake_llm, key="sk-ant-wrong-000000000000")
    with pytest.raises(ModelNotFound):
        collect(fake_llm, model="claude-nope")
    for status in (429, 529, 500):
        fake_llm.fail_next(status, retry_after=1 if status == 429 else None)
        with pytest.raises(Retryable):
            collect(fake_llm)
    fake_llm.cut_stream_after(3)
    with pytest.raises(ProviderProtocolError, match=r"message_stop|broke off"):
        collect(fake_llm)
    fake_llm.malformed_chunk_after(2)
    with pytest.raises(ProviderProtocolError, match="not JSON"):
        collect(fake_llm)
