"""The workflow DSL: a typed graph (pydantic), Dify DSL import/export, validation and diff.

Pure Python, no Django: the engine, models and admin build on it.
"""

from .base import (
    Condition,
    DefaultValue,
    ModelConfig,
    NodeData,
    RetryConfig,
    VariableRef,
)
from .diff import FieldChange, NodeChange, SpecDiff, diff_specs
from .dify import (
    CURRENT_DSL_VERSION,
    MAX_DSL_BYTES,
    DslDocument,
    DslError,
    dump_dsl,
    load_dsl,
)
from .graph import (
    DATA_MODELS,
    KNOWN_TYPES,
    AnyNodeData,
    ConversationVariable,
    Edge,
    EnvironmentVariable,
    Graph,
    Node,
    UnknownData,
    WorkflowSpec,
)
from .model_refs import ModelRef, model_refs, rewrite_model
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
from .report import ImportReport, ReportItem
from .schema import dsl_json_schema, graph_json_schema, workflow_json_schema
from .selectors import (
    SYSTEM_VARIABLES,
    Selector,
    SelectorRef,
    render_template,
    template_selectors,
)
from .validate import ValidationError, validate

__all__ = [
    "CURRENT_DSL_VERSION",
    "DATA_MODELS",
    "KNOWN_TYPES",
    "MAX_DSL_BYTES",
    "SYSTEM_VARIABLES",
    "AgentData",
    "AnswerData",
    "AnyNodeData",
    "AssignerData",
    "AssignerV1Data",
    "CodeData",
    "Condition",
    "ConversationVariable",
    "DefaultValue",
    "DocumentExtractorData",
    "DslDocument",
    "DslError",
    "Edge",
    "EndData",
    "EnvironmentVariable",
    "FieldChange",
    "Graph",
    "HttpRequestData",
    "HumanInputData",
    "IfElseData",
    "ImportReport",
    "IterationData",
    "IterationStartData",
    "KnowledgeRetrievalData",
    "LLMData",
    "ListOperatorData",
    "LoopData",
    "LoopEndData",
    "LoopStartData",
    "ModelConfig",
    "ModelRef",
    "Node",
    "NodeChange",
    "NodeData",
    "NoteData",
    "OpaqueData",
    "ParameterExtractorData",
    "QuestionClassifierData",
    "ReportItem",
    "RetryConfig",
    "Selector",
    "SelectorRef",
    "SpecDiff",
    "StartData",
    "TemplateTransformData",
    "ToolData",
    "UnknownData",
    "ValidationError",
    "VariableAggregatorData",
    "VariableRef",
    "WorkflowSpec",
    "diff_specs",
    "dsl_json_schema",
    "dump_dsl",
    "graph_json_schema",
    "load_dsl",
    "model_refs",
    "render_template",
    "rewrite_model",
    "template_selectors",
    "validate",
    "workflow_json_schema",
]
