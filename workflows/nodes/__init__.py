"""Node executors, one module per family; importing this package registers them all."""

from . import (
    classifier,
    code,
    containers,
    data,
    documents,
    extractor,
    http,
    human,
    io,
    llm,
    logic,
    retrieval,
    template,
)

__all__ = [
    "classifier",
    "code",
    "containers",
    "data",
    "documents",
    "extractor",
    "http",
    "human",
    "io",
    "llm",
    "logic",
    "retrieval",
    "template",
]
