"""Tables (both engines, through ``make_table``) and the memory backends."""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

from lptrack import LocalMemoryBackend, SharedMemoryBackend, TaskState, TaskStateIndices
from lptrack import _table as col
from lptrack._engines import DEFAULT_ENGINE, make_table
from lptrack._table import DistributionParams
from lptrack.errors import LayoutMismatchError, LockReentryError, LockTimeoutError, SegmentError


def claim(table, task_id: int, threshold: float = 0.5) -> int:
    return table.claim(task_id, 1000.0, threshold, 7.0, 0.0)


# -- engine selection ----------------------------------------------------------------------------
def test_default_engine_is_native() -> None:
    assert DEFAULT_ENGINE == "native"


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="engine"):
        make_table("rust", 4, 18)


def test_importing_lptrack_does_not_load_the_native_extension() -> None:
    code = "import sys, lptrack; assert not {'lptrack._native', 'lptrack._core'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": ":".join(sys.path)})


# -- table: pool membership -------------------------------------------------------------------------
@pytest.mark.parametrize("capacity", [0, -1])
def test_table_refuses_bad_capacity(engine: str, capacity: int) -> None:
    with pytest.raises(ValueError):
        make_table(engine, capacity, 18)


def test_claim_find_release(engine: str) -> None:
    table = make_table(engine, 3, 18)
    assert len(table) == 0 and table.find(5) == -1
    generation = table.generation
    slot = claim(table, 5, threshold=0.7)
    assert slot >= 0 and table.find(5) == slot and len(table) == 1
    assert table.generation > generation
    row = table.read_row(slot)
    assert row[col.TASK_ID] == 5 and row[col.IS_ACTIVE] == 1.0 and row[col.SUCCESS_THRESHOLD] == 0.7
    assert row[col.SEED] == 7.0 and row[col.CREATION_TIME] == 1000.0 and row[col.COMPLETION_COUNT] == 0.0
    # Claiming a tracked task leaves it alone.
    table.set_fields(5, {col.LP_SCORE: 0.25})
    generation = table.generation
    assert claim(table, 5, threshold=0.1) == slot
    assert table.read_row(slot)[col.LP_SCORE] == 0.25 and table.generation == generation
    assert table.release(5) is True and table.release(5) is False
    assert table.find(5) == -1 and len(table) == 0
    assert not table.read_row(slot).any()


def test_pool_full_claim_returns_minus_one(engine: str) -> None:
    table = make_table(engine, 2, 18)
    assert claim(table, 1) >= 0 and claim(table, 2) >= 0
    generation = table.generation
    assert claim(table, 3) == -1
    assert table.find(3) == -1 and table.generation == generation
    table.release(1)
    assert claim(table, 3) >= 0


def test_active_list_is_tracking_order_then_swap_with_last(engine: str) -> None:
    table = make_table(engine, 8, 18)
    for task_id in (10, 20, 30, 40):
        claim(table, task_id)
    assert table.active_ids().tolist() == [10, 20, 30, 40]
    table.release(20)
    assert table.active_ids().tolist() == [10, 40, 30]
    slots = table.active_slots().tolist()
    assert slots == [table.find(10), table.find(40), table.find(30)]
    assert table.active_ids().dtype == np.int64 and table.active_slots().dtype == np.int64


def test_clear_empties_the_pool(engine: str) -> None:
    table = make_table(engine, 4, 18)
    for task_id in (1, 2, 3):
        claim(table, task_id)
    generation = table.generation
    table.clear()
    assert len(table) == 0 and table.active_ids().size == 0 and not table.rows.any()
    assert table.generation > generation and table.find(2) == -1
    assert claim(table, 9) >= 0


def test_ids_up_to_2_53_minus_1_are_exact(engine: str) -> None:
    table = make_table(engine, 2, 18)
    big = 2**53 - 1
    claim(table, big)
    assert table.find(big) >= 0 and table.active_ids().tolist() == [big]


def test_labels(engine: str) -> None:
    table = make_table(engine, 4, 18)
    claim(table, 1)
    assert table.set_label(1, "maze", 12345) is True
    assert table.set_label(2, "maze", 12345) is False
    assert table.read_row(table.find(1))[col.LABEL_HASH] == 12345.0
    assert table.label_for_hash(12345) == "maze" and table.label_for_hash(1) is None


def test_lock_is_not_reentrant(engine: str) -> None:
    table = make_table(engine, 2, 18)
    with table.lock():
        with pytest.raises(LockReentryError, match="already holds"):
            with table.lock(timeout=0.01):
                pass
        with pytest.raises(LockReentryError):
            claim(table, 1)  # every locking method, not only lock()
    with table.lock(timeout=0.01):
        pass


def test_lock_held_by_another_thread_times_out_naming_the_pid(engine: str) -> None:
    table = make_table(engine, 2, 18)
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with table.lock():
            held.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        with pytest.raises(LockTimeoutError, match=f"pid {os.getpid()}") as caught:
            with table.lock(timeout=0.01):
                pass
        assert caught.value.holder_pid == os.getpid()
    finally:
        done.set()
        holder.join(10)


# -- table: updates ------------------------------------------------------------------------------------
def test_update_creates_when_missing_and_refuses_when_full(engine: str) -> None:
    table = make_table(engine, 1, 18)
    slot = table.update(3, 0.8, 0.1, math.nan, math.nan, 0.6, 50.0, 9.0, 2.0, None)
    row = table.read_row(slot)
    assert row[col.SUCCESS_THRESHOLD] == 0.6 and row[col.GENERATOR_TYPE] == 2.0 and row[col.COMPLETION_COUNT] == 1
    assert table.update(4, 0.8, 0.1, math.nan, math.nan, 0.6, 50.0, 9.0, 2.0, None) == -1
    assert table.find(4) == -1


def test_update_stores_lp_score_and_threshold_only_when_given(engine: str) -> None:
    table = make_table(engine, 1, 18)
    slot = claim(table, 3, threshold=0.5)
    table.set_fields(3, {col.LP_SCORE: 0.125})
    table.update(3, 0.8, 0.1, math.nan, math.nan, 0.5, 0.0, 0.0, 0.0, None)
    assert table.read_row(slot)[col.LP_SCORE] == 0.125
    table.update(3, 0.8, 0.1, 0.9, 0.75, 0.5, 0.0, 0.0, 0.0, None)
    row = table.read_row(slot)
    assert row[col.LP_SCORE] == 0.75 and row[col.SUCCESS_THRESHOLD] == 0.9 and row[col.SUCCESS_RATE_EMA] == 0.9


# -- table: distribution ---------------------------------------------------------------------------------
def reference_distribution(rows: list[list[float]], params: DistributionParams) -> list[float]:
    """SPEC.md's distribution, scalar by scalar, sums in list order."""
    theta = params.early_progress_amplification

    def reweight(p: float) -> float:
        p = min(max(p, 0.0), 1.0)
        denominator = p + theta * (1 - 2 * p)
        if abs(denominator) < 1e-10:
            return 0.0 if p < 0.5 else 1.0
        return p * (1 - theta) / denominator

    xs = []
    for row in rows:
        fast, slow = row[col.P_FAST], row[col.P_SLOW]
        lp = abs(reweight(fast) - reweight(slow)) if abs(theta - 0.5) > 1e-6 else abs(fast - slow)
        x = lp + params.progress_smoothing
        if params.performance_bonus_weight > 0:
            x += row[col.P_TRUE] * params.performance_bonus_weight
        xs.append(x)
    if params.lp_score_temperature == 0:
        mean = sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) * (x - mean) for x in xs) / len(xs))
        if std > 1e-10:
            xs = [(x - mean) / std * params.z_score_amplification for x in xs]
    elif params.lp_score_temperature > 0:
        xs = [x / params.lp_score_temperature for x in xs]
    xs = [1 / (1 + math.exp(-min(max(x, -500), 500))) for x in xs]
    total = sum(xs)
    return [x / total for x in xs] if total > 0 else [1 / len(xs)] * len(xs)


@pytest.mark.parametrize(
    "params",
    [
        DistributionParams(0.5, 0.0, 0.0, 0.0, 10.0),
        DistributionParams(0.8, 0.01, 0.5, 0.0, 5.0),
        DistributionParams(0.05, 0.0, 0.0, 1.0, 1.0),
        DistributionParams(0.5, 0.01, 0.0, 0.1, 1.0),
        DistributionParams(0.5, 0.0, 0.0, -1.0, 1.0),
    ],
)
def test_distribution_matches_the_formulas(engine: str, params: DistributionParams) -> None:
    table = make_table(engine, 16, 18)
    rng = np.random.default_rng(7)
    for task_id in range(1, 13):
        claim(table, task_id)
        fast, slow, true = rng.random(3)
        table.set_fields(task_id, {col.P_FAST: fast, col.P_SLOW: slow, col.P_TRUE: true})
    table.release(4)  # the active order is no longer slot order
    table.compute_lp_distribution(params)
    rows = [table.read_row(slot).tolist() for slot in table.active_slots()]
    expected = reference_distribution(rows, params)
    actual = [row[col.LP_SCORE] for row in rows]
    assert actual == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert math.isclose(sum(actual), 1.0, rel_tol=1e-12)


def test_distribution_of_identical_tasks_is_uniform(engine: str) -> None:
    table = make_table(engine, 4, 18)
    for task_id in (1, 2, 3):
        claim(table, task_id)
    table.compute_lp_distribution(DistributionParams(0.5, 0.0, 0.0, 0.0, 10.0))
    assert [table.read_row(s)[col.LP_SCORE] for s in table.active_slots()] == pytest.approx([1 / 3] * 3)


def test_distribution_of_an_empty_pool_is_a_no_op(engine: str) -> None:
    table = make_table(engine, 2, 18)
    table.compute_lp_distribution(DistributionParams(0.5, 0.0, 0.0, 0.0, 10.0))
    assert not table.rows.any()


# -- local backend -----------------------------------------------------------------------------------------
def test_local_backend_surface(engine: str) -> None:
    backend = LocalMemoryBackend(4, engine=engine)
    assert backend.max_tasks == 4 and backend.task_struct_size == TaskState.struct_size() == 18
    assert claim(backend.table, 11) == 0
    view = backend.get_task_data(0)
    view[TaskStateIndices.LP_SCORE] = 0.5  # a writable view of the row
    state = backend.get_task_state(0)
    assert state.task_id == 11 and state.lp_score == 0.5
    state.reward_ema = 0.25
    backend.set_task_state(0, state)
    assert backend.get_task_data(0)[TaskStateIndices.REWARD_EMA] == 0.25
    with backend.acquire_lock():
        pass
    backend.clear()
    assert len(backend.table) == 0
    backend.cleanup()


def test_set_task_state_cannot_change_which_task_a_slot_holds(engine: str) -> None:
    backend = LocalMemoryBackend(2, engine=engine)
    with pytest.raises(ValueError, match="cannot change the task"):
        backend.set_task_state(0, TaskState(task_id=5.0))
    assert not backend.table.rows.any()


@pytest.mark.parametrize("index", [-1, 4])
def test_backend_index_out_of_range(engine: str, index: int) -> None:
    backend = LocalMemoryBackend(4, engine=engine)
    with pytest.raises(IndexError):
        backend.get_task_data(index)


@pytest.mark.parametrize("max_tasks, error", [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)])
def test_backend_refuses_bad_capacity(engine: str, max_tasks: object, error: type) -> None:
    with pytest.raises(error):
        LocalMemoryBackend(max_tasks, engine=engine)  # type: ignore[arg-type]


def test_backend_refuses_narrow_rows(engine: str) -> None:
    with pytest.raises(ValueError, match="task_struct_size"):
        LocalMemoryBackend(4, task_struct_size=10, engine=engine)


def test_local_backend_pickles_a_copy(engine: str) -> None:
    backend = LocalMemoryBackend(4, engine=engine)
    for task_id in (1, 2, 3):
        claim(backend.table, task_id)
    backend.table.set_label(3, "walk", 99)
    backend.table.release(1)
    copy = pickle.loads(pickle.dumps(backend))
    assert copy.table.active_ids().tolist() == backend.table.active_ids().tolist() == [3, 2]
    assert copy.table.label_for_hash(99) == "walk"
    np.testing.assert_array_equal(copy.table.rows, backend.table.rows)
    claim(copy.table, 8)
    assert backend.table.find(8) == -1


# -- shared backend -------------------------------------------------------------------------------------
def test_shared_backend_generates_a_session_id(engine: str) -> None:
    backend = SharedMemoryBackend(2, engine=engine)
    try:
        assert backend.session_id.startswith("lp_") and len(backend.session_id) == 11
    finally:
        backend.cleanup()


def test_shared_backends_of_one_session_share_rows(engine: str, session_id: str) -> None:
    creator = SharedMemoryBackend(4, session_id=session_id, engine=engine)
    try:
        claim(creator.table, 42)
        attached = SharedMemoryBackend(4, session_id=session_id, engine=engine)
        assert attached.table.find(42) >= 0
        attached.get_task_data(attached.table.find(42))[TaskStateIndices.LP_SCORE] = 0.5
        assert creator.get_task_state(creator.table.find(42)).lp_score == 0.5
        attached.cleanup()  # only attached: the segment stays
        assert SharedMemoryBackend(4, session_id=session_id, engine=engine).table.find(42) >= 0
    finally:
        creator.cleanup()


def test_attach_with_another_layout_is_refused(engine: str, session_id: str) -> None:
    creator = SharedMemoryBackend(4, session_id=session_id, engine=engine)
    try:
        with pytest.raises(LayoutMismatchError):
            SharedMemoryBackend(8, session_id=session_id, engine=engine)
        with pytest.raises(LayoutMismatchError):
            SharedMemoryBackend(4, session_id=session_id, task_struct_size=20, engine=engine)
    finally:
        creator.cleanup()


def test_shared_backend_pickle_reattaches(engine: str, session_id: str) -> None:
    creator = SharedMemoryBackend(4, session_id=session_id, engine=engine)
    try:
        claim(creator.table, 42)
        clone = pickle.loads(pickle.dumps(creator))
        assert clone.session_id == session_id and clone.table.created is False
        assert clone.table.find(42) >= 0
        clone.cleanup()  # never unlinks: it only attached
        assert pickle.loads(pickle.dumps(creator)).table.find(42) >= 0
    finally:
        creator.cleanup()
    with pytest.raises((SegmentError, FileNotFoundError)):
        pickle.loads(pickle.dumps(creator))


def _child_writes(backend: SharedMemoryBackend, queue: multiprocessing.Queue) -> None:
    slot = backend.table.find(42)
    backend.get_task_data(slot)[TaskStateIndices.LP_SCORE] = 0.75
    queue.put(slot)
    backend.cleanup()


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_shared_backend_crosses_processes(engine: str, session_id: str, start_method: str) -> None:
    context = multiprocessing.get_context(start_method)
    creator = SharedMemoryBackend(4, session_id=session_id, engine=engine)
    try:
        claim(creator.table, 42)
        queue = context.Queue()
        child = context.Process(target=_child_writes, args=(creator, queue))
        child.start()
        slot = queue.get(timeout=60)
        child.join(60)
        assert child.exitcode == 0
        assert slot == creator.table.find(42)
        assert creator.get_task_state(slot).lp_score == 0.75
        queue.close()
        queue.join_thread()
    finally:
        creator.cleanup()


def test_cleanup_is_idempotent(engine: str, session_id: str) -> None:
    creator = SharedMemoryBackend(2, session_id=session_id, engine=engine)
    creator.cleanup()
    creator.cleanup()


@pytest.mark.parametrize("percentile", [1.0, 1.5, -0.1, float("nan")])
def test_eviction_percentile_out_of_range_is_refused(engine: str, percentile: float) -> None:
    table = make_table(engine, 4, 18)
    for task_id in (1, 2, 3):
        table.claim(task_id, 0.0, 0.5, 0.0, 0.0)
    before = table.rows.copy()
    ids = np.array([1, 2, 3], dtype=np.int64)
    with pytest.raises(ValueError, match="percentile"):
        table.recommend_eviction(ids, 0, percentile)
    with pytest.raises(ValueError, match="percentile"):
        table.eviction_candidates(0, percentile, 2)
    with pytest.raises(ValueError, match="percentile"):
        table.pool_eviction_candidate(0, percentile, True)
    np.testing.assert_array_equal(table.rows, before)
    table.close()


@pytest.mark.parametrize("uniform", [1.0, -0.25, float("nan")])
def test_sampling_draw_out_of_range_is_refused(engine: str, uniform: float) -> None:
    table = make_table(engine, 2, 18)
    table.claim(1, 0.0, 0.5, 0.0, 0.0)
    table.claim(2, 0.0, 0.5, 0.0, 0.0)
    with pytest.raises(ValueError, match="uniform"):
        table.sample(uniform)
    with pytest.raises(ValueError, match="uniform"):
        table.choose_pool_task(uniform, 0, 0.4, True)
    assert len(table) == 2
    table.close()


@pytest.mark.parametrize("tiny", [1e-41, 5e-324, 1e-300])
def test_a_tiny_weight_next_to_a_large_one_is_still_drawn(engine: str, tiny: float) -> None:
    """A weight falling from 0.1 to a tiny value must not be cancelled away in the
    sampler's sums (hypothesis found 0.1 -> 9.5e-42 sampling another task)."""
    from lptrack import TaskTracker

    tracker = TaskTracker(max_memory_tasks=8, ema_alpha=0.1, engine=engine)
    try:
        tracker.configure_scoring(True, 0.1, 2)  # bidirectional, bonus 0.1, mature at 2 samples
        tracker.track_task_creation(1280)
        for _ in range(2):
            tracker.update_task_performance(1280, 0.0)  # mature, lp_score 0: weight 0
        tracker.track_task_creation(1)
        tracker.update_task_performance(1, 0.0, lp_score=tiny)  # weight: the bonus, 0.1
        tracker.update_task_performance(1, 0.0)  # mature: weight lp_score, tiny
        assert tracker.table.scores(np.array([1, 1280], dtype=np.int64)).tolist() == [tiny, 0.0]
        for uniform in (0.0, 0.5, 0.999):
            assert tracker.table.sample(uniform) == 1
    finally:
        tracker.cleanup_shared_memory()


@pytest.mark.parametrize("distinct", [2, 7, 40, None], ids=lambda d: f"{d or 'all'}-distinct")
def test_the_eviction_threshold_is_the_percentile_of_many_scores(engine: str, distinct: int | None) -> None:
    """The eviction threshold over hundreds of scores with few or no ties (the native
    engine selects it without sorting), against sorted(): every evictable task at or
    below it is a candidate, lowest first."""
    rng = np.random.default_rng(distinct or 0)
    n = 500
    table = make_table(engine, n, 18)
    table.configure_scoring(True, 0.1, 0)
    values = (rng.integers(0, distinct, n) / distinct if distinct else rng.random(n)).tolist()
    counts = [1.0 + task_id % 3 for task_id in range(1, n + 1)]  # evictable at 2: two in three
    for task_id, (value, count) in enumerate(zip(values, counts), start=1):
        table.claim(task_id, 0.0, 0.5, 0.0, 0.0)
        table.set_fields(task_id, {col.COMPLETION_COUNT: count, col.LP_SCORE: value})
    for percentile in (0.0, 0.1, 0.4, 0.77, 0.999):
        threshold = sorted(values)[int(n * percentile)]
        expected = sorted(
            (value, task_id) for task_id, (value, count) in enumerate(zip(values, counts), start=1)
            if value <= threshold and count >= 2
        )
        _, candidates = table.eviction_candidates(2, percentile, n)
        assert candidates.tolist() == [task_id for _, task_id in expected]
        assert table.pool_eviction_candidate(2, percentile, True) == (expected[0][1] if expected else 0)
    table.close()
