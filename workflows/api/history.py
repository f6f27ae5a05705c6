"""Workflows API: what a workflow was and did. Published versions by number (read, compare,
roll back), and runs as recorded, with their node executions."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from tenants.exceptions import InvalidInput

from .. import services
from ..models import Workflow, WorkflowRun, WorkflowVersion
from . import selectors
from . import serializers as s
from .base import READ, WorkflowScopedViewSet, choice_param, version_number


class VersionViewSet(mixins.ListModelMixin, WorkflowScopedViewSet):
    """Published versions of a workflow, by number: read, compare, roll back."""

    model = WorkflowVersion
    serializer_class = s.VersionRow
    permission_actions = {**READ, "diff": "view", "rollback": "manage"}

    def workflow(self) -> Workflow:
        return selectors.access_workflow(self.kwargs["workflow_pk"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        return selectors.versions(self.workflow())

    def version(self) -> WorkflowVersion:
        workflow = self.workflow()
        version = selectors.access_version(workflow, int(self.kwargs["number"]))
        version.workflow = workflow
        return version

    @extend_schema(responses=s.VersionOut)
    def retrieve(self, request, workflow_pk=None, number=None):
        """The version with its graph (secret values masked)."""
        return Response(s.VersionOut(self.version()).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "against",
                str,
                description="A version number, or `draft`; default: the version before.",
            )
        ],
        responses=s.DiffOut,
    )
    def diff(self, request, workflow_pk=None, number=None):
        """What changed between this version and another (or the draft). The diff reads
        forward in time: from the older of the two to the newer; the draft is the newest."""
        version = self.version()
        against = request.query_params.get("against")
        other: Workflow | WorkflowVersion
        if against == "draft":
            other = version.workflow
        elif against:
            number = version_number("against", against, expected="a version number or `draft`")
            other = selectors.version_named_in(version.workflow, number, param="against")
        elif version.number > 1:
            other = selectors.version_named_in(
                version.workflow, version.number - 1, param="against"
            )
        else:
            raise InvalidInput("against: version 1 is the first; name a version or `draft`.")
        older, newer = sorted((version, other), key=_age)
        diff = services.version_diff(older, newer)
        return Response(s.DiffOut((_label(older), _label(newer), diff)).data)

    @extend_schema(request=s.NoteIn, responses={201: s.VersionOut})
    def rollback(self, request, workflow_pk=None, number=None):
        """Publish a copy of this version as the newest, and make it the draft too."""
        version = self.version()
        data = s.NoteIn(data=request.data)
        data.is_valid(raise_exception=True)
        restored = services.workflow_rollback(
            tenant=self.tenant,
            workflow=version.workflow,
            version=version,
            note=data.validated_data["note"],
            created_by=self.user,
        )
        return Response(s.VersionOut(restored).data, status=status.HTTP_201_CREATED)


def _age(source: Workflow | WorkflowVersion) -> float:
    return source.number if isinstance(source, WorkflowVersion) else float("inf")


def _label(source: Workflow | WorkflowVersion) -> str:
    return str(source.number) if isinstance(source, WorkflowVersion) else "draft"


class RunViewSet(mixins.ListModelMixin, WorkflowScopedViewSet):
    """Runs of a workflow and, by id, a run with its node executions in order."""

    model = WorkflowRun
    serializer_class = s.RunRow
    permission_actions = READ
    lookup_url_kwarg = "run_id"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        if self.action == "list":
            return selectors.runs(
                workflow=selectors.access_workflow(self.kwargs["workflow_pk"]),
                status=choice_param(self.request, "status", WorkflowRun.Status.values),
            )
        return selectors.run_with_nodes()

    @extend_schema(parameters=[OpenApiParameter("status", enum=WorkflowRun.Status.values)])
    def list(self, request, *args, **kwargs):
        """The workflow's runs, newest first."""
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=s.RunOut)
    def retrieve(self, request, run_id=None):
        """The run with its node executions in the order they started."""
        return Response(s.RunOut(self.get_object()).data)
