"""Knowledge bases: datasets of documents, split into chunks that carry an embedding and the
terms full-text search ranks with BM25 (from the postings and term statistics that PostgreSQL
triggers derive from the chunks: see migration 0005)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import VectorField

from tenants.models import TenantOwned


class Dataset(TenantOwned):
    """A knowledge base: documents indexed with one embedding model, searched together."""

    class Permission(models.TextChoices):  # Dify's names
        ONLY_ME = "only_me", "Only me"
        ALL_TEAM_MEMBERS = "all_team_members", "Whole tenant"
        PARTIAL_MEMBERS = "partial_members", "Chosen members"

    class IndexingTechnique(models.TextChoices):
        HIGH_QUALITY = "high_quality", "High quality (embeddings + keywords)"
        ECONOMY = "economy", "Economy (keywords only)"

    class DocForm(models.TextChoices):
        TEXT = "text_model", "Chunks"
        HIERARCHICAL = "hierarchical_model", "Parent-child chunks"
        QA = "qa_model", "Question and answer pairs"

    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    permission = models.CharField(
        max_length=32, choices=Permission.choices, default=Permission.ONLY_ME
    )
    indexing_technique = models.CharField(
        max_length=32, choices=IndexingTechnique.choices, default=IndexingTechnique.HIGH_QUALITY
    )
    doc_form = models.CharField(max_length=32, choices=DocForm.choices, default=DocForm.TEXT)
    embedding_model = models.ForeignKey(
        "providers.Model",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: the tenant's default embedding model when the dataset was created.",
    )
    embedding_dimensions = models.PositiveIntegerField(null=True, blank=True, editable=False)
    retrieval_model = models.JSONField(
        default=dict, blank=True, help_text="Default retrieval settings, in Dify's shape."
    )
    process_rule = models.JSONField(
        default=dict, blank=True, help_text="Default splitting rule for new documents."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # BM25 needs the collection's size and average length: kept here, per dataset, by the
    # triggers on knowledge_chunk (searchable, enabled, live chunks and their terms).
    chunk_count = models.PositiveIntegerField(default=0, editable=False)
    term_count = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="dataset_unique_name")
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Document(TenantOwned):
    """One source in a dataset (a file or a text) and where its indexing stands."""

    class Status(models.TextChoices):  # Dify's indexing_status values
        WAITING = "waiting", "Waiting"
        PARSING = "parsing", "Parsing"
        CLEANING = "cleaning", "Cleaning"
        SPLITTING = "splitting", "Splitting"
        INDEXING = "indexing", "Indexing"
        COMPLETED = "completed", "Completed"
        ERROR = "error", "Error"
        PAUSED = "paused", "Paused"

    class Source(models.TextChoices):
        UPLOAD_FILE = "upload_file", "Uploaded file"
        TEXT = "text", "Text"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="documents")
    name = models.CharField(max_length=255)
    data_source_type = models.CharField(
        max_length=32, choices=Source.choices, default=Source.UPLOAD_FILE
    )
    file = models.FileField(upload_to="knowledge/%Y/%m/", blank=True, max_length=500)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=16, blank=True, help_text="The type sniffed from content.")
    indexing_status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.WAITING
    )
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    word_count = models.PositiveIntegerField(default=0)
    tokens = models.PositiveIntegerField(default=0)
    stage_seconds = models.JSONField(default=dict, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Last sign of life of its indexing."
    )
    attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    chunks_planned = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Chunks its running indexing will hold when done: counted against the plan "
        "in place of those written so far, so documents indexed at once cannot pass it.",
    )
    process_rule = models.JSONField(default=dict, blank=True)
    doc_form = models.CharField(
        max_length=32, choices=Dataset.DocForm.choices, default=Dataset.DocForm.TEXT
    )
    enabled = models.BooleanField(default=True)
    archived = models.BooleanField(default=False)
    doc_metadata = models.JSONField(default=dict, blank=True)
    position = models.PositiveIntegerField(default=0)
    batch = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwned.Meta):
        indexes = [
            models.Index(fields=["tenant", "dataset", "position"], name="document_dataset_pos"),
            models.Index(fields=["tenant", "indexing_status"], name="document_status"),
        ]
        ordering = ["position", "created_at"]

    def __str__(self) -> str:
        return self.name


class Chunk(TenantOwned):
    """A piece of a document: what retrieval finds. Parents (parent-child mode) are kept for
    their text only; their children are what gets matched."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    position = models.PositiveIntegerField()
    searchable = models.BooleanField(default=True)
    # The document is completed, enabled and not archived: only live chunks are searched, so
    # a document being indexed (or failed) never shows partial results.
    live = models.BooleanField(default=False)
    content = models.TextField()
    answer = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64)
    tokens = models.PositiveIntegerField(default=0)
    keywords = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    hit_count = models.PositiveIntegerField(default=0)
    # One column for every dimension; each dimension has its own partial HNSW index.
    embedding = VectorField(null=True, blank=True)
    embedding_dim = models.PositiveSmallIntegerField(null=True, blank=True)
    terms = SearchVectorField(null=True, blank=True)
    term_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        constraints = [
            # Indexing writes chunks by (document, position): a re-run never duplicates.
            models.UniqueConstraint(fields=["document", "position"], name="chunk_unique_position")
        ]
        # No index on `terms`: full-text search reads the postings the triggers derive from
        # them. The table is filled to half its pages (migration 0006) so that flipping `live`
        # or `enabled` and counting hits rewrite a row in its page, without new entries in
        # every index (each one an insertion into the HNSW graph).
        indexes = [
            models.Index(fields=["tenant", "dataset", "document"], name="chunk_dataset_document"),
        ]
        ordering = ["document", "position"]

    def __str__(self) -> str:
        return self.content[:60]


# Full-text search reads these two tables, never the chunks' tsvectors one by one. Triggers on
# knowledge_chunk (migration 0005) keep them equal to what the searchable, enabled, live chunks
# hold, in the same transaction as any write to a chunk, whichever code makes it: they are
# derived rows, without a tenant of their own (the dataset's is checked by every search), and
# nothing but those triggers writes them.


class Term(models.Model):
    """One term of a dataset: in how many of its searched chunks it occurs (BM25's document
    frequency), and the most times it occurs in one (an upper bound of its score)."""

    pk = models.CompositePrimaryKey("dataset_id", "term")
    dataset_id = models.UUIDField()
    term = models.TextField()
    df = models.IntegerField()
    # Raised as chunks come, never lowered as they go: a bound, not a statistic.
    max_tf = models.SmallIntegerField()

    dangerously_unscoped = models.Manager()

    def __str__(self) -> str:
        return self.term


class Posting(models.Model):
    """One term in one searched chunk: how often (tf) in how many terms (dl, the chunk's
    length). The primary key covers the other columns, so a term's list is read from the
    index alone."""

    pk = models.CompositePrimaryKey("dataset_id", "term", "chunk_id")
    dataset_id = models.UUIDField()
    term = models.TextField()
    chunk_id = models.UUIDField()
    document_id = models.UUIDField()
    tf = models.SmallIntegerField()
    dl = models.IntegerField()

    dangerously_unscoped = models.Manager()

    def __str__(self) -> str:
        return self.term


class HitTestQuery(TenantOwned):
    """One retrieval test (hit testing) or API retrieval: the history shown beside it."""

    class Source(models.TextChoices):
        CONSOLE = "console", "Console"
        API = "api", "Knowledge API"
        APP = "app", "App"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="hit_tests")
    query = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.CONSOLE)
    retrieval_model = models.JSONField(default=dict, blank=True)
    result_count = models.PositiveIntegerField(default=0)
    elapsed_ms = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Written on every retrieval, by no person's edit: not for the audit trail.
    audit_trail = False

    class Meta(TenantOwned.Meta):
        indexes = [
            models.Index(
                fields=["tenant", "dataset", "-created_at"], name="hittest_dataset_created"
            )
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.query[:60]
