"""The graph as the engine walks it: nodes by id, edges by source and target, and the scopes
(the top level, and the body of each iteration and loop) that an engine instance runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from ..dsl import Graph, Node, NodeData
from ..dsl.base import FAIL_BRANCH, SOURCE

START_TYPES = {None: "start", "iteration": "iteration-start", "loop": "loop-start"}


class GraphError(ValueError):
    """The graph cannot run (validation should have said so first)."""


@dataclass(frozen=True, slots=True)
class RuntimeEdge:
    """An edge: its id, the handle it leaves its source by, and its ends."""

    id: str
    source: str
    handle: str
    target: str


@dataclass(slots=True)
class RuntimeNode:
    """A node with the edges that leave and enter it."""

    id: str
    type: str
    title: str
    data: NodeData
    parent_id: str | None
    outgoing: list[RuntimeEdge] = field(default_factory=list)
    incoming: list[RuntimeEdge] = field(default_factory=list)

    @property
    def branches(self) -> bool:
        """Whether which edges it takes depends on how it runs (if-else, classifier,
        fail branch): text streamed before it decides cannot be promised to anyone."""
        handles = {edge.handle for edge in self.outgoing}
        return bool(handles - {SOURCE}) or self.data.error_strategy == FAIL_BRANCH


class RuntimeGraph:
    """A validated graph, ready to run."""

    def __init__(self, nodes: Iterable[RuntimeNode]) -> None:
        self.nodes: dict[str, RuntimeNode] = {node.id: node for node in nodes}

    @classmethod
    def build(cls, graph: Graph) -> RuntimeGraph:
        """The runtime graph of a DSL graph; editor notes are left out."""
        nodes: dict[str, RuntimeNode] = {}
        for node in graph.nodes:
            if node.is_note:
                continue
            nodes[node.id] = _runtime_node(node)
        runtime = cls(nodes.values())
        for edge in graph.edges:
            source, target = nodes.get(edge.source), nodes.get(edge.target)
            if source is None or target is None:
                continue  # an edge to a note, or dangling: validation reports the latter
            link = RuntimeEdge(edge.id, edge.source, edge.sourceHandle or SOURCE, edge.target)
            source.outgoing.append(link)
            target.incoming.append(link)
        return runtime

    def scope(self, container_id: str | None) -> list[RuntimeNode]:
        """The nodes of the top level (None) or of a container's body."""
        return [node for node in self.nodes.values() if node.parent_id == container_id]

    def root(self, container_id: str | None) -> RuntimeNode:
        """Where a scope starts: the start node, or the container's start node."""
        if container_id is not None:
            container = self.nodes[container_id]
            named = getattr(container.data, "start_node_id", None)
            if named and named in self.nodes:
                return self.nodes[named]
            wanted = START_TYPES[container.type]
        else:
            wanted = START_TYPES[None]
        for node in self.scope(container_id):
            if node.type == wanted:
                return node
        where = f"the body of {container_id}" if container_id else "the workflow"
        raise GraphError(f"{where} has no {wanted} node.")

    @cached_property
    def descendants(self) -> dict[str, frozenset[str]]:
        """For each node, the nodes reachable from it (in its own scope)."""
        found: dict[str, frozenset[str]] = {}
        for node_id in self.nodes:
            seen: set[str] = set()
            stack = [node_id]
            while stack:
                for edge in self.nodes[stack.pop()].outgoing:
                    if edge.target not in seen:
                        seen.add(edge.target)
                        stack.append(edge.target)
            found[node_id] = frozenset(seen)
        return found

    def surely_reaches(self, source: str, target: str) -> bool:
        """Whether `target` must run once `source` has succeeded: it is downstream, and no
        node from `source` up to `target` chooses between branches."""
        if target not in self.descendants[source]:
            return False
        between = {
            node_id
            for node_id in self.descendants[source] | {source}
            if node_id == source or target in self.descendants[node_id]
        }
        return not any(self.nodes[node_id].branches for node_id in between)


def _runtime_node(node: Node) -> RuntimeNode:
    data = node.data
    return RuntimeNode(
        id=node.id,
        type=data.type,
        title=data.title or node.id,
        data=data,
        parent_id=node.parentId,
    )
