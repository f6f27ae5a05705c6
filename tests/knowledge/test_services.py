"""The knowledge services on their own: each writes what it should, leaves an audit row with
the actor in context, refuses bad input with a typed error, and on failure leaves nothing
half-written (the API and console tests check the same writes through their views)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from asgiref.sync import async_to_sync
from django.core.files.storage import default_storage

from knowledge import indexing, services, store, tasks
from knowledge.models import Chunk, Dataset, Document
from providers.models import Model, ModelKind
from tenants.audit import Actor, acting_as
from tenants.context import tenant_context
from tenants.exceptions import Conflict, InvalidInput, NotFound, WeftError
from tenants.models import AuditLog
from tenants.roles import Role

HANDBOOK = b"""# Weaving handbook

## Looms

A loom holds the warp threads under tension. The weft is passed through the warp.

## Fibres

Wool is a protein fibre. Cotton is a cellulose fibre. Linen comes from flax.
"""


@pytest.fixture
def builder(tenant, make_member):
    return make_member(tenant, Role.BUILDER, email="builder@example.com")


@pytest.fixture
def dataset(tenant, builder):
    return services.dataset_create(
        tenant=tenant, name="Handbook", created_by=builder, description="Weaving notes"
    )


@pytest.fixture
def sent(monkeypatch):
    """The indexing tasks sent on commit (no broker in tests), as their keyword arguments."""
    calls: list[dict] = []
    monkeypatch.setattr(tasks.index_document, "delay", lambda **kwargs: calls.append(kwargs))
    return calls


def indexed(dataset, name="handbook.md", data=HANDBOOK) -> Document:
    """A completed document of the dataset, from a file."""
    with tenant_context(dataset.tenant):
        document = services.document_create(dataset=dataset, name=name, data=data)
        assert indexing.index_document(document_id=document.pk) == "completed"
    return fresh(document)


@pytest.fixture
def document(dataset):
    return indexed(dataset)


def fresh(row):
    return type(row).dangerously_unscoped.get(pk=row.pk)


def chunks_of(document) -> list[Chunk]:
    return list(Chunk.dangerously_unscoped.filter(document=document).order_by("position"))


@contextmanager
def acting(user):
    """Act as a console user would: the audit trail names them."""
    with acting_as(Actor(user_id=user.pk, label=user.email, source="console")):
        yield


def trail(tenant, **filters) -> list[AuditLog]:
    return list(AuditLog.dangerously_unscoped.filter(tenant=tenant, **filters).order_by("id"))


def stored_files() -> set[str]:
    found: set[str] = set()

    def walk(folder: str) -> None:
        folders, files = default_storage.listdir(folder)
        found.update(f"{folder}/{name}".lstrip("/") for name in files)
        for sub in folders:
            walk(f"{folder}/{sub}".lstrip("/"))

    if default_storage.exists(""):
        walk("")
    return found


# Datasets


def test_dataset_update_writes_the_changes_and_audits_them(tenant, builder, dataset):
    with acting(builder):
        updated = services.dataset_update(
            tenant=tenant,
            dataset=dataset,
            name="  Weaving  ",
            description="",
            permission=Dataset.Permission.ALL_TEAM_MEMBERS,
            retrieval_model={"search_method": "full_text_search", "top_k": 5},
        )
    stored = fresh(dataset)
    assert (stored.name, stored.description, stored.permission) == (
        "Weaving",
        "",
        "all_team_members",
    )
    assert stored.retrieval_model == {"search_method": "full_text_search", "top_k": 5}
    assert updated.name == "Weaving"
    (row,) = trail(tenant, object_type="knowledge.dataset")
    assert row.action == "update" and row.object_id == str(dataset.pk)
    assert row.actor_id == builder.pk and row.actor_label == builder.email
    assert row.changes["name"] == ["Handbook", "Weaving"]
    assert row.changes["description"] == ["Weaving notes", ""]
    assert row.changes["permission"] == ["only_me", "all_team_members"]


def test_dataset_update_with_nothing_new_writes_nothing(tenant, builder, dataset):
    before = fresh(dataset).updated_at
    with acting(builder):
        services.dataset_update(
            tenant=tenant, dataset=dataset, name="Handbook", description="Weaving notes"
        )
    assert fresh(dataset).updated_at == before
    assert trail(tenant) == []


def test_dataset_update_may_change_the_embedding_model_only_while_empty(tenant, dataset):
    large = Model.catalog.get(name="text-embedding-3-small")
    services.dataset_update(tenant=tenant, dataset=dataset, embedding_model=large)
    stored = fresh(dataset)
    assert stored.embedding_model == large and stored.embedding_dimensions == 1536

    offline = Model.catalog.get(name="weft-offline-embedding")
    services.dataset_update(tenant=tenant, dataset=dataset, embedding_model=offline)
    indexed(dataset)
    with pytest.raises(InvalidInput, match="embedding_model: cannot change"):
        services.dataset_update(tenant=tenant, dataset=dataset, embedding_model=large)
    assert fresh(dataset).embedding_model == offline


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"name": "   "}, InvalidInput, "name"),
        ({"name": "x" * 256}, InvalidInput, "name"),
        ({"permission": "everyone"}, InvalidInput, "permission"),
        ({"indexing_technique": "magic"}, InvalidInput, "indexing_technique"),
        ({"process_rule": {"mode": "bogus"}}, InvalidInput, "process_rule"),
        ({"retrieval_model": {"search_method": "magic"}}, InvalidInput, "search_method"),
        ({"name": "Taken"}, Conflict, "Taken"),
    ],
)
def test_dataset_update_refuses_bad_input_and_writes_nothing(
    tenant, builder, dataset, fields, error, field
):
    services.dataset_create(tenant=tenant, name="Taken")
    before = fresh(dataset)
    with acting(builder), pytest.raises(error, match=field):
        services.dataset_update(tenant=tenant, dataset=dataset, description="changed", **fields)
    after = fresh(dataset)
    assert (after.name, after.description, after.updated_at) == (
        before.name,
        before.description,
        before.updated_at,
    )
    assert trail(tenant) == []


def test_dataset_update_refuses_a_chat_model_for_embeddings(tenant, dataset):
    chat = Model.catalog.get(name="weft-offline-chat")
    assert chat.kind == ModelKind.CHAT
    with pytest.raises(InvalidInput, match="not an embedding model"):
        services.dataset_update(tenant=tenant, dataset=dataset, embedding_model=chat)


def test_dataset_update_of_another_tenants_dataset_is_not_found(other_tenant, dataset):
    with pytest.raises(NotFound):
        services.dataset_update(tenant=other_tenant, dataset=dataset, name="Stolen")
    assert fresh(dataset).name == "Handbook"


def test_high_quality_needs_an_embedding_model(tenant, dataset):
    Dataset.dangerously_unscoped.filter(pk=dataset.pk).update(
        indexing_technique="economy", embedding_model=None
    )
    with pytest.raises(WeftError) as refused:
        services.dataset_update(tenant=tenant, dataset=dataset, indexing_technique="high_quality")
    assert refused.value.code == "dataset_not_initialized"
    assert fresh(dataset).indexing_technique == "economy"


def test_switching_to_high_quality_indexes_the_documents_again_with_vectors(
    tenant, dataset, sent, django_capture_on_commit_callbacks
):
    services.dataset_update(tenant=tenant, dataset=dataset, indexing_technique="economy")
    document = indexed(dataset)
    assert {c.embedding_dim for c in chunks_of(document)} == {None}

    with django_capture_on_commit_callbacks(execute=True):
        services.dataset_update(tenant=tenant, dataset=dataset, indexing_technique="high_quality")
    assert fresh(document).indexing_status == "waiting"
    assert sent == [{"tenant_id": str(tenant.pk), "document_id": str(document.pk)}]
    with tenant_context(tenant):
        assert indexing.index_document(document_id=document.pk) == "completed"
    assert {c.embedding_dim for c in chunks_of(document)} == {512}
    assert all(c.live for c in chunks_of(document))


def test_switching_technique_while_a_document_is_indexed_is_refused(tenant, dataset):
    services.dataset_update(tenant=tenant, dataset=dataset, indexing_technique="economy")
    document = indexed(dataset)
    Document.dangerously_unscoped.filter(pk=document.pk).update(indexing_status="splitting")
    with pytest.raises(WeftError) as refused:
        services.dataset_update(tenant=tenant, dataset=dataset, indexing_technique="high_quality")
    assert refused.value.code == "document_indexing"
    assert fresh(dataset).indexing_technique == "economy"


# Documents


def test_document_create_settles_the_dataset_with_its_first_document(tenant, dataset):
    Dataset.dangerously_unscoped.filter(pk=dataset.pk).update(embedding_model=None)
    with pytest.raises(WeftError) as refused:
        services.document_create(dataset=dataset, name="a", text="Looms.")
    assert refused.value.code == "dataset_not_initialized"
    first = services.document_create(
        dataset=dataset, name="a", text="Looms.", indexing_technique="economy", batch="b-1"
    )
    assert fresh(dataset).indexing_technique == "economy" and first.batch == "b-1"
    with pytest.raises(InvalidInput, match="indexing_technique"):
        services.document_create(
            dataset=dataset, name="b", text="Warp.", indexing_technique="high_quality"
        )
    with pytest.raises(InvalidInput, match="doc_form"):
        services.document_create(dataset=dataset, name="b", text="Warp.", doc_form="qa_model")
    second = services.document_create(dataset=dataset, name="b", text="Warp.")
    assert len(second.batch) == 20 and second.batch != first.batch
    assert Document.dangerously_unscoped.filter(dataset=dataset).count() == 2


def test_document_replace_by_text_drops_the_chunks_and_the_old_file(
    tenant, builder, dataset, document, sent, django_capture_on_commit_callbacks
):
    old_file = document.file.name
    count = len(chunks_of(document))
    assert old_file in stored_files() and count > 0
    with acting(builder), django_capture_on_commit_callbacks(execute=True):
        replaced = services.document_replace(
            tenant=tenant, document=document, name="dyes", text="Indigo dye is blue."
        )
    stored = fresh(document)
    assert (stored.name, stored.data_source_type, stored.file.name) == ("dyes", "text", "")
    assert stored.doc_metadata["text"] == "Indigo dye is blue."
    assert stored.indexing_status == "waiting" and stored.batch != document.batch
    assert replaced.batch == stored.batch and stored.word_count == 0
    assert chunks_of(document) == [] and fresh(dataset).chunk_count == 0
    assert old_file not in stored_files()
    assert sent == [{"tenant_id": str(tenant.pk), "document_id": str(document.pk)}]
    (row,) = trail(tenant, object_type="knowledge.document")
    assert row.action == "update" and row.actor_id == builder.pk
    assert row.changes["name"] == ["handbook.md", "dyes"]
    assert row.changes["file"] == [old_file, ""]
    assert row.changes["indexing_status"] == ["completed", "waiting"]
    deleted = trail(tenant, object_type="knowledge.chunk", action="delete")
    assert len(deleted) == count

    with tenant_context(tenant):
        assert indexing.index_document(document_id=document.pk) == "completed"
    assert [c.content for c in chunks_of(document)] == ["Indigo dye is blue."]


def test_document_replace_by_file_stores_the_new_one(tenant, dataset, sent):
    with tenant_context(tenant):
        document = services.document_create(dataset=dataset, name="t", text="Old text.")
        indexing.index_document(document_id=document.pk)
    services.document_replace(
        tenant=tenant, document=document, data=b"Wool keeps you warm.", file_name="wool.txt"
    )
    stored = fresh(document)
    assert stored.name == "wool.txt" and stored.data_source_type == "upload_file"
    assert stored.file.name in stored_files() and "text" not in stored.doc_metadata
    assert stored.size == len(b"Wool keeps you warm.") and len(stored.sha256) == 64
    with tenant_context(tenant):
        assert indexing.index_document(document_id=document.pk) == "completed"
    assert [c.content for c in chunks_of(document)] == ["Wool keeps you warm."]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"text": "  "}, "invalid_param"),
        ({"text": "a", "data": b"b"}, "invalid_param"),
        ({"data": b"x" * 11, "max_bytes": 10}, "file_too_large"),
        ({"process_rule": {"mode": "bogus"}}, "invalid_param"),
        ({"busy": True, "text": "new"}, "document_indexing"),
        ({"foreign": True, "text": "new"}, "not_found"),
    ],
)
def test_document_replace_refuses_and_keeps_everything(
    tenant, other_tenant, document, fields, code
):
    before = chunks_of(document)
    if fields.pop("busy", False):
        Document.dangerously_unscoped.filter(pk=document.pk).update(indexing_status="indexing")
    owner = other_tenant if fields.pop("foreign", False) else tenant
    with pytest.raises(WeftError) as refused:
        services.document_replace(tenant=owner, document=fresh(document), **fields)
    assert refused.value.code == code
    stored = fresh(document)
    assert (stored.name, stored.file.name, stored.batch) == (
        document.name,
        document.file.name,
        document.batch,
    )
    assert [c.pk for c in chunks_of(document)] == [c.pk for c in before]


def test_document_replace_failing_midway_leaves_nothing_half_written(
    tenant, builder, document, monkeypatch
):
    before = chunks_of(document)
    files = stored_files()

    def broken(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(store, "dataset_stats_refresh", broken)
    with acting(builder), pytest.raises(RuntimeError):
        services.document_replace(
            tenant=tenant, document=document, data=b"New wool notes.", file_name="new.txt"
        )
    stored = fresh(document)
    assert (stored.name, stored.file.name, stored.indexing_status) == (
        "handbook.md",
        document.file.name,
        "completed",
    )
    assert [c.pk for c in chunks_of(document)] == [c.pk for c in before]
    assert stored_files() == files  # the new file went with the transaction
    assert trail(tenant) == []


def test_documents_set_enabled_is_all_or_nothing_and_audited(
    tenant, other_tenant, builder, dataset, document
):
    other = indexed(dataset, name="notes.txt", data=b"Flax grows in cool climates.")
    with acting(builder):
        services.documents_set_enabled(tenant=tenant, documents=[document, other], enabled=False)
    assert [fresh(d).enabled for d in (document, other)] == [False, False]
    assert {c.live for d in (document, other) for c in chunks_of(d)} == {False}
    rows = trail(tenant, object_type="knowledge.document")
    assert [r.changes for r in rows] == [{"enabled": [True, False]}] * 2

    foreign = indexed(services.dataset_create(tenant=other_tenant, name="Theirs"))
    with pytest.raises(NotFound):
        services.documents_set_enabled(
            tenant=tenant, documents=[document, foreign], enabled=True, archived=True
        )
    assert not fresh(document).enabled and not fresh(foreign).archived


# Chunks


def add(tenant, document, *chunks):
    document = Document.dangerously_unscoped.select_related("dataset__embedding_model").get(
        pk=document.pk
    )
    vectors = async_to_sync(services.chunks_embedding)(
        tenant=tenant, document=document, chunks=chunks
    )
    return services.chunks_add(
        tenant=tenant, document=document, chunks=chunks, vectors=vectors, source="api"
    )


def test_chunks_add_appends_searchable_chunks_and_audits_them(tenant, builder, dataset, document):
    existing = len(chunks_of(document))
    total = fresh(dataset).chunk_count
    with acting(builder):
        added = add(
            tenant,
            document,
            services.NewChunk(content="Silk comes from cocoons.", keywords=("silk",)),
            services.NewChunk(content="Hemp is a bast fibre."),
        )
    assert [c.position for c in added] == [existing, existing + 1]
    stored = chunks_of(document)[existing:]
    assert [c.content for c in stored] == ["Silk comes from cocoons.", "Hemp is a bast fibre."]
    assert [c.keywords for c in stored] == [["silk"], []]
    assert all(c.live and c.embedding_dim == 512 and c.tokens > 0 for c in stored)
    assert all(c.metadata == {"source": "api"} for c in stored)
    assert fresh(dataset).chunk_count == total + 2
    rows = trail(tenant, object_type="knowledge.chunk")
    assert [(r.action, r.object_id) for r in rows] == [("create", str(c.pk)) for c in stored]
    assert rows[0].changes["content"] == [None, "Silk comes from cocoons."]
    assert rows[0].changes["keywords"] == [None, ["silk"]]
    assert rows[0].actor_id == builder.pk and rows[0].source == "console"


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("empty", "invalid_param"),
        ("blank", "invalid_param"),
        ("qa without answer", "invalid_param"),
        ("waiting", "document_indexing"),
        ("no vectors", "invalid_param"),
        ("foreign", "not_found"),
    ],
)
def test_chunks_add_refuses_and_writes_nothing(tenant, other_tenant, document, case, code):
    before = [c.pk for c in chunks_of(document)]
    chunks: tuple[services.NewChunk, ...] = (services.NewChunk(content="Flax."),)
    owner = tenant
    if case == "empty":
        chunks = ()
    elif case == "blank":
        chunks = (services.NewChunk(content=" "),)
    elif case == "qa without answer":
        Document.dangerously_unscoped.filter(pk=document.pk).update(doc_form="qa_model")
    elif case == "waiting":
        Document.dangerously_unscoped.filter(pk=document.pk).update(indexing_status="waiting")
    elif case == "foreign":
        owner = other_tenant
    current = Document.dangerously_unscoped.select_related("dataset").get(pk=document.pk)
    with pytest.raises(WeftError) as refused:
        services.chunks_add(tenant=owner, document=current, chunks=chunks, vectors=None, source="t")
    assert refused.value.code == code
    assert [c.pk for c in chunks_of(document)] == before


def test_chunks_embedding_refuses_before_any_model_call(tenant, document, monkeypatch):
    from providers import services as models_runtime

    def no_call(**kwargs):
        raise AssertionError("the model was called")

    monkeypatch.setattr(models_runtime, "embed", no_call)
    Document.dangerously_unscoped.filter(pk=document.pk).update(indexing_status="error")
    current = Document.dangerously_unscoped.select_related("dataset").get(pk=document.pk)
    with pytest.raises(WeftError) as refused:
        async_to_sync(services.chunks_embedding)(
            tenant=tenant, document=current, chunks=[services.NewChunk(content="Flax.")]
        )
    assert refused.value.code == "document_indexing"


def test_chunks_add_failing_midway_writes_no_chunk(tenant, builder, document, monkeypatch):
    before = [c.pk for c in chunks_of(document)]

    def broken(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(store, "dataset_stats_refresh", broken)
    with acting(builder), pytest.raises(RuntimeError):
        add(tenant, document, services.NewChunk(content="Mohair comes from goats."))
    assert [c.pk for c in chunks_of(document)] == before
    assert trail(tenant) == []


def test_chunk_edit_is_audited_with_the_old_and_new_text(tenant, builder, dataset, document):
    chunk = chunks_of(document)[0]
    with acting(builder):
        services.chunk_edit(
            chunk=chunk,
            content="Looms weave cloth.",
            answer="",
            keywords=["loom"],
            vector=[0.5] * 512,
        )
    (row,) = trail(tenant, object_type="knowledge.chunk")
    assert row.action == "update" and row.object_id == str(chunk.pk)
    assert row.changes["content"] == [chunk.content, "Looms weave cloth."]
    assert row.changes["keywords"] == [[], ["loom"]]
    assert "position" not in row.changes and "live" not in row.changes


def test_chunk_delete_removes_it_and_audits_it(tenant, other_tenant, builder, dataset, document):
    chunk = chunks_of(document)[0]
    total = fresh(dataset).chunk_count
    with pytest.raises(NotFound):
        services.chunk_delete(tenant=other_tenant, chunk=chunk)
    assert fresh(dataset).chunk_count == total
    with acting(builder):
        services.chunk_delete(tenant=tenant, chunk=chunk)
    assert not Chunk.dangerously_unscoped.filter(pk=chunk.pk).exists()
    assert fresh(dataset).chunk_count == total - 1
    (row,) = trail(tenant, object_type="knowledge.chunk")
    assert (row.action, row.object_id, row.actor_id) == ("delete", str(chunk.pk), builder.pk)
    with pytest.raises(NotFound):
        services.chunk_delete(tenant=tenant, chunk=chunk)
