"""Management API of workflows (`/api/workflows/`): drafts, Dify DSL import and export,
validation, versions, and runs with their event streams."""
