"""The LLM node: a prompt (chat messages, or one completion text) rendered from the pool with
context, memory and Jinja2, sent to the tenant's model; the answer is streamed to the answer
and end nodes that show it, its `<think>` blocks kept apart on request, and its JSON checked
against the node's schema when structured output is on."""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import SchemaError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from providers.runtime.types import ChatMessage, ResponseFormat

from ..dsl import LLMData
from ..dsl.nodes_model import CompletionPrompt, PromptMessage
from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register
from .calls import NodeModel
from .prompts import (
    HISTORIES,
    context_text,
    history,
    history_text,
    memory_query,
    parse_json,
    render_basic,
    render_jinja,
    with_instructions,
)

_OPEN_THINK = re.compile(r"<think[^>]*>", re.IGNORECASE)
_CLOSE_THINK = "</think>"

SCHEMA_INSTRUCTIONS = (
    "Answer with one JSON object and nothing else. It must follow this JSON schema:\n{schema}"
)
REPAIR_REQUEST = (
    "That answer does not follow the JSON schema ({error}). Answer again with only the "
    "corrected JSON object."
)


def _may_open(tail: str) -> bool:
    """Whether `tail` (from a `<` to the end) may still become `<think…>`."""
    lowered = tail.lower()
    return "<think".startswith(lowered) or (lowered.startswith("<think") and ">" not in tail)


def _partial_close(text: str) -> int:
    """How many characters at the end of `text` may be the start of `</think>`."""
    lowered = text.lower()
    for size in range(min(len(_CLOSE_THINK) - 1, len(text)), 0, -1):
        if _CLOSE_THINK.startswith(lowered[-size:]):
            return size
    return 0


class ThinkFilter:
    """Passes streamed text on without its `<think>…</think>` blocks, which it keeps apart. A
    piece that may be the start of a tag waits for the next piece to decide."""

    def __init__(self) -> None:
        self._visible: list[str] = []
        self._thoughts: list[str] = []
        self._thought: list[str] = []
        self._pending = ""
        self._inside = False

    def feed(self, piece: str) -> str:
        """The part of the text so far that can be shown now."""
        self._pending += piece
        shown: list[str] = []
        while self._pending:
            if self._inside:
                end = self._pending.lower().find(_CLOSE_THINK)
                if end < 0:
                    keep = len(self._pending) - _partial_close(self._pending)
                    self._thought.append(self._pending[:keep])
                    self._pending = self._pending[keep:]
                    break
                self._thought.append(self._pending[:end])
                self._end_thought()
                self._pending = self._pending[end + len(_CLOSE_THINK) :]
                continue
            opening = _OPEN_THINK.search(self._pending)
            if opening is not None:
                shown.append(self._pending[: opening.start()])
                self._pending = self._pending[opening.end() :]
                self._inside = True
                continue
            start = self._pending.rfind("<")
            if start >= 0 and _may_open(self._pending[start:]):
                shown.append(self._pending[:start])
                self._pending = self._pending[start:]
                break
            shown.append(self._pending)
            self._pending = ""
        return self._show("".join(shown))

    def flush(self) -> str:
        """What is left once the answer has ended (an unclosed block is a thought)."""
        rest, self._pending = self._pending, ""
        if self._inside:
            self._thought.append(rest)
            self._end_thought()
            return ""
        return self._show(rest)

    @property
    def text(self) -> str:
        return "".join(self._visible).strip()

    @property
    def reasoning(self) -> str:
        return "\n".join(thought for thought in self._thoughts if thought)

    def _end_thought(self) -> None:
        self._thoughts.append("".join(self._thought).strip())
        self._thought = []
        self._inside = False

    def _show(self, text: str) -> str:
        # The blank lines a model leaves after its thoughts are not part of the answer.
        if not any(self._visible):
            text = text.lstrip()
        self._visible.append(text)
        return text


def split_thinking(text: str) -> tuple[str, str]:
    """A whole answer without its `<think>` blocks, and the blocks' text."""
    thinking = ThinkFilter()
    thinking.feed(text)
    thinking.flush()
    return thinking.text, thinking.reasoning


def _check(text: str, validator: Any) -> tuple[Any, str]:
    """The answer's JSON, and what is wrong with it (empty when nothing is)."""
    try:
        value = parse_json(text)
    except ValueError:
        return None, "the answer is not JSON"
    error = best_match(validator.iter_errors(value))
    if error is None:
        return value, ""
    where = "/".join(str(part) for part in error.absolute_path) or "the top level"
    return value, f"at {where}: {error.message}"


@register
class LLMExecutor(NodeExecutor):
    """Renders the prompt, calls the model, streams its text; outputs `text`,
    `reasoning_content`, `usage`, `finish_reason` (and `structured_output`)."""

    types = ("llm",)
    data: LLMData

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        schema = self._schema()
        model = await NodeModel.open(ctx, data.model)
        context = ""
        if data.context.enabled and data.context.variable_selector:
            context = context_text(ctx.get(data.context.variable_selector))
        variables = {
            v.variable: ctx.get(v.value_selector)
            for v in (data.prompt_config.jinja2_variables if data.prompt_config else None) or []
        }
        messages = await self._messages(ctx, context, variables)
        inputs: dict[str, Any] = dict(variables)
        if context:
            inputs["#context#"] = context
        notes: dict[str, Any] = {}
        if schema is None:
            text, reasoning = await self._answer(ctx, model, messages)
            outputs: dict[str, Any] = {"text": text, "reasoning_content": reasoning}
        else:
            outputs, messages, repaired = await self._structured(model, messages, schema)
            if repaired:
                notes["structured_output_repaired"] = repaired
        if data.vision.enabled:
            notes["vision"] = "Files are not sent to the model: Weft's model runtime takes text."
        outputs |= {"usage": model.usage(), "finish_reason": model.finish_reason}
        return model.result(
            outputs, inputs=inputs, process_data=model.process_data(messages) | notes
        )

    # --- The prompt ----------------------------------------------------------------------

    async def _render(
        self,
        ctx: NodeContext,
        prompt: PromptMessage | CompletionPrompt,
        context: str,
        variables: dict[str, Any],
    ) -> str:
        if prompt.edition_type != "jinja2":
            return render_basic(ctx, prompt.text, context)
        template = prompt.jinja2_text if prompt.jinja2_text is not None else prompt.text
        # In a thread: a template may loop for a while, and other nodes must keep running.
        return await ctx.in_thread(lambda: render_jinja(template, variables))

    async def _messages(
        self, ctx: NodeContext, context: str, variables: dict[str, Any]
    ) -> list[ChatMessage]:
        """Chat: the template's messages, then the history, then the user's query (with
        memory). Completion: one user message, the history at `{{#histories#}}` or first."""
        data = self.data
        past = await history(ctx, data.memory)
        messages: list[ChatMessage] = []
        if isinstance(data.prompt_template, CompletionPrompt):
            text = await self._render(ctx, data.prompt_template, context, variables)
            past_text = history_text(past, data.memory.role_prefix if data.memory else None)
            if HISTORIES in text:
                text = text.replace(HISTORIES, past_text)
            elif past_text:
                text = f"{past_text}\n{text}"
            if text.strip():
                messages.append(ChatMessage("user", text))
        else:
            for prompt in data.prompt_template:
                text = await self._render(ctx, prompt, context, variables)
                if text.strip():
                    messages.append(ChatMessage(prompt.role, text))
            messages += past
            if data.memory is not None and (query := memory_query(ctx, data.memory)):
                messages.append(ChatMessage("user", query))
        if not messages:
            raise NodeFailed(
                "The prompt is empty: write at least one message.", error_type="NoPromptFound"
            )
        return messages

    # --- The answer ----------------------------------------------------------------------

    async def _answer(
        self, ctx: NodeContext, model: NodeModel, messages: list[ChatMessage]
    ) -> tuple[str, str]:
        """Stream the answer as `text`: with reasoning separated, what is streamed is the
        text without its thoughts, as the `text` output will be."""
        if self.data.reasoning_format != "separated":
            reply = await model.ask(messages, on_text=lambda piece: ctx.stream("text", piece))
            return reply.text, ""
        thinking = ThinkFilter()
        await model.ask(messages, on_text=lambda piece: ctx.stream("text", thinking.feed(piece)))
        ctx.stream("text", thinking.flush())
        return thinking.text, thinking.reasoning

    def _schema(self) -> dict[str, Any] | None:
        data = self.data
        if not data.structured_output_enabled:
            return None
        schema = data.structured_output.json_schema if data.structured_output else None
        if not isinstance(schema, dict) or not schema:
            raise NodeFailed(
                "Structured output is on but the node has no JSON schema.",
                error_type="InvalidStructuredOutput",
            )
        try:
            validator_for(schema).check_schema(schema)
        except SchemaError as exc:
            raise NodeFailed(
                f"The structured output schema is not a valid JSON schema: {exc.message}",
                error_type="InvalidStructuredOutput",
            ) from None
        return schema

    async def _structured(
        self, model: NodeModel, messages: list[ChatMessage], schema: dict[str, Any]
    ) -> tuple[dict[str, Any], list[ChatMessage], str]:
        """The answer as JSON that follows the schema, asking once more (with the error) when
        it does not; not streamed, since a repaired answer would replace what went out.
        Returns the outputs, the messages last sent, and the error that was repaired."""
        if model.supports_json_schema:
            answer_format = ResponseFormat(
                "json_schema", schema=schema, name="structured_output", strict=False
            )
        else:
            answer_format = ResponseFormat("json_object")
            instructions = SCHEMA_INSTRUCTIONS.format(schema=json.dumps(schema, ensure_ascii=False))
            messages = with_instructions(messages, instructions)
        validator = validator_for(schema)(schema)
        reply = await model.ask(messages, response_format=answer_format)
        clean, reasoning = split_thinking(reply.text)
        value, error = _check(clean, validator)
        repaired = ""
        if error:
            repaired = error
            messages = [
                *messages,
                ChatMessage("assistant", reply.text),
                ChatMessage("user", REPAIR_REQUEST.format(error=error)),
            ]
            reply = await model.ask(messages, response_format=answer_format)
            clean, reasoning = split_thinking(reply.text)
            value, error = _check(clean, validator)
            if error:
                raise NodeFailed(
                    "The model's answer does not follow the structured output schema, even "
                    f"after one repair attempt: {error}.",
                    error_type="StructuredOutputInvalid",
                )
        separated = self.data.reasoning_format == "separated"
        outputs = {
            "text": clean if separated else reply.text,
            "reasoning_content": reasoning if separated else "",
            "structured_output": value,
        }
        return outputs, messages, repaired
