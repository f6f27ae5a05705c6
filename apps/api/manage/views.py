"""Apps management API: apps and their drafts (`model_config` or the workflow's
`features`), Dify DSL import and export, publishing. Versions and keys are in history.py;
conversations, messages and feedback in logs.py.

Everyone with `app.view` (operators and up) reads; `app.manage` (builders and up) writes.
Rows come from the tenant-scoped managers, so another tenant's app is not found.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from tenants.exceptions import Forbidden, InvalidInput
from workflows.api.base import (
    ExportsDsl,
    choice_param,
    dsl_file,
    dsl_sent,
    flag_param,
    version_number,
)

from ...dsl import app_export, app_import
from ...models import App
from ...permissions import can_app
from ...services import sites as site_services
from ...services.apps import app_create, app_delete, app_publish, app_update
from . import selectors
from . import serializers as s
from .base import READ, AppScopedViewSet


def merged(name: str, current: dict[str, Any] | None, sent: Any) -> dict[str, Any]:
    """The sent top-level keys over the current ones."""
    if not isinstance(sent, dict):
        raise InvalidInput(f"{name}: must be an object.")
    return {**(current or {}), **sent}


class AppViewSet(ExportsDsl, mixins.ListModelMixin, AppScopedViewSet):
    """Apps and their drafts."""

    model = App
    serializer_class = s.AppRow
    permission_actions = {
        **READ,
        "create": "manage",
        "partial_update": "manage",
        "destroy": "manage",
        "import_dsl": "manage",
        "export": "view",
        "publish": "manage",
        "site": "view",
        "site_update": "manage",
        "site_code": "manage",
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        return selectors.apps(
            name=self.request.query_params.get("name") or None,
            mode=choice_param(self.request, "mode", App.Mode.values),
        )

    def app(self) -> App:
        return selectors.access_app(self.kwargs["pk"])

    def _shown(self, app: App) -> dict[str, Any]:
        """An app as read back after a write (with its activity)."""
        return s.AppOut(selectors.access_app(app.pk)).data

    @extend_schema(
        parameters=[
            OpenApiParameter("name", description="Only names containing this."),
            OpenApiParameter("mode", enum=App.Mode.values),
        ]
    )
    def list(self, request, *args, **kwargs):
        """Apps, most recently changed first, with their published version and activity."""
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=s.AppOut)
    def retrieve(self, request, pk=None):
        """The app with its draft settings."""
        return Response(s.AppOut(self.app()).data)

    @extend_schema(request=s.AppCreate, responses={201: s.AppOut})
    def create(self, request):
        """A new app, runnable at once on the built-in model (chatflow and workflow apps get a
        starter workflow). Publish it for the Service API and the portal to run it."""
        data = s.AppCreate(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        config = values.get("model_config")
        if config is not None and values["mode"] in App.WORKFLOW_MODES:
            raise InvalidInput(
                "model_config: chatflow and workflow apps are configured by their workflow; "
                "set `features` after creating it."
            )
        app = app_create(
            tenant=self.tenant,
            name=values["name"],
            mode=values["mode"],
            description=values["description"],
            icon=values["icon"],
            icon_background=values["icon_background"],
            config=config,
            created_by=self.user,
        )
        return Response(self._shown(app), status=status.HTTP_201_CREATED)

    @extend_schema(request=s.AppUpdate, responses=s.AppOut)
    def partial_update(self, request, pk=None):
        """Change the app's details, switches, limits, or its draft settings."""
        app = self.app()
        if "mode" in request.data and request.data["mode"] != app.mode:
            raise InvalidInput("mode: an app keeps its mode; import or create another.")
        data = s.AppUpdate(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "model_config" in values:
            values["config"] = merged("model_config", app.config, values.pop("model_config"))
        if "features" in values:
            current = app.workflow.features if app.workflow is not None else {}
            values["features"] = merged("features", current, values["features"])
        app_update(tenant=self.tenant, app=app, updated_by=self.user, **values)
        return Response(self._shown(app))

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """Delete the app with its versions, conversations, messages, keys and workflow."""
        app_delete(tenant=self.tenant, app=self.app())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=s.NoteIn,
        responses={
            201: s.AppVersionOut,
            200: OpenApiResponse(s.AppVersionOut, description="The draft was already published."),
            400: OpenApiResponse(
                description="`workflow_invalid` (workflow-backed apps): the envelope lists every "
                "reason in `errors`; `invalid_param` for a configuration that does not parse."
            ),
        },
    )
    def publish(self, request, pk=None):
        """Publish the draft as the next version, which the Service API and the portal run
        from now on. An unchanged draft published without a note gives the latest version
        back (200)."""
        app = self.app()
        data = s.NoteIn(data=request.data)
        data.is_valid(raise_exception=True)
        latest = selectors.versions(app).values_list("number", flat=True).first()
        version = app_publish(
            tenant=self.tenant, app=app, note=data.validated_data["note"], created_by=self.user
        )
        fresh = latest is None or version.number > latest
        body = s.AppVersionOut(version, context={"published_version_id": version.pk}).data
        return Response(body, status=status.HTTP_201_CREATED if fresh else status.HTTP_200_OK)

    @extend_schema(
        request={"application/json": s.AppImportIn, "multipart/form-data": s.AppImportIn},
        responses={201: s.AppImportOut, 200: s.AppImportOut},
    )
    def import_dsl(self, request):
        """Import a Dify app export of any mode: 201 with a new app (published at once when it
        can run), or 200 with the app whose draft it replaced (`app_id`, same mode). The
        report lists what was mapped (models the tenant lacks, datasets, tools) or left out."""
        data = s.AppImportIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        target = None
        if "app_id" in values:
            target = selectors.app_named_in(values["app_id"], param="app_id")
        app, report = app_import(
            tenant=self.tenant,
            content=dsl_sent(values),
            name=values.get("name"),
            app=target,
            created_by=self.user,
        )
        body = {"app": self._shown(app), "report": s.ReportOut(report).data}
        return Response(body, status=status.HTTP_200_OK if target else status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("version", int, description="A published version; default: draft."),
            OpenApiParameter(
                "include_secrets",
                bool,
                description="Put secret values in the file (needs app.manage).",
            ),
        ],
        responses={(200, "application/x-yaml"): OpenApiTypes.STR},
    )
    def export(self, request, pk=None):
        """The draft (or a version) as a Dify DSL file; secret values are left out unless
        asked for."""
        app = self.app()
        raw = request.query_params.get("version")
        number = version_number("version", raw) if raw else None
        include_secrets = flag_param(request, "include_secrets")
        if include_secrets and not can_app(self.principal, "manage", app):
            raise Forbidden("include_secrets: only those who may change apps see secrets.")
        version = selectors.version_named_in(app, number, param="version") if number else None
        text = app_export(app, version=version, include_secrets=include_secrets)
        return dsl_file(text, app.name, number)

    @extend_schema(responses=s.SiteOut)
    def site(self, request, pk=None):
        """The app's portal site (its address, look and access; never its password)."""
        return Response(s.SiteOut(self.app().site).data)

    @extend_schema(request=s.SiteIn, responses=s.SiteOut)
    def site_update(self, request, pk=None):
        """Change the portal site: any of its settings, and `password` (kept hashed; set it
        before or with `access_mode: "password"`). Nothing is written when a value is
        refused."""
        app = self.app()
        data = s.SiteIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        password = values.pop("password", None)
        with transaction.atomic():
            if password is not None:
                site_services.site_set_password(
                    tenant=self.tenant, site=app.site, password=password
                )
            site_services.site_update(tenant=self.tenant, site=app.site, **values)
        return Response(s.SiteOut(app.site).data)

    @extend_schema(request=None, responses=s.SiteOut)
    def site_code(self, request, pk=None):
        """A new address for the portal: the old link, and its visitors' passports, stop
        working."""
        app = self.app()
        site_services.site_regenerate_code(tenant=self.tenant, site=app.site)
        return Response(s.SiteOut(app.site).data)
