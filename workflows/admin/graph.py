"""A picture of a workflow's graph, drawn on the server as inline SVG.

Nodes are boxes (title, type) in columns by their longest path from the start, so a node
always stands right of everything that runs before it. An iteration or loop is a frame with
its child nodes laid out inside it the same way. Edges are curves from a source handle to the
target; a branch (if-else case, classifier class, human-input action, fail branch) is
labelled where it leaves its node. Nodes with validation problems are outlined in red, with
the problems as their tooltip. Every text comes from the user and is escaped.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ..dsl import Edge, Graph, HumanInputData, IfElseData, Node, NodeData, QuestionClassifierData
from ..dsl.base import FAIL_BRANCH, SOURCE, SUCCESS_BRANCH
from ..dsl.graph import CONTAINER_TYPES
from ..dsl.nodes_flow import IF_ELSE_ELSE

NODE_WIDTH = 184
NODE_HEIGHT = 50
COLUMN_GAP = 96
ROW_GAP = 18
FRAME_PAD = 14
FRAME_HEADER = 50
MARGIN = 12
TITLE_CHARS = 24
LABEL_CHARS = 16


@dataclass
class _Box:
    """Where a node is drawn; a container's children are drawn inside it."""

    node: Node
    x: float = 0
    y: float = 0
    width: float = NODE_WIDTH
    height: float = NODE_HEIGHT
    children: list[_Box] = field(default_factory=list)
    frame: bool = False

    @property
    def anchor_height(self) -> float:
        """The band edges attach to: a frame's header, a box's whole height."""
        return FRAME_HEADER if self.frame else self.height


def graph_svg(graph: Graph, problems: Mapping[str, Sequence[str]]) -> SafeString:
    """The graph as an `<svg>` element (empty when it has no nodes); `problems` maps node ids
    to the messages that outline them in red."""
    nodes: dict[str, Node] = {}
    for node in graph.nodes:
        if not node.is_note:
            nodes.setdefault(node.id, node)
    if not nodes:
        return mark_safe("")
    scopes = _scopes(nodes)
    edges = [edge for edge in graph.edges if edge.source in nodes and edge.target in nodes]
    top, width, height = _layout(None, scopes, edges)
    boxes = list(_flatten(top, MARGIN, MARGIN))
    by_id = {box.node.id: box for box in boxes}
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="weft-graph" width="{}" '
            'height="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">',
            round(width + 2 * MARGIN),
            round(height + 2 * MARGIN),
            round(width + 2 * MARGIN),
            round(height + 2 * MARGIN),
            f"Workflow graph of {len(nodes)} nodes",
        ),
        mark_safe(
            '<defs><marker id="weft-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            '<path d="M0,0 L10,5 L0,10 z" class="weft-arrowhead"/></marker></defs>'
        ),
    ]
    # Edges over the boxes: an edge that spans columns may cross a box, and hidden under it
    # it would seem to end there.
    parts += [_node(box, problems) for box in boxes]
    parts += _edges(edges, by_id)
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))  # noqa: S308 - every part is escaped above


def _scopes(nodes: Mapping[str, Node]) -> dict[str | None, list[Node]]:
    """The nodes of each container (None: the top level). A node whose parent is missing, is
    not a container, or is part of a parent cycle is drawn at the top level: validation
    reports it, and the picture must still show it."""

    def scope_of(node: Node) -> str | None:
        seen: set[str] = set()
        current = node
        while current.parentId is not None:
            parent = nodes.get(current.parentId)
            if parent is None or parent.data.type not in CONTAINER_TYPES or parent.id in seen:
                return None
            seen.add(parent.id)
            current = parent
        return node.parentId

    scopes: dict[str | None, list[Node]] = defaultdict(list)
    for node in nodes.values():
        scopes[scope_of(node)].append(node)
    return scopes


def _columns(members: list[Node], edges: Sequence[Edge]) -> list[list[Node]]:
    """Members in columns by their longest path from a node nothing leads to (the start),
    each column ordered by where its predecessors stand, to cross fewer edges."""
    ids = {node.id for node in members}
    successors: dict[str, list[str]] = defaultdict(list)
    predecessors: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        if edge.source in ids and edge.target in ids:
            successors[edge.source].append(edge.target)
            predecessors[edge.target].append(edge.source)
    waiting = {node.id: len(predecessors[node.id]) for node in members}
    layer = dict.fromkeys(ids, 0)
    done: set[str] = set()
    queue = deque(node.id for node in members if not waiting[node.id])
    while len(done) < len(members):
        if not queue:  # the rest lies on cycles (validation says so): break one open
            queue.append(next(node.id for node in members if node.id not in done))
        current = queue.popleft()
        if current in done:
            continue
        done.add(current)
        for target in successors[current]:
            if target in done:
                continue
            layer[target] = max(layer[target], layer[current] + 1)
            waiting[target] -= 1
            if waiting[target] == 0:
                queue.append(target)
    columns: dict[int, list[Node]] = defaultdict(list)
    for node in members:
        columns[layer[node.id]].append(node)
    row: dict[str, int] = {}
    ordered = []
    for number in sorted(columns):
        column = columns[number]
        column.sort(key=lambda node: _mean(row[p] for p in predecessors[node.id] if p in row))
        row.update((node.id, index) for index, node in enumerate(column))
        ordered.append(column)
    return ordered


def _mean(values: Iterator[int]) -> float:
    found = list(values)
    return sum(found) / len(found) if found else 0.0


def _layout(
    scope: str | None, scopes: Mapping[str | None, list[Node]], edges: Sequence[Edge]
) -> tuple[list[_Box], float, float]:
    """Boxes of one scope relative to its top left corner, and the scope's size."""
    boxes: list[_Box] = []
    x = 0.0
    height = 0.0
    for column in _columns(scopes.get(scope, []), edges):
        y = 0.0
        column_width = 0.0
        for node in column:
            box = _Box(node, x=x, y=y)
            if node.data.type in CONTAINER_TYPES:
                children, inner_width, inner_height = _layout(node.id, scopes, edges)
                box.frame = True
                box.children = children
                box.width = max(NODE_WIDTH, inner_width + 2 * FRAME_PAD)
                box.height = FRAME_HEADER + inner_height + FRAME_PAD
            boxes.append(box)
            column_width = max(column_width, box.width)
            y += box.height + ROW_GAP
        height = max(height, y - ROW_GAP)
        x += column_width + COLUMN_GAP
    return boxes, max(x - COLUMN_GAP, 0.0), height


def _flatten(boxes: list[_Box], left: float, top: float) -> Iterator[_Box]:
    """Every box with absolute coordinates, each frame before what it holds."""
    for box in boxes:
        box.x += left
        box.y += top
        yield box
        yield from _flatten(box.children, box.x + FRAME_PAD, box.y + FRAME_HEADER)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _node(box: _Box, problems: Mapping[str, Sequence[str]]) -> SafeString:
    node = box.node
    found = problems.get(node.id) or []
    title = node.data.title or node.id
    tooltip = f"{title} ({node.data.type}, id {node.id})"
    if found:
        tooltip += "\n" + "\n".join(found)
    classes = "weft-node"
    if box.frame:
        classes += " weft-frame"
    if found:
        classes += " weft-invalid"
    return format_html(
        '<g class="{}" data-node-id="{}" data-node-type="{}"><title>{}</title>'
        '<rect x="{}" y="{}" width="{}" height="{}" rx="6"/>'
        '<text x="{}" y="{}" class="weft-node-title">{}</text>'
        '<text x="{}" y="{}" class="weft-node-type">{}</text></g>',
        classes,
        node.id,
        node.data.type,
        tooltip,
        round(box.x),
        round(box.y),
        round(box.width),
        round(box.height),
        round(box.x + 10),
        round(box.y + 20),
        _short(title, TITLE_CHARS),
        round(box.x + 10),
        round(box.y + 38),
        _short(node.data.type, TITLE_CHARS),
    )


def _handle_order(data: NodeData) -> list[str]:
    """A node's source handles in the order its editor lists them, top to bottom."""
    if isinstance(data, IfElseData):
        first = [case.case_id for case in data.effective_cases()] + [IF_ELSE_ELSE]
    elif isinstance(data, QuestionClassifierData):
        first = [item.id for item in data.classes]
    elif isinstance(data, HumanInputData):
        first = [action.id for action in data.user_actions]
    else:
        first = []
    return [*first, SOURCE, SUCCESS_BRANCH, FAIL_BRANCH]


def branch_label(data: NodeData, handle: str) -> str:
    """What a branch leaving by `handle` is called; empty for a node's plain way on."""
    if handle == SOURCE:
        return ""
    if handle == FAIL_BRANCH:
        return "fail"
    if handle == SUCCESS_BRANCH:
        return "success"
    if isinstance(data, IfElseData):
        return "else" if handle == IF_ELSE_ELSE else f"case {handle}"
    if isinstance(data, QuestionClassifierData):
        for item in data.classes:
            if item.id == handle:
                return item.name or item.label or handle
    if isinstance(data, HumanInputData):
        for action in data.user_actions:
            if action.id == handle:
                return action.title or handle
    return handle


def _edges(edges: Sequence[Edge], boxes: Mapping[str, _Box]) -> list[SafeString]:
    handles: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        if edge.sourceHandle not in handles[edge.source]:
            handles[edge.source].append(edge.sourceHandle)
    for source_id, used in handles.items():
        order = _handle_order(boxes[source_id].node.data)
        used.sort(key=lambda h: (order.index(h) if h in order else len(order), h))
    drawn = []
    labelled: set[tuple[str, str]] = set()
    for edge in edges:
        source, target = boxes[edge.source], boxes[edge.target]
        used = handles[edge.source]
        slot = used.index(edge.sourceHandle) + 1
        sx = source.x + source.width
        sy = source.y + source.anchor_height * slot / (len(used) + 1)
        tx, ty = target.x, target.y + target.anchor_height / 2
        bend = max(abs(tx - sx) / 2, 30)
        drawn.append(
            format_html(
                '<path class="weft-edge" data-source="{}" data-target="{}" data-handle="{}" '
                'd="M{},{} C{},{} {},{} {},{}" marker-end="url(#weft-arrow)"/>',
                edge.source,
                edge.target,
                edge.sourceHandle,
                round(sx),
                round(sy),
                round(sx + bend),
                round(sy),
                round(tx - bend),
                round(ty),
                round(tx),
                round(ty),
            )
        )
        label = branch_label(source.node.data, edge.sourceHandle)
        if label and (edge.source, edge.sourceHandle) not in labelled:
            labelled.add((edge.source, edge.sourceHandle))
            drawn.append(
                format_html(
                    '<text class="weft-branch" x="{}" y="{}"><title>{}</title>{}</text>',
                    round(sx + 4),
                    round(sy - 4),
                    label,
                    _short(label, LABEL_CHARS),
                )
            )
    return drawn
