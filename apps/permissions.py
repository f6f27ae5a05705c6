"""Who may do what with apps: the `app` entries of the role matrix, checked in one place.

`app.view` (operator and up) shows apps, their settings, versions and keys (never the keys
themselves) and exports them without secrets; `app.manage` (builder and up) creates, edits,
imports, publishes, rolls back and deletes apps, exports them with secrets, and issues and
revokes their keys; `app.logs` (operator and up) reads conversations, messages, agent steps
and feedback, and rates answers. Another tenant's app is
never allowed anything (and is not found before it gets here).
"""

from __future__ import annotations

from tenants.permissions import Principal, allowed

from .models import App

ACTIONS = ("view", "manage", "logs")


def can_app(principal: Principal | None, action: str, app: App | None = None) -> bool:
    """`action` (view, manage, logs) on `app`, or on the tenant's apps at large without one."""
    if action not in ACTIONS:
        raise ValueError(f"unknown app action {action!r}; one of {', '.join(ACTIONS)}")
    if principal is None:
        return False
    return allowed(principal, "app", action, app)
