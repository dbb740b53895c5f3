"""``TaskTracker``, ``create_task_tracker``, ``TaskState`` and ``TaskStateIndices``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from lptrack import (
    LocalMemoryBackend,
    SharedMemoryBackend,
    TaskState,
    TaskStateIndices,
    TaskTracker,
    create_task_tracker,
)
from lptrack.errors import PoolFullError

BIDIRECTIONAL = SimpleNamespace(
    config=SimpleNamespace(ema_timescale=0.1, slow_timescale_factor=0.5, use_baseline_normalization=False)
)
BASELINE = SimpleNamespace(
    config=SimpleNamespace(ema_timescale=0.1, slow_timescale_factor=0.5, use_baseline_normalization=True)
)


@pytest.fixture
def tracker(engine: str) -> TaskTracker:
    return TaskTracker(max_memory_tasks=4, ema_alpha=0.1, engine=engine)


def row_of(tracker: TaskTracker, task_id: int) -> np.ndarray:
    return tracker.backend.get_task_data(tracker.get_task_index(task_id))


# -- TaskState / TaskStateIndices -------------------------------------------------------------------
def test_task_state_fields_follow_the_row_layout() -> None:
    names = [field.name for field in dataclasses.fields(TaskState)]
    assert len(names) == TaskState.struct_size() == 18
    for index, name in enumerate(names):
        assert getattr(TaskStateIndices, name.upper()) == index


def test_task_state_round_trips_through_an_array() -> None:
    state = TaskState(task_id=3.0, lp_score=0.25, label_hash=17.0)
    array = state.to_array()
    assert array.dtype == np.float64 and array.shape == (18,)
    assert array[TaskStateIndices.LP_SCORE] == 0.25
    assert TaskState.from_array(array) == state
    assert TaskState() == TaskState.from_array(np.zeros(18))


# -- creation ---------------------------------------------------------------------------------------------
def test_track_task_creation_fills_a_row(tracker: TaskTracker) -> None:
    tracker.track_task_creation(7)
    row = row_of(tracker, 7)
    assert row[TaskStateIndices.IS_ACTIVE] == 1.0 and row[TaskStateIndices.SUCCESS_THRESHOLD] == 0.5
    assert 0.0 <= row[TaskStateIndices.SEED] < 2**31 and row[TaskStateIndices.SEED].is_integer()
    assert row[TaskStateIndices.CREATION_TIME] > 0
    tracker.track_task_creation(8, success_threshold=0.9, seed=3.0, generator_type=2.0)
    row = row_of(tracker, 8)
    assert (row[8], row[9], row[10]) == (0.9, 3.0, 2.0)


def test_track_task_creation_is_a_no_op_when_tracked_or_full(tracker: TaskTracker) -> None:
    tracker.track_task_creation(1, seed=5.0)
    tracker.track_task_creation(1, seed=6.0)
    assert row_of(tracker, 1)[TaskStateIndices.SEED] == 5.0
    for task_id in (2, 3, 4):
        tracker.track_task_creation(task_id)
    tracker.track_task_creation(5)
    assert tracker.get_task_index(5) is None and len(tracker.get_all_tracked_tasks()) == 4


def test_constructor_defaults_apply(engine: str) -> None:
    tracker = TaskTracker(4, 0.1, default_success_threshold=0.7, default_generator_type=3.0, engine=engine)
    tracker.track_task_creation(1)
    assert row_of(tracker, 1)[TaskStateIndices.SUCCESS_THRESHOLD] == 0.7
    assert row_of(tracker, 1)[TaskStateIndices.GENERATOR_TYPE] == 3.0


def test_tracker_adopts_the_tasks_of_its_backend(engine: str) -> None:
    backend = LocalMemoryBackend(3, engine=engine)
    TaskTracker(backend=backend).track_task_creation(9)
    adopted = TaskTracker(max_memory_tasks=100, backend=backend)
    assert adopted.max_memory_tasks == 3 and adopted.get_all_tracked_tasks() == [9]


# -- updates ---------------------------------------------------------------------------------------------
def test_basic_emas_follow_the_formulas(tracker: TaskTracker) -> None:
    a = 0.1
    tracker.track_task_creation(1, success_threshold=0.5)
    scores = [0.3, 0.9, 0.6, 0.1]
    reward = squared = success = total = 0.0
    for n, s in enumerate(scores):
        tracker.update_task_performance_with_bidirectional_emas(1, s)
        hit = 1.0 if s >= 0.5 else 0.0
        reward = s if n == 0 else (1 - a) * reward + a * s
        squared = s * s if n == 0 else (1 - a) * squared + a * (s * s)
        success = hit if n == 0 else (1 - a) * success + a * hit
        total += s
    stats = tracker.get_task_stats(1)
    assert stats["completion_count"] == 4 and isinstance(stats["completion_count"], int)
    assert stats["reward_ema"] == reward and stats["ema_squared"] == squared
    assert stats["success_rate_ema"] == success and stats["mean_score"] == total / 4
    assert stats["last_score"] == 0.1 and stats["p_fast"] == 0.0  # no scorer: no bidirectional part


def test_bidirectional_emas_follow_the_formulas(tracker: TaskTracker) -> None:
    t, u = 0.1, 0.1 * 0.5
    tracker.track_task_creation(1)
    fast = slow = true = 0.0
    for s in (0.4, 0.8, 0.2):
        tracker.update_task_performance_with_bidirectional_emas(1, s, scorer=BIDIRECTIONAL)
        if fast == 0.0 and slow == 0.0:
            fast = slow = true = s
        else:
            fast, slow, true = s * t + fast * (1.0 - t), s * u + slow * (1.0 - u), s * t + true * (1.0 - t)
    stats = tracker.get_task_stats(1)
    assert (stats["p_fast"], stats["p_slow"], stats["p_true"]) == (fast, slow, true)
    assert stats["random_baseline"] == 0.0


def test_baseline_normalization_and_the_reinitialisation_quirk(tracker: TaskTracker) -> None:
    tracker.track_task_creation(1)
    tracker.update_task_performance_with_bidirectional_emas(1, 0.6, scorer=BASELINE)
    stats = tracker.get_task_stats(1)
    # baseline = min(0.6, 0.75); x = 0 -> p_fast and p_slow stay 0.0 ...
    assert stats["random_baseline"] == 0.6 and stats["p_fast"] == stats["p_slow"] == 0.0 and stats["p_true"] == 0.6
    tracker.update_task_performance_with_bidirectional_emas(1, 0.8, scorer=BASELINE)
    stats = tracker.get_task_stats(1)
    x = max(0.8 - 0.6, 0.0) / max(1.0 - 0.6, 1e-10)
    # ... so the next update re-initialises them.
    assert stats["p_fast"] == stats["p_slow"] == x and stats["p_true"] == 0.8
    tracker.track_task_creation(2)
    tracker.update_task_performance_with_bidirectional_emas(2, 0.95, scorer=BASELINE)
    assert tracker.get_task_stats(2)["random_baseline"] == 0.75


def test_success_threshold_given_to_an_update_is_kept(tracker: TaskTracker) -> None:
    tracker.track_task_creation(1, success_threshold=0.5)
    tracker.update_task_performance_with_bidirectional_emas(1, 0.6, success_threshold=0.7)
    stats = tracker.get_task_stats(1)
    assert stats["success_threshold"] == 0.7 and stats["success_rate_ema"] == 0.0


@pytest.mark.parametrize("threshold, expected", [(None, 0.5), (0.0, 0.0), (0.8, 0.8)])
def test_update_creates_an_untracked_task(tracker: TaskTracker, threshold: float | None, expected: float) -> None:
    tracker.update_task_performance_with_bidirectional_emas(9, 0.9, success_threshold=threshold)
    stats = tracker.get_task_stats(9)
    assert stats["completion_count"] == 1 and stats["success_threshold"] == expected


def test_update_on_a_full_pool_changes_nothing(tracker: TaskTracker) -> None:
    for task_id in (1, 2, 3, 4):
        tracker.track_task_creation(task_id)
    tracker.update_task_performance_with_bidirectional_emas(5, 0.9)
    tracker.update_task_performance(5, 0.9)
    assert tracker.get_task_index(5) is None
    assert tracker.get_global_stats() == {"mean_score": 0.0, "total_completions": 0}


def test_update_task_performance_sets_lp_score_when_given(tracker: TaskTracker) -> None:
    tracker.track_task_creation(1)
    tracker.update_task_performance(1, 0.5, lp_score=0.3)
    tracker.update_task_performance(1, 0.7)
    stats = tracker.get_task_stats(1)
    assert stats["lp_score"] == 0.3 and stats["completion_count"] == 2 and stats["p_fast"] == 0.0


def test_update_lp_score_and_bidirectional_emas(tracker: TaskTracker) -> None:
    tracker.track_task_creation(1)
    tracker.update_task_performance(1, 0.5)
    tracker.update_lp_score(1, 0.4)
    tracker.update_bidirectional_emas(1, 0.1, 0.2, 0.3, 0.05)
    stats = tracker.get_task_stats(1)
    assert (stats["lp_score"], stats["p_fast"], stats["p_slow"], stats["p_true"], stats["random_baseline"]) == (
        0.4, 0.1, 0.2, 0.3, 0.05
    )


def test_global_stats_are_running_totals(tracker: TaskTracker) -> None:
    assert tracker.get_global_stats() == {"mean_score": 0.0, "total_completions": 0}
    for s in (0.2, 0.4, 0.9):
        tracker.update_task_performance_with_bidirectional_emas(1, s)
    assert tracker.get_global_stats() == {"mean_score": (0.2 + 0.4 + 0.9) / 3, "total_completions": 3}
    assert tracker._total_completions == 3
    tracker.remove_task(1)
    assert tracker.get_global_stats()["total_completions"] == 3


# -- reads -------------------------------------------------------------------------------------------------
def test_task_stats_of_a_fresh_task_read_zero(tracker: TaskTracker) -> None:
    tracker.track_task_creation(1)
    tracker.update_lp_score(1, 0.1)
    stats = tracker.get_task_stats(1)
    assert set(stats) == {
        "completion_count", "mean_score", "reward_ema", "ema_squared", "lp_score", "success_rate_ema",
        "last_score", "success_threshold", "seed", "generator_type", "age_seconds", "p_fast", "p_slow",
        "p_true", "random_baseline",
    }
    assert stats["lp_score"] == 0.0 and stats["mean_score"] == 0.0 and stats["completion_count"] == 0
    assert 0.0 <= stats["age_seconds"] < 60
    assert all(type(value) in (int, float) for value in stats.values())


def test_task_stats_of_unknown_and_inactive_tasks(tracker: TaskTracker) -> None:
    assert tracker.get_task_stats(1) is None
    tracker.track_task_creation(1)
    row_of(tracker, 1)[TaskStateIndices.IS_ACTIVE] = 0.0
    assert tracker.get_task_stats(1) is None


def test_remove_task_frees_the_slot(tracker: TaskTracker) -> None:
    tracker.track_task_creation(1)
    slot = tracker.get_task_index(1)
    tracker.remove_task(1)
    assert tracker.get_task_index(1) is None and not tracker.backend.get_task_data(slot).any()
    tracker.remove_task(1)  # untracked: no-op


@pytest.mark.parametrize("cache", [True, False])
def test_all_tracked_tasks_is_a_fresh_list_that_follows_changes(engine: str, cache: bool) -> None:
    tracker = TaskTracker(4, enable_task_list_cache=cache, engine=engine)
    tracker.track_task_creation(1)
    tracker.track_task_creation(2)
    listed = tracker.get_all_tracked_tasks()
    assert listed == [1, 2]
    listed.append(99)
    assert tracker.get_all_tracked_tasks() == [1, 2]
    tracker.remove_task(1)
    tracker.track_task_creation(3)
    assert sorted(tracker.get_all_tracked_tasks()) == [2, 3]
    tracker.load_state({"max_memory_tasks": 4, "task_memory": {5: {}}})
    assert tracker.get_all_tracked_tasks() == [5]


def test_task_id_to_index_view(tracker: TaskTracker) -> None:
    tracker.track_task_creation(10)
    tracker.track_task_creation(20)
    view = tracker._task_id_to_index
    assert 10 in view and 30 not in view and "10" not in view
    assert view[20] == tracker.get_task_index(20)
    assert len(view) == 2 and sorted(view) == [10, 20]
    with pytest.raises(KeyError):
        view[30]
    with pytest.raises(TypeError):
        view[5] = 1  # type: ignore[index]


# -- validation ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "task_id, error",
    [(True, TypeError), (1.0, TypeError), ("1", TypeError), (None, TypeError), (0, ValueError), (-5, ValueError),
     (2**53, ValueError)],
)
def test_bad_task_ids_are_refused_without_effect(tracker: TaskTracker, task_id: object, error: type) -> None:
    for call in (
        lambda: tracker.track_task_creation(task_id),
        lambda: tracker.update_task_performance_with_bidirectional_emas(task_id, 0.5),
        lambda: tracker.update_task_performance(task_id, 0.5),
        lambda: tracker.get_task_stats(task_id),
        lambda: tracker.remove_task(task_id),
        lambda: tracker.set_task_label(task_id, "x"),
    ):
        with pytest.raises(error):
            call()
    assert tracker.get_all_tracked_tasks() == [] and tracker._total_completions == 0


def test_numpy_integer_ids_are_accepted(tracker: TaskTracker) -> None:
    tracker.track_task_creation(np.int64(2**53 - 1))
    assert tracker.get_task_index(2**53 - 1) is not None


@pytest.mark.parametrize("score, error", [(math.nan, ValueError), (math.inf, ValueError), (-math.inf, ValueError),
                                          ("0.5", TypeError), (None, TypeError)])
def test_bad_scores_are_refused_without_effect(tracker: TaskTracker, score: object, error: type) -> None:
    tracker.track_task_creation(1)
    before = row_of(tracker, 1).copy()
    with pytest.raises(error):
        tracker.update_task_performance_with_bidirectional_emas(1, score)
    with pytest.raises(error):
        tracker.update_task_performance(1, score)
    with pytest.raises(error):
        tracker.update_task_performance_with_bidirectional_emas(2, score)
    np.testing.assert_array_equal(row_of(tracker, 1), before)
    assert tracker.get_task_index(2) is None and tracker.get_global_stats()["total_completions"] == 0


@pytest.mark.parametrize("kwargs", [{"max_memory_tasks": 0}, {"max_memory_tasks": -1}, {"ema_alpha": 0.0},
                                    {"ema_alpha": 1.5}, {"ema_alpha": math.nan}])
def test_bad_tracker_arguments(engine: str, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TaskTracker(**kwargs, engine=engine)
    with pytest.raises(ValueError):
        create_task_tracker(**{"max_memory_tasks": 4, **kwargs}, use_shared_memory=True, engine=engine)


# -- labels --------------------------------------------------------------------------------------------------
def test_label_hash_is_sha256_prefix_masked_to_53_bits(tracker: TaskTracker) -> None:
    tracker.track_task_creation(1)
    tracker.set_task_label(1, "navigation/ü")
    digest = hashlib.sha256("navigation/ü".encode()).digest()
    expected = int.from_bytes(digest[:8], "big") & ((1 << 53) - 1)
    assert row_of(tracker, 1)[TaskStateIndices.LABEL_HASH] == float(expected)
    assert tracker.get_task_label(1) == "navigation/ü"


def test_labels_and_label_completion_counts(tracker: TaskTracker) -> None:
    tracker.set_task_label(1, "ghost")  # unknown task: no-op
    assert tracker.get_task_label(1) is None
    for task_id, label, completions in ((1, "a", 2), (2, "a", 3), (3, "b", 1), (4, None, 5)):
        tracker.track_task_creation(task_id)
        if label is not None:
            tracker.set_task_label(task_id, label)
        for _ in range(completions):
            tracker.update_task_performance(task_id, 0.5)
    assert tracker.get_task_label(4) is None
    assert tracker.get_label_completion_counts() == {"a": 5, "b": 1}
    tracker.set_task_label(3, "a")
    assert tracker.get_label_completion_counts() == {"a": 6}
    with pytest.raises(TypeError):
        tracker.set_task_label(1, 5)  # type: ignore[arg-type]


# -- checkpoints ------------------------------------------------------------------------------------------------
def populated(tracker: TaskTracker) -> TaskTracker:
    for task_id, scores in ((11, (0.2, 0.7)), (12, (0.9,)), (13, ())):
        tracker.track_task_creation(task_id, success_threshold=0.6, seed=float(task_id))
        for s in scores:
            tracker.update_task_performance_with_bidirectional_emas(task_id, s, scorer=BIDIRECTIONAL)
    tracker.set_task_label(12, "x")
    return tracker


def test_get_state_shape(tracker: TaskTracker) -> None:
    state = populated(tracker).get_state()
    assert state["max_memory_tasks"] == 4 and state["tracker_type"] == "local" and state["session_id"] is None
    assert set(state["task_memory"]) == {11, 12, 13}
    assert set(state["task_memory"][11]) == {
        "creation_time", "completion_count", "reward_ema", "lp_score", "success_rate_ema", "total_score",
        "last_score", "success_threshold", "seed", "generator_type", "ema_squared", "p_fast", "p_slow", "p_true",
        "random_baseline", "label_hash",
    }
    assert state["task_memory"][11]["completion_count"] == 2
    assert state["task_creation_order"] == [] and state["cache_valid"] is True
    assert state["cached_total_completions"] == 3
    assert state["global_total_completions"] == 3 and state["global_sum_scores"] == 0.2 + 0.7 + 0.9


def test_checkpoint_round_trip_through_json(engine: str, tracker: TaskTracker) -> None:
    state = populated(tracker).get_state()
    restored = TaskTracker(4, 0.1, engine=engine)
    restored.track_task_creation(99)
    restored.load_state(json.loads(json.dumps(state)))  # string ids
    assert sorted(restored.get_all_tracked_tasks()) == [11, 12, 13]
    for task_id in (11, 12, 13):
        expected = tracker.get_task_stats(task_id)
        actual = restored.get_task_stats(task_id)
        assert {k: v for k, v in actual.items() if k != "age_seconds"} == {
            k: v for k, v in expected.items() if k != "age_seconds"
        }
    assert restored.get_global_stats() == tracker.get_global_stats()
    assert restored.get_state()["task_memory"] == state["task_memory"]


def test_load_state_defaults_missing_fields(tracker: TaskTracker) -> None:
    tracker.load_state({"max_memory_tasks": 4, "task_memory": {"5": {"completion_count": 2, "total_score": 1.0}}})
    stats = tracker.get_task_stats(5)
    assert stats["success_threshold"] == 0.5 and stats["seed"] == 0.0 and stats["completion_count"] == 2
    assert stats["mean_score"] == 0.5 and 0.0 <= stats["age_seconds"] < 60
    assert row_of(tracker, 5)[TaskStateIndices.IS_ACTIVE] == 1.0
    assert tracker.get_global_stats() == {"mean_score": 0.0, "total_completions": 0}


@pytest.mark.parametrize(
    "state, error",
    [
        ({"task_memory": {}}, ValueError),
        ({"max_memory_tasks": 4}, ValueError),
        ({"max_memory_tasks": 4, "task_memory": []}, TypeError),
        ({"max_memory_tasks": 4, "task_memory": {"abc": {}}}, ValueError),
        ({"max_memory_tasks": 4, "task_memory": {0: {}}}, ValueError),
        ({"max_memory_tasks": 4, "task_memory": {1.0: {}}}, TypeError),
        ({"max_memory_tasks": 4, "task_memory": {1: {}, "1": {}}}, ValueError),
        ({"max_memory_tasks": 4, "task_memory": {1: {"reward_ema": math.nan}}}, ValueError),
        ({"max_memory_tasks": 4, "task_memory": {1: {"reward_ema": "x"}}}, TypeError),
        ({"max_memory_tasks": 4, "task_memory": {1: {"completion_count": 1.5}}}, ValueError),
        ({"max_memory_tasks": 4, "task_memory": {1: {"label_hash": -1}}}, ValueError),
        ({"max_memory_tasks": 4, "task_memory": {1: {}}, "global_total_completions": -1}, ValueError),
        ({"max_memory_tasks": 4, "task_memory": {i: {} for i in range(1, 6)}}, PoolFullError),
    ],
)
def test_load_state_validates_before_touching_the_pool(tracker: TaskTracker, state: dict, error: type) -> None:
    populated(tracker)
    before = tracker.get_state()
    with pytest.raises(error):
        tracker.load_state(state)
    after = tracker.get_state()
    assert after == before


# -- pickling and shared trackers ----------------------------------------------------------------------------------
def test_local_tracker_pickles_with_its_totals(tracker: TaskTracker) -> None:
    populated(tracker)
    tracker.get_all_tracked_tasks()  # fills the cache
    clone = pickle.loads(pickle.dumps(tracker))
    assert clone.get_state()["task_memory"] == tracker.get_state()["task_memory"]
    assert clone.get_global_stats() == tracker.get_global_stats() and clone.get_task_label(12) == "x"
    clone.track_task_creation(50)
    assert 50 in clone.get_all_tracked_tasks() and tracker.get_task_index(50) is None


def test_create_task_tracker_picks_the_backend(engine: str, session_id: str) -> None:
    local = create_task_tracker(8, 0.1, False, engine=engine)
    assert isinstance(local.backend, LocalMemoryBackend) and local.max_memory_tasks == 8
    shared = create_task_tracker(8, 0.1, True, _session_id=session_id, engine=engine)
    try:
        assert isinstance(shared.backend, SharedMemoryBackend) and shared.backend.session_id == session_id
        shared.track_task_creation(3)
        state = shared.get_state()
        assert state["tracker_type"] == "centralized" and state["session_id"] == session_id
        other = create_task_tracker(8, 0.1, True, _session_id=session_id, engine=engine)
        assert other.get_task_index(3) == shared.get_task_index(3)
        assert other.get_all_tracked_tasks() == [3]
        other.cleanup_shared_memory()
    finally:
        shared.cleanup_shared_memory()


def test_shared_tracker_pickle_reattaches(engine: str, session_id: str) -> None:
    tracker = create_task_tracker(4, 0.1, True, _session_id=session_id, engine=engine)
    try:
        tracker.update_task_performance_with_bidirectional_emas(7, 0.5)
        clone = pickle.loads(pickle.dumps(tracker))
        assert clone.get_task_stats(7)["completion_count"] == 1
        assert clone.get_global_stats() == {"mean_score": 0.5, "total_completions": 1}
        clone.update_task_performance(7, 1.0)
        assert tracker.get_task_stats(7)["completion_count"] == 2
        assert tracker.get_global_stats()["total_completions"] == 1  # per-process totals
        clone.cleanup_shared_memory()
    finally:
        tracker.cleanup_shared_memory()
