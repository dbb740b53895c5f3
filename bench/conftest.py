"""Collect bench_*.py here: benchmarks live outside the test suite's testpaths
and its test_*.py pattern, and run with ``python -m pytest bench``."""

from __future__ import annotations

import pytest


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
