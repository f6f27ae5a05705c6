"""The Service API (`/v1/`, Dify-compatible), for `app-` keys.

Included after the Knowledge API and before the `/v1/` fallback. Ids are matched as plain
strings so that a malformed one answers Dify's "not found" for its kind rather than the
fallback's generic one.
"""

from django.urls import path

from . import app_info, conversations, files, messages, tasks, workflow_runs
from .base import endpoint

CONVERSATION = "conversations/<str:conversation_id>"

urlpatterns = [
    # Running an app, stopping it, following it
    path("chat-messages", endpoint(POST=tasks.chat), name="sapi-chat"),
    path("chat-messages/<str:task_id>/stop", endpoint(POST=tasks.chat_stop), name="sapi-chat-stop"),
    path(
        "chat-messages/<str:task_id>/events",
        endpoint(GET=tasks.chat_events),
        name="sapi-chat-events",
    ),
    path("completion-messages", endpoint(POST=tasks.completion), name="sapi-completion"),
    path(
        "completion-messages/<str:task_id>/stop",
        endpoint(POST=tasks.completion_stop),
        name="sapi-completion-stop",
    ),
    path("workflows/run", endpoint(POST=tasks.workflow_run), name="sapi-workflow-run"),
    path(
        "workflows/run/<str:run_id>",
        endpoint(GET=workflow_runs.run_detail),
        name="sapi-workflow-run-detail",
    ),
    path("workflows/logs", endpoint(GET=workflow_runs.logs), name="sapi-workflow-logs"),
    path(
        "workflows/tasks/<str:task_id>/stop",
        endpoint(POST=tasks.workflow_stop),
        name="sapi-workflow-stop",
    ),
    path(
        "workflows/<str:workflow_id>/run",
        endpoint(POST=tasks.workflow_run_version),
        name="sapi-workflow-run-version",
    ),
    path(
        "workflow/<str:run_id>/events",
        endpoint(GET=tasks.run_events),
        name="sapi-workflow-events",
    ),
    # Files
    path("files/upload", endpoint(POST=files.upload), name="sapi-files-upload"),
    path(
        "files/<str:file_id>/preview",
        endpoint(GET=files.preview),
        name="sapi-files-preview",
    ),
    # Messages and feedback
    path("messages", endpoint(GET=messages.message_list), name="sapi-messages"),
    path(
        "messages/<str:message_id>/feedbacks",
        endpoint(POST=messages.feedback_create),
        name="sapi-message-feedback",
    ),
    path(
        "messages/<str:message_id>/suggested",
        endpoint(GET=messages.suggested),
        name="sapi-message-suggested",
    ),
    path("app/feedbacks", endpoint(GET=messages.feedback_list), name="sapi-app-feedbacks"),
    # Conversations
    path("conversations", endpoint(GET=conversations.conversation_list), name="sapi-conversations"),
    path(
        CONVERSATION,
        endpoint(DELETE=conversations.conversation_delete),
        name="sapi-conversation",
    ),
    path(
        f"{CONVERSATION}/name",
        endpoint(POST=conversations.conversation_rename),
        name="sapi-conversation-name",
    ),
    path(
        f"{CONVERSATION}/variables",
        endpoint(GET=conversations.variable_list),
        name="sapi-conversation-variables",
    ),
    path(
        f"{CONVERSATION}/variables/<str:variable_id>",
        endpoint(PUT=conversations.variable_update),
        name="sapi-conversation-variable",
    ),
    # The app
    path("parameters", endpoint(GET=app_info.parameters), name="sapi-parameters"),
    path("info", endpoint(GET=app_info.info), name="sapi-info"),
    path("meta", endpoint(GET=app_info.meta), name="sapi-meta"),
    path("site", endpoint(GET=app_info.site), name="sapi-site"),
]
