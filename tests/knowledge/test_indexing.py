"""The indexing pipeline, run in-process on real PostgreSQL: statuses, progress, chunk
forms, bad files failing alone with a reason, idempotent and resumable re-runs."""

import pytest

from knowledge import indexing, services
from knowledge.models import Chunk, Dataset, Document
from knowledge.search import bm25
from providers.models import UsageEvent
from tenants.context import tenant_context

HANDBOOK = """# Weaving handbook

## Looms

A loom holds the warp threads under tension. The weft is passed through the warp.

## Fibres

Wool is a protein fibre. Cotton is a cellulose fibre. Linen comes from flax.
"""


@pytest.fixture
def dataset(tenant):
    return services.dataset_create(tenant=tenant, name="Handbook")


def run(document):
    with tenant_context(document.tenant):
        return indexing.index_document(document_id=document.pk)


def fresh(document):
    return Document.dangerously_unscoped.get(pk=document.pk)


def chunks(document):
    return list(Chunk.dangerously_unscoped.filter(document=document).order_by("position"))


def test_text_document_completes_and_is_searchable(dataset, tenant):
    document = services.document_create(dataset=dataset, name="handbook.md", data=HANDBOOK.encode())
    assert run(document) == "completed"
    document = fresh(document)
    assert document.indexing_status == "completed" and document.progress == 100
    assert document.kind == "markdown" and document.word_count > 20 and document.tokens > 0
    assert set(document.stage_seconds) >= {"parsing", "splitting", "indexing"}
    rows = chunks(document)
    assert rows and all(r.live and r.embedding_dim == 512 for r in rows)
    found = bm25(tenant_id=tenant.pk, dataset_ids=[dataset.pk], query="cellulose", top_k=3)
    assert "Cotton is a cellulose fibre" in Chunk.dangerously_unscoped.get(pk=found[0][0]).content
    assert UsageEvent.dangerously_unscoped.filter(tenant=tenant, operation="embedding").count() == 1


def test_rerun_is_idempotent_and_embeds_nothing_again(dataset, tenant):
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    run(document)
    before = [(r.pk, r.position, r.content_hash) for r in chunks(document)]
    services.document_reindex(document=fresh(document))
    assert run(document) == "completed"
    assert [(r.pk, r.position, r.content_hash) for r in chunks(document)] == before
    assert UsageEvent.dangerously_unscoped.filter(tenant=tenant, operation="embedding").count() == 1


def test_resume_after_a_crash_embeds_only_what_is_missing(dataset, tenant):
    text = "\n\n".join(f"Paragraph {i} about looms, warp {i} and weft {i}." * 20 for i in range(40))
    document = services.document_create(
        dataset=dataset,
        name="long.txt",
        text=text,
        process_rule={
            "mode": "custom",
            "rules": {
                "segmentation": {"separator": "\\n\\n", "max_tokens": 200, "chunk_overlap": 0}
            },
        },
    )
    run(document)
    total = len(chunks(document))
    assert total > indexing.EMBED_BATCH
    # As if the worker died half way: the later chunks lost, the document mid-indexing.
    Chunk.dangerously_unscoped.filter(document=document, position__gte=total // 2).delete()
    Document.dangerously_unscoped.filter(pk=document.pk).update(
        indexing_status="indexing", progress=50
    )
    embedded_before = UsageEvent.dangerously_unscoped.filter(operation="embedding")
    tokens_before = sum(e.prompt_tokens for e in embedded_before)
    assert run(document) == "completed"
    rows = chunks(document)
    assert [r.position for r in rows] == list(range(total))
    tokens_after = sum(
        e.prompt_tokens for e in UsageEvent.dangerously_unscoped.filter(operation="embedding")
    )
    assert 0 < tokens_after - tokens_before < tokens_before  # only the missing half


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("binary.txt", bytes(range(256)) * 20, ""),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj<<>>garbage", ""),
        ("blank.md", b"   \n\n  \n", ""),
    ],
)
def test_bad_files_fail_alone_with_a_reason_and_no_chunks(dataset, name, data, reason):
    good = services.document_create(dataset=dataset, name="good.md", data=HANDBOOK.encode())
    bad = services.document_create(dataset=dataset, name=name, data=data)
    assert run(bad) == "error"
    bad = fresh(bad)
    assert bad.error and reason in bad.error.lower()
    assert chunks(bad) == []
    assert run(good) == "completed"
    dataset.refresh_from_db()
    assert dataset.chunk_count == len(chunks(good))


def test_partial_chunks_of_a_failing_run_are_removed(dataset, tenant):
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    run(document)
    # The source changes into something unreadable, then the document is indexed again.
    Document.dangerously_unscoped.filter(pk=document.pk).update(
        data_source_type="text", doc_metadata={"text": ""}
    )
    services.document_reindex(document=fresh(document))
    assert run(document) == "error"
    assert chunks(document) == []
    assert bm25(tenant_id=tenant.pk, dataset_ids=[dataset.pk], query="loom", top_k=3) == []


def test_parent_child_documents(tenant):
    dataset = services.dataset_create(
        tenant=tenant, name="PC", doc_form=Dataset.DocForm.HIERARCHICAL
    )
    document = services.document_create(
        dataset=dataset,
        name="h.md",
        data=HANDBOOK.encode(),
        process_rule={"mode": "hierarchical", "rules": {"parent_mode": "paragraph"}},
    )
    assert run(document) == "completed", fresh(document).error
    rows = chunks(document)
    parents = [r for r in rows if not r.searchable]
    children = [r for r in rows if r.searchable]
    assert parents and children
    assert all(c.parent_id in {p.pk for p in parents} for c in children)
    assert all(
        c.content in next(p for p in parents if p.pk == c.parent_id).content for c in children
    )
    assert all(p.embedding_dim is None for p in parents)


def test_qa_documents(tenant):
    dataset = services.dataset_create(tenant=tenant, name="QA", doc_form=Dataset.DocForm.QA)
    text = (
        "Q: What is a loom?\nA: A frame for weaving.\n\nQ: What is weft?\nA: The crosswise thread."
    )
    document = services.document_create(dataset=dataset, name="faq", text=text)
    assert run(document) == "completed", fresh(document).error
    rows = chunks(document)
    assert [(r.content, r.answer) for r in rows] == [
        ("What is a loom?", "A frame for weaving."),
        ("What is weft?", "The crosswise thread."),
    ]


def test_pause_stops_and_resume_finishes(dataset):
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    services.document_pause(document=document)
    assert run(document) == "paused"
    assert chunks(document) == []
    services.document_resume(document=document)
    assert run(document) == "completed"


def test_disable_archive_and_delete(dataset, tenant):
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    run(document)
    search = lambda: bm25(tenant_id=tenant.pk, dataset_ids=[dataset.pk], query="wool", top_k=3)  # noqa: E731
    assert search()
    services.document_set_enabled(document=fresh(document), enabled=False)
    assert search() == []
    services.document_set_enabled(document=fresh(document), enabled=True)
    assert search()
    services.document_set_enabled(document=fresh(document), enabled=True, archived=True)
    assert search() == []
    services.document_delete(document=fresh(document))
    assert Chunk.dangerously_unscoped.filter(dataset=dataset).count() == 0
    dataset.refresh_from_db()
    assert dataset.chunk_count == 0


def test_dataset_delete_removes_everything(dataset):
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    run(document)
    services.dataset_delete(dataset=dataset)
    assert not Chunk.dangerously_unscoped.exists() and not Document.dangerously_unscoped.exists()


def test_bad_inputs_refused_at_once(dataset):
    from tenants.exceptions import Conflict, InvalidInput

    with pytest.raises(InvalidInput) as too_big:
        services.document_create(dataset=dataset, name="big.txt", data=b"x" * 20, max_bytes=10)
    assert too_big.value.code == "file_too_large" and too_big.value.status == 413
    with pytest.raises(InvalidInput):
        services.document_create(dataset=dataset, name="none")
    with pytest.raises(InvalidInput, match="process_rule"):
        services.document_create(
            dataset=dataset, name="x", text="x", process_rule={"mode": "magic"}
        )
    with pytest.raises(Conflict):
        services.dataset_create(tenant=dataset.tenant, name="Handbook")
    assert Document.dangerously_unscoped.count() == 0


def test_creating_a_document_starts_indexing_on_the_indexing_queue(
    dataset, django_capture_on_commit_callbacks
):
    from config.celery import app

    with django_capture_on_commit_callbacks() as callbacks:
        services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    assert len(callbacks) == 1
    route = app.amqp.router.route({}, "knowledge.tasks.index_document", args=(), kwargs={})
    assert route["queue"].name == "indexing"


def test_chunk_edit_reembeds_changed_text_and_keeps_the_vector_otherwise(dataset):
    from asgiref.sync import async_to_sync

    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    run(document)
    chunk = (
        Chunk.dangerously_unscoped.select_related("dataset__embedding_model")
        .filter(document=document)
        .first()
    )
    before = list(chunk.embedding)

    def edit(content, answer="", **fields):
        current = Chunk.dangerously_unscoped.select_related("dataset__embedding_model").get(
            pk=chunk.pk
        )
        vector = async_to_sync(services.chunk_embedding)(
            tenant=current.dataset.tenant, dataset=current.dataset, chunk=current, content=content
        )
        return services.chunk_edit(
            chunk=current, content=content, answer=answer, vector=vector, **fields
        )

    same_text = edit(chunk.content, answer="an answer", keywords=["loom"])
    assert list(same_text.embedding) == before and same_text.answer == "an answer"
    assert same_text.keywords == ["loom"] and same_text.live
    changed = edit("Silk is a protein fibre made by silkworms.", enabled=False)
    assert list(changed.embedding) != before and not changed.enabled
    assert changed.content_hash != chunk.content_hash and changed.live
