"""The variable pool: every value a run has produced, addressed by selector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..dsl.selectors import CONVERSATION, ENV, SYS, Selector, render_template

MISSING: Any = object()


class VariablePool:
    """Values by (node id, variable); `sys`, `env` and `conversation` are node ids like any
    other. A child pool (an iteration round, a loop round) writes its own values and reads
    through to its parent, so parallel rounds never see each other's."""

    def __init__(
        self,
        *,
        system: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
        conversation: Mapping[str, Any] | None = None,
        parent: VariablePool | None = None,
    ) -> None:
        self.parent = parent
        self._values: dict[str, dict[str, Any]] = {}
        if system is not None:
            self._values[SYS] = dict(system)
        if environment is not None:
            self._values[ENV] = dict(environment)
        if conversation is not None:
            self._values[CONVERSATION] = dict(conversation)

    def child(self) -> VariablePool:
        """A pool that writes on its own and reads through to this one."""
        return VariablePool(parent=self)

    def set_outputs(self, node_id: str, outputs: Mapping[str, Any]) -> None:
        """Record a node's outputs (replacing any earlier ones of the same node)."""
        self._values[node_id] = dict(outputs)

    def set(self, selector: Sequence[str], value: Any) -> None:
        """Set one variable, `[node_id, name]`, where the node's values live (a conversation
        variable, or a loop's variable from inside an iteration round), so the write is seen
        after the round; a node with no values yet gets them here."""
        node_id, name = selector[0], selector[1]
        pool: VariablePool | None = self
        while pool is not None and node_id not in pool._values:
            pool = pool.parent
        target = pool if pool is not None else self
        target._values.setdefault(node_id, {})[name] = value

    def node_outputs(self, node_id: str) -> dict[str, Any] | None:
        """All outputs of a node, if it has run."""
        pool: VariablePool | None = self
        while pool is not None:
            if node_id in pool._values:
                return pool._values[node_id]
            pool = pool.parent
        return None

    def get(self, selector: Sequence[str], default: Any = None) -> Any:
        """The value at `[node_id, name, key…]`: keys index into objects and lists (and read
        attributes of file objects); anything missing gives `default`."""
        if len(selector) < 2:
            return default
        outputs = self.node_outputs(selector[0])
        if outputs is None or selector[1] not in outputs:
            return default
        value = outputs[selector[1]]
        for key in selector[2:]:
            if isinstance(value, Mapping):
                if key not in value:
                    return default
                value = value[key]
            elif isinstance(value, list) and key.lstrip("-").isdigit():
                index = int(key)
                if not -len(value) <= index < len(value):
                    return default
                value = value[index]
            else:
                return default
        return value

    def has(self, selector: Sequence[str]) -> bool:
        """Whether the selector names a value (None counts as a value)."""
        return self.get(selector, MISSING) is not MISSING

    def render(self, template: str) -> str:
        """A `{{#node.var#}}` template with every reference replaced by its text."""
        return render_template(template, self._lookup)

    def _lookup(self, selector: Selector) -> Any:
        return self.get(selector)

    def conversation_values(self) -> dict[str, Any]:
        """The conversation variables as they stand (to persist after a chatflow run)."""
        return dict(self.node_outputs(CONVERSATION) or {})

    # --- Pausing: a run waiting for a person is saved, then resumed in another process ---

    def dump(self) -> dict[str, dict[str, Any]]:
        """Every value of this pool and its parents (JSON-able when the values are)."""
        chain: list[VariablePool] = []
        pool: VariablePool | None = self
        while pool is not None:
            chain.append(pool)
            pool = pool.parent
        merged: dict[str, dict[str, Any]] = {}
        for pool in reversed(chain):
            for node_id, values in pool._values.items():
                merged[node_id] = dict(values)
        return merged

    @classmethod
    def load(cls, values: Mapping[str, Mapping[str, Any]]) -> VariablePool:
        """A pool holding what `dump` gave."""
        pool = cls()
        pool._values = {node_id: dict(items) for node_id, items in values.items()}
        return pool
