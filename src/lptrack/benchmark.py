"""``lptrack bench``: a trainer's episode loop through ``Curriculum``, timed per epoch.

Each algorithm runs the same simulated training: every episode asks the
curriculum for a task, "plays" it (a score drawn from the task's difficulty and
the agent's growing skill, so learning progress is real) and reports the score.
What is timed is the curriculum's share of an episode, which is what a trainer
pays for on top of its environment steps.

Algorithms:

* ``discrete``: uniform sampling, the cost floor;
* ``lp-python``: learning progress on the pure-Python engine with the
  distribution recomputed after every event (batch 1): the behaviour before
  the fix, as in the tracker lptrack replaces;
* ``lp-native``: learning progress on the native engine with the batched fix.
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .bench_steady import CallLatencies, format_latencies, run_episodes_timed, warm_up
from .config import LearningProgressConfig
from .curriculum import Curriculum, DiscreteRandomCurriculumConfig

ALGORITHMS = ("discrete", "lp-python", "lp-native")

#: How long a worker or the parent waits at an epoch barrier before giving up.
BARRIER_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class BenchConfig:
    tasks: int = 1000
    episodes_per_epoch: int = 30000
    epochs: int = 5
    workers: int = 1
    batch: int = 100
    #: LearningProgressConfig's default; the Curriculum's default then lets a task be
    #: evicted from its 20th presentation (twice this), so learning progress scores
    #: tasks before they may be evicted, as a user gets it.
    min_samples_for_lp: int = 10
    algorithms: tuple[str, ...] = ALGORITHMS
    seed: int = 0
    #: Untimed episodes per pool slot before the first epoch: a mature pool,
    #: most of whose tasks learning progress scores (lptrack.bench_steady).
    warm: int = 0
    #: Time every get_task and update_task_performance call (p50, p99, max).
    latency: bool = False
    #: perf_invalidation_batch_fraction of lp-native (a batch that grows with the pool).
    batch_fraction: float = LearningProgressConfig.perf_invalidation_batch_fraction

    def __post_init__(self) -> None:
        for name in ("tasks", "episodes_per_epoch", "epochs", "workers", "batch", "min_samples_for_lp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.warm, bool) or not isinstance(self.warm, int) or self.warm < 0:
            raise ValueError(f"warm must be an int >= 0, got {self.warm!r}")
        if not 0.0 <= self.batch_fraction <= 1.0:
            raise ValueError(f"batch_fraction must be in [0, 1], got {self.batch_fraction!r}")
        unknown = [a for a in self.algorithms if a not in ALGORITHMS]
        if unknown or not self.algorithms:
            raise ValueError(
                f"algorithms must be a non-empty subset of {', '.join(ALGORITHMS)}; got {unknown or '[]'}"
            )


@dataclass
class EpochResult:
    algorithm: str
    epoch: int
    episodes: int
    seconds: float
    episodes_per_second: float


@dataclass
class BenchResult:
    config: BenchConfig
    rows: list[EpochResult] = field(default_factory=list)
    #: Per algorithm, with ``config.latency``: every timed call of every worker.
    latencies: dict[str, CallLatencies] = field(default_factory=dict)

    def by_algorithm(self) -> dict[str, list[EpochResult]]:
        grouped: dict[str, list[EpochResult]] = {}
        for row in self.rows:
            grouped.setdefault(row.algorithm, []).append(row)
        return grouped

    def summary(self) -> dict[str, Any]:
        """Per algorithm: median episodes/s and the change from the first to the last epoch;
        plus each LP algorithm's cost relative to ``discrete`` (ratio of median rates)."""
        out: dict[str, Any] = {}
        medians: dict[str, float] = {}
        for algorithm, rows in self.by_algorithm().items():
            median = statistics.median(r.episodes_per_second for r in rows)
            medians[algorithm] = median
            first, last = rows[0].episodes_per_second, rows[-1].episodes_per_second
            out[algorithm] = {
                "median_episodes_per_second": median,
                "first_epoch_episodes_per_second": first,
                "last_epoch_episodes_per_second": last,
                "first_to_last_change": (last - first) / first if first > 0 else math.nan,
            }
        if "discrete" in medians:
            for algorithm in ("lp-python", "lp-native"):
                if algorithm in medians and medians[algorithm] > 0:
                    # Cost ratio: how many times longer an episode's curriculum work takes.
                    out[algorithm]["cost_vs_discrete"] = medians["discrete"] / medians[algorithm]
        if "lp-python" in medians and "lp-native" in medians and medians["lp-python"] > 0:
            out["lp-native"]["speedup_vs_lp_python"] = medians["lp-native"] / medians["lp-python"]
        return out

    def to_json(self) -> dict[str, Any]:
        config = asdict(self.config)
        config["algorithms"] = list(self.config.algorithms)
        return {
            "config": config,
            "rows": [asdict(r) for r in self.rows],
            "summary": self.summary(),
            "latency": {algorithm: l.summary() for algorithm, l in self.latencies.items()},
        }


def make_curriculum_config(algorithm: str, config: BenchConfig, session_id: str | None):
    """The algorithm config an ``algorithm`` name stands for."""
    if algorithm == "discrete":
        return DiscreteRandomCurriculumConfig()
    shared = config.workers > 1
    common: dict[str, Any] = dict(
        num_active_tasks=config.tasks,
        min_samples_for_lp=config.min_samples_for_lp,
        use_shared_memory=shared,
        session_id=session_id if shared else None,
    )
    if algorithm == "lp-python":
        return LearningProgressConfig(engine="python", perf_invalidation_batch_size=1, **common)
    if algorithm == "lp-native":
        return LearningProgressConfig(
            engine="native", perf_invalidation_batch_size=config.batch,
            perf_invalidation_batch_fraction=config.batch_fraction, **common
        )
    raise ValueError(f"unknown algorithm {algorithm!r}")


class SimulatedAgent:
    """Scores episodes: P(success) = sigmoid(skill - difficulty(task)), skill grows with practice."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self.skill = -2.0

    @staticmethod
    def difficulty(task_id: int) -> float:
        # A fixed pseudo-random difficulty in [-3, 3) per task id.
        return ((task_id * 0x9E3779B97F4A7C15) % 2**64) / 2**64 * 6.0 - 3.0

    def play(self, task_id: int) -> float:
        p = 1.0 / (1.0 + math.exp(self.difficulty(task_id) - self.skill))
        self.skill += 1e-4
        return 1.0 if self._rng.random() < p else 0.0


def run_episodes(curriculum: Curriculum, agent: SimulatedAgent, episodes: int) -> float:
    """Run ``episodes`` episodes; returns the seconds spent."""
    get_task = curriculum.get_task
    update = curriculum.update_task_performance
    play = agent.play
    start = time.perf_counter()
    for _ in range(episodes):
        task_id = get_task()._task_id
        update(task_id, play(task_id))
    return time.perf_counter() - start


def _worker_main(
    algorithm: str, config: BenchConfig, session_id: str | None, worker: int, barrier: Any,
    latency_queue: Any = None,
) -> None:
    curriculum = Curriculum(
        make_curriculum_config(algorithm, config, session_id),
        num_active_tasks=config.tasks,
        seed=config.seed + 1000 * worker,
    )
    agent = SimulatedAgent(config.seed + worker)
    per_worker = _share(config.episodes_per_epoch, config.workers, worker)
    latencies = CallLatencies() if config.latency else None
    try:
        if algorithm == "discrete":  # a pool per process (the parent warmed a shared one)
            warm_up(curriculum, agent, config.warm)
        barrier.wait(BARRIER_TIMEOUT_S)  # attached and ready
        for _ in range(config.epochs):
            barrier.wait(BARRIER_TIMEOUT_S)
            _run_epoch(curriculum, agent, per_worker, latencies)
            barrier.wait(BARRIER_TIMEOUT_S)
        if latency_queue is not None:
            latency_queue.put(latencies)
    finally:
        curriculum.close()


def _share(total: int, workers: int, worker: int) -> int:
    """Worker ``worker``'s share of ``total`` episodes (the shares add up to ``total``)."""
    return total // workers + (1 if worker < total % workers else 0)


def _run_epoch(curriculum: Curriculum, agent: SimulatedAgent, episodes: int,
               latencies: CallLatencies | None) -> float:
    if latencies is None:
        return run_episodes(curriculum, agent, episodes)
    return run_episodes_timed(curriculum, agent, episodes, latencies)


def run_algorithm(
    algorithm: str, config: BenchConfig, progress: Callable[[str], None],
    latencies: CallLatencies | None = None,
) -> list[EpochResult]:
    """Time ``config.epochs`` epochs of ``algorithm``; one result row per epoch.
    With ``latencies``, every call of every worker is also timed into it."""
    if config.workers == 1:
        curriculum = Curriculum(
            make_curriculum_config(algorithm, config, None),
            num_active_tasks=config.tasks,
            seed=config.seed,
        )
        agent = SimulatedAgent(config.seed)
        rows = []
        try:
            warm_up(curriculum, agent, config.warm)
            for epoch in range(config.epochs):
                seconds = _run_epoch(curriculum, agent, config.episodes_per_epoch, latencies)
                rows.append(_row(algorithm, epoch, config.episodes_per_epoch, seconds))
                progress(_progress_line(rows[-1]))
        finally:
            curriculum.close()
        return rows
    return _run_multiprocess(algorithm, config, progress, latencies)


def _run_multiprocess(
    algorithm: str, config: BenchConfig, progress: Callable[[str], None],
    latencies: CallLatencies | None = None,
) -> list[EpochResult]:
    """Workers share one session (one pool); the parent times each epoch between barriers."""
    ctx = mp.get_context("spawn")
    session_id = f"bench_{uuid.uuid4().hex[:12]}"
    owner = None
    if algorithm != "discrete":
        # The parent creates the session so its lifetime spans every worker's.
        owner = Curriculum(
            make_curriculum_config(algorithm, config, session_id),
            num_active_tasks=config.tasks,
            seed=config.seed,
        )
        warm_up(owner, SimulatedAgent(config.seed), config.warm)
    barrier = ctx.Barrier(config.workers + 1)
    latency_queue = ctx.Queue() if latencies is not None else None
    workers = [
        ctx.Process(
            target=_worker_main,
            args=(algorithm, config, session_id, w, barrier, latency_queue),
            name=f"lptrack-bench-{algorithm}-{w}",
        )
        for w in range(config.workers)
    ]
    rows: list[EpochResult] = []
    try:
        for p in workers:
            p.start()
        barrier.wait(BARRIER_TIMEOUT_S)
        for epoch in range(config.epochs):
            barrier.wait(BARRIER_TIMEOUT_S)
            start = time.perf_counter()
            barrier.wait(BARRIER_TIMEOUT_S)
            rows.append(
                _row(algorithm, epoch, config.episodes_per_epoch, time.perf_counter() - start)
            )
            progress(_progress_line(rows[-1]))
        if latency_queue is not None:
            for _ in workers:
                latencies.extend(latency_queue.get(timeout=BARRIER_TIMEOUT_S))
        for p in workers:
            p.join(BARRIER_TIMEOUT_S)
            if p.exitcode != 0:
                raise RuntimeError(f"benchmark worker {p.name} exited with code {p.exitcode}")
    finally:
        barrier.abort()
        for p in workers:
            if p.is_alive():
                p.kill()
                p.join(5)
        if owner is not None:
            owner.close()
    return rows


def _row(algorithm: str, epoch: int, episodes: int, seconds: float) -> EpochResult:
    return EpochResult(algorithm, epoch, episodes, seconds, episodes / seconds if seconds else math.inf)


def _progress_line(row: EpochResult) -> str:
    return (
        f"{row.algorithm:>10}  epoch {row.epoch:>3}  {row.episodes} episodes  "
        f"{row.seconds:8.3f} s  {row.episodes_per_second:12,.0f} episodes/s"
    )


def run_bench(config: BenchConfig, progress: Callable[[str], None] | None = None) -> BenchResult:
    if progress is None:
        def progress(line: str) -> None:
            print(line, file=sys.stderr, flush=True)
    result = BenchResult(config)
    progress(
        f"lptrack bench: {config.tasks} tasks, {config.episodes_per_epoch} episodes x "
        f"{config.epochs} epochs, {config.workers} worker(s), batch {config.batch}, pid {os.getpid()}"
    )
    for algorithm in config.algorithms:
        latencies = CallLatencies() if config.latency else None
        result.rows.extend(run_algorithm(algorithm, config, progress, latencies))
        if latencies is not None:
            result.latencies[algorithm] = latencies
    return result


def format_table(result: BenchResult) -> str:
    """The stdout report: episodes/s per algorithm and epoch, then the summary."""
    grouped = result.by_algorithm()
    epochs = result.config.epochs
    header = f"{'algorithm':<10} " + " ".join(f"{'epoch ' + str(e):>12}" for e in range(epochs))
    lines = ["episodes per second", header, "-" * len(header)]
    for algorithm, rows in grouped.items():
        lines.append(
            f"{algorithm:<10} " + " ".join(f"{r.episodes_per_second:12,.0f}" for r in rows)
        )
    lines.append("")
    summary = result.summary()
    for algorithm, s in summary.items():
        parts = [
            f"median {s['median_episodes_per_second']:,.0f} episodes/s",
            f"first->last epoch {s['first_to_last_change']:+.1%}",
        ]
        if "cost_vs_discrete" in s:
            parts.append(f"cost vs discrete {s['cost_vs_discrete']:.2f}x")
        if "speedup_vs_lp_python" in s:
            parts.append(f"speed-up vs lp-python {s['speedup_vs_lp_python']:.1f}x")
        lines.append(f"{algorithm:<10} " + ", ".join(parts))
    if result.latencies:
        lines += ["", "per-call latency (every call of every worker; the clock reads add about 0.1 us)"]
        lines += [format_latencies(algorithm, l) for algorithm, l in result.latencies.items()]
    return "\n".join(lines)


def require_matplotlib() -> None:
    """Fail early, before a long run, when ``--plot`` cannot be honoured."""
    if importlib.util.find_spec("matplotlib") is None:
        raise RuntimeError("--plot needs matplotlib: pip install 'lptrack[plot]'")


def write_plot(result: BenchResult, path: str) -> None:
    """Episodes/s over epochs per algorithm, as a PNG (needs the ``plot`` extra)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    for algorithm, rows in result.by_algorithm().items():
        ax.plot([r.epoch for r in rows], [r.episodes_per_second for r in rows], marker="o", label=algorithm)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("episodes per second (log)")
    c = result.config
    ax.set_title(f"lptrack bench: {c.tasks} tasks, {c.workers} worker(s), batch {c.batch}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- two processes on one session, measured against one -------------------------------------------

@dataclass(frozen=True)
class ScalingResult:
    """Episodes per second of one process alone and of two together, per round.

    Each round runs, back to back: one worker alone on the session (``solo``),
    two workers sharing it (``shared``), and two on separate sessions
    (``independent``, what the machine's two cores allow at that moment).
    Rounds interleave the three, so a change of machine speed (shared hosts
    drift by tens of percent) moves all three alike.
    """

    solo: list[float]
    shared: list[float]
    independent: list[float]

    @property
    def shared_speedup(self) -> float:
        """Median over rounds of (two sharing a session) / (one alone)."""
        return statistics.median(s / o for s, o in zip(self.shared, self.solo))

    @property
    def independent_speedup(self) -> float:
        """Median over rounds of (two on separate sessions) / (one alone)."""
        return statistics.median(i / o for i, o in zip(self.independent, self.solo))


def _scaling_worker(session_id: str, worker: int, tasks: int, episodes: int, rounds: int,
                    barrier: Any, results: Any) -> None:
    curriculum = Curriculum(
        make_curriculum_config("lp-native", BenchConfig(tasks=tasks, workers=2), session_id),
        num_active_tasks=tasks,
        seed=1000 * (worker + 1),
    )
    agent = SimulatedAgent(worker)
    try:
        run_episodes(curriculum, agent, 30 * tasks)  # full pool, churning (evictions from 20 presentations)
        for round_ in range(rounds):
            for phase, members in (("solo", (0,)), ("shared", (0, 1)), ("independent", (0, 2))):
                barrier.wait(BARRIER_TIMEOUT_S)
                if worker in members:
                    results.put((round_, phase, worker, run_episodes(curriculum, agent, episodes)))
        barrier.wait(BARRIER_TIMEOUT_S)
    finally:
        curriculum.close()


def measure_session_scaling(tasks: int = 1000, episodes: int = 20000, rounds: int = 9,
                            context: str = "spawn") -> ScalingResult:
    """Interleaved rounds of one worker alone, two sharing its session, two on separate
    sessions (lp-native, ``episodes`` per worker and phase); see ScalingResult."""
    ctx = mp.get_context(context)
    sessions = [f"bench_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    # The parent creates both sessions, so their lifetimes span every worker's.
    owners = [
        Curriculum(make_curriculum_config("lp-native", BenchConfig(tasks=tasks, workers=2), s), num_active_tasks=tasks)
        for s in sessions
    ]
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_scaling_worker, args=(sessions[w // 2], w, tasks, episodes, rounds, barrier, results),
                    name=f"lptrack-scaling-{w}")
        for w in range(3)
    ]
    try:
        for p in workers:
            p.start()
        seconds: dict[tuple[int, str], list[float]] = {}
        for _ in range(5 * rounds):  # solo 1 + shared 2 + independent 2 per round
            round_, phase, _worker, elapsed = results.get(timeout=BARRIER_TIMEOUT_S)
            seconds.setdefault((round_, phase), []).append(elapsed)
        for p in workers:
            p.join(BARRIER_TIMEOUT_S)
            if p.exitcode != 0:
                raise RuntimeError(f"scaling worker {p.name} exited with code {p.exitcode}")
    finally:
        for p in workers:
            if p.is_alive():
                p.kill()
                p.join()
        for owner in owners:
            owner.close()
    # A phase's rate: its episodes over the slowest member's time.
    return ScalingResult(
        solo=[episodes / seconds[(r, "solo")][0] for r in range(rounds)],
        shared=[2 * episodes / max(seconds[(r, "shared")]) for r in range(rounds)],
        independent=[2 * episodes / max(seconds[(r, "independent")]) for r in range(rounds)],
    )
