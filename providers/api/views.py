"""Management API for model providers: credentials, models, default models and usage.

Everyone with `provider.view` (builders and up) reads; `provider.manage` (admins, owners)
writes. Rows come from the tenant-scoped managers, so another tenant's object is not found.
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.api.views import TenantScopedViewSet
from tenants.exceptions import InvalidInput
from tenants.permissions import allowed

from .. import admin_services, selectors
from ..models import DefaultModel, Model, ModelKind, ProviderCredential, ProviderKind, UsageEvent
from . import serializers as s

READ = {"list": "view", "retrieve": "view"}
WRITE = {"create": "manage", "update": "manage", "partial_update": "manage", "destroy": "manage"}


def _choice(request: Request, name: str, choices: list[str]) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in choices:
        raise InvalidInput(f"{name}: unknown value “{value}”; use one of {', '.join(choices)}.")
    return value


class CredentialViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Provider credentials; the secret is write-only, reads show it masked."""

    model = ProviderCredential
    serializer_class = s.CredentialOut
    permission_kind = "provider"
    permission_actions = {**READ, **WRITE, "test": "manage"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        return selectors.credential_list()

    @extend_schema(request=s.CredentialCreate, responses={201: s.CredentialOut})
    def create(self, request):
        data = s.CredentialCreate(data=request.data)
        data.is_valid(raise_exception=True)
        credential = admin_services.credential_create(
            tenant=self.tenant, principal=self.principal, **data.validated_data
        )
        return Response(s.CredentialOut(credential).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.CredentialUpdate, responses=s.CredentialOut)
    def partial_update(self, request, pk=None):
        credential = self.get_object()
        if "kind" in request.data and request.data["kind"] != credential.kind:
            raise InvalidInput("kind: a credential keeps its kind; add another credential.")
        data = s.CredentialUpdate(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        admin_services.credential_update(
            credential=credential, principal=self.principal, **data.validated_data
        )
        return Response(s.CredentialOut(credential).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """Delete the credential; the tenant's models served by it go with it, and so do
        defaults and fallbacks that name those models."""
        admin_services.credential_delete(credential=self.get_object(), principal=self.principal)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None, responses=s.CredentialTestResult, operation_id="providers_credentials_test"
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a tiny request with the credential; answers 200 whether or not it worked."""
        worked, said = admin_services.credential_test(
            credential=self.get_object(), principal=self.principal
        )
        return Response(s.CredentialTestResult({"ok": worked, "message": said}).data)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("kind", enum=ModelKind.values, description="Only this kind."),
            OpenApiParameter("provider", enum=ProviderKind.values, description="Only this one."),
            OpenApiParameter(
                "scope", enum=["global", "own"], description="The global catalog, or own models."
            ),
        ]
    )
)
class CatalogModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The global model catalog (read-only) and the tenant's own models."""

    serializer_class = s.ModelOut
    permission_kind = "provider"
    permission_actions = {**READ, **WRITE}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Model.dangerously_unscoped.none()
        if self.action != "list":
            return selectors.model_list()
        return selectors.model_list(
            kind=_choice(self.request, "kind", ModelKind.values),
            provider=_choice(self.request, "provider", ProviderKind.values),
            scope=_choice(self.request, "scope", ["global", "own"]),
        )

    def check_object_permissions(self, request, obj) -> None:
        # Global rows belong to no tenant; the matrix decides without the object, and the
        # services refuse changes to them with a clear message.
        if obj.is_global:
            action_name = self.permission_actions.get(self.action or "", "manage")
            if not allowed(self.principal, "provider", action_name):
                self.permission_denied(request)
            return
        super().check_object_permissions(request, obj)

    @extend_schema(request=s.ModelIn, responses={201: s.ModelOut})
    def create(self, request):
        data = s.ModelIn(data=request.data)
        data.is_valid(raise_exception=True)
        model = admin_services.model_create(
            tenant=self.tenant, principal=self.principal, data=data.validated_data
        )
        return Response(s.ModelOut(model).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ModelIn, responses=s.ModelOut)
    def partial_update(self, request, pk=None):
        model = self.get_object()
        data = s.ModelIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        admin_services.model_update(model=model, principal=self.principal, data=data.validated_data)
        return Response(s.ModelOut(model).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """Delete one of the tenant's own models (a default or fallback naming it goes too);
        global catalog entries answer 403."""
        admin_services.model_delete(model=self.get_object(), principal=self.principal)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DefaultViewSet(TenantScopedViewSet):
    """The model each kind uses when a caller names none, with fallbacks; a kind with no
    default uses the built-in offline model (`builtin: true`)."""

    model = DefaultModel
    serializer_class = s.DefaultOut
    permission_kind = "provider"
    permission_actions = {**READ, **WRITE}
    lookup_field = "kind"
    lookup_value_regex = "[^/.]+"

    def _kind(self, kind: str) -> str:
        if kind not in ModelKind.values:
            raise NotFound(
                f"Unknown model kind “{kind}”; use one of {', '.join(ModelKind.values)}."
            )
        return kind

    def _entry(self, kind: str) -> selectors.EffectiveDefault:
        return next(e for e in selectors.defaults_effective() if e.kind == kind)

    @extend_schema(responses=s.DefaultOut(many=True))
    def list(self, request):
        entries = selectors.defaults_effective()
        page = self.paginate_queryset(entries)
        assert page is not None  # noqa: S101 - the API always paginates
        return self.get_paginated_response(s.DefaultOut(page, many=True).data)

    @extend_schema(parameters=[OpenApiParameter("kind", enum=ModelKind.values, location="path")])
    def retrieve(self, request, kind: str):
        return Response(s.DefaultOut(self._entry(self._kind(kind))).data)

    @extend_schema(
        request=s.DefaultIn,
        responses=s.DefaultOut,
        parameters=[OpenApiParameter("kind", enum=ModelKind.values, location="path")],
    )
    def update(self, request, kind: str):
        kind = self._kind(kind)
        data = s.DefaultIn(data=request.data)
        data.is_valid(raise_exception=True)
        admin_services.default_set(
            tenant=self.tenant,
            principal=self.principal,
            kind=kind,
            model=data.validated_data["model"],
            fallbacks=data.validated_data["fallbacks"],
        )
        return Response(s.DefaultOut(self._entry(kind)).data)

    @extend_schema(
        responses={204: None},
        parameters=[OpenApiParameter("kind", enum=ModelKind.values, location="path")],
    )
    def destroy(self, request, kind: str):
        """Forget the default: the built-in offline model serves this kind again."""
        admin_services.default_clear(
            tenant=self.tenant, principal=self.principal, kind=self._kind(kind)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _moment(
    name: str, value: str | None, *, end: bool, zone: zoneinfo.ZoneInfo
) -> datetime.datetime | None:
    """An ISO 8601 date-time, or a date: the start of that day (of the next one for an end,
    so the day is included), in the tenant's time zone when none is given."""
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        day = None if moment else parse_date(value)
    except ValueError:
        moment = day = None
    if moment is None:
        if day is None:
            raise InvalidInput(
                f"{name}: “{value}” is not a date (2025-01-31) or a date-time "
                "(2025-01-31T12:00:00Z)."
            )
        moment = datetime.datetime.combine(day + datetime.timedelta(days=int(end)), datetime.time())
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, zone)
    return moment


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("model", description="Only calls of this model (its name)."),
            OpenApiParameter("operation", enum=ModelKind.values),
            OpenApiParameter("status", enum=UsageEvent.Status.values),
            OpenApiParameter(
                "since", OpenApiTypes.STR, description="From this date or date-time (inclusive)."
            ),
            OpenApiParameter(
                "until", OpenApiTypes.STR, description="Up to this date (inclusive) or date-time."
            ),
        ]
    )
)
class UsageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Every model call, newest first: tokens, cost, latency, outcome. Read-only."""

    model = UsageEvent
    serializer_class = s.UsageEventOut
    permission_kind = "provider"
    permission_actions = READ

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.action != "list":
            return super().get_queryset()
        params: Any = self.request.query_params
        zone = zoneinfo.ZoneInfo(self.tenant.time_zone)
        return selectors.usage_list(
            model_name=params.get("model") or None,
            operation=_choice(self.request, "operation", ModelKind.values),
            status=_choice(self.request, "status", UsageEvent.Status.values),
            since=_moment("since", params.get("since"), end=False, zone=zone),
            until=_moment("until", params.get("until"), end=True, zone=zone),
        )
