"""The question-classifier node: the model puts the query in one of the node's classes, and the
run goes on along that class's branch.

How the answer is read, most exact first: JSON naming a class by `category_id`, then by
`category_name` (or Dify's older `categories` list); then an answer that is just a class's
name or id; then the class whose name the answer mentions first. When none of these names a
class, the first class is taken, and process_data says so (`matched_by: "fallback"`), so a
run never stops on a chatty model, and the log shows when it guessed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from providers.runtime.types import ChatMessage, ResponseFormat

from ..dsl import QuestionClassifierData
from ..dsl.nodes_model import ClassifierClass
from ..dsl.selectors import to_text
from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register
from .calls import NodeModel
from .prompts import history, history_text, parse_json

SYSTEM_PROMPT = """You are a text classifier. Put the input text in exactly one of the \
categories, following the classification instructions if there are any.
Answer with one JSON object and nothing else: \
{"category_id": "<id of the category>", "category_name": "<its name>"}."""
HISTORY_PROMPT = """
The conversation so far, between <histories></histories> tags:
<histories>
{histories}
</histories>"""


def _name(item: ClassifierClass) -> str:
    return item.name or item.label or item.id


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str | int) and str(a).strip().casefold() == b.strip().casefold()


def _from_json(value: Any, classes: Sequence[ClassifierClass]) -> tuple[ClassifierClass, str]:
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, dict):
        raise LookupError
    for key in ("category_id", "class_id", "id"):
        if key in value:
            for item in classes:
                if _same(value[key], item.id):
                    return item, "json id"
    names = [value.get(key) for key in ("category_name", "class_name", "category", "name")]
    listed = value.get("categories")
    if isinstance(listed, list) and listed:
        names.append(listed[0])
    for name in names:
        for item in classes:
            if _same(name, _name(item)):
                return item, "json name"
    raise LookupError


def pick_class(answer: str, classes: Sequence[ClassifierClass]) -> tuple[ClassifierClass, str]:
    """The class the answer names, and how it was found (see the module's docstring)."""
    try:
        return _from_json(parse_json(answer), classes)
    except (ValueError, LookupError):
        pass
    bare = answer.strip().strip("\"'`*.").strip()
    for item in classes:
        if _same(bare, _name(item)) or _same(bare, item.id):
            return item, "text"
    lowered = answer.casefold()
    mentioned = [
        (position, item)
        for item in classes
        if (position := lowered.find(_name(item).casefold())) >= 0
    ]
    if mentioned:
        return min(mentioned, key=lambda found: found[0])[1], "mention"
    return classes[0], "fallback"


@register
class QuestionClassifierExecutor(NodeExecutor):
    """Asks the model for the query's class; leaves by that class's id. Outputs `class_name`,
    `class_id` and `usage`."""

    types = ("question-classifier",)
    data: QuestionClassifierData

    async def run(self, ctx: NodeContext) -> NodeResult:
        data = self.data
        if not data.classes:
            raise NodeFailed("The classifier has no classes.", error_type="NoClasses")
        query = to_text(ctx.get(data.query_variable_selector))
        model = await NodeModel.open(ctx, data.model)
        messages = await self._messages(ctx, query)
        answer_format = None
        if model.supports_json_schema:
            answer_format = ResponseFormat(
                "json_schema", schema=self._answer_schema(), name="classification", strict=False
            )
        reply = await model.ask(messages, response_format=answer_format)
        chosen, matched_by = pick_class(reply.text, data.classes)
        process_data = model.process_data(messages) | {
            "llm_text": reply.text,
            "matched_by": matched_by,
        }
        if matched_by == "fallback":
            process_data["note"] = "The answer named no class: the first class was taken."
        return model.result(
            {"class_name": _name(chosen), "class_id": chosen.id, "usage": model.usage()},
            inputs={"query": query},
            process_data=process_data,
            handle=chosen.id,
        )

    def _answer_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "category_id": {"type": "string", "enum": [c.id for c in self.data.classes]},
                "category_name": {"type": "string"},
            },
            "required": ["category_id", "category_name"],
        }

    async def _messages(self, ctx: NodeContext, query: str) -> list[ChatMessage]:
        data = self.data
        system = SYSTEM_PROMPT
        past = await history(ctx, data.memory)
        if past:
            prefix = data.memory.role_prefix if data.memory else None
            system += HISTORY_PROMPT.format(histories=history_text(past, prefix))
        request = {
            "input_text": query,
            "categories": [{"category_id": c.id, "category_name": _name(c)} for c in data.classes],
            "classification_instructions": ctx.render(data.instruction or ""),
        }
        return [
            ChatMessage("system", system),
            ChatMessage("user", json.dumps(request, ensure_ascii=False)),
        ]
