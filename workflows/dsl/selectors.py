"""Variable selectors (`[node_id, var, ...]`) and `{{#node_id.var#}}` template references."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# Roots that are not node ids: system values, environment and conversation variables.
SYS = "sys"
ENV = "env"
CONVERSATION = "conversation"

# What a run provides under `sys.` (Dify's names), so a reference to anything else is dangling.
SYSTEM_VARIABLES = frozenset(
    {
        "query",
        "files",
        "conversation_id",
        "user_id",
        "dialogue_count",
        "app_id",
        "workflow_id",
        "workflow_run_id",
        "timestamp",
    }
)

# Same shape as Dify's: a node id of at most 50 word characters, then 1 to 10 identifiers.
# Anything else between `{{#` and `#}}` (`{{#context#}}`, `{{#$outputs.x#}}`) is not a
# reference and stays literal text for the node that owns it.
TEMPLATE_REFERENCE = re.compile(
    r"\{\{#([a-zA-Z0-9_]{1,50}(?:\.[a-zA-Z_][a-zA-Z0-9_]{0,29}){1,10})#\}\}"
)

Selector = tuple[str, ...]


@dataclass(frozen=True)
class SelectorRef:
    """One variable a node reads: the field it sits in and the selector it names."""

    field: str
    selector: Selector
    # True when the owning container evaluates the field inside its body (iteration output,
    # loop break conditions): there it may name the container's own children.
    inner: bool = False


def template_selectors(template: str) -> list[Selector]:
    """The selectors a template references, in order of first appearance, without repeats."""
    seen: dict[Selector, None] = {}
    for match in TEMPLATE_REFERENCE.finditer(template):
        seen.setdefault(tuple(match.group(1).split(".")), None)
    return list(seen)


def render_template(template: str, lookup: Callable[[Selector], Any]) -> str:
    """Replace each `{{#node.var#}}` by the text of `lookup(selector)`; None renders empty."""
    return TEMPLATE_REFERENCE.sub(lambda m: to_text(lookup(tuple(m.group(1).split(".")))), template)


def to_text(value: Any) -> str:
    """A variable's value as template text: strings as they are, containers as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        # JSON spelling, as Dify renders booleans.
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def refs_in_template(field: str, template: str | None) -> Iterator[SelectorRef]:
    """SelectorRefs for every reference in a template field."""
    for selector in template_selectors(template or ""):
        yield SelectorRef(field, selector)


def refs_in_value(field: str, value: Any) -> Iterator[SelectorRef]:
    """SelectorRefs for every template reference in any string nested in a value."""
    if isinstance(value, str):
        yield from refs_in_template(field, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from refs_in_value(f"{field}.{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from refs_in_value(f"{field}[{index}]", item)


def ref(
    field: str, selector: Sequence[str] | None, *, inner: bool = False
) -> Iterator[SelectorRef]:
    """A SelectorRef for a selector field; empty selectors (unset in the UI) yield nothing."""
    if selector:
        yield SelectorRef(field, tuple(selector), inner)
