"""Apps and what their users leave behind: versions of an app's configuration, end users,
conversations, messages with their agent thoughts and feedback, and uploaded files.

Chat, agent-chat and completion apps keep their configuration in `App.config`, in the shape
of Dify's `model_config`; chatflow (advanced-chat) and workflow apps run a `workflows.Workflow`
whose `features` hold the same settings. Publishing freezes either into an `AppVersion`, which
the Service API and the portal run.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from tenants.models import TenantOwned


class App(TenantOwned):
    """An LLM application: its mode, look, draft configuration and published version."""

    class Mode(models.TextChoices):  # Dify's values
        CHAT = "chat", "Chat"
        COMPLETION = "completion", "Completion (text generator)"
        AGENT_CHAT = "agent-chat", "Agent chat"
        CHATFLOW = "advanced-chat", "Chatflow"
        WORKFLOW = "workflow", "Workflow"

    CHAT_MODES = (Mode.CHAT, Mode.AGENT_CHAT, Mode.CHATFLOW)
    WORKFLOW_MODES = (Mode.CHATFLOW, Mode.WORKFLOW)

    name = models.CharField(max_length=255)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    description = models.TextField(blank=True)
    icon = models.CharField(max_length=255, blank=True, default="🤖")
    icon_type = models.CharField(max_length=16, blank=True, default="emoji")
    icon_background = models.CharField(max_length=16, blank=True, default="#FFEAD5")
    enable_api = models.BooleanField(default=True, help_text="The Service API answers this app.")
    enable_site = models.BooleanField(default=True, help_text="The app's portal page is open.")
    # The draft of a chat, agent-chat or completion app: Dify's `model_config` (apps.config).
    config = models.JSONField(default=dict, blank=True)
    # The graph a chatflow or workflow app runs (its draft; versions are published with it).
    workflow = models.OneToOneField(
        "workflows.Workflow", on_delete=models.RESTRICT, null=True, blank=True, related_name="app"
    )
    # What the Service API and the portal run; none until the app is first published.
    published_version = models.ForeignKey(
        "AppVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    max_active_requests = models.PositiveIntegerField(
        default=0, help_text="Runs of this app at once; 0 means no limit of the app's own."
    )
    api_rpm = models.PositiveIntegerField(
        default=0, help_text="Requests per minute per API key; 0 means the platform default."
    )
    end_user_rpm = models.PositiveIntegerField(
        default=0, help_text="Requests per minute per end user; 0 means the platform default."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="app_unique_name")]
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_chat(self) -> bool:
        return self.mode in self.CHAT_MODES

    @property
    def runs_workflow(self) -> bool:
        return self.mode in self.WORKFLOW_MODES


class AppVersion(TenantOwned):
    """A published configuration, immutable, numbered from 1: the config of a chat, agent or
    completion app, or the workflow version of a chatflow or workflow app."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField(default=dict)
    workflow_version = models.ForeignKey(
        "workflows.WorkflowVersion",
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="app_versions",
    )
    checksum = models.CharField(max_length=64)
    note = models.TextField(blank=True)
    restored_from = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "app", "number"], name="app_version_unique_number"
            )
        ]
        ordering = ["app", "-number"]

    def __str__(self) -> str:
        return f"{self.app} v{self.number}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValidationError("A published version cannot be changed; publish a new one.")
        super().save(*args, **kwargs)


class EndUser(TenantOwned):
    """Someone using an app who is not a member: the Service API's `user` string, or a
    portal visitor's session."""

    class Kind(models.TextChoices):
        SERVICE_API = "service_api", "Service API"
        BROWSER = "browser", "Portal"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="end_users")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SERVICE_API)
    session_id = models.CharField(max_length=255, help_text="The caller's id for this person.")
    name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    audit_trail = False  # made on first use by whoever calls, not an edit

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "app", "kind", "session_id"], name="end_user_unique_session"
            )
        ]

    def __str__(self) -> str:
        return self.name or self.session_id


class UploadFile(TenantOwned):
    """A file sent to an app (Service API `files/upload`, the portal), kept for its
    messages and runs; its type is read from its content, not its name."""

    name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    extension = models.CharField(max_length=32, blank=True)
    mime_type = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=500, editable=False)
    app = models.ForeignKey(
        App, on_delete=models.CASCADE, null=True, blank=True, related_name="uploads"
    )
    created_by_end_user = models.ForeignKey(
        EndUser, on_delete=models.CASCADE, null=True, blank=True, related_name="uploads"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    audit_trail = False

    class Meta(TenantOwned.Meta):
        indexes = [models.Index(fields=["tenant", "sha256"], name="upload_tenant_sha256")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Source(models.TextChoices):
    """Where a conversation or message came from."""

    API = "api", "Service API"
    PORTAL = "portal", "Portal"
    CONSOLE = "console", "Console"


class Conversation(TenantOwned):
    """A chat between one end user (or member) and a chat app, its inputs fixed at the start."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="conversations")
    app_version = models.ForeignKey(
        AppVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    end_user = models.ForeignKey(
        EndUser, on_delete=models.CASCADE, null=True, blank=True, related_name="conversations"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    name = models.CharField(max_length=255, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    introduction = models.TextField(blank=True, help_text="The opening statement it began with.")
    # A chatflow's conversation variables as its last run left them.
    variables = models.JSONField(default=dict, blank=True)
    dialogue_count = models.PositiveIntegerField(default=0)
    # Deleted by its user: gone from the API and portal, kept for logs and annotation.
    is_deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_trail = False  # written by every chat turn

    class Meta(TenantOwned.Meta):
        indexes = [
            models.Index(
                fields=["tenant", "app", "end_user", "-updated_at"], name="conversation_user_recent"
            ),
            models.Index(fields=["tenant", "app", "-created_at"], name="conversation_app_recent"),
        ]
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name or str(self.pk)


class Message(TenantOwned):
    """One turn: the user's query and inputs, the app's answer, and what it cost."""

    class Status(models.TextChoices):
        RUNNING = "running", "Answering"
        NORMAL = "normal", "Answered"
        STOPPED = "stopped", "Stopped"
        ERROR = "error", "Failed"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="messages")
    app_version = models.ForeignKey(
        AppVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # None for a completion app's messages, which stand alone.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, null=True, blank=True, related_name="messages"
    )
    end_user = models.ForeignKey(
        EndUser, on_delete=models.CASCADE, null=True, blank=True, related_name="messages"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    query = models.TextField(blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    # Dify's message_files: [{id, type, transfer_method, url, upload_file_id, belongs_to}].
    files = models.JSONField(default=list, blank=True)
    answer = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True)
    model_provider = models.CharField(max_length=32, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    message_tokens = models.PositiveIntegerField(default=0)
    answer_tokens = models.PositiveIntegerField(default=0)
    total_price = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    currency = models.CharField(max_length=8, default="USD")
    latency = models.FloatField(default=0.0, help_text="Seconds from query to the end.")
    time_to_first_token = models.FloatField(null=True, blank=True, help_text="Seconds.")
    retriever_resources = models.JSONField(default=list, blank=True)
    # Set when the answer came from an approved annotation instead of the model.
    annotation_reply = models.JSONField(null=True, blank=True)
    suggested_questions = models.JSONField(default=list, blank=True)
    workflow_run = models.ForeignKey(
        "workflows.WorkflowRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
    )
    agent_based = models.BooleanField(default=False)
    trace_id = models.CharField(max_length=32, blank=True)
    # Set when a process takes the message to answer it (only one ever does), then renewed
    # while it answers; the watchdog fails running messages whose process went quiet.
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_trail = False  # written by the pipeline, thousands a day

    class Meta(TenantOwned.Meta):
        indexes = [
            models.Index(
                fields=["tenant", "conversation", "-created_at"], name="message_conversation"
            ),
            models.Index(fields=["tenant", "app", "-created_at"], name="message_app_recent"),
            models.Index(
                fields=["status", "heartbeat_at"],
                name="message_running_heartbeat",
                condition=models.Q(status="running"),
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.query[:60] or str(self.pk)

    @property
    def total_tokens(self) -> int:
        return self.message_tokens + self.answer_tokens


class MessageAgentThought(TenantOwned):
    """One step of an agent's answer: what it thought, which tool it called with what, and
    what the tool gave back."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="agent_thoughts")
    position = models.PositiveIntegerField()
    thought = models.TextField(blank=True)
    tool = models.CharField(max_length=255, blank=True)
    tool_input = models.TextField(blank=True)
    observation = models.TextField(blank=True)
    message_files = models.JSONField(default=list, blank=True)
    tokens = models.PositiveIntegerField(default=0)
    total_price = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    latency = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    audit_trail = False

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "message", "position"], name="agent_thought_unique_position"
            )
        ]
        ordering = ["message", "position"]

    def __str__(self) -> str:
        return f"{self.message_id} #{self.position} {self.tool}"


class MessageFeedback(TenantOwned):
    """A rating of one answer, by its end user or by a member reviewing it (one each)."""

    class Rating(models.TextChoices):
        LIKE = "like", "Like"
        DISLIKE = "dislike", "Dislike"

    class From(models.TextChoices):
        USER = "user", "End user"
        ADMIN = "admin", "Member"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedbacks")
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="feedbacks")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    rating = models.CharField(max_length=16, choices=Rating.choices)
    content = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=From.choices, default=From.USER)
    end_user = models.ForeignKey(
        EndUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "message", "source"], name="feedback_unique_per_source"
            )
        ]
        indexes = [models.Index(fields=["tenant", "app", "-created_at"], name="feedback_app")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.rating} on {self.message_id}"


def new_site_code() -> str:
    """A site's share code: 16 URL-safe characters, unguessable."""
    return secrets.token_urlsafe(12)


class Site(TenantOwned):
    """An app's portal page (Dify's web app settings) and who may use it."""

    class Access(models.TextChoices):
        PUBLIC = "public", "Anyone with the link"
        MEMBERS = "members", "Signed-in members of the tenant"
        PASSWORD = "password", "Anyone with the password"
        EMAIL_DOMAINS = "email_domains", "E-mail addresses of allowed domains"

    class Language(models.TextChoices):
        EN = "en-US", "English"
        ZH_HANS = "zh-Hans", "简体中文"

    app = models.OneToOneField(App, on_delete=models.CASCADE, related_name="site")
    code = models.CharField(max_length=32, unique=True, default=new_site_code)
    title = models.CharField(max_length=255)
    icon_type = models.CharField(max_length=16, blank=True, default="emoji")
    icon = models.CharField(max_length=255, blank=True)
    icon_background = models.CharField(max_length=16, blank=True)
    description = models.TextField(blank=True)
    copyright = models.CharField(max_length=255, blank=True)
    privacy_policy = models.URLField(max_length=500, blank=True)
    custom_disclaimer = models.TextField(blank=True, max_length=1000)
    input_placeholder = models.CharField(max_length=255, blank=True)
    default_language = models.CharField(
        max_length=16, choices=Language.choices, default=Language.EN
    )
    show_workflow_steps = models.BooleanField(default=True)
    use_icon_as_answer_icon = models.BooleanField(default=False)
    chat_color_theme = models.CharField(max_length=7, blank=True)
    chat_color_theme_inverted = models.BooleanField(default=False)
    prompt_public = models.BooleanField(default=False)
    access_mode = models.CharField(max_length=16, choices=Access.choices, default=Access.PUBLIC)
    password_hash = models.CharField(max_length=255, blank=True)
    allowed_email_domains = models.JSONField(default=list, blank=True)
    # Origins (scheme://host[:port]) whose pages may frame the portal (CSP frame-ancestors).
    embed_origins = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.title
