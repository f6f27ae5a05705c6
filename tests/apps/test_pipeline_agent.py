"""Agent-chat: the function-calling loop against the fake LLM, with a tool of the test's own
registered in the built-in registry; every step saved and streamed."""

from __future__ import annotations

import json

import pytest

from apps.models import App, MessageAgentThought
from tests.providers import conftest as provider_fixtures
from workflows.tools import (
    BuiltinTool,
    ToolContext,
    ToolError,
    ToolParameter,
    ToolProvider,
    ToolResult,
    registry,
)

from .pipeline_support import answer_of, ask, configure, names, user_of

pytestmark = pytest.mark.django_db

runtime_state = provider_fixtures.runtime_state
credential = provider_fixtures.credential

KIT = ToolProvider(id="testkit", label="Test kit", description="Tools of the tests.", icon="🧪")
SEEN: list[tuple[ToolContext, dict]] = []


class Weigh(BuiltinTool):
    """Says what a fibre weighs; `unit` is the builder's setting."""

    provider = KIT
    name = "weigh"
    label = "Weigh"
    description = "The weight of a bale of a fibre."
    parameters = (
        ToolParameter("fibre", required=True, description="which fibre"),
        ToolParameter("unit", form="form", default="g"),
    )

    async def run(self, context: ToolContext, values: dict) -> ToolResult:
        SEEN.append((context, values))
        if values["fibre"] == "unobtainium":
            raise ToolError("No such fibre.")
        return ToolResult(text=f"A bale of {values['fibre']} weighs 42 {values['unit']}.")


@pytest.fixture(autouse=True)
def weigh_tool():
    registry.register(Weigh())
    SEEN.clear()
    yield
    registry._tools.pop(("testkit", "weigh"), None)


@pytest.fixture
def agent(tenant, make_app, credential, fake_llm):
    credential()
    return configure(
        make_app(tenant, App.Mode.AGENT_CHAT),
        pre_prompt="You weigh things.",
        agent_mode={
            "enabled": True,
            "strategy": "function_call",
            "max_iteration": 3,
            "tools": [
                {
                    "provider_type": "builtin",
                    "provider_id": "testkit",
                    "tool_name": "weigh",
                    "tool_parameters": {"unit": "kg"},
                    "enabled": True,
                }
            ],
        },
    )


def test_the_agent_calls_the_tool_and_answers_from_its_result(agent, fake_llm):
    fake_llm.script(tool_calls=[{"name": "weigh", "arguments": {"fibre": "wool"}, "id": "c1"}])
    fake_llm.script("A bale of wool weighs 42 kg.")
    alice = user_of(agent)
    task, events, message = ask(agent, alice, "How heavy is wool?", auto_generate_name=False)

    offered = fake_llm.requests[0].json["tools"]
    assert [t["function"]["name"] for t in offered] == ["weigh"]
    # The builder's setting is fixed: the model is not offered it.
    assert list(offered[0]["function"]["parameters"]["properties"]) == ["fibre"]
    second = fake_llm.requests[1].json["messages"]
    assert second[-2]["role"] == "assistant"
    assert second[-2]["tool_calls"][0]["function"]["name"] == "weigh"
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "c1"
    assert second[-1]["content"] == "A bale of wool weighs 42 kg."

    context, values = SEEN[0]
    assert values == {"fibre": "wool", "unit": "kg"}
    assert context.tenant == agent.tenant and context.message_id == task.message_id
    assert context.user_id == "alice" and context.conversation_id == task.conversation_id

    kinds = names(events)
    assert kinds[-1] == "message_end"
    thoughts = [e for e in events if e["event"] == "agent_thought"]
    assert [(t["position"], t["tool"]) for t in thoughts] == [(1, "weigh"), (1, "weigh"), (2, "")]
    assert json.loads(thoughts[0]["tool_input"]) == {"weigh": {"fibre": "wool"}}
    assert thoughts[0]["observation"] == ""
    assert json.loads(thoughts[1]["observation"]) == {"weigh": "A bale of wool weighs 42 kg."}
    assert thoughts[0]["id"] == thoughts[1]["id"] != thoughts[2]["id"]
    assert thoughts[1]["tool_labels"] == {"weigh": {"en_US": "Weigh"}}
    assert {"task_id", "message_id", "conversation_id", "created_at"} <= set(thoughts[0])
    assert "message" not in kinds and "agent_message" in kinds
    assert answer_of(events) == message.answer == "A bale of wool weighs 42 kg."

    assert message.agent_based
    rows = list(MessageAgentThought.dangerously_unscoped.filter(message=message))
    assert [(r.position, r.tool) for r in rows] == [(1, "weigh"), (2, "")]
    assert rows[0].observation == thoughts[1]["observation"]
    assert rows[0].tokens > 0 and rows[1].tokens > 0
    assert message.message_tokens + message.answer_tokens == rows[0].tokens + rows[1].tokens


def test_tool_errors_and_broken_arguments_go_back_to_the_model(agent, fake_llm):
    fake_llm.script(
        tool_calls=[
            {"name": "weigh", "arguments": {"fibre": "unobtainium"}, "id": "a"},
            {"name": "weigh", "arguments": '{"fibre": ', "id": "b"},
            {"name": "teleport", "arguments": {}, "id": "c"},
        ]
    )
    fake_llm.script("I could not weigh it.")
    _, _, message = ask(agent, user_of(agent), "Weigh it", auto_generate_name=False)
    tool_results = [m for m in fake_llm.requests[1].json["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_results] == ["a", "b", "c"]
    assert tool_results[0]["content"] == "Error: No such fibre."
    assert "not valid JSON" in tool_results[1]["content"]
    assert "no tool called “teleport”" in tool_results[2]["content"]
    assert message.status == "normal" and message.answer == "I could not weigh it."


def test_the_last_step_is_offered_no_tools(agent, fake_llm):
    for _ in range(3):
        fake_llm.script(tool_calls=[{"name": "weigh", "arguments": {"fibre": "silk"}}])
    fake_llm.script("Done weighing.")
    _, _, message = ask(agent, user_of(agent), "Weigh silk forever")
    answers = [r for r in fake_llm.requests if "weigh" in json.dumps(r.json.get("tools", []))]
    assert len(answers) == 2  # steps 1 and 2 offer the tool, step 3 does not
    assert "tools" not in fake_llm.requests[2].json
    rows = MessageAgentThought.dangerously_unscoped.filter(message=message)
    assert rows.count() == 3
    assert message.status == "normal" and message.answer
