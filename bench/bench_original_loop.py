"""The original's ``Curriculum`` per-episode calls on lptrack's algorithm (issue #14, item 4).

    python -m pytest bench/bench_original_loop.py --benchmark-columns=median,iqr,ops -s
    python bench/bench_original_loop.py [--tasks 1000] [--episodes 2000] [--rounds 15]
    python bench/bench_original_loop.py --compare OLD_VENV/bin/python NEW_VENV/bin/python

A user who swaps in lptrack's algorithm but keeps the original's ``Curriculum``
runs, per episode, the calls of ``OriginalShapeCurriculum`` below, in the same
order: ``score_tasks(list of every pool id)``, a probability list and
``random.choices`` over it; with the pool full, ``recommend_eviction(list of
every pool id, 5)`` and, when it names a task, ``on_task_evicted`` and a new
task (``on_task_created``); ``on_task_sampled`` and, after the episode,
``update_task_performance``.  That loop is O(pool) per episode in the caller
by its design (the lists, the dict, the probability list, ``random.choices``),
whatever the algorithm does.

``extra_info`` (and the script's output) splits an episode into the time
spent inside lptrack's calls and the caller's own Python (with the simulated
agent's scoring, about 0.4 us), measured with ``perf_counter`` around each call
(``timed_round``; a garbage collection lands in whichever side allocated last).
``test_lptrack_curriculum_vs_the_original_loop`` times ``lptrack.Curriculum``
on the same config and task generator, interleaved with this loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from lptrack import Curriculum, CurriculumTask, LearningProgressConfig, NullStatsLogger
# run_episodes needs only get_task() and update_task_performance(): it drives this loop too.
from lptrack.benchmark import SimulatedAgent, run_episodes

TASKS = 1_000
EPISODES = 1_000
#: Warm-up episodes per pool slot: fills the pool, then tasks reach 5
#: presentations and the pool churns (steady state).
WARMUP_PER_TASK = 8
MIN_PRESENTATIONS = 5
#: Task ids are drawn from [1, 2**53): lptrack's ids start at 1.
_MAX_TASK_ID = 2**53 - 1


class LabelledEnvConfig:
    """What a task generator's ``get_task(task_id)`` returns: an env config with a label."""

    __slots__ = ("label", "task_id")

    def __init__(self, task_id: int, label: str) -> None:
        self.task_id = task_id
        self.label = label


class TaskGenerator:
    """A stand-in for the original's task generators: ``get_task(task_id)`` -> env config."""

    def __init__(self, labels: int = 8) -> None:
        self._labels = [f"label_{i}" for i in range(labels)]

    def get_task(self, task_id: int) -> LabelledEnvConfig:
        return LabelledEnvConfig(task_id, self._labels[task_id % len(self._labels)])


class OriginalShapeCurriculum:
    """The original ``Curriculum``'s pool handling, call for call, over any algorithm.

    ``call`` wraps every call into the algorithm (identity by default; the
    timed rounds pass a wrapper that accumulates the time spent in them).
    """

    def __init__(self, algorithm: Any, num_active_tasks: int, seed: int = 0,
                 call: Callable[..., Any] | None = None) -> None:
        self._algorithm = algorithm
        self._num_active_tasks = num_active_tasks
        self._rng = random.Random(seed)
        self._generator = TaskGenerator()
        self._tasks: dict[int, CurriculumTask] = {}
        self._call = call if call is not None else _direct_call

    def get_task(self) -> CurriculumTask:
        call = self._call
        if len(self._tasks) < self._num_active_tasks:
            task = self._create_task()
        else:
            task = self._choose_task()
            evict = call(self._algorithm.recommend_eviction, list(self._tasks.keys()), MIN_PRESENTATIONS)
            if evict is not None:
                call(self._algorithm.on_task_evicted, evict)
                del self._tasks[evict]
                task = self._create_task()
        call(self._algorithm.on_task_sampled, task._task_id)
        return task

    def _choose_task(self) -> CurriculumTask:
        task_scores = self._call(self._algorithm.score_tasks, list(self._tasks.keys()))
        task_ids = list(task_scores.keys())
        scores = list(task_scores.values())
        total = sum(scores)
        if total > 0:
            probabilities = [score / total for score in scores]
            return self._tasks[self._rng.choices(task_ids, weights=probabilities)[0]]
        return self._tasks[self._rng.choice(task_ids)]

    def _create_task(self) -> CurriculumTask:
        task_id = self._rng.randint(1, _MAX_TASK_ID)
        while task_id in self._tasks:
            task_id = self._rng.randint(1, _MAX_TASK_ID)
        task = CurriculumTask(task_id, self._generator.get_task(task_id))
        self._tasks[task_id] = task
        self._call(self._algorithm.on_task_created, task)
        return task

    def update_task_performance(self, task_id: int, score: float) -> None:
        self._call(self._algorithm.update_task_performance, task_id, score)


def _direct_call(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


class CallTimer:
    """A ``call`` wrapper that adds up the seconds spent inside the wrapped calls."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, function: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args)
        finally:
            self.seconds += time.perf_counter() - start


def make_loop(
    tasks: int = TASKS, seed: int = 0, min_samples_for_lp: int | None = None
) -> tuple[OriginalShapeCurriculum, SimulatedAgent, Any]:
    """A steady-state loop on lptrack's algorithm (local memory): the config defaults,
    or ``min_samples_for_lp`` below the 5 presentations of eviction, so that tasks
    are scored by learning progress before they may be evicted."""
    overrides = {} if min_samples_for_lp is None else {"min_samples_for_lp": min_samples_for_lp}
    config = LearningProgressConfig(num_active_tasks=tasks, use_shared_memory=False, **overrides)
    algorithm = config.create(tasks, NullStatsLogger())
    curriculum = OriginalShapeCurriculum(algorithm, tasks, seed)
    agent = SimulatedAgent(seed)
    run_episodes(curriculum, agent, WARMUP_PER_TASK * tasks)
    return curriculum, agent, algorithm


@dataclass
class Split:
    """One timed round: seconds in all, and inside lptrack's calls."""

    episodes: int
    total: float
    lptrack: float

    @property
    def caller(self) -> float:
        return self.total - self.lptrack


def timed_round(curriculum: OriginalShapeCurriculum, agent: SimulatedAgent, episodes: int) -> Split:
    """``run_episodes`` with the time inside lptrack's calls measured apart."""
    timer = CallTimer()
    curriculum._call = timer
    try:
        total = run_episodes(curriculum, agent, episodes)
    finally:
        curriculum._call = _direct_call
    return Split(episodes, total, timer.seconds)


def describe(splits: list[Split]) -> dict[str, float]:
    """Medians over rounds, per episode."""
    per_episode = [s.total / s.episodes for s in splits]
    in_lptrack = [s.lptrack / s.episodes for s in splits]
    return {
        "episodes_per_second": 1.0 / statistics.median(per_episode),
        "episode_us": 1e6 * statistics.median(per_episode),
        "lptrack_us": 1e6 * statistics.median(in_lptrack),
        "caller_us": 1e6 * statistics.median(s.caller / s.episodes for s in splits),
        "lptrack_share": statistics.median(s.lptrack / s.total for s in splits),
    }


@pytest.mark.benchmark(group="original-loop-1k")
@pytest.mark.parametrize("min_samples_for_lp", [None, 3], ids=["defaults", "scored"])
def test_original_curriculum_loop_1k(benchmark, min_samples_for_lp: int | None) -> None:
    curriculum, agent, algorithm = make_loop(min_samples_for_lp=min_samples_for_lp)
    try:
        benchmark.pedantic(run_episodes, args=(curriculum, agent, EPISODES), rounds=20, warmup_rounds=1)
        splits = [timed_round(curriculum, agent, EPISODES) for _ in range(5)]
    finally:
        algorithm.cleanup_shared_memory()
    figures = describe(splits)
    benchmark.extra_info.update(figures)
    print(
        f"\noriginal-shaped loop, {TASKS} tasks: {figures['episodes_per_second']:,.0f} episodes/s; "
        f"per episode {figures['lptrack_us']:.1f} us in lptrack's calls, "
        f"{figures['caller_us']:.1f} us in the caller's Python"
    )


@pytest.mark.benchmark(group="original-loop-vs-curriculum")
def test_lptrack_curriculum_vs_the_original_loop(benchmark) -> None:
    """lptrack.Curriculum with the same config and task generator, each timed round
    right after a round of the original-shaped loop; ``extra_info["speedup"]`` is the
    median of the per-round ratios."""
    original, original_agent, algorithm = make_loop()
    curriculum = Curriculum(LearningProgressConfig(use_shared_memory=False), num_active_tasks=TASKS,
                            task_factory=TaskGenerator().get_task, seed=0)
    agent = SimulatedAgent(0)
    run_episodes(curriculum, agent, WARMUP_PER_TASK * TASKS)
    original_seconds: list[float] = []
    seconds: list[float] = []

    def original_round() -> None:  # the setup of each timed round
        original_seconds.append(run_episodes(original, original_agent, EPISODES))

    def curriculum_round() -> None:
        seconds.append(run_episodes(curriculum, agent, EPISODES))

    try:
        benchmark.pedantic(curriculum_round, setup=original_round, rounds=15, warmup_rounds=1)
    finally:
        curriculum.close()
        algorithm.cleanup_shared_memory()
    speedup = statistics.median(o / c for o, c in zip(original_seconds, seconds))
    benchmark.extra_info["speedup"] = speedup
    print(f"\nlptrack.Curriculum: {speedup:.0f}x the episodes/s of the original-shaped loop "
          f"(median of {len(seconds)} interleaved rounds)")


def serve(args: argparse.Namespace) -> None:
    """``--serve``: a warmed-up loop that runs one timed round per line read from stdin."""
    curriculum, agent, algorithm = make_loop(args.tasks, min_samples_for_lp=args.min_samples_for_lp)
    try:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "round":
                break
            split = timed_round(curriculum, agent, args.episodes)
            print(json.dumps(dataclasses.asdict(split)), flush=True)
    finally:
        algorithm.cleanup_shared_memory()


def compare(args: argparse.Namespace) -> None:
    """``--compare PYTHON ...``: this loop under each interpreter (each with its own
    lptrack build), in rounds taken in turn (the order alternating), so that every
    build sees the same machine speed; prints each one's medians and its episode
    time relative to the first's (median of the per-round ratios)."""
    command = [__file__, "--serve", "--tasks", str(args.tasks), "--episodes", str(args.episodes)]
    if args.min_samples_for_lp is not None:
        command += ["--min-samples-for-lp", str(args.min_samples_for_lp)]
    servers = [
        subprocess.Popen([python, *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for python in args.compare
    ]
    splits: list[list[Split]] = [[] for _ in servers]
    try:
        for server in servers:
            if server.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
                raise RuntimeError(f"server {server.args[0]} did not start")
        for round_index in range(args.rounds):
            order = list(range(len(servers)))
            if round_index % 2:
                order.reverse()
            for i in order:
                servers[i].stdin.write("round\n")  # type: ignore[union-attr]
                servers[i].stdin.flush()  # type: ignore[union-attr]
                splits[i].append(Split(**json.loads(servers[i].stdout.readline())))  # type: ignore[union-attr]
    finally:
        for server in servers:
            server.communicate("quit\n", timeout=60)
    for python, runs in zip(args.compare, splits):
        ratio = statistics.median(s.total / first.total for s, first in zip(runs, splits[0]))
        figures = ", ".join(f"{name} {value:.4g}" for name, value in describe(runs).items())
        print(f"{python}: {figures}, episode time / first's {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--episodes", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--min-samples-for-lp", type=int, default=None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compare", nargs="+", metavar="PYTHON",
                        help="run the loop under these interpreters in interleaved rounds")
    args = parser.parse_args()
    if args.serve:
        serve(args)
    elif args.compare:
        compare(args)
    else:
        curriculum, agent, algorithm = make_loop(args.tasks, min_samples_for_lp=args.min_samples_for_lp)
        try:
            splits = [timed_round(curriculum, agent, args.episodes) for _ in range(args.rounds)]
        finally:
            algorithm.cleanup_shared_memory()
        for name, value in describe(splits).items():
            print(f"{name}: {value:.6g}")


if __name__ == "__main__":
    main()
