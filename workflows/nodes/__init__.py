"""Node executors, one module per family; importing this package registers them all."""

from . import (
    agent,
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
    tools,
)

__all__ = [
    "agent",
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
    "tools",
]
