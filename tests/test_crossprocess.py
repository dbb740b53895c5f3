"""One pool per session, really shared: native tables across processes.

Parametrized over the multiprocessing start methods that re-create a table in
the child differently: fork inherits the mapping, spawn unpickles a handle and
attaches by session id.
"""

from __future__ import annotations

import math
import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lptrack._native import NativeTable
from lptrack._table import COMPLETION_COUNT, TOTAL_SCORE

NAN = math.nan
CAPACITY = 64
JOIN_TIMEOUT = 60.0


@pytest.fixture(params=["fork", "spawn"])
def context(request):
    return multiprocessing.get_context(request.param)


@pytest.fixture
def shared(session_id):
    table = NativeTable(CAPACITY, session_id=session_id)
    yield table
    table.close()
    table.unlink()


def run_all(context, target, args_per_process):
    """Start one process per args tuple, wait for all; kill stragglers."""
    processes = [context.Process(target=target, args=args) for args in args_per_process]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(JOIN_TIMEOUT)
    finally:
        stragglers = [p for p in processes if p.is_alive()]
        for process in stragglers:
            process.kill()
            process.join()
    assert not stragglers, "child processes did not finish"
    assert [p.exitcode for p in processes] == [0] * len(processes)


def hammer(table, task_ids, rounds):
    for _ in range(rounds):
        for task_id in task_ids:
            table.update(task_id, 1.0, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, None)
    table.close()


def test_concurrent_updates_of_shared_tasks_are_never_lost(shared, context):
    task_ids = list(range(1, 9))
    workers, rounds = 4, 400
    run_all(context, hammer, [(shared, task_ids, rounds)] * workers)
    for task_id in task_ids:
        row = shared.read_row(shared.find(task_id))
        assert row[COMPLETION_COUNT] == workers * rounds
        assert row[TOTAL_SCORE] == workers * rounds
    assert shared.update_count == workers * rounds * len(task_ids)
    shared.verify()


def claim_range(table, first, count, barrier):
    barrier.wait(JOIN_TIMEOUT)
    for task_id in range(first, first + count):
        assert table.claim(task_id, 0.0, 0.5, 0.0, 0.0) >= 0
    table.close()


def test_processes_claiming_at_once_never_share_a_slot(shared, context):
    workers, per_worker = 4, CAPACITY // 4
    barrier = context.Barrier(workers)
    run_all(
        context,
        claim_range,
        [(shared, 1000 * (w + 1), per_worker, barrier) for w in range(workers)],
    )
    expected = {1000 * (w + 1) + i for w in range(workers) for i in range(per_worker)}
    assert set(shared.active_ids().tolist()) == expected
    slots = [shared.find(task_id) for task_id in expected]
    assert sorted(slots) == list(range(CAPACITY))
    shared.verify()


def create_task(table, task_id):
    assert table.claim(task_id, 0.0, 0.5, 0.0, 0.0) >= 0
    table.close()


def update_and_remove(table, task_id):
    assert table.find(task_id) >= 0
    table.update(task_id, 0.25, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, None)
    assert table.release(task_id)
    table.close()


def test_a_task_lives_across_processes(shared, context):
    run_all(context, create_task, [(shared, 77)])
    slot = shared.find(77)
    assert slot >= 0
    shared.update(77, 1.0, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, None)
    assert shared.read_row(slot)[COMPLETION_COUNT] == 1
    run_all(context, update_and_remove, [(shared, 77)])
    assert shared.find(77) == -1
    assert len(shared) == 0


def attach_and_leave(table):
    table.claim(5, 0.0, 0.5, 0.0, 0.0)
    table.unlink()  # only the creating process may: a no-op here
    table.close()


def test_an_exiting_child_leaves_the_segment_in_place(shared, context):
    run_all(context, attach_and_leave, [(shared,)])
    assert Path("/dev/shm", shared.segment_name).exists()
    assert shared.find(5) == 0


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_no_resource_tracker_warnings_from_attachers(session_id, method, tmp_path):
    """A whole program: its creator spawns an attaching child, a separate
    interpreter attaches too, everybody exits; nobody warns, the segment goes
    exactly when the creator unlinks it."""
    program = textwrap.dedent(
        f"""
        import multiprocessing, subprocess, sys
        from pathlib import Path
        from lptrack._native import NativeTable

        def child(table):
            table.claim(1, 0.0, 0.5, 0.0, 0.0)
            table.close()

        if __name__ == "__main__":
            table = NativeTable(8, session_id={session_id!r})
            ctx = multiprocessing.get_context({method!r})
            p = ctx.Process(target=child, args=(table,))
            p.start(); p.join(60)
            assert p.exitcode == 0, p.exitcode
            stranger = "from lptrack._native import NativeTable; " \\
                "t = NativeTable(8, session_id={session_id!r}); assert t.find(1) == 0"
            subprocess.run([sys.executable, "-W", "error", "-c", stranger], check=True, timeout=60)
            assert Path("/dev/shm", table.segment_name).exists()
            table.close()
            table.unlink()
            assert not Path("/dev/shm", table.segment_name).exists()
        """
    )
    script = tmp_path / "program.py"  # spawn re-imports __main__ from a file
    script.write_text(program)
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
