"""The agent node: Dify's two agent strategies, run by Weft with the node's model, instruction,
query and built-in tools (workflows.tools), for at most `maximum_iterations` model calls.

- function_calling: the tools are offered through the provider's tool-calling API; each
  round the model answers or calls tools (a round's calls run at once), and their results go
  back as tool messages. The last round offers no tools, so that the model answers.
- ReAct: the tools are described in the system prompt; the model writes a Thought and an
  Action (a JSON blob naming a tool) or a Final Answer, and gets each Observation back.

The answer streams like the LLM node's (function calling: every round's text as it comes;
ReAct: the final answer). Tokens and price of every call are summed; each round (the
model's text, the calls, what the tools said, the tokens) is kept in process_data. A tool's
refusal does not fail the node: the model is told, and may try again.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.runtime.types import (
    ChatMessage,
    Tool,
)
from tenants.exceptions import WeftError

from ..dsl import AgentData, ModelConfig
from ..dsl.base import MemoryConfig
from ..dsl.nodes_opaque import AgentTool
from ..dsl.selectors import to_text
from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register
from ..tools import BuiltinTool, registry
from .calls import NodeModel, Reply
from .prompts import history
from .tools import resolve_input, tool_context

ROUND_SEPARATOR = "\n\n"
# What a model reads of one tool result; a page of text is plenty to answer from.
MAX_OBSERVATION_CHARS = 20_000

REACT_PROMPT = """{instruction}

You can use these tools:
{tools}

Work in steps, in this format:

Thought: what to do next
Action:
```
{{"action": "<one of: {names}>", "action_input": {{<the tool's arguments>}}}}
```

After an Action, stop: its result comes back to you as "Observation: …". Repeat Thought,
Action and Observation as needed. When you know the answer, write:

Thought: I know the answer
Final Answer: <the answer for the user>"""
REACT_LAST_ROUND = (
    "You cannot use tools any more. Answer now with what you know, as:\n"
    "Final Answer: <the answer for the user>"
)
REACT_STOP = "Observation:"
_FINAL = re.compile(r"Final\s+Answer\s*:\s*", re.IGNORECASE)
_ACTION = re.compile(r"^\s*Action\s*:", re.IGNORECASE | re.MULTILINE)
_THOUGHT = re.compile(r"^\s*Thought\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class OfferedTool:
    """A registry tool as the agent offers it: under which function name, with which
    description and parameters, and the values the builder fixed."""

    function: str
    tool: BuiltinTool
    definition: Tool
    fixed: dict[str, Any]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _fixed_values(ctx: NodeContext, tool: BuiltinTool, listed: AgentTool) -> dict[str, Any]:
    """The values the builder set: the tool's settings, and parameters not left to the
    model (`{auto: 0, value}`, or a plain value of a settings-form parameter)."""
    fixed = {name: value for name, value in listed.settings.items() if not _blank(value)}
    for name, item in listed.parameters.items():
        if isinstance(item, Mapping) and ("auto" in item or "value" in item):
            if item.get("auto"):
                continue
            value = item.get("value")
            if isinstance(value, Mapping) and "type" in value and "value" in value:
                value = resolve_input(ctx, str(value["type"]), value["value"])
        else:
            parameter = tool.parameter(name)
            if parameter is None or parameter.form != "form":
                continue
            value = item
        if not _blank(value):
            fixed[name] = value
    return fixed


def offered_tools(ctx: NodeContext, data: AgentData) -> list[OfferedTool]:
    """The node's tools as the model is offered them, each under a distinct function name."""
    offered: list[OfferedTool] = []
    taken: set[str] = set()
    for listed in data.tools():
        tool = registry.get(listed.provider, listed.name)
        if tool is None or listed.kind != "builtin":
            raise NodeFailed(
                f"Tool {listed.key} is not one of Weft's built-in tools.",
                error_type="ToolNotFound",
            )
        function = tool.name if tool.name not in taken else f"{tool.provider_id}_{tool.name}"
        taken.add(function)
        fixed = _fixed_values(ctx, tool, listed)
        own = tool.definition(omit=fixed)
        definition = Tool(
            name=function,
            description=listed.description or own.description,
            parameters=own.parameters,
        )
        offered.append(OfferedTool(function, tool, definition, fixed))
    return offered


def _observation(text: str) -> str:
    if len(text) > MAX_OBSERVATION_CHARS:
        return text[:MAX_OBSERVATION_CHARS] + "\n[…]"
    return text


@dataclass
class Calls:
    """What the agent's tool calls produced: files and JSON values for the node's outputs."""

    files: list[dict[str, Any]] = field(default_factory=list)
    json: list[Any] = field(default_factory=list)

    async def call(
        self, ctx: NodeContext, tools: dict[str, OfferedTool], name: str, arguments: Any
    ) -> tuple[str, dict[str, Any]]:
        """Run one call the model asked for: what the model is told, and the log entry.
        `arguments` is the model's JSON text (function calling) or value (ReAct)."""
        started = time.perf_counter()
        log: dict[str, Any] = {"name": name}
        offered = tools.get(name)
        if offered is None:
            known = ", ".join(tools) or "none"
            observation = f"Error: there is no tool named “{name}”. The tools are: {known}."
            return observation, log | {"error": observation, "output": observation}
        log["tool"] = offered.tool.key
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError:
                arguments = None
        if not isinstance(arguments, dict):
            observation = "Error: the arguments must be a JSON object."
            return observation, log | {"error": observation, "output": observation}
        log["arguments"] = arguments
        try:
            result = await offered.tool.invoke(tool_context(ctx), {**arguments, **offered.fixed})
        except WeftError as exc:
            observation = f"Error: {exc.message}"
            log |= {"error": exc.message, "output": observation}
        else:
            text = result.text
            if not text and result.json is not None:
                text = json.dumps(result.json, ensure_ascii=False)
            observation = _observation(text)
            self.files += result.files
            if result.json is not None:
                self.json.append(result.json)
            log["output"] = observation
        log["elapsed_time"] = round(time.perf_counter() - started, 3)
        return observation, log


def _round_usage(turn: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": turn.usage.prompt_tokens,
        "completion_tokens": turn.usage.completion_tokens,
        "total_tokens": turn.usage.total_tokens,
    }


@dataclass
class ReactStep:
    """What a ReAct answer says: a thought, and an action or a final answer."""

    thought: str
    action: str | None = None
    action_input: Any = None
    final: str | None = None


def _action_blob(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` that names an action."""
    decoder = json.JSONDecoder()
    for index, char in enumerate(text):
        if char != "{":
            continue
        try:
            value = decoder.raw_decode(text, index)[0]
        except ValueError:
            continue
        if isinstance(value, dict) and "action" in value:
            return value
    return None


def parse_react(text: str) -> ReactStep:
    """Read a ReAct answer; text with neither an action nor a final answer is the answer."""
    final = _FINAL.search(text)
    action = _ACTION.search(text)
    cut = min(m.start() for m in (final, action) if m is not None) if final or action else None
    thought = _THOUGHT.sub("", text[:cut] if cut is not None else "").strip()
    if final is not None and (action is None or final.start() < action.start()):
        return ReactStep(thought, final=text[final.end() :].strip())
    if action is not None:
        blob = _action_blob(text[action.end() :])
        if blob is not None:
            name = str(blob.get("action") or "")
            value = blob.get("action_input", {})
            if name.lower().replace("_", " ") == "final answer":
                return ReactStep(thought, final=to_text(value))
            return ReactStep(thought, action=name, action_input=value)
    return ReactStep(thought, final=_THOUGHT.sub("", text).strip())


@register
class AgentExecutor(NodeExecutor):
    """Runs the node's agent strategy; outputs `text`, `files`, `json` and `usage`."""

    types = ("agent",)
    data: AgentData

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        problem = data.problem()
        chosen = data.agent_model()
        if problem is not None or chosen is None:
            raise NodeFailed(
                problem[1] if problem else "The agent names no model.",
                error_type="UnsupportedAgent",
            )
        config = ModelConfig(
            provider=chosen.provider,
            name=chosen.name,
            mode=chosen.mode,
            completion_params=chosen.completion_params,
        )
        model = await NodeModel.open(ctx, config)
        tools = offered_tools(ctx, data)
        instruction = self._text(ctx, "instruction")
        query = self._text(ctx, "query")
        if not query.strip():
            raise NodeFailed("The agent's query is empty.", error_type="EmptyQuery")
        memory = data.model_extra.get("memory") if data.model_extra else None
        past = await history(
            ctx, MemoryConfig.model_validate(memory) if isinstance(memory, dict) else None
        )
        calls = Calls()
        if data.agent_strategy_name == "ReAct":
            text, rounds, messages = await self._react(
                ctx, model, instruction, past, query, tools, calls
            )
        else:
            text, rounds, messages = await self._function_calling(
                ctx, model, instruction, past, query, tools, calls
            )
        outputs = {"text": text, "files": calls.files, "json": calls.json, "usage": model.usage()}
        process_data = model.process_data(messages) | {
            "strategy": data.agent_strategy_name,
            "tools": [offered.tool.key for offered in tools],
            "rounds": rounds,
        }
        inputs = {"instruction": instruction, "query": query}
        return model.result(outputs, inputs=inputs, process_data=process_data)

    def _text(self, ctx: NodeContext, name: str) -> str:
        kind, value = self.data.parameter(name)
        if kind == "variable":
            return to_text(resolve_input(ctx, kind, value))
        if isinstance(value, str):
            return ctx.render(value)
        return to_text(value)

    async def _function_calling(
        self,
        ctx: NodeContext,
        model: NodeModel,
        instruction: str,
        past: list[ChatMessage],
        query: str,
        tools: list[OfferedTool],
        calls: Calls,
    ) -> tuple[str, list[dict[str, Any]], list[ChatMessage]]:
        messages = [
            *([ChatMessage("system", instruction)] if instruction.strip() else []),
            *past,
            ChatMessage("user", query),
        ]
        by_name = {offered.function: offered for offered in tools}
        definitions = [offered.definition for offered in tools]
        texts: list[str] = []
        rounds: list[dict[str, Any]] = []
        limit = self.data.rounds()
        for number in range(1, limit + 1):
            last = number == limit or not definitions
            started = False

            def on_text(piece: str) -> None:
                nonlocal started
                if not started and texts:
                    ctx.stream("text", ROUND_SEPARATOR)
                started = True
                ctx.stream("text", piece)

            turn = await model.ask(messages, tools=() if last else definitions, on_text=on_text)
            entry: dict[str, Any] = {
                "round": number,
                "text": turn.text,
                "finish_reason": turn.finish_reason,
                "usage": _round_usage(turn),
                "tool_calls": [],
            }
            rounds.append(entry)
            if turn.text:
                texts.append(turn.text)
            if last or not turn.tool_calls:
                break
            messages.append(ChatMessage("assistant", turn.text, tool_calls=turn.tool_calls))
            results = await asyncio.gather(
                *(calls.call(ctx, by_name, call.name, call.arguments) for call in turn.tool_calls)
            )
            for call, (observation, log) in zip(turn.tool_calls, results, strict=True):
                entry["tool_calls"].append({"id": call.id, **log})
                messages.append(
                    ChatMessage("tool", observation, tool_call_id=call.id, name=call.name)
                )
        return ROUND_SEPARATOR.join(texts), rounds, messages

    async def _react(
        self,
        ctx: NodeContext,
        model: NodeModel,
        instruction: str,
        past: list[ChatMessage],
        query: str,
        tools: list[OfferedTool],
        calls: Calls,
    ) -> tuple[str, list[dict[str, Any]], list[ChatMessage]]:
        limit = self.data.rounds()
        # With one round there is no room for an observation: the model just answers.
        usable = tools if limit > 1 else []
        by_name = {offered.function: offered for offered in usable}
        described = "\n".join(
            f"- {o.function}: {o.definition.description}\n  arguments (JSON schema): "
            f"{json.dumps(o.definition.parameters, ensure_ascii=False)}"
            for o in usable
        )
        system = (
            REACT_PROMPT.format(
                instruction=instruction.strip(), tools=described, names=", ".join(by_name)
            ).strip()
            if usable
            else instruction.strip()
        )
        messages = [
            *([ChatMessage("system", system)] if system else []),
            *past,
            ChatMessage("user", query),
        ]
        rounds: list[dict[str, Any]] = []
        answer = ""
        for number in range(1, limit + 1):
            last = number == limit
            if last and number > 1:
                tail = messages[-1]
                messages[-1] = ChatMessage("user", f"{tail.content}\n\n{REACT_LAST_ROUND}")
            turn = await model.ask(messages, stop=(REACT_STOP,) if usable else ())
            step = parse_react(turn.text)
            entry: dict[str, Any] = {
                "round": number,
                "text": turn.text,
                "thought": step.thought,
                "finish_reason": turn.finish_reason,
                "usage": _round_usage(turn),
            }
            rounds.append(entry)
            if step.action is None or last:
                answer = step.final if step.final is not None else turn.text.strip()
                break
            observation, log = await calls.call(ctx, by_name, step.action, step.action_input)
            entry["action"] = log
            messages += [
                # Without what a model may have imagined the observation to be.
                ChatMessage("assistant", turn.text.split(REACT_STOP)[0].rstrip()),
                ChatMessage("user", f"Observation: {observation}"),
            ]
        ctx.stream("text", answer)
        return answer, rounds, messages
