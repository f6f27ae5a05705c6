"""The typed graph (nodes, edges, viewport) and the workflow spec that carries it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag

from .base import DslModel, NodeData, Number
from .nodes_data import (
    AnswerData,
    AssignerData,
    AssignerV1Data,
    CodeData,
    DocumentExtractorData,
    EndData,
    ListOperatorData,
    StartData,
    TemplateTransformData,
    VariableAggregatorData,
)
from .nodes_flow import (
    HumanInputData,
    IfElseData,
    IterationData,
    IterationStartData,
    LoopData,
    LoopEndData,
    LoopStartData,
)
from .nodes_http import HttpRequestData
from .nodes_model import (
    KnowledgeRetrievalData,
    LLMData,
    ParameterExtractorData,
    QuestionClassifierData,
)
from .nodes_opaque import AgentData, NoteData, OpaqueData, ToolData

# Every typed data model by the tag the union below selects it with.
DATA_MODELS: dict[str, type[NodeData]] = {
    "start": StartData,
    "end": EndData,
    "answer": AnswerData,
    "llm": LLMData,
    "knowledge-retrieval": KnowledgeRetrievalData,
    "question-classifier": QuestionClassifierData,
    "if-else": IfElseData,
    "code": CodeData,
    "template-transform": TemplateTransformData,
    "variable-aggregator": VariableAggregatorData,
    "assigner": AssignerData,
    "assigner-v1": AssignerV1Data,
    "iteration": IterationData,
    "iteration-start": IterationStartData,
    "loop": LoopData,
    "loop-start": LoopStartData,
    "loop-end": LoopEndData,
    "parameter-extractor": ParameterExtractorData,
    "http-request": HttpRequestData,
    "list-operator": ListOperatorData,
    "document-extractor": DocumentExtractorData,
    "human-input": HumanInputData,
    "tool": ToolData,
    "agent": AgentData,
    "note": NoteData,
}
KNOWN_TYPES: frozenset[str] = frozenset(t for model in DATA_MODELS.values() for t in model.TYPES)
_TAG_BY_TYPE = {t: tag for tag, model in DATA_MODELS.items() for t in model.TYPES}
_TAG_BY_MODEL = {model: tag for tag, model in DATA_MODELS.items()}


def _exclude_known_types(schema: dict[str, Any]) -> None:
    # So that a node's data matches exactly one of the union's schemas.
    schema["properties"]["type"]["not"] = {"enum": sorted(KNOWN_TYPES)}


class UnknownData(OpaqueData):
    """A node type this DSL does not know; kept so export does not lose it, refused to run."""

    model_config = ConfigDict(json_schema_extra=_exclude_known_types)

    type: str


def _data_tag(value: Any) -> str | None:
    """Which data model a node's data is: by its type, by version for the assigner."""
    if isinstance(value, NodeData):
        return _TAG_BY_MODEL.get(type(value), "unknown")
    if not isinstance(value, dict):
        return None
    node_type = value.get("type")
    if not isinstance(node_type, str):
        return None
    if node_type == "assigner":
        # Dify reads a node without version "2" as its first assigner.
        return "assigner" if str(value.get("version")) == "2" else "assigner-v1"
    return _TAG_BY_TYPE.get(node_type, "unknown")


AnyNodeData = Annotated[
    Annotated[StartData, Tag("start")]
    | Annotated[EndData, Tag("end")]
    | Annotated[AnswerData, Tag("answer")]
    | Annotated[LLMData, Tag("llm")]
    | Annotated[KnowledgeRetrievalData, Tag("knowledge-retrieval")]
    | Annotated[QuestionClassifierData, Tag("question-classifier")]
    | Annotated[IfElseData, Tag("if-else")]
    | Annotated[CodeData, Tag("code")]
    | Annotated[TemplateTransformData, Tag("template-transform")]
    | Annotated[VariableAggregatorData, Tag("variable-aggregator")]
    | Annotated[AssignerData, Tag("assigner")]
    | Annotated[AssignerV1Data, Tag("assigner-v1")]
    | Annotated[IterationData, Tag("iteration")]
    | Annotated[IterationStartData, Tag("iteration-start")]
    | Annotated[LoopData, Tag("loop")]
    | Annotated[LoopStartData, Tag("loop-start")]
    | Annotated[LoopEndData, Tag("loop-end")]
    | Annotated[ParameterExtractorData, Tag("parameter-extractor")]
    | Annotated[HttpRequestData, Tag("http-request")]
    | Annotated[ListOperatorData, Tag("list-operator")]
    | Annotated[DocumentExtractorData, Tag("document-extractor")]
    | Annotated[HumanInputData, Tag("human-input")]
    | Annotated[ToolData, Tag("tool")]
    | Annotated[AgentData, Tag("agent")]
    | Annotated[NoteData, Tag("note")]
    | Annotated[UnknownData, Tag("unknown")],
    Discriminator(
        _data_tag,
        custom_error_type="node_data_type",
        custom_error_message="node data needs a string `type`",
    ),
]

CONTAINER_TYPES = frozenset({"iteration", "loop"})
NOTE_NODE_TYPE = "custom-note"


class Position(DslModel):
    """Where the editor draws a node."""

    x: Number = 0
    y: Number = 0


class Node(DslModel):
    """A node: id, typed data, and the editor's layout (kept as Dify writes it)."""

    id: str = Field(min_length=1)
    # The editor's node kind: custom, custom-note, custom-iteration-start, custom-loop-start.
    type: str = "custom"
    data: AnyNodeData
    # The iteration or loop this node is inside of.
    parentId: str | None = None
    position: Position | None = None
    positionAbsolute: Position | None = None
    width: Number | None = None
    height: Number | None = None
    zIndex: int | None = None
    extent: str | None = None
    sourcePosition: str | None = None
    targetPosition: str | None = None
    selected: bool | None = None
    draggable: bool | None = None
    selectable: bool | None = None
    dragging: bool | None = None

    @property
    def is_note(self) -> bool:
        """An editor note, which the engine and validation skip."""
        return self.type == NOTE_NODE_TYPE or isinstance(self.data, NoteData)


class EdgeData(DslModel):
    """The editor's record of what an edge joins."""

    sourceType: str | None = None
    targetType: str | None = None
    isInIteration: bool | None = None
    iteration_id: str | None = None
    isInLoop: bool | None = None
    loop_id: str | None = None


class Edge(DslModel):
    """A connection from one of a node's source handles to another node."""

    id: str = Field(min_length=1)
    type: str = "custom"
    source: str
    sourceHandle: str = "source"
    target: str
    targetHandle: str = "target"
    data: EdgeData | None = None
    zIndex: int | None = None
    selected: bool | None = None


class Viewport(DslModel):
    """The editor's pan and zoom."""

    x: Number = 0
    y: Number = 0
    zoom: Number = 1


class Graph(DslModel):
    """Nodes, edges and viewport of a workflow."""

    nodes: list[Node] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    viewport: Viewport | None = None

    def node(self, node_id: str) -> Node | None:
        """The node with this id, if any."""
        return next((node for node in self.nodes if node.id == node_id), None)

    def children(self, container_id: str | None) -> list[Node]:
        """The nodes directly inside a container (None: the top level), notes left out."""
        return [n for n in self.nodes if n.parentId == container_id and not n.is_note]

    def outgoing(self, node_id: str) -> list[Edge]:
        """The edges leaving a node."""
        return [edge for edge in self.edges if edge.source == node_id]


class EnvironmentVariable(DslModel):
    """A read-only value of the workflow; secrets are stored encrypted and not exported."""

    id: str | None = None
    name: str
    value_type: Literal["string", "number", "secret"] = "string"
    value: str | Number = ""
    description: str | None = None
    selector: list[str] | None = None


class ConversationVariable(DslModel):
    """A value kept per conversation of a chatflow, changed only by assigners and the API."""

    id: str | None = None
    name: str
    value_type: str = "string"
    value: Any = None
    description: str | None = None
    selector: list[str] | None = None


class WorkflowSpec(DslModel):
    """What a workflow is: its graph, the app features, environment and conversation variables."""

    graph: Graph = Field(default_factory=Graph)
    features: dict[str, Any] = Field(default_factory=dict)
    environment_variables: list[EnvironmentVariable] = Field(default_factory=list)
    conversation_variables: list[ConversationVariable] = Field(default_factory=list)
