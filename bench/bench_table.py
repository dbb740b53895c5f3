"""Microbenchmarks of the native table (pytest-benchmark).

    python -m pytest bench/bench_table.py --benchmark-columns=median,iqr,ops

Every operation is one benchmark group, so the 1k and 100k pools (half full),
local and shared, read side by side.  Two baselines put the numbers in
context: ``noop`` is a call into the extension with ``update``'s arguments and
no work; ``lock`` is a Python-level acquire/release round trip.  The C-level
lock round trip (target: under 50 ns uncontended) is timed inside C by
``lock_bench`` and reported as ``c_lock_ns`` in extra_info and on stdout.
"""

from __future__ import annotations

import math
import uuid
from types import SimpleNamespace

import pytest

from lptrack import LearningProgressConfig, create_task_tracker
from lptrack._native import NativeTable
from lptrack._table import BidirectionalParams

NAN = math.nan
PARAMS = BidirectionalParams(0.1, 0.02, True)
CAPACITIES = [1_000, 100_000]


@pytest.fixture(
    scope="module",
    params=[(c, m) for c in CAPACITIES for m in ("local", "shared")],
    ids=lambda p: f"{p[0] // 1000}k-{p[1]}",
)
def table(request):
    capacity, mode = request.param
    session_id = None if mode == "local" else f"bench_{uuid.uuid4().hex[:8]}"
    t = NativeTable(capacity, session_id=session_id)
    for task_id in range(1, capacity // 2 + 1):
        t.claim(task_id, 0.0, 0.5, 0.0, 0.0)
    yield t
    t.close()
    t.unlink()


def per_call(benchmark, function, *args) -> None:
    """Time ``function(*args)`` over many calls per round: a single call of a
    100 ns operation is below the timer's resolution, and pytest-benchmark's
    calibration sometimes settles on one call per round."""
    benchmark.pedantic(function, args=args, iterations=2000, rounds=50, warmup_rounds=2)


def middle_task(table) -> int:
    return table.capacity // 4


@pytest.mark.benchmark(group="update")
def test_update(benchmark, table):
    task_id = middle_task(table)
    per_call(benchmark, table.update, task_id, 0.5, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, PARAMS)


@pytest.mark.benchmark(group="noop")
def test_noop_extension_call(benchmark, table):
    task_id = middle_task(table)
    per_call(benchmark, table._noop_update, task_id, 0.5, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, PARAMS)


@pytest.mark.benchmark(group="find")
def test_find(benchmark, table):
    per_call(benchmark, table.find, middle_task(table))


@pytest.mark.benchmark(group="find-absent")
def test_find_absent(benchmark, table):
    per_call(benchmark, table.find, table.capacity * 10)


@pytest.mark.benchmark(group="claim+release")
def test_claim_release(benchmark, table):
    new_id = table.capacity * 10

    def claim_release():
        table.claim(new_id, 0.0, 0.5, 0.0, 0.0)
        table.release(new_id)

    per_call(benchmark, claim_release)


@pytest.mark.benchmark(group="active_ids")
def test_active_ids(benchmark, table):
    benchmark(table.active_ids)


@pytest.mark.benchmark(group="read_row")
def test_read_row(benchmark, table):
    per_call(benchmark, table.read_row, table.find(middle_task(table)))


@pytest.mark.benchmark(group="lock")
def test_python_lock_round_trip(benchmark, table):
    def round_trip():
        with table.lock():
            pass

    per_call(benchmark, round_trip)


@pytest.mark.benchmark(group="c-lock")
def test_c_lock_round_trip(benchmark, table):
    pairs = 100_000
    benchmark.extra_info["c_lock_ns"] = table.lock_bench(1_000_000)
    print(f"\n{table!r}: uncontended C lock+unlock {benchmark.extra_info['c_lock_ns']:.1f} ns")
    benchmark.pedantic(table.lock_bench, args=(pairs,), rounds=20)


# -- the same operations through the public TaskTracker API ---------------------------------------
@pytest.fixture(
    scope="module",
    params=[(c, m) for c in CAPACITIES for m in ("local", "shared")],
    ids=lambda p: f"{p[0] // 1000}k-{p[1]}",
)
def tracker(request):
    """A native TaskTracker on a half-full pool (what users call: validation included)."""
    capacity, mode = request.param
    tracker = create_task_tracker(
        max_memory_tasks=capacity,
        ema_alpha=0.1,
        use_shared_memory=mode == "shared",
        default_success_threshold=0.5,
        default_generator_type=0.0,
        _session_id=f"bench_{uuid.uuid4().hex[:8]}" if mode == "shared" else None,
    )
    for task_id in range(1, capacity // 2 + 1):
        tracker.track_task_creation(task_id)
    yield tracker
    tracker.cleanup_shared_memory()


@pytest.mark.benchmark(group="tracker-update")
def test_tracker_update(benchmark, tracker):
    scorer = SimpleNamespace(config=LearningProgressConfig(use_shared_memory=False))
    task_id = tracker.max_memory_tasks // 4
    per_call(benchmark, tracker.update_task_performance_with_bidirectional_emas, task_id, 0.5, scorer)


@pytest.mark.benchmark(group="tracker-get_task_index")
def test_tracker_get_task_index(benchmark, tracker):
    per_call(benchmark, tracker.get_task_index, tracker.max_memory_tasks // 4)


@pytest.mark.benchmark(group="tracker-track+remove")
def test_tracker_track_and_remove(benchmark, tracker):
    task_id = tracker.max_memory_tasks + 1

    def track_and_remove() -> None:
        tracker.track_task_creation(task_id)
        tracker.remove_task(task_id)

    per_call(benchmark, track_and_remove)


@pytest.mark.benchmark(group="tracker-get_all_tracked_tasks")
def test_tracker_get_all_tracked_tasks(benchmark, tracker):
    """A new list of every id (SPEC): O(pool) by contract, from the generation-checked cache."""
    benchmark(tracker.get_all_tracked_tasks)


@pytest.mark.benchmark(group="tracker-get_task_stats")
def test_tracker_get_task_stats(benchmark, tracker):
    per_call(benchmark, tracker.get_task_stats, tracker.max_memory_tasks // 4)
