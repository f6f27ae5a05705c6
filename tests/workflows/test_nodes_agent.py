"""The agent node (Dify's function_calling and ReAct strategies) in small graphs on real
PostgreSQL, calling built-in tools, against the fake LLM server speaking OpenAI's and
Anthropic's wire formats (tool calls included)."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

import workflows.nodes  # noqa: F401 - registers every node type
from providers.models import ProviderKind, UsageEvent
from providers.runtime.types import ChatMessage
from tenants.context import tenant_context
from tests.providers import conftest as provider_fixtures
from workflows.dsl import Node, validate
from workflows.engine.events import TextChunk
from workflows.nodes.agent import parse_react

from .conftest import make_edge, make_node
from .helpers import end, execute, finished, start

# Loopback allowed for the fake LLM, quick retries, fresh circuits; a credential maker.
runtime_state = provider_fixtures.runtime_state
credential = provider_fixtures.credential

pytestmark = pytest.mark.django_db

OPENAI = {"provider": "langgenius/openai/openai", "model": "gpt-4o-mini"}
ANTHROPIC = {"provider": "langgenius/anthropic/anthropic", "model": "claude-3-5-haiku-latest"}
CALCULATOR = {
    "enabled": True,
    "extra": {"description": "Exact arithmetic."},
    "parameters": {"expression": ""},
    "provider_name": "maths",
    "tool_name": "eval_expression",
    "type": "builtin",
}
CLOCK = {
    "enabled": True,
    "extra": {"description": ""},
    "parameters": {},
    "provider_name": "langgenius/time/time",
    "tool_name": "current_time",
    "settings": {"format": {"value": "%Z"}, "timezone": {"value": "Asia/Tokyo"}},
    "type": "builtin",
}


def agent(
    node_id: str = "agent",
    *,
    tools: list[dict] | None = None,
    strategy: str = "function_calling",
    rounds: int | None = 3,
    model: dict | None = None,
    query: str = "{{#start.q#}}",
    instruction: str = "You are precise.",
    **data,
) -> dict:
    parameters = {
        "model": {
            "type": "constant",
            "value": {
                "completion_params": {},
                "mode": "chat",
                "model_type": "llm",
                "type": "model-selector",
                **(model or OPENAI),
            },
        },
        "tools": {"type": "constant", "value": [CALCULATOR, CLOCK] if tools is None else tools},
        "instruction": {"type": "constant", "value": instruction},
        "query": {"type": "constant", "value": query},
    }
    if rounds is not None:
        parameters["maximum_iterations"] = {"type": "constant", "value": rounds}
    fields = {
        "agent_parameters": parameters,
        "agent_strategy_label": "FunctionCalling",
        "agent_strategy_name": strategy,
        "agent_strategy_provider_name": "langgenius/agent/agent",
        "plugin_unique_identifier": "langgenius/agent:0.0.9@0123",
        "output_schema": None,
    }
    return make_node(node_id, "agent", **(fields | data))


def chain(*ids: str) -> list[dict]:
    return [make_edge(a, b) for a, b in itertools.pairwise(ids)]


def run_agent(tenant, node: dict, q: str = "What is 6 times 7?"):
    nodes = [start("q"), node, end(text=["agent", "text"], usage=["agent", "usage"])]
    return execute(nodes, chain("start", "agent", "end"), {"q": q}, tenant=tenant)


def offered(request) -> list[str]:
    return [tool["function"]["name"] for tool in request.json.get("tools", [])]


@pytest.fixture
def fake(credential, fake_llm):
    credential()
    return fake_llm


# --- function_calling --------------------------------------------------------------------------


def test_function_calling_calls_a_tool_and_answers(tenant, fake):
    fake.script(tool_calls=[{"name": "eval_expression", "arguments": {"expression": "6*7"}}])
    fake.script("It is 42.")
    run, events = run_agent(tenant, agent())
    assert run.status == "succeeded", run.error
    assert run.outputs["text"] == "It is 42."
    first, second = fake.requests
    assert offered(first) == ["eval_expression", "current_time"]
    calculator, clock = (tool["function"] for tool in first.json["tools"])
    assert calculator["description"] == "Exact arithmetic."  # the builder's description wins
    assert calculator["parameters"]["required"] == ["expression"]
    # The clock's format and zone are the builder's settings: the model is offered none.
    assert clock["parameters"]["properties"] == {}
    assert [m["role"] for m in first.json["messages"]] == ["system", "user"]
    assert first.json["messages"][0]["content"] == "You are precise."
    assert first.json["messages"][1]["content"] == "What is 6 times 7?"
    sent = second.json["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    call = sent[2]["tool_calls"][0]
    assert call["function"]["name"] == "eval_expression"
    assert (sent[3]["tool_call_id"], sent[3]["content"]) == (call["id"], "42")

    node = finished(events)["agent"]
    rounds = node.process_data["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[0]["tool_calls"] == [
        {
            "id": call["id"],
            "name": "eval_expression",
            "tool": "maths/eval_expression",
            "arguments": {"expression": "6*7"},
            "output": "42",
            "elapsed_time": rounds[0]["tool_calls"][0]["elapsed_time"],
        }
    ]
    assert rounds[1]["text"] == "It is 42." and rounds[1]["tool_calls"] == []
    assert node.process_data["strategy"] == "function_calling"
    assert node.process_data["tools"] == ["maths/eval_expression", "time/current_time"]
    assert node.outputs["json"] == [{"result": 42}]
    assert node.outputs["files"] == []
    # Tokens and price: both calls, as the usage events record them.
    with tenant_context(tenant):
        recorded = list(
            UsageEvent.objects.filter(workflow_run_id=run.context.run_id).order_by("created_at")
        )
    assert len(recorded) == 2
    assert node.total_tokens == sum(e.total_tokens for e in recorded) > 0
    assert node.total_price == sum((e.cost for e in recorded), Decimal(0))
    assert node.outputs["usage"]["total_tokens"] == node.total_tokens
    assert [r["usage"]["total_tokens"] for r in rounds] == [e.total_tokens for e in recorded]
    # The answer streamed to the end node as it came.
    streamed = "".join(e.text for e in events if isinstance(e, TextChunk))
    assert streamed == "It is 42."


def test_settings_and_fixed_parameters_are_not_left_to_the_model(tenant, fake):
    fake.script(
        tool_calls=[
            {"name": "current_time", "arguments": {}},
            {"name": "eval_expression", "arguments": {"expression": "1+1"}},
        ]
    )
    fake.script("Done.")
    fixed = CALCULATOR | {"parameters": {"expression": {"auto": 0, "value": "2**5"}}}
    run, _ = run_agent(tenant, agent(tools=[fixed, CLOCK]))
    assert run.status == "succeeded", run.error
    first = fake.requests[0].json["tools"][0]["function"]
    assert first["parameters"]["properties"] == {}  # fixed by the builder
    tool_messages = [m for m in fake.requests[1].json["messages"] if m["role"] == "tool"]
    # Both calls of the round ran, their results in the order asked.
    assert [m["content"] for m in tool_messages] == ["JST", "32"]


def test_a_tools_refusal_goes_back_to_the_model(tenant, fake):
    fake.script(tool_calls=[{"name": "eval_expression", "arguments": {"expression": "1/0"}}])
    fake.script(tool_calls=[{"name": "web_search", "arguments": {"q": "x"}}])
    fake.script(tool_calls=[{"name": "eval_expression", "arguments": "{not json"}])
    fake.script("I cannot divide by zero.")
    run, events = run_agent(tenant, agent(rounds=4))
    assert run.status == "succeeded", run.error
    said = [m["content"] for m in fake.requests[-1].json["messages"] if m["role"] == "tool"]
    assert said == [
        "Error: Division by zero.",
        "Error: there is no tool named “web_search”. The tools are: eval_expression, current_time.",
        "Error: the arguments must be a JSON object.",
    ]
    rounds = finished(events)["agent"].process_data["rounds"]
    assert rounds[0]["tool_calls"][0]["error"] == "Division by zero."
    assert run.outputs["text"] == "I cannot divide by zero."


def test_the_last_round_offers_no_tools(tenant, fake):
    fake.script(
        tool_calls=[{"name": "eval_expression", "arguments": {"expression": "2+2"}}], times=5
    )
    run, _ = run_agent(tenant, agent(rounds=2))
    assert run.status == "succeeded", run.error
    assert [offered(r) for r in fake.requests] == [["eval_expression", "current_time"], []]
    assert run.outputs["text"] == "Tool said: 4"  # the fake's echo of the tool result
    one, _ = run_agent(tenant, agent(rounds=1))
    assert offered(fake.requests[-1]) == []
    assert one.status == "succeeded"


def test_text_of_every_round_is_streamed_and_kept(tenant, fake):
    fake.script(
        "Let me work it out.",
        tool_calls=[{"name": "eval_expression", "arguments": {"expression": "3*3"}}],
    )
    fake.script("It is 9.")
    run, events = run_agent(tenant, agent())
    assert run.outputs["text"] == "Let me work it out.\n\nIt is 9."
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == run.outputs["text"]
    assert fake.requests[1].json["messages"][2]["content"] == "Let me work it out."


def test_anthropic_wire(tenant, credential, fake_llm):
    credential(kind=ProviderKind.ANTHROPIC)
    fake_llm.script(tool_calls=[{"name": "eval_expression", "arguments": {"expression": "2**8"}}])
    fake_llm.script("256.")
    run, _ = run_agent(tenant, agent(model=ANTHROPIC))
    assert run.status == "succeeded", run.error
    assert run.outputs["text"] == "256."
    first, second = fake_llm.requests
    assert first.path == "/v1/messages"
    assert [tool["name"] for tool in first.json["tools"]] == ["eval_expression", "current_time"]
    assert first.json["system"] == "You are precise."
    results = [
        block
        for message in second.json["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert [block["content"] for block in results] == ["256"]


def test_query_from_a_variable_and_instruction_templates(tenant, fake):
    node = agent(
        tools=[],
        instruction="Answer in {{#start.lang#}}.",
    )
    node["data"]["agent_parameters"]["query"] = {"type": "variable", "value": ["start", "q"]}
    nodes = [start("q", "lang"), node, end(text=["agent", "text"])]
    run, events = execute(
        nodes, chain("start", "agent", "end"), {"q": "Hi there", "lang": "French"}, tenant=tenant
    )
    assert run.status == "succeeded", run.error
    sent = fake.requests[0].json
    assert "tools" not in sent
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "Answer in French."),
        ("user", "Hi there"),
    ]
    assert run.outputs["text"] == "You said: Hi there"
    assert finished(events)["agent"].inputs == {
        "instruction": "Answer in French.",
        "query": "Hi there",
    }


def test_chatflow_memory_comes_before_the_query(tenant, fake):
    async def memory(size):
        assert size == 2
        return [ChatMessage("user", "I like wool."), ChatMessage("assistant", "Noted.")]

    node = agent(tools=[], memory={"window": {"enabled": True, "size": 2}})
    nodes = [start("q"), node, end(text=["agent", "text"])]
    run, _ = execute(
        nodes,
        chain("start", "agent", "end"),
        {"q": "What do I like?"},
        tenant=tenant,
        services={"memory": memory},
    )
    assert run.status == "succeeded", run.error
    assert [(m["role"], m["content"]) for m in fake.requests[0].json["messages"]] == [
        ("system", "You are precise."),
        ("user", "I like wool."),
        ("assistant", "Noted."),
        ("user", "What do I like?"),
    ]


def test_a_failed_model_call_fails_the_node(tenant, fake):
    fake.fail_next(status=400)
    run, events = run_agent(tenant, agent())
    assert run.status == "failed"
    assert finished(events)["agent"].error_type == "provider_bad_request"


def test_offline_model_answers_in_one_round(tenant):
    model = {"provider": "offline", "model": "weft-offline-chat"}
    run, events = run_agent(tenant, agent(model=model, tools=[CALCULATOR]))
    assert run.status == "succeeded", run.error
    rounds = finished(events)["agent"].process_data["rounds"]
    assert len(rounds) == 1 and rounds[0]["tool_calls"] == []
    assert run.outputs["text"]


# --- ReAct -------------------------------------------------------------------------------------

ACTION = """Thought: I should compute it.
Action:
```
{"action": "eval_expression", "action_input": {"expression": "6*7"}}
```"""


def test_react_acts_observes_and_answers(tenant, fake):
    fake.script(ACTION)
    fake.script("Thought: I know the answer\nFinal Answer: 6 times 7 is 42.")
    run, events = run_agent(tenant, agent(strategy="ReAct"))
    assert run.status == "succeeded", run.error
    assert run.outputs["text"] == "6 times 7 is 42."
    first, second = fake.requests
    assert "tools" not in first.json
    system = first.json["messages"][0]["content"]
    assert system.startswith("You are precise.")
    assert "- eval_expression: Exact arithmetic." in system
    assert "Final Answer:" in system
    assert "Observation:" in first.json["stop"]
    assert [(m["role"], m["content"]) for m in second.json["messages"][2:]] == [
        ("assistant", ACTION),
        ("user", "Observation: 42"),
    ]
    node = finished(events)["agent"]
    rounds = node.process_data["rounds"]
    assert rounds[0]["thought"] == "I should compute it."
    assert rounds[0]["action"]["output"] == "42"
    assert rounds[1]["thought"] == "I know the answer"
    assert node.process_data["strategy"] == "ReAct"
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == "6 times 7 is 42."
    assert node.total_tokens > 0


def test_react_last_round_asks_for_the_answer(tenant, fake):
    fake.script(ACTION, times=2)
    run, _ = run_agent(tenant, agent(strategy="ReAct", rounds=2))
    assert run.status == "succeeded", run.error
    assert len(fake.requests) == 2
    last = fake.requests[1].json["messages"][-1]["content"]
    assert last.startswith("Observation: 42\n\nYou cannot use tools any more.")


@pytest.mark.parametrize(
    ("text", "thought", "action", "final"),
    [
        ("Thought: easy\nFinal Answer: 4", "easy", None, "4"),
        (ACTION, "I should compute it.", "eval_expression", None),
        ('Action: {"action": "Final Answer", "action_input": "done"}', "", None, "done"),
        ("Just an answer.", "", None, "Just an answer."),
        ("Thought: hmm\nAction: nothing useful", "hmm", None, "hmm\nAction: nothing useful"),
    ],
)
def test_parse_react(text, thought, action, final):
    step = parse_react(text)
    assert (step.thought, step.action, step.final) == (thought, action, final)


# --- Validation --------------------------------------------------------------------------------


def test_validation_of_agent_nodes(build_spec):
    def errors(node):
        nodes = [start("q"), node, end(text=["agent", "text"])]
        return [
            (e.code, e.message) for e in validate(build_spec(nodes, chain("start", "agent", "end")))
        ]

    assert errors(agent()) == []
    assert errors(agent(strategy="ReAct", rounds=None)) == []
    mcp = errors(agent(agent_strategy_provider_name="hjlarry/agent/mcp_agent"))
    assert [code for code, _ in mcp] == ["unsupported_agent"]
    assert "hjlarry/agent/mcp_agent/function_calling is a plugin Weft cannot run" in mcp[0][1]
    assert [code for code, _ in errors(agent(strategy="plan_and_execute"))] == ["unsupported_agent"]
    search = CALCULATOR | {"provider_name": "langgenius/tavily/tavily", "tool_name": "search"}
    missing = errors(agent(tools=[CLOCK, search]))
    assert [code for code, _ in missing] == ["unknown_tool"]
    assert "tool langgenius/tavily/tavily/search is not among" in missing[0][1]
    disabled = search | {"enabled": False}
    assert errors(agent(tools=[CLOCK, disabled])) == []
    ghost = errors(agent(query="{{#ghost.text#}}"))
    assert [code for code, _ in ghost] == ["dangling_selector"]
    no_model = agent()
    del no_model["data"]["agent_parameters"]["model"]
    assert errors(no_model) == [
        (
            "unsupported_agent",
            "node agent (agent 'Agent'): the agent names no model (parameter “model”)",
        )
    ]


def test_rounds_are_bounded():
    for value, expected in (("5", 5), (0, 1), (1000, 30), ("many", 3), (None, 3)):
        node = agent(rounds=None)
        node["data"]["agent_parameters"]["maximum_iterations"] = {
            "type": "constant",
            "value": value,
        }
        assert Node.model_validate(node).data.rounds() == expected
