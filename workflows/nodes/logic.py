"""If-else: the first case whose conditions hold picks the branch."""

from __future__ import annotations

from typing import Any

from ..dsl import IfElseData
from ..dsl.nodes_flow import IF_ELSE_ELSE
from ..engine.executor import NodeContext, NodeExecutor, NodeFailed, NodeResult, register
from .conditions import ConditionError, evaluate


@register
class IfElseExecutor(NodeExecutor):
    """Evaluates the cases in order and leaves by the first holding one's case_id, or by
    `false` (else). Outputs `result` and `selected_case_id`; inputs show each evaluated
    condition's values, process_data each case's results, as Dify's node does."""

    types = ("if-else",)
    data: IfElseData

    async def run(self, ctx: NodeContext) -> NodeResult:
        legacy = self.data.cases is None
        conditions: list[dict[str, Any]] = []
        case_results: list[dict[str, Any]] = []
        selected: str | None = None
        for case in self.data.effective_cases():
            try:
                evaluation = evaluate(ctx.pool, case.conditions, case.logical_operator)
            except ConditionError as exc:
                raise NodeFailed(str(exc), error_type="ConditionError") from None
            conditions.extend(evaluation.conditions)
            case_results.append(
                {
                    "group": "default" if legacy else case.model_dump(mode="json"),
                    "results": evaluation.results,
                    "final_result": evaluation.result,
                }
            )
            if evaluation.result:
                selected = case.case_id
                break
        if selected is None and legacy:
            # Dify's 0.1.x node names its else branch as the selected case.
            selected = IF_ELSE_ELSE
        return NodeResult(
            inputs={"conditions": conditions},
            process_data={"condition_results": case_results},
            outputs={"result": selected not in (None, IF_ELSE_ELSE), "selected_case_id": selected},
            handle=selected or IF_ELSE_ELSE,
        )
