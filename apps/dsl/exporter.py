"""Export an app (its draft or a published version) as Dify's DSL."""

from __future__ import annotations

import copy

from tenants.context import tenant_context
from tenants.exceptions import NotFound
from workflows.dsl import CURRENT_DSL_VERSION, dump_dsl
from workflows.dsl.dify import dump_yaml
from workflows.services.definitions import spec_of

from ..models import App, AppVersion
from .model_config import agent_tools


def app_export(
    app: App, *, version: int | AppVersion | None = None, include_secrets: bool = False
) -> str:
    """Dify's YAML of the app's draft, or of a published version (by number). Secret
    environment values and tool credential ids are left out unless asked for."""
    with tenant_context(app.tenant):
        chosen = _version(app, version)
        header = {
            "name": str(app.name),
            "mode": str(app.mode),  # a Mode member on an app just made
            "icon": str(app.icon),
            "icon_type": str(app.icon_type),
            "icon_background": str(app.icon_background),
            "description": str(app.description),
            "use_icon_as_answer_icon": False,
        }
        if app.runs_workflow:
            source = chosen.workflow_version if chosen is not None else app.workflow
            assert source is not None  # noqa: S101 - workflow modes always have one
            spec = spec_of(source, secrets="decrypted" if include_secrets else "blank")
            return dump_dsl(spec, app=header, include_secrets=include_secrets)
        config = copy.deepcopy(chosen.config if chosen is not None else app.config)
    if not include_secrets:
        for tool in agent_tools(config):
            if isinstance(tool, dict):
                tool.pop("credential_id", None)
    document = {
        "app": header,
        "dependencies": [],
        "kind": "app",
        "model_config": config,
        "version": CURRENT_DSL_VERSION,
    }
    return dump_yaml(document)


def _version(app: App, version: int | AppVersion | None) -> AppVersion | None:
    if version is None:
        return None
    if isinstance(version, AppVersion):
        if version.app_id != app.pk:
            raise NotFound("No such version.")
        return version
    found = (
        AppVersion.objects.filter(app=app, number=version)
        .select_related("workflow_version")
        .first()
    )
    if found is None:
        raise NotFound(f"The app has no version {version}.")
    return found
