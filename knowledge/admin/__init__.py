"""Console pages of the knowledge base: datasets (with upload and hit-testing pages),
their documents (status, progress, actions) and chunks (edits re-embed).

Permissions come from the matrix (`dataset.view` operator+, `dataset.create`/`manage`
builder+, `document.upload` operator+), narrowed by each dataset's visibility through
knowledge.permissions; a dataset, document or chunk one may not see answers 404.
"""

from . import chunks, datasets, documents

__all__ = ["chunks", "datasets", "documents"]
