"""What an import noticed: unknown fields and node types, legacy forms read, things left out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .graph import Edge, Node, UnknownData, WorkflowSpec
from .nodes_data import AssignerV1Data, VariableAggregatorData
from .nodes_flow import IfElseData, IterationData, IterationStartData
from .nodes_opaque import AgentData, OpaqueData, ToolData


@dataclass(frozen=True)
class ReportItem:
    """One thing an import noticed, naming the node (or edge) and field it is about.

    Codes: unknown_field, unknown_node_type, unknown_tool and unsupported_agent (tool and agent
    nodes Weft cannot run), legacy_form, empty_secret, mapped (a default assumed), left_out
    (read but not imported), newer_version.
    """

    code: str
    message: str
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = None


@dataclass
class ImportReport:
    """The DSL's header as read, and the warnings of its import."""

    version: str
    kind: str
    app: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    warnings: list[ReportItem] = field(default_factory=list)

    def codes(self) -> list[str]:
        """The warning codes, in order (for tests and summaries)."""
        return [item.code for item in self.warnings]


def unknown_fields(model: BaseModel, prefix: str) -> Iterator[str]:
    """Dotted paths of fields the models do not declare, anywhere under `model`."""
    for name in model.model_extra or {}:
        yield f"{prefix}{name}"
    for name, info in type(model).model_fields.items():
        yield from _unknown_in_value(getattr(model, name), f"{prefix}{info.alias or name}")


def _unknown_in_value(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, OpaqueData):
        return
    if isinstance(value, BaseModel):
        yield from unknown_fields(value, f"{path}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unknown_in_value(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unknown_in_value(item, f"{path}.{key}")


def _node_label(node: Node) -> str:
    return f"node {node.id} ({node.data.type or 'note'} {node.data.title!r})"


def spec_warnings(spec: WorkflowSpec) -> Iterator[ReportItem]:
    """Warnings about a spec: unknown fields and types, legacy forms, unsupported nodes,
    secrets to fill in."""
    for node in spec.graph.nodes:
        yield from _node_warnings(node)
        if isinstance(node.data, IterationData) and node.data.start_node_id:
            start = spec.graph.node(node.data.start_node_id)
            if start is not None and not isinstance(start.data, IterationStartData):
                yield ReportItem(
                    "legacy_form",
                    f"{_node_label(node)}: iteration without a start node (Dify 0.1.0); "
                    f"its body starts at {start.id}",
                    node.id,
                    field="data.start_node_id",
                )
    for edge in spec.graph.edges:
        yield from _edge_warnings(edge)
    for path in unknown_fields(spec, "workflow."):
        if not path.startswith(("workflow.graph.nodes", "workflow.graph.edges")):  # done above
            yield ReportItem("unknown_field", f"unknown field {path} kept", field=path)
    for index, variable in enumerate(spec.environment_variables):
        if variable.value_type == "secret" and variable.value in ("", None):
            yield ReportItem(
                "empty_secret",
                f"secret environment variable {variable.name} has no value (exports leave "
                "secrets out); set it before running",
                field=f"workflow.environment_variables[{index}].value",
            )


def _node_warnings(node: Node) -> Iterator[ReportItem]:
    data = node.data
    label = _node_label(node)
    for path in unknown_fields(node, ""):
        yield ReportItem(
            "unknown_field", f"{label}: unknown field {path} kept", node.id, field=path
        )
    if isinstance(data, UnknownData):
        yield ReportItem(
            "unknown_node_type", f"{label}: unknown node type {data.type!r} kept as is", node.id
        )
    elif isinstance(data, ToolData | AgentData) and (problem := data.problem()) is not None:
        code, message = problem
        yield ReportItem(code, f"{label}: {message}; kept as is, the workflow cannot run", node.id)
    elif isinstance(data, IfElseData) and data.cases is None:
        yield ReportItem(
            "legacy_form",
            f"{label}: Dify 0.1 single-case conditions read as case 'true'",
            node.id,
            field="data.conditions",
        )
    elif isinstance(data, AssignerV1Data):
        yield ReportItem("legacy_form", f"{label}: assigner version 1 (one variable)", node.id)
    elif isinstance(data, VariableAggregatorData) and data.type == "variable-assigner":
        yield ReportItem(
            "legacy_form",
            f"{label}: legacy type name variable-assigner read as aggregator",
            node.id,
        )


def _edge_warnings(edge: Edge) -> Iterator[ReportItem]:
    for path in unknown_fields(edge, ""):
        yield ReportItem(
            "unknown_field",
            f"edge {edge.id}: unknown field {path} kept",
            edge_id=edge.id,
            field=path,
        )
