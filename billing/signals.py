"""Limits held in memory are forgotten when what they come from changes."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from tenants.models import Tenant

from . import quota
from .models import Invoice, Override, Plan, Subscription


@receiver([post_save, post_delete], sender=Subscription)
@receiver([post_save, post_delete], sender=Override)
def _tenant_changed(sender, instance, **kwargs) -> None:
    quota.forget(instance.tenant_id)


@receiver([post_save, post_delete], sender=Plan)
def _plan_changed(sender, instance, **kwargs) -> None:
    quota.forget()


@receiver(post_save, sender=Tenant)
def _tenant_created(sender, instance, created, raw=False, **kwargs) -> None:
    """A new tenant starts on the default plan: its trial, or this month."""
    if created and not raw:
        quota.subscription_for(instance)


@receiver(post_delete, sender=Invoice)
def _invoice_deleted(sender, instance, **kwargs) -> None:
    """An invoice's PDF goes with it (a tenant's deletion takes its invoices), once the
    deletion is committed."""
    if instance.pdf:
        storage, name = instance.pdf.storage, instance.pdf.name
        transaction.on_commit(lambda: storage.delete(name))
