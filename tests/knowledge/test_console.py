"""The knowledge console: datasets with their chunking rule, multi-file uploads, the document
list (status, progress, actions, auto-refresh), chunk edits that re-embed, hit testing, and
who sees what (visibility, roles, other tenants, platform superusers).

Documents are indexed in-process with knowledge.indexing (no Celery worker)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from knowledge import indexing, retrieval, services
from knowledge.admin.documents import REFRESH_SECONDS
from knowledge.models import Chunk, Dataset, Document, HitTestQuery
from providers.models import Model, ModelKind, ProviderKind
from tenants.context import tenant_context
from tenants.models import AuditLog
from tenants.roles import Role

DATASETS = "/admin/knowledge/dataset/"
DOCUMENTS = "/admin/knowledge/document/"
CHUNKS = "/admin/knowledge/chunk/"

HANDBOOK = """# Weaving handbook

## Looms

A loom holds the warp threads under tension. The weft is passed through the warp.

## Fibres

Wool is a protein fibre. Cotton is a cellulose fibre. Linen comes from flax.
"""


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Uploaded files go to a temporary folder, not the data folder."""
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def builder_user(tenant, make_member):
    return make_member(tenant, Role.BUILDER)


@pytest.fixture
def builder(console, builder_user, tenant):
    return console(builder_user, tenant)


@pytest.fixture
def dataset(tenant, builder_user):
    return services.dataset_create(
        tenant=tenant,
        name="Handbook",
        created_by=builder_user,
        permission=Dataset.Permission.ALL_TEAM_MEMBERS,
    )


def index(document) -> str:
    with tenant_context(document.tenant):
        return indexing.index_document(document_id=document.pk)


def fresh(row):
    return type(row).dangerously_unscoped.get(pk=row.pk)


def text_of(response) -> str:
    return response.content.decode()


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def dataset_form(**fields):
    data = {
        "name": "Manuals",
        "description": "How-tos",
        "permission": "only_me",
        "indexing_technique": "high_quality",
        "doc_form": "text_model",
        "embedding_model": "",
        "mode": "custom",
        "separator": "\\n\\n",
        "max_tokens": "300",
        "chunk_overlap": "20",
        "child_separator": "\\n",
        "child_max_tokens": "100",
        "_save": "Save",
    }
    data.update(fields)
    return data


def act(client, action: str, *documents, **extra):
    data = {"action": action, "index": 0, "_selected_action": [str(d.pk) for d in documents]}
    return client.post(DOCUMENTS, data | extra, follow=True)


# --- Datasets ---------------------------------------------------------------------------


def test_add_dataset_stores_the_chunking_rule_in_difys_shape(builder, builder_user, tenant):
    page = builder.get(f"{DATASETS}add/")
    assert page.status_code == 200
    offline = Model.catalog.get(provider=ProviderKind.OFFLINE, kind=ModelKind.EMBEDDING)
    form = page.context["adminform"].form
    assert form["embedding_model"].value() == offline.pk  # no default chosen: the built-in one
    assert {m.kind for m in form.fields["embedding_model"].queryset} == {ModelKind.EMBEDDING}

    response = builder.post(f"{DATASETS}add/", dataset_form(), follow=True)
    assert response.status_code == 200
    created = Dataset.dangerously_unscoped.get(tenant=tenant, name="Manuals")
    assert created.created_by == builder_user
    assert created.embedding_model == offline and created.embedding_dimensions == 512
    assert created.process_rule == {
        "mode": "custom",
        "rules": {
            "pre_processing_rules": [
                {"id": "remove_extra_spaces", "enabled": True},
                {"id": "remove_urls_emails", "enabled": False},
            ],
            "segmentation": {"separator": "\\n\\n", "max_tokens": 300, "chunk_overlap": 20},
        },
    }
    # The change form shows the rule back as the same friendly fields.
    change = builder.get(f"{DATASETS}{created.pk}/change/")
    initial = change.context["adminform"].form.initial
    assert (initial["mode"], initial["separator"], initial["max_tokens"]) == (
        "custom",
        "\\n\\n",
        300,
    )


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"max_tokens": "10"}, "max_tokens must be between 50 and 4000, not 10"),
        ({"chunk_overlap": "400"}, "chunk_overlap must be at least 0 and below max_tokens"),
        ({"doc_form": "hierarchical_model"}, "Parent-child chunks need the parent-child"),
        (
            {"mode": "hierarchical", "doc_form": "hierarchical_model", "child_max_tokens": "900"},
            "must not exceed the parent&#x27;s max_tokens",
        ),
        ({"name": "Handbook"}, "A dataset named “Handbook” already exists."),
    ],
)
def test_add_dataset_explains_a_bad_rule(builder, dataset, fields, error):
    response = builder.post(f"{DATASETS}add/", dataset_form(**fields))
    assert response.status_code == 200
    assert error in text_of(response)
    assert not Dataset.dangerously_unscoped.filter(name="Manuals").exists()


def test_dataset_list_shows_counts_and_delete_goes_through_the_service(builder, dataset):
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    assert index(document) == "completed"
    dataset.refresh_from_db()
    listing = text_of(builder.get(DATASETS))
    assert "Handbook" in listing and f"?dataset__id__exact={dataset.pk}" in listing
    assert f'<td class="field-chunks">{dataset.chunk_count}</td>' in listing
    assert dataset.chunk_count > 0 and "Built-in hashing embedder" in listing

    response = builder.post(f"{DATASETS}{dataset.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert not Dataset.dangerously_unscoped.filter(pk=dataset.pk).exists()
    assert not Chunk.dangerously_unscoped.filter(dataset_id=dataset.pk).exists()


# --- Uploads and documents ----------------------------------------------------------------


def test_upload_makes_one_document_per_file_and_refuses_bad_ones_alone(
    builder, dataset, monkeypatch
):
    monkeypatch.setattr(services, "MAX_FILE_BYTES", 2048)
    files = [
        SimpleUploadedFile("handbook.md", HANDBOOK.encode()),
        SimpleUploadedFile("notes.txt", b"Linen comes from flax. Flax grows in cool climates."),
        SimpleUploadedFile("empty.txt", b""),
        SimpleUploadedFile("huge.txt", b"x" * 4096),
        SimpleUploadedFile("broken.pdf", b"%PDF-1.7\n1 0 obj<<>>garbage"),
    ]
    response = builder.post(
        f"{DATASETS}{dataset.pk}/upload/",
        {"uploads": files, "text_name": "Typed", "text": "Weft crosses warp."},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == f"{DOCUMENTS}?dataset__id__exact={dataset.pk}"
    said = page_messages(response)
    assert "“empty.txt” is empty: there is nothing to index." in said
    assert "“huge.txt” is 4 KB; at most 2 KB is accepted." in said
    assert any(m.startswith("Added 4 document(s)") for m in said)

    documents = {d.name: d for d in Document.dangerously_unscoped.filter(dataset=dataset)}
    assert set(documents) == {"handbook.md", "notes.txt", "broken.pdf", "Typed"}
    assert all(d.indexing_status == "waiting" for d in documents.values())
    # While they wait, the list refreshes itself.
    listing = text_of(builder.get(f"{DOCUMENTS}?dataset__id__exact={dataset.pk}"))
    assert f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' in listing
    assert f"/admin/knowledge/dataset/{dataset.pk}/upload/" in listing  # its Upload button

    for document in documents.values():
        index(document)
    assert fresh(documents["broken.pdf"]).indexing_status == "error"
    assert fresh(documents["handbook.md"]).indexing_status == "completed"

    listing = text_of(builder.get(f"{DOCUMENTS}?dataset__id__exact={dataset.pk}"))
    assert 'http-equiv="refresh"' not in listing
    assert '<progress max="100" value="100"' in listing and "Completed" in listing
    assert "Error" in listing and fresh(documents["broken.pdf"]).error[:40] in listing
    assert "parsing " in listing and "indexing " in listing  # stage timings


def test_upload_with_nothing_chosen_says_so(builder, dataset):
    response = builder.post(f"{DATASETS}{dataset.pk}/upload/", {})
    assert response.status_code == 200
    assert "Choose at least one file, or type a text." in text_of(response)
    assert '<input type="file" name="uploads" multiple' in text_of(response)


@pytest.mark.parametrize("url", [DATASETS, DOCUMENTS, CHUNKS])
def test_list_query_counts_do_not_grow_with_rows(builder, builder_user, tenant, url):
    def grow(n: int) -> None:
        for i in range(n):
            dataset = services.dataset_create(
                tenant=tenant, name=f"Set {n}-{i}", created_by=builder_user
            )
            index(services.document_create(dataset=dataset, name=f"d{i}.md", text=HANDBOOK))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert builder.get(url).status_code == 200
        return len(captured)

    grow(1)
    few = queries()
    grow(4)
    assert queries() == few


def test_document_actions_go_through_the_services(builder, dataset):
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())

    act(builder, "pause", document)
    assert fresh(document).indexing_status == "paused"
    act(builder, "resume", document)
    assert fresh(document).indexing_status == "waiting"
    assert index(document) == "completed"

    def live() -> set[bool]:
        return set(Chunk.dangerously_unscoped.filter(document=document).values_list("live", flat=1))

    assert live() == {True}
    response = act(builder, "disable", document)
    assert "Disabled 1 document(s)." in page_messages(response)
    assert not fresh(document).enabled and live() == {False}
    act(builder, "enable", document)
    assert fresh(document).enabled and live() == {True}
    act(builder, "archive", document)
    assert fresh(document).archived and live() == {False}
    act(builder, "unarchive", document)
    assert not fresh(document).archived and live() == {True}
    act(builder, "reindex", document)
    assert fresh(document).indexing_status == "waiting"

    response = builder.post(
        DOCUMENTS,
        {"action": "delete_selected", "_selected_action": [str(document.pk)], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    assert not Document.dangerously_unscoped.filter(pk=document.pk).exists()
    assert not Chunk.dangerously_unscoped.filter(document_id=document.pk).exists()
    dataset.refresh_from_db()
    assert dataset.chunk_count == 0


def test_an_operator_uploads_and_reindexes_but_does_not_manage(
    console, make_member, tenant, dataset
):
    operator = console(make_member(tenant, Role.OPERATOR), tenant)
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    index(document)
    listing = operator.get(DOCUMENTS)
    actions = {value for value, _ in listing.context["action_form"].fields["action"].choices}
    assert {"reindex", "pause", "resume"} <= actions
    assert not actions & {"enable", "disable", "archive", "unarchive", "delete_selected"}
    assert operator.get(f"{DATASETS}add/").status_code == 403
    assert operator.get(f"{DATASETS}{dataset.pk}/upload/").status_code == 200
    act(operator, "disable", document)
    assert fresh(document).enabled


# --- Chunks -------------------------------------------------------------------------------


def test_editing_a_chunk_embeds_it_again(builder, dataset):
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    index(document)
    chunk = Chunk.dangerously_unscoped.filter(document=document).order_by("position").first()
    assert chunk is not None and chunk.live
    other = services.document_create(dataset=dataset, name="o.txt", text="Silk road notes.")
    index(other)
    listing = builder.get(f"{CHUNKS}?document__id__exact={document.pk}")
    assert chunk.content[:30] in text_of(listing)
    shown = {row.document_id for row in listing.context["cl"].result_list}
    assert shown == {document.pk}

    before_vector, before_hash = list(chunk.embedding), chunk.content_hash
    response = builder.post(
        f"{CHUNKS}{chunk.pk}/change/",
        {
            "content": "Silk is a protein fibre spun by silkworms.",
            "answer": "",
            "keywords": "silk, protein",
            "enabled": "on",
            "_save": "Save",
        },
        follow=True,
    )
    assert response.status_code == 200
    edited = fresh(chunk)
    assert edited.content == "Silk is a protein fibre spun by silkworms."
    assert edited.content_hash != before_hash
    assert edited.embedding is not None and list(edited.embedding) != before_vector
    assert edited.keywords == ["silk", "protein"]
    assert edited.live and edited.position == chunk.position and edited.tokens > 0
    assert "silkworm" in str(edited.terms)  # full-text terms follow the new text


def test_disabling_a_chunk_keeps_its_vector_and_drops_it_from_the_counts(builder, dataset):
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    index(document)
    dataset.refresh_from_db()
    total = dataset.chunk_count
    chunk = Chunk.dangerously_unscoped.filter(document=document).first()
    builder.post(
        f"{CHUNKS}{chunk.pk}/change/",
        {"content": chunk.content, "answer": "", "keywords": "", "_save": "Save"},
    )
    edited = fresh(chunk)
    assert not edited.enabled and edited.content_hash == chunk.content_hash
    assert list(edited.embedding) == list(chunk.embedding)
    dataset.refresh_from_db()
    assert dataset.chunk_count == total - 1


# --- Hit testing --------------------------------------------------------------------------


def test_hit_testing_shows_scored_results_and_keeps_the_history(builder, builder_user, dataset):
    if not hasattr(retrieval, "retrieve") or not hasattr(retrieval, "RetrievalSettings"):
        pytest.skip("knowledge.retrieval.retrieve is not ready yet")
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    index(document)
    url = f"{DATASETS}{dataset.pk}/hit-testing/"
    assert builder.get(url).status_code == 200

    response = builder.post(
        url, {"query": "cellulose fibre", "search_method": "hybrid_search", "top_k": "3"}
    )
    assert response.status_code == 200
    page = text_of(response)
    assert "Cotton is a cellulose fibre" in page and "h.md" in page
    records = response.context["results"]
    assert records and records[0].full_text_score is not None
    assert 'class="score-semantic"' in page and 'class="score-fused"' in page
    history = HitTestQuery.dangerously_unscoped.get(dataset=dataset)
    assert history.query == "cellulose fibre" and history.source == "console"
    assert history.created_by == builder_user and history.result_count == len(records)

    again = text_of(builder.get(url))
    assert "cellulose fibre" in again and "hybrid_search" in again

    reranked = builder.post(
        url,
        {"query": "cellulose", "search_method": "full_text_search", "top_k": "2", "rerank": "on"},
    )
    records = reranked.context["results"]
    assert records and all(r.rerank_score is not None for r in records)
    assert HitTestQuery.dangerously_unscoped.filter(dataset=dataset).count() == 2


# --- Who sees what ------------------------------------------------------------------------


def test_a_builder_does_not_see_another_builders_private_dataset(
    console, make_member, tenant, builder
):
    other = make_member(tenant, Role.BUILDER)
    private = services.dataset_create(tenant=tenant, name="Private", created_by=other)
    document = services.document_create(dataset=private, name="p.md", data=HANDBOOK.encode())
    index(document)
    chunk = Chunk.dangerously_unscoped.filter(document=document).first()

    assert "Private" not in text_of(builder.get(DATASETS))
    assert "p.md" not in text_of(builder.get(DOCUMENTS))
    for url in (
        f"{DATASETS}{private.pk}/change/",
        f"{DATASETS}{private.pk}/upload/",
        f"{DATASETS}{private.pk}/hit-testing/",
        f"{DOCUMENTS}{document.pk}/change/",
        f"{CHUNKS}{chunk.pk}/change/",
    ):
        assert builder.get(url).status_code == 404, url
    # Its creator sees it; the filter of the document list offers only visible datasets.
    owner = console(other, tenant)
    assert "Private" in text_of(owner.get(DATASETS))
    assert "Private" not in text_of(builder.get(DOCUMENTS))


def test_a_member_has_no_console_access(console, make_member, tenant, dataset):
    member = console(make_member(tenant, Role.MEMBER), tenant)
    for url in (DATASETS, DOCUMENTS, f"{DATASETS}{dataset.pk}/hit-testing/"):
        response = member.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_another_tenants_rows_answer_404(console, make_member, tenant, other_tenant, dataset):
    admin = console(make_member(tenant, Role.ADMIN), tenant)
    foreign = services.dataset_create(tenant=other_tenant, name="Globex handbook")
    document = services.document_create(dataset=foreign, name="g.md", data=HANDBOOK.encode())
    index(document)
    chunk = Chunk.dangerously_unscoped.filter(document=document).first()
    for url in (
        f"{DATASETS}{foreign.pk}/change/",
        f"{DATASETS}{foreign.pk}/upload/",
        f"{DATASETS}{foreign.pk}/hit-testing/",
        f"{DATASETS}{foreign.pk}/delete/",
        f"{DOCUMENTS}{document.pk}/change/",
        f"{CHUNKS}{chunk.pk}/change/",
    ):
        assert admin.get(url).status_code == 404, url
    assert "Globex handbook" not in text_of(admin.get(DATASETS))
    # An action posted with a foreign id touches nothing.
    act(admin, "disable", document)
    assert fresh(document).enabled


def test_a_superuser_sees_every_tenants_datasets(console, superuser, tenant, other_tenant, dataset):
    foreign = services.dataset_create(tenant=other_tenant, name="Globex handbook")
    client = console(superuser, tenant)
    listing = text_of(client.get(DATASETS))
    assert "Handbook" in listing and "Globex handbook" in listing
    assert client.get(f"{DATASETS}{foreign.pk}/change/").status_code == 200
    response = client.post(
        f"{DATASETS}{foreign.pk}/upload/",
        {"uploads": [SimpleUploadedFile("g.md", HANDBOOK.encode())]},
        follow=True,
    )
    assert response.status_code == 200
    created = Document.dangerously_unscoped.get(dataset=foreign)
    assert created.tenant_id == other_tenant.pk


def test_changing_a_dataset_rewrites_its_rule_and_operators_only_read_it(
    builder, console, make_member, tenant, dataset
):
    url = f"{DATASETS}{dataset.pk}/change/"
    fields = dataset_form(name="Handbook", permission="all_team_members", max_tokens="250")
    for fixed in ("indexing_technique", "doc_form", "embedding_model"):
        fields.pop(fixed)
    response = builder.post(url, fields, follow=True)
    assert response.status_code == 200
    dataset.refresh_from_db()
    assert dataset.process_rule["rules"]["segmentation"]["max_tokens"] == 250
    assert dataset.description == "How-tos"

    operator = console(make_member(tenant, Role.OPERATOR), tenant)
    page = operator.get(url)
    assert page.status_code == 200
    assert "custom: separator \\n\\n, at most 250 tokens, overlap 20" in text_of(page)
    operator.post(url, dataset_form(name="Renamed"))
    dataset.refresh_from_db()
    assert dataset.name == "Handbook"


def test_changing_a_dataset_goes_through_the_service_and_is_audited(
    builder, builder_user, tenant, dataset
):
    fields = dataset_form(name="Weaving", permission="all_team_members", mode="automatic")
    for fixed in ("indexing_technique", "doc_form", "embedding_model"):
        fields.pop(fixed)
    response = builder.post(f"{DATASETS}{dataset.pk}/change/", fields, follow=True)
    assert response.status_code == 200
    assert fresh(dataset).name == "Weaving"
    (row,) = AuditLog.dangerously_unscoped.filter(
        tenant=tenant, object_type="knowledge.dataset", action="update"
    )
    assert row.actor_id == builder_user.pk and row.source == "console"
    assert row.changes["name"] == ["Handbook", "Weaving"]
    assert row.changes["description"] == ["", "How-tos"]
    assert row.changes["process_rule"] == [{}, {"mode": "automatic"}]


def test_a_rename_that_lost_a_race_is_reported_not_crashed(builder, tenant, dataset, monkeypatch):
    """The form saw the name free; the service, under lock, finds it taken."""
    from knowledge.forms import DatasetForm

    services.dataset_create(tenant=tenant, name="Taken")
    monkeypatch.setattr(DatasetForm, "clean_name", lambda form: form.cleaned_data["name"])
    fields = dataset_form(name="Taken", permission="all_team_members")
    for fixed in ("indexing_technique", "doc_form", "embedding_model"):
        fields.pop(fixed)
    response = builder.post(f"{DATASETS}{dataset.pk}/change/", fields, follow=True)
    assert "A dataset named “Taken” already exists." in page_messages(response)
    assert fresh(dataset).name == "Handbook"


def test_progress_and_delete_summary_of_a_document_being_indexed(builder, dataset):
    document = services.document_create(dataset=dataset, name="h.md", data=HANDBOOK.encode())
    index(document)
    chunk_total = Chunk.dangerously_unscoped.filter(document=document).count()
    Document.dangerously_unscoped.filter(pk=document.pk).update(
        indexing_status="indexing", progress=40
    )
    listing = text_of(builder.get(DOCUMENTS))
    assert '<progress max="100" value="40"' in listing and "Indexing" in listing
    assert 'http-equiv="refresh"' in listing
    confirm = builder.post(
        DOCUMENTS, {"action": "delete_selected", "index": 0, "_selected_action": [document.pk]}
    )
    assert f"Chunks: {chunk_total}" in text_of(confirm)
    assert Document.dangerously_unscoped.filter(pk=document.pk).exists()
