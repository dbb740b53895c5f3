"""Processes SIGKILLed at random points inside pool changes and row updates,
and readers meeting writers (lock-free row reads).

A child arms the C core's crash countdown (csrc/lpt_crash.h) and runs a known
sequence of operations on the shared table, publishing how many it finished;
the n-th crash point it reaches kills it with the lock held and the segment
half-changed.  After each death the parent takes the lock (which repairs the
segment), times that, and checks that the pool is exactly the state after
the operations the child finished: the cut operation left no trace, whole
(an update that had to create its task included), and every index agrees
with the rows (verify()).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import signal
import statistics
import time

import numpy as np
import pytest

from lptrack import _core
from lptrack._native import NativeTable
from lptrack._table import LP_SCORE, P_FAST, ROW_WIDTH, BidirectionalParams
from lptrack.errors import LockTimeoutError

NAN = math.nan
CAPACITY = 12  # small: the pool fills, slots are reused, index clusters collide
OPS_PER_CHILD = 24
JOIN_TIMEOUT = 30.0
BIDIRECTIONAL = BidirectionalParams(0.1, 0.02, True)


def random_ops(rng: random.Random, count: int) -> list[tuple]:
    ops = []
    for _ in range(count):
        kind = rng.choices(["claim", "release", "update", "set", "clear"], [4, 3, 6, 2, 0.3])[0]
        task_id = rng.randrange(1, 3 * CAPACITY)
        ops.append((kind, task_id, rng.random()))
    return ops


def apply(table: NativeTable, op: tuple) -> None:
    kind, task_id, x = op
    if kind == "claim":
        table.claim(task_id, 1000.0 + task_id, 0.5, x, 0.0)
    elif kind == "release":
        table.release(task_id)
    elif kind == "update":
        table.update(task_id, x, 0.1, NAN, NAN, 0.5, 2000.0, 7.0, 0.0, BIDIRECTIONAL)
    elif kind == "set":
        table.set_fields(task_id, {LP_SCORE: x, P_FAST: -x})
    else:
        table.clear()


def pool(table: NativeTable) -> dict[int, bytes]:
    """The pool as {task id: row bytes}: slot numbers differ after a rebuild."""
    return {int(row[0]): row.tobytes() for row in table.rows if row[0] != 0.0}


def expected_states(start: dict[int, bytes], ops: list[tuple]) -> list[dict[int, bytes]]:
    """The pool after 0, 1, ... len(ops) operations, replayed on a local table."""
    model = NativeTable(CAPACITY)
    for task_id, image in start.items():
        slot = model.claim(task_id, 0.0, 0.0, 0.0, 0.0)
        model.set_fields(task_id, dict(enumerate(memoryview(image).cast("d").tolist()[1:], 1)))
        assert model.read_row(slot).tobytes() == image
    states = [pool(model)]
    for op in ops:
        apply(model, op)
        states.append(pool(model))
    model.close()
    return states


def crash_child(table: NativeTable, ops: list[tuple], countdown: int, done) -> None:
    _core._arm_crash(countdown)
    for i, op in enumerate(ops):
        apply(table, op)
        done.value = i + 1
    _core._arm_crash(0)
    table.close()


def run_kills(session_id: str, method: str, kills: int, seed: int) -> list[float]:
    context = multiprocessing.get_context(method)
    rng = random.Random(seed)
    table = NativeTable(CAPACITY, session_id=session_id)
    recoveries: list[float] = []
    try:
        for task_id in range(1, CAPACITY // 2):
            table.update(task_id, 0.5, 0.1, NAN, NAN, 0.5, 0.0, 1.0, 0.0, BIDIRECTIONAL)
        attempts = 0
        while len(recoveries) < kills:
            attempts += 1
            assert attempts < 20 * kills, "the countdowns stopped reaching crash points"
            ops = random_ops(rng, OPS_PER_CHILD)
            states = expected_states(pool(table), ops)
            done = context.Value("i", 0, lock=False)
            child = context.Process(
                target=crash_child, args=(table, ops, rng.randrange(1, 12 * OPS_PER_CHILD), done)
            )
            child.start()
            child.join(JOIN_TIMEOUT)
            if child.is_alive():
                child.kill()
                child.join()
                pytest.fail("crash child hung")
            recovered_before = table.recovery_count
            start = time.perf_counter()
            with table.lock():
                elapsed = time.perf_counter() - start
            if child.exitcode == 0:
                assert pool(table) == states[-1]
                continue
            assert child.exitcode == -signal.SIGKILL
            table.verify()
            finished = done.value
            # Killed inside operation finished + 1, or after it returned but
            # before `done` was written: either whole or not at all.
            assert pool(table) in (states[finished], states[min(finished + 1, len(ops))])
            if table.recovery_count > recovered_before:
                recoveries.append(elapsed)
            assert len(table) <= CAPACITY
    finally:
        table.close()
        table.unlink()
    return recoveries


def report(recoveries: list[float]) -> str:
    return (f"{len(recoveries)} recoveries: median {statistics.median(recoveries) * 1e3:.2f} ms, "
            f"max {max(recoveries) * 1e3:.2f} ms")


@pytest.mark.parametrize("method, kills", [("fork", 60), ("spawn", 3)])
def test_holders_killed_anywhere_inside_changes_are_recovered(session_id, method, kills, capsys):
    recoveries = run_kills(session_id, method, kills, seed=sum(map(ord, method)))
    with capsys.disabled():
        print(f"\n[{method}] {report(recoveries)}")
    # Recovered at once, not after a lock wait ran out (recovery's speed is a benchmark's
    # business: a loaded machine may deschedule this process for tens of milliseconds).
    assert max(recoveries) < _core.DEFAULT_LOCK_TIMEOUT / 10


# -- readers never see half a write -------------------------------------------------------------
#: Distinct writes the reader must have read whole before the test ends: a fixed amount of
#: work, however slowly a loaded machine runs the two processes (only JOIN_TIMEOUT bounds it).
DISTINCT_WRITES_READ = 200


def write_whole_rows(table: NativeTable, slot: int, stop) -> None:
    """Until ``stop`` is set, alternate C writes (set_fields) with slow, column-by-column
    Python writes through the rows view (under lock() and guard_row), which keep a row
    half-written for microseconds; every write puts one new value in every column."""
    task_id = int(table.rows[slot, 0])
    value = 0
    while not stop.value:
        value += 1
        if value % 2:
            table.set_fields(task_id, dict.fromkeys(range(1, ROW_WIDTH), float(value)))
            continue
        with table.lock():
            table.guard_row(slot)
            for column in range(1, ROW_WIDTH):
                table.rows[slot, column] = value
    table.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_lock_free_reads_never_see_half_a_row_write(session_id, method):
    table = NativeTable(CAPACITY, session_id=session_id)
    context = multiprocessing.get_context(method)
    stop = context.Value("b", 0, lock=False)
    writer = None
    try:
        slot = table.claim(1, 0.0, 0.0, 0.0, 0.0)
        table.set_fields(1, dict.fromkeys(range(1, ROW_WIDTH), 0.0))
        writer = context.Process(target=write_whole_rows, args=(table, slot, stop))
        writer.start()
        values: set[float] = set()
        reads = 0
        deadline = time.monotonic() + JOIN_TIMEOUT  # only against a hang: the work is fixed
        while len(values) < DISTINCT_WRITES_READ:
            row = table.read_row(slot)
            assert len(set(row[1:].tolist())) == 1, row  # every column from the same write
            values.add(row[1])
            reads += 1
            if reads % 1024 == 0:  # not every read: the checks would space the reads out
                assert writer.is_alive(), f"the writer exited ({writer.exitcode}) before the reads were done"
                assert time.monotonic() < deadline, f"only {len(values)} distinct writes read in {JOIN_TIMEOUT} s"
        stop.value = 1
        writer.join(JOIN_TIMEOUT)
        assert writer.exitcode == 0
    finally:
        stop.value = 1
        if writer is not None and writer.is_alive():
            writer.kill()
            writer.join(JOIN_TIMEOUT)
        table.close()
        table.unlink()


def hold_mid_write(session_id: str, slot: int, ready, die: bool) -> None:
    table = NativeTable(CAPACITY, session_id=session_id)
    with table.lock():
        table.guard_row(slot)
        table.rows[slot, 2:] = 99.0  # half of a write through the rows view
        ready.set()
        if die:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(JOIN_TIMEOUT)


@pytest.mark.parametrize("die", [False, True], ids=["stuck-writer", "dead-writer"])
def test_a_reader_meeting_an_unfinished_write_never_hangs(session_id, die):
    table = NativeTable(CAPACITY, session_id=session_id)
    fork = multiprocessing.get_context("fork")
    ready = fork.Event()
    try:
        slot = table.claim(1, 5.0, 0.5, 0.0, 0.0)
        before = table.read_row(slot)
        holder = fork.Process(target=hold_mid_write, args=(session_id, slot, ready, die))
        holder.start()
        assert ready.wait(JOIN_TIMEOUT)
        table.lock_timeout = 0.05
        if die:
            holder.join(JOIN_TIMEOUT)
            np.testing.assert_array_equal(table.read_row(slot), before)  # repaired, then read
        else:
            with pytest.raises(LockTimeoutError, match=f"held by pid {holder.pid}"):
                table.read_row(slot)
    finally:
        if holder.is_alive():
            holder.kill()
        holder.join(JOIN_TIMEOUT)
        table.close()
        table.unlink()
