"""Routes of the Knowledge API, included under `/v1/` before the Service API's fallback.

Ids are matched as plain strings so that a malformed one answers Dify's "not found" for its
kind ("Dataset not found.") rather than the fallback's generic one. Dify's older
underscore spellings (`create_by_text` …) are kept as aliases."""

from django.urls import path, re_path

from . import datasets, documents, segments
from .base import endpoint

DATASET = "datasets/<str:dataset_id>"
DOCUMENT = f"{DATASET}/documents/<str:document_id>"

create_by_text = endpoint(POST=documents.create_by_text)
create_by_file = endpoint(POST=documents.create_by_file)
update_by_text = endpoint(POST=documents.update_by_text)
update_by_file = endpoint(POST=documents.update_by_file)
retrieve = endpoint(POST=datasets.dataset_retrieve)

urlpatterns = [
    path(
        "datasets",
        endpoint(GET=datasets.dataset_list, POST=datasets.dataset_create),
        name="kapi-datasets",
    ),
    path(
        DATASET,
        endpoint(
            GET=datasets.dataset_detail,
            PATCH=datasets.dataset_update,
            DELETE=datasets.dataset_destroy,
        ),
        name="kapi-dataset",
    ),
    path(f"{DATASET}/retrieve", retrieve, name="kapi-retrieve"),
    path(f"{DATASET}/hit-testing", retrieve),
    path(f"{DATASET}/document/create-by-text", create_by_text, name="kapi-create-by-text"),
    path(f"{DATASET}/document/create_by_text", create_by_text),
    path(f"{DATASET}/document/create-by-file", create_by_file, name="kapi-create-by-file"),
    path(f"{DATASET}/document/create_by_file", create_by_file),
    path(f"{DATASET}/documents", endpoint(GET=documents.document_list), name="kapi-documents"),
    re_path(
        r"^datasets/(?P<dataset_id>[^/]+)/documents/status/(?P<action>enable|disable|archive|un_archive)$",
        endpoint(PATCH=documents.document_status),
        name="kapi-document-status",
    ),
    path(
        DOCUMENT,
        endpoint(GET=documents.document_detail, DELETE=documents.document_destroy),
        name="kapi-document",
    ),
    path(f"{DOCUMENT}/update-by-text", update_by_text, name="kapi-update-by-text"),
    path(f"{DOCUMENT}/update_by_text", update_by_text),
    path(f"{DOCUMENT}/update-by-file", update_by_file, name="kapi-update-by-file"),
    path(f"{DOCUMENT}/update_by_file", update_by_file),
    path(
        f"{DATASET}/documents/<str:batch>/indexing-status",
        endpoint(GET=documents.indexing_status),
        name="kapi-indexing-status",
    ),
    path(
        f"{DOCUMENT}/segments",
        endpoint(GET=segments.segment_list, POST=segments.segment_create),
        name="kapi-segments",
    ),
    path(
        f"{DOCUMENT}/segments/<str:segment_id>",
        endpoint(
            GET=segments.segment_detail,
            POST=segments.segment_update,
            PATCH=segments.segment_update,
            DELETE=segments.segment_destroy,
        ),
        name="kapi-segment",
    ),
]
