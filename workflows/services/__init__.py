"""Writes of workflows: definitions (create, edit the draft, delete), Dify DSL import and
export, versions (publish, roll back, compare). Runs are started by workflows.runner.

Each takes keyword arguments, runs in one transaction and raises typed errors
(tenants.exceptions) that the API and the console turn into their answers; the audit row of
a write is made by the audit signals with the actor in context."""

from .definitions import (
    checksum,
    parse_spec,
    spec_of,
    workflow_create,
    workflow_delete,
    workflow_update,
)
from .dsl_io import DslInvalid, ImportResult, map_models, read_dsl, workflow_export, workflow_import
from .versions import (
    WorkflowInvalid,
    check_runnable,
    version_diff,
    workflow_publish,
    workflow_rollback,
)

__all__ = [
    "DslInvalid",
    "ImportResult",
    "WorkflowInvalid",
    "check_runnable",
    "checksum",
    "map_models",
    "parse_spec",
    "read_dsl",
    "spec_of",
    "version_diff",
    "workflow_create",
    "workflow_delete",
    "workflow_export",
    "workflow_import",
    "workflow_publish",
    "workflow_rollback",
    "workflow_update",
]
