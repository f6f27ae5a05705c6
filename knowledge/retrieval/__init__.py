"""Retrieval over datasets: semantic, full-text, hybrid (weighted or reciprocal rank fusion),
optional rerank, score threshold, top-k and metadata filters; what hit testing, the Knowledge
API and the apps' knowledge retrieval all call.

Settings come in Dify's `retrieval_model` shape (`RetrievalSettings.from_dify`). A call embeds
the query once per embedding model, searches in one trip to the database, reranks if asked,
then counts the hits and records the query in a second trip.
"""

from .fusion import fuse
from .service import ChildHit, Record, retrieve
from .settings import MetadataCondition, RetrievalSettings

__all__ = ["ChildHit", "MetadataCondition", "Record", "RetrievalSettings", "fuse", "retrieve"]
