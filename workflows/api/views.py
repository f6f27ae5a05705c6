"""Workflows API, the DRF part: drafts, Dify DSL import and export, validation, schema,
publishing. Versions and the runs' records are in history.py; starting, following, stopping
and resuming runs are async views (runs.py).

Everyone with `workflow.view` (operators and up) reads; `workflow.manage` (builders and up)
writes. Rows come from the tenant-scoped managers, so another tenant's object is not found.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from tenants.exceptions import Forbidden, InvalidInput
from tenants.permissions import allowed

from .. import services
from ..dsl import (
    WorkflowSpec,
    dsl_json_schema,
    graph_json_schema,
    validate,
    workflow_json_schema,
)
from ..models import Workflow, WorkflowVersion
from . import selectors
from . import serializers as s
from .base import (
    READ,
    ExportsDsl,
    WorkflowScopedViewSet,
    choice_param,
    dsl_file,
    dsl_sent,
    flag_param,
    version_number,
)

SCHEMAS = {"workflow": workflow_json_schema, "graph": graph_json_schema, "dsl": dsl_json_schema}
SCHEMA_KINDS = list(SCHEMAS)


def _spec(data: dict[str, Any], base: Workflow | None = None) -> WorkflowSpec | None:
    """The draft the request describes: the parts it sends over `base`'s (whose secrets go
    back masked, which keeps them); None when it sends no part of a draft."""
    sent = {part: data[part] for part in s.SPEC_PARTS if part in data}
    if not sent:
        return None
    current = {}
    if base is not None:
        current = services.spec_of(base, secrets="masked").model_dump(
            mode="json", exclude_unset=True
        )
    return services.parse_spec({**current, **sent})


class WorkflowViewSet(ExportsDsl, mixins.ListModelMixin, WorkflowScopedViewSet):
    """Workflows and their drafts."""

    model = Workflow
    serializer_class = s.WorkflowRow
    permission_actions = {
        **READ,
        "create": "manage",
        "partial_update": "manage",
        "destroy": "manage",
        "import_dsl": "manage",
        "export": "view",
        "check": "view",
        "dsl_schema": "view",
        "publish": "manage",
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        if self.action == "list":
            return selectors.workflows(
                name=self.request.query_params.get("name") or None,
                mode=choice_param(self.request, "mode", Workflow.Mode.values),
            )
        return selectors.workflows()

    def _shown(self, workflow: Workflow) -> dict[str, Any]:
        """A workflow as read back after a write (with its latest version number)."""
        return s.WorkflowOut(selectors.access_workflow(workflow.pk)).data

    @extend_schema(
        parameters=[
            OpenApiParameter("name", description="Only names containing this."),
            OpenApiParameter("mode", enum=Workflow.Mode.values),
        ]
    )
    def list(self, request, *args, **kwargs):
        """Workflows, most recently changed first (without drafts: read one for its draft)."""
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=s.WorkflowOut)
    def retrieve(self, request, pk=None):
        """The workflow with its draft (secret values masked)."""
        return Response(s.WorkflowOut(self.get_object()).data)

    @extend_schema(request=s.WorkflowCreate, responses={201: s.WorkflowOut})
    def create(self, request):
        """A new workflow; its draft is empty unless a graph (and variables) are sent."""
        data = s.WorkflowCreate(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        workflow = services.workflow_create(
            tenant=self.tenant,
            name=values["name"],
            description=values["description"],
            mode=values["mode"],
            spec=_spec(values),
            created_by=self.user,
        )
        return Response(self._shown(workflow), status=status.HTTP_201_CREATED)

    @extend_schema(request=s.WorkflowUpdate, responses=s.WorkflowOut)
    def partial_update(self, request, pk=None):
        """Change the name, description or draft; draft parts not sent are kept."""
        workflow = self.get_object()
        if "mode" in request.data and request.data["mode"] != workflow.mode:
            raise InvalidInput("mode: a workflow keeps its mode; import or create another.")
        data = s.WorkflowUpdate(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        services.workflow_update(
            tenant=self.tenant,
            workflow=workflow,
            name=values.get("name"),
            description=values.get("description"),
            spec=_spec(values, base=workflow),
            expected_checksum=values.get("expected_checksum"),
            updated_by=self.user,
        )
        return Response(self._shown(workflow))

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """Delete the workflow with its versions and runs."""
        services.workflow_delete(tenant=self.tenant, workflow=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={"application/json": s.ImportIn, "multipart/form-data": s.ImportIn},
        responses={201: s.ImportOut, 200: s.ImportOut},
    )
    def import_dsl(self, request):
        """Import a Dify DSL export: 201 with a new workflow, or 200 with the workflow whose
        draft it replaced (`workflow_id`); the report lists what was mapped or left out.
        Models the tenant lacks are replaced by its default models."""
        data = s.ImportIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        target = None
        if "workflow_id" in values:
            target = selectors.workflow_named_in(values["workflow_id"], param="workflow_id")
        result = services.workflow_import(
            tenant=self.tenant,
            content=dsl_sent(values),
            name=values.get("name"),
            workflow=target,
            created_by=self.user,
        )
        body = {"workflow": self._shown(result.workflow), "report": s.ReportOut(result.report).data}
        return Response(body, status=status.HTTP_200_OK if target else status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("version", int, description="A published version; default: draft."),
            OpenApiParameter(
                "include_secrets",
                bool,
                description="Put secret values in the file (needs workflow.manage).",
            ),
        ],
        responses={(200, "application/x-yaml"): OpenApiTypes.STR},
    )
    def export(self, request, pk=None):
        """The draft (or a version) as a Dify DSL file; secret values are left out unless
        asked for."""
        workflow = self.get_object()
        raw = request.query_params.get("version")
        number = version_number("version", raw) if raw else None
        include_secrets = flag_param(request, "include_secrets")
        if include_secrets and not allowed(self.principal, "workflow", "manage"):
            raise Forbidden("include_secrets: only those who may change workflows see secrets.")
        source: Workflow | WorkflowVersion = workflow
        if number is not None:
            source = selectors.version_named_in(workflow, number, param="version")
        text = services.workflow_export(source, include_secrets=include_secrets)
        return dsl_file(text, workflow.name, number)

    @extend_schema(request=None, responses=s.ValidationOut)
    def check(self, request, pk=None):
        """Whether the draft can run, with every reason it cannot."""
        errors = validate(services.spec_of(self.get_object(), secrets="blank"))
        return Response(s.ValidationOut(errors).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "of",
                enum=SCHEMA_KINDS,
                description="workflow (default): the draft fields of create and update; "
                "graph: `graph` alone; dsl: a whole Dify export, as import takes.",
            )
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def dsl_schema(self, request):
        """The JSON Schema of the workflow DSL."""
        of = choice_param(request, "of", SCHEMA_KINDS) or "workflow"
        return Response(SCHEMAS[of]())

    @extend_schema(
        request=s.NoteIn,
        responses={
            201: s.VersionOut,
            200: OpenApiResponse(s.VersionOut, description="The draft was already published."),
            400: OpenApiResponse(
                description="`workflow_invalid`: the envelope lists every reason in `errors` "
                "(code, message, node_id, edge_id, field)."
            ),
        },
    )
    def publish(self, request, pk=None):
        """Publish the draft as the next version. An unchanged draft published without a note
        gives the latest version back (200)."""
        workflow = self.get_object()
        data = s.NoteIn(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.workflow_publish(
            tenant=self.tenant,
            workflow=workflow,
            note=data.validated_data["note"],
            created_by=self.user,
        )
        fresh = workflow.latest_version is None or version.number > workflow.latest_version
        return Response(
            s.VersionOut(version).data,
            status=status.HTTP_201_CREATED if fresh else status.HTTP_200_OK,
        )
