"""Steady-state pools and per-call latency (pytest-benchmark), issue #15's targets.

    python -m pytest bench/bench_steady.py -s --benchmark-columns=median,iqr,rounds
    LPTRACK_BENCH_1M=1 python -m pytest bench/bench_steady.py -s -k 1M   # by hand: minutes

Groups:

* ``steady-state``: pools of 1k, 10k and 100k tasks (1M with LPTRACK_BENCH_1M=1)
  warmed with WARM episodes per task (most tasks then have enough samples to
  be scored by learning progress), then interleaved rounds of uniform
  sampling (discrete) and lp-native, at the fixed batch of 100 and with the
  batch that grows with the pool (``perf_invalidation_batch_fraction``);
  ``extra_info`` holds both microseconds per episode and the median of the
  per-round ratios; targets: LP at most 2x uniform at 1k and 10k, 3x at 100k;
* ``latency``: per-call p50, p99 and max of get_task and update on a warmed
  100k pool (the batch growing with the pool), alone and while a second
  process of the session runs its own episode loop (and so its passes), and
  the longest lock wait; targets: p99 under 50 us, no lock wait over 1 ms.

With ``--benchmark-disable`` (CI) each runs once on a barely warmed pool, to
keep the code working; the figures come from normal runs.
"""

from __future__ import annotations

import math
import os

import pytest

from lptrack.bench_steady import measure_call_latency, measure_steady_state

#: Warm-up episodes per task: about 99% of tasks then have min_samples_for_lp (3) samples.
WARM = {1_000: 60, 10_000: 60, 100_000: 20, 1_000_000: 10}
#: The batch that grows with the pool, as a share of its slots.
BATCH_FRACTION = 0.05
SIZES = [1_000, 10_000, 100_000] + ([1_000_000] if os.environ.get("LPTRACK_BENCH_1M") else [])


@pytest.mark.benchmark(group="steady-state")
@pytest.mark.parametrize("fraction", [0.0, BATCH_FRACTION], ids=["batch100", "batch-grows"])
@pytest.mark.parametrize("tasks", SIZES, ids=lambda n: f"{n // 1000}k" if n < 10**6 else "1M")
def test_steady_state(benchmark, tasks: int, fraction: float) -> None:
    quick = benchmark.disabled
    batch = max(100, math.ceil(fraction * tasks))
    kwargs = dict(
        tasks=tasks, warm=1 if quick else WARM[tasks], episodes=200 if quick else max(4000, 2 * batch),
        rounds=1 if quick else (11 if tasks < 10**6 else 5), perf_invalidation_batch_fraction=fraction,
    )
    result = benchmark.pedantic(measure_steady_state, kwargs=kwargs, rounds=1)
    benchmark.extra_info.update(
        uniform_us=result.uniform_us, lp_us=result.lp_us, ratio=result.ratio, total_ratio=result.total_ratio,
        scored_fraction=result.scored_fraction,
    )
    print(f"\nbatch fraction {fraction}: {result.line()}")


@pytest.mark.benchmark(group="latency")
def test_call_latency_while_another_process_runs_passes(benchmark) -> None:
    quick = benchmark.disabled
    kwargs = dict(tasks=2_000 if quick else 100_000, warm=1 if quick else WARM[100_000],
                  episodes=500 if quick else 20_000, perf_invalidation_batch_fraction=BATCH_FRACTION)
    result = benchmark.pedantic(measure_call_latency, kwargs=kwargs, rounds=1)
    for name, latencies in (("alone", result.alone), ("shared", result.shared)):
        summary = latencies.summary()
        for call in ("get_task", "update"):
            for key in ("p50_us", "p99_us", "max_us"):
                benchmark.extra_info[f"{name}_{call}_{key}"] = summary[call][key]
        benchmark.extra_info[f"{name}_longest_lock_wait_us"] = summary["longest_lock_wait_us"]
        benchmark.extra_info[f"{name}_longest_pass_hold_us"] = summary["longest_pass_hold_us"]
    print("\n" + result.lines())
