"""Human input: the run pauses at the node and asks a person to fill in a form.

The executor raises `PauseRequested` with the form; the engine records it on the paused run
(and in the `workflow_paused` event) for the API and the admin to show:

    {
      "node_id": "review",
      "node_title": "Review",
      "form_content": "Markdown with references filled in; {{#$outputs.reason#}} marks
                       where the input named `reason` goes",
      "inputs": [
        {"type": "text_input" | "paragraph", "output_variable_name": "reason",
         "default": "initial text: the placeholder constant, or its variable's value"}
      ],
      "actions": [{"id": "approve", "title": "Approve", "button_style": "primary"}],
      "timeout": 36, "timeout_unit": "hour",
      "expires_at": 1767225600          # Unix time; no answer by then is a node failure
    }

When the person submits, `submission()` turns their values and chosen action into the node's
outputs (each input by its name, plus `action_id`) and the handle to leave by (the action's
id, or None for `source` when the form has no actions); pass both to `WorkflowRun.resumed`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..dsl import HumanInputData
from ..dsl.selectors import to_text
from ..engine.executor import (
    NodeContext,
    NodeExecutor,
    NodeFailed,
    NodeResult,
    PauseRequested,
    register,
)


def build_form(ctx: NodeContext, data: HumanInputData) -> dict[str, Any]:
    """The form as the person sees it, filled in from the run's values."""
    inputs = []
    for form_input in data.inputs:
        placeholder = form_input.placeholder
        default = ""
        if placeholder is not None:
            default = (
                to_text(ctx.get(placeholder.selector))
                if placeholder.type == "variable"
                else placeholder.value
            )
        inputs.append(
            {
                "type": form_input.type,
                "output_variable_name": form_input.output_variable_name,
                "default": default,
            }
        )
    return {
        "node_id": ctx.node.id,
        "node_title": ctx.node.title,
        "form_content": ctx.render(data.form_content),
        "inputs": inputs,
        "actions": [
            {"id": action.id, "title": action.title, "button_style": action.button_style}
            for action in data.user_actions
        ],
        "timeout": data.timeout,
        "timeout_unit": data.timeout_unit,
        "expires_at": int(time.time()) + data.timeout_seconds(),
    }


def submission(
    data: HumanInputData, values: Mapping[str, Any], action_id: str | None
) -> tuple[dict[str, Any], str | None]:
    """The node's outputs and the handle to resume by, from what the person submitted.
    Raises ValueError for an action the form does not have or a value that is not text."""
    actions = {action.id for action in data.user_actions}
    if actions and action_id not in actions:
        raise ValueError(f"Choose one of the form's actions: {', '.join(sorted(actions))}.")
    if not actions and action_id:
        raise ValueError("This form has no actions to choose.")
    outputs: dict[str, Any] = {}
    for form_input in data.inputs:
        name = form_input.output_variable_name
        value = values.get(name, "")
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected text.")
        outputs[name] = value
    outputs["action_id"] = action_id or ""
    return outputs, action_id or None


@register
class HumanInputExecutor(NodeExecutor):
    """Pauses the run with the form; the engine resumes it with the person's answer."""

    types = ("human-input",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        if self.node.id in ctx.run.services.get("expired_forms", ()):
            raise NodeFailed("Nobody answered the form in time.", error_type="timeout")
        raise PauseRequested(build_form(ctx, self.data))
