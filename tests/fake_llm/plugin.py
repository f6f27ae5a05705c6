"""Pytest fixtures for the fake LLM; register with `pytest_plugins = ["tests.fake_llm.plugin"]`."""

from collections.abc import Iterator

import pytest

from .server import FakeLLM


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    """One fake LLM server for the whole session (per xdist worker); prefer `fake_llm`."""
    with FakeLLM() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> Iterator[FakeLLM]:
    """The session's fake LLM server, reset to a fresh state for this test.

    Fails the test if the fake itself crashed while serving it, so a bug in the fake is
    never mistaken for a bug in the code under test.
    """
    fake_llm_server.reset()
    yield fake_llm_server
    if fake_llm_server.errors:
        pytest.fail(f"the fake LLM server crashed:\n{fake_llm_server.errors[0]}", pytrace=False)
