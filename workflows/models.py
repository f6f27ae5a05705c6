"""Workflows: a draft graph with immutable published versions, and the runs of either, with
one execution row per node run."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from tenants.models import TenantOwned


class Workflow(TenantOwned):
    """A workflow's draft: the graph being edited, its variables and features (Dify's shape)."""

    class Mode(models.TextChoices):  # Dify's app modes that run a graph
        WORKFLOW = "workflow", "Workflow (inputs in, outputs out)"
        CHATFLOW = "advanced-chat", "Chatflow (a conversation, answers streamed)"

    name = models.CharField(max_length=255)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.WORKFLOW)
    description = models.TextField(blank=True)
    # The draft, as Dify's DSL writes `workflow.graph` (nodes, edges, viewport).
    graph = models.JSONField(default=dict, blank=True)
    features = models.JSONField(default=dict, blank=True)
    # Dify's shape; a secret's `value` is stored encrypted (providers.crypto), never in clear.
    environment_variables = models.JSONField(default=list, blank=True)
    conversation_variables = models.JSONField(default=list, blank=True)
    # Checksum of the draft, so that publishing an unchanged draft is a no-op and an editor can
    # tell that someone else saved in between.
    draft_checksum = models.CharField(max_length=64, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="workflow_unique_name")
        ]
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(TenantOwned):
    """A published version: an immutable copy of the draft, numbered from 1."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField(default=dict)
    features = models.JSONField(default=dict)
    environment_variables = models.JSONField(default=list)
    conversation_variables = models.JSONField(default=list)
    checksum = models.CharField(max_length=64)
    note = models.TextField(blank=True)
    # Set when this version was published by rolling back to an older one.
    restored_from = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "workflow", "number"], name="workflow_version_unique_number"
            )
        ]
        ordering = ["workflow", "-number"]

    def __str__(self) -> str:
        return f"{self.workflow} v{self.number}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValidationError("A published version cannot be changed; publish a new one.")
        super().save(*args, **kwargs)


class WorkflowRun(TenantOwned):
    """One run of a workflow's draft or of a published version."""

    class Status(models.TextChoices):  # Dify's values
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        PARTIAL_SUCCEEDED = "partial-succeeded", "Partially succeeded"
        STOPPED = "stopped", "Stopped"
        PAUSED = "paused", "Waiting for a person"

    class TriggeredFrom(models.TextChoices):
        DEBUGGING = "debugging", "Draft run (console)"
        APP_RUN = "app-run", "App"
        API = "api", "API"
        SCHEDULE = "schedule", "Schedule"
        WEBHOOK = "webhook", "Webhook"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.PARTIAL_SUCCEEDED, Status.STOPPED)

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    # Empty for a run of the draft; the graph that ran is kept either way.
    version = models.ForeignKey(
        WorkflowVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    graph = models.JSONField(default=dict)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.RUNNING)
    triggered_from = models.CharField(
        max_length=16, choices=TriggeredFrom.choices, default=TriggeredFrom.DEBUGGING
    )
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    elapsed_time = models.FloatField(default=0.0, help_text="Seconds.")
    total_steps = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    total_price = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    currency = models.CharField(max_length=8, default="USD")
    exceptions_count = models.PositiveIntegerField(default=0)
    trace_id = models.CharField(max_length=32, blank=True)
    # A paused run's engine state (variable pool, finished nodes, edge states), to resume.
    paused_state = models.JSONField(null=True, blank=True, editable=False)
    # The process running it writes this while it runs; the watchdog fails runs whose owner
    # has gone quiet.
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Who asked through an API or portal (the Service API's `user` string), when not a member.
    created_by_end_user = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Written by the engine, not by a person's edit: not for the audit trail.
    audit_trail = False

    class Meta(TenantOwned.Meta):
        indexes = [
            models.Index(fields=["tenant", "workflow", "-created_at"], name="run_workflow_created"),
            models.Index(
                fields=["status", "heartbeat_at"],
                name="run_running_heartbeat",
                condition=models.Q(status__in=["running"]),
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.workflow} run {self.pk}"


class NodeExecution(TenantOwned):
    """One run of one node (each retry, iteration round and loop round is its own row)."""

    class Status(models.TextChoices):  # Dify's values
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        EXCEPTION = "exception", "Failed, handled"
        STOPPED = "stopped", "Stopped"
        RETRY = "retry", "Retried"
        PAUSED = "paused", "Waiting for a person"

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="node_executions")
    # The id the engine gave the node execution in its events (node_started / node_finished).
    execution_id = models.UUIDField()
    node_id = models.CharField(max_length=255)
    node_type = models.CharField(max_length=64)
    title = models.CharField(max_length=255, blank=True)
    index = models.PositiveIntegerField(help_text="Order of start within the run, from 1.")
    predecessor_node_id = models.CharField(max_length=255, blank=True)
    inputs = models.JSONField(null=True, blank=True)
    process_data = models.JSONField(null=True, blank=True)
    outputs = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True)
    error_type = models.CharField(max_length=64, blank=True)
    elapsed_time = models.FloatField(default=0.0, help_text="Seconds.")
    total_tokens = models.PositiveBigIntegerField(default=0)
    total_price = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    currency = models.CharField(max_length=8, default="USD")
    retry_index = models.PositiveSmallIntegerField(default=0)
    iteration_id = models.CharField(max_length=255, blank=True)
    iteration_index = models.PositiveIntegerField(null=True, blank=True)
    loop_id = models.CharField(max_length=255, blank=True)
    loop_index = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    # Written by the engine in batches, thousands per run: not for the audit trail.
    audit_trail = False

    class Meta(TenantOwned.Meta):
        constraints = [
            # The recorder may write the same event twice (a retried batch): never two rows.
            models.UniqueConstraint(
                fields=["tenant", "run", "execution_id"], name="node_execution_unique"
            )
        ]
        indexes = [models.Index(fields=["tenant", "run", "index"], name="node_execution_order")]
        ordering = ["run", "index", "created_at"]

    def __str__(self) -> str:
        return f"{self.title or self.node_id} ({self.status})"
