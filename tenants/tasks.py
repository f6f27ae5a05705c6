"""`TenantTask`, the base of every tenant's Celery task.

A tenant's task takes the tenant's id as an explicit `tenant_id` keyword argument (never a
model instance) and runs inside `tenant_context(tenant)`, so tenant-owned managers work in
its body exactly as in a request.

Retries: the base class retries nothing by itself. A task that opts in (`autoretry_for=`,
or `self.retry()` in a bound task) is re-run with the same `tenant_id`, and every attempt
loads the tenant afresh, so a tenant suspended between attempts stops being served. An
unknown or suspended tenant fails the task at once: retrying cannot fix either. Workers
acknowledge late and re-queue the message of a worker that died mid-task, so every task
body must be idempotent.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from .context import tenant_context
from .exceptions import TenantSuspended
from .models import Tenant


class TenantTask(Task):
    """Base task: loads the tenant from `tenant_id`, refuses a suspended one, sets context."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tenant_id = kwargs.get("tenant_id")
        if tenant_id is None:
            raise TypeError(f"{self.name} needs the tenant_id keyword argument.")
        tenant = Tenant.objects.get(pk=tenant_id)
        if not tenant.is_active:
            raise TenantSuspended(f"Tenant {tenant.slug} is suspended; {self.name} did not run.")
        with tenant_context(tenant):
            return super().__call__(*args, **kwargs)
