"""Soak: two processes, a million mixed operations each, on one session.

Each process drives the public table methods from a tight loop (the op mix
is drawn up front with numpy, so the loop is only dispatch and the call):
creations, score updates, removals, score reads and samples, over a pool
small enough to stay full and churn.  Afterwards the pool's indexes must
match its rows (verify()) and the counts must be exact: every update either
process made is in update_count, and the tasks nobody removes hold exactly
the completions both processes gave them.
"""

from __future__ import annotations

import math
import multiprocessing
import time

import numpy as np
import pytest

from lptrack._native import NativeTable
from lptrack._table import COMPLETION_COUNT, TASK_ID, BidirectionalParams

OPS_PER_PROCESS = 1_000_000
PROCESSES = 2
CAPACITY = 256
DURABLE = 8  # task ids 1..8: updated, never removed
CHURN_IDS = 4 * CAPACITY  # ids DURABLE+1 .. DURABLE+CHURN_IDS come and go
JOIN_TIMEOUT = 110.0
NAN = math.nan
BIDIRECTIONAL = BidirectionalParams(0.1, 0.02, True)
CREATE, UPDATE, DURABLE_UPDATE, REMOVE, SCORE, SAMPLE = range(6)
MIX = [0.15, 0.30, 0.15, 0.15, 0.15, 0.10]


def soak(table: NativeTable, seed: int, results) -> None:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(len(MIX), size=OPS_PER_PROCESS, p=MIX).tolist()
    churn = rng.integers(DURABLE + 1, DURABLE + CHURN_IDS + 1, size=OPS_PER_PROCESS).tolist()
    durable = rng.integers(1, DURABLE + 1, size=OPS_PER_PROCESS).tolist()
    uniforms = rng.random(OPS_PER_PROCESS).tolist()
    update, claim, release, find, read_row, sample = (
        table.update, table.claim, table.release, table.find, table.read_row, table.sample
    )
    updates = 0
    per_durable = [0] * (DURABLE + 1)
    start = time.perf_counter()
    for kind, task_id, durable_id, u in zip(kinds, churn, durable, uniforms):
        if kind == UPDATE:
            updates += update(task_id, u, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, BIDIRECTIONAL) >= 0
        elif kind == DURABLE_UPDATE:
            if update(durable_id, u, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, BIDIRECTIONAL) >= 0:
                updates += 1
                per_durable[durable_id] += 1
        elif kind == CREATE:
            claim(task_id, 0.0, 0.5, u, 0.0)
        elif kind == REMOVE:
            release(task_id)
        elif kind == SCORE:
            slot = find(task_id)
            if slot >= 0:
                read_row(slot)
        else:
            sample(u)
    results.put((updates, per_durable, time.perf_counter() - start))
    table.close()


@pytest.mark.slow
def test_two_processes_a_million_operations_each(session_id, capsys):
    context = multiprocessing.get_context("fork")
    table = NativeTable(CAPACITY, session_id=session_id)
    results = context.Queue()
    processes = []
    try:
        for task_id in range(1, DURABLE + 1):  # first, so the churn never crowds them out
            table.claim(task_id, 0.0, 0.5, 0.0, 0.0)
        processes = [context.Process(target=soak, args=(table, seed, results)) for seed in range(PROCESSES)]
        start = time.perf_counter()
        for process in processes:
            process.start()
        reports = [results.get(timeout=JOIN_TIMEOUT) for _ in processes]
        for process in processes:
            process.join(JOIN_TIMEOUT)
        wall = time.perf_counter() - start
        assert [p.exitcode for p in processes] == [0] * PROCESSES
        table.verify()
        assert table.update_count == sum(updates for updates, _, _ in reports)
        for task_id in range(1, DURABLE + 1):
            row = table.read_row(table.find(task_id))
            assert row[COMPLETION_COUNT] == sum(per[task_id] for _, per, _ in reports)
        ids = sorted(table.active_ids().tolist())
        assert ids == sorted(int(i) for i in table.rows[:, TASK_ID] if i != 0)
        assert len(ids) == len(table) <= CAPACITY
        assert table.recovery_count == 0
        rate = PROCESSES * OPS_PER_PROCESS / max(seconds for _, _, seconds in reports)
        with capsys.disabled():
            print(f"\n[soak] {PROCESSES} x {OPS_PER_PROCESS} ops in {wall:.1f} s wall "
                  f"({rate / 1e6:.2f} M ops/s over both processes), lock waits {table.lock_wait_count}")
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()
        table.close()
        table.unlink()
