"""Checks a workflow must pass before it runs; every error names its node (or edge)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from .base import NodeData
from .graph import CONTAINER_TYPES, Edge, Node, UnknownData, WorkflowSpec
from .nodes_data import AnswerData, EndData, StartData
from .nodes_flow import IterationData, LoopData
from .nodes_opaque import AgentData, OpaqueData, ToolData
from .selectors import CONVERSATION, ENV, SYS, SYSTEM_VARIABLES, SelectorRef

Scope = str | None  # the container a node is in; None for the top level


@dataclass(frozen=True)
class ValidationError:
    """One reason the workflow cannot run."""

    code: str
    message: str
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = None


def validate(spec: WorkflowSpec) -> list[ValidationError]:
    """Every error of the workflow: structure, edges, cycles, reachability, references."""
    return list(_Checker(spec).run())


def _label(node: Node) -> str:
    return f"node {node.id} ({node.data.type} {node.data.title!r})"


def _container_variables(data: NodeData) -> frozenset[str]:
    if isinstance(data, IterationData):
        return IterationData.CHILD_VARIABLES
    if isinstance(data, LoopData):
        return data.child_variables()
    return frozenset()


class _Checker:
    def __init__(self, spec: WorkflowSpec):
        self.spec = spec
        self.nodes: dict[str, Node] = {}
        self.duplicates: list[Node] = []
        for node in spec.graph.nodes:
            if node.is_note:
                continue
            if node.id in self.nodes:
                self.duplicates.append(node)
            else:
                self.nodes[node.id] = node
        self.members: dict[Scope, list[str]] = defaultdict(list)
        for node in self.nodes.values():
            self.members[node.parentId].append(node.id)
        # Edges that join two existing nodes of the same scope: the ones runs follow.
        self.successors: dict[str, list[str]] = defaultdict(list)
        self.predecessors: dict[str, list[str]] = defaultdict(list)
        self._ancestors: dict[str, frozenset[str]] = {}

    def run(self) -> Iterator[ValidationError]:
        for node in self.duplicates:
            yield ValidationError("duplicate_node_id", f"{_label(node)}: id used twice", node.id)
        for node in self.nodes.values():
            yield from self._check_node(node)
        yield from self._check_start()
        yield from self._check_edges()
        for scope in list(self.members):
            yield from self._check_cycles(scope)
        yield from self._check_end_reachable()
        for node in self.nodes.values():
            yield from self._check_references(node)

    def _check_node(self, node: Node) -> Iterator[ValidationError]:
        data = node.data
        if isinstance(data, UnknownData):
            yield ValidationError(
                "unknown_node_type", f"{_label(node)}: unknown node type {data.type!r}", node.id
            )
        elif isinstance(data, ToolData | AgentData):
            problem = data.problem()
            if problem is not None:
                code, message = problem
                yield ValidationError(code, f"{_label(node)}: {message}", node.id)
        if node.parentId is not None:
            parent = self.nodes.get(node.parentId)
            if parent is None or parent.data.type not in CONTAINER_TYPES:
                yield ValidationError(
                    "bad_parent",
                    f"{_label(node)}: parentId {node.parentId} is not an iteration or loop",
                    node.id,
                    field="parentId",
                )
            if isinstance(data, StartData):
                yield ValidationError(
                    "start_in_container", f"{_label(node)}: a start node must be top level", node.id
                )
        if isinstance(data, IterationData | LoopData):
            yield from self._check_container_start(node, data)

    def _check_container_start(
        self, node: Node, data: IterationData | LoopData
    ) -> Iterator[ValidationError]:
        start_id = data.start_node_id
        children = self.members.get(node.id, [])
        if start_id is None:
            if children:
                yield ValidationError(
                    "bad_start_node",
                    f"{_label(node)}: start_node_id is missing",
                    node.id,
                    field="data.start_node_id",
                )
        elif start_id not in children:
            yield ValidationError(
                "bad_start_node",
                f"{_label(node)}: start_node_id {start_id} is not one of its child nodes",
                node.id,
                field="data.start_node_id",
            )

    def _check_start(self) -> Iterator[ValidationError]:
        starts = [
            self.nodes[i] for i in self.members[None] if isinstance(self.nodes[i].data, StartData)
        ]
        if not starts:
            yield ValidationError("no_start", "the workflow has no start node")
        for extra in starts[1:]:
            yield ValidationError(
                "multiple_starts",
                f"{_label(extra)}: a second start node (the first is {starts[0].id})",
                extra.id,
            )

    def _check_edges(self) -> Iterator[ValidationError]:
        seen: set[str] = set()
        for edge in self.spec.graph.edges:
            if edge.id in seen:
                yield ValidationError(
                    "duplicate_edge_id", f"edge {edge.id}: id used twice", edge_id=edge.id
                )
            seen.add(edge.id)
            yield from self._check_edge(edge)

    def _check_edge(self, edge: Edge) -> Iterator[ValidationError]:
        source = self.nodes.get(edge.source)
        target = self.nodes.get(edge.target)
        for end, node_id, node in (
            ("source", edge.source, source),
            ("target", edge.target, target),
        ):
            if node is None:
                yield ValidationError(
                    "unknown_node",
                    f"edge {edge.id}: {end} {node_id} is not a node of the graph",
                    node_id,
                    edge.id,
                    end,
                )
        if source is None or target is None:
            return
        if source.parentId != target.parentId:
            yield ValidationError(
                "cross_container_edge",
                f"edge {edge.id}: joins {source.id} and {target.id}, which are not in the "
                "same iteration or loop",
                source.id,
                edge.id,
            )
            return
        handles = source.data.source_handles()
        if handles is not None and edge.sourceHandle not in handles:
            allowed = ", ".join(sorted(handles)) or "none"
            yield ValidationError(
                "bad_source_handle",
                f"edge {edge.id}: {_label(source)} has no source handle {edge.sourceHandle!r} "
                f"(it has: {allowed})",
                source.id,
                edge.id,
                "sourceHandle",
            )
        # Followed even with a bad handle: the edge says what runs after what, and one error
        # about it is enough (no cascade of unreachable ends and references).
        self.successors[source.id].append(target.id)
        self.predecessors[target.id].append(source.id)

    def _check_cycles(self, scope: Scope) -> Iterator[ValidationError]:
        for component in _strongly_connected(self.members[scope], self.successors):
            looped = len(component) > 1 or component[0] in self.successors[component[0]]
            if looped:
                first = min(component)
                where = "the top level" if scope is None else f"container {scope}"
                yield ValidationError(
                    "cycle",
                    f"node {first}: nodes {', '.join(sorted(component))} form a cycle in {where}; "
                    "repeat work with a loop node instead",
                    first,
                )

    def _check_end_reachable(self) -> Iterator[ValidationError]:
        starts = [i for i in self.members[None] if isinstance(self.nodes[i].data, StartData)]
        if not starts:
            return
        seen = {starts[0]}
        queue = [starts[0]]
        while queue:
            for successor in self.successors[queue.pop()]:
                if successor not in seen:
                    seen.add(successor)
                    queue.append(successor)
        if not any(isinstance(self.nodes[i].data, EndData | AnswerData) for i in seen):
            yield ValidationError(
                "no_end",
                f"{_label(self.nodes[starts[0]])}: no end or answer node is reachable from it",
                starts[0],
            )

    def ancestors(self, node_id: str) -> frozenset[str]:
        """Nodes of the same scope that run before this one on some path."""
        if node_id not in self._ancestors:
            seen: set[str] = set()
            queue = list(self.predecessors[node_id])
            while queue:
                current = queue.pop()
                if current not in seen:
                    seen.add(current)
                    queue.extend(self.predecessors[current])
            self._ancestors[node_id] = frozenset(seen)
        return self._ancestors[node_id]

    def _visible(self, node: Node) -> tuple[set[str], dict[str, frozenset[str]]]:
        """Nodes whose outputs `node` may read, and the variables of its enclosing containers."""
        visible = set(self.ancestors(node.id))
        containers: dict[str, frozenset[str]] = {}
        current = node
        while current.parentId is not None and current.parentId in self.nodes:
            parent = self.nodes[current.parentId]
            containers[parent.id] = _container_variables(parent.data)
            visible |= self.ancestors(parent.id)
            current = parent
        return visible, containers

    def _check_references(self, node: Node) -> Iterator[ValidationError]:
        data = node.data
        runnable = isinstance(data, ToolData | AgentData) and data.problem() is None
        if isinstance(data, OpaqueData) and not runnable:
            return
        visible, containers = self._visible(node)
        inner_containers = {**containers, node.id: _container_variables(node.data)}
        inner_visible = visible | set(self.members.get(node.id, []))
        for found in node.data.references():
            if found.inner:
                yield from self._check_reference(node, found, inner_visible, inner_containers)
            else:
                yield from self._check_reference(node, found, visible, containers)

    def _check_reference(
        self,
        node: Node,
        found: SelectorRef,
        visible: set[str],
        containers: dict[str, frozenset[str]],
    ) -> Iterator[ValidationError]:
        selector = found.selector
        field = f"data.{found.field}"
        shown = ".".join(selector)
        if len(selector) < 2 or not all(selector):
            yield ValidationError(
                "bad_selector",
                f"{_label(node)}: {field} is not a [node, variable] selector",
                node.id,
                field=field,
            )
            return
        root, name = selector[0], selector[1]
        problem = None
        if root == SYS:
            if name not in SYSTEM_VARIABLES:
                problem = f"sys.{name} is not a system variable"
        elif root == ENV:
            if name not in {variable.name for variable in self.spec.environment_variables}:
                problem = f"environment variable {name!r} is not defined"
        elif root == CONVERSATION:
            if name not in {variable.name for variable in self.spec.conversation_variables}:
                problem = f"conversation variable {name!r} is not defined"
        elif root in containers:
            if name not in containers[root]:
                allowed = ", ".join(sorted(containers[root])) or "none"
                problem = f"{shown}: inside {root} only its variables can be read ({allowed})"
        elif root not in self.nodes:
            problem = f"{shown} names node {root}, which does not exist"
        elif root not in visible:
            problem = f"{shown} names node {root}, which does not run before it"
        if problem is not None:
            code = (
                "not_upstream"
                if root in self.nodes and root not in containers
                else "dangling_selector"
            )
            yield ValidationError(code, f"{_label(node)}: {field}: {problem}", node.id, field=field)


def _strongly_connected(
    members: list[str], successors: dict[str, list[str]]
) -> Iterator[list[str]]:
    """Tarjan's strongly connected components, without recursion (graphs may be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in members:
        if root in index:
            continue
        work = [(root, iter(successors[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                yield component
