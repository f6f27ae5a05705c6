"""Published versions: publish the draft (validated first), compare two, roll back."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, NotFound
from tenants.models import Tenant, User

from ..dsl import SpecDiff, ValidationError, diff_specs, validate
from ..models import Workflow, WorkflowVersion
from .definitions import checksum, spec_of


class WorkflowInvalid(InvalidInput):
    """The workflow cannot run; `errors` says where."""

    code = "workflow_invalid"

    def __init__(self, errors: list[ValidationError]) -> None:
        self.errors = errors
        lines = [f"{e.node_id or e.edge_id or 'workflow'}: {e.message}" for e in errors[:10]]
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__("The workflow has errors: " + "; ".join(lines) + more)


# A workflow's result is its end node's outputs; a chatflow's is its answers.
_WRONG_MODE = {
    Workflow.Mode.WORKFLOW: ("answer", "answer nodes belong in chatflows: use an end node"),
    Workflow.Mode.CHATFLOW: ("end", "end nodes belong in workflows: use an answer node"),
}


# Versions found runnable: neither a version nor its workflow's mode ever changes, so every
# later run of one (each chat turn) skips parsing and validating its graph again. Forgotten
# wholesale when full.
_runnable: set[object] = set()
RUNNABLE_KEPT = 4096


def check_runnable(source: Workflow | WorkflowVersion) -> None:
    """Raise WorkflowInvalid with every error when the graph cannot run in its mode."""
    version = isinstance(source, WorkflowVersion)
    if version and source.pk in _runnable:
        return
    spec = spec_of(source, secrets="blank")
    errors = validate(spec)
    mode = source.mode if isinstance(source, Workflow) else source.workflow.mode
    wrong_type, message = _WRONG_MODE[Workflow.Mode(mode)]
    errors += [
        ValidationError(code="wrong_mode", message=message, node_id=node.id)
        for node in spec.graph.nodes
        if node.data.type == wrong_type
    ]
    if spec.conversation_variables and mode == Workflow.Mode.WORKFLOW:
        errors.append(
            ValidationError(
                code="wrong_mode",
                message="conversation variables belong in chatflows",
                field="conversation_variables",
            )
        )
    if errors:
        raise WorkflowInvalid(errors)
    if version:
        if len(_runnable) >= RUNNABLE_KEPT:
            _runnable.clear()
        _runnable.add(source.pk)


def workflow_publish(
    *, tenant: Tenant, workflow: Workflow, note: str = "", created_by: User | None = None
) -> WorkflowVersion:
    """Publish the draft as the next version. A draft that is the same as the latest version
    publishes nothing and gives that version back."""
    if workflow.tenant_id != tenant.pk:
        raise NotFound("No such workflow.")
    with transaction.atomic(), tenant_context(tenant):
        current = Workflow.objects.select_for_update().get(pk=workflow.pk)
        check_runnable(current)
        latest = current.versions.order_by("-number").first()
        if latest is not None and latest.checksum == current.draft_checksum and not note:
            return latest
        return _new_version(current, current, note=note, created_by=created_by)


def _new_version(
    workflow: Workflow,
    source: Workflow | WorkflowVersion,
    *,
    note: str,
    created_by: User | None,
    restored_from: int | None = None,
) -> WorkflowVersion:
    number = (workflow.versions.aggregate(top=Max("number"))["top"] or 0) + 1
    return WorkflowVersion.objects.create(
        tenant_id=workflow.tenant_id,
        workflow=workflow,
        number=number,
        graph=source.graph,
        features=source.features,
        environment_variables=source.environment_variables,
        conversation_variables=source.conversation_variables,
        checksum=checksum(
            source.graph,
            source.features,
            source.environment_variables,
            source.conversation_variables,
        ),
        note=note,
        restored_from=restored_from,
        created_by=created_by,
    )


def workflow_rollback(
    *,
    tenant: Tenant,
    workflow: Workflow,
    version: WorkflowVersion,
    note: str = "",
    created_by: User | None = None,
) -> WorkflowVersion:
    """Publish a copy of an older version as the newest, and make it the draft too."""
    if workflow.tenant_id != tenant.pk or version.workflow_id != workflow.pk:
        raise NotFound("No such version.")
    with transaction.atomic(), tenant_context(tenant):
        current = Workflow.objects.select_for_update().get(pk=workflow.pk)
        restored = _new_version(
            current,
            version,
            note=note or f"Rolled back to version {version.number}.",
            created_by=created_by,
            restored_from=version.number,
        )
        current.graph = version.graph
        current.features = version.features
        current.environment_variables = version.environment_variables
        current.conversation_variables = version.conversation_variables
        current.draft_checksum = restored.checksum
        current.updated_by = created_by
        current.save()
    return restored


def version_diff(
    old: Workflow | WorkflowVersion, new: Workflow | WorkflowVersion, *, layout: bool = False
) -> SpecDiff:
    """What changed from `old` to `new` (versions or the draft); secrets compare masked."""
    return diff_specs(
        spec_of(old, secrets="masked"), spec_of(new, secrets="masked"), include_layout=layout
    )
