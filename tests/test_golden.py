"""Replay of the golden traces recorded from the original (see tests/golden/README.md).

With ``perf_invalidation_batch_size=1`` every answer must equal the original's:
floats to 1e-12 relative (or 1e-15 absolute), ids exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lptrack import CurriculumTask, LearningProgressAlgorithm, LearningProgressConfig, NullStatsLogger

# The traces ship with the repository: a test never reads outside it.
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
TRACES = sorted(GOLDEN_DIR.glob("trace_*.json"))
# The original was recorded in this many scenarios; one gone missing must fail the run.
RECORDED_TRACES = 12
REL_TOL = 1e-12
ABS_TOL = 1e-15


def test_golden_traces_exist() -> None:
    assert GOLDEN_DIR.is_dir(), f"golden trace directory {GOLDEN_DIR} is missing"
    assert len(TRACES) == RECORDED_TRACES, f"expected {RECORDED_TRACES} trace_*.json in {GOLDEN_DIR}, found {len(TRACES)}"


def _close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _check_value(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, float):
        assert isinstance(actual, (int, float)) and _close(actual, expected), f"{where}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def replay(trace: dict[str, Any], engine: str, session_id: str | None = None) -> int:
    """Replay one trace (in a shared segment when ``session_id`` is given); returns the
    number of answers compared."""
    settings = {**trace["config"], "perf_invalidation_batch_size": 1, "engine": engine}
    if session_id is not None:
        settings.update(use_shared_memory=True, session_id=session_id)
    config = LearningProgressConfig(**settings)
    algorithm = LearningProgressAlgorithm(config.num_active_tasks, NullStatsLogger(), config)
    try:
        return _replay_ops(trace["ops"], algorithm)
    finally:
        algorithm.cleanup_shared_memory()


def _replay_ops(ops: list[dict[str, Any]], algorithm: LearningProgressAlgorithm) -> int:
    tracker = algorithm.task_tracker
    compared = 0
    for step, op in enumerate(ops):
        where = f"op {step} ({op['op']})"
        kind = op["op"]
        if kind == "create":
            algorithm.on_task_created(CurriculumTask(op["task_id"], SimpleNamespace(label=op["label"])))
            _check_value(tracker.get_task_index(op["task_id"]) is not None, op["expect_tracked"], where)
        elif kind == "update":
            algorithm.update_task_performance(op["task_id"], op["score"])
            continue
        elif kind == "evict":
            algorithm.on_task_evicted(op["task_id"])
            continue
        elif kind == "score_tasks":
            scores = algorithm.score_tasks(op["task_ids"])
            for task_id, expected in zip(op["task_ids"], op["expect"], strict=True):
                _check_value(scores[task_id], expected, f"{where} task {task_id}")
        elif kind == "recommend_eviction":
            _check_value(algorithm.recommend_eviction(op["task_ids"], op["min_presentations"]), op["expect"], where)
        elif kind == "task_stats":
            stats = tracker.get_task_stats(op["task_id"])
            assert stats is not None, f"{where}: task {op['task_id']} is not tracked"
            for key, expected in op["expect"].items():
                _check_value(stats[key], expected, f"{where} {key}")
        elif kind == "all_tracked":
            _check_value(sorted(tracker.get_all_tracked_tasks()), op["expect"], where)
        elif kind == "global_stats":
            stats = tracker.get_global_stats()
            for key, expected in op["expect"].items():
                _check_value(stats[key], expected, f"{where} {key}")
        else:
            raise AssertionError(f"{where}: unknown op {kind!r}")
        compared += 1
    return compared


@pytest.mark.parametrize("trace_path", TRACES, ids=[path.stem for path in TRACES])
def test_golden_trace(trace_path: Path, engine: str) -> None:
    trace = json.loads(trace_path.read_text())
    assert trace["config"]["use_shared_memory"] is False
    assert replay(trace, engine) > 0


@pytest.mark.parametrize("trace_path", TRACES, ids=[path.stem for path in TRACES])
def test_golden_trace_in_a_shared_segment(trace_path: Path, engine: str, session_id: str) -> None:
    """The same answers when the pool lives in a session's shared segment."""
    assert replay(json.loads(trace_path.read_text()), engine, session_id) > 0
