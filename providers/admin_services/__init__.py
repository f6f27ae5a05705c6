"""Writes behind the console and the management API: credentials, models, default models.

Each service checks what the acting principal may do (`provider.manage`), validates with
messages that name the field, runs in one transaction inside the tenant's context, and
leaves the audit row to the audit signals (which mask the encrypted secret).
"""

from .catalog import (
    GLOBAL_FIXED_FIELDS,
    MODEL_FIELDS,
    model_create,
    model_delete,
    model_name_taken,
    model_problems,
    model_update,
)
from .credentials import (
    CANNOT_DECRYPT,
    CREDENTIAL_KIND_CHOICES,
    CREDENTIAL_KINDS,
    base_url_problem,
    credential_create,
    credential_delete,
    credential_name_taken,
    credential_problems,
    credential_test,
    credential_update,
    options_problem,
    weight_problem,
)
from .defaults import default_clear, default_set

__all__ = [
    "CANNOT_DECRYPT",
    "CREDENTIAL_KINDS",
    "CREDENTIAL_KIND_CHOICES",
    "GLOBAL_FIXED_FIELDS",
    "MODEL_FIELDS",
    "base_url_problem",
    "credential_create",
    "credential_delete",
    "credential_name_taken",
    "credential_problems",
    "credential_test",
    "credential_update",
    "default_clear",
    "default_set",
    "model_create",
    "model_delete",
    "model_name_taken",
    "model_problems",
    "model_update",
    "options_problem",
    "weight_problem",
]
