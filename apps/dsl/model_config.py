"""Read the `model_config` of a chat, agent-chat or completion export, mapping what the
tenant lacks: its model, datasets and agent tools. Dify reads a null value as not set; so
does this reader."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from knowledge.models import Dataset
from providers.models import ModelKind
from providers.selectors import default_model
from tenants.exceptions import InvalidInput
from workflows.dsl import ImportReport, ReportItem
from workflows.dsl.dify import DslError, DslHeader, dependency_name, read_dependencies
from workflows.services.dsl_io import DslInvalid, model_usable
from workflows.tools import registry as tool_registry

from ..config import INPUT_TYPES, dump, parse_config

_DOCUMENT_KEYS = frozenset({"version", "kind", "app", "model_config", "dependencies"})


def read_model_config(header: DslHeader, mode: str) -> tuple[dict[str, Any], ImportReport]:
    """The config to store (checked, what the tenant lacks mapped) and the import's report;
    DslInvalid when the export has no usable `model_config` (tenant context required)."""
    data, warnings = header.data, header.warnings
    raw = data.get("model_config")
    if not isinstance(raw, dict) or not raw:
        raise DslInvalid(f"the DSL has no `model_config`: a {mode} app is configured by it")
    try:
        dependencies = read_dependencies(data.get("dependencies"), warnings)
    except DslError as exc:
        raise DslInvalid(str(exc)) from None
    for key in sorted(set(data) - _DOCUMENT_KEYS, key=str):
        warnings.append(ReportItem("left_out", f"top-level key {key!r} is not imported", field=key))
    config = _without_nulls(raw)
    for step in (_form, _legacy_file_upload, _legacy_dataset_tools, _datasets, _tools, _model):
        step(config, warnings)
    try:
        parsed = parse_config(config)
    except InvalidInput as exc:
        raise DslInvalid(exc.message) from None
    for key, value in (parsed.model_extra or {}).items():
        if value:
            warnings.append(
                ReportItem(
                    "unknown_field",
                    f"model_config.{key} is kept but not used by Weft",
                    field=f"model_config.{key}",
                )
            )
    moderation = parsed.sensitive_word_avoidance
    if moderation.enabled and moderation.type != "keywords":
        warnings.append(
            ReportItem(
                "left_out",
                f"moderation of type {moderation.type!r} is kept but not applied: Weft applies "
                "keyword lists",
                field="model_config.sensitive_word_avoidance",
            )
        )
    report = ImportReport(
        version=header.version,
        kind=header.kind,
        app=header.app,
        dependencies=[dependency_name(item) for item in dependencies],
        warnings=warnings,
    )
    return dump(parsed), report


def _without_nulls(config: dict[str, Any]) -> dict[str, Any]:
    """A copy without null values in the config and its blocks: Dify reads null as not set."""
    copied = {}
    for key, value in config.items():
        if isinstance(value, dict):
            value = {k: copy.deepcopy(v) for k, v in value.items() if v is not None}
        if value is not None:
            copied[key] = copy.deepcopy(value)
    return copied


def _form(config: dict[str, Any], warnings: list[ReportItem]) -> None:
    """Input fields of types Weft has not (Dify's external data tool inputs) are left out."""
    form = config.get("user_input_form")
    if not isinstance(form, list):
        return
    kept = []
    for item in form:
        kind = next(iter(item)) if isinstance(item, dict) and len(item) == 1 else None
        if kind is None or kind in INPUT_TYPES:
            kept.append(item)  # malformed items are left for the config check to name
            continue
        field = item[kind] if isinstance(item[kind], dict) else {}
        warnings.append(
            ReportItem(
                "left_out",
                f"input {field.get('variable')!r} of type {kind!r} is left out: the input "
                f"types are {', '.join(INPUT_TYPES)}",
                field="model_config.user_input_form",
            )
        )
    config["user_input_form"] = kept


def _legacy_file_upload(config: dict[str, Any], warnings: list[ReportItem]) -> None:
    """Dify before 0.10 allowed only images, under `file_upload.image`."""
    upload = config.get("file_upload")
    image = upload.get("image") if isinstance(upload, dict) else None
    if not isinstance(upload, dict) or "enabled" in upload or not isinstance(image, dict):
        return
    if image.get("enabled"):
        upload["enabled"] = True
        upload["allowed_file_types"] = ["image"]
        upload["number_limits"] = image.get("number_limits", 3)
        if isinstance(image.get("transfer_methods"), list):
            upload["allowed_file_upload_methods"] = image["transfer_methods"]
        warnings.append(
            ReportItem(
                "legacy_form",
                "file_upload.image (Dify before 0.10) read as image uploads",
                field="model_config.file_upload",
            )
        )


def agent_tools(config: dict[str, Any]) -> list[Any]:
    """`agent_mode.tools` of a config (empty when it has none)."""
    agent = config.get("agent_mode")
    tools = agent.get("tools") if isinstance(agent, dict) else None
    return tools if isinstance(tools, list) else []


def _dataset_items(config: dict[str, Any], *, create: bool = False) -> list[Any] | None:
    """`dataset_configs.datasets.datasets`, the list of `{dataset: {enabled, id}}`."""
    configs = config.setdefault("dataset_configs", {}) if create else config.get("dataset_configs")
    if not isinstance(configs, dict):
        return None
    holder = configs.setdefault("datasets", {}) if create else configs.get("datasets")
    if not isinstance(holder, dict):
        return None
    items = holder.setdefault("datasets", []) if create else holder.get("datasets")
    return items if isinstance(items, list) else None


def _legacy_dataset_tools(config: dict[str, Any], warnings: list[ReportItem]) -> None:
    """Older Dify listed an app's datasets among its agent tools as `{dataset: {...}}`."""
    tools = agent_tools(config)
    legacy = [tool for tool in tools if isinstance(tool, dict) and "dataset" in tool]
    if not legacy:
        return
    tools[:] = [tool for tool in tools if not any(tool is item for item in legacy)]
    items = _dataset_items(config, create=True)
    if items is None:
        return  # a malformed dataset_configs, named by the config check
    listed = {_dataset_id(item) for item in items}
    items.extend({"dataset": tool["dataset"]} for tool in legacy if _dataset_id(tool) not in listed)
    warnings.append(
        ReportItem(
            "legacy_form",
            f"{len(legacy)} dataset(s) listed among agent_mode.tools (older Dify) read into "
            "dataset_configs",
            field="model_config.agent_mode.tools",
        )
    )


def _dataset_id(item: Any) -> Any:
    dataset = item.get("dataset") if isinstance(item, dict) else None
    return dataset.get("id") if isinstance(dataset, dict) else None


def _datasets(config: dict[str, Any], warnings: list[ReportItem]) -> None:
    items = _dataset_items(config)
    if not items:
        return
    missing = missing_datasets([_dataset_id(item) for item in items if _dataset_id(item)])
    if not missing:
        return
    items[:] = [item for item in items if _dataset_id(item) not in missing]
    for dataset_id in missing:
        warnings.append(
            ReportItem(
                "dataset_dropped",
                f"dataset {dataset_id} is not one of this tenant's datasets: left out of the "
                "app's knowledge",
                field="model_config.dataset_configs.datasets",
            )
        )


def _tools(config: dict[str, Any], warnings: list[ReportItem]) -> None:
    """Enabled agent tools Weft does not have are disabled (kept, so they can be set up)."""
    for index, tool in enumerate(agent_tools(config)):
        if not isinstance(tool, dict) or tool.get("enabled") is False:
            continue
        provider_id = str(tool.get("provider_id") or "")
        name = str(tool.get("tool_name") or "")
        if tool_registry.get(provider_id, name) is not None:
            continue
        tool["enabled"] = False
        kind = tool.get("provider_type") or "builtin"
        warnings.append(
            ReportItem(
                "tool_disabled",
                f"agent tool {provider_id or '?'}/{name or '?'} ({kind}) is not one of Weft's "
                "tools: disabled",
                field=f"model_config.agent_mode.tools[{index}]",
            )
        )


def _model(config: dict[str, Any], warnings: list[ReportItem]) -> None:
    """A model the tenant cannot call becomes its default chat model."""
    model = config.get("model")
    if not isinstance(model, dict):
        return
    if "mode" in model and model["mode"] not in ("chat", "completion"):
        warnings.append(
            ReportItem(
                "mapped", f"model mode {model['mode']!r} read as chat", field="model_config.model"
            )
        )
        model["mode"] = "chat"
    provider, name = str(model.get("provider") or ""), str(model.get("name") or "")
    if (not provider and not name) or model_usable(ModelKind.CHAT, provider, name):
        return
    default = default_model(ModelKind.CHAT)
    model["provider"], model["name"] = str(default.provider), default.name
    warnings.append(
        ReportItem(
            "model_mapped",
            f"{provider}/{name} is not set up in this tenant: using the default chat model "
            f"{default.name} instead.",
            field="model_config.model",
        )
    )


def missing_datasets(ids: list[Any]) -> list[Any]:
    """The ids among `ids` that name none of the tenant's datasets (malformed ones too)."""
    wanted: dict[str, uuid.UUID] = {}
    for value in ids:
        try:
            wanted[str(value)] = uuid.UUID(str(value))
        except ValueError:
            continue
    found = set(Dataset.objects.filter(pk__in=wanted.values()).values_list("pk", flat=True))
    return [value for value in ids if wanted.get(str(value)) not in found]
