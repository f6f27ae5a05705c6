"""The models a graph names, and rewriting them (a tenant maps providers it lacks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import ModelSlot, NodeData
from .graph import WorkflowSpec


@dataclass(frozen=True)
class ModelRef:
    """A model named by a node: where (node id, field path), what kind, provider and name."""

    node_id: str
    field: str
    kind: str
    provider: str
    name: str


def _slot_target(data: NodeData, slot: ModelSlot) -> Any:
    target: Any = data
    for attribute in slot.path.split("."):
        target = getattr(target, attribute)
    return target


def model_refs(spec: WorkflowSpec) -> list[ModelRef]:
    """Every model the graph's nodes name, in node order (unset rerank/embedding slots left out)."""
    found = []
    for node in spec.graph.nodes:
        for slot in node.data.model_slots():
            target = _slot_target(node.data, slot)
            if not getattr(target, slot.provider_key) and not getattr(target, slot.name_key):
                continue
            found.append(
                ModelRef(
                    node_id=node.id,
                    field=f"data.{slot.path}",
                    kind=slot.kind,
                    provider=getattr(target, slot.provider_key),
                    name=getattr(target, slot.name_key),
                )
            )
    return found


def rewrite_model(
    spec: WorkflowSpec, node_id: str, *, provider: str, name: str, field: str = "data.model"
) -> WorkflowSpec:
    """A copy of the spec in which one node's model (at `field`) is provider/name."""
    copy = spec.model_copy(deep=True)
    node = copy.graph.node(node_id)
    if node is None:
        raise KeyError(f"no node {node_id}")
    for slot in node.data.model_slots():
        if f"data.{slot.path}" == field:
            target = _slot_target(node.data, slot)
            setattr(target, slot.provider_key, provider)
            setattr(target, slot.name_key, name)
            return copy
    raise KeyError(f"node {node_id} names no model at {field}")
