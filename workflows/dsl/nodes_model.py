"""Data of the nodes that call a model: llm, question-classifier, parameter-extractor and
knowledge-retrieval."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field

from .base import (
    SOURCE,
    DslModel,
    MemoryConfig,
    ModelConfig,
    ModelSlot,
    NodeData,
    Number,
    VariableRef,
    VisionConfig,
    variable_refs,
)
from .selectors import SelectorRef, ref, refs_in_template, refs_in_value


class PromptMessage(DslModel):
    """One message of a chat-mode prompt; jinja2 edition reads `jinja2_text` instead of `text`."""

    id: str | None = None
    role: Literal["system", "user", "assistant"] = "user"
    text: str = ""
    edition_type: Literal["basic", "jinja2"] | None = None
    jinja2_text: str | None = None


class CompletionPrompt(DslModel):
    """The single prompt of a completion-mode model."""

    text: str = ""
    edition_type: Literal["basic", "jinja2"] | None = None
    jinja2_text: str | None = None


class PromptConfig(DslModel):
    """The named inputs jinja2 prompts see."""

    jinja2_variables: list[VariableRef] | None = None


class ContextConfig(DslModel):
    """Retrieved context fed to the prompt's `{{#context#}}` placeholder."""

    enabled: bool = False
    variable_selector: list[str] | None = None


class StructuredOutput(DslModel):
    """The JSON schema the model's answer must follow."""

    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")


def _prompt_references(
    field: str, prompt: PromptMessage | CompletionPrompt, config: PromptConfig
) -> Iterator[SelectorRef]:
    if prompt.edition_type == "jinja2":
        yield from variable_refs("prompt_config.jinja2_variables", config.jinja2_variables)
    else:
        yield from refs_in_template(f"{field}.text", prompt.text)


class LLMData(NodeData):
    """A model call with a prompt, optional context, memory, vision and structured output."""

    TYPES: ClassVar[tuple[str, ...]] = ("llm",)
    type: Literal["llm"] = "llm"
    model: ModelConfig
    prompt_template: list[PromptMessage] | CompletionPrompt = Field(default_factory=list)
    prompt_config: PromptConfig | None = None
    context: ContextConfig = Field(default_factory=ContextConfig)
    memory: MemoryConfig | None = None
    vision: VisionConfig = Field(default_factory=VisionConfig)
    structured_output: StructuredOutput | None = None
    structured_output_enabled: bool | None = None
    reasoning_format: Literal["tagged", "separated"] | None = None
    variables: list[VariableRef] = Field(default_factory=list)

    def references(self) -> Iterator[SelectorRef]:
        """Prompt references (or jinja2 inputs), context, memory query, images."""
        config = self.prompt_config or PromptConfig()
        if isinstance(self.prompt_template, CompletionPrompt):
            yield from _prompt_references("prompt_template", self.prompt_template, config)
        else:
            for index, message in enumerate(self.prompt_template):
                yield from _prompt_references(f"prompt_template[{index}]", message, config)
        if self.context.enabled:
            yield from ref("context.variable_selector", self.context.variable_selector)
        if self.memory is not None:
            yield from self.memory.references("memory")
        yield from self.vision.references("vision")
        yield from variable_refs("variables", self.variables)

    def model_slots(self) -> list[ModelSlot]:
        """The chat model."""
        return [ModelSlot("model")]


class ClassifierClass(DslModel):
    """A class; its id is the source handle of the branch taken for it."""

    id: str
    name: str = ""
    label: str | None = None


class QuestionClassifierData(NodeData):
    """Route by which class a model puts the query in."""

    TYPES: ClassVar[tuple[str, ...]] = ("question-classifier",)
    type: Literal["question-classifier"] = "question-classifier"
    query_variable_selector: list[str] = Field(default_factory=list)
    model: ModelConfig
    classes: list[ClassifierClass] = Field(default_factory=list)
    instruction: str | None = None
    memory: MemoryConfig | None = None
    vision: VisionConfig = Field(default_factory=VisionConfig)

    def references(self) -> Iterator[SelectorRef]:
        """The query, references in the instruction, memory and images."""
        yield from ref("query_variable_selector", self.query_variable_selector)
        yield from refs_in_template("instruction", self.instruction)
        if self.memory is not None:
            yield from self.memory.references("memory")
        yield from self.vision.references("vision")

    def source_handles(self) -> frozenset[str] | None:
        """One branch per class id."""
        handles = super().source_handles() or frozenset()
        return (handles - {SOURCE}) | {item.id for item in self.classes}

    def model_slots(self) -> list[ModelSlot]:
        """The chat model."""
        return [ModelSlot("model")]


ParameterType = Literal[
    "string",
    "number",
    "bool",
    "boolean",
    "select",
    "array[string]",
    "array[number]",
    "array[object]",
    "array[boolean]",
]


class ExtractedParameter(DslModel):
    """One parameter the model extracts (`select` and `bool` are Dify's older names)."""

    name: str
    type: ParameterType = "string"
    description: str = ""
    required: bool = False
    options: list[str] | None = None


class ParameterExtractorData(NodeData):
    """Structured parameters pulled out of text by a model."""

    TYPES: ClassVar[tuple[str, ...]] = ("parameter-extractor",)
    type: Literal["parameter-extractor"] = "parameter-extractor"
    model: ModelConfig
    query: list[str] = Field(default_factory=list)
    parameters: list[ExtractedParameter] = Field(default_factory=list)
    instruction: str | None = None
    memory: MemoryConfig | None = None
    reasoning_mode: Literal["function_call", "prompt"] | None = None
    vision: VisionConfig = Field(default_factory=VisionConfig)
    variables: list[VariableRef] = Field(default_factory=list)

    def references(self) -> Iterator[SelectorRef]:
        """The query, references in the instruction, memory and images."""
        yield from ref("query", self.query)
        yield from refs_in_template("instruction", self.instruction)
        if self.memory is not None:
            yield from self.memory.references("memory")
        yield from self.vision.references("vision")
        yield from variable_refs("variables", self.variables)

    def model_slots(self) -> list[ModelSlot]:
        """The chat model."""
        return [ModelSlot("model")]


class RerankingModel(DslModel):
    """A rerank model (Dify names it provider + model)."""

    provider: str = ""
    model: str = ""


class VectorSetting(DslModel):
    """Weight of semantic search and the embedding model it uses."""

    vector_weight: Number = 0
    embedding_provider_name: str = ""
    embedding_model_name: str = ""


class KeywordSetting(DslModel):
    """Weight of keyword search."""

    keyword_weight: Number = 0


class RetrievalWeights(DslModel):
    """Weighted-score fusion of semantic and keyword results."""

    vector_setting: VectorSetting = Field(default_factory=VectorSetting)
    keyword_setting: KeywordSetting = Field(default_factory=KeywordSetting)


class MultipleRetrievalConfig(DslModel):
    """Retrieval over every dataset, fused and optionally reranked."""

    top_k: int = 4
    score_threshold: Number | None = None
    reranking_mode: str = "reranking_model"
    reranking_enable: bool = True
    reranking_model: RerankingModel | None = None
    weights: RetrievalWeights | None = None


class SingleRetrievalConfig(DslModel):
    """Retrieval from the one dataset a model picks (Dify's older mode)."""

    model: ModelConfig


class MetadataCondition(DslModel):
    """A condition on a document metadata field; a text value may hold references."""

    name: str
    comparison_operator: str
    value: str | list[str] | Number | None = None


class MetadataFilter(DslModel):
    """Manual metadata filtering."""

    logical_operator: Literal["and", "or"] | None = "and"
    conditions: list[MetadataCondition] | None = None


class KnowledgeRetrievalData(NodeData):
    """Chunks from the tenant's datasets for a query; output `result`."""

    TYPES: ClassVar[tuple[str, ...]] = ("knowledge-retrieval",)
    type: Literal["knowledge-retrieval"] = "knowledge-retrieval"
    query_variable_selector: list[str] = Field(default_factory=list)
    dataset_ids: list[str] = Field(default_factory=list)
    retrieval_mode: Literal["single", "multiple"] = "multiple"
    multiple_retrieval_config: MultipleRetrievalConfig | None = None
    single_retrieval_config: SingleRetrievalConfig | None = None
    metadata_filtering_mode: Literal["disabled", "automatic", "manual"] | None = None
    metadata_model_config: ModelConfig | None = None
    metadata_filtering_conditions: MetadataFilter | None = None
    vision: VisionConfig = Field(default_factory=VisionConfig)

    def references(self) -> Iterator[SelectorRef]:
        """The query and references in manual metadata conditions."""
        yield from ref("query_variable_selector", self.query_variable_selector)
        if self.metadata_filtering_mode == "manual" and self.metadata_filtering_conditions:
            for index, condition in enumerate(self.metadata_filtering_conditions.conditions or []):
                field = f"metadata_filtering_conditions.conditions[{index}].value"
                yield from refs_in_value(field, condition.value)

    def model_slots(self) -> list[ModelSlot]:
        """The routing model, rerank model, embedding model and metadata model it names."""
        slots = []
        if self.single_retrieval_config is not None:
            slots.append(ModelSlot("single_retrieval_config.model"))
        multiple = self.multiple_retrieval_config
        if multiple is not None and multiple.reranking_model is not None:
            slots.append(
                ModelSlot("multiple_retrieval_config.reranking_model", "rerank", name_key="model")
            )
        if multiple is not None and multiple.weights is not None:
            slots.append(
                ModelSlot(
                    "multiple_retrieval_config.weights.vector_setting",
                    "text-embedding",
                    provider_key="embedding_provider_name",
                    name_key="embedding_model_name",
                )
            )
        if self.metadata_model_config is not None:
            slots.append(ModelSlot("metadata_model_config"))
        return slots
