"""The base of the workflow console pages: matrix permissions (`workflow.view`, `manage`,
`run`), the workflow or version a page is about (404 when missing or another tenant's), its
validation problems, and the context every page shares."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse

from tenants.admin_base import TenantScopedAdmin
from tenants.context import tenant_context

from .. import services
from ..dsl import ValidationError
from ..models import Workflow, WorkflowVersion


def problems_of(source: Workflow | WorkflowVersion) -> list[ValidationError]:
    """Why a draft or version cannot run or be published (empty: it can)."""
    try:
        services.check_runnable(source)
    except services.WorkflowInvalid as exc:
        return exc.errors
    return []


def problems_by_node(problems: list[ValidationError]) -> dict[str, list[str]]:
    """The problems' messages by the node each names (edge problems name their source)."""
    found: dict[str, list[str]] = defaultdict(list)
    for problem in problems:
        if problem.node_id:
            found[problem.node_id].append(problem.message)
    return found


def runs_url(workflow: Workflow) -> str:
    return f"{reverse('admin:workflows_workflowrun_changelist')}?workflow__id__exact={workflow.pk}"


def changelist_without(*fields: str) -> type[ChangeList]:
    """A changelist that leaves `fields` unloaded: graphs and run data can be large, and a
    list shows none of them. Only for models outside the audit trail, whose post_init
    snapshot reads every field (a deferred one would be loaded row by row)."""

    class Lighter(ChangeList):
        def get_queryset(self, request, exclude_parameters=None):
            return super().get_queryset(request, exclude_parameters).defer(*fields)

    return Lighter


class WorkflowPagesBase(TenantScopedAdmin):
    """What the workflow pages share; the pages themselves are mixed into WorkflowAdmin."""

    permission_kind = "workflow"
    add_action: str | None = "manage"
    change_action: str | None = "manage"
    delete_action: str | None = "manage"

    def may(self, request: HttpRequest, action: str, obj: Any = None) -> bool:
        return self._allowed(request, action, obj)

    def url(self, name: str, *args: Any) -> str:
        return reverse(f"admin:workflows_workflow_{name}", args=args)

    def in_tenant(self, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        """An admin view of one workflow, run in that workflow's tenant (a superuser may
        open any tenant's)."""

        def scoped(request: HttpRequest, object_id: str, *args: Any, **kwargs: Any):
            with tenant_context(self._object_tenant(request, object_id)):
                return view(request, object_id, *args, **kwargs)

        return self.admin_site.admin_view(scoped)

    def workflows(self, request: HttpRequest) -> QuerySet[Workflow]:
        if request.user.is_superuser:
            return Workflow.dangerously_unscoped.all()
        return Workflow.objects.all()

    def workflow_for(self, request: HttpRequest, object_id: str, action: str) -> Workflow:
        """The workflow, 404 when missing or another tenant's; 403 without `action`."""
        try:
            pk = uuid.UUID(object_id)
        except ValueError as exc:
            raise Http404("Not found.") from exc
        workflow = get_object_or_404(self.workflows(request).select_related("tenant"), pk=pk)
        if not self.may(request, action, workflow):
            raise PermissionDenied
        return workflow

    def version_for(self, workflow: Workflow, number: Any) -> WorkflowVersion:
        """Version `number` of the workflow; 404 when it has none such."""
        if not str(number).isdigit():
            raise Http404("Not found.")
        return get_object_or_404(
            WorkflowVersion.objects.select_related("workflow"),
            workflow=workflow,
            number=int(number),
        )

    def page(
        self, request: HttpRequest, workflow: Workflow, title: str, **context: Any
    ) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "workflow": workflow,
            "original": workflow,
            "workflow_url": self.url("change", workflow.pk),
            "may_manage": self.may(request, "manage", workflow),
            "may_run": self.may(request, "run", workflow),
            **context,
        }
