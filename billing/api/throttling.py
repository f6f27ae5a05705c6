"""The plan's requests per minute on the management API (the Service and Knowledge APIs
count theirs where they authenticate)."""

from __future__ import annotations

from rest_framework.throttling import BaseThrottle

from .. import quota


class TenantPlanThrottle(BaseThrottle):
    """Count the request against its tenant's plan; RateLimited (429, `rate_limited`,
    Retry-After) past it. Requests with no tenant are left to the permission checks."""

    def allow_request(self, request, view) -> bool:
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            quota.api_request(tenant)
        return True
