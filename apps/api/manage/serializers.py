"""Input and output serializers of the apps management API. Inputs check types only; an
app's configuration is checked by apps.config (`parse_config`, `parse_features`), whose
messages name the field path.

Choices are written out in help texts rather than as enums: several apps of Weft share field
names (`mode`, `status`, `rating`) with other choices, which the schema would have to name
apart."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tenants.api.serializers import ApiKeyCreated, ApiKeyOut
from workflows.api.serializers import NoteIn, ReportOut, plain

from ...models import (
    App,
    AppVersion,
    Conversation,
    Message,
    MessageAgentThought,
    MessageFeedback,
    Site,
)
from .selectors import AppDiff

__all__ = ["ApiKeyCreated", "ApiKeyOut", "NoteIn"]

MODES = ", ".join(App.Mode.values)
STATUSES = ", ".join(Message.Status.values)


# Apps


class AppRow(serializers.ModelSerializer):
    mode = serializers.CharField(read_only=True, help_text=f"One of: {MODES}.")
    published_version = serializers.IntegerField(
        source="published_version.number",
        default=None,
        read_only=True,
        allow_null=True,
        help_text="The version the Service API and the portal run; none until published.",
    )
    conversation_count = serializers.IntegerField(source="conversation_total", read_only=True)
    messages_24h = serializers.IntegerField(
        read_only=True, help_text="Messages of the last 24 hours."
    )

    class Meta:
        model = App
        fields = [
            "id",
            "name",
            "mode",
            "description",
            "icon",
            "icon_type",
            "icon_background",
            "enable_api",
            "enable_site",
            "published_version",
            "max_active_requests",
            "api_rpm",
            "end_user_rpm",
            "workflow_id",
            "conversation_count",
            "messages_24h",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AppOut(AppRow):
    """An app with its draft settings: `model_config` (chat, agent-chat, completion) or the
    workflow's `features` (chatflow, workflow)."""

    model_config = serializers.SerializerMethodField(
        help_text="Dify's `model_config` of the draft (chat, agent-chat and completion apps); "
        "null for chatflow and workflow apps."
    )
    features = serializers.SerializerMethodField(
        help_text="The features of the app's workflow draft (chatflow and workflow apps); "
        "null for the other modes, whose features are part of `model_config`."
    )

    class Meta(AppRow.Meta):
        fields = [*AppRow.Meta.fields, "published_version_id", "model_config", "features"]
        read_only_fields = fields

    def get_model_config(self, app: App) -> dict[str, Any] | None:
        return None if app.runs_workflow else app.config

    def get_features(self, app: App) -> dict[str, Any] | None:
        if not app.runs_workflow or app.workflow is None:
            return None
        return app.workflow.features or {}


class AppCreate(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    mode = serializers.CharField(help_text=f"One of: {MODES}.")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    icon = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)
    icon_background = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=16
    )
    model_config = serializers.JSONField(
        required=False,
        help_text="Dify's `model_config` (chat, agent-chat and completion apps); default: the "
        "built-in model and no prompt.",
    )


class AppUpdate(serializers.Serializer):
    name = serializers.CharField(max_length=255, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    icon = serializers.CharField(required=False, allow_blank=True, max_length=255)
    icon_background = serializers.CharField(required=False, allow_blank=True, max_length=16)
    enable_api = serializers.BooleanField(required=False)
    enable_site = serializers.BooleanField(required=False)
    max_active_requests = serializers.IntegerField(required=False, help_text="0: no limit.")
    api_rpm = serializers.IntegerField(required=False, help_text="0: the platform default.")
    end_user_rpm = serializers.IntegerField(required=False, help_text="0: the platform default.")
    model_config = serializers.JSONField(
        required=False,
        help_text="Chat, agent-chat and completion apps: the top-level keys sent replace the "
        "draft's (`pre_prompt`, `model`, `user_input_form`, …); keys not sent are kept.",
    )
    features = serializers.JSONField(
        required=False,
        help_text="Chatflow and workflow apps: the top-level keys sent replace those of the "
        "workflow's features; keys not sent are kept.",
    )


# Versions


class AppVersionRow(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email", default=None, read_only=True)
    workflow_version = serializers.IntegerField(
        source="workflow_version.number",
        default=None,
        read_only=True,
        allow_null=True,
        help_text="The workflow's version it runs (chatflow and workflow apps).",
    )
    published = serializers.SerializerMethodField(
        help_text="Whether requests run this version now."
    )

    class Meta:
        model = AppVersion
        fields = [
            "id",
            "number",
            "note",
            "checksum",
            "restored_from",
            "workflow_version",
            "published",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_published(self, version: AppVersion) -> bool:
        published_id = self.context.get("published_version_id")
        return published_id is not None and version.pk == published_id


class AppVersionOut(AppVersionRow):
    config = serializers.JSONField(
        read_only=True, help_text="The `model_config` it runs (empty for workflow-backed apps)."
    )
    workflow_version_id = serializers.UUIDField(read_only=True, allow_null=True)
    graph = serializers.SerializerMethodField(help_text="The workflow's graph (workflow modes).")
    features = serializers.SerializerMethodField(help_text="The workflow's features.")

    class Meta(AppVersionRow.Meta):
        fields = [*AppVersionRow.Meta.fields, "config", "workflow_version_id", "graph", "features"]
        read_only_fields = fields

    def get_graph(self, version: AppVersion) -> dict[str, Any] | None:
        workflow_version = version.workflow_version
        return workflow_version.graph if workflow_version is not None else None

    def get_features(self, version: AppVersion) -> dict[str, Any] | None:
        workflow_version = version.workflow_version
        return workflow_version.features if workflow_version is not None else None


class AppDiffOut(serializers.Serializer):
    older = serializers.CharField(help_text="The older side: a version number, or `draft`.")
    newer = serializers.CharField(help_text="The newer side: a version number, or `draft`.")
    empty = serializers.BooleanField(help_text="True when both configure the same.")
    config = serializers.JSONField(
        help_text="Chat, agent-chat and completion apps: the changed fields of `model_config` "
        "as `{path, old, new}` (a side where the field is absent is left out)."
    )
    workflow = serializers.JSONField(
        allow_null=True,
        help_text="Chatflow and workflow apps: the workflow diff (nodes_added, nodes_removed, "
        "nodes_changed, edges_added, edges_removed, variables, features).",
    )
    text = serializers.CharField(help_text="The same, as text for people.")

    def to_representation(self, instance: AppDiff) -> dict[str, Any]:
        return {
            "older": instance.older,
            "newer": instance.newer,
            "empty": instance.is_empty(),
            "config": plain(instance.config),
            "workflow": plain(instance.workflow) if instance.workflow is not None else None,
            "text": instance.render(),
        }


# Import


class AppImportIn(serializers.Serializer):
    content = serializers.CharField(
        required=False, trim_whitespace=False, help_text="The Dify app DSL (YAML) as text."
    )
    file = serializers.FileField(required=False, help_text="Or the DSL file (multipart).")
    name = serializers.CharField(
        max_length=255, required=False, help_text="Default: the app's name in the file."
    )
    app_id = serializers.UUIDField(
        required=False,
        help_text="Replace this app's draft instead of making a new app (same mode only).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("content" in attrs) == ("file" in attrs):
            raise serializers.ValidationError(
                "Send the DSL as `content` or as `file`, one of the two."
            )
        return attrs


class AppImportOut(serializers.Serializer):
    app = AppOut()
    report = ReportOut()


# Keys


class AppKeyIn(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


# Logs


class FeedbackOut(serializers.ModelSerializer):
    rating = serializers.CharField(read_only=True, help_text="like or dislike.")
    # DRF's metaclass takes declared fields off the class: `source` stays the Field attribute.
    source = serializers.CharField(  # type: ignore[assignment]
        read_only=True, help_text="user (the end user) or admin (a member)."
    )
    end_user = serializers.CharField(source="end_user.session_id", default=None, read_only=True)
    created_by = serializers.EmailField(source="created_by.email", default=None, read_only=True)

    class Meta:
        model = MessageFeedback
        fields = [
            "id",
            "message_id",
            "conversation_id",
            "app_id",
            "rating",
            "content",
            "source",
            "end_user",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AgentThoughtOut(serializers.ModelSerializer):
    class Meta:
        model = MessageAgentThought
        fields = [
            "id",
            "position",
            "thought",
            "tool",
            "tool_input",
            "observation",
            "message_files",
            "tokens",
            "total_price",
            "latency",
            "created_at",
        ]
        read_only_fields = fields


def _rating_field(who: str) -> serializers.CharField:
    return serializers.CharField(
        read_only=True, allow_null=True, help_text=f"{who}'s rating: like, dislike or null."
    )


class MessageRow(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text=f"One of: {STATUSES}.")
    source = serializers.CharField(  # type: ignore[assignment]
        read_only=True, help_text="api, portal or console."
    )
    end_user = serializers.CharField(
        source="end_user.session_id",
        default=None,
        read_only=True,
        help_text="The end user's id as the caller gave it (the Service API's `user`).",
    )
    total_tokens = serializers.IntegerField(read_only=True)
    user_rating = _rating_field("The end user")
    admin_rating = _rating_field("A member")

    class Meta:
        model = Message
        fields = [
            "id",
            "app_id",
            "conversation_id",
            "end_user_id",
            "end_user",
            "source",
            "query",
            "answer",
            "inputs",
            "status",
            "error",
            "model_provider",
            "model_name",
            "message_tokens",
            "answer_tokens",
            "total_tokens",
            "total_price",
            "currency",
            "latency",
            "time_to_first_token",
            "workflow_run_id",
            "trace_id",
            "user_rating",
            "admin_rating",
            "created_at",
        ]
        read_only_fields = fields


class MessageOut(MessageRow):
    """A message with its files, retrieval sources, agent steps and ratings."""

    user_rating = serializers.SerializerMethodField()  # type: ignore[assignment]
    admin_rating = serializers.SerializerMethodField()  # type: ignore[assignment]
    agent_thoughts = AgentThoughtOut(many=True, read_only=True)
    feedbacks = FeedbackOut(many=True, read_only=True)

    class Meta(MessageRow.Meta):
        fields = [
            *MessageRow.Meta.fields,
            "files",
            "retriever_resources",
            "annotation_reply",
            "suggested_questions",
            "agent_thoughts",
            "feedbacks",
        ]
        read_only_fields = fields

    def _rating(self, message: Message, source: str) -> str | None:
        found = [f.rating for f in message.feedbacks.all() if f.source == source]
        return found[0] if found else None

    def get_user_rating(self, message: Message) -> str | None:
        return self._rating(message, MessageFeedback.From.USER)

    def get_admin_rating(self, message: Message) -> str | None:
        return self._rating(message, MessageFeedback.From.ADMIN)


class ConversationRow(serializers.ModelSerializer):
    source = serializers.CharField(  # type: ignore[assignment]
        read_only=True, help_text="api, portal or console."
    )
    end_user = serializers.CharField(source="end_user.session_id", default=None, read_only=True)
    message_count = serializers.IntegerField(source="message_total", read_only=True)
    likes = serializers.IntegerField(read_only=True)
    dislikes = serializers.IntegerField(read_only=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "app_id",
            "name",
            "source",
            "end_user_id",
            "end_user",
            "inputs",
            "introduction",
            "dialogue_count",
            "message_count",
            "likes",
            "dislikes",
            "is_deleted",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ConversationOut(ConversationRow):
    messages = MessageOut(many=True, read_only=True, help_text="Oldest first.")

    class Meta(ConversationRow.Meta):
        fields = [*ConversationRow.Meta.fields, "variables", "messages"]
        read_only_fields = fields


class RatingIn(serializers.Serializer):
    rating = serializers.CharField(
        allow_null=True,
        help_text="like, dislike, or null to clear the member rating.",
    )
    content = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Why (for the review)."
    )

    def validate_rating(self, value: str | None) -> str | None:
        if value is not None and value not in MessageFeedback.Rating.values:
            raise serializers.ValidationError("use like, dislike or null.")
        return value


class SiteOut(serializers.ModelSerializer):
    """An app's portal site; the password never, only whether there is one."""

    has_password = serializers.SerializerMethodField()
    portal_path = serializers.SerializerMethodField()

    class Meta:
        model = Site
        fields = [
            "code",
            "portal_path",
            "title",
            "icon_type",
            "icon",
            "icon_background",
            "description",
            "copyright",
            "privacy_policy",
            "custom_disclaimer",
            "input_placeholder",
            "default_language",
            "show_workflow_steps",
            "use_icon_as_answer_icon",
            "chat_color_theme",
            "chat_color_theme_inverted",
            "prompt_public",
            "access_mode",
            "has_password",
            "allowed_email_domains",
            "embed_origins",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_password(self, site: Site) -> bool:
        return bool(site.password_hash)

    def get_portal_path(self, site: Site) -> str:
        return f"/c/{site.code}/"


class SiteIn(serializers.Serializer):
    """Site settings to change (any of them; `password` is written, never read)."""

    title = serializers.CharField(required=False, allow_blank=True)
    icon_type = serializers.CharField(required=False, allow_blank=True)
    icon = serializers.CharField(required=False, allow_blank=True)
    icon_background = serializers.CharField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    copyright = serializers.CharField(required=False, allow_blank=True)
    privacy_policy = serializers.CharField(required=False, allow_blank=True)
    custom_disclaimer = serializers.CharField(required=False, allow_blank=True)
    input_placeholder = serializers.CharField(required=False, allow_blank=True)
    default_language = serializers.CharField(required=False)
    show_workflow_steps = serializers.BooleanField(required=False)
    use_icon_as_answer_icon = serializers.BooleanField(required=False)
    chat_color_theme = serializers.CharField(required=False, allow_blank=True)
    chat_color_theme_inverted = serializers.BooleanField(required=False)
    prompt_public = serializers.BooleanField(required=False)
    access_mode = serializers.CharField(required=False)
    password = serializers.CharField(required=False, write_only=True, trim_whitespace=False)
    allowed_email_domains = serializers.ListField(child=serializers.CharField(), required=False)
    embed_origins = serializers.ListField(child=serializers.CharField(), required=False)
