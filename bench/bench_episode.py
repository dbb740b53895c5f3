"""The episode loop and the distribution pass (pytest-benchmark), issue #4's targets.

    python -m pytest bench/bench_episode.py --benchmark-columns=median,iqr,ops

Groups read side by side:

* ``episode-1k``: 1,000 episodes (get_task + update_task_performance) through
  ``Curriculum`` on a 1,000-task pool, discrete vs lp-native (the config's
  defaults: with min_samples_for_lp 10 above the 5 presentations of eviction,
  tasks are evicted before LP scores them) and lp-native-scored
  (min_samples_for_lp 3, as ``lptrack bench`` runs it);
  target: lp-native at most 2x discrete;
* ``episode-pool``: the same on lp-native at 1k, 10k and 100k tasks;
  targets: 10k at most 1.5x 1k, 100k at most 3x 1k;
* ``pass-100k``: the distribution over 100,000 rows, the C pass vs the same
  formula in numpy (the pure engine); target: C at least 3x faster;
* ``processes``: episodes per second of 1 and 2 worker processes on one
  session (``extra_info["episodes_per_second"]``); target: 2 at least 1.6x 1.

Every pool is warmed up until full and evicting (steady state) before timing.
"""

from __future__ import annotations

import numpy as np
import pytest

from lptrack import LearningProgressConfig
from lptrack._engines import make_table
from lptrack._table import P_FAST, P_SLOW, P_TRUE, DistributionParams
from lptrack.benchmark import BenchConfig, SimulatedAgent, _run_multiprocess, run_episodes
from lptrack.curriculum import Curriculum, DiscreteRandomCurriculumConfig

EPISODES = 1_000
#: Warm-up episodes per pool slot: fills the pool, then tasks reach the
#: eviction threshold (5 presentations) and the pool churns.
WARMUP_PER_TASK = 8


def steady_curriculum(algorithm: str, tasks: int) -> tuple[Curriculum, SimulatedAgent]:
    if algorithm == "discrete":
        config = DiscreteRandomCurriculumConfig()
    elif algorithm == "lp-native-scored":
        # As `lptrack bench` runs it: tasks are scored by LP before they may be evicted.
        config = LearningProgressConfig(
            use_shared_memory=False, engine="native", min_samples_for_lp=BenchConfig().min_samples_for_lp
        )
    else:
        config = LearningProgressConfig(use_shared_memory=False, engine="native")
    curriculum = Curriculum(config, num_active_tasks=tasks, seed=0)
    agent = SimulatedAgent(0)
    run_episodes(curriculum, agent, WARMUP_PER_TASK * tasks)
    if algorithm != "discrete":
        assert curriculum.stats()["curriculum/tasks_evicted"] > 0, "not in steady state"
    return curriculum, agent


def time_episodes(benchmark, algorithm: str, tasks: int) -> None:
    curriculum, agent = steady_curriculum(algorithm, tasks)
    try:
        benchmark.pedantic(run_episodes, args=(curriculum, agent, EPISODES), rounds=30, warmup_rounds=2)
    finally:
        curriculum.close()


@pytest.mark.benchmark(group="episode-1k")
@pytest.mark.parametrize("algorithm", ["discrete", "lp-native", "lp-native-scored"])
def test_episode_loop_1k(benchmark, algorithm: str) -> None:
    time_episodes(benchmark, algorithm, 1_000)


@pytest.mark.benchmark(group="episode-pool")
@pytest.mark.parametrize("tasks", [1_000, 10_000, 100_000], ids=["1k", "10k", "100k"])
def test_episode_loop_pool_size(benchmark, tasks: int) -> None:
    time_episodes(benchmark, "lp-native", tasks)


@pytest.fixture(scope="module")
def rows_100k() -> np.ndarray:
    return np.random.default_rng(0).random((100_000, 3))


@pytest.mark.benchmark(group="pass-100k")
@pytest.mark.parametrize("engine", ["native", "python"], ids=["C", "numpy"])
def test_distribution_pass_100k(benchmark, engine: str, rows_100k: np.ndarray) -> None:
    table = make_table(engine, rows_100k.shape[0])
    for task_id in range(1, rows_100k.shape[0] + 1):
        table.claim(task_id, 0.0, 0.5, 0.0, 0.0)
    slots = table.active_slots()
    with table.lock():
        table.rows[slots, P_FAST] = rows_100k[:, 0]
        table.rows[slots, P_SLOW] = rows_100k[:, 1]
        table.rows[slots, P_TRUE] = rows_100k[:, 2]
    params = DistributionParams(0.05, 0.01, 0.5, 0.0, 10.0)  # reweighting, bonus and z-score: every step
    try:
        benchmark(table.compute_lp_distribution, params)
    finally:
        table.close()


@pytest.mark.benchmark(group="processes")
@pytest.mark.parametrize("workers", [1, 2])
def test_processes_on_one_session(benchmark, workers: int) -> None:
    config = BenchConfig(tasks=1_000, episodes_per_epoch=40_000, epochs=4, workers=workers, algorithms=("lp-native",))
    rows = benchmark.pedantic(_run_multiprocess, args=("lp-native", config, lambda line: None), rounds=1)
    rates = sorted(row.episodes_per_second for row in rows[1:])  # epoch 0 fills the pool
    benchmark.extra_info["episodes_per_second"] = rates[len(rates) // 2]
    print(f"\n{workers} process(es): {rates[len(rates) // 2]:,.0f} episodes/s (median of epochs 1..)")

