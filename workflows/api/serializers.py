"""Input and output serializers of the workflows API. Inputs check types only; the draft's
shape is checked by the DSL (`parse_spec`), whose messages name the field path."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from rest_framework import serializers

from ..dsl import ImportReport, SpecDiff, ValidationError
from ..dsl.diff import ABSENT
from ..models import NodeExecution, Workflow, WorkflowRun, WorkflowVersion
from ..services import spec_of

SPEC_PARTS = ("graph", "features", "environment_variables", "conversation_variables")
SCHEMA_HINT = " Its JSON Schema: GET /api/workflows/schema."


def masked_variables(source: Workflow | WorkflowVersion) -> list[dict[str, Any]]:
    """Environment variables as shown: secret values masked."""
    return [
        variable.model_dump(mode="json", exclude_unset=True)
        for variable in spec_of(source, secrets="masked").environment_variables
    ]


def plain(value: Any) -> Any:
    """Dataclasses (diffs, reports) as JSON-ready values; a side a field is absent from is
    left out (`{"path", "new"}` is a field added)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: plain(getattr(value, field.name))
            for field in fields(value)
            if getattr(value, field.name) is not ABSENT
        }
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


# Workflows


class WorkflowRow(serializers.ModelSerializer):
    latest_version = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The newest published version; none yet."
    )

    class Meta:
        model = Workflow
        fields = [
            "id",
            "name",
            "description",
            "mode",
            "draft_checksum",
            "latest_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WorkflowOut(WorkflowRow):
    """The draft as Dify's DSL writes `workflow` (secret values masked)."""

    graph = serializers.JSONField(read_only=True)
    features = serializers.JSONField(read_only=True)
    environment_variables = serializers.SerializerMethodField(
        help_text="Secret values are masked; send a mask back unchanged to keep the secret."
    )
    conversation_variables = serializers.JSONField(read_only=True)

    class Meta(WorkflowRow.Meta):
        fields = [*WorkflowRow.Meta.fields, *SPEC_PARTS]
        read_only_fields = fields

    def get_environment_variables(self, workflow: Workflow) -> list[dict[str, Any]]:
        return masked_variables(workflow)


class SpecIn(serializers.Serializer):
    graph = serializers.JSONField(
        required=False, help_text="Nodes, edges and viewport, as in Dify's DSL." + SCHEMA_HINT
    )
    features = serializers.JSONField(required=False)
    environment_variables = serializers.JSONField(
        required=False,
        help_text="`[{name, value_type: string|number|secret, value}]`; secrets are stored "
        "encrypted.",
    )
    conversation_variables = serializers.JSONField(required=False)


class WorkflowCreate(SpecIn):
    name = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    mode = serializers.ChoiceField(choices=Workflow.Mode.choices, default=Workflow.Mode.WORKFLOW)


class WorkflowUpdate(SpecIn):
    name = serializers.CharField(max_length=255, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    expected_checksum = serializers.CharField(
        required=False,
        help_text="The draft_checksum you read: if someone saved since, the change is refused "
        "with 409 conflict.",
    )


# Import, export, validation


class ImportIn(serializers.Serializer):
    content = serializers.CharField(
        required=False, trim_whitespace=False, help_text="The Dify DSL (YAML) as text."
    )
    file = serializers.FileField(required=False, help_text="Or the DSL file (multipart).")
    name = serializers.CharField(
        max_length=255, required=False, help_text="Default: the app's name in the file."
    )
    workflow_id = serializers.UUIDField(
        required=False, help_text="Replace this workflow's draft instead of making a new one."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("content" in attrs) == ("file" in attrs):
            raise serializers.ValidationError(
                "Send the DSL as `content` or as `file`, one of the two."
            )
        return attrs


class ReportItemOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    node_id = serializers.CharField(allow_null=True)
    edge_id = serializers.CharField(allow_null=True)
    field = serializers.CharField(allow_null=True)


class ReportOut(serializers.Serializer):
    version = serializers.CharField(help_text="The DSL version the file declared.")
    warnings = ReportItemOut(many=True)

    def to_representation(self, instance: ImportReport) -> dict[str, Any]:
        return {"version": instance.version, "warnings": plain(instance.warnings)}


class ImportOut(serializers.Serializer):
    workflow = WorkflowOut()
    report = ReportOut()


class ValidationOut(serializers.Serializer):
    valid = serializers.BooleanField()
    # DRF's metaclass takes declared fields off the class: `errors` stays the property.
    errors = ReportItemOut(many=True)  # type: ignore[assignment]

    def to_representation(self, instance: list[ValidationError]) -> dict[str, Any]:
        return {"valid": not instance, "errors": plain(instance)}


# Versions


class VersionRow(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email", default=None, read_only=True)

    class Meta:
        model = WorkflowVersion
        fields = ["id", "number", "note", "checksum", "restored_from", "created_by", "created_at"]
        read_only_fields = fields


class VersionOut(VersionRow):
    graph = serializers.JSONField(read_only=True)
    features = serializers.JSONField(read_only=True)
    environment_variables = serializers.SerializerMethodField()
    conversation_variables = serializers.JSONField(read_only=True)

    class Meta(VersionRow.Meta):
        fields = [*VersionRow.Meta.fields, *SPEC_PARTS]
        read_only_fields = fields

    def get_environment_variables(self, version: WorkflowVersion) -> list[dict[str, Any]]:
        return masked_variables(version)


class NoteIn(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class DiffOut(serializers.Serializer):
    older = serializers.CharField(help_text="The older side: a version number, or `draft`.")
    newer = serializers.CharField(help_text="The newer side: a version number, or `draft`.")
    empty = serializers.BooleanField(help_text="True when both do the same thing.")
    changes = serializers.JSONField(
        help_text="nodes_added, nodes_removed, nodes_changed (with field changes "
        "`{path, old, new}`; a side where the field is absent is left out), edges_added, "
        "edges_removed, variables, features."
    )
    text = serializers.CharField(help_text="The same, as text for people.")

    def to_representation(self, instance: tuple[str, str, SpecDiff]) -> dict[str, Any]:
        older, newer, diff = instance
        return {
            "older": older,
            "newer": newer,
            "empty": diff.is_empty(),
            "changes": plain(diff),
            "text": diff.render(),
        }


# Runs


class RunRow(serializers.ModelSerializer):
    version = serializers.IntegerField(
        source="version_number", read_only=True, allow_null=True, help_text="Empty: the draft."
    )

    class Meta:
        model = WorkflowRun
        fields = [
            "id",
            "workflow_id",
            "version",
            "status",
            "triggered_from",
            "inputs",
            "outputs",
            "error",
            "elapsed_time",
            "total_steps",
            "total_tokens",
            "total_price",
            "currency",
            "exceptions_count",
            "trace_id",
            "created_by_end_user",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class NodeExecutionOut(serializers.ModelSerializer):
    class Meta:
        model = NodeExecution
        fields = [
            "id",
            "execution_id",
            "index",
            "node_id",
            "node_type",
            "title",
            "predecessor_node_id",
            "status",
            "inputs",
            "process_data",
            "outputs",
            "error",
            "error_type",
            "elapsed_time",
            "total_tokens",
            "total_price",
            "currency",
            "retry_index",
            "iteration_id",
            "iteration_index",
            "loop_id",
            "loop_index",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class PauseOut(serializers.Serializer):
    node_id = serializers.CharField(help_text="The human-input node waiting for an answer.")
    form = serializers.JSONField(help_text="What the person is asked.")


# The run statuses are an enum in RunRow's schema only: the same choices in several components
# would need an ENUM_NAME_OVERRIDES entry in the settings to be named without a warning.
def run_status() -> serializers.CharField:
    return serializers.CharField(
        read_only=True, help_text="One of: " + ", ".join(WorkflowRun.Status.values) + "."
    )


class RunOut(RunRow):
    status = run_status()
    node_executions = NodeExecutionOut(many=True, read_only=True)
    paused = serializers.SerializerMethodField(
        help_text="While the run waits for a person: the node and its form; else empty."
    )

    class Meta(RunRow.Meta):
        fields = [*RunRow.Meta.fields, "paused", "node_executions"]
        read_only_fields = fields

    def get_paused(self, run: WorkflowRun) -> dict[str, Any] | None:
        state = run.paused_state if run.status == WorkflowRun.Status.PAUSED else None
        if not state:
            return None
        return {"node_id": state.get("node_id"), "form": state.get("form") or {}}


class RunIn(serializers.Serializer):
    inputs = serializers.DictField(
        required=False, default=dict, help_text="The start node's variables by name."
    )
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=999_999_999,
        help_text="A published version; omitted: the draft.",
    )
    response_mode = serializers.ChoiceField(
        choices=["blocking", "streaming"],
        default="blocking",
        help_text="blocking: answer when the run ends; streaming: its events as they come.",
    )


class ResumeIn(serializers.Serializer):
    inputs = serializers.DictField(
        required=False, default=dict, help_text="The form's fields by output variable name."
    )
    action = serializers.CharField(
        required=False, help_text="The id of the button chosen (the branch to follow)."
    )
    response_mode = serializers.ChoiceField(
        choices=["async", "blocking"],
        default="async",
        help_text="async: answer 202 at once (follow GET …/events); blocking: when it ends.",
    )


class BlockingRunData(serializers.Serializer):
    id = serializers.UUIDField()
    workflow_id = serializers.UUIDField()
    status = run_status()
    outputs = serializers.JSONField()
    error = serializers.CharField(allow_null=True)
    elapsed_time = serializers.FloatField()
    total_tokens = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    created_at = serializers.IntegerField(help_text="Unix time.")
    finished_at = serializers.IntegerField(allow_null=True, help_text="Unix time.")


class BlockingRunOut(serializers.Serializer):
    """Dify's blocking answer of a workflow run."""

    task_id = serializers.UUIDField()
    workflow_run_id = serializers.UUIDField()
    # DRF's metaclass takes declared fields off the class: `data` stays the property.
    data = BlockingRunData()  # type: ignore[assignment]

    def to_representation(self, instance: WorkflowRun) -> dict[str, Any]:
        run = instance
        return {
            "task_id": str(run.pk),
            "workflow_run_id": str(run.pk),
            "data": {
                "id": str(run.pk),
                "workflow_id": str(run.workflow_id),
                "status": run.status,
                "outputs": run.outputs,
                "error": run.error or None,
                "elapsed_time": run.elapsed_time,
                "total_tokens": run.total_tokens,
                "total_steps": run.total_steps,
                "created_at": int(run.created_at.timestamp()),
                "finished_at": int(run.finished_at.timestamp()) if run.finished_at else None,
            },
        }


class AcceptedOut(serializers.Serializer):
    result = serializers.CharField(help_text="`success`.")
    workflow_run_id = serializers.UUIDField()
    status = serializers.CharField(help_text="The run's status now: running, stopping, stopped.")
