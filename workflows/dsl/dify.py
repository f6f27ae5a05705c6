"""Read and write the `workflow` part of Dify's app DSL (YAML, versions 0.1.0 to 0.x).

Export writes version 0.5.0 (Dify 1.11): the shape Weft reads and writes is that version's,
and Dify still reads every legacy form this DSL keeps (0.1.x if-else, assigner version 1),
so a newer Dify imports the file without asking, and an older 1.x asks to confirm once.
Keys are sorted and Unicode written as is, exactly as Dify's own `yaml.dump` does, so an
export of an imported Dify file differs from the original only where Weft changed it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
import yaml

from .graph import WorkflowSpec
from .report import ImportReport, ReportItem, spec_warnings

CURRENT_DSL_VERSION = "0.5.0"
MAX_DSL_BYTES = 10 * 1024 * 1024
DEFAULT_VERSION = "0.1.0"
WORKFLOW_APP_MODES = frozenset({"workflow", "advanced-chat"})
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
_HEADER_KEYS = frozenset({"version", "kind", "app", "workflow", "dependencies"})


class DslError(ValueError):
    """A DSL that cannot be imported; `line` (1-based) where the YAML parser gives one."""

    def __init__(self, message: str, *, line: int | None = None, errors: Sequence[str] = ()):
        self.line = line
        self.errors = list(errors)
        super().__init__(message)


@dataclass
class DslDocument:
    """An imported app DSL: its header, the workflow and the import's report."""

    version: str
    kind: str
    app: dict[str, Any]
    dependencies: list[dict[str, Any]]
    workflow: WorkflowSpec
    report: ImportReport


# libyaml's parser when PyYAML has it: three times faster on the largest (10 MB) files.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(yaml.SafeDumper):
    """Never writes anchors, even when two values are the same object."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def parse_version(version: Any) -> tuple[int, int, int]:
    """A DSL version string as (major, minor, patch)."""
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        raise DslError(f'version must be a string like "0.1.5", got {version!r}')
    major, minor, patch = (int(part or 0) for part in match.groups())
    return major, minor, patch


@dataclass
class DslHeader:
    """A DSL document read and its header checked; its body (`workflow`, or the
    `model_config` of chat, agent-chat and completion apps) not yet read."""

    data: dict[str, Any]
    version: str
    kind: str
    app: dict[str, Any]
    warnings: list[ReportItem]


def read_header(content: str | bytes) -> DslHeader:
    """Read a DSL document and check what every app mode shares (size, UTF-8, YAML without
    aliases, version, kind, the `app` mapping); raise DslError otherwise."""
    raw = content.encode() if isinstance(content, str) else content
    if len(raw) > MAX_DSL_BYTES:
        raise DslError(f"the DSL is {len(raw)} bytes; at most {MAX_DSL_BYTES} (10 MB) are accepted")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DslError(f"the DSL is not UTF-8 text (byte {error.start})") from error
    data = _parse_yaml(text)
    warnings: list[ReportItem] = []
    version = _read_version(data, warnings)
    kind = data.get("kind")
    if kind is None:
        kind = "app"
        warnings.append(ReportItem("mapped", "kind missing, read as app", field="kind"))
    elif kind != "app":
        raise DslError(f"kind must be app, got {kind!r}")
    app = data.get("app")
    if not isinstance(app, dict):
        raise DslError("the DSL has no `app` mapping")
    return DslHeader(data, version, kind, app, warnings)


def load_dsl(content: str | bytes) -> DslDocument:
    """Read a Dify app DSL; raise DslError when it cannot be imported."""
    return workflow_document(read_header(content))


def workflow_document(header: DslHeader) -> DslDocument:
    """The workflow app a checked header introduces; DslError when it has no workflow."""
    data, app, warnings = header.data, header.app, header.warnings
    workflow = data.get("workflow")
    if not isinstance(workflow, dict):
        raise DslError(
            f"the DSL has no `workflow` section: this is a {app.get('mode')} app; only "
            "workflow and chatflow (advanced-chat) apps can be imported"
        )
    if app.get("mode") not in WORKFLOW_APP_MODES:
        warnings.append(
            ReportItem("mapped", f"app mode {app.get('mode')!r} is not workflow or advanced-chat")
        )
    dependencies = read_dependencies(data.get("dependencies"), warnings)
    for key in sorted(set(data) - _HEADER_KEYS, key=str):
        warnings.append(ReportItem("left_out", f"top-level key {key!r} is not imported", field=key))
    spec = _read_workflow(workflow)
    warnings.extend(spec_warnings(spec))
    report = ImportReport(
        version=header.version,
        kind=header.kind,
        app=app,
        dependencies=[dependency_name(item) for item in dependencies],
        warnings=warnings,
    )
    return DslDocument(header.version, header.kind, app, dependencies, spec, report)


def _parse_yaml(text: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        where = f" at line {line}" if line else ""
        raise DslError(f"malformed YAML{where}: {error.problem or error}", line=line) from error
    except yaml.YAMLError as error:
        raise DslError(f"malformed YAML: {error}") from error
    if not isinstance(data, dict):
        raise DslError(f"the DSL must be a YAML mapping, got {type(data).__name__}")
    _refuse_aliases(data)
    return data


def _refuse_aliases(data: dict[str, Any]) -> None:
    """Refuse a mapping or list that appears twice: Dify never writes YAML aliases, and they
    can multiply a small file into a tree too large to walk (the billion laughs)."""
    seen: set[int] = set()
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        if id(value) in seen:
            raise DslError("YAML aliases (&anchor … *alias) of mappings or lists are not allowed")
        seen.add(id(value))
        children = value.values() if isinstance(value, dict) else value
        stack.extend(child for child in children if isinstance(child, dict | list))


def _read_version(data: dict[str, Any], warnings: list[ReportItem]) -> str:
    version = data.get("version")
    if version is None or version == "":  # Dify reads an empty version as missing too
        warnings.append(
            ReportItem("mapped", f"version missing, read as {DEFAULT_VERSION}", field="version")
        )
        return DEFAULT_VERSION
    major, minor, _ = parse_version(version)
    current = parse_version(CURRENT_DSL_VERSION)
    if major > current[0]:
        raise DslError(
            f"DSL version {version} is newer than this importer reads "
            f"({current[0]}.x, up to {CURRENT_DSL_VERSION}); export it from Dify as {current[0]}.x"
        )
    if (major, minor) > current[:2]:
        warnings.append(
            ReportItem(
                "newer_version",
                f"DSL version {version} is newer than {CURRENT_DSL_VERSION}; "
                "fields this importer does not know are reported below",
                field="version",
            )
        )
    return str(version)


def read_dependencies(value: Any, warnings: list[ReportItem]) -> list[dict[str, Any]]:
    """The `dependencies` list, each plugin reported as left out; DslError when malformed."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise DslError("`dependencies` must be a list of mappings")
    for item in value:
        warnings.append(
            ReportItem(
                "left_out",
                f"plugin dependency {dependency_name(item)} is not installed by Weft "
                "(models map to the tenant's providers)",
                field="dependencies",
            )
        )
    return value


def dependency_name(item: Mapping[str, Any]) -> str:
    """A plugin dependency as one string (its unique identifier where it has one)."""
    value = item.get("value")
    if isinstance(value, Mapping):
        for key in ("marketplace_plugin_unique_identifier", "plugin_unique_identifier", "repo"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return str(item.get("type", "?"))


def _read_workflow(workflow: dict[str, Any]) -> WorkflowSpec:
    try:
        return WorkflowSpec.model_validate(workflow)
    except pydantic.ValidationError as error:
        errors = [_describe(workflow, detail) for detail in error.errors()]
        shown = "; ".join(errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise DslError(f"invalid workflow: {shown}{more}", errors=errors) from error


def _describe(workflow: dict[str, Any], detail: Any) -> str:
    """One pydantic error as `node <id> (<type>): data.<field>: <message>`."""
    loc = list(detail["loc"])
    message = detail["msg"]
    if loc[:2] not in (["graph", "nodes"], ["graph", "edges"]) or len(loc) < 3:
        return f"workflow.{_path(loc)}: {message}"
    graph = workflow.get("graph")
    items = graph.get(loc[1]) if isinstance(graph, dict) else None
    item = items[loc[2]] if isinstance(items, list) and isinstance(loc[2], int) else None
    item = item if isinstance(item, dict) else {}
    label = f"{'node' if loc[1] == 'nodes' else 'edge'} {item.get('id', f'#{loc[2]}')}"
    rest = loc[3:]
    data = item.get("data")
    if loc[1] == "nodes" and rest[:1] == ["data"] and len(rest) > 1 and isinstance(data, dict):
        rest = ["data", *rest[2:]]  # without the union's tag
        label += f" ({data.get('type')})"
    return f"{label}: {_path(rest) or '(itself)'}: {message}"


def _path(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def dump_dsl(
    spec: WorkflowSpec,
    *,
    app: Mapping[str, Any],
    dependencies: Sequence[Mapping[str, Any]] = (),
    include_secrets: bool = False,
) -> str:
    """Dify's app DSL for a workflow; secret environment values are blanked unless asked."""
    workflow = spec.model_dump(exclude_unset=True)
    workflow["graph"] = spec.graph.model_dump(exclude_unset=True)
    workflow["features"] = dict(spec.features)
    workflow["environment_variables"] = [
        _export_variable(variable.model_dump(exclude_unset=True), include_secrets)
        for variable in spec.environment_variables
    ]
    workflow["conversation_variables"] = [
        variable.model_dump(exclude_unset=True) for variable in spec.conversation_variables
    ]
    document = {
        "app": dict(app),
        "dependencies": [dict(item) for item in dependencies],
        "kind": "app",
        "version": CURRENT_DSL_VERSION,
        "workflow": workflow,
    }
    return dump_yaml(document)


def dump_yaml(document: Mapping[str, Any]) -> str:
    """YAML as Dify's export writes it: keys sorted, Unicode as is, no anchors."""
    return yaml.dump(dict(document), Dumper=_Dumper, allow_unicode=True, sort_keys=True)


def _export_variable(variable: dict[str, Any], include_secrets: bool) -> dict[str, Any]:
    if variable.get("value_type") == "secret" and not include_secrets:
        variable["value"] = ""
    return variable
