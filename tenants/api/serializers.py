"""Input and output serializers of the management API."""

from __future__ import annotations

from rest_framework import serializers

from ..models import ApiKey, Membership, Tenant
from ..roles import Role


class TenantOut(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "slug", "name", "status", "time_zone", "require_2fa", "created_at"]
        read_only_fields = fields


class TenantIn(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["name", "time_zone", "require_2fa"]


class MembershipOut(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "created_at"]
        read_only_fields = fields


class MembershipInvite(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MembershipRole(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiKeyOut(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = [
            "id",
            "kind",
            "name",
            "prefix",
            "role",
            "app_id",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields


class ApiKeyCreated(ApiKeyOut):
    key = serializers.CharField(
        source="raw_key", read_only=True, help_text="The key itself, shown only now."
    )

    class Meta(ApiKeyOut.Meta):
        fields = [*ApiKeyOut.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ApiKey.Kind.choices)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    role = serializers.ChoiceField(choices=Role.choices, required=False, default=Role.ADMIN)
    app_id = serializers.UUIDField(required=False, allow_null=True, default=None)
