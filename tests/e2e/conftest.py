"""Browser tests: Playwright driving Debian's chromium against the live Daphne of
tests/apps/live.py. The chromium package is installed with apt when it is missing (the
machines have Debian's registry); Playwright's own browser downloads are never used.

Each test may `shot(page, "name")`: a full-page screenshot kept under
`test-artefacts/portal/` (see tests/artefacts.py), named after the test and the step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import artefacts

CHROMIUM = Path("/usr/bin/chromium")


def _install_chromium() -> None:
    """apt-get install chromium (updating the package lists once if it is not found)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    if subprocess.run(command, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(command, env=env, capture_output=True, check=True)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None:
            pytest.fail("chromium is missing and apt-get is not here to install it")
        _install_chromium()
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def browser(chromium_path) -> Iterator[object]:
    """Chromium for one test module. Playwright's sync API keeps an event loop marked as
    running in this thread while it is open: it is closed after each module so that the
    rest of the suite (asyncio.run, Django's async-safety checks) never sees that loop, and
    meanwhile Django's ORM is told the loop is not the caller's."""
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=chromium_path, headless=True, args=["--no-sandbox"]
            )
            yield launched
            launched.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(browser, request) -> Iterator[object]:
    """A fresh browser context's page, its console errors collected in `page.errors`."""
    context = browser.new_context(viewport={"width": 1100, "height": 760}, locale="en-US")
    opened = context.new_page()
    opened.errors = []  # type: ignore[attr-defined]
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))  # type: ignore[attr-defined]
    yield opened
    context.close()


@pytest.fixture
def shot(request):
    """shot(page, step) -> the path of a full-page screenshot of this step."""
    folder = artefacts.folder("portal")
    test = request.node.name.removeprefix("test_")

    def take(page, step: str) -> Path:
        path = folder / f"{test}--{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def settled(transactional_db):
    """After the test, wait until the live server has finished what the test started (its
    answers, and the conversation names it gives after them): the test database is emptied
    next, and a server still writing would deadlock with that."""
    yield
    from apps.models import Conversation, Message
    from apps.pipeline.naming import NEW_CONVERSATION

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        running = Message.dangerously_unscoped.filter(status=Message.Status.RUNNING).exists()
        unnamed = Conversation.dangerously_unscoped.filter(
            name=NEW_CONVERSATION, dialogue_count__gt=0, is_deleted=False
        ).exists()
        if not running and not unnamed:
            break
        time.sleep(0.1)
    time.sleep(0.3)  # the last write of a task commits after the row it changes
