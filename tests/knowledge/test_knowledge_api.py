"""The Dify-compatible Knowledge API (`/v1/datasets…`, `Bearer dataset-…`): every endpoint's
happy path in Dify's shapes, tenancy (404), permissions (403), each error code in the
envelope, and a Dify client's flow end to end on the async path."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient, Client
from django.utils import timezone

from knowledge import indexing, services
from knowledge.models import Chunk, Dataset, Document
from providers.models import Model, ModelKind
from tenants import services as tenant_services
from tenants.context import get_current_tenant, tenant_context
from tenants.models import ApiKey, AuditLog
from tenants.roles import Role
from tests.factories import api_key

HANDBOOK = """# Weaving handbook

## Looms

A loom holds the warp threads under tension. The weft is passed through the warp.

## Fibres

Wool is a protein fibre. Cotton is a cellulose fibre. Linen comes from flax.
"""
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def dataset_key(tenant, user=None) -> str:
    """A `dataset-` key made by `user` (None: a key with nobody behind it)."""
    _, raw = tenant_services.api_key_create(
        tenant=tenant,
        kind=ApiKey.Kind.DATASET,
        principal=tenant_services.PLATFORM,
        name="kb",
        created_by=user,
    )
    return raw


def auth(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def index(document_id) -> str:
    document = Document.dangerously_unscoped.get(pk=document_id)
    with tenant_context(document.tenant):
        return indexing.index_document(document_id=document.pk)


def error_of(response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"code", "message", "status"} and body["status"] == response.status_code
    assert body["message"]
    return response.status_code, body["code"]


class Api:
    """A sync test client speaking JSON with one key."""

    def __init__(self, client, raw: str):
        self.client = client
        self.headers = auth(raw)

    def get(self, url, **params):
        return self.client.get(url, params, **self.headers)

    def send(self, method, url, body=None):
        if method in ("get", "delete"):
            return getattr(self.client, method)(url, **self.headers)
        data = body if isinstance(body, str | bytes) else json.dumps(body or {})
        return getattr(self.client, method)(
            url, data, content_type="application/json", **self.headers
        )

    def post(self, url, body=None):
        return self.send("post", url, body)

    def patch(self, url, body=None):
        return self.send("patch", url, body)

    def delete(self, url):
        return self.client.delete(url, **self.headers)

    def upload(self, url, *files, data=None):
        fields: dict = {"file": list(files) if len(files) > 1 else files[0]} if files else {}
        if data is not None:
            fields["data"] = json.dumps(data)
        return self.client.post(url, fields, **self.headers)


@pytest.fixture
def builder(tenant, make_member):
    return make_member(tenant, Role.BUILDER, email="builder@example.com")


@pytest.fixture
def api(client, tenant, builder):
    return Api(client, dataset_key(tenant, builder))


@pytest.fixture
def dataset(tenant, builder):
    return services.dataset_create(
        tenant=tenant, name="Handbook", created_by=builder, description="Weaving notes"
    )


@pytest.fixture
def document(dataset, builder):
    with tenant_context(dataset.tenant):
        document = services.document_create(
            dataset=dataset, name="handbook.md", data=HANDBOOK.encode(), created_by=builder
        )
    assert index(document.pk) == "completed"
    return Document.dangerously_unscoped.get(pk=document.pk)


def chunks_of(document):
    return list(Chunk.dangerously_unscoped.filter(document=document).order_by("position"))


# Datasets


def test_create_dataset_in_difys_shape(api, builder):
    embedding = Model.catalog.filter(kind=ModelKind.EMBEDDING).first()
    assert embedding is not None
    response = api.post(
        "/v1/datasets",
        {
            "name": "Manuals",
            "description": "How things work",
            "indexing_technique": "high_quality",
            "permission": "all_team_members",
            "embedding_model": embedding.name,
            "embedding_model_provider": f"langgenius/{embedding.provider}/{embedding.provider}",
            "retrieval_model": {"search_method": "hybrid_search", "top_k": 4},
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "Manuals" and body["description"] == "How things work"
    assert body["permission"] == "all_team_members" and body["doc_form"] == "text_model"
    assert body["embedding_model"] == embedding.name
    assert body["embedding_model_provider"] == embedding.provider
    assert body["retrieval_model_dict"]["search_method"] == "hybrid_search"
    assert body["retrieval_model_dict"]["top_k"] == 4
    assert body["document_count"] == 0 and body["word_count"] == 0
    assert body["created_by"] == str(builder.pk) and isinstance(body["created_at"], int)
    stored = Dataset.dangerously_unscoped.get(pk=body["id"])
    assert stored.created_by == builder and stored.embedding_model == embedding


def test_list_datasets_paginates_and_filters(api, tenant, builder, document):
    for name in ("Alpha notes", "Beta notes", "Gamma"):
        services.dataset_create(tenant=tenant, name=name, created_by=builder)
    first = api.get("/v1/datasets", page=1, limit=2).json()
    assert first["total"] == 4 and first["has_more"] is True
    assert first["limit"] == 2 and first["page"] == 1 and len(first["data"]) == 2
    second = api.get("/v1/datasets", page=2, limit=2).json()
    assert second["has_more"] is False
    names = {row["name"] for row in first["data"] + second["data"]}
    assert names == {"Handbook", "Alpha notes", "Beta notes", "Gamma"}
    notes = api.get("/v1/datasets", keyword="notes").json()
    assert sorted(row["name"] for row in notes["data"]) == ["Alpha notes", "Beta notes"]
    handbook = next(row for row in first["data"] + second["data"] if row["name"] == "Handbook")
    assert handbook["document_count"] == 1 and handbook["word_count"] == document.word_count


def test_list_datasets_query_count_does_not_grow(
    api, tenant, builder, django_assert_max_num_queries
):
    for i in range(6):
        services.dataset_create(tenant=tenant, name=f"Set {i}", created_by=builder)
    with django_assert_max_num_queries(8):
        response = api.get("/v1/datasets", limit=100)
    assert len(response.json()["data"]) == 6


def test_get_patch_delete_dataset(api, dataset):
    url = f"/v1/datasets/{dataset.pk}"
    shown = api.get(url).json()
    assert shown["id"] == str(dataset.pk) and shown["description"] == "Weaving notes"
    changed = api.patch(
        url,
        {
            "name": "Weaving",
            "description": "",
            "permission": "all_team_members",
            "retrieval_model": {"search_method": "full_text_search", "top_k": 5},
        },
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert body["name"] == "Weaving" and body["permission"] == "all_team_members"
    assert body["retrieval_model_dict"]["search_method"] == "full_text_search"
    dataset.refresh_from_db()
    assert dataset.name == "Weaving" and dataset.retrieval_model["top_k"] == 5
    deleted = api.delete(url)
    assert deleted.status_code == 204
    assert not Dataset.dangerously_unscoped.filter(pk=dataset.pk).exists()
    assert error_of(api.get(url)) == (404, "not_found")


def test_dataset_errors(api, dataset):
    assert error_of(api.post("/v1/datasets", {"name": "Handbook"})) == (
        409,
        "dataset_name_duplicate",
    )
    other = api.post("/v1/datasets", {"name": "Other"}).json()
    renamed = api.patch(f"/v1/datasets/{other['id']}", {"name": "Handbook"})
    assert error_of(renamed) == (409, "dataset_name_duplicate")
    missing = api.post("/v1/datasets", {"description": "no name"})
    assert error_of(missing) == (400, "invalid_param") and "name" in missing.json()["message"]
    bad = api.post("/v1/datasets", {"name": "X", "permission": "everyone"})
    assert error_of(bad) == (400, "invalid_param") and "permission" in bad.json()["message"]
    model = api.post("/v1/datasets", {"name": "Y", "embedding_model": "no-such-model"})
    assert error_of(model) == (400, "invalid_param")
    assert "embedding_model" in model.json()["message"]
    assert error_of(api.post("/v1/datasets", "{not json")) == (400, "invalid_param")
    assert error_of(api.post("/v1/datasets", "[1, 2]")) == (400, "invalid_param")
    assert error_of(api.get("/v1/datasets", limit="many")) == (400, "invalid_param")
    assert error_of(api.get("/v1/datasets/not-a-uuid")) == (404, "not_found")
    assert api.get("/v1/datasets/not-a-uuid").json()["message"] == "Dataset not found."
    assert error_of(api.send("put", f"/v1/datasets/{dataset.pk}")) == (405, "method_not_allowed")


def test_dataset_without_embedding_model_is_not_initialized(api, dataset):
    Dataset.dangerously_unscoped.filter(pk=dataset.pk).update(embedding_model=None)
    response = api.post(
        f"/v1/datasets/{dataset.pk}/document/create-by-text", {"name": "a", "text": "b"}
    )
    assert error_of(response) == (400, "dataset_not_initialized")
    economy = api.post(
        f"/v1/datasets/{dataset.pk}/document/create-by-text",
        {"name": "a", "text": "b", "indexing_technique": "economy"},
    )
    assert economy.status_code == 200, economy.content


# Documents


def test_create_by_text_then_index(api, dataset, builder):
    response = api.post(
        f"/v1/datasets/{dataset.pk}/document/create-by-text",
        {
            "name": "looms",
            "text": HANDBOOK,
            "process_rule": {"mode": "automatic"},
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    document = body["document"]
    assert document["name"] == "looms" and document["data_source_type"] == "text"
    assert document["indexing_status"] == "waiting" and document["display_status"] == "queuing"
    assert document["created_by"] == str(builder.pk) and document["position"] == 1
    stored = Document.dangerously_unscoped.get(pk=document["id"])
    assert stored.batch == body["batch"] and len(body["batch"]) == 20
    assert index(stored.pk) == "completed"
    shown = api.get(f"/v1/datasets/{dataset.pk}/documents/{stored.pk}").json()
    assert shown["indexing_status"] == "completed" and shown["display_status"] == "available"
    assert shown["word_count"] > 10 and shown["tokens"] > 0


def test_create_by_file_with_data(api, dataset):
    upload = SimpleUploadedFile("handbook.md", HANDBOOK.encode(), content_type="text/markdown")
    response = api.upload(
        f"/v1/datasets/{dataset.pk}/document/create-by-file",
        upload,
        data={
            "process_rule": {
                "mode": "custom",
                "rules": {
                    "segmentation": {"separator": "\\n\\n", "max_tokens": 100, "chunk_overlap": 0}
                },
            }
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["document"]["name"] == "handbook.md"
    assert body["document"]["data_source_type"] == "upload_file"
    stored = Document.dangerously_unscoped.get(pk=body["document"]["id"])
    assert stored.process_rule["mode"] == "custom" and stored.size == len(HANDBOOK.encode())
    assert index(stored.pk) == "completed" and stored.batch == body["batch"]
    assert len(chunks_of(stored)) >= 2


def test_upload_errors(api, dataset, monkeypatch):
    url = f"/v1/datasets/{dataset.pk}/document/create-by-file"
    assert error_of(api.upload(url)) == (400, "no_file_uploaded")
    two = api.upload(url, SimpleUploadedFile("a.txt", b"one"), SimpleUploadedFile("b.txt", b"two"))
    assert error_of(two) == (400, "too_many_files")
    assert error_of(api.upload(url, SimpleUploadedFile("p.png", PNG))) == (
        415,
        "unsupported_file_type",
    )
    assert error_of(api.upload(url, SimpleUploadedFile("e.txt", b""))) == (400, "invalid_param")
    bad_data = api.client.post(
        url, {"file": SimpleUploadedFile("a.txt", b"text"), "data": "{oops"}, **api.headers
    )
    assert error_of(bad_data) == (400, "invalid_param")
    assert "data" in bad_data.json()["message"]
    monkeypatch.setattr(services, "MAX_FILE_BYTES", 10)
    big = api.upload(url, SimpleUploadedFile("big.txt", b"x" * 11))
    assert error_of(big) == (413, "file_too_large")
    assert not Document.dangerously_unscoped.filter(dataset=dataset).exists()


def test_create_by_text_invalid_params(api, dataset, document):
    url = f"/v1/datasets/{dataset.pk}/document/create-by-text"
    missing = api.post(url, {"name": "x"})
    assert error_of(missing) == (400, "invalid_param") and "text" in missing.json()["message"]
    rule = api.post(url, {"name": "x", "text": "y", "process_rule": {"mode": "bogus"}})
    assert error_of(rule) == (400, "invalid_param")
    assert "process_rule" in rule.json()["message"]
    form = api.post(url, {"name": "x", "text": "y", "doc_form": "qa_model"})
    assert error_of(form) == (400, "invalid_param") and "doc_form" in form.json()["message"]


def test_list_get_delete_documents(api, dataset, document, django_assert_max_num_queries):
    with tenant_context(dataset.tenant):
        other = services.document_create(dataset=dataset, name="notes.txt", text="Flax notes.")
    url = f"/v1/datasets/{dataset.pk}/documents"
    with django_assert_max_num_queries(10):
        listing = api.get(url).json()
    assert [row["name"] for row in listing["data"]] == ["handbook.md", "notes.txt"]
    assert listing["total"] == 2 and listing["has_more"] is False and listing["page"] == 1
    found = api.get(url, keyword="notes").json()["data"]
    assert [row["id"] for row in found] == [str(other.pk)]
    shown = api.get(f"{url}/{document.pk}").json()
    assert shown["id"] == str(document.pk) and shown["hit_count"] == 0
    assert api.delete(f"{url}/{document.pk}").status_code == 204
    assert not Chunk.dangerously_unscoped.filter(document_id=document.pk).exists()
    assert error_of(api.get(f"{url}/{document.pk}")) == (404, "not_found")
    assert api.get(f"{url}/{document.pk}").json()["message"] == "Document not found."


def test_document_status_actions(api, dataset, document):
    url = f"/v1/datasets/{dataset.pk}/documents/status"
    ids = {"document_ids": [str(document.pk)]}

    def state():
        fresh = Document.dangerously_unscoped.get(pk=document.pk)
        live = {c.live for c in chunks_of(document)}
        return fresh.enabled, fresh.archived, live

    assert api.patch(f"{url}/disable", ids).json() == {"result": "success"}
    assert state() == (False, False, {False})
    assert api.patch(f"{url}/enable", ids).status_code == 200
    assert state() == (True, False, {True})
    assert api.patch(f"{url}/archive", ids).status_code == 200
    assert state() == (True, True, {False})
    assert (
        api.get(f"/v1/datasets/{dataset.pk}/documents/{document.pk}").json()["display_status"]
        == "archived"
    )
    assert api.patch(f"{url}/un_archive", ids).status_code == 200
    assert state() == (True, False, {True})
    assert error_of(api.patch(f"{url}/disable", {"document_ids": "x"})) == (400, "invalid_param")
    unknown = api.patch(f"{url}/disable", {"document_ids": [str(document.pk), str(dataset.pk)]})
    assert error_of(unknown) == (404, "not_found")
    assert state() == (True, False, {True})  # all or nothing
    assert error_of(api.patch(f"{url}/explode", ids)) == (404, "not_found")


def test_update_by_text_and_by_file_reindex(api, dataset, document):
    base = f"/v1/datasets/{dataset.pk}/documents/{document.pk}"
    before = {c.pk for c in chunks_of(document)}
    response = api.post(f"{base}/update-by-text", {"name": "dyes", "text": "Indigo dye is blue."})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["document"]["name"] == "dyes" and body["document"]["indexing_status"] == "waiting"
    stored = Document.dangerously_unscoped.get(pk=document.pk)
    assert stored.batch == body["batch"] and stored.batch != document.batch
    assert stored.data_source_type == "text" and not stored.file
    assert not Chunk.dangerously_unscoped.filter(document=document).exists()
    assert index(document.pk) == "completed"
    after = chunks_of(document)
    assert [c.content for c in after] == ["Indigo dye is blue."] and before.isdisjoint(
        {c.pk for c in after}
    )
    upload = SimpleUploadedFile("wool.txt", b"Wool keeps you warm when wet.")
    replaced = api.upload(f"{base}/update-by-file", upload)
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["document"]["name"] == "wool.txt"
    assert index(document.pk) == "completed"
    assert [c.content for c in chunks_of(document)] == ["Wool keeps you warm when wet."]
    unsupported = api.upload(f"{base}/update-by-file", SimpleUploadedFile("p.png", PNG))
    assert error_of(unsupported) == (415, "unsupported_file_type")


def test_update_refused_while_indexing(api, dataset, document):
    Document.dangerously_unscoped.filter(pk=document.pk).update(indexing_status="splitting")
    response = api.post(
        f"/v1/datasets/{dataset.pk}/documents/{document.pk}/update-by-text", {"text": "new"}
    )
    assert error_of(response) == (400, "document_indexing")


def test_indexing_status(api, dataset):
    created = api.post(
        f"/v1/datasets/{dataset.pk}/document/create-by-text", {"name": "h", "text": HANDBOOK}
    ).json()
    url = f"/v1/datasets/{dataset.pk}/documents/{created['batch']}/indexing-status"
    waiting = api.get(url).json()["data"]
    assert [row["indexing_status"] for row in waiting] == ["waiting"]
    assert waiting[0]["completed_segments"] == 0 and waiting[0]["completed_at"] is None
    index(created["document"]["id"])
    (row,) = api.get(url).json()["data"]
    assert row["id"] == created["document"]["id"] and row["indexing_status"] == "completed"
    assert row["total_segments"] > 0 and row["completed_segments"] == row["total_segments"]
    assert isinstance(row["completed_at"], int) and row["error"] is None
    assert set(row) >= {
        "processing_started_at",
        "parsing_completed_at",
        "cleaning_completed_at",
        "splitting_completed_at",
        "paused_at",
        "stopped_at",
    }
    missing = api.get(f"/v1/datasets/{dataset.pk}/documents/000/indexing-status")
    assert error_of(missing) == (404, "not_found")


# Segments


def test_segments_list_and_get(api, dataset, document, django_assert_max_num_queries):
    url = f"/v1/datasets/{dataset.pk}/documents/{document.pk}/segments"
    with django_assert_max_num_queries(10):
        listing = api.get(url).json()
    stored = chunks_of(document)
    assert listing["total"] == len(stored) and listing["doc_form"] == "text_model"
    first = listing["data"][0]
    assert first["id"] == str(stored[0].pk) and first["position"] == 1
    assert first["content"] == stored[0].content and first["status"] == "completed"
    assert first["document_id"] == str(document.pk) and first["child_chunks"] == []
    found = api.get(url, keyword="cellulose").json()["data"]
    assert len(found) == 1 and "cellulose" in found[0]["content"]
    one = api.get(f"{url}/{stored[0].pk}").json()
    assert one["data"]["id"] == str(stored[0].pk) and one["doc_form"] == "text_model"
    assert error_of(api.get(f"{url}/{dataset.pk}")) == (404, "not_found")
    assert api.get(f"{url}/{dataset.pk}").json()["message"] == "Segment not found."


def test_add_segments_embeds_and_makes_them_live(api, dataset, document):
    url = f"/v1/datasets/{dataset.pk}/documents/{document.pk}/segments"
    existing = len(chunks_of(document))
    response = api.post(
        url,
        {
            "segments": [
                {"content": "Silk comes from silkworm cocoons.", "keywords": ["silk", "cocoon"]},
                {"content": "Hemp is a bast fibre."},
            ]
        },
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert [row["position"] for row in data] == [existing + 1, existing + 2]
    assert data[0]["keywords"] == ["silk", "cocoon"]
    added = chunks_of(document)[existing:]
    assert [c.content for c in added] == [
        "Silk comes from silkworm cocoons.",
        "Hemp is a bast fibre.",
    ]
    assert all(c.live and c.enabled and c.embedding_dim == 512 for c in added)
    assert all(c.tokens > 0 for c in added)
    dataset.refresh_from_db()
    assert dataset.chunk_count == existing + 2
    empty = api.post(url, {"segments": [{"content": ""}]})
    assert error_of(empty) == (400, "invalid_param")
    assert "segments[0].content" in empty.json()["message"]
    assert error_of(api.post(url, {"segments": []})) == (400, "invalid_param")


def test_add_segments_refused_before_indexing_completes(api, dataset):
    with tenant_context(dataset.tenant):
        waiting = services.document_create(dataset=dataset, name="w", text="Waiting text.")
    response = api.post(
        f"/v1/datasets/{dataset.pk}/documents/{waiting.pk}/segments",
        {"segments": [{"content": "early"}]},
    )
    assert error_of(response) == (400, "document_indexing")


def test_update_segment_reembeds_and_toggles(api, dataset, document):
    chunk = chunks_of(document)[0]
    url = f"/v1/datasets/{dataset.pk}/documents/{document.pk}/segments/{chunk.pk}"
    assert chunk.embedding is not None
    before_vector = list(chunk.embedding)
    response = api.post(url, {"segment": {"content": "Looms weave cloth.", "keywords": ["loom"]}})
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["id"] == str(chunk.pk) and data["content"] == "Looms weave cloth."
    assert data["keywords"] == ["loom"]
    fresh = Chunk.dangerously_unscoped.get(pk=chunk.pk)
    assert fresh.content == "Looms weave cloth." and fresh.live
    assert fresh.embedding is not None and fresh.embedding_dim == 512
    assert list(fresh.embedding) != before_vector
    count = Dataset.dangerously_unscoped.get(pk=dataset.pk).chunk_count
    disabled = api.post(url, {"segment": {"enabled": False}})
    assert disabled.json()["data"]["enabled"] is False
    assert Dataset.dangerously_unscoped.get(pk=dataset.pk).chunk_count == count - 1
    unchanged = Chunk.dangerously_unscoped.get(pk=chunk.pk)
    assert not unchanged.enabled and unchanged.embedding is not None
    assert list(unchanged.embedding) == list(fresh.embedding)
    assert error_of(api.post(url, {"segment": {"enabled": "no"}})) == (400, "invalid_param")
    assert error_of(api.post(url, {"content": "x"})) == (400, "invalid_param")


def test_delete_segment(api, dataset, document):
    chunk = chunks_of(document)[0]
    count = Dataset.dangerously_unscoped.get(pk=dataset.pk).chunk_count
    url = f"/v1/datasets/{dataset.pk}/documents/{document.pk}/segments/{chunk.pk}"
    assert api.delete(url).status_code == 204
    assert not Chunk.dangerously_unscoped.filter(pk=chunk.pk).exists()
    assert Dataset.dangerously_unscoped.get(pk=dataset.pk).chunk_count == count - 1
    assert error_of(api.delete(url)) == (404, "not_found")


def test_api_writes_are_audited_as_the_key(api, tenant, dataset, document):
    key = ApiKey.dangerously_unscoped.get(tenant=tenant, kind=ApiKey.Kind.DATASET)
    base = f"/v1/datasets/{dataset.pk}"
    doc = f"{base}/documents/{document.pk}"
    assert api.patch(base, {"description": "Looms and fibres"}).status_code == 200
    disabled = api.patch(f"{base}/documents/status/disable", {"document_ids": [str(document.pk)]})
    assert disabled.status_code == 200
    added = api.post(f"{doc}/segments", {"segments": [{"content": "Silk comes from cocoons."}]})
    segment_id = added.json()["data"][0]["id"]
    assert api.delete(f"{doc}/segments/{segment_id}").status_code == 204
    assert api.post(f"{doc}/update-by-text", {"text": "Indigo dye."}).status_code == 200

    rows = AuditLog.dangerously_unscoped.filter(tenant=tenant).order_by("id")
    assert {(r.source, r.actor_label, r.actor_id) for r in rows} == {
        ("api", f"API key {key.prefix}…", None)
    }
    written = [(r.action, r.object_type, r.object_id) for r in rows if r.object_id != str(key.pk)]
    assert written[:5] == [
        ("update", "knowledge.dataset", str(dataset.pk)),
        ("update", "knowledge.document", str(document.pk)),
        ("create", "knowledge.chunk", segment_id),
        ("delete", "knowledge.chunk", segment_id),
        ("update", "knowledge.document", str(document.pk)),
    ]
    assert rows[0].changes == {"description": ["Weaving notes", "Looms and fibres"]}


# Retrieval


def test_retrieve_records_in_difys_shape(api, dataset, document):
    response = api.post(
        f"/v1/datasets/{dataset.pk}/retrieve",
        {
            "query": "cellulose fibre",
            "retrieval_model": {"search_method": "full_text_search", "top_k": 2},
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["query"] == {"content": "cellulose fibre"}
    assert 1 <= len(body["records"]) <= 2
    top = body["records"][0]
    assert "Cotton is a cellulose fibre" in top["segment"]["content"]
    assert top["segment"]["document"] == {
        "id": str(document.pk),
        "data_source_type": "upload_file",
        "name": "handbook.md",
    }
    assert top["segment"]["status"] == "completed" and top["score"] > 0
    assert top["child_chunks"] == []
    missing = api.post(f"/v1/datasets/{dataset.pk}/retrieve", {"retrieval_model": {}})
    assert error_of(missing) == (400, "invalid_param") and "query" in missing.json()["message"]
    bad = api.post(
        f"/v1/datasets/{dataset.pk}/retrieve",
        {"query": "x", "retrieval_model": {"search_method": "magic"}},
    )
    assert error_of(bad) == (400, "invalid_param")


# Authentication, tenancy, permissions


def test_keys_are_checked(client, tenant, builder, dataset):
    url = f"/v1/datasets/{dataset.pk}"
    assert error_of(client.get(url)) == (401, "unauthorized")
    assert error_of(client.get(url, **auth("dataset-nonsense"))) == (401, "unauthorized")
    raw = dataset_key(tenant, builder)
    revoked = ApiKey.dangerously_unscoped.filter(prefix=raw[:14])
    assert revoked.update(revoked_at=timezone.now()) == 1
    assert error_of(client.get(url, **auth(raw))) == (401, "unauthorized")
    _, app_raw = api_key(tenant, kind=ApiKey.Kind.APP)
    assert error_of(client.get(url, **auth(app_raw))) == (403, "wrong_key_kind")


def test_another_tenants_objects_are_not_found(client, api, other_tenant, make_member):
    stranger = make_member(other_tenant, Role.OWNER, email="stranger@example.com")
    theirs = services.dataset_create(
        tenant=other_tenant, name="Secret", created_by=stranger, permission="all_team_members"
    )
    with tenant_context(other_tenant):
        document = services.document_create(dataset=theirs, name="s.txt", text="Secret text.")
    index(document.pk)
    segment = chunks_of(document)[0]
    base = f"/v1/datasets/{theirs.pk}"
    doc = f"{base}/documents/{document.pk}"
    for method, url in [
        ("get", base),
        ("patch", base),
        ("delete", base),
        ("get", f"{base}/documents"),
        ("get", doc),
        ("delete", doc),
        ("post", f"{doc}/update-by-text"),
        ("get", f"{doc}/segments"),
        ("post", f"{doc}/segments"),
        ("get", f"{doc}/segments/{segment.pk}"),
        ("post", f"{doc}/segments/{segment.pk}"),
        ("delete", f"{doc}/segments/{segment.pk}"),
        ("post", f"{base}/retrieve"),
        ("post", f"{base}/document/create-by-text"),
    ]:
        response = api.send(method, url, {"query": "secret", "name": "x", "text": "y"})
        assert error_of(response) == (404, "not_found"), (method, url)
    assert api.get("/v1/datasets").json()["total"] == 0
    assert Chunk.dangerously_unscoped.filter(pk=segment.pk).exists()
    # The same ids under one of the caller's own datasets are not found either.
    mine = api.post("/v1/datasets", {"name": "Mine"}).json()
    response = api.get(f"/v1/datasets/{mine['id']}/documents/{document.pk}")
    assert error_of(response) == (404, "not_found")


def test_invisible_dataset_is_not_found(client, tenant, make_member, dataset):
    other_builder = make_member(tenant, Role.BUILDER, email="other@example.com")
    other = Api(client, dataset_key(tenant, other_builder))
    assert error_of(other.get(f"/v1/datasets/{dataset.pk}")) == (404, "not_found")
    assert other.get("/v1/datasets").json()["total"] == 0


def test_without_permission_is_forbidden(client, tenant, make_member, builder, document):
    dataset = Dataset.dangerously_unscoped.get(pk=document.dataset_id)
    Dataset.dangerously_unscoped.filter(pk=dataset.pk).update(permission="all_team_members")
    member = Api(client, dataset_key(tenant, make_member(tenant, Role.MEMBER)))
    assert error_of(member.post("/v1/datasets", {"name": "Mine"})) == (403, "forbidden")
    operator = Api(client, dataset_key(tenant, make_member(tenant, Role.OPERATOR)))
    base = f"/v1/datasets/{dataset.pk}"
    assert operator.get(base).status_code == 200  # may read …
    assert error_of(operator.patch(base, {"name": "Renamed"})) == (403, "forbidden")
    assert error_of(operator.delete(base)) == (403, "forbidden")
    assert error_of(operator.delete(f"{base}/documents/{document.pk}")) == (403, "forbidden")
    assert Dataset.dangerously_unscoped.get(pk=dataset.pk).name == "Handbook"
    nobody = Api(client, dataset_key(tenant, None))  # no creator: a member-role key
    assert error_of(nobody.post("/v1/datasets", {"name": "Orphan"})) == (403, "forbidden")


def test_unknown_paths_and_unreadable_requests_answer_json(api, dataset, settings):
    response = api.get(f"/v1/datasets/{dataset.pk}/nothing-here")
    assert error_of(response) == (404, "not_found")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = api.post(
        f"/v1/datasets/{dataset.pk}/document/create-by-text", {"name": "big", "text": "x" * 2000}
    )
    assert error_of(big) == (413, "request_too_large")


def test_bearer_keys_need_no_csrf_token(tenant, builder):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/v1/datasets",
        json.dumps({"name": "No cookies"}),
        content_type="application/json",
        **auth(dataset_key(tenant, builder)),
    )
    assert response.status_code == 200, response.content


# A Dify client, end to end, on the async path


def test_dify_client_flow_on_the_async_path(tenant, builder):
    headers = {"Authorization": f"Bearer {dataset_key(tenant, builder)}"}

    def call(method, url, body=None):
        async def go():
            client = AsyncClient()
            if method == "get":
                return await client.get(url, headers=headers)
            return await getattr(client, method)(
                url, json.dumps(body or {}), content_type="application/json", headers=headers
            )

        return async_to_sync(go)()

    created = call("post", "/v1/datasets", {"name": "Flow", "indexing_technique": "high_quality"})
    assert created.status_code == 200, created.content
    dataset_id = created.json()["id"]
    added = call(
        "post",
        f"/v1/datasets/{dataset_id}/document/create-by-text",
        {
            "name": "fibres",
            "text": HANDBOOK,
            "indexing_technique": "high_quality",
            "process_rule": {"mode": "automatic"},
        },
    )
    assert added.status_code == 200, added.content
    batch, document_id = added.json()["batch"], added.json()["document"]["id"]
    assert index(document_id) == "completed"
    status = call("get", f"/v1/datasets/{dataset_id}/documents/{batch}/indexing-status")
    assert status.json()["data"][0]["indexing_status"] == "completed"
    segments = call("get", f"/v1/datasets/{dataset_id}/documents/{document_id}/segments")
    assert segments.json()["total"] >= 1
    appended = call(
        "post",
        f"/v1/datasets/{dataset_id}/documents/{document_id}/segments",
        {"segments": [{"content": "Mohair comes from Angora goats."}]},
    )
    assert appended.status_code == 200, appended.content
    found = call(
        "post",
        f"/v1/datasets/{dataset_id}/retrieve",
        {
            "query": "Angora goats",
            "retrieval_model": {"search_method": "hybrid_search", "top_k": 1},
        },
    )
    assert found.status_code == 200, found.content
    (record,) = found.json()["records"]
    assert record["segment"]["content"] == "Mohair comes from Angora goats."
    assert call("get", "/v1/datasets").json()["data"][0]["document_count"] == 1
    assert get_current_tenant() is None
