"""Console pages for model providers: credentials (with a Test button), the model catalog,
default models with fallbacks, and the read-only usage of every model call.

Permissions come from the matrix: `provider.view` to look, `provider.manage` to change.
Every write goes through providers.admin_services, as the management API's do.
"""

from . import catalog, credentials, defaults, usage

__all__ = ["catalog", "credentials", "defaults", "usage"]
