"""Chunks: listed by dataset or document; editing one's text embeds it again."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import admin
from django.db import transaction
from django.template.defaultfilters import truncatechars

from providers import services as models_runtime
from providers.runtime.tokens import count_tokens
from tenants.context import tenant_context

from .. import store
from ..forms import ChunkForm
from ..models import Chunk, Dataset
from .base import DatasetFilter, KnowledgeAdmin


def chunk_update(
    *, chunk: Chunk, content: str, answer: str, keywords: list[str], enabled: bool
) -> Chunk:
    """Save a console edit: changed text is re-embedded (high-quality datasets) and written
    back at the same position with fresh terms and hash; `live` stays as it was."""
    dataset = chunk.dataset
    with tenant_context(dataset.tenant):
        if (content, answer) != (chunk.content, chunk.answer):
            embedding = None
            if chunk.searchable and dataset.indexing_technique == (
                Dataset.IndexingTechnique.HIGH_QUALITY
            ):
                # Outside the transaction: a model call holds no database lock.
                embedding = async_to_sync(models_runtime.embed)(
                    tenant=dataset.tenant, texts=[content], model=dataset.embedding_model
                ).vectors[0]
            row = store.ChunkRow(
                position=chunk.position,
                content=content,
                tokens=count_tokens(content),
                answer=answer,
                searchable=chunk.searchable,
                embedding=embedding,
                metadata=chunk.metadata,
            )
            store.chunks_write(
                tenant_id=chunk.tenant_id,
                dataset_id=chunk.dataset_id,
                document_id=chunk.document_id,
                rows=[row],
            )
        with transaction.atomic():
            Chunk.objects.filter(pk=chunk.pk).update(keywords=keywords, enabled=enabled)
            store.dataset_stats_refresh(dataset_id=chunk.dataset_id)
        return Chunk.objects.get(pk=chunk.pk)


@admin.register(Chunk)
class ChunkAdmin(KnowledgeAdmin):
    """Chunks of the datasets one may see; editing needs `dataset.manage` on the dataset."""

    form = ChunkForm
    list_display = [
        "position",
        "content_shown",
        "document",
        "tokens",
        "enabled",
        "live",
        "searchable",
        "hit_count",
        "embedding_dim",
    ]
    list_display_links = ["position", "content_shown"]
    list_filter = [DatasetFilter, "enabled", "live"]
    list_select_related = ["document"]
    search_fields = ["content", "answer"]
    ordering = ["document", "position"]
    readonly_fields = [
        "dataset",
        "document",
        "position",
        "parent",
        "tokens",
        "live",
        "searchable",
        "hit_count",
        "embedding_dim",
        "content_hash",
        "updated_at",
    ]

    @admin.display(description="content")
    def content_shown(self, chunk: Chunk) -> str:
        return truncatechars(chunk.content, 160)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dataset", "document")

    def get_fields(self, request, obj=None):
        return ["content", "answer", "keywords", "enabled", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return [*self.readonly_fields, "content", "answer", "keywords", "enabled"]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # chunks go with their document; disable one instead

    def get_actions(self, request):
        return {}

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        saved = chunk_update(
            chunk=Chunk.dangerously_unscoped.select_related("dataset__tenant").get(pk=obj.pk),
            content=data["content"],
            answer=data.get("answer", ""),
            keywords=data["keywords"],
            enabled=data["enabled"],
        )
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_state"})
