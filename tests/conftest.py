"""Shared fixtures: the engine parameter and clean-up of shared segments."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lptrack import _shm, algorithm

ENGINES = ["python", "native"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Every engine-dependent test runs on both engines."""
    return request.param


def _segments() -> set[str]:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        return set()
    return {entry.name for entry in shm.iterdir() if entry.name.startswith(_shm.SEGMENT_PREFIX)}


@pytest.fixture
def session_id() -> Iterator[str]:
    """A fresh session id; the test fails if it leaves one of its segments behind."""
    sid = f"t{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield sid
    leaked = {name for name in _segments() if name.endswith(sid)}
    for name in leaked:
        os.unlink(f"/dev/shm/{name}")
    assert not leaked, f"test left shared segments behind: {sorted(leaked)}"


@pytest.fixture(autouse=True)
def score_range_warning_unsent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts as a fresh process would: the once-per-process ScoreRangeWarning not
    yet shown, so a test giving a score outside [0, 1] sees it (and must expect it)."""
    monkeypatch.setattr(algorithm, "_score_range_warned_pid", 0)
