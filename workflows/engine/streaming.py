"""Streaming an answer (or a workflow's end outputs) while the nodes it shows still run.

An answer node's template is a list of segments, literal text and references. A model node
hands its text over piece by piece; if the reference the answer waits for next is that text,
and the answer is sure to run once the model node succeeds (no branch between them), the
pieces go out at once as `text_chunk` events, after whatever of the template comes before.
When the answer node itself runs, it sends what has not gone out yet. So the text arrives in
template order, never twice, and never for an answer on a branch that may not be taken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..dsl.selectors import TEMPLATE_REFERENCE, Selector, to_text
from .events import TextChunk
from .graph import RuntimeGraph, RuntimeNode
from .pool import MISSING, VariablePool


@dataclass(slots=True)
class _Output:
    node: RuntimeNode
    # Literal text, or a selector. End nodes have selectors only, and send no literal text.
    segments: list[str | Selector]
    position: int = 0
    # The segment at `position` is being streamed by its node.
    streaming: bool = False
    parts: list[str] = field(default_factory=list)


def answer_segments(template: str) -> list[str | Selector]:
    """The literal pieces and references of an answer template, in order."""
    segments: list[str | Selector] = []
    last = 0
    for match in TEMPLATE_REFERENCE.finditer(template):
        if match.start() > last:
            segments.append(template[last : match.start()])
        segments.append(tuple(match.group(1).split(".")))
        last = match.end()
    if last < len(template):
        segments.append(template[last:])
    return segments


class Streamer:
    """Routes streamed text of one scope to its answer (chatflow) or end (workflow) nodes."""

    def __init__(
        self,
        graph: RuntimeGraph,
        nodes: list[RuntimeNode],
        pool: VariablePool,
        emit: Callable[[TextChunk], None],
    ) -> None:
        self.graph = graph
        self.pool = pool
        self.emit = emit
        self.outputs: dict[str, _Output] = {}
        for node in nodes:
            data: Any = node.data
            if node.type == "answer":
                segments = answer_segments(data.answer)
            elif node.type == "end":
                segments = [tuple(o.value_selector) for o in data.outputs if o.value_selector]
            else:
                continue
            self.outputs[node.id] = _Output(node, segments)

    def chunk(self, node_id: str, variable: str, text: str) -> None:
        """A piece of `[node_id, variable]` was produced."""
        if not text:
            return
        selector = (node_id, variable)
        for output in self.outputs.values():
            if output.position >= len(output.segments):
                continue
            if output.streaming:
                if output.segments[output.position] == selector:
                    self._send(output, text, selector)
                continue
            if not self.graph.surely_reaches(node_id, output.node.id):
                continue
            if self._advance(output, until=selector):
                output.streaming = True
                self._send(output, text, selector)

    def finish(self, node_id: str) -> str:
        """The answer node runs: send the rest of its template; its whole text."""
        output = self.outputs[node_id]
        if output.streaming:
            output.position += 1  # its node finished before this one could run
            output.streaming = False
        for segment in output.segments[output.position :]:
            if isinstance(segment, str):
                self._send(output, segment, None)
            else:
                self._send(output, to_text(self.pool.get(segment)), segment)
        output.position = len(output.segments)
        return "".join(output.parts)

    def _advance(self, output: _Output, *, until: Selector) -> bool:
        """Send the segments before `until` if they are all known; whether `until` is next."""
        pending: list[tuple[str, Selector | None]] = []
        for segment in output.segments[output.position :]:
            if segment == until:
                for text, source in pending:
                    self._send(output, text, source)
                output.position += len(pending)
                return True
            if isinstance(segment, str):
                pending.append((segment, None))
                continue
            value = self.pool.get(segment, MISSING)
            if value is MISSING:
                return False
            pending.append((to_text(value), segment))
        return False

    def _send(self, output: _Output, text: str, source: Selector | None) -> None:
        if not text:
            return
        output.parts.append(text)
        if output.node.type == "end" and source is None:
            return
        self.emit(TextChunk(text=text, from_variable_selector=list(source or ())))
