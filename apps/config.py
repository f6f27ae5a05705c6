"""An app's configuration in the shape of Dify's `model_config` (chat, agent-chat and
completion apps) and of a workflow's `features` (chatflow and workflow apps): parsed here at
the boundary, stored as JSON, read back by the pipeline, `/v1/parameters` and the DSL.

Unknown keys are kept, so that a Dify export survives an import and an export unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tenants.exceptions import InvalidInput

MAX_PROMPT_CHARS = 100_000
INPUT_TYPES = ("text-input", "paragraph", "select", "number", "file", "file-list", "checkbox")


class Part(BaseModel):
    """A block of Dify's config: extra keys kept as they came."""

    model_config = ConfigDict(extra="allow")


class Toggle(Part):
    enabled: bool = False


class ModelSettings(Part):
    """The model a chat, agent or completion app calls, by provider and name as Dify names
    them (the tenant's default chat model when blank or not set up)."""

    provider: str = ""
    name: str = ""
    mode: Literal["chat", "completion"] = "chat"
    completion_params: dict[str, Any] = Field(default_factory=dict)


class InputField(Part):
    """One variable of the input form (the inside of Dify's `{type: {...}}` item)."""

    variable: str
    label: str = ""
    required: bool = False
    default: Any = None
    max_length: int | None = None
    options: list[str] = Field(default_factory=list)

    @field_validator("variable")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or not value.replace("_", "a").isalnum() or value[0].isdigit():
            raise ValueError(f"“{value}” is not a variable name (letters, digits and _)")
        return value


class Moderation(Part):
    """Dify's `sensitive_word_avoidance` with its `keywords` type: a list of words (one per
    line) refused in the input and replaced in the output, each with its preset answer."""

    enabled: bool = False
    type: str = ""
    config: dict[str, Any] = Field(default_factory=dict)

    def keywords(self) -> list[str]:
        raw = self.config.get("keywords", "")
        words = raw.splitlines() if isinstance(raw, str) else list(raw or [])
        return [w.strip() for w in words if isinstance(w, str) and w.strip()]

    def side(self, which: Literal["inputs_config", "outputs_config"]) -> tuple[bool, str]:
        """Whether moderation applies to that side, and its preset response."""
        side = self.config.get(which) or {}
        if not self.enabled or self.type != "keywords" or not isinstance(side, dict):
            return False, ""
        return bool(side.get("enabled")), str(side.get("preset_response") or "")


class DatasetRef(Part):
    enabled: bool = True
    id: str


class DatasetItem(Part):
    dataset: DatasetRef


class DatasetList(Part):
    datasets: list[DatasetItem] = Field(default_factory=list)


class DatasetConfigs(Part):
    """Knowledge the app retrieves from, and how (Dify's `dataset_configs`)."""

    retrieval_model: Literal["single", "multiple"] = "multiple"
    top_k: int = Field(default=4, ge=1, le=50)
    score_threshold: float | None = None
    score_threshold_enabled: bool = False
    reranking_enable: bool = False
    reranking_mode: str = "weighted_score"
    reranking_model: dict[str, Any] | None = None
    weights: dict[str, Any] | None = None
    datasets: DatasetList = Field(default_factory=DatasetList)

    def dataset_ids(self) -> list[str]:
        return [item.dataset.id for item in self.datasets.datasets if item.dataset.enabled]


class AgentTool(Part):
    provider_type: str = "builtin"
    provider_id: str = ""
    tool_name: str
    tool_parameters: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class AgentMode(Part):
    enabled: bool = False
    strategy: Literal["function_call", "react", "router", "react_router"] = "function_call"
    max_iteration: int = Field(default=5, ge=1, le=99)
    tools: list[AgentTool] = Field(default_factory=list)


class Window(Part):
    enabled: bool = True
    size: int = Field(default=10, ge=1, le=200)


class Memory(Part):
    """How many past turns a chat app sends with the query (Weft's; Dify's simple chat apps
    fill the prompt with history up to the model's context)."""

    window: Window = Field(default_factory=Window)


class FileUpload(Part):
    """What files users may send (Dify's `file_upload`)."""

    enabled: bool = False
    allowed_file_types: list[str] = Field(default_factory=lambda: ["image", "document"])
    allowed_file_extensions: list[str] = Field(default_factory=list)
    allowed_file_upload_methods: list[str] = Field(
        default_factory=lambda: ["local_file", "remote_url"]
    )
    number_limits: int = Field(default=3, ge=0, le=50)


class Features(Part):
    """What every mode shares: the conversation opener, follow-up suggestions, moderation,
    file upload, and the toggles Dify's `/parameters` reports."""

    opening_statement: str = ""
    suggested_questions: list[str] = Field(default_factory=list)
    suggested_questions_after_answer: Toggle = Field(default_factory=Toggle)
    speech_to_text: Toggle = Field(default_factory=Toggle)
    text_to_speech: Toggle = Field(default_factory=Toggle)
    retriever_resource: Toggle = Field(default_factory=lambda: Toggle(enabled=True))
    more_like_this: Toggle = Field(default_factory=Toggle)
    annotation_reply: Toggle = Field(default_factory=Toggle)
    sensitive_word_avoidance: Moderation = Field(default_factory=Moderation)
    file_upload: FileUpload = Field(default_factory=FileUpload)


class AppConfig(Features):
    """The whole configuration of a chat, agent-chat or completion app (`model_config`)."""

    model: ModelSettings = Field(default_factory=ModelSettings)
    prompt_type: Literal["simple", "advanced"] = "simple"
    pre_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    chat_prompt_config: dict[str, Any] = Field(default_factory=dict)
    completion_prompt_config: dict[str, Any] = Field(default_factory=dict)
    user_input_form: list[dict[str, InputField]] = Field(default_factory=list)
    dataset_configs: DatasetConfigs = Field(default_factory=DatasetConfigs)
    dataset_query_variable: str = ""
    agent_mode: AgentMode = Field(default_factory=AgentMode)
    memory: Memory = Field(default_factory=Memory)

    @field_validator("user_input_form")
    @classmethod
    def _form(cls, items: list[dict[str, InputField]]) -> list[dict[str, InputField]]:
        seen: set[str] = set()
        for item in items:
            if len(item) != 1:
                raise ValueError("each item has one key, the field's type")
            ((kind, field),) = item.items()
            if kind not in INPUT_TYPES:
                raise ValueError(f"“{kind}” is not one of {', '.join(INPUT_TYPES)}")
            if field.variable in seen:
                raise ValueError(f"the variable “{field.variable}” appears twice")
            seen.add(field.variable)
            if kind == "select" and not field.options:
                raise ValueError(f"the select “{field.variable}” has no options")
        return items

    def input_fields(self) -> list[tuple[str, InputField]]:
        """(type, field) of each input, in form order."""
        return [next(iter(item.items())) for item in self.user_input_form]


def _errors(exc: ValidationError, where: str) -> str:
    lines = []
    for error in exc.errors()[:5]:
        path = ".".join(str(part) for part in error["loc"])
        lines.append(f"{where}.{path}: {error['msg']}" if path else f"{where}: {error['msg']}")
    return "; ".join(lines)


def parse_config(data: Any, *, where: str = "model_config") -> AppConfig:
    """The config, checked; InvalidInput naming the field otherwise."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: must be an object.")
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_errors(exc, where)) from None


def parse_features(data: Any, *, where: str = "features") -> Features:
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: must be an object.")
    try:
        return Features.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_errors(exc, where)) from None


def dump(config: Features) -> dict[str, Any]:
    """The JSON stored and exported."""
    return config.model_dump(mode="json", exclude_none=True)
