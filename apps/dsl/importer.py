"""Import a Dify export as a new app (published when it can run) or as an app's new draft."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from tenants.context import tenant_context
from tenants.exceptions import InvalidInput, NotFound
from tenants.models import Tenant, User
from workflows.dsl import ImportReport, KnowledgeRetrievalData, ReportItem, WorkflowSpec
from workflows.dsl.dify import DslError, DslHeader, read_header, workflow_document
from workflows.services.definitions import workflow_update
from workflows.services.dsl_io import DslInvalid, map_models
from workflows.services.versions import WorkflowInvalid, check_runnable

from ..models import App
from ..services.apps import MAX_NAME, app_create, app_publish, app_update
from .model_config import missing_datasets, read_model_config

_ICON_TYPES = frozenset({"emoji", "link"})


def app_import(
    *,
    tenant: Tenant,
    content: str | bytes,
    name: str | None = None,
    app: App | None = None,
    created_by: User | None = None,
) -> tuple[App, ImportReport]:
    """A new app from a Dify export, published when it can run (or, with `app`, that app's
    draft replaced by the export, which must be of the same mode). Raises DslInvalid for a
    file that cannot be imported; nothing is written then."""
    header = _read(read_header, content)
    mode = _mode(header.app)
    if app is not None:
        if app.tenant_id != tenant.pk:
            raise NotFound("No such app.")
        if app.mode != mode:
            raise InvalidInput(
                f"app: this export is a {mode} app and “{app.name}” is a {app.mode} app; "
                "only an export of the same mode can replace its draft."
            )
    with transaction.atomic(), tenant_context(tenant):
        spec: WorkflowSpec | None = None
        config: dict[str, Any] | None = None
        if mode in App.WORKFLOW_MODES:
            spec, report = _workflow_part(tenant, header)
        else:
            config, report = read_model_config(header, mode)
        if app is None:
            imported = _create(tenant, header.app, mode, name, spec, config, report, created_by)
        else:
            imported = _replace(tenant, app, name, spec, config, report, created_by)
    return imported, report


def _read(reader: Callable[[Any], Any], value: Any) -> Any:
    try:
        return reader(value)
    except DslError as exc:
        raise DslInvalid(str(exc)) from None


def _mode(header_app: dict[str, Any]) -> str:
    mode = header_app.get("mode")
    if mode not in App.Mode.values:
        raise DslInvalid(
            f"app.mode must be one of {', '.join(App.Mode.values)}, got {mode!r}"
            if mode is not None
            else "app.mode is missing: the DSL does not say what kind of app it is"
        )
    return str(mode)


def _create(
    tenant: Tenant,
    header_app: dict[str, Any],
    mode: str,
    name: str | None,
    spec: WorkflowSpec | None,
    config: dict[str, Any] | None,
    report: ImportReport,
    created_by: User | None,
) -> App:
    icon, icon_type, background = _look(header_app, report)
    created = app_create(
        tenant=tenant,
        name=name if name is not None else _free_name(header_app, mode, report),
        mode=mode,
        description=str(header_app.get("description") or ""),
        icon=icon,
        icon_background=background,
        config=config,
        spec=spec,
        created_by=created_by,
    )
    if created.icon_type != icon_type:
        created.icon_type = icon_type
        created.save(update_fields=["icon_type"])
    try:
        app_publish(tenant=tenant, app=created, note="Imported", created_by=created_by)
    except WorkflowInvalid as exc:
        report.warnings.append(
            ReportItem("not_published", f"imported as a draft, not published: {exc.message}")
        )
    created.refresh_from_db()
    return created


def _replace(
    tenant: Tenant,
    app: App,
    name: str | None,
    spec: WorkflowSpec | None,
    config: dict[str, Any] | None,
    report: ImportReport,
    created_by: User | None,
) -> App:
    if spec is not None:
        assert app.workflow is not None  # noqa: S101 - workflow modes always have one
        workflow = workflow_update(
            tenant=tenant, workflow=app.workflow, spec=spec, updated_by=created_by
        )
        try:
            check_runnable(workflow)
        except WorkflowInvalid as exc:
            report.warnings.append(
                ReportItem("not_published", f"the new draft cannot be published: {exc.message}")
            )
    return app_update(tenant=tenant, app=app, name=name, config=config, updated_by=created_by)


def _free_name(header_app: dict[str, Any], mode: str, report: ImportReport) -> str:
    """The export's app name, numbered when the tenant has an app of that name already."""
    base = str(header_app.get("name") or "").strip()[:MAX_NAME] or f"Imported {mode} app"
    candidate, number = base, 1
    while App.objects.filter(name=candidate).exists():
        number += 1
        candidate = f"{base[: MAX_NAME - 8]} ({number})"
    if candidate != base:
        report.warnings.append(
            ReportItem(
                "mapped", f"an app called “{base}” exists: named “{candidate}”", field="name"
            )
        )
    return candidate


def _look(header_app: dict[str, Any], report: ImportReport) -> tuple[str, str, str]:
    """The icon, its type and background the app keeps from the export."""
    icon_type = str(header_app.get("icon_type") or "emoji")
    icon = str(header_app.get("icon") or "")
    background = header_app.get("icon_background")
    background = background if isinstance(background, str) and len(background) <= 16 else ""
    if icon_type not in _ICON_TYPES or len(icon) > 255:
        report.warnings.append(
            ReportItem(
                "left_out",
                f"the {icon_type} icon is not in the export: the app has the default icon",
                field="app.icon",
            )
        )
        icon, icon_type = "", "emoji"
    if header_app.get("use_icon_as_answer_icon"):
        report.warnings.append(
            ReportItem(
                "left_out",
                "use_icon_as_answer_icon is not kept (Weft shows its own answer icon)",
                field="app.use_icon_as_answer_icon",
            )
        )
    return icon, icon_type, background


# Workflow and chatflow apps


def _workflow_part(tenant: Tenant, header: DslHeader) -> tuple[WorkflowSpec, ImportReport]:
    document = _read(workflow_document, header)
    if not document.workflow.graph.nodes:
        raise DslInvalid("the workflow has no nodes")
    report = document.report
    spec = map_models(tenant, document.workflow, report)
    for node in spec.graph.nodes:
        if isinstance(node.data, KnowledgeRetrievalData):
            for missing in missing_datasets(node.data.dataset_ids):
                report.warnings.append(
                    ReportItem(
                        "dataset_missing",
                        f"node {node.id}: dataset {missing} is not one of this tenant's "
                        "datasets; the node leaves it out when it runs",
                        node_id=node.id,
                        field="data.dataset_ids",
                    )
                )
    return spec, report
