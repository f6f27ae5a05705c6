"""The fake LLM speaks the vendors' wire formats and breaks in the ways tests ask it to."""

import asyncio
import base64
import json
import math
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_llm import FakeLLM, ToolCall

REPO = Path(__file__).resolve().parents[2]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city", "unit"],
        },
    },
}
ANTHROPIC_WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}


def chat_body(text="hello there", **extra):
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def message_body(text="hello there", **extra):
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str | None, str]]:
    """(event name, data) for each server-sent event, the way SSE clients split them."""
    event, data = None, []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event:"):
            event = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())
    if data:
        yield event, "\n".join(data)


def stream_chat(client: httpx.Client, body: dict, **kwargs) -> list[str]:
    """The `data:` payloads of a streamed chat completion."""
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}, **kwargs) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return [data for _, data in sse_events(r.iter_lines())]


def content_of(payloads: list[str]) -> str:
    chunks = [json.loads(payload) for payload in payloads if payload != "[DONE]"]
    return "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )


@pytest.fixture
def openai(fake_llm):
    headers = {"Authorization": f"Bearer {fake_llm.api_key}"}
    with httpx.Client(base_url=fake_llm.openai_base_url, headers=headers, timeout=5) as client:
        yield client


@pytest.fixture
def anthropic(fake_llm):
    headers = {"x-api-key": fake_llm.api_key, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=fake_llm.anthropic_base_url, headers=headers, timeout=5) as client:
        yield client


# OpenAI chat


def test_chat_echoes_the_last_user_message_and_counts_words_as_tokens(openai):
    body = chat_body(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
        ]
    )
    completion = openai.post("/chat/completions", json=body).json()

    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl-")
    assert completion["model"] == "gpt-4o-mini"
    assert isinstance(completion["created"], int)
    [choice] = completion["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "You said: hello there"
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    assert completion["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}


def test_chat_stream_deltas_join_to_the_answer_then_usage_then_done(openai):
    payloads = stream_chat(openai, chat_body(stream_options={"include_usage": True}))

    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert content_of(payloads) == "You said: hello there"
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:5]] == [
        "You",
        " said:",
        " hello",
        " there",
    ]
    finish = chunks[-2]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["usage"] is None
    usage = chunks[-1]
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}


def test_chat_stream_has_no_usage_unless_asked(openai):
    payloads = stream_chat(openai, chat_body())

    chunks = [json.loads(payload) for payload in payloads[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert all(chunk["choices"] for chunk in chunks)


def test_scripted_tool_call_streams_arguments_in_fragments_that_reassemble(fake_llm, openai):
    fake_llm.script(
        tool_calls=[
            {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}},
            ToolCall("get_weather", '{"city": "Oslo", "unit": "F"}', id="call_fixed"),
        ]
    )

    payloads = stream_chat(openai, chat_body("weather?", tools=[WEATHER_TOOL]))

    chunks = [json.loads(payload) for payload in payloads[:-1]]
    calls: dict[int, dict] = {}
    argument_fragments = 0
    for chunk in chunks:
        for delta_call in chunk["choices"][0]["delta"].get("tool_calls", []):
            call = calls.setdefault(delta_call["index"], {"arguments": ""})
            if "id" in delta_call:
                call.update(id=delta_call["id"], type=delta_call["type"])
                call["name"] = delta_call["function"]["name"]
            call["arguments"] += delta_call["function"]["arguments"]
            argument_fragments += bool(delta_call["function"]["arguments"])
    assert argument_fragments > 4
    assert [json.loads(call["arguments"]) for call in calls.values()] == [
        {"city": "Paris", "unit": "C"},
        {"city": "Oslo", "unit": "F"},
    ]
    assert {call["name"] for call in calls.values()} == {"get_weather"}
    assert calls[0]["id"].startswith("call_")
    assert calls[1]["id"] == "call_fixed"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert content_of(payloads) == ""


def test_tool_result_gets_a_text_answer_and_no_tools_means_no_tool_call(fake_llm, openai):
    fake_llm.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}], times=2)

    called = openai.post("/chat/completions", json=chat_body(tools=[WEATHER_TOOL])).json()
    no_tools = openai.post("/chat/completions", json=chat_body("hi")).json()

    [call] = called["choices"][0]["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert called["choices"][0]["message"]["content"] is None
    assert called["choices"][0]["finish_reason"] == "tool_calls"
    assert no_tools["choices"][0]["message"]["content"] == "You said: hi"
    assert no_tools["choices"][0]["finish_reason"] == "stop"

    after_tool = chat_body(
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{**call}]},
            {"role": "tool", "tool_call_id": call["id"], "content": "18 C and sunny"},
        ],
    )
    answer = openai.post("/chat/completions", json=after_tool).json()
    assert answer["choices"][0]["message"]["content"] == "Tool said: 18 C and sunny"


def test_json_response_formats_get_json_that_fits(fake_llm, openai):
    schema_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "weather",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "when": {"$ref": "#/$defs/when"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "note": {"type": "string"},
                },
                "required": ["city", "when", "tags"],
                "$defs": {
                    "when": {
                        "type": "object",
                        "properties": {"day": {"type": "integer"}},
                        "required": ["day"],
                    }
                },
            },
        },
    }

    def content(response_format):
        body = chat_body(response_format=response_format)
        return openai.post("/chat/completions", json=body).json()["choices"][0]["message"][
            "content"
        ]

    assert json.loads(content(schema_format)) == {"city": "", "when": {"day": 0}, "tags": []}
    assert json.loads(content({"type": "json_object"})) == {}
    fake_llm.script(json_output={"city": "Paris", "when": {"day": 3}, "tags": ["sun"]})
    assert json.loads(content(schema_format)) == {
        "city": "Paris",
        "when": {"day": 3},
        "tags": ["sun"],
    }


def test_max_tokens_cuts_the_answer_with_finish_reason_length(openai):
    completion = openai.post("/chat/completions", json=chat_body("a b c d e", max_tokens=3)).json()

    assert completion["choices"][0]["message"]["content"] == "You said: a"
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["completion_tokens"] == 3


# Embeddings, rerank, models


def test_embeddings_are_deterministic_unit_vectors_of_the_asked_size(openai):
    texts = ["the cat sat", "the cat sat", "a dog barked loudly", "cat sat"]
    response = openai.post("/embeddings", json={"model": "fake-embed", "input": texts}).json()
    one = openai.post("/embeddings", json={"model": "fake-embed", "input": "the cat sat"}).json()
    wide = openai.post("/embeddings", json={"model": "fake-embed", "input": "x", "dimensions": 32})

    assert response["object"] == "list"
    assert response["model"] == "fake-embed"
    assert response["usage"] == {"prompt_tokens": 12, "total_tokens": 12}
    assert [item["index"] for item in response["data"]] == [0, 1, 2, 3]
    assert {item["object"] for item in response["data"]} == {"embedding"}
    vectors = [item["embedding"] for item in response["data"]]
    assert {len(vector) for vector in vectors} == {8}
    assert all(math.isclose(sum(v * v for v in vector), 1.0) for vector in vectors)
    assert vectors[0] == vectors[1] == one["data"][0]["embedding"]

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[3]) > cosine(vectors[0], vectors[2])
    assert len(wide.json()["data"][0]["embedding"]) == 32


def test_embeddings_in_base64_decode_to_the_same_floats(openai):
    body = {"model": "fake-embed", "input": "the cat sat"}
    floats = openai.post("/embeddings", json=body).json()["data"][0]["embedding"]
    encoded = openai.post("/embeddings", json={**body, "encoding_format": "base64"}).json()

    raw = base64.b64decode(encoded["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats, abs=1e-6)


def test_rerank_orders_documents_by_word_overlap(openai):
    body = {
        "model": "fake-rerank",
        "query": "weather in Paris today",
        "documents": ["Berlin train times", {"text": "Paris weather today"}, "Paris museums"],
    }
    ranked = openai.post("/rerank", json=body).json()
    top = openai.post("/rerank", json={**body, "top_n": 1, "return_documents": False}).json()

    assert [result["index"] for result in ranked["results"]] == [1, 2, 0]
    assert [result["relevance_score"] for result in ranked["results"]] == [0.75, 0.25, 0.0]
    assert ranked["results"][0]["document"] == {"text": "Paris weather today"}
    assert ranked["model"] == "fake-rerank"
    assert ranked["usage"] == {"total_tokens": 4 + 3 + 3 + 2}
    assert top["results"] == [{"index": 1, "relevance_score": 0.75}]


def test_models_are_listed_in_each_vendors_shape(fake_llm, openai, anthropic):
    fake_llm.models = ["gpt-4o-mini", "claude-sonnet-4-5"]

    listed = openai.get("/models").json()
    claude = anthropic.get("/v1/models").json()

    assert listed["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in listed["data"]] == [
        ("gpt-4o-mini", "model", "fake-llm"),
        ("claude-sonnet-4-5", "model", "fake-llm"),
    ]
    assert [(m["type"], m["id"]) for m in claude["data"]] == [
        ("model", "gpt-4o-mini"),
        ("model", "claude-sonnet-4-5"),
    ]
    assert claude["has_more"] is False


# Errors in each vendor's shape


def test_unknown_model_is_a_404_in_each_vendors_shape(openai, anthropic):
    response = openai.post("/chat/completions", json={**chat_body(), "model": "gpt-9"})
    claude = anthropic.post("/v1/messages", json={**message_body(), "model": "claude-9"})

    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "The model `gpt-9` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    assert claude.status_code == 404
    assert claude.json() == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model: claude-9"},
    }


def test_wrong_openai_key_is_a_401_that_shows_only_the_last_four_characters(fake_llm):
    url = f"{fake_llm.openai_base_url}/chat/completions"
    secret = "sk-live-supersecretvalue-wxyz"
    wrong = httpx.post(url, json=chat_body(), headers={"Authorization": f"Bearer {secret}"})
    missing = httpx.post(url, json=chat_body())

    assert wrong.status_code == 401
    error = wrong.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    assert error["param"] is None
    assert error["message"].startswith("Incorrect API key provided: sk-*")
    assert "*wxyz." in error["message"]
    assert "supersecret" not in wrong.text
    assert missing.status_code == 401
    assert "You didn't provide an API key" in missing.json()["error"]["message"]


def test_anthropic_takes_the_key_in_x_api_key_or_as_a_bearer_token(fake_llm):
    url = f"{fake_llm.anthropic_base_url}/v1/messages"
    version = {"anthropic-version": "2023-06-01"}
    bearer = {"Authorization": f"Bearer {fake_llm.api_key}", **version}
    by_bearer = httpx.post(url, json=message_body(), headers=bearer)
    wrong = httpx.post(url, json=message_body(), headers={"x-api-key": "nope", **version})
    unversioned = httpx.post(url, json=message_body(), headers={"x-api-key": fake_llm.api_key})

    assert by_bearer.json()["content"] == [{"type": "text", "text": "You said: hello there"}]

    assert wrong.status_code == 401
    assert wrong.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }
    assert unversioned.status_code == 400
    assert unversioned.json()["error"]["type"] == "invalid_request_error"


def test_requests_the_real_api_refuses_are_400s(openai, anthropic):
    no_messages = openai.post("/chat/completions", json={"model": "gpt-4o-mini"})
    no_max_tokens = {k: v for k, v in message_body().items() if k != "max_tokens"}
    claude = anthropic.post("/v1/messages", json=no_max_tokens)
    not_json = openai.post("/chat/completions", content=b"{nope")

    assert no_messages.status_code == 400
    assert no_messages.json()["error"]["code"] == "missing_required_parameter"
    assert no_messages.json()["error"]["param"] == "messages"
    assert claude.status_code == 400
    assert claude.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert not_json.status_code == 400


# Anthropic messages


def test_anthropic_message_answers_the_last_user_turn(anthropic):
    body = message_body(
        system=[{"type": "text", "text": "Be brief."}],
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
        ],
    )
    message = anthropic.post("/v1/messages", json=body).json()

    assert message["id"].startswith("msg_")
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["model"] == "claude-sonnet-4-5"
    assert message["content"] == [{"type": "text", "text": "You said: hello there"}]
    assert message["stop_reason"] == "end_turn"
    assert message["stop_sequence"] is None
    assert message["usage"]["input_tokens"] == 6
    assert message["usage"]["output_tokens"] == 4


def test_anthropic_tool_use_and_tool_result(fake_llm, anthropic):
    fake_llm.script(
        "Let me check.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]
    )
    body = message_body("weather?", tools=[ANTHROPIC_WEATHER_TOOL])

    message = anthropic.post("/v1/messages", json=body).json()

    text, tool_use = message["content"]
    assert text == {"type": "text", "text": "Let me check."}
    assert tool_use["type"] == "tool_use"
    assert tool_use["id"].startswith("toolu_")
    assert (tool_use["name"], tool_use["input"]) == ("get_weather", {"city": "Paris"})
    assert message["stop_reason"] == "tool_use"

    result = {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "18 C"}
    follow_up = message_body(
        tools=[ANTHROPIC_WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": [result]},
        ],
    )
    answer = anthropic.post("/v1/messages", json=follow_up).json()
    assert answer["content"] == [{"type": "text", "text": "Tool said: 18 C"}]


def test_anthropic_stream_sends_the_documented_event_sequence(fake_llm, anthropic):
    fake_llm.script(
        "Checking now", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]
    )
    body = message_body("weather?", tools=[ANTHROPIC_WEATHER_TOOL], stream=True)

    with anthropic.stream("POST", "/v1/messages", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [(name, json.loads(data)) for name, data in sse_events(response.iter_lines())]

    assert all(name == data["type"] for name, data in events)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] == 1
    assert start["content"] == []
    deltas = [data for name, data in events if name == "content_block_delta"]
    text = "".join(d["delta"]["text"] for d in deltas if d["delta"]["type"] == "text_delta")
    partial = "".join(
        d["delta"]["partial_json"] for d in deltas if d["delta"]["type"] == "input_json_delta"
    )
    assert text == "Checking now"
    assert json.loads(partial) == {"city": "Paris"}
    assert events[6][1]["content_block"]["name"] == "get_weather"
    assert events[6][1]["index"] == 1
    message_delta = events[-2][1]
    assert message_delta["delta"]["stop_reason"] == "tool_use"
    assert message_delta["usage"]["output_tokens"] == 2 + 1 + 2


# Faults


def test_fail_next_429_carries_retry_after_then_the_script_resumes(fake_llm, openai):
    fake_llm.fail_next(429, retry_after=2, times=2)
    fake_llm.script("finally")

    first, second, third = (openai.post("/chat/completions", json=chat_body()) for _ in range(3))

    for limited in (first, second):
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert limited.json()["error"]["type"] == "requests"
    assert third.json()["choices"][0]["message"]["content"] == "finally"
    assert [request.status for request in fake_llm.requests] == [429, 429, 200]
    assert fake_llm.pending_faults == fake_llm.pending_replies == 0


def test_server_errors_in_openai_shape_and_502_as_a_gateway_page(fake_llm, openai):
    for status in (500, 502, 503):
        fake_llm.fail_next(status)

    statuses = [openai.post("/chat/completions", json=chat_body()) for _ in range(3)]

    assert [response.status_code for response in statuses] == [500, 502, 503]
    assert statuses[0].json()["error"]["type"] == "server_error"
    assert statuses[1].headers["content-type"] == "text/html"
    assert b"502 Bad Gateway" in statuses[1].content
    assert "overloaded" in statuses[2].json()["error"]["message"]


def test_anthropic_faults_in_anthropic_shape(fake_llm, anthropic):
    fake_llm.fail_next(529)
    fake_llm.fail_next(429, retry_after=1)

    overloaded = anthropic.post("/v1/messages", json=message_body())
    limited = anthropic.post("/v1/messages", json=message_body())

    assert overloaded.status_code == 529
    assert overloaded.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert limited.headers["retry-after"] == "1"


def test_cut_stream_closes_the_connection_before_done(fake_llm, openai):
    fake_llm.cut_stream_after(3)
    received = []

    with pytest.raises(httpx.RemoteProtocolError):
        with openai.stream("POST", "/chat/completions", json=chat_body(stream=True)) as response:
            for _, data in sse_events(response.iter_lines()):
                received.append(data)

    assert len(received) == 3
    assert "[DONE]" not in received
    assert openai.post("/chat/completions", json=chat_body()).status_code == 200


def test_malformed_chunk_is_a_data_line_that_is_not_json(fake_llm, openai):
    fake_llm.malformed_chunk_after(2)

    payloads = stream_chat(openai, chat_body())

    broken = []
    for payload in payloads[:-1]:
        try:
            json.loads(payload)
        except ValueError:
            broken.append(payload)
    assert len(broken) == 1
    assert payloads.index(broken[0]) == 2
    assert payloads[-1] == "[DONE]"


def test_non_streaming_answers_can_be_cut_or_malformed(fake_llm, openai):
    fake_llm.cut_stream_after(1)
    fake_llm.malformed_chunk_after(1)

    with pytest.raises(httpx.RemoteProtocolError):
        openai.post("/chat/completions", json=chat_body())
    malformed = openai.post("/chat/completions", json=chat_body())

    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()


def test_hang_until_the_client_times_out_is_recorded_as_cancelled(fake_llm, openai):
    fake_llm.hang()

    with pytest.raises(httpx.ReadTimeout):
        openai.post("/chat/completions", json=chat_body(), timeout=0.2)

    fake_llm.wait_until(lambda: fake_llm.cancelled == 1)
    assert fake_llm.last_request.status is None
    assert fake_llm.last_request.cancelled


def test_stall_mid_stream_times_out_on_read(fake_llm, openai):
    fake_llm.hang(after_chunks=2)
    received = []

    with pytest.raises(httpx.ReadTimeout):
        with openai.stream(
            "POST", "/chat/completions", json=chat_body(stream=True), timeout=0.2
        ) as response:
            for _, data in sse_events(response.iter_lines()):
                received.append(data)

    assert len(received) == 2
    fake_llm.wait_until(lambda: fake_llm.cancelled == 1)


def test_client_leaving_mid_stream_is_recorded_as_cancelled(fake_llm, openai):
    fake_llm.latency_per_token = 0.01
    fake_llm.script(" ".join(["word"] * 500))

    with openai.stream("POST", "/chat/completions", json=chat_body(stream=True)) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")

    fake_llm.wait_until(lambda: fake_llm.cancelled == 1)
    assert fake_llm.last_request.status == 200


def test_reset_releases_a_request_left_hanging(fake_llm):
    fake_llm.hang()
    outcome = []

    def call():
        headers = {"Authorization": f"Bearer {fake_llm.api_key}"}
        url = f"{fake_llm.openai_base_url}/chat/completions"
        try:
            httpx.post(url, json=chat_body(), headers=headers, timeout=5)
        except httpx.RemoteProtocolError as error:
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    fake_llm.wait_until(lambda: len(fake_llm.requests) == 1)
    fake_llm.reset()
    caller.join(timeout=5)

    assert len(outcome) == 1
    assert fake_llm.requests == []


# Per-request knobs and pacing


def test_scenario_header_and_fake_model_names_pick_a_fault(openai):
    by_header = openai.post(
        "/chat/completions", json=chat_body(), headers={"X-Fake-Scenario": "status=503"}
    )
    by_model = openai.post("/chat/completions", json={**chat_body(), "model": "fake-429"})
    combined = openai.post(
        "/chat/completions",
        json=chat_body(max_tokens=5000),
        headers={"X-Fake-Scenario": "long; words=3"},
    )
    typo = openai.post("/chat/completions", json=chat_body(), headers={"X-Fake-Scenario": "sloow"})

    assert by_header.status_code == 503
    assert by_model.status_code == 429
    assert by_model.headers["retry-after"] == "1"
    assert combined.json()["choices"][0]["message"]["content"] == "tok0 tok1 tok2"
    assert typo.status_code == 400
    assert "sloow" in typo.json()["error"]["message"]
    assert "slow" in typo.json()["error"]["message"]


def test_fake_tools_model_calls_the_first_tool_with_arguments_that_fit(openai):
    body = {**chat_body(tools=[WEATHER_TOOL]), "model": "fake-tools"}

    message = openai.post("/chat/completions", json=body).json()["choices"][0]["message"]

    [call] = message["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "", "unit": "C"}


def test_first_token_latency_and_latency_per_token_pace_the_stream(fake_llm, openai):
    fake_llm.first_token_latency = 0.15
    fake_llm.latency_per_token = 0.02
    arrivals = []
    started = time.monotonic()

    with openai.stream("POST", "/chat/completions", json=chat_body(stream=True)) as response:
        for _ in sse_events(response.iter_lines()):
            arrivals.append(time.monotonic() - started)

    assert arrivals[0] >= 0.15
    assert arrivals[-1] - arrivals[0] >= 0.02 * (len(arrivals) - 1) * 0.9


def test_match_scripts_answers_for_concurrent_requests(fake_llm):
    for city in ("Paris", "Oslo", "Lima"):
        fake_llm.script(f"It is sunny in {city}", match=city)
    fake_llm.latency_per_token = 0.005

    async def ask(client, city):
        body = chat_body(f"weather in {city}?", stream=True)
        async with client.stream("POST", "/chat/completions", json=body) as response:
            payloads = [data async for _, data in sse_events_async(response.aiter_lines())]
        return content_of(payloads)

    async def main():
        headers = {"Authorization": f"Bearer {fake_llm.api_key}"}
        async with httpx.AsyncClient(base_url=fake_llm.openai_base_url, headers=headers) as client:
            return await asyncio.gather(
                *(ask(client, c) for c in ("Lima", "Paris", "Oslo", "Rome"))
            )

    answers = asyncio.run(main())

    assert answers == [
        "It is sunny in Lima",
        "It is sunny in Paris",
        "It is sunny in Oslo",
        "You said: weather in Rome?",
    ]


async def sse_events_async(lines):
    buffered = [line async for line in lines]
    for event in sse_events(buffered):
        yield event


def test_fifty_concurrent_streams(fake_llm):
    async def stream(client, number):
        body = chat_body(f"request {number}", stream=True)
        headers = {"X-Fake-Scenario": "words=200"}
        async with client.stream("POST", "/chat/completions", json=body, headers=headers) as r:
            return content_of([data async for _, data in sse_events_async(r.aiter_lines())])

    async def main():
        headers = {"Authorization": f"Bearer {fake_llm.api_key}"}
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(
            base_url=fake_llm.openai_base_url, headers=headers, limits=limits, timeout=10
        ) as client:
            return await asyncio.gather(*(stream(client, n) for n in range(50)))

    answers = asyncio.run(main())

    assert answers == [" ".join(f"tok{number}" for number in range(200))] * 50
    assert len(fake_llm.requests) == 50


def test_a_stream_of_thousands_of_chunks(openai):
    payloads = stream_chat(openai, {**chat_body(), "model": "fake-long"}, timeout=10)

    assert len(payloads) == 2000 + 3
    assert content_of(payloads).split() == [f"tok{number}" for number in range(2000)]


# What the server saw


def test_requests_are_recorded_with_headers_and_parsed_body(fake_llm, openai):
    openai.post("/chat/completions", json=chat_body(tools=[WEATHER_TOOL]))

    request = fake_llm.last_request
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {fake_llm.api_key}"
    assert request.json["tools"] == [WEATHER_TOOL]
    assert fake_llm.api_key.encode() not in request.body
    assert request.status == 200
    assert not request.cancelled


def test_azure_deployment_paths_take_the_api_key_header(fake_llm):
    url = f"{fake_llm.base_url}/openai/deployments/gpt-4o-mini/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]}

    response = httpx.post(
        url, params={"api-version": "2024-10-21"}, json=body, headers={"api-key": fake_llm.api_key}
    )

    assert response.json()["choices"][0]["message"]["content"] == "You said: hi"
    assert response.json()["model"] == "gpt-4o-mini"
    assert fake_llm.last_request.query == {"api-version": "2024-10-21"}


def test_stop_drops_requests_left_hanging():
    fake = FakeLLM().start()
    fake.hang()
    errors = []

    def call():
        try:
            httpx.get(f"{fake.openai_base_url}/models", headers={"api-key": fake.api_key})
        except httpx.HTTPError as error:
            errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    fake.wait_until(lambda: len(fake.requests) == 1)
    started = time.monotonic()
    fake.stop()
    caller.join(timeout=5)

    assert time.monotonic() - started < 2
    assert len(errors) == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{fake.openai_base_url}/models")


def test_command_line_serves_until_interrupted():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_llm", "--port", "0", "--api-key", "sk-cli-key"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(2)]
        base_url = lines[1].split()[-1]
        models = httpx.get(f"{base_url}/models", headers={"Authorization": "Bearer sk-cli-key"})
        assert models.status_code == 200
        assert "gpt-4o-mini" in [model["id"] for model in models.json()["data"]]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=5)
    assert process.returncode == 0
