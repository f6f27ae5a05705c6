"""Dify's app DSL in and out, for every mode.

Workflow and chatflow (advanced-chat) exports go through the workflows reader into the app's
own workflow; chat, agent-chat and completion exports carry Dify's `model_config`, read with
the same header checks (10 MB, safe YAML, versions). What the tenant lacks is mapped so that
a new app runs at once: models to its default chat model, missing datasets dropped, agent
tools Weft does not have disabled; each change is an item of the import report.
"""

from .exporter import app_export
from .importer import app_import

__all__ = ["app_export", "app_import"]
