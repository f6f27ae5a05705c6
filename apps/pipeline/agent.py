"""The agent-chat loop (function calling): the model is offered the app's enabled tools; each
step's text streams as `agent_message`, each step is saved as a MessageAgentThought and sent as
`agent_thought` (once when the model has chosen its tools, again with what they gave back);
the tools' results go back to the model, until it answers without a tool or
`agent_mode.max_iteration` steps have run (the last step is offered no tools, so it answers).

Tools come from `workflows.tools.registry`, keyed as Dify keys them. A tool's parameters set in
the app (`tool_parameters`) are fixed: the model is not offered them and cannot change them.
A tool that fails, times out, or is called with arguments that are not JSON gives the model
an error text to read, not a failed answer. Every strategy (`function_call`, `react` …) runs
this loop: Weft's model runtime gives every provider native tool calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from providers.runtime.types import ChatMessage, Tool, ToolCall
from tenants.exceptions import InvalidInput, WeftError
from workflows.tools import ToolContext, registry

from ..config import AgentTool, AppConfig
from ..models import MessageAgentThought

if TYPE_CHECKING:
    from .chat import Turn

logger = logging.getLogger(__name__)

TOOL_TIMEOUT_SECONDS = 60.0
MAX_OBSERVATION_CHARS = 20_000


@dataclass(frozen=True)
class Offered:
    """A tool as this app offers it: the registry's tool, its fixed parameters, and what the
    model is shown."""

    entry: AgentTool
    tool: Any
    preset: dict[str, Any]
    definition: Tool


def _definition(tool: Any, preset: Mapping[str, Any]) -> Tool:
    try:
        return tool.definition(omit=tuple(preset))
    except TypeError:  # a tool whose definition takes no `omit`
        return tool.definition()


def offered_tools(config: AppConfig) -> dict[str, Offered]:
    """The enabled tools by the name the model calls them; InvalidInput naming a tool Weft
    does not have, or two tools of one name."""
    offered: dict[str, Offered] = {}
    for index, entry in enumerate(config.agent_mode.tools):
        if not entry.enabled:
            continue
        tool = registry.get(entry.provider_id, entry.tool_name)
        if tool is None:
            raise InvalidInput(
                f"agent_mode.tools[{index}]: the tool “{entry.provider_id}/{entry.tool_name}” "
                "is not available in Weft."
            )
        preset = {k: v for k, v in entry.tool_parameters.items() if v not in (None, "")}
        definition = _definition(tool, preset)
        if definition.name in offered:
            raise InvalidInput(
                f"agent_mode.tools[{index}]: two enabled tools are called “{definition.name}”."
            )
        offered[definition.name] = Offered(entry, tool, preset, definition)
    return offered


def check_tools(config: AppConfig) -> None:
    """Refuse an agent whose enabled tools cannot all be called (before anything runs)."""
    offered_tools(config)


def _arguments(call: ToolCall) -> dict[str, Any] | str:
    """The call's arguments as an object, or the text of what is wrong with them."""
    try:
        value = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        return f"the arguments are not valid JSON ({exc.msg})"
    if not isinstance(value, dict):
        return "the arguments must be a JSON object"
    return value


async def _invoke(turn: Turn, offered: dict[str, Offered], call: ToolCall) -> str:
    found = offered.get(call.name)
    if found is None:
        return f"Error: there is no tool called “{call.name}”."
    arguments = _arguments(call)
    if isinstance(arguments, str):
        return f"Error: {call.name}: {arguments}."
    message = turn.message
    context = ToolContext(
        tenant=turn.tenant,
        app_id=str(turn.app.pk),
        user_id=message.end_user.session_id if message.end_user else None,
        message_id=str(message.pk),
        conversation_id=str(message.conversation_id) if message.conversation_id else None,
    )
    try:
        result = await asyncio.wait_for(
            found.tool.invoke(context, {**arguments, **found.preset}), TOOL_TIMEOUT_SECONDS
        )
    except WeftError as exc:
        return f"Error: {exc.message}"
    except TimeoutError:
        return f"Error: {call.name} did not answer within {TOOL_TIMEOUT_SECONDS:g} s."
    except Exception:
        logger.exception("tool %s failed in message %s", call.name, message.pk)
        return f"Error: {call.name} failed unexpectedly."
    text = result.text if result.text or result.json is None else json.dumps(result.json)
    if len(text) > MAX_OBSERVATION_CHARS:
        text = text[:MAX_OBSERVATION_CHARS] + "… (cut)"
    return text


def _tool_input(calls: list[ToolCall]) -> str:
    inputs: dict[str, Any] = {}
    for call in calls:
        parsed = _arguments(call)
        inputs[call.name] = parsed if isinstance(parsed, dict) else call.arguments
    return json.dumps(inputs, ensure_ascii=False) if inputs else ""


def _save_thought(turn: Turn, fields: dict[str, Any], thought: MessageAgentThought | None):
    if thought is None:
        return MessageAgentThought.dangerously_unscoped.create(
            tenant=turn.tenant, message=turn.message, **fields
        )
    MessageAgentThought.dangerously_unscoped.filter(pk=thought.pk).update(**fields)
    for name, value in fields.items():
        setattr(thought, name, value)
    return thought


async def _emit(turn: Turn, thought: MessageAgentThought, offered: dict[str, Offered]) -> None:
    labels = {
        name: {"en_US": getattr(offered[name].tool, "label", name)}
        for name in thought.tool.split(";")
        if name in offered
    }
    await turn.events.emit(
        "agent_thought",
        id=str(thought.pk),
        position=thought.position,
        thought=thought.thought,
        observation=thought.observation,
        tool=thought.tool,
        tool_labels=labels,
        tool_input=thought.tool_input,
        message_files=[],
        created_at=turn.events.created_at,
    )


async def run_agent(turn: Turn, messages: list[ChatMessage]) -> None:
    """Answer the turn with the tool loop (see the module's docstring)."""
    offered = offered_tools(turn.config)
    definitions = [o.definition for o in offered.values()]
    conversation = list(messages)
    steps = turn.config.agent_mode.max_iteration
    for position in range(1, steps + 1):
        started = time.monotonic()
        tokens, price = turn.usage.total_tokens, turn.usage.total_price
        last = position == steps
        text, calls = await turn.call_model(conversation, None if last else definitions or None)
        fields: dict[str, Any] = {
            "position": position,
            "thought": text,
            "tool": ";".join(call.name for call in calls),
            "tool_input": _tool_input(calls),
            "tokens": turn.usage.total_tokens - tokens,
            "total_price": turn.usage.total_price - price,
            "latency": time.monotonic() - started,
        }
        thought = await sync_to_async(_save_thought)(turn, fields, None)
        await _emit(turn, thought, offered)
        if not calls or turn.moderator.replaced:
            return
        conversation.append(ChatMessage("assistant", text, tool_calls=tuple(calls)))
        observations: dict[str, str] = {}
        for call in calls:
            result = await _invoke(turn, offered, call)
            observations[call.name] = result
            conversation.append(ChatMessage("tool", result, tool_call_id=call.id, name=call.name))
        update = {
            "observation": json.dumps(observations, ensure_ascii=False),
            "latency": time.monotonic() - started,
        }
        thought = await sync_to_async(_save_thought)(turn, update, thought)
        await _emit(turn, thought, offered)
