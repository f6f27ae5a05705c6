"""Names and limits shared by the built-in models."""

OFFLINE_CHAT_MODEL = "weft-offline-chat"
OFFLINE_EMBEDDING_MODEL = "weft-offline-embedding"
OFFLINE_EMBEDDING_DIMENSIONS = 512
OFFLINE_RERANK_MODEL = "weft-offline-rerank"

# Work this large (characters) runs in a thread so that the event loop keeps serving.
INLINE_CHARS = 20_000
