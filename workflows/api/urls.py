"""Routes of the workflows API, included at `/api/workflows/` (before the tenants API).

Written out rather than routed: the layout (import, schema, versions by number, runs by id)
is not a router's. Scripts write paths with and without the final slash; both are taken."""

from django.urls import re_path

from . import history, runs, views

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
WORKFLOW = rf"^(?P<pk>{UUID})"
VERSION = rf"^(?P<workflow_pk>{UUID})/versions/(?P<number>[0-9]{{1,9}})"
RUN = rf"^runs/(?P<run_id>{UUID})"

workflows = views.WorkflowViewSet.as_view
versions = history.VersionViewSet.as_view
run_rows = history.RunViewSet.as_view

urlpatterns = [
    re_path(r"^$", workflows({"get": "list", "post": "create"}), name="workflow-list"),
    re_path(r"^import/?$", workflows({"post": "import_dsl"}), name="workflow-import"),
    re_path(r"^schema/?$", workflows({"get": "dsl_schema"}), name="workflow-schema"),
    re_path(
        rf"{WORKFLOW}/?$",
        workflows({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="workflow-detail",
    ),
    re_path(rf"{WORKFLOW}/export/?$", workflows({"get": "export"}), name="workflow-export"),
    re_path(rf"{WORKFLOW}/validate/?$", workflows({"post": "check"}), name="workflow-validate"),
    re_path(rf"{WORKFLOW}/publish/?$", workflows({"post": "publish"}), name="workflow-publish"),
    re_path(rf"{WORKFLOW}/run/?$", runs.RunStartView.as_view(), name="workflow-run"),
    re_path(rf"^(?P<workflow_pk>{UUID})/runs/?$", run_rows({"get": "list"}), name="workflow-runs"),
    re_path(
        rf"^(?P<workflow_pk>{UUID})/versions/?$",
        versions({"get": "list"}),
        name="workflow-versions",
    ),
    re_path(rf"{VERSION}/?$", versions({"get": "retrieve"}), name="workflow-version"),
    re_path(rf"{VERSION}/diff/?$", versions({"get": "diff"}), name="workflow-version-diff"),
    re_path(
        rf"{VERSION}/rollback/?$", versions({"post": "rollback"}), name="workflow-version-rollback"
    ),
    re_path(rf"{RUN}/?$", run_rows({"get": "retrieve"}), name="workflow-run-detail"),
    re_path(rf"{RUN}/events/?$", runs.RunEventsView.as_view(), name="workflow-run-events"),
    re_path(rf"{RUN}/stop/?$", runs.RunStopView.as_view(), name="workflow-run-stop"),
    re_path(rf"{RUN}/resume/?$", runs.RunResumeView.as_view(), name="workflow-run-resume"),
]
