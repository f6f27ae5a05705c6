"""Console pages of apps: the list, create and import, the settings page (every setting as a
form field, or the workflow's features and a link to its editor), versions (publish,
compare, roll back, export), the app's API keys, and the logs (conversations and messages
with filters, a conversation turn by turn, members' ratings).

Permissions come from the matrix through apps.permissions.can_app: `app.view` (operator+)
to look, `app.manage` (builder+) for every change, `app.logs` (operator+) for the logs and
ratings. Another tenant's app, version, key, conversation or message answers 404. Every
write goes through apps.services (tenants.services for keys), which the audit trail records.
"""

from . import app, logs

__all__ = ["app", "logs"]
