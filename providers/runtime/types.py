"""The model runtime's vocabulary: messages, tools, stream deltas, usage and errors.

Every implementation (OpenAI-compatible, Anthropic, built-in offline) speaks these types, so
callers never see a vendor's wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tenants.exceptions import WeftError

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A complete tool call the model asked for (arguments as a JSON string)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation; `tool_calls` on assistant turns, `tool_call_id` on
    tool results."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Tool:
    """A function the model may call, with a JSON Schema for its parameters."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ResponseFormat:
    """Ask for JSON: `json_object`, or `json_schema` with a schema the answer must follow."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str = "response"
    strict: bool = True


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text, in order."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A fragment of a tool call: `index` says which call; `id` and `name` come with the
    first fragment, `arguments` accumulate (JSON text split anywhere)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class Usage:
    """Token counts of one call, and whether they were reported by the provider or
    estimated locally."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


@dataclass(frozen=True)
class Finish:
    """The end of a chat stream: why it stopped, and its usage. Always the last item."""

    reason: FinishReason
    usage: Usage


ChatEvent = TextDelta | ToolCallDelta | Finish


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    usage: Usage


@dataclass(frozen=True)
class RerankResult:
    """Documents by relevance: (index into the input list, score), best first."""

    ranking: list[tuple[int, float]]
    usage: Usage


# --- Errors: what a caller can act on, never with a secret in the message ----------------


class ProviderError(WeftError):
    code = "provider_error"
    status = 502


class ProviderAuthFailed(ProviderError):
    """The provider refused the credential (401/403); the message is the provider's own."""

    code = "provider_auth_failed"
    status = 400


class ProviderUnavailable(ProviderError):
    """Down, overloaded or unreachable, after the retries."""

    code = "provider_unavailable"
    status = 503


class ProviderProtocolError(ProviderError):
    """The provider answered something that is not its documented wire format."""

    code = "provider_protocol_error"
    status = 502


class ProviderBadRequest(ProviderError):
    """The provider refused the request itself (400/422): too long, bad parameters …"""

    code = "provider_bad_request"
    status = 400


class ModelNotFound(ProviderError):
    code = "model_not_found"
    status = 404
