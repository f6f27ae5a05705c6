"""Files tests keep for people to look at (the portal's screenshots, a rendered invoice):
under `test-artefacts/` at the project's root, which git ignores; WEFT_TEST_ARTEFACTS moves
it."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(
    os.environ.get("WEFT_TEST_ARTEFACTS", Path(__file__).resolve().parents[1] / "test-artefacts")
)


def folder(kind: str) -> Path:
    """The folder of one kind of artefact, made if it is missing."""
    path = ROOT / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
