"""The native engine's table (lptrack._native.NativeTable) against the Table contract."""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import re
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lptrack import _native
from lptrack._native import NativeTable
from lptrack._pytable import PythonTable
from lptrack._table import (
    COMPLETION_COUNT,
    CREATION_TIME,
    EMA_SQUARED,
    GENERATOR_TYPE,
    IS_ACTIVE,
    LABEL_HASH,
    LAST_SCORE,
    LP_SCORE,
    P_FAST,
    P_SLOW,
    P_TRUE,
    RANDOM_BASELINE,
    REWARD_EMA,
    ROW_WIDTH,
    SEED,
    SUCCESS_RATE_EMA,
    SUCCESS_THRESHOLD,
    TASK_ID,
    TOTAL_SCORE,
    BidirectionalParams,
    DistributionParams,
    Table,
)
from lptrack.errors import LayoutMismatchError, LockTimeoutError, SegmentError

NAN = math.nan
CAPACITY = 16
INDEX_SIZE = 32  # the smallest power of two >= 2 * CAPACITY (csrc/lpt_segment.c)
JOIN_TIMEOUT = 10.0


def index_home(task_id: int, index_size: int = INDEX_SIZE) -> int:
    """Where task_id's probe starts: splitmix64's finaliser, as csrc/lpt_segment.c mixes."""
    m = (1 << 64) - 1
    x = task_id
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & m
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & m
    x ^= x >> 31
    return x & (index_size - 1)


def ids_with_home(home: int, count: int, start: int = 1) -> list[int]:
    found = []
    task_id = start
    while len(found) < count:
        if index_home(task_id) == home:
            found.append(task_id)
        task_id += 1
    return found


# Clusters that wrap around the end of the index and run into each other.
COLLIDING_IDS = ids_with_home(30, 6) + ids_with_home(31, 4) + ids_with_home(0, 5) + ids_with_home(2, 3)


@pytest.fixture
def table():
    t = NativeTable(CAPACITY)
    yield t
    t.close()


@pytest.fixture
def shared(session_id):
    t = NativeTable(CAPACITY, session_id=session_id)
    yield t
    t.close()
    t.unlink()


def claim(t: Table, task_id: int, threshold: float = 0.5) -> int:
    return t.claim(task_id, 100.0 + task_id, threshold, 7.0, 2.0)


def join_or_kill(process: multiprocessing.process.BaseProcess) -> None:
    process.join(JOIN_TIMEOUT)
    if process.is_alive():
        process.kill()
        process.join()
        pytest.fail("child process did not finish")


# -- the interface ------------------------------------------------------------


def test_is_a_table_with_live_rows(table):
    assert isinstance(table, Table)
    assert (table.capacity, table.row_width) == (CAPACITY, ROW_WIDTH)
    assert table.rows.shape == (CAPACITY, ROW_WIDTH) and table.rows.dtype == np.float64
    slot = claim(table, 9)
    table.rows[slot, LP_SCORE] = 0.25
    assert table.read_row(slot)[LP_SCORE] == 0.25


def test_claim_fills_a_new_row_and_leaves_a_tracked_one_alone(table):
    assert claim(table, 42, threshold=0.7) == 0
    row = table.read_row(0)
    expected = np.zeros(ROW_WIDTH)
    expected[[TASK_ID, CREATION_TIME, SUCCESS_THRESHOLD, SEED, GENERATOR_TYPE, IS_ACTIVE]] = [
        42, 142.0, 0.7, 7.0, 2.0, 1.0,
    ]
    np.testing.assert_array_equal(row, expected)
    table.rows[0, TOTAL_SCORE] = 3.0
    generation = table.generation
    assert table.claim(42, 0.0, 0.1, 0.0, 0.0) == 0
    assert table.rows[0, TOTAL_SCORE] == 3.0 and table.rows[0, SUCCESS_THRESHOLD] == 0.7
    assert table.generation == generation


def test_pool_full_claim_and_update_change_nothing(table):
    for task_id in range(1, CAPACITY + 1):
        assert claim(table, task_id) == task_id - 1
    before = table.rows.copy()
    generation = table.generation
    assert claim(table, 99) == -1
    assert table.update(99, 1.0, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, None) == -1
    np.testing.assert_array_equal(table.rows, before)
    assert (table.generation, len(table), table.update_count) == (generation, CAPACITY, 0)


def test_release_frees_and_zeroes_and_the_slot_is_reused(table):
    for task_id in (1, 2, 3):
        claim(table, task_id)
    generation = table.generation
    assert table.release(2) is True
    assert table.release(2) is False
    assert table.generation == generation + 1
    assert table.find(2) == -1
    assert not table.rows[1].any()
    assert claim(table, 4) == 1


def test_active_list_removal_swaps_with_last(table):
    for task_id in (10, 20, 30, 40):
        claim(table, task_id)
    table.release(20)
    assert table.active_ids().tolist() == [10, 40, 30]
    assert table.active_slots().tolist() == [0, 3, 2]
    ids = table.active_ids()
    ids[0] = 0  # a copy
    assert table.find(10) == 0


def test_clear_empties_the_pool(table):
    for task_id in (5, 6, 7):
        claim(table, task_id)
    generation = table.generation
    table.clear()
    assert len(table) == 0 and table.active_ids().size == 0
    assert not table.rows.any()
    assert table.generation > generation
    assert [claim(table, t) for t in (8, 9)] == [0, 1]
    table.verify()


def test_set_fields(table):
    claim(table, 3)
    assert table.set_fields(3, {LP_SCORE: 0.5, P_FAST: 0.25}) is True
    assert (table.rows[0, LP_SCORE], table.rows[0, P_FAST]) == (0.5, 0.25)
    assert table.set_fields(4, {LP_SCORE: 1.0}) is False
    with pytest.raises(ValueError, match="columns"):
        table.set_fields(3, {TASK_ID: 9.0})
    with pytest.raises(ValueError, match="columns"):
        table.set_fields(3, {ROW_WIDTH: 1.0})
    assert table.rows[0, TASK_ID] == 3.0


def test_task_ids_outside_the_valid_range_are_refused(table):
    for bad in (0, -1, 2**53):
        with pytest.raises(ValueError, match="task id"):
            table.find(bad)
        with pytest.raises(ValueError, match="task id"):
            claim(table, bad)
    assert claim(table, 2**53 - 1) == 0
    assert table.active_ids().tolist() == [2**53 - 1]


def test_read_row_refuses_a_slot_out_of_range(table):
    with pytest.raises(IndexError):
        table.read_row(CAPACITY)
    with pytest.raises(IndexError):
        table.read_row(-1)


@pytest.mark.parametrize(
    "params",
    [
        DistributionParams(0.5, 0.0, 0.0, 0.0, 10.0),  # no reweighting, z-score
        DistributionParams(1.0, 0.01, 0.5, 0.0, 5.0),  # degenerate denominators at p = 1, bonus
        DistributionParams(0.05, 0.0, 0.0, 0.1, 10.0),  # temperature
        DistributionParams(0.05, 0.0, 0.0, -1.0, 10.0),  # negative temperature: x as is
    ],
)
def test_distribution_pass_equals_the_pure_engine(table, params):
    model = PythonTable(CAPACITY)
    values = [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (1.0, 0.2, 0.7), (-0.5, 1.5, 0.3), (0.3, 0.3, 0.9)]
    for task_id, (fast, slow, true) in enumerate(values, start=1):
        for t in (table, model):
            t.claim(task_id, 0.0, 0.5, 0.0, 0.0)
            t.set_fields(task_id, {P_FAST: fast, P_SLOW: slow, P_TRUE: true})
    table.compute_lp_distribution(params)
    model.compute_lp_distribution(params)
    expected = model.rows[: len(values), LP_SCORE]
    assert np.allclose(table.rows[: len(values), LP_SCORE], expected, rtol=1e-12, atol=1e-15)
    assert math.isclose(float(expected.sum()), 1.0)
    assert table.recomputation_count == 1


def test_distribution_pass_of_identical_tasks_is_uniform(table):
    for task_id in range(1, 5):
        claim(table, task_id)
    table.compute_lp_distribution(DistributionParams(0.5, 0.0, 0.0, 0.0, 10.0))  # std 0: x left as is
    assert table.rows[:4, LP_SCORE].tolist() == [0.25] * 4


def test_closed_table_refuses_work_but_its_rows_stay_readable(table):
    claim(table, 5)
    rows = table.rows
    table.close()
    table.close()
    assert rows[0, TASK_ID] == 5.0
    with pytest.raises(ValueError, match="closed"):
        table.find(5)


def test_local_table_pickles_as_an_independent_copy(table):
    claim(table, 5)
    table.set_label(5, "maze", 77)
    copy = pickle.loads(pickle.dumps(table))
    try:
        assert copy.active_ids().tolist() == [5]
        assert copy.label_for_hash(77) == "maze"
        claim(copy, 6)
        assert table.find(6) == -1
        with copy.lock(timeout=0):  # the copied mutex was re-initialised
            pass
        copy.verify()
    finally:
        copy.close()


def test_header_counters(table):
    assert table.creator_pid == os.getpid()
    assert table.lock_owner_pid == 0
    with table.lock():
        assert table.lock_owner_pid == os.getpid()
    table.update(1, 1.0, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, None)
    table.update(1, 1.0, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, None)
    assert (table.update_count, table.recomputation_count, table.lock_wait_count) == (2, 0, 0)
    assert table.recovery_count == 0


def test_lock_is_not_reentrant(table):
    with table.lock():
        with pytest.raises(RuntimeError, match="already holds"):
            table.find(1)
    assert table.find(1) == -1


def test_c_lock_benchmark_reports_an_uncontended_round_trip(table):
    # A coarse guard (the target is < 50 ns, bench/ measures it): 500 ns
    # leaves room for a loaded machine, not for a lock gone badly wrong.
    assert 0.0 < table.lock_bench(100_000) < 500.0


# -- the update formulas ------------------------------------------------------


def reference_update(row, s, a, threshold, lp_score, bidirectional):
    """SPEC.md's update, transcribed as plainly as possible."""
    n = row[COMPLETION_COUNT]
    row[COMPLETION_COUNT] += 1
    row[TOTAL_SCORE] += s
    row[LAST_SCORE] = s
    row[REWARD_EMA] = s if n == 0 else (1 - a) * row[REWARD_EMA] + a * s
    row[EMA_SQUARED] = s * s if n == 0 else (1 - a) * row[EMA_SQUARED] + a * (s * s)
    if threshold is not None:
        row[SUCCESS_THRESHOLD] = threshold
    hit = 1.0 if s >= row[SUCCESS_THRESHOLD] else 0.0
    row[SUCCESS_RATE_EMA] = hit if n == 0 else (1 - a) * row[SUCCESS_RATE_EMA] + a * hit
    if lp_score is not None:
        row[LP_SCORE] = lp_score
    if bidirectional is not None:
        t, u, normalize = bidirectional
        if normalize:
            if row[RANDOM_BASELINE] == 0.0:
                row[RANDOM_BASELINE] = min(s, 0.75)
            b = row[RANDOM_BASELINE]
            x = max(s - b, 0.0) / max(1.0 - b, 1e-10)
        else:
            x = s
        if row[P_FAST] == 0.0 and row[P_SLOW] == 0.0:
            row[P_FAST] = row[P_SLOW] = x
            row[P_TRUE] = s
        else:
            row[P_FAST] = x * t + row[P_FAST] * (1.0 - t)
            row[P_SLOW] = x * u + row[P_SLOW] * (1.0 - u)
            row[P_TRUE] = s * t + row[P_TRUE] * (1.0 - t)


@pytest.mark.parametrize("normalize", [True, False, None], ids=["baseline", "raw", "basic"])
def test_update_matches_the_spec_formulas(table, normalize):
    rng = np.random.default_rng(3)
    params = None if normalize is None else BidirectionalParams(0.1, 0.02, normalize)
    reference = {}
    for _ in range(2000):
        task_id = int(rng.integers(1, 9))
        # Scores of 0.0 exercise the "== 0.0" re-initialisation quirks.
        score = float(rng.choice([0.0, 1.0, rng.random(), rng.normal()]))
        alpha = float(rng.choice([0.02, 0.1, 0.3]))
        threshold = float(rng.random()) if rng.random() < 0.2 else None
        lp_score = float(rng.random()) if rng.random() < 0.2 else None
        slot = table.update(
            task_id, score, alpha,
            NAN if threshold is None else threshold,
            NAN if lp_score is None else lp_score,
            0.6, 1.5, 11.0, 3.0, params,
        )
        if task_id not in reference:
            reference[task_id] = [0.0] * ROW_WIDTH
            ref = reference[task_id]
            ref[TASK_ID], ref[CREATION_TIME], ref[SUCCESS_THRESHOLD] = task_id, 1.5, 0.6
            ref[SEED], ref[GENERATOR_TYPE], ref[IS_ACTIVE] = 11.0, 3.0, 1.0
        reference_update(reference[task_id], score, alpha, threshold, lp_score, params)
        # -ffp-contract=off and operand-for-operand formulas: bit-identical.
        assert table.read_row(slot).tolist() == reference[task_id]
    assert table.update_count == 2000


# -- the index ----------------------------------------------------------------


def test_colliding_ids_survive_every_removal_order(table):
    homes = {index_home(t) for t in COLLIDING_IDS[:CAPACITY]}
    assert len(homes) < 5  # the ids really do pile up in a few clusters
    rng = np.random.default_rng(0)
    for _ in range(30):
        table.clear()
        ids = COLLIDING_IDS[:CAPACITY]
        for task_id in ids:
            assert claim(table, task_id) >= 0
        remaining = set(ids)
        for task_id in rng.permutation(ids).tolist():
            assert table.release(task_id)
            remaining.discard(task_id)
            for other in ids:
                assert (table.find(other) >= 0) == (other in remaining)
            table.verify()


class PoolMachine(RuleBasedStateMachine):
    """The table and a dict model take the same random operations."""

    def __init__(self):
        super().__init__()
        self.table = NativeTable(CAPACITY)
        self.model: dict[int, int] = {}
        self.counts: dict[int, int] = {}

    def teardown(self):
        self.table.close()

    task_ids = st.sampled_from(COLLIDING_IDS + [7, 8, 9])

    @rule(task_id=task_ids)
    def claim(self, task_id):
        slot = claim(self.table, task_id)
        if task_id in self.model:
            assert slot == self.model[task_id]
        elif len(self.model) == CAPACITY:
            assert slot == -1
        else:
            assert slot not in self.model.values()
            self.model[task_id] = slot
            self.counts[task_id] = 0

    @rule(task_id=task_ids)
    def release(self, task_id):
        assert self.table.release(task_id) == (task_id in self.model)
        self.model.pop(task_id, None)
        self.counts.pop(task_id, None)

    @rule(task_id=task_ids, score=st.floats(0.0, 1.0))
    def update(self, task_id, score):
        slot = self.table.update(task_id, score, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, None)
        if task_id not in self.model and len(self.model) < CAPACITY:
            self.model[task_id] = slot
            self.counts[task_id] = 0
        if task_id in self.model:
            assert slot == self.model[task_id]
            self.counts[task_id] += 1
        else:
            assert slot == -1

    @precondition(lambda self: len(self.model) > CAPACITY // 2)
    @rule()
    def clear(self):
        self.table.clear()
        self.model.clear()
        self.counts.clear()

    @invariant()
    def agrees_with_the_model(self):
        for task_id in COLLIDING_IDS:
            assert self.table.find(task_id) == self.model.get(task_id, -1)
        assert sorted(self.table.active_ids().tolist()) == sorted(self.model)
        assert len(self.table) == len(self.model)
        for task_id, slot in self.model.items():
            assert self.table.rows[slot, COMPLETION_COUNT] == self.counts[task_id]
        self.table.verify()


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)


# -- shared segments ----------------------------------------------------------


def shm_bytes(table: NativeTable) -> bytes:
    return Path("/dev/shm", table.segment_name).read_bytes()


def test_a_second_table_of_a_session_attaches_to_the_same_pool(shared, session_id):
    other = NativeTable(CAPACITY, session_id=session_id)
    try:
        claim(shared, 5)
        assert other.find(5) == 0
        other.rows[0, LP_SCORE] = 0.5
        assert shared.read_row(0)[LP_SCORE] == 0.5
        assert other.creator_pid == os.getpid()
        other.unlink()  # only attached: a no-op
        assert Path("/dev/shm", shared.segment_name).exists()
    finally:
        other.close()


@pytest.mark.parametrize(
    ("capacity", "row_width", "says"),
    [
        (CAPACITY + 1, ROW_WIDTH,
         f"has {CAPACITY} task slots where this process asked for {CAPACITY + 1}: "
         f"open it with num_active_tasks={CAPACITY} as its other processes do, or use another session_id"),
        (CAPACITY, ROW_WIDTH + 1,
         f"has rows of {ROW_WIDTH} values where this process asked for {ROW_WIDTH + 1}: "
         f"open it with task_struct_size={ROW_WIDTH} as"),
    ],
)
def test_attaching_with_another_layout_is_refused_and_changes_nothing(
    shared, session_id, capacity, row_width, says
):
    claim(shared, 5)
    before = shm_bytes(shared)
    with pytest.raises(LayoutMismatchError, match=f"^session '{session_id}' {re.escape(says)}") as refused:
        NativeTable(capacity, row_width, session_id=session_id)
    assert "\n" not in str(refused.value) and refused.value.__cause__ is None
    assert shm_bytes(shared) == before


def test_attaching_to_a_foreign_segment_is_refused(session_id):
    from lptrack import _shm

    segment = _shm.create_segment(_shm.segment_name(session_id, _native.SEGMENT_KIND), 4096)
    try:
        segment.buf[:8] = b"NOTLPTRK"
        with pytest.raises(SegmentError, match="not an lptrack segment"):
            NativeTable(CAPACITY, session_id=session_id)
    finally:
        _shm.unlink_segment(segment)
        _shm.close_segment(segment)


def test_attacher_gives_up_on_a_segment_never_initialised(session_id, monkeypatch):
    from lptrack import _shm

    monkeypatch.setattr(_native, "ATTACH_TIMEOUT", 0.05)
    segment = _shm.create_segment(_shm.segment_name(session_id, _native.SEGMENT_KIND), 4096)
    try:
        with pytest.raises(SegmentError, match="did not become ready"):
            NativeTable(CAPACITY, session_id=session_id)
    finally:
        _shm.unlink_segment(segment)
        _shm.close_segment(segment)


def test_unpickling_a_removed_shared_table_fails_at_once(session_id):
    table = NativeTable(CAPACITY, session_id=session_id)
    handle = pickle.dumps(table)
    table.close()
    table.unlink()
    with pytest.raises(SegmentError, match="does not exist"):
        pickle.loads(handle)


def test_shared_table_pickles_into_an_attachment(shared):
    clone = pickle.loads(pickle.dumps(shared))
    try:
        claim(clone, 8)
        assert shared.find(8) == 0
        assert clone.creator_pid == shared.creator_pid
    finally:
        clone.close()


def test_rows_outlive_close_without_warnings(session_id):
    table = NativeTable(CAPACITY, session_id=session_id)
    claim(table, 3)
    row = table.rows[0]  # what get_task_data hands out
    table.close()
    table.unlink()
    del table
    assert row[TASK_ID] == 3.0  # the mapping lives as long as the view
    del row


# -- labels -------------------------------------------------------------------


def test_labels(shared, session_id):
    assert shared.set_label(5, "maze", 11) is False  # untracked
    assert shared.label_count == 0
    claim(shared, 5)
    claim(shared, 6)
    assert shared.set_label(5, "labyrinthe \N{SNOWMAN}", 11) is True
    assert shared.rows[0, LABEL_HASH] == 11.0
    assert shared.label_for_hash(11) == "labyrinthe \N{SNOWMAN}"
    assert shared.label_for_hash(12) is None
    assert shared.set_label(6, "other text", 11)  # a hash's first label wins
    assert shared.label_for_hash(11) == "labyrinthe \N{SNOWMAN}"
    assert shared.label_count == 1
    other = NativeTable(CAPACITY, session_id=session_id)
    try:
        assert other.label_for_hash(11) == "labyrinthe \N{SNOWMAN}"
    finally:
        other.close()
    with pytest.raises(ValueError, match="2\\*\\*53"):
        shared.set_label(5, "x", 2**53)


def test_a_full_label_registry_refuses_and_changes_nothing(table):
    claim(table, 5)
    too_long = "x" * (64 * 1024 + 1)  # more than the whole arena of a small table
    with pytest.raises(MemoryError, match="label registry is full"):
        table.set_label(5, too_long, 1)
    assert table.rows[0, LABEL_HASH] == 0.0 and table.label_for_hash(1) is None
    for label_hash in range(1, 1025):  # the registry holds 1024 labels
        table.set_label(5, f"l{label_hash}", label_hash)
    with pytest.raises(MemoryError):
        table.set_label(5, "one more", 5000)
    assert table.rows[0, LABEL_HASH] == 1024.0 and table.label_count == 1024


# -- the lock across processes ------------------------------------------------


def hold_lock(session_id, ready, release_event, guard_slot):
    table = NativeTable(CAPACITY, session_id=session_id)
    with table.lock():
        if guard_slot is not None:
            table.guard_row(guard_slot)
            table.rows[guard_slot, :] = 99.0  # half-written garbage
        ready.set()
        release_event.wait(JOIN_TIMEOUT)
    table.close()


@pytest.fixture
def fork():
    return multiprocessing.get_context("fork")


def test_lock_timeout_names_the_holder_and_a_later_wait_succeeds(shared, session_id, fork):
    ready, release_event = fork.Event(), fork.Event()
    child = fork.Process(target=hold_lock, args=(session_id, ready, release_event, None))
    child.start()
    try:
        assert ready.wait(JOIN_TIMEOUT)
        with pytest.raises(LockTimeoutError, match=f"held by pid {child.pid}") as caught:
            with shared.lock(timeout=0.05):
                pass
        assert caught.value.holder_pid == child.pid
        shared.lock_timeout = 0.05
        with pytest.raises(LockTimeoutError):
            shared.find(1)
        shared.lock_timeout = JOIN_TIMEOUT
        releaser = threading.Timer(0.1, release_event.set)
        releaser.start()
        assert shared.find(1) == -1  # waits for the child, then gets the lock
        releaser.join()
        assert shared.lock_wait_count == 1
    finally:
        release_event.set()
        join_or_kill(child)
    assert child.exitcode == 0


def test_a_pass_by_another_attachment_refreshes_this_ones_batch(shared, session_id):
    """The distribution is the session's: a pass run by another process counts as
    this process's recomputation (its batch starts again), and its own passes
    never do (a batch in progress keeps its events)."""
    other = NativeTable(CAPACITY, session_id=session_id)
    params = DistributionParams(0.5, 0.0, 0.0, 0.0, 10.0)
    try:
        shared.configure_scoring(True, 0.1, 1)
        for task_id in range(1, CAPACITY + 1):
            claim(shared, task_id)
            shared.update_tracked(task_id, task_id / CAPACITY, 0.1, BidirectionalParams(0.1, 0.01, False))
        batch = shared.new_batch_counter(3)
        shared.choose_pool_task(0.5, 100, 0.4, True, params, batch)  # stale from the start: a pass
        passes = shared.recomputation_count
        assert batch.fresh_epoch == batch.epoch
        for _ in range(5):
            batch.count()
        assert batch.fresh_epoch != batch.epoch and batch.events == 2  # stale, 2 into the next batch
        shared.choose_pool_task(0.5, 100, 0.4, True, params, batch)
        assert shared.recomputation_count == passes + 1 and batch.events == 2  # its own pass

        batch.count()
        batch.count()  # the batch ends: stale again
        other.compute_lp_distribution(params)
        shared.choose_pool_task(0.5, 100, 0.4, True, params, batch)
        assert shared.recomputation_count == passes + 2  # the other's pass only
        assert batch.fresh_epoch == batch.epoch and batch.events == 0
    finally:
        other.close()


def test_the_slot_an_eviction_frees_is_held_for_the_evicting_tables_new_task(shared, session_id):
    """After choose_pool_task evicts, other processes' picks draw instead of creating
    a task into the freed slot, until the evicting table claims its new task (or
    picks again, or 64 locked picks of others): its new task always finds the slot."""
    other = NativeTable(CAPACITY, session_id=session_id)
    try:
        shared.configure_scoring(True, 0.1, 1)
        for task_id in range(1, CAPACITY + 1):
            claim(shared, task_id)
            shared.update_tracked(task_id, task_id / CAPACITY, 0.1, BidirectionalParams(0.1, 0.01, False))
        shared.compute_lp_distribution(DistributionParams(0.5, 0.0, 0.0, 0.0, 10.0))

        victim = -shared.choose_pool_task(0.5, 1, 0.4, True)
        assert victim > 0 and len(other) == CAPACITY - 1
        for uniform in (0.1, 0.5, 0.9):
            assert other.choose_pool_task(uniform, 100, 0.4, True) > 0  # a draw, not a creation
        assert claim(shared, 1000) >= 0 and len(other) == CAPACITY

        victim = -shared.choose_pool_task(0.5, 1, 0.4, True)
        assert victim > 0
        assert shared.choose_pool_task(0.5, 100, 0.4, True) == 0  # its own next pick ends the hold
        assert other.choose_pool_task(0.5, 100, 0.4, True) == 0
        assert claim(other, 1001) >= 0

        victim = -shared.choose_pool_task(0.5, 1, 0.4, True)
        assert victim > 0
        assert other.choose_pool_task(0.5, 100, 0.4, True) > 0  # refused 1 (locked; 100 presentations now)
        for _ in range(100):  # draws that take no lock are not counted
            assert other.choose_pool_task(0.5, 100, 0.4, False) > 0
        for _ in range(63):  # refused 2 to 64
            assert other.choose_pool_task(0.5, 100, 0.4, True) > 0
        # The hold lapses: a process that never claims costs the pool little.
        assert other.choose_pool_task(0.5, 100, 0.4, True) == 0
        assert claim(other, 1002) >= 0 and claim(shared, 1003) == -1  # full: the claim fails cleanly
        assert other.choose_pool_task(0.5, 100, 0.4, True) != 0
        shared.verify()  # SegmentError if the pool's structures disagree
    finally:
        other.close()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_draw_takes_no_lock_and_equals_the_locked_draw(shared, session_id, start_method):
    """choose_pool_task's common case (pool full, no eviction due, threshold
    current) is lpt_choose_unlocked: the same task as under the lock, and no
    wait while another process holds it; the rest still waits for the lock."""
    shared.configure_scoring(True, 0.1, 2)
    for task_id in range(1, CAPACITY + 1):
        claim(shared, task_id)
        for _ in range(task_id % 4):  # some tasks below min_samples_for_lp (weight 0.1)
            shared.update_tracked(task_id, task_id / CAPACITY, 0.1, BidirectionalParams(0.1, 0.01, False))
    shared.compute_lp_distribution(DistributionParams(0.5, 0.0, 0.0, 0.0, 10.0))
    # Nothing is evictable at 100 presentations; the locked call sets the threshold.
    uniforms = [i / 97 for i in range(97)]
    locked = []
    for u in uniforms:
        locked.append((shared.choose_pool_task(u, 100, 0.4, True), shared.chosen_slot, shared.chosen_label_hash))
    assert {choice for choice, _, _ in locked} <= set(range(1, CAPACITY + 1))
    assert len({choice for choice, _, _ in locked}) > CAPACITY // 2

    context = multiprocessing.get_context(start_method)
    ready, release_event = context.Event(), context.Event()
    child = context.Process(target=hold_lock, args=(session_id, ready, release_event, None))
    child.start()
    try:
        assert ready.wait(JOIN_TIMEOUT)
        shared.lock_timeout = 0.05
        unlocked = []
        for u in uniforms:
            unlocked.append((shared.choose_pool_task(u, 100, 0.4, False), shared.chosen_slot, shared.chosen_label_hash))
        assert unlocked == locked
        with pytest.raises(LockTimeoutError):  # the threshold is to be recomputed
            shared.choose_pool_task(0.5, 100, 0.4, True)
        with pytest.raises(LockTimeoutError):  # another min_presentations: evictable tasks change
            shared.choose_pool_task(0.5, 1, 0.4, False)
        with pytest.raises(LockTimeoutError):  # a pass is due
            shared.choose_pool_task(0.5, 100, 0.4, False, DistributionParams(0.5, 0.0, 0.0, 0.0, 10.0))
    finally:
        release_event.set()
        join_or_kill(child)
    assert child.exitcode == 0
    shared.lock_timeout = JOIN_TIMEOUT
    assert shared.choose_pool_task(0.5, 1, 0.4, False) < 0  # with the lock: an eviction
    assert len(shared) == CAPACITY - 1


@pytest.mark.parametrize("mid_write", [False, True], ids=["idle", "mid-write"])
def test_a_holder_killed_with_the_lock_is_recovered_from(shared, session_id, fork, mid_write):
    for task_id in (1, 2, 3):
        claim(shared, task_id)
    shared.update(2, 0.5, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, None)
    before = shared.rows.copy()
    ready, release_event = fork.Event(), fork.Event()
    child = fork.Process(
        target=hold_lock, args=(session_id, ready, release_event, 1 if mid_write else None)
    )
    child.start()
    try:
        assert ready.wait(JOIN_TIMEOUT)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        join_or_kill(child)
    assert child.exitcode == -signal.SIGKILL
    assert shared.lock_owner_pid == child.pid  # the dead holder's record
    assert shared.find(2) == 1  # EOWNERDEAD: repaired, then served
    assert shared.recovery_count == 1
    np.testing.assert_array_equal(shared.rows, before)
    shared.verify()
    assert claim(shared, 4) == 3
    with shared.lock(timeout=0):  # consistent again: usable without waiting
        pass


def test_recovery_rebuilds_the_pool_from_the_rows(shared, session_id, fork):
    for task_id in (1, 2, 3):
        claim(shared, task_id)
    ready, release_event = fork.Event(), fork.Event()
    child = fork.Process(target=hold_lock, args=(session_id, ready, release_event, None))
    child.start()
    try:
        assert ready.wait(JOIN_TIMEOUT)
        shared.rows[1, :] = 0.0  # as if the dead holder had freed task 2's row
        os.kill(child.pid, signal.SIGKILL)
    finally:
        join_or_kill(child)
    assert shared.find(2) == -1
    assert sorted(shared.active_ids().tolist()) == [1, 3]
    shared.verify()
    assert claim(shared, 9) == 1
