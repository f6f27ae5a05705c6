"""What a caller hands the pipeline (`Request`) and what it gets back to run, stream, stop and
wait on (`Task`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tenants.models import User

from ..models import App, EndUser
from ..services.apps import Runnable


@dataclass
class Request:
    """One Service API, portal or console call to run an app."""

    app: App
    runnable: Runnable  # apps.services.apps.runnable(...)
    source: str  # Source.API / PORTAL / CONSOLE
    end_user: EndUser | None
    user: User | None = None  # a member (console debugging)
    inputs: dict[str, Any] = field(default_factory=dict)
    query: str = ""
    files: list[dict[str, Any]] = field(default_factory=list)  # Dify's `files` as sent
    conversation_id: str | None = None
    auto_generate_name: bool = True


@dataclass(frozen=True)
class Task:
    """A prepared run: its id is the message's (chat, agent-chat, completion, chatflow) or the
    workflow run's (workflow apps), and names its event stream. `tenant_id` and `app_id` let
    it be executed, queued and released without reading the database first;
    `auto_generate_name` says the conversation it started gets a generated name."""

    task_id: str
    mode: str
    message_id: str | None
    conversation_id: str | None
    workflow_run_id: str | None
    tenant_id: str = ""
    app_id: str = ""
    auto_generate_name: bool = False

    def fields(self) -> dict[str, Any]:
        """The task as plain values (a Celery task's keyword arguments)."""
        return asdict(self)
