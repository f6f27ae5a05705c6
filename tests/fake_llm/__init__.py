"""The loopback fake LLM server, the one fake Weft's tests allow: it sits at the network edge.

`FakeLLM` is a real HTTP server speaking OpenAI's and Anthropic's wire formats; the pytest
fixtures `fake_llm` and `fake_llm_server` live in `tests.fake_llm.plugin`. See README.md.
"""

from .scenario import PRESETS, Reply, Scenario, ToolCall
from .server import DEFAULT_API_KEY, DEFAULT_MODELS, FakeLLM
from .wire import RecordedRequest

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_MODELS",
    "PRESETS",
    "FakeLLM",
    "RecordedRequest",
    "Reply",
    "Scenario",
    "ToolCall",
]
