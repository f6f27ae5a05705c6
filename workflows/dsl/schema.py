"""JSON Schemas of the DSL, for editors, API documentation and checks outside Python."""

from __future__ import annotations

from typing import Any

from .dify import WORKFLOW_APP_MODES
from .graph import Graph, WorkflowSpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def graph_json_schema() -> dict[str, Any]:
    """The JSON Schema of a graph (`workflow.graph`)."""
    return {"$schema": DIALECT, **Graph.model_json_schema()}


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema of a workflow spec (the `workflow` part of a Dify DSL)."""
    return {"$schema": DIALECT, **WorkflowSpec.model_json_schema()}


def dsl_json_schema() -> dict[str, Any]:
    """The JSON Schema of a whole Dify app DSL document of a workflow or chatflow app."""
    workflow = WorkflowSpec.model_json_schema()
    definitions = workflow.pop("$defs")
    return {
        "$schema": DIALECT,
        "title": "Dify app DSL (workflow and advanced-chat apps)",
        "type": "object",
        "required": ["app", "workflow"],
        "properties": {
            "version": {"type": "string", "pattern": r"^0(\.\d+){0,2}$"},
            "kind": {"const": "app"},
            "app": {
                "type": "object",
                "required": ["mode"],
                "properties": {
                    "name": {"type": "string"},
                    "mode": {"enum": sorted(WORKFLOW_APP_MODES)},
                    "description": {"type": ["string", "null"]},
                    "icon": {"type": ["string", "null"]},
                    "icon_type": {"type": ["string", "null"]},
                    "icon_background": {"type": ["string", "null"]},
                },
            },
            "dependencies": {"type": ["array", "null"], "items": {"type": "object"}},
            "workflow": workflow,
        },
        "$defs": definitions,
    }
