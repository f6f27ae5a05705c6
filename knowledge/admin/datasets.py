"""Datasets: list, add (with the default chunking rule), change, delete, and per dataset an
upload page (several files at once) and a hit-testing page with the recent queries."""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from tenants.admin_base import TenantScopedAdmin
from tenants.context import tenant_context
from tenants.exceptions import WeftError

from .. import retrieval, services
from ..forms import DatasetForm, HitTestForm, UploadForm
from ..models import Chunk, Dataset, Document, HitTestQuery
from .base import may, visible

RULE_FIELDS = [
    "mode",
    "separator",
    "max_tokens",
    "chunk_overlap",
    "child_separator",
    "child_max_tokens",
]
FIXED_AFTER_CREATE = ["indexing_technique", "doc_form", "embedding_model"]
HISTORY = 20


def documents_url(dataset: Dataset) -> str:
    return f"{reverse('admin:knowledge_document_changelist')}?dataset__id__exact={dataset.pk}"


@admin.register(Dataset)
class DatasetAdmin(TenantScopedAdmin):
    """Datasets the principal may see; managing one needs `dataset.manage` on it."""

    permission_kind = "dataset"
    add_action: str | None = "create"
    change_action: str | None = "manage"
    delete_action: str | None = "manage"
    form = DatasetForm
    change_form_template = "knowledge/dataset_change_form.html"
    list_display = [
        "name",
        "documents",
        "chunks",
        "embedding_model",
        "permission",
        "indexing_technique",
        "created_at",
        "pages",
    ]
    list_filter = ["permission", "indexing_technique"]
    search_fields = ["name", "description"]

    def get_queryset(self, request):
        datasets = super().get_queryset(request) if request.user.is_superuser else visible(request)
        return datasets.select_related("embedding_model", "created_by").annotate(
            document_total=Count("documents")
        )

    def _allowed(self, request, action: str | None, obj=None) -> bool:
        if action is None:
            return False
        return may(request, action, obj)

    @admin.display(description="documents", ordering="document_total")
    def documents(self, dataset: Dataset) -> str:
        return format_html(
            '<a href="{}">{}</a>', documents_url(dataset), getattr(dataset, "document_total", 0)
        )

    @admin.display(description="searchable chunks", ordering="chunk_count")
    def chunks(self, dataset: Dataset) -> int:
        return dataset.chunk_count

    @admin.display(description="")
    def pages(self, dataset: Dataset) -> str:
        links = [
            (self._url("upload", dataset), "Upload"),
            (self._url("hit_testing", dataset), "Hit testing"),
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    @admin.display(description="chunking rule")
    def chunking_rule(self, dataset: Dataset) -> str:
        rule = dataset.process_rule or {}
        segmentation = (rule.get("rules") or {}).get("segmentation") or {}
        if rule.get("mode", "automatic") == "automatic" or not segmentation:
            return "automatic"
        return (
            f"{rule['mode']}: separator {segmentation.get('separator')!s}, "
            f"at most {segmentation.get('max_tokens')} tokens, "
            f"overlap {segmentation.get('chunk_overlap', 0)}"
        )

    def _url(self, name: str, dataset: Dataset) -> str:
        return reverse(f"admin:knowledge_dataset_{name}", args=[dataset.pk])

    def get_fieldsets(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return [
                (
                    None,
                    {
                        "fields": [
                            "name",
                            "description",
                            "permission",
                            *FIXED_AFTER_CREATE,
                            "chunking_rule",
                            "chunk_count",
                            "created_by",
                            "created_at",
                        ]
                    },
                )
            ]
        indexing = [*FIXED_AFTER_CREATE]
        if obj is not None:
            indexing += ["embedding_dimensions", "chunk_count", "created_by", "created_at"]
        return [
            (None, {"fields": ["name", "description", "permission"]}),
            ("Indexing", {"fields": indexing}),
            (
                "Default chunking rule",
                {
                    "fields": RULE_FIELDS,
                    "description": "New documents are split by this rule.",
                },
            ),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if not self.has_change_permission(request, obj):
            return ["chunking_rule", "chunk_count", "created_by", "created_at"]
        # Existing chunks were made and embedded this way: changing it means a new dataset.
        return [
            *FIXED_AFTER_CREATE,
            "embedding_dimensions",
            "chunk_count",
            "created_by",
            "created_at",
        ]

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if change:
            saved = services.dataset_update(
                tenant=obj.tenant,
                dataset=obj,
                name=data["name"],
                description=data.get("description", ""),
                permission=data["permission"],
                process_rule=data["process_rule"],
            )
            obj.__dict__.update(saved.__dict__)
            return
        saved = services.dataset_create(
            tenant=request.tenant,
            name=data["name"],
            description=data.get("description", ""),
            created_by=request.user,
            indexing_technique=data["indexing_technique"],
            doc_form=data["doc_form"],
            permission=data["permission"],
            embedding_model=data.get("embedding_model"),
            process_rule=data["process_rule"],
        )
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request, obj) -> None:
        services.dataset_delete(dataset=obj)

    def delete_queryset(self, request, queryset) -> None:
        for dataset in queryset:
            if may(request, "manage", dataset):
                self.delete_model(request, dataset)
            else:
                self.message_user(request, f"{dataset}: not yours to delete.", messages.ERROR)

    def get_deleted_objects(self, objs, request):
        """A summary (datasets, documents, chunks), not one line per chunk."""
        datasets = list(objs)
        refused = {"dataset" for d in datasets if not may(request, "manage", d)}
        counts = {
            "datasets": len(datasets),
            "documents": Document.dangerously_unscoped.filter(dataset__in=datasets).count(),
            "chunks": Chunk.dangerously_unscoped.filter(dataset__in=datasets).count(),
        }
        return [str(d) for d in datasets], counts, refused, []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["dataset_pages"] = [
                (documents_url(obj), "Documents"),
                *(
                    [(self._url("upload", obj), "Upload files")]
                    if may(request, "upload", obj)
                    else []
                ),
                (self._url("hit_testing", obj), "Hit testing"),
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/upload/",
                self.admin_site.admin_view(self.upload_view),
                name="knowledge_dataset_upload",
            ),
            path(
                "<path:object_id>/hit-testing/",
                self.admin_site.admin_view(self.hit_testing_view),
                name="knowledge_dataset_hit_testing",
            ),
            *super().get_urls(),
        ]

    def _dataset(self, request, object_id: str, action: str) -> Dataset:
        """The dataset, 404 when missing, foreign or invisible; 403 without `action` on it."""
        try:
            pk = uuid.UUID(object_id)
        except ValueError as exc:
            raise Http404("Not found.") from exc
        dataset = get_object_or_404(self.get_queryset(request), pk=pk)
        if not may(request, action, dataset):
            raise PermissionDenied
        return dataset

    def _page(self, request, dataset: Dataset, title: str, **context: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "dataset": dataset,
            "original": dataset,
            "dataset_url": reverse("admin:knowledge_dataset_change", args=[dataset.pk]),
            "documents_url": documents_url(dataset),
            **context,
        }

    def upload_view(self, request, object_id: str):
        """Several files (one document each) and an optional text; a file that cannot be
        taken is refused alone, with its reason, and the others go ahead."""
        with tenant_context(self._object_tenant(request, object_id)):
            dataset = self._dataset(request, object_id, "upload")
            posted = request.method == "POST"
            form = UploadForm(request.POST, request.FILES) if posted else UploadForm()
            if posted and form.is_valid():
                created, refused = upload(
                    dataset=dataset, data=form.cleaned_data, user=request.user
                )
                for reason in refused:
                    self.message_user(request, reason, messages.ERROR)
                if created:
                    names = ", ".join(document.name for document in created)
                    self.message_user(
                        request,
                        f"Added {len(created)} document(s), now being indexed: {names}.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(documents_url(dataset))
            context = self._page(
                request,
                dataset,
                f"Upload to {dataset}",
                form=form,
                max_kb=services.MAX_FILE_BYTES // 1024,
            )
            return TemplateResponse(request, "knowledge/upload.html", context)

    def hit_testing_view(self, request, object_id: str):
        """A query against this dataset, its results with every score, and recent queries."""
        with tenant_context(self._object_tenant(request, object_id)):
            dataset = self._dataset(request, object_id, "view")
            posted = request.method == "POST"
            form = HitTestForm(request.POST if posted else None, initial=_hit_test_initial(dataset))
            results: list[retrieval.Record] | None = None
            if posted and form.is_valid():
                try:
                    results = hit_test(
                        dataset=dataset,
                        query=form.cleaned_data["query"],
                        retrieval_model=form.retrieval_model(),
                        user=request.user,
                    )
                except WeftError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
            history = HitTestQuery.objects.filter(dataset=dataset).select_related("created_by")
            context = self._page(
                request,
                dataset,
                f"Hit testing: {dataset}",
                form=form,
                results=results,
                history=history[:HISTORY],
            )
            return TemplateResponse(request, "knowledge/hit_testing.html", context)


def upload(*, dataset: Dataset, data: dict[str, Any], user) -> tuple[list[Document], list[str]]:
    """One document per file through services.document_create; (created, refusal reasons)."""
    created: list[Document] = []
    refused: list[str] = []
    limit = services.MAX_FILE_BYTES
    for file in data.get("uploads") or []:
        name = file.name or "upload"
        if not file.size:
            refused.append(f"“{name}” is empty: there is nothing to index.")
            continue
        if file.size > limit:
            refused.append(
                f"“{name}” is {file.size // 1024} KB; at most {limit // 1024} KB is accepted."
            )
            continue
        try:
            created.append(
                services.document_create(
                    dataset=dataset, name=name, data=file.read(), created_by=user
                )
            )
        except WeftError as exc:
            refused.append(f"“{name}”: {exc.message}")
    text = (data.get("text") or "").strip()
    if text:
        name = data["text_name"].strip()
        try:
            created.append(
                services.document_create(dataset=dataset, name=name, text=text, created_by=user)
            )
        except WeftError as exc:
            refused.append(f"“{name}”: {exc.message}")
    return created, refused


def _hit_test_initial(dataset: Dataset) -> dict[str, Any]:
    saved = dataset.retrieval_model or {}
    initial: dict[str, Any] = {}
    if saved.get("search_method") in {"semantic_search", "full_text_search", "hybrid_search"}:
        initial["search_method"] = saved["search_method"]
    if isinstance(saved.get("top_k"), int):
        initial["top_k"] = saved["top_k"]
    if saved.get("score_threshold_enabled"):
        initial["score_threshold"] = saved.get("score_threshold")
    initial["rerank"] = bool(saved.get("reranking_enable"))
    return initial


def hit_test(
    *, dataset: Dataset, query: str, retrieval_model: dict[str, Any], user
) -> list[retrieval.Record]:
    """Run retrieval as the console does; it records the query in the hit-test history."""
    settings = retrieval.RetrievalSettings.from_dify(
        retrieval_model, defaults=dataset.retrieval_model or {}
    )
    return async_to_sync(retrieval.retrieve)(
        tenant=dataset.tenant,
        datasets=[dataset],
        query=query,
        settings=settings,
        source=HitTestQuery.Source.CONSOLE,
        user=user,
    )
