"""Dify DSL in and out: import a Dify export as a workflow (models the tenant lacks mapped to
its defaults, so that it runs at once), export a draft or version as Dify's YAML."""

from __future__ import annotations

from dataclasses import dataclass

from providers.models import Model, ModelKind, ProviderKind
from providers.selectors import default_model, model_callable
from tenants.context import tenant_context
from tenants.exceptions import InvalidInput
from tenants.models import Tenant, User

from ..dsl import (
    DslDocument,
    DslError,
    ImportReport,
    ReportItem,
    WorkflowSpec,
    dump_dsl,
    load_dsl,
    model_refs,
    rewrite_model,
)
from ..models import Workflow, WorkflowVersion
from .definitions import spec_of, workflow_create, workflow_update

# Dify names a model's kind after its slot; Weft after the runtime call.
_KINDS = {"llm": ModelKind.CHAT, "rerank": ModelKind.RERANK, "text-embedding": ModelKind.EMBEDDING}
# Dify's provider names (plain, or plugin ids like langgenius/openai/openai) and Weft's own
# (what its export writes) → Weft's kinds.
_PROVIDERS = {
    **{kind.value: kind for kind in ProviderKind},
    "openai": ProviderKind.OPENAI,
    "azure_openai": ProviderKind.AZURE_OPENAI,
    "anthropic": ProviderKind.ANTHROPIC,
    "openai_api_compatible": ProviderKind.OPENAI_COMPATIBLE,
    "ollama": ProviderKind.OPENAI_COMPATIBLE,
    "vllm": ProviderKind.OPENAI_COMPATIBLE,
    "deepseek": ProviderKind.OPENAI_COMPATIBLE,
    "weft": ProviderKind.OFFLINE,
    "offline": ProviderKind.OFFLINE,
}


class DslInvalid(InvalidInput):
    """The file is not a Dify DSL Weft can read."""

    code = "invalid_dsl"


@dataclass
class ImportResult:
    """The workflow an import made or changed, and what it had to map or leave out."""

    workflow: Workflow
    report: ImportReport


def read_dsl(content: str | bytes) -> DslDocument:
    """The DSL document, or DslInvalid with the reason (and the line, when YAML gives one)."""
    try:
        return load_dsl(content)
    except DslError as exc:
        raise DslInvalid(str(exc)) from None


def provider_kind(provider: str) -> str | None:
    """Weft's provider kind of a provider as a DSL names it, if Weft has one."""
    return _PROVIDERS.get(provider.lower().rsplit("/", 1)[-1])


def model_usable(kind: str, provider: str, name: str) -> bool:
    """Whether the current tenant can call this model as a DSL names it."""
    kind_of_provider = provider_kind(provider)
    if kind_of_provider is None:
        return False
    model = (
        Model.objects.filter(kind=kind, provider=kind_of_provider, name=name, enabled=True)
        .select_related("credential")
        .first()
    )
    return model is not None and model_callable(model)


def map_models(tenant: Tenant, spec: WorkflowSpec, report: ImportReport) -> WorkflowSpec:
    """The spec with every model the tenant cannot call replaced by its default model of that
    kind, each replacement listed in the report."""
    with tenant_context(tenant):
        for ref in model_refs(spec):
            kind = _KINDS.get(ref.kind, ModelKind.CHAT)
            if model_usable(kind, ref.provider, ref.name):
                continue
            default = default_model(kind)
            spec = rewrite_model(
                spec,
                ref.node_id,
                provider=str(default.provider),
                name=default.name,
                field=ref.field,
            )
            report.warnings.append(
                ReportItem(
                    code="model_mapped",
                    message=(
                        f"{ref.provider}/{ref.name} is not set up in this tenant: "
                        f"using the default {kind} model {default.name} instead."
                    ),
                    node_id=ref.node_id,
                    field=ref.field,
                )
            )
    return spec


def workflow_import(
    *,
    tenant: Tenant,
    content: str | bytes,
    name: str | None = None,
    workflow: Workflow | None = None,
    created_by: User | None = None,
) -> ImportResult:
    """Create a workflow from a Dify export (or replace `workflow`'s draft with it)."""
    document = read_dsl(content)
    if document.workflow is None or not document.workflow.graph.nodes:
        mode = document.app.get("mode", "?")
        raise DslInvalid(
            f"This export has no workflow graph (app mode “{mode}”): chat, agent and "
            "completion apps are imported as apps."
        )
    report = document.report
    spec = map_models(tenant, document.workflow, report)
    if workflow is None:
        title = name or str(document.app.get("name") or "Imported workflow")
        created = workflow_create(
            tenant=tenant,
            name=title,
            description=str(document.app.get("description") or ""),
            mode=Workflow.Mode.CHATFLOW
            if document.app.get("mode") == Workflow.Mode.CHATFLOW
            else Workflow.Mode.WORKFLOW,
            spec=spec,
            created_by=created_by,
        )
        return ImportResult(created, report)
    updated = workflow_update(
        tenant=tenant, workflow=workflow, spec=spec, name=name, updated_by=created_by
    )
    return ImportResult(updated, report)


def workflow_export(source: Workflow | WorkflowVersion, *, include_secrets: bool = False) -> str:
    """Dify's YAML of a draft or version (secret values only when asked)."""
    workflow = source if isinstance(source, Workflow) else source.workflow
    spec = spec_of(source, secrets="decrypted" if include_secrets else "blank")
    app = {
        "name": workflow.name,
        "mode": str(workflow.mode),
        "icon": "🤖",
        "icon_background": "#FFEAD5",
        "description": workflow.description,
        "use_icon_as_answer_icon": False,
    }
    return dump_dsl(spec, app=app, include_secrets=include_secrets)
