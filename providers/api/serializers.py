"""Input and output serializers of the providers' management API. Inputs check types only;
the services (admin_services) check meaning, with the same messages as the console."""

from __future__ import annotations

from rest_framework import serializers

from ..admin_services import CREDENTIAL_KIND_CHOICES
from ..admin_services.catalog import MODEL_FIELDS
from ..models import Model, ModelKind, ProviderCredential, UsageEvent
from ..selectors import secret_shown


class CredentialOut(serializers.ModelSerializer):
    secret_masked = serializers.SerializerMethodField(
        help_text="The secret's last four characters at most; the secret itself is never shown."
    )
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = ProviderCredential
        fields = [
            "id",
            "kind",
            "name",
            "base_url",
            "secret_masked",
            "has_secret",
            "options",
            "enabled",
            "weight",
            "status",
            "last_checked_at",
            "last_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_secret_masked(self, credential: ProviderCredential) -> str:
        return secret_shown(credential)

    def get_has_secret(self, credential: ProviderCredential) -> bool:
        return bool(credential.secret_encrypted)


class CredentialUpdate(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    base_url = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="Empty for the provider's own address; required for openai_compatible and "
        "azure_openai.",
    )
    secret = serializers.CharField(
        max_length=4096,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="The API key; stored encrypted, never returned. Omit it to keep the stored "
        "one; an empty string removes it.",
    )
    options = serializers.JSONField(
        required=False, help_text='A JSON object of non-secret settings, e.g. {"api_version": …}.'
    )
    enabled = serializers.BooleanField(required=False)
    weight = serializers.IntegerField(
        required=False, help_text="Share of calls among this provider's credentials (1 or more)."
    )


class CredentialCreate(CredentialUpdate):
    kind = serializers.ChoiceField(choices=CREDENTIAL_KIND_CHOICES)
    name = serializers.CharField(max_length=100)


class CredentialTestResult(serializers.Serializer):
    ok = serializers.BooleanField(help_text="Whether the provider answered.")
    message = serializers.CharField(help_text="The provider's answer, or its error message.")


class ModelOut(serializers.ModelSerializer):
    scope = serializers.SerializerMethodField(help_text="`global` (the catalog) or `own`.")

    class Meta:
        model = Model
        fields = ["id", "scope", *MODEL_FIELDS]
        read_only_fields = fields

    def get_scope(self, model: Model) -> str:
        return "global" if model.is_global else "own"


class ModelIn(serializers.ModelSerializer):
    """A model's writable fields (all of them optional when changing one)."""

    credential = serializers.PrimaryKeyRelatedField(
        # The manager, not a queryset: it is read per request, in the request's tenant.
        queryset=ProviderCredential.objects,
        required=False,
        allow_null=True,
        help_text="One of the tenant's credentials of this provider; empty for any of them.",
        error_messages={"does_not_exist": "No credential with id {pk_value} in this tenant."},
    )

    class Meta:
        model = Model
        fields = list(MODEL_FIELDS)
        # Uniqueness is the service's to report, as a conflict.
        validators: list = []


class ModelBrief(serializers.ModelSerializer):
    class Meta:
        model = Model
        fields = ["id", "name", "label", "provider", "kind"]
        read_only_fields = fields


class DefaultOut(serializers.Serializer):
    id = serializers.UUIDField(allow_null=True, help_text="Empty while the built-in model serves.")
    kind = serializers.ChoiceField(choices=ModelKind.choices)
    builtin = serializers.BooleanField(
        help_text="True when the tenant chose no default and the built-in offline model serves."
    )
    model = ModelBrief(allow_null=True)
    fallbacks = ModelBrief(many=True)


class DefaultIn(serializers.Serializer):
    model = serializers.IntegerField(help_text="The id of an enabled model of this kind.")
    fallbacks = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        default=list,
        help_text="Ids of enabled models of this kind, tried in this order.",
    )


class UsageEventOut(serializers.ModelSerializer):
    class Meta:
        model = UsageEvent
        fields = [
            "id",
            "operation",
            "provider",
            "model_name",
            "credential",
            "app_id",
            "workflow_run_id",
            "message_id",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "tokens_estimated",
            "cost",
            "currency",
            "latency_ms",
            "time_to_first_token_ms",
            "status",
            "error_code",
            "created_at",
        ]
        read_only_fields = fields
