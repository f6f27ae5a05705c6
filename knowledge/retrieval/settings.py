"""Retrieval settings: Dify's `retrieval_model` parsed and checked, and metadata filters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, cast

from tenants.exceptions import InvalidInput

SearchMethod = Literal["semantic_search", "full_text_search", "hybrid_search"]
SEARCH_METHODS = ("semantic_search", "full_text_search", "keyword_search", "hybrid_search")
RERANKING_MODES = ("reranking_model", "weighted_score")
FUSIONS = ("weighted", "rrf")
DEFAULT_WEIGHT = 0.5
MAX_TOP_K = 100

TEXT_OPERATORS = ("is", "is not", "contains", "not contains", "start with", "end with")
PRESENCE_OPERATORS = ("empty", "not empty")
NUMBER_OPERATORS = {"=": "=", "≠": "<>", "!=": "<>", ">": ">", "<": "<", "≥": ">=", ">=": ">="}
NUMBER_OPERATORS |= {"≤": "<=", "<=": "<="}
_NUMBER_PATTERN = r"^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$"


@dataclass(frozen=True)
class MetadataCondition:
    """One test on a document's `doc_metadata[name]`."""

    name: str
    comparison_operator: str
    value: str | float | None = None


@dataclass(frozen=True)
class RetrievalSettings:
    """How to search: Dify's `retrieval_model` fields, plus Weft's `fusion` for hybrid."""

    search_method: SearchMethod = "semantic_search"
    top_k: int = 3
    score_threshold_enabled: bool = False
    score_threshold: float = 0.5
    reranking_enable: bool = False
    reranking_mode: str = "reranking_model"
    reranking_model: str | None = None
    # Equal weights unless the caller sets them: neither method is known to be the better
    # one for a dataset. (Dify's console proposes 0.7/0.3; bench/knowledge/quality.py
    # measures both.)
    vector_weight: float = DEFAULT_WEIGHT
    keyword_weight: float = DEFAULT_WEIGHT
    fusion: str = "weighted"
    logical_operator: str = "and"
    conditions: tuple[MetadataCondition, ...] = ()

    @property
    def reranks(self) -> bool:
        return self.reranking_enable and self.reranking_mode == "reranking_model"

    @classmethod
    def from_dify(
        cls, data: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None
    ) -> RetrievalSettings:
        """Settings from a Dify `retrieval_model` over the dataset's defaults; a bad field
        raises InvalidInput naming it."""
        merged: dict[str, Any] = {**(defaults or {}), **(data or {})}
        if data is not None and not isinstance(data, Mapping):
            raise InvalidInput("retrieval_model: expected an object.")
        method = merged.get("search_method") or "semantic_search"
        if method not in SEARCH_METHODS:
            raise InvalidInput(
                f"retrieval_model.search_method: “{method}” is not one of "
                f"{', '.join(SEARCH_METHODS)}."
            )
        if method == "keyword_search":
            method = "full_text_search"
        mode = merged.get("reranking_mode") or "reranking_model"
        if mode not in RERANKING_MODES:
            raise InvalidInput(
                f"retrieval_model.reranking_mode: “{mode}” is not one of "
                f"{', '.join(RERANKING_MODES)}."
            )
        fusion = merged.get("fusion") or "weighted"
        if fusion not in FUSIONS:
            raise InvalidInput(f"retrieval_model.fusion: “{fusion}” is not weighted or rrf.")
        reranking_model = merged.get("reranking_model") or {}
        if isinstance(reranking_model, str):
            model_name: str | None = reranking_model
        elif isinstance(reranking_model, Mapping):
            model_name = reranking_model.get("reranking_model_name") or None
        else:
            raise InvalidInput("retrieval_model.reranking_model: expected an object.")
        weights = merged.get("weights") or {}
        if not isinstance(weights, Mapping):
            raise InvalidInput("retrieval_model.weights: expected an object.")
        vector_weight = _number(
            (weights.get("vector_setting") or {}).get("vector_weight"),
            "weights.vector_setting.vector_weight",
            DEFAULT_WEIGHT,
        )
        keyword_weight = _number(
            (weights.get("keyword_setting") or {}).get("keyword_weight"),
            "weights.keyword_setting.keyword_weight",
            DEFAULT_WEIGHT,
        )
        if vector_weight + keyword_weight <= 0:
            raise InvalidInput("retrieval_model.weights: the two weights cannot both be 0.")
        logical_operator, conditions = _conditions(merged.get("metadata_filtering_conditions"))
        return cls(
            search_method=cast(SearchMethod, method),
            top_k=_top_k(merged.get("top_k", 3)),
            score_threshold_enabled=_flag(merged, "score_threshold_enabled"),
            score_threshold=_number(merged.get("score_threshold"), "score_threshold", 0.5),
            reranking_enable=_flag(merged, "reranking_enable"),
            reranking_mode=mode,
            reranking_model=model_name,
            vector_weight=vector_weight,
            keyword_weight=keyword_weight,
            fusion=fusion,
            logical_operator=logical_operator,
            conditions=conditions,
        )

    def to_dify(self) -> dict[str, Any]:
        """The settings in Dify's `retrieval_model` shape (as stored on a hit test)."""
        return {
            "search_method": self.search_method,
            "top_k": self.top_k,
            "score_threshold_enabled": self.score_threshold_enabled,
            "score_threshold": self.score_threshold,
            "reranking_enable": self.reranking_enable,
            "reranking_mode": self.reranking_mode,
            "reranking_model": {"reranking_model_name": self.reranking_model or ""},
            "weights": {
                "weight_type": "customized",
                "vector_setting": {"vector_weight": self.vector_weight},
                "keyword_setting": {"keyword_weight": self.keyword_weight},
            },
            "fusion": self.fusion,
            "metadata_filtering_conditions": {
                "logical_operator": self.logical_operator,
                "conditions": [asdict(c) for c in self.conditions],
            },
        }


def _flag(merged: Mapping[str, Any], name: str) -> bool:
    value = merged.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"retrieval_model.{name}: expected true or false.")
    return value


def _number(value: Any, name: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInput(f"retrieval_model.{name}: expected a number from 0 to 1.")
    return float(value)


def _top_k(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise InvalidInput(f"retrieval_model.top_k: expected a whole number from 1 to {MAX_TOP_K}.")
    return value


def _conditions(data: Any) -> tuple[str, tuple[MetadataCondition, ...]]:
    if not data:
        return "and", ()
    where = "retrieval_model.metadata_filtering_conditions"
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: expected an object.")
    operator = data.get("logical_operator") or "and"
    if operator not in ("and", "or"):
        raise InvalidInput(f"{where}.logical_operator: expected and or or.")
    items = data.get("conditions") or []
    if not isinstance(items, list):
        raise InvalidInput(f"{where}.conditions: expected a list.")
    conditions = []
    for index, item in enumerate(items):
        at = f"{where}.conditions[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"{at}.name: expected the name of a metadata field.")
        comparison = item.get("comparison_operator")
        value = item.get("value")
        if comparison in TEXT_OPERATORS:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise InvalidInput(f"{at}.value: “{comparison}” needs a text value.")
            value = str(value)
        elif comparison in NUMBER_OPERATORS:
            try:
                number = Decimal(str(value)) if not isinstance(value, bool) else None
            except InvalidOperation:
                number = None
            if number is None or not number.is_finite():
                raise InvalidInput(f"{at}.value: “{comparison}” needs a number.")
            value = float(number)
        elif comparison in PRESENCE_OPERATORS:
            value = None
        else:
            known = TEXT_OPERATORS + PRESENCE_OPERATORS + tuple(NUMBER_OPERATORS)
            raise InvalidInput(
                f"{at}.comparison_operator: “{comparison}” is not one of {', '.join(known)}."
            )
        conditions.append(MetadataCondition(item["name"], comparison, value))
    return operator, tuple(conditions)


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def condition_sql(condition: MetadataCondition) -> tuple[str, list[Any]]:
    """The SQL of one condition on `d.doc_metadata`, with its parameters."""
    text = "(d.doc_metadata ->> %s)"
    name = condition.name
    op, value = condition.comparison_operator, condition.value
    if op == "is":
        return f"{text} = %s", [name, value]
    if op == "is not":
        return f"{text} IS DISTINCT FROM %s", [name, value]
    if op in ("contains", "start with", "end with"):
        pattern = _like(str(value))
        pattern = {"contains": f"%{pattern}%", "start with": f"{pattern}%"}.get(op, f"%{pattern}")
        return f"{text} LIKE %s", [name, pattern]
    if op == "not contains":
        return f"coalesce({text}, '') NOT LIKE %s", [name, f"%{_like(str(value))}%"]
    if op == "empty":
        return f"coalesce({text}, '') = ''", [name]
    if op == "not empty":
        return f"coalesce({text}, '') <> ''", [name]
    # Numbers: a value that is not a number never compares (and never breaks the cast).
    number = f"(CASE WHEN {text} ~ %s THEN ({text})::numeric END)"
    return f"{number} {NUMBER_OPERATORS[op]} %s", [name, _NUMBER_PATTERN, name, value]
