"""Apps management API: published versions by number (list, read, compare, roll back) and
the app's `app-` keys (list, create with the key shown once, revoke)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from tenants import services as tenant_services
from tenants.exceptions import InvalidInput
from tenants.models import ApiKey
from workflows.api.base import version_number

from ...models import App, AppVersion
from ...services.apps import app_rollback
from . import selectors
from . import serializers as s
from .base import READ, AppScopedViewSet


class AppVersionViewSet(mixins.ListModelMixin, AppScopedViewSet):
    """Published versions of an app, by number."""

    model = AppVersion
    serializer_class = s.AppVersionRow
    permission_actions = {**READ, "diff": "view", "rollback": "manage"}

    def app(self) -> App:
        """The app in the URL (looked up once per request)."""
        if not hasattr(self, "_app"):
            self._app = selectors.access_app(self.kwargs["app_pk"])
        return self._app

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        return selectors.versions(self.app())

    def get_serializer_context(self):
        context = {**super().get_serializer_context()}
        if not getattr(self, "swagger_fake_view", False):
            context["published_version_id"] = self.app().published_version_id
        return context

    def version(self) -> AppVersion:
        return selectors.access_version(self.app(), int(self.kwargs["number"]))

    def list(self, request, *args, **kwargs):
        """The app's versions, newest first; `published` marks the one requests run."""
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=s.AppVersionOut)
    def retrieve(self, request, app_pk=None, number=None):
        """The version with the configuration (or workflow) it runs."""
        version = self.version()
        context = {"published_version_id": version.app.published_version_id}
        return Response(s.AppVersionOut(version, context=context).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "against",
                str,
                description="A version number, or `draft`; default: the version before.",
            )
        ],
        responses=s.AppDiffOut,
    )
    def diff(self, request, app_pk=None, number=None):
        """What changed between this version and another (or the draft), read forward in
        time: from the older of the two to the newer; the draft is the newest. Chat, agent
        and completion apps compare `model_config` field by field; chatflow and workflow apps
        compare their workflows."""
        version = self.version()
        app = version.app
        against = request.query_params.get("against")
        other: AppVersion | None
        if against == selectors.DRAFT:
            other = None
        elif against:
            wanted = version_number("against", against, expected="a version number or `draft`")
            other = selectors.version_named_in(app, wanted, param="against")
        elif version.number > 1:
            other = selectors.version_named_in(app, version.number - 1, param="against")
        else:
            raise InvalidInput("against: version 1 is the first; name a version or `draft`.")
        return Response(s.AppDiffOut(selectors.version_compare(app, version, other)).data)

    @extend_schema(request=None, responses={201: s.AppVersionOut})
    def rollback(self, request, app_pk=None, number=None):
        """Publish a copy of this version as the newest, and make it the draft too."""
        version = self.version()
        restored = app_rollback(
            tenant=self.tenant, app=version.app, version=version, created_by=self.user
        )
        body = s.AppVersionOut(restored, context={"published_version_id": restored.pk}).data
        return Response(body, status=status.HTTP_201_CREATED)


class AppKeyViewSet(mixins.ListModelMixin, AppScopedViewSet):
    """The app's Service API keys: the key itself is returned once, at creation."""

    model = ApiKey
    serializer_class = s.ApiKeyOut
    permission_actions = {**READ, "create": "manage", "revoke": "manage", "destroy": "manage"}

    def app(self) -> App:
        return selectors.access_app(self.kwargs["app_pk"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        return selectors.app_keys(self.app())

    def list(self, request, *args, **kwargs):
        """The app's keys, newest first, revoked ones included (prefix and last use only)."""
        return super().list(request, *args, **kwargs)

    @extend_schema(request=s.AppKeyIn, responses={201: s.ApiKeyCreated})
    def create(self, request, app_pk=None):
        """A new `app-` key for this app; `key` is in this answer only."""
        app = self.app()
        data = s.AppKeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        key, raw = tenant_services.api_key_create(
            tenant=self.tenant,
            kind=ApiKey.Kind.APP,
            principal=self.principal,
            name=data.validated_data["name"],
            app_id=app.pk,
            created_by=self.user,
        )
        key.raw_key = raw
        return Response(s.ApiKeyCreated(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.ApiKeyOut)
    def revoke(self, request, app_pk=None, key_pk=None):
        """Revoke the key at once (revoking twice is harmless)."""
        key = selectors.access_key(self.app(), key_pk)
        tenant_services.api_key_revoke(key=key, principal=self.principal)
        return Response(s.ApiKeyOut(key).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, app_pk=None, key_pk=None):
        """Revoke the key (it stays listed, revoked)."""
        key = selectors.access_key(self.app(), key_pk)
        tenant_services.api_key_revoke(key=key, principal=self.principal)
        return Response(status=status.HTTP_204_NO_CONTENT)
