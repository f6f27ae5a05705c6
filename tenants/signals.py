"""Signal wiring of the tenants app: the audit trail."""

from . import audit

audit.connect()
