"""Documents: status, progress and stage timings per dataset (the list refreshes itself while
any is being indexed), and the actions: re-index, pause, resume, enable, disable, archive,
un-archive, delete. Uploads happen on the dataset's upload page."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.contrib import admin, messages
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils.html import format_html

from tenants.context import tenant_context

from .. import services
from ..indexing import ACTIVE
from ..models import Chunk, Dataset, Document
from .base import DatasetFilter, KnowledgeAdmin, may, visible

REFRESH_SECONDS = 5
DETAILS: tuple[str, ...] = (
    "name",
    "dataset",
    "data_source_type",
    "kind",
    "size",
    "indexing_status",
    "progress",
    "error",
    "word_count",
    "tokens",
    "stages",
    "enabled",
    "archived",
    "attempts",
    "created_by",
    "created_at",
    "completed_at",
)


@admin.register(Document)
class DocumentAdmin(KnowledgeAdmin):
    """Documents of the datasets one may see; uploading, re-indexing, pausing and resuming
    need `document.upload` on the dataset, the rest `dataset.manage`."""

    change_list_template = "knowledge/document_change_list.html"
    list_display = [
        "name",
        "dataset",
        "status",
        "progress_bar",
        "error_shown",
        "word_count",
        "tokens",
        "enabled",
        "archived",
        "stages",
        "chunks",
        "created_at",
    ]
    list_filter = [DatasetFilter, "indexing_status", "enabled", "archived"]
    list_select_related = ["dataset"]
    search_fields = ["name"]
    actions = [
        "reindex",
        "pause",
        "resume",
        "enable",
        "disable",
        "archive",
        "unarchive",
        "delete_selected",
    ]
    fields = DETAILS
    readonly_fields = DETAILS

    @admin.display(description="status", ordering="indexing_status")
    def status(self, document: Document) -> str:
        return document.get_indexing_status_display()

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, document: Document) -> str:
        return format_html(
            '<progress max="100" value="{}" title="{}%">{}%</progress>',
            document.progress,
            document.progress,
            document.progress,
        )

    @admin.display(description="error")
    def error_shown(self, document: Document) -> str:
        return truncatechars(document.error, 200) or "—"

    @admin.display(description="stage timings")
    def stages(self, document: Document) -> str:
        seconds = document.stage_seconds or {}
        return " · ".join(f"{stage} {value:.2f}s" for stage, value in seconds.items()) or "—"

    @admin.display(description="chunks")
    def chunks(self, document: Document) -> str:
        url = reverse("admin:knowledge_chunk_changelist")
        return format_html('<a href="{}?document__id__exact={}">chunks</a>', url, document.pk)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dataset", "created_by")

    def has_upload_permission(self, request) -> bool:
        return may(request, "upload")

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not may(request, "upload"):
            for name in ("reindex", "pause", "resume"):
                actions.pop(name, None)
        return actions

    def _each(
        self,
        request,
        queryset,
        action: str,
        done: str,
        apply: Callable[[Document], object],
    ) -> None:
        """Apply a service to each selected document the user may act on, in its tenant."""
        count = 0
        for document in queryset.select_related("dataset", "tenant"):
            if not may(request, action, document.dataset):
                self.message_user(
                    request, f"“{document}”: not allowed in this dataset.", messages.ERROR
                )
                continue
            with tenant_context(document.tenant):
                apply(document)
            count += 1
        if count and done:
            self.message_user(request, f"{done} {count} document(s).", messages.SUCCESS)

    @admin.action(description="Re-index selected documents", permissions=["upload"])
    def reindex(self, request, queryset):
        self._each(
            request,
            queryset,
            "upload",
            "Re-indexing",
            lambda document: services.document_reindex(document=document),
        )

    @admin.action(description="Pause indexing", permissions=["upload"])
    def pause(self, request, queryset):
        self._each(
            request,
            queryset,
            "upload",
            "Paused",
            lambda document: services.document_pause(document=document),
        )

    @admin.action(description="Resume indexing", permissions=["upload"])
    def resume(self, request, queryset):
        self._each(
            request,
            queryset,
            "upload",
            "Resumed",
            lambda document: services.document_resume(document=document),
        )

    @admin.action(description="Enable (searchable again)", permissions=["change"])
    def enable(self, request, queryset):
        self._each(
            request,
            queryset,
            "manage",
            "Enabled",
            lambda document: services.document_set_enabled(document=document, enabled=True),
        )

    @admin.action(description="Disable (kept, not searched)", permissions=["change"])
    def disable(self, request, queryset):
        self._each(
            request,
            queryset,
            "manage",
            "Disabled",
            lambda document: services.document_set_enabled(document=document, enabled=False),
        )

    @admin.action(description="Archive", permissions=["change"])
    def archive(self, request, queryset):
        self._each(
            request,
            queryset,
            "manage",
            "Archived",
            lambda document: services.document_set_enabled(
                document=document, enabled=document.enabled, archived=True
            ),
        )

    @admin.action(description="Un-archive", permissions=["change"])
    def unarchive(self, request, queryset):
        self._each(
            request,
            queryset,
            "manage",
            "Un-archived",
            lambda document: services.document_set_enabled(
                document=document, enabled=document.enabled, archived=False
            ),
        )

    def delete_model(self, request, obj) -> None:
        with tenant_context(obj.tenant):
            services.document_delete(document=obj)

    def delete_queryset(self, request, queryset) -> None:
        # Django's delete_selected reports the count itself.
        self._each(request, queryset, "manage", "", lambda d: self.delete_model(request, d))

    def get_deleted_objects(self, objs, request):
        """A summary (documents and their chunk count), not one line per chunk."""
        documents = list(objs)
        refused = {"document" for d in documents if not may(request, "manage", d.dataset)}
        chunks = Chunk.dangerously_unscoped.filter(document__in=documents).count()
        return (
            [str(d) for d in documents],
            {"documents": len(documents), "chunks": chunks},
            refused,
            [],
        )

    def _filtered_dataset(self, request) -> Dataset | None:
        try:
            pk = uuid.UUID(request.GET.get(DatasetFilter.parameter_name, ""))
        except ValueError:
            return None
        return visible(request).filter(pk=pk).first()

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context is not None and "cl" in context:
            shown = context["cl"].result_list
            context["auto_refresh"] = (
                REFRESH_SECONDS if any(d.indexing_status in ACTIVE for d in shown) else None
            )
            dataset = self._filtered_dataset(request)
            if dataset is not None and may(request, "upload", dataset):
                context["upload_url"] = reverse("admin:knowledge_dataset_upload", args=[dataset.pk])
        return response
