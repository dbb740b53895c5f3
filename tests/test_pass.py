"""The distribution pass outside the lock (csrc/lpt_distribution.h) and its
staleness contract (README, "Staleness"):

* a pass publishes the distribution of the rows as it read them: changes made
  while it runs are neither lost nor half-applied (a task replaced in the
  meantime keeps its own score; an update made meanwhile counts at the next pass);
* it publishes in ranges of PUBLISH_SLOTS slots, each one lock hold, and
  other processes take the lock between them;
* one process alone gets what the pure engine's pass gives;
* a process killed while publishing leaves a segment that recovery repairs.
"""

from __future__ import annotations

import math
import multiprocessing
import signal

import numpy as np
import pytest

from lptrack import _core
from lptrack._engines import make_table
from lptrack._native import NativeTable
from lptrack._table import COMPLETION_COUNT, LP_SCORE, P_FAST, P_SLOW, P_TRUE, DistributionParams

PARAMS = DistributionParams(0.05, 0.01, 0.5, 0.0, 10.0)  # reweighting, bonus and z-score: every step
JOIN_TIMEOUT = 30.0


def fill(table, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for task_id in range(1, n + 1):
        table.claim(task_id, 0.0, 0.5, 0.0, 0.0, 0.25)
    slots = table.active_slots()
    values = rng.random((n, 3))
    with table.lock():
        table.rows[slots, P_FAST] = values[:, 0]
        table.rows[slots, P_SLOW] = values[:, 1]
        table.rows[slots, P_TRUE] = values[:, 2]
        table.rows[slots, COMPLETION_COUNT] = 5.0


def lp_scores(table) -> dict[int, float]:
    return {int(row[0]): float(row[LP_SCORE]) for row in table.rows if row[0] != 0.0}


def publish_all(table) -> int:
    ranges, next_slot = 0, 0
    while next_slot >= 0:
        next_slot = table.publish_pass(next_slot)
        ranges += 1
    return ranges


@pytest.mark.parametrize("n", [1, 50, 2 * _core.PUBLISH_SLOTS + 5])
def test_one_process_gets_the_pure_engines_distribution(n: int) -> None:
    native, pure = NativeTable(n), make_table("python", n)
    try:
        fill(native, n)
        fill(pure, n)
        native.compute_lp_distribution(PARAMS)
        pure.compute_lp_distribution(PARAMS)
        got, want = lp_scores(native), lp_scores(pure)
        assert got.keys() == want.keys()
        assert all(math.isclose(got[t], want[t], rel_tol=1e-12, abs_tol=0.0) for t in want)
        assert math.isclose(sum(got.values()), 1.0, rel_tol=1e-9)
    finally:
        native.close()
        pure.close()


def test_changes_made_during_a_pass_are_kept_and_counted_at_the_next() -> None:
    n = 40
    table, model = NativeTable(n + 1), make_table("python", n + 1)
    try:
        fill(table, n)
        fill(model, n)
        model.compute_lp_distribution(PARAMS)  # what the rows held when the pass read them
        as_read = lp_scores(model)

        table.begin_pass(PARAMS)
        # Meanwhile: task 1 learns, task 2 is replaced by task 99 in its slot.
        assert table.set_fields(1, {P_FAST: 0.999})
        slot_of_2 = table.find(2)
        table.release(2)
        assert table.claim(99, 0.0, 0.5, 0.0, 0.0, 0.125) == slot_of_2
        passes = table.recomputation_count
        assert publish_all(table) == 1
        assert table.recomputation_count == passes + 1

        got = lp_scores(table)
        assert got[99] == 0.125  # the new task keeps its own score, never task 2's
        assert 2 not in got
        for task_id in range(3, n + 1):
            assert math.isclose(got[task_id], as_read[task_id], rel_tol=1e-12)
        assert math.isclose(got[1], as_read[1], rel_tol=1e-12)  # as read: its update counts next time

        table.compute_lp_distribution(PARAMS)
        assert not math.isclose(lp_scores(table)[1], as_read[1], rel_tol=1e-6)
    finally:
        table.close()
        model.close()


def _take_lock_once(session_id: str, capacity: int, took) -> None:
    other = NativeTable(capacity, session_id=session_id)
    try:
        with other.lock(timeout=JOIN_TIMEOUT):
            took.value = 1
    finally:
        other.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_other_processes_take_the_lock_between_publishing_ranges(session_id: str, method: str) -> None:
    capacity = 3 * _core.PUBLISH_SLOTS
    table = NativeTable(capacity, session_id=session_id)
    context = multiprocessing.get_context(method)
    try:
        fill(table, capacity)
        before = lp_scores(table)
        table.begin_pass(PARAMS)
        next_slot = table.publish_pass(0)
        assert next_slot == _core.PUBLISH_SLOTS
        # Between two ranges: the first range is published, the rest not yet
        # (the pool is sampled from a mix of both passes until the last range).
        slots = table.active_slots()
        ids = table.rows[slots, 0].astype(np.int64)
        published = lp_scores(table)
        changed = {int(t) for t, s in zip(ids, slots) if published[int(t)] != before[int(t)]}
        assert changed and all(table.find(t) < _core.PUBLISH_SLOTS for t in changed)
        took = context.Value("i", 0, lock=False)
        child = context.Process(target=_take_lock_once, args=(session_id, capacity, took))
        child.start()
        child.join(JOIN_TIMEOUT)
        assert child.exitcode == 0 and took.value == 1
        while next_slot >= 0:
            next_slot = table.publish_pass(next_slot)
        assert math.isclose(sum(lp_scores(table).values()), 1.0, rel_tol=1e-9)
        table.verify()
    finally:
        table.close()
        table.unlink()


def _die_publishing(session_id: str, capacity: int, countdown: int) -> None:
    table = NativeTable(capacity, session_id=session_id)
    table.begin_pass(PARAMS)
    _core._arm_crash(countdown)
    publish_all(table)
    _core._arm_crash(0)
    table.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_process_killed_while_publishing_leaves_a_repairable_segment(session_id: str, method: str) -> None:
    capacity = 2 * _core.PUBLISH_SLOTS
    table = NativeTable(capacity, session_id=session_id)
    context = multiprocessing.get_context(method)
    try:
        fill(table, capacity)
        table.configure_scoring(True, 0.1, 0.0)
        before = lp_scores(table)
        child = context.Process(target=_die_publishing, args=(session_id, capacity, _core.PUBLISH_SLOTS + 7))
        child.start()
        child.join(JOIN_TIMEOUT)
        assert child.exitcode == -signal.SIGKILL
        recoveries = table.recovery_count
        with table.lock(timeout=JOIN_TIMEOUT):
            pass
        assert table.recovery_count == recoveries + 1
        table.verify()
        after = lp_scores(table)
        assert after.keys() == before.keys()
        assert any(after[t] != before[t] for t in before)  # the first range was published
        # The sampler agrees with the rows again: each task's score is its lp_score.
        ids = np.fromiter(before, dtype=np.int64)
        assert np.array_equal(table.scores(ids), np.array([after[t] for t in ids.tolist()]))
    finally:
        table.close()
        table.unlink()
