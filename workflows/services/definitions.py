"""Writes of workflow definitions: create, edit the draft, delete; and the spec of a draft or
version as the engine, the editor and the export each need it (secrets decrypted, masked or
blank)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from django.db import IntegrityError, transaction
from pydantic import ValidationError as PydanticError

from providers import crypto
from tenants.context import tenant_context
from tenants.exceptions import Conflict, InvalidInput, NotFound
from tenants.models import Tenant, User

from ..dsl import Node, StartData, WorkflowSpec
from ..models import Workflow, WorkflowVersion

Secrets = Literal["decrypted", "masked", "blank"]
MAX_NAME = 255


def parse_spec(data: Mapping[str, Any], *, where: str = "workflow") -> WorkflowSpec:
    """A spec from Dify-shaped `{graph, features, environment_variables,
    conversation_variables}`; a malformed one raises InvalidInput naming the field."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: expected an object.")
    try:
        return WorkflowSpec.model_validate(dict(data))
    except PydanticError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InvalidInput(f"{where}.{path}: {first['msg']}{more}") from None


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("name: a workflow needs a name.")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"name: at most {MAX_NAME} characters.")
    return name


def _stored_variables(
    incoming: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Environment variables as stored: secret values encrypted. A secret sent back as the
    mask it was shown as (or empty) keeps its stored value."""
    before = {v.get("name"): v for v in previous if v.get("value_type") == "secret"}
    stored = []
    for variable in incoming:
        row = dict(variable)
        if row.get("value_type") == "secret":
            value = str(row.get("value") or "")
            old = before.get(row.get("name"))
            if old is not None and (not value or value == _masked(old)):
                row["value"] = old["value"]
            else:
                row["value"] = crypto.encrypt(value)
        stored.append(row)
    return stored


def _masked(stored: Mapping[str, Any]) -> str:
    try:
        return crypto.mask(crypto.decrypt(str(stored.get("value") or "")))
    except crypto.SecretUnreadable:
        return ""


def _shown_variables(stored: Sequence[Mapping[str, Any]], secrets: Secrets) -> list[dict]:
    shown = []
    for variable in stored:
        row = dict(variable)
        if row.get("value_type") == "secret":
            if secrets == "decrypted":
                try:
                    row["value"] = crypto.decrypt(str(row.get("value") or ""))
                except crypto.SecretUnreadable:
                    row["value"] = ""
            elif secrets == "masked":
                row["value"] = _masked(variable)
            else:
                row["value"] = ""
        shown.append(row)
    return shown


def spec_of(
    source: Workflow | WorkflowVersion, *, secrets: Secrets = "masked", graph: Any = None
) -> WorkflowSpec:
    """The spec of a draft or a version, with secret values decrypted (to run or export with
    secrets), masked (to show) or blank; `graph` in place of the source's (a run's own copy)."""
    return WorkflowSpec.model_validate(
        {
            "graph": source.graph if graph is None else graph,
            "features": source.features,
            "environment_variables": _shown_variables(source.environment_variables, secrets),
            "conversation_variables": source.conversation_variables,
        }
    )


def start_of(source: Workflow | WorkflowVersion) -> StartData | None:
    """The start form of a draft or a version (its top-level start node), parsed alone: a
    turn needs it before it runs, and parsing a large graph whole costs milliseconds."""
    graph = source.graph if isinstance(source.graph, Mapping) else {}
    for raw in graph.get("nodes") or []:
        data = raw.get("data") if isinstance(raw, Mapping) else None
        if isinstance(data, Mapping) and data.get("type") == "start" and not raw.get("parentId"):
            node = Node.model_validate(raw)
            if isinstance(node.data, StartData):
                return node.data
    return None


def checksum(
    graph: Any, features: Any, environment: Sequence[Mapping[str, Any]], conversation: Any
) -> str:
    """A digest of what a workflow does (secrets by the digest of their plain value, since
    each encryption of the same value differs)."""
    env = []
    for variable in _shown_variables(environment, "decrypted"):
        if variable.get("value_type") == "secret":
            variable["value"] = hashlib.sha256(str(variable["value"]).encode()).hexdigest()
        env.append(variable)
    canonical = json.dumps(
        [graph, features, env, conversation], sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _spec_fields(spec: WorkflowSpec) -> dict[str, Any]:
    dumped = spec.model_dump(mode="json", exclude_unset=True)
    return {
        "graph": spec.graph.model_dump(mode="json", exclude_unset=True),
        "features": dumped.get("features", {}),
        "environment_variables": dumped.get("environment_variables", []),
        "conversation_variables": dumped.get("conversation_variables", []),
    }


def workflow_create(
    *,
    tenant: Tenant,
    name: str,
    description: str = "",
    mode: str = Workflow.Mode.WORKFLOW,
    spec: WorkflowSpec | None = None,
    created_by: User | None = None,
) -> Workflow:
    """A new workflow whose draft is `spec` (empty when not given)."""
    name = _clean_name(name)
    if mode not in Workflow.Mode.values:
        raise InvalidInput(f"mode: “{mode}” is not one of {', '.join(Workflow.Mode.values)}.")
    fields = _spec_fields(spec or WorkflowSpec())
    fields["environment_variables"] = _stored_variables(fields["environment_variables"], [])
    with transaction.atomic(), tenant_context(tenant):
        if Workflow.objects.filter(name=name).exists():
            raise Conflict(f"name: a workflow called “{name}” already exists.")
        try:
            workflow = Workflow.objects.create(
                name=name,
                description=description,
                mode=mode,
                created_by=created_by,
                updated_by=created_by,
                draft_checksum=checksum(
                    fields["graph"],
                    fields["features"],
                    fields["environment_variables"],
                    fields["conversation_variables"],
                ),
                **fields,
            )
        except IntegrityError:
            raise Conflict(f"name: a workflow called “{name}” already exists.") from None
    return workflow


def workflow_update(
    *,
    tenant: Tenant,
    workflow: Workflow,
    name: str | None = None,
    description: str | None = None,
    spec: WorkflowSpec | None = None,
    expected_checksum: str | None = None,
    updated_by: User | None = None,
) -> Workflow:
    """Change a workflow's name, description or draft. With `expected_checksum`, refuse to
    overwrite a draft someone else saved in the meantime."""
    if workflow.tenant_id != tenant.pk:
        raise NotFound("No such workflow.")
    with transaction.atomic(), tenant_context(tenant):
        current = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if expected_checksum is not None and expected_checksum != current.draft_checksum:
            raise Conflict(
                "The draft was changed by someone else since you opened it: reload it first."
            )
        if name is not None:
            name = _clean_name(name)
            if Workflow.objects.filter(name=name).exclude(pk=current.pk).exists():
                raise Conflict(f"name: a workflow called “{name}” already exists.")
            current.name = name
        if description is not None:
            current.description = description
        if spec is not None:
            fields = _spec_fields(spec)
            fields["environment_variables"] = _stored_variables(
                fields["environment_variables"], current.environment_variables
            )
            for field, value in fields.items():
                setattr(current, field, value)
            current.draft_checksum = checksum(
                current.graph,
                current.features,
                current.environment_variables,
                current.conversation_variables,
            )
        current.updated_by = updated_by
        current.save()
    return current


def workflow_delete(*, tenant: Tenant, workflow: Workflow) -> None:
    """Delete a workflow with its versions and runs."""
    if workflow.tenant_id != tenant.pk:
        raise NotFound("No such workflow.")
    with transaction.atomic(), tenant_context(tenant):
        workflow.delete()
