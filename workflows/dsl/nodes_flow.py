"""Data of the nodes that steer the run: if-else, iteration and loop containers, and
human-input.

Human input (Weft's design, shaped like Dify's node of the same name so that its exports
round-trip): the run pauses and shows a person `form_content` (Markdown; `{{#node.var#}}`
references are filled in, `{{#$outputs.name#}}` marks where each input goes) with the form
`inputs` and one button per `user_actions` entry. Submitting resumes the run; the node's
outputs are the inputs by `output_variable_name` plus `action_id`, and the run follows the
edge whose source handle is the chosen action's id (`source` when the form has no actions).
Nobody answering within `timeout` times `timeout_unit` is a node failure with error type
`timeout`, so the node's error strategy decides what happens then: fail the run, give the
default values, or follow the fail branch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field

from .base import SOURCE, Condition, DslModel, NodeData, Number
from .selectors import SelectorRef, ref, refs_in_template

IF_ELSE_ELSE = "false"
# The case id of the single case of Dify 0.1.x if-else nodes (`conditions` at the top).
IF_ELSE_LEGACY_CASE = "true"


class IfElseCase(DslModel):
    """A case: its conditions joined by and/or; its case_id is its branch's source handle."""

    case_id: str
    id: str | None = None
    logical_operator: Literal["and", "or"] = "and"
    conditions: list[Condition] = Field(default_factory=list)


class IfElseData(NodeData):
    """The first case that holds picks the branch; none holding takes `false` (else)."""

    TYPES: ClassVar[tuple[str, ...]] = ("if-else",)
    type: Literal["if-else"] = "if-else"
    cases: list[IfElseCase] | None = None
    # Dify 0.1.x: one case given by these two; Dify still writes them next to `cases`.
    logical_operator: Literal["and", "or"] | None = None
    conditions: list[Condition] | None = None

    def effective_cases(self) -> list[IfElseCase]:
        """The cases the engine evaluates: `cases`, or the legacy single case as case `true`."""
        if self.cases is not None:
            return self.cases
        return [
            IfElseCase(
                case_id=IF_ELSE_LEGACY_CASE,
                logical_operator=self.logical_operator or "and",
                conditions=self.conditions or [],
            )
        ]

    def references(self) -> Iterator[SelectorRef]:
        """Compared variables and references in compared values."""
        if self.cases is None:
            for index, condition in enumerate(self.conditions or []):
                yield from condition.references(f"conditions[{index}]")
            return
        for c, case in enumerate(self.cases):
            for index, condition in enumerate(case.conditions):
                yield from condition.references(f"cases[{c}].conditions[{index}]")

    def source_handles(self) -> frozenset[str] | None:
        """One branch per case id, plus the else branch."""
        return frozenset({case.case_id for case in self.effective_cases()} | {IF_ELSE_ELSE})


class IterationData(NodeData):
    """Run the child nodes (parentId = this node) once per item of a list."""

    TYPES: ClassVar[tuple[str, ...]] = ("iteration",)
    # Variables a child reads from its iteration: [iteration_id, "item" | "index"].
    CHILD_VARIABLES: ClassVar[frozenset[str]] = frozenset({"item", "index"})
    type: Literal["iteration"] = "iteration"
    iterator_selector: list[str] = Field(default_factory=list)
    output_selector: list[str] = Field(default_factory=list)
    output_type: str | None = None
    is_parallel: bool = False
    parallel_nums: int = Field(default=10, ge=1)
    error_handle_mode: Literal["terminated", "continue-on-error", "remove-abnormal-output"] = (
        "terminated"
    )
    flatten_output: bool = True
    start_node_id: str | None = None
    startNodeType: str | None = None
    parent_loop_id: str | None = None
    width: Number | None = None
    height: Number | None = None

    def references(self) -> Iterator[SelectorRef]:
        """The list (read outside) and the output taken from a child (read inside)."""
        yield from ref("iterator_selector", self.iterator_selector)
        yield from ref("output_selector", self.output_selector, inner=True)


class IterationStartData(NodeData):
    """The entry of an iteration's body (Dify 0.1.2 and later)."""

    TYPES: ClassVar[tuple[str, ...]] = ("iteration-start",)
    type: Literal["iteration-start"] = "iteration-start"


class LoopVariable(DslModel):
    """A variable of the loop, set before the first round and changed by assigners inside."""

    id: str | None = None
    label: str
    var_type: str = "string"
    value_type: Literal["variable", "constant"] = "constant"
    value: Any = None


class LoopData(NodeData):
    """Run the child nodes again until a break condition holds or loop_count rounds ran."""

    TYPES: ClassVar[tuple[str, ...]] = ("loop",)
    type: Literal["loop"] = "loop"
    loop_count: int = Field(default=10, ge=1)
    break_conditions: list[Condition] = Field(default_factory=list)
    logical_operator: Literal["and", "or"] = "and"
    loop_variables: list[LoopVariable] | None = None
    outputs: dict[str, Any] | None = None
    start_node_id: str | None = None
    startNodeType: str | None = None
    width: Number | None = None
    height: Number | None = None

    def child_variables(self) -> frozenset[str]:
        """Variables a child reads from its loop: [loop_id, label]."""
        return frozenset(variable.label for variable in self.loop_variables or [])

    def references(self) -> Iterator[SelectorRef]:
        """Initial values from variables (outside) and break conditions (inside)."""
        for index, variable in enumerate(self.loop_variables or []):
            if variable.value_type == "variable" and isinstance(variable.value, list):
                yield from ref(f"loop_variables[{index}].value", variable.value)
        for index, condition in enumerate(self.break_conditions):
            yield from condition.references(f"break_conditions[{index}]", inner=True)


class LoopStartData(NodeData):
    """The entry of a loop's body."""

    TYPES: ClassVar[tuple[str, ...]] = ("loop-start",)
    type: Literal["loop-start"] = "loop-start"


class LoopEndData(NodeData):
    """Reaching it ends the loop after the current round."""

    TYPES: ClassVar[tuple[str, ...]] = ("loop-end",)
    type: Literal["loop-end"] = "loop-end"

    def source_handles(self) -> frozenset[str] | None:
        """Nothing follows a loop end."""
        return frozenset()


class FormPlaceholder(DslModel):
    """The initial value of a form input: a constant, or a variable's value."""

    type: Literal["variable", "constant"] = "constant"
    selector: list[str] = Field(default_factory=list)
    value: str = ""


class FormInput(DslModel):
    """A field the person fills in; its value becomes output `output_variable_name`."""

    type: Literal["text_input", "paragraph"] = "text_input"
    output_variable_name: str
    placeholder: FormPlaceholder | None = None


class UserAction(DslModel):
    """A button of the form; its id is the source handle of the branch it takes."""

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    title: str = ""
    button_style: Literal["primary", "default", "accent", "ghost"] = "default"


class HumanInputData(NodeData):
    """Pause for a person to answer a form (see the module docstring)."""

    TYPES: ClassVar[tuple[str, ...]] = ("human-input",)
    type: Literal["human-input"] = "human-input"
    form_content: str = ""
    inputs: list[FormInput] = Field(default_factory=list)
    user_actions: list[UserAction] = Field(default_factory=list)
    timeout: int = Field(default=36, ge=1)
    timeout_unit: Literal["hour", "day"] = "hour"
    # Dify's e-mail delivery; kept for round trips, Weft shows forms in its own portal.
    delivery_methods: list[dict[str, Any]] = Field(default_factory=list)

    def timeout_seconds(self) -> int:
        """How long the form waits for an answer."""
        return self.timeout * (86400 if self.timeout_unit == "day" else 3600)

    def references(self) -> Iterator[SelectorRef]:
        """References in the form text and variable placeholders."""
        yield from refs_in_template("form_content", self.form_content)
        for index, form_input in enumerate(self.inputs):
            placeholder = form_input.placeholder
            if placeholder is not None and placeholder.type == "variable":
                yield from ref(f"inputs[{index}].placeholder.selector", placeholder.selector)

    def source_handles(self) -> frozenset[str] | None:
        """One branch per action; a form without actions continues on `source`."""
        handles = super().source_handles() or frozenset()
        if not self.user_actions:
            return handles
        return (handles - {SOURCE}) | {action.id for action in self.user_actions}
