"""The model base of the DSL and the fields every node's data carries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .selectors import SelectorRef, ref, refs_in_template

# Dify's UI limits, kept as model constraints so the JSON schema carries them too.
MAX_RETRIES = 10
MAX_RETRY_INTERVAL_MS = 5000
# Dify's WORKFLOW_MAX_EXECUTION_TIME; no node may be given longer than a whole run.
MAX_NODE_TIMEOUT_S = 1200

Number = int | float  # never plain float: pydantic would turn an exported `1` into `1.0`
ErrorStrategy = Literal["none", "default-value", "fail-branch"]
ValueType = Literal[
    "string",
    "number",
    "integer",
    "boolean",
    "object",
    "file",
    "array[string]",
    "array[number]",
    "array[boolean]",
    "array[object]",
    "array[file]",
    "array[any]",
]
ComparisonOperator = Literal[
    "contains",
    "not contains",
    "start with",
    "end with",
    "is",
    "is not",
    "empty",
    "not empty",
    "in",
    "not in",
    "all of",
    "=",
    "≠",
    ">",
    "<",
    "≥",
    "≤",
    "null",
    "not null",
    "exists",
    "not exists",
]

SOURCE = "source"
SUCCESS_BRANCH = "success-branch"
FAIL_BRANCH = "fail-branch"


@dataclass(frozen=True)
class ModelSlot:
    """A place in a node's data that names a model: a dotted attribute path and its two keys."""

    path: str
    kind: Literal["llm", "rerank", "text-embedding"] = "llm"
    provider_key: str = "provider"
    name_key: str = "name"


class DslModel(BaseModel):
    """Base of every DSL model: fields it does not declare are kept, so export loses nothing."""

    model_config = ConfigDict(
        extra="allow",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class VariableRef(DslModel):
    """A named input taken from a selector (code, template-transform, end outputs …)."""

    variable: str
    value_selector: list[str] = Field(default_factory=list)
    value_type: str | None = None


class RetryConfig(DslModel):
    """Retries of a failed node run: at most 10, at most 5000 ms apart."""

    retry_enabled: bool = False
    max_retries: int = Field(default=0, ge=0, le=MAX_RETRIES)
    retry_interval: int = Field(default=0, ge=0, le=MAX_RETRY_INTERVAL_MS)


class DefaultValue(DslModel):
    """One output a node gives when it fails under the default-value strategy."""

    key: str
    type: ValueType
    value: Any = None


class ModelConfig(DslModel):
    """The chat model a node calls: provider, model name, mode and completion parameters."""

    provider: str
    name: str
    mode: str = "chat"
    completion_params: dict[str, Any] = Field(default_factory=dict)


class VisionConfigOptions(DslModel):
    """Where a vision-enabled node takes its images from, and at which detail."""

    variable_selector: list[str] = Field(default_factory=lambda: ["sys", "files"])
    detail: str = "high"


class VisionConfig(DslModel):
    """Vision input of LLM-backed nodes."""

    enabled: bool = False
    configs: VisionConfigOptions | None = None

    def references(self, field: str) -> Iterator[SelectorRef]:
        """The image selector, read only when vision is on."""
        if self.enabled:
            options = self.configs or VisionConfigOptions()
            yield from ref(f"{field}.configs.variable_selector", options.variable_selector)


class RolePrefix(DslModel):
    """How completion-mode models label the turns of the conversation history."""

    user: str = ""
    assistant: str = ""


class MemoryWindow(DslModel):
    """How many past turns the memory keeps."""

    enabled: bool = False
    size: int | None = None


class MemoryConfig(DslModel):
    """Conversation memory of LLM-backed nodes (chatflows)."""

    role_prefix: RolePrefix | None = None
    window: MemoryWindow = Field(default_factory=MemoryWindow)
    query_prompt_template: str | None = None

    def references(self, field: str) -> Iterator[SelectorRef]:
        """References in the query prompt template."""
        yield from refs_in_template(f"{field}.query_prompt_template", self.query_prompt_template)


class SubCondition(DslModel):
    """A condition on one attribute of each file in a file list."""

    id: str | None = None
    key: str = ""
    comparison_operator: ComparisonOperator
    value: str | list[str] | bool | Number | None = None
    varType: str | None = None


class SubVariableCondition(DslModel):
    """Conditions on the attributes of a file-list variable."""

    case_id: str | None = None
    logical_operator: Literal["and", "or"] = "and"
    conditions: list[SubCondition] = Field(default_factory=list)


class Condition(DslModel):
    """One comparison of if-else cases and loop break conditions."""

    id: str | None = None
    varType: str | None = None
    numberVarType: str | None = None
    variable_selector: list[str] = Field(default_factory=list)
    comparison_operator: ComparisonOperator
    value: str | list[str] | bool | Number | None = None
    sub_variable_condition: SubVariableCondition | None = None

    def references(self, field: str, *, inner: bool = False) -> Iterator[SelectorRef]:
        """The compared variable and any reference in a text value."""
        yield from ref(f"{field}.variable_selector", self.variable_selector, inner=inner)
        if isinstance(self.value, str):
            for found in refs_in_template(f"{field}.value", self.value):
                yield SelectorRef(found.field, found.selector, inner)


class NodeData(DslModel):
    """What every node's data carries: title, error strategy, retries and the UI's markers."""

    # The `data.type` values this model reads (the aggregator also answers to its legacy name).
    TYPES: ClassVar[tuple[str, ...]] = ()

    type: str
    title: str = ""
    desc: str | None = None
    version: str | None = None
    error_strategy: ErrorStrategy | None = None
    default_value: list[DefaultValue] | None = None
    retry_config: RetryConfig = Field(default_factory=RetryConfig)
    # Weft only: a node run taking longer fails with a timeout (Dify has no per-node limit).
    node_timeout: Number | None = Field(default=None, gt=0, le=MAX_NODE_TIMEOUT_S)
    # Written by Dify's editor; the engine reads parentId on the node instead.
    selected: bool | None = None
    isInIteration: bool | None = None
    isIterationStart: bool | None = None
    iteration_id: str | None = None
    isInLoop: bool | None = None
    isLoopStart: bool | None = None
    loop_id: str | None = None

    def references(self) -> Iterator[SelectorRef]:
        """Every selector the node reads, from its selector fields and its templates."""
        return iter(())

    def source_handles(self) -> frozenset[str] | None:
        """The edge source handles this node may have; None when the node is opaque."""
        if self.error_strategy == FAIL_BRANCH:
            return frozenset({SOURCE, SUCCESS_BRANCH, FAIL_BRANCH})
        return frozenset({SOURCE})

    def model_slots(self) -> list[ModelSlot]:
        """Where in this node's data a model is named (chat, rerank or embedding)."""
        return []


def variable_refs(field: str, variables: list[VariableRef] | None) -> Iterator[SelectorRef]:
    """SelectorRefs for a list of named inputs."""
    for index, variable in enumerate(variables or []):
        yield from ref(f"{field}[{index}].value_selector", variable.value_selector)
