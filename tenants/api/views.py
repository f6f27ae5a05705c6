"""Management API: the current tenant, its members and its API keys."""

from __future__ import annotations

from typing import ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import services
from ..exceptions import Forbidden
from ..http import require_principal, require_tenant
from ..models import ApiKey, Membership, Tenant, TenantOwned
from ..permissions import Principal, can_tenant
from . import schema  # noqa: F401 - registers the authentication schemes
from . import serializers as s


class TenantScopedViewSet(viewsets.GenericViewSet):
    """Base of every management viewset: rows come from the model's tenant-scoped manager,
    so another tenant's object is simply not found; each action maps to a matrix entry."""

    permission_kind: str = ""
    permission_actions: dict[str, str] = {}
    object_level_actions: tuple[str, ...] = ()
    model: ClassVar[type[TenantOwned]]  # set by each viewset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator: no tenant
            return self.model.dangerously_unscoped.none()
        return self.model.objects.all()

    # Both exist once TenantMember has let the request in.
    @property
    def principal(self) -> Principal:
        return require_principal(self.request._request)

    @property
    def tenant(self) -> Tenant:
        return require_tenant(self.request._request)


class CurrentTenantView(viewsets.ViewSet):
    """The tenant the caller acts in."""

    permission_kind = "tenant"
    permission_actions = {"retrieve": "view", "partial_update": "change"}

    @extend_schema(responses=s.TenantOut)
    def retrieve(self, request):
        return Response(s.TenantOut(request._request.tenant).data)

    @extend_schema(request=s.TenantIn, responses=s.TenantOut)
    def partial_update(self, request):
        # A fresh row, loaded with the actor in context, so the audit sees the old values.
        tenant = Tenant.objects.get(pk=request._request.tenant.pk)
        if not can_tenant(request._request.principal, "change"):
            raise Forbidden("You may not change this tenant's settings.")
        serializer = s.TenantIn(tenant, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(s.TenantOut(tenant).data)


class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Members of the tenant: list, invite, change role, remove."""

    model = Membership
    serializer_class = s.MembershipOut
    permission_kind = "membership"
    permission_actions = {
        "list": "view",
        "retrieve": "view",
        "create": "invite",
        "partial_update": "change_role",
        "destroy": "remove",
    }
    object_level_actions = ("retrieve",)

    def get_queryset(self):
        return super().get_queryset().select_related("user")

    @extend_schema(request=s.MembershipInvite, responses={201: s.MembershipOut})
    def create(self, request):
        data = s.MembershipInvite(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_invite(
            tenant=self.tenant,
            email=data.validated_data["email"],
            role=data.validated_data["role"],
            principal=self.principal,
            inviter=request.user,
        )
        return Response(s.MembershipOut(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MembershipRole, responses=s.MembershipOut)
    def partial_update(self, request, pk=None):
        membership = self.get_object()
        data = s.MembershipRole(data=request.data)
        data.is_valid(raise_exception=True)
        services.membership_change_role(
            membership=membership, role=data.validated_data["role"], principal=self.principal
        )
        return Response(s.MembershipOut(membership).data)

    def destroy(self, request, pk=None):
        services.membership_remove(membership=self.get_object(), principal=self.principal)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """API keys of the tenant: the key is returned once, at creation; revoke to disable."""

    model = ApiKey
    serializer_class = s.ApiKeyOut
    permission_kind = "api_key"
    permission_actions = {
        "list": "view",
        "retrieve": "view",
        "create": "create",
        "revoke": "revoke",
        "destroy": "revoke",
    }
    object_level_actions = ("retrieve", "revoke", "destroy")

    @extend_schema(request=s.ApiKeyIn, responses={201: s.ApiKeyCreated})
    def create(self, request):
        data = s.ApiKeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        key, raw = services.api_key_create(
            tenant=self.tenant,
            principal=self.principal,
            created_by=request.user,
            **data.validated_data,
        )
        key.raw_key = raw
        return Response(s.ApiKeyCreated(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.ApiKeyOut)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = services.api_key_revoke(key=self.get_object(), principal=self.principal)
        return Response(s.ApiKeyOut(key).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, pk=None):
        services.api_key_revoke(key=self.get_object(), principal=self.principal)
        return Response(status=status.HTTP_204_NO_CONTENT)
