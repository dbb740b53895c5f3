"""Bad input gets a clear error and changes nothing (the cases tests/test_tracker.py
does not already cover: sizes that cannot be allocated, every row-writing
method's values, a full pool)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lptrack import _shm
from lptrack.tracker import TaskTracker, create_task_tracker

TOO_BIG = [2**29, 2**31, 10**15]  # over the free memory of any CI box / over LPT_MAX_CAPACITY


@pytest.mark.parametrize("capacity", TOO_BIG)
@pytest.mark.parametrize("use_shared_memory", [False, True], ids=["local", "in-segment"])
def test_a_pool_too_large_to_allocate_is_refused_before_allocating(engine, session_id, capacity, use_shared_memory):
    with pytest.raises(ValueError, match="needs|capacity"):
        create_task_tracker(capacity, use_shared_memory=use_shared_memory, _session_id=session_id, engine=engine)
    assert not [name for name in _shm.list_segments() if name.endswith(session_id)]


def test_a_row_too_wide_to_allocate_is_refused(engine):
    from lptrack.tracker import LocalMemoryBackend

    with pytest.raises(ValueError):
        LocalMemoryBackend(2**20, task_struct_size=2**20, engine=engine)


@pytest.fixture
def tracker(engine) -> TaskTracker:
    tracker = TaskTracker(max_memory_tasks=3, engine=engine)
    for task_id in (1, 2, 3):
        tracker.update_task_performance(task_id, 0.5)
    return tracker


def pool(tracker: TaskTracker) -> np.ndarray:
    return tracker.backend.table.rows.copy()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_never_reach_a_row(tracker, bad):
    before = pool(tracker)
    for call in (
        lambda: tracker.update_lp_score(1, bad),
        lambda: tracker.update_bidirectional_emas(1, 0.1, 0.1, 0.1, bad),
        lambda: tracker.update_task_performance(1, 0.5, lp_score=bad),
        lambda: tracker.update_task_performance(1, 0.5, success_threshold=bad),
        lambda: tracker.track_task_creation(9, success_threshold=bad),
        lambda: tracker.track_task_creation(9, seed=bad),
    ):
        with pytest.raises(ValueError, match="finite"):
            call()
    np.testing.assert_array_equal(pool(tracker), before)


def test_a_full_pool_refuses_a_new_task_and_disturbs_no_other(tracker):
    before = pool(tracker)
    tracker.track_task_creation(4)
    tracker.update_task_performance_with_bidirectional_emas(5, 0.5)
    assert tracker.get_task_index(4) is None and tracker.get_task_index(5) is None
    np.testing.assert_array_equal(pool(tracker), before)
    assert tracker.get_global_stats()["total_completions"] == 3


def test_labels_must_be_strings(tracker):
    before = pool(tracker)
    with pytest.raises(TypeError):
        tracker.set_task_label(1, b"maze")
    np.testing.assert_array_equal(pool(tracker), before)


def test_attaching_with_another_capacity_is_refused_and_changes_nothing(session_id):
    from lptrack.errors import LayoutMismatchError

    first = create_task_tracker(4, use_shared_memory=True, _session_id=session_id)
    first.update_task_performance(1, 0.5)
    try:
        with pytest.raises(LayoutMismatchError, match="has 4 task slots where this process asked for 8: "
                                                      "open it with num_active_tasks=4 as"):
            create_task_tracker(8, use_shared_memory=True, _session_id=session_id)
        assert first.get_all_tracked_tasks() == [1] and Path(_shm.SHM_DIR).exists()
    finally:
        first.cleanup_shared_memory()
