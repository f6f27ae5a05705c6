"""Celery tasks of the knowledge base (queue `indexing`)."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from tenants.tasks import TenantTask

from . import indexing
from .models import Document

logger = logging.getLogger(__name__)

# A document whose indexing has shown no sign of life for this long is started again.
STALLED_AFTER = timedelta(minutes=3)


@shared_task(base=TenantTask, acks_late=True, reject_on_worker_lost=True)
def index_document(*, tenant_id: str, document_id: str) -> str:
    """Index one document. Safe to deliver twice or to re-run after a crash: the pipeline
    resumes where the chunks stand and an advisory lock keeps runs from overlapping."""
    return indexing.index_document(document_id=document_id)


@shared_task
def requeue_stalled_documents(queue: str = "indexing") -> int:
    """Start again the documents whose worker died mid-indexing (beat, every minute)."""
    cutoff = timezone.now() - STALLED_AFTER
    stalled = Document.dangerously_unscoped.filter(
        indexing_status__in=indexing.ACTIVE, heartbeat_at__lt=cutoff
    ).values_list("tenant_id", "pk")
    count = 0
    for tenant_id, document_id in stalled:
        index_document.apply_async(
            kwargs={"tenant_id": str(tenant_id), "document_id": str(document_id)}, queue=queue
        )
        count += 1
    if count:
        logger.info("requeued %s stalled document(s)", count)
    return count
