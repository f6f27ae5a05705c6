"""Apps and their versions: create (with a graph that runs for chatflow and workflow apps),
change, delete, publish, roll back, compare, and what a request runs (`runnable`)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max

from billing import quota
from billing.models import Metric
from tenants.context import tenant_context
from tenants.exceptions import Conflict, InvalidInput, NotFound
from tenants.models import ApiKey, Tenant, User
from workflows.dsl import WorkflowSpec
from workflows.models import Workflow, WorkflowVersion
from workflows.services.definitions import parse_spec, spec_of, workflow_create, workflow_update
from workflows.services.versions import workflow_publish, workflow_rollback

from ..config import AppConfig, Features, dump, parse_config, parse_features
from ..models import App, AppVersion, UploadFile
from .sites import site_create

OFFLINE_MODEL = {"provider": "weft", "name": "weft-offline-chat", "mode": "chat"}
MAX_NAME = 255


class AppUnavailable(InvalidInput):
    """The app cannot answer requests now (never published, API off)."""

    code = "app_unavailable"


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("name: this field is required.")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"name: at most {MAX_NAME} characters.")
    return name


def _node(node_id: str, kind: str, title: str, **data: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "custom",
        "position": {"x": 80 + 300 * ["start", "llm", "answer", "end"].index(node_id), "y": 200},
        "data": {"type": kind, "title": title, "desc": "", **data},
    }


def _edge(source: str, target: str) -> dict[str, Any]:
    return {
        "id": f"{source}-source-{target}-target",
        "type": "custom",
        "source": source,
        "sourceHandle": "source",
        "target": target,
        "targetHandle": "target",
        "data": {"sourceType": "", "targetType": ""},
    }


def starter_spec(mode: str) -> WorkflowSpec:
    """The graph a new chatflow or workflow app starts with, which runs at once on the
    built-in model: start → LLM → answer (chatflow) or end (workflow)."""
    llm = {
        "model": {**OFFLINE_MODEL, "completion_params": {}},
        "prompt_template": [
            {"role": "system", "text": "You are a helpful assistant."},
            {
                "role": "user",
                "text": "{{#sys.query#}}" if mode == App.Mode.CHATFLOW else "{{#start.query#}}",
            },
        ],
        "context": {"enabled": False, "variable_selector": []},
        "vision": {"enabled": False},
    }
    if mode == App.Mode.CHATFLOW:
        llm["memory"] = {"window": {"enabled": True, "size": 10}, "query_prompt_template": ""}
        nodes = [
            _node("start", "start", "Start", variables=[]),
            _node("llm", "llm", "LLM", **llm),
            _node("answer", "answer", "Answer", answer="{{#llm.text#}}"),
        ]
        edges = [_edge("start", "llm"), _edge("llm", "answer")]
    else:
        start_vars = [
            {"variable": "query", "label": "Query", "type": "paragraph", "required": True}
        ]
        nodes = [
            _node("start", "start", "Start", variables=start_vars),
            _node("llm", "llm", "LLM", **llm),
            _node(
                "end",
                "end",
                "End",
                outputs=[{"variable": "text", "value_selector": ["llm", "text"]}],
            ),
        ]
        edges = [_edge("start", "llm"), _edge("llm", "end")]
    return parse_spec({"graph": {"nodes": nodes, "edges": edges}, "features": {}})


def starter_config() -> dict[str, Any]:
    """The config a new chat, agent or completion app starts with (the built-in model)."""
    return dump(AppConfig.model_validate({"model": {**OFFLINE_MODEL, "completion_params": {}}}))


def app_create(
    *,
    tenant: Tenant,
    name: str,
    mode: str,
    description: str = "",
    icon: str = "",
    icon_background: str = "",
    config: dict[str, Any] | None = None,
    spec: WorkflowSpec | None = None,
    created_by: User | None = None,
) -> App:
    """A new app: a chat, agent or completion app with `config` (the built-in model's when
    not given), or a chatflow or workflow app with its own workflow (`spec`, else a starter
    graph)."""
    name = _clean_name(name)
    if mode not in App.Mode.values:
        raise InvalidInput(f"mode: “{mode}” is not one of {', '.join(App.Mode.values)}.")
    with transaction.atomic(), tenant_context(tenant):
        if App.objects.filter(name=name).exists():
            raise Conflict(f"name: an app called “{name}” already exists.")
        quota.capacity(tenant, Metric.APPS)
        app = App(
            tenant=tenant,
            name=name,
            mode=mode,
            description=description,
            created_by=created_by,
            updated_by=created_by,
        )
        if icon:
            app.icon = icon[:255]
        if icon_background:
            app.icon_background = icon_background[:16]
        if mode in App.WORKFLOW_MODES:
            app.workflow = workflow_create(
                tenant=tenant,
                name=_workflow_name(name),
                description=description,
                mode=mode,
                spec=spec or starter_spec(mode),
                created_by=created_by,
            )
        else:
            app.config = dump(parse_config(config)) if config is not None else starter_config()
        try:
            app.save()
        except IntegrityError:
            raise Conflict(f"name: an app called “{name}” already exists.") from None
        site_create(app=app)
    return app


def _workflow_name(app_name: str) -> str:
    """The name of an app's own workflow: the app's, made unique among workflows."""
    base = app_name[: MAX_NAME - 12]
    candidate, number = base, 1
    while Workflow.objects.filter(name=candidate).exists():
        number += 1
        candidate = f"{base} (app {number})"
    return candidate


def app_update(
    *,
    tenant: Tenant,
    app: App,
    name: str | None = None,
    description: str | None = None,
    icon: str | None = None,
    icon_background: str | None = None,
    enable_api: bool | None = None,
    enable_site: bool | None = None,
    config: dict[str, Any] | None = None,
    features: dict[str, Any] | None = None,
    max_active_requests: int | None = None,
    api_rpm: int | None = None,
    end_user_rpm: int | None = None,
    updated_by: User | None = None,
) -> App:
    """Change an app's settings and draft. `config` is the draft of a chat, agent or
    completion app; `features` those of a chatflow or workflow app's workflow."""
    if app.tenant_id != tenant.pk:
        raise NotFound("No such app.")
    with transaction.atomic(), tenant_context(tenant):
        current = App.objects.select_for_update().get(pk=app.pk)
        if name is not None:
            name = _clean_name(name)
            if App.objects.filter(name=name).exclude(pk=current.pk).exists():
                raise Conflict(f"name: an app called “{name}” already exists.")
            current.name = name
        for field, value in (
            ("description", description),
            ("icon", icon),
            ("icon_background", icon_background),
            ("enable_api", enable_api),
            ("enable_site", enable_site),
        ):
            if value is not None:
                setattr(current, field, value)
        for field, limit in (
            ("max_active_requests", max_active_requests),
            ("api_rpm", api_rpm),
            ("end_user_rpm", end_user_rpm),
        ):
            if limit is not None:
                if (
                    not isinstance(limit, int)
                    or isinstance(limit, bool)
                    or not 0 <= limit <= 1_000_000
                ):
                    raise InvalidInput(f"{field}: a whole number from 0 to 1,000,000.")
                setattr(current, field, limit)
        if config is not None:
            if current.runs_workflow:
                raise InvalidInput(
                    "model_config: a chatflow or workflow app is configured by its workflow; "
                    "send `features`."
                )
            current.config = dump(parse_config(config))
        if features is not None:
            if not current.runs_workflow:
                raise InvalidInput("features: only chatflow and workflow apps have features.")
            workflow = current.workflow
            assert workflow is not None  # noqa: S101 - workflow modes always have one
            spec = spec_of(workflow, secrets="blank")
            spec = spec.model_copy(update={"features": dump(parse_features(features))})
            workflow_update(tenant=tenant, workflow=workflow, spec=spec, updated_by=updated_by)
        current.updated_by = updated_by
        current.save()
    return current


def app_delete(*, tenant: Tenant, app: App) -> None:
    """Delete an app with its conversations, messages and versions, its keys and its
    workflow."""
    if app.tenant_id != tenant.pk:
        raise NotFound("No such app.")
    with transaction.atomic(), tenant_context(tenant):
        workflow_id = app.workflow_id
        # The uploads' rows go with the app; their files once that is certain.
        stored = list(UploadFile.objects.filter(app=app).values_list("storage_key", flat=True))
        transaction.on_commit(lambda: _delete_files(stored))
        ApiKey.objects.filter(kind=ApiKey.Kind.APP, app_id=app.pk).delete()
        App.objects.filter(pk=app.pk).update(published_version=None)
        AppVersion.objects.filter(app=app).delete()
        app.delete()
        if workflow_id is not None:
            Workflow.objects.filter(pk=workflow_id).delete()


def _delete_files(keys: list[str]) -> None:
    for key in keys:
        default_storage.delete(key)


def checksum(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def app_publish(
    *, tenant: Tenant, app: App, note: str = "", created_by: User | None = None
) -> AppVersion:
    """Publish the draft as the next version and make it the one requests run. An unchanged
    draft publishes nothing and gives the latest version back."""
    if app.tenant_id != tenant.pk:
        raise NotFound("No such app.")
    with transaction.atomic(), tenant_context(tenant):
        current = App.objects.select_for_update().get(pk=app.pk)
        latest = current.versions.order_by("-number").first()
        workflow_version = None
        if current.runs_workflow:
            assert current.workflow is not None  # noqa: S101
            workflow_version = workflow_publish(
                tenant=tenant, workflow=current.workflow, note=note, created_by=created_by
            )
            config: dict[str, Any] = {}
            digest = workflow_version.checksum
        else:
            config = dump(parse_config(current.config))
            digest = checksum(config)
        if latest is not None and latest.checksum == digest and not note:
            if current.published_version_id != latest.pk:
                current.published_version = latest
                current.save(update_fields=["published_version"])
            return latest
        version = AppVersion.objects.create(
            app=current,
            number=(latest.number if latest else 0) + 1,
            config=config,
            workflow_version=workflow_version,
            checksum=digest,
            note=note,
            created_by=created_by,
        )
        current.published_version = version
        current.save(update_fields=["published_version", "updated_at"])
    return version


def app_rollback(
    *,
    tenant: Tenant,
    app: App,
    version: AppVersion,
    note: str = "",
    created_by: User | None = None,
) -> AppVersion:
    """Publish a copy of an older version (and make it the draft too); its note says so
    unless one is given."""
    if app.tenant_id != tenant.pk or version.app_id != app.pk:
        raise NotFound("No such version.")
    with transaction.atomic(), tenant_context(tenant):
        current = App.objects.select_for_update().get(pk=app.pk)
        number = (current.versions.aggregate(top=Max("number"))["top"] or 0) + 1
        workflow_version = None
        if current.runs_workflow:
            assert current.workflow is not None  # noqa: S101 - workflow modes have one
            assert version.workflow_version is not None  # noqa: S101
            workflow_version = workflow_rollback(
                tenant=tenant,
                workflow=current.workflow,
                version=version.workflow_version,
                created_by=created_by,
            )
        else:
            current.config = version.config
        copy = AppVersion.objects.create(
            app=current,
            number=number,
            config=version.config,
            workflow_version=workflow_version,
            checksum=version.checksum if workflow_version is None else workflow_version.checksum,
            note=note or f"Rollback to version {version.number}",
            restored_from=version.number,
            created_by=created_by,
        )
        current.published_version = copy
        current.save(update_fields=["published_version", "config", "updated_at"])
    return copy


@dataclass(frozen=True)
class Runnable:
    """What one request runs: the app, the version (None: the draft, console debugging
    only), and its settings."""

    app: App
    version: AppVersion | None
    config: AppConfig | None  # chat, agent-chat and completion apps
    features: Features
    workflow_version: WorkflowVersion | None  # chatflow and workflow apps (published)


def runnable(app: App, *, version_id: Any = None, draft: bool = False) -> Runnable:
    """The published version of `app` (or the version `version_id` names: an app version's
    id, or, for chatflow and workflow apps, a workflow version's); the draft when `draft`.
    Raises AppUnavailable when there is nothing to run, NotFound for an unknown version."""
    version: AppVersion | None
    if draft:
        version = None
    elif version_id:
        with tenant_context(app.tenant):
            version = _version_named(app, version_id)
    else:
        version = app.published_version
        if version is None:
            raise AppUnavailable("The app has not been published yet: publish it first.")
    if app.runs_workflow:
        if version is None:
            assert app.workflow is not None  # noqa: S101
            spec = spec_of(app.workflow, secrets="blank")
            return Runnable(app, None, None, parse_features(spec.features), None)
        workflow_version = version.workflow_version
        assert workflow_version is not None  # noqa: S101
        features = parse_features(workflow_version.features or {})
        return Runnable(app, version, None, features, workflow_version)
    config = parse_config(version.config if version is not None else app.config)
    return Runnable(app, version, config, config, None)


def _version_named(app: App, version_id: Any) -> AppVersion:
    try:
        pk = uuid.UUID(str(version_id))
    except ValueError:
        raise NotFound("Workflow not found.") from None
    found = (
        AppVersion.objects.filter(app=app)
        .select_related("workflow_version__workflow")
        .filter(pk=pk)
        .first()
    )
    if found is None and app.runs_workflow:
        found = (
            AppVersion.objects.filter(app=app, workflow_version_id=pk)
            .select_related("workflow_version__workflow")
            .order_by("-number")
            .first()
        )
    if found is None:
        raise NotFound("Workflow not found.")
    return found
