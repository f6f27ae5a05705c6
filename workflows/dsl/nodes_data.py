"""Data of the nodes that move and shape values: start, end, answer, code, templates,
aggregation, assignment, list and document operations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field

from .base import DslModel, NodeData, Number, VariableRef, variable_refs
from .selectors import SelectorRef, ref, refs_in_template, refs_in_value

StartVariableType = Literal[
    "text-input",
    "paragraph",
    "select",
    "number",
    "file",
    "file-list",
    "checkbox",
    "json_object",
]


class StartVariable(DslModel):
    """An input the caller of the workflow gives."""

    variable: str
    label: str = ""
    type: StartVariableType = "text-input"
    required: bool = False
    max_length: int | None = None
    options: list[str] = Field(default_factory=list)
    default: Any = None
    placeholder: str | None = None
    hint: str | None = None
    hide: bool | None = None
    allowed_file_types: list[str] | None = None
    allowed_file_extensions: list[str] | None = None
    allowed_file_upload_methods: list[str] | None = None


class StartData(NodeData):
    """The entry point; its variables are the run's inputs."""

    TYPES: ClassVar[tuple[str, ...]] = ("start",)
    type: Literal["start"] = "start"
    variables: list[StartVariable] = Field(default_factory=list)


class EndData(NodeData):
    """A workflow's result: named outputs taken from selectors."""

    TYPES: ClassVar[tuple[str, ...]] = ("end",)
    type: Literal["end"] = "end"
    outputs: list[VariableRef] = Field(default_factory=list)

    def references(self) -> Iterator[SelectorRef]:
        """The selectors of the outputs."""
        return variable_refs("outputs", self.outputs)


class AnswerData(NodeData):
    """A chatflow's reply, a template streamed as its references resolve."""

    TYPES: ClassVar[tuple[str, ...]] = ("answer",)
    type: Literal["answer"] = "answer"
    answer: str = ""
    variables: list[VariableRef] = Field(default_factory=list)

    def references(self) -> Iterator[SelectorRef]:
        """The references in the answer template (and the legacy variables list)."""
        yield from refs_in_template("answer", self.answer)
        yield from variable_refs("variables", self.variables)


class TemplateTransformData(NodeData):
    """A Jinja2 template over named inputs (run sandboxed by the engine)."""

    TYPES: ClassVar[tuple[str, ...]] = ("template-transform",)
    type: Literal["template-transform"] = "template-transform"
    template: str = ""
    variables: list[VariableRef] = Field(default_factory=list)

    def references(self) -> Iterator[SelectorRef]:
        """Jinja2 names its inputs through `variables`, not `{{#…#}}`."""
        return variable_refs("variables", self.variables)


CodeOutputType = Literal[
    "string",
    "number",
    "boolean",
    "object",
    "array[string]",
    "array[number]",
    "array[boolean]",
    "array[object]",
]


class CodeOutput(DslModel):
    """The declared type of one output of a code node (objects may declare children)."""

    type: CodeOutputType
    children: dict[str, CodeOutput] | None = None


class CodeDependency(DslModel):
    """A package the code asks for (kept; Weft's sandbox has a fixed set)."""

    name: str
    version: str = ""


class CodeData(NodeData):
    """User code (`main(**inputs) -> dict`) run in the sandbox."""

    TYPES: ClassVar[tuple[str, ...]] = ("code",)
    type: Literal["code"] = "code"
    code_language: Literal["python3", "javascript"] = "python3"
    code: str = ""
    variables: list[VariableRef] = Field(default_factory=list)
    outputs: dict[str, CodeOutput] = Field(default_factory=dict)
    dependencies: list[CodeDependency] | None = None

    def references(self) -> Iterator[SelectorRef]:
        """The selectors of the inputs."""
        return variable_refs("variables", self.variables)


class DocumentExtractorData(NodeData):
    """Text out of a file (or each file of a list)."""

    TYPES: ClassVar[tuple[str, ...]] = ("document-extractor",)
    type: Literal["document-extractor"] = "document-extractor"
    variable_selector: list[str] = Field(default_factory=list)
    is_array_file: bool = False

    def references(self) -> Iterator[SelectorRef]:
        """The file variable."""
        return ref("variable_selector", self.variable_selector)


class AggregatorGroup(DslModel):
    """One named output of an aggregator in group mode."""

    group_name: str
    output_type: str = "string"
    variables: list[list[str]] = Field(default_factory=list)
    groupId: str | None = None


class AggregatorSettings(DslModel):
    """Group mode: several outputs, each the first non-empty of its variables."""

    group_enabled: bool = False
    groups: list[AggregatorGroup] = Field(default_factory=list)


class VariableAggregatorData(NodeData):
    """The first of its variables that has a value (the branch that ran)."""

    TYPES: ClassVar[tuple[str, ...]] = ("variable-aggregator", "variable-assigner")
    type: Literal["variable-aggregator", "variable-assigner"] = "variable-aggregator"
    output_type: str = "string"
    variables: list[list[str]] = Field(default_factory=list)
    advanced_settings: AggregatorSettings | None = None

    def references(self) -> Iterator[SelectorRef]:
        """The variables (of every group when group mode is on)."""
        settings = self.advanced_settings
        if settings is not None and settings.group_enabled:
            for g, group in enumerate(settings.groups):
                for v, selector in enumerate(group.variables):
                    yield from ref(f"advanced_settings.groups[{g}].variables[{v}]", selector)
            return
        for index, selector in enumerate(self.variables):
            yield from ref(f"variables[{index}]", selector)


class AssignerV1Data(NodeData):
    """Dify's first assigner: one conversation variable over-written, appended or cleared."""

    TYPES: ClassVar[tuple[str, ...]] = ("assigner",)
    type: Literal["assigner"] = "assigner"
    version: Literal["1"] | None = None
    assigned_variable_selector: list[str]
    write_mode: Literal["over-write", "append", "clear"] = "over-write"
    input_variable_selector: list[str] = Field(default_factory=list)

    def references(self) -> Iterator[SelectorRef]:
        """The assigned variable and, unless clearing, its input."""
        yield from ref("assigned_variable_selector", self.assigned_variable_selector)
        if self.write_mode != "clear":
            yield from ref("input_variable_selector", self.input_variable_selector)


AssignOperation = Literal[
    "over-write",
    "clear",
    "append",
    "extend",
    "set",
    "+=",
    "-=",
    "*=",
    "/=",
    "remove-first",
    "remove-last",
]
# Operations that take no value.
VALUELESS_OPERATIONS = frozenset({"clear", "remove-first", "remove-last"})


class AssignItem(DslModel):
    """One operation on a variable; `value` is a selector when input_type is variable."""

    variable_selector: list[str] = Field(default_factory=list)
    input_type: Literal["variable", "constant"] = "variable"
    operation: AssignOperation = "over-write"
    value: Any = None
    write_mode: str | None = None


class AssignerData(NodeData):
    """Dify's assigner version 2: a list of operations on conversation (or loop) variables."""

    TYPES: ClassVar[tuple[str, ...]] = ("assigner",)
    type: Literal["assigner"] = "assigner"
    # Required, not defaulted: without it Dify (and this importer) read the node as version 1.
    version: Literal["2"]
    items: list[AssignItem] = Field(default_factory=list)

    def references(self) -> Iterator[SelectorRef]:
        """The assigned variables and the variables their values come from."""
        for index, item in enumerate(self.items):
            field = f"items[{index}]"
            yield from ref(f"{field}.variable_selector", item.variable_selector)
            if item.operation in VALUELESS_OPERATIONS:
                continue
            if item.input_type == "variable" and isinstance(item.value, list):
                yield from ref(f"{field}.value", item.value)
            elif item.input_type == "constant":
                yield from refs_in_value(f"{field}.value", item.value)


class ListFilterCondition(DslModel):
    """A condition on the items (or the items' `key` attribute, for files)."""

    key: str = ""
    comparison_operator: str = "contains"
    value: str | list[str] | bool | Number | None = ""


class ListFilter(DslModel):
    """Keep only the items that meet every condition."""

    enabled: bool = False
    conditions: list[ListFilterCondition] = Field(default_factory=list)


class ListOrder(DslModel):
    """Sort by the items (or the items' `key`)."""

    enabled: bool = False
    key: str = ""
    value: Literal["asc", "desc"] = "asc"


class ListLimit(DslModel):
    """Keep the first `size` items."""

    enabled: bool = False
    size: int = -1


class ListExtract(DslModel):
    """Take the item at `serial` (1-based, may be a template)."""

    enabled: bool = False
    serial: str = "1"


class ListOperatorData(NodeData):
    """Filter, sort, slice or pick from a list variable."""

    TYPES: ClassVar[tuple[str, ...]] = ("list-operator",)
    type: Literal["list-operator"] = "list-operator"
    variable: list[str] = Field(default_factory=list)
    var_type: str | None = None
    item_var_type: str | None = None
    filter_by: ListFilter = Field(default_factory=ListFilter)
    order_by: ListOrder = Field(default_factory=ListOrder)
    limit: ListLimit = Field(default_factory=ListLimit)
    extract_by: ListExtract = Field(default_factory=ListExtract)

    def references(self) -> Iterator[SelectorRef]:
        """The list variable and a templated extract position."""
        yield from ref("variable", self.variable)
        if self.extract_by.enabled:
            yield from refs_in_template("extract_by.serial", self.extract_by.serial)
