"""Chunks: listed by dataset or document; editing one's text embeds it again."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import admin
from django.template.defaultfilters import truncatechars

from .. import services
from ..forms import ChunkForm
from ..models import Chunk
from .base import DatasetFilter, KnowledgeAdmin


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
        chunk = Chunk.dangerously_unscoped.select_related(
            "dataset__tenant", "dataset__embedding_model"
        ).get(pk=obj.pk)
        content = data["content"]
        vector = async_to_sync(services.chunk_embedding)(
            tenant=chunk.dataset.tenant, dataset=chunk.dataset, chunk=chunk, content=content
        )
        saved = services.chunk_edit(
            chunk=chunk,
            content=content,
            answer=data.get("answer", ""),
            keywords=data["keywords"],
            enabled=data["enabled"],
            vector=vector,
        )
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_state"})
