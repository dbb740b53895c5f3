"""Steady-state pools and per-call latency, for ``lptrack bench`` and ``bench/``.

A trainer's pool after hours is mature: most of its tasks have been played
often enough to be scored by learning progress, so every distribution pass
has the whole pool to score.  The episode-loop benchmarks time young pools
(a few episodes per task); the functions here first *warm* a pool with
``warm`` episodes per task of the same simulated training, then time it:

* ``measure_steady_state``: microseconds per episode of learning progress
  (lp-native) and of uniform sampling (discrete) on warmed pools, in
  interleaved rounds (each LP round right after a uniform one, so both see
  the same machine speed), with the median of the per-round ratios;
* ``measure_call_latency``: per-call latency percentiles (p50, p99, max) of
  ``get_task`` and ``update_task_performance`` in one process while another
  process of the same session runs its own episode loop, and so its
  distribution passes, on the same pool.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from array import array
from dataclasses import dataclass
from typing import Any

from ._table import COMPLETION_COUNT
from .curriculum import Curriculum, DiscreteRandomCurriculumConfig


class CallLatencies:
    """Nanoseconds of every ``get_task`` and ``update_task_performance`` call timed,
    and the longest of their waits for the session's lock (when the table tells)."""

    def __init__(self) -> None:
        self.get_task = array("q")
        self.update = array("q")
        # None: no learning-progress table was timed (uniform sampling has none).
        self.longest_lock_wait_ns: int | None = None
        self.longest_pass_hold_ns: int | None = None

    def extend(self, other: CallLatencies) -> None:
        self.get_task.extend(other.get_task)
        self.update.extend(other.update)
        self.longest_lock_wait_ns = _larger(self.longest_lock_wait_ns, other.longest_lock_wait_ns)
        self.longest_pass_hold_ns = _larger(self.longest_pass_hold_ns, other.longest_pass_hold_ns)

    def summary(self) -> dict[str, Any]:
        """Per call: p50, p99 and max in microseconds, and how many calls; the
        longest lock wait and the longest lock hold of a pass, in microseconds."""
        out: dict[str, Any] = {name: _percentiles(getattr(self, name)) for name in ("get_task", "update")}
        for name in ("longest_lock_wait", "longest_pass_hold"):
            ns = getattr(self, f"{name}_ns")
            out[f"{name}_us"] = None if ns is None else ns / 1000
        return out

    def __reduce__(self):
        return (_latencies_from, (self.get_task.tobytes(), self.update.tobytes(),
                                  self.longest_lock_wait_ns, self.longest_pass_hold_ns))


def _larger(a: int | None, b: int | None) -> int | None:
    return a if b is None else b if a is None else max(a, b)


def _latencies_from(get_task: bytes, update: bytes, longest_lock_wait_ns: int,
                    longest_pass_hold_ns: int) -> CallLatencies:
    latencies = CallLatencies()
    latencies.get_task.frombytes(get_task)
    latencies.update.frombytes(update)
    latencies.longest_lock_wait_ns = longest_lock_wait_ns
    latencies.longest_pass_hold_ns = longest_pass_hold_ns
    return latencies


def _percentiles(ns: array) -> dict[str, float]:
    if not ns:
        return {"calls": 0, "p50_us": float("nan"), "p99_us": float("nan"), "max_us": float("nan")}
    ordered = sorted(ns)
    n = len(ordered)

    def at(q: float) -> float:  # nearest rank
        return ordered[min(n - 1, max(0, int(q / 100 * n + 0.5) - 1))] / 1000

    return {"calls": n, "p50_us": at(50), "p99_us": at(99), "max_us": ordered[-1] / 1000}


def format_latencies(name: str, latencies: CallLatencies) -> str:
    """One line per call: ``name get_task p50 ... p99 ... max ... us``."""
    lines = []
    summary = latencies.summary()
    for call in ("get_task", "update"):
        s = summary[call]
        lines.append(
            f"{name:<10} {call:<8} p50 {s['p50_us']:8.2f} us  p99 {s['p99_us']:8.2f} us  "
            f"max {s['max_us']:10.1f} us  ({s['calls']:,} calls)"
        )
    if summary["longest_lock_wait_us"] is not None:
        lines.append(f"{name:<10} longest lock wait {summary['longest_lock_wait_us']:.1f} us, "
                     f"longest lock hold of a pass {summary['longest_pass_hold_us']:.1f} us")
    return "\n".join(lines)


def _table_of(curriculum: Curriculum) -> Any:
    """The learning-progress pool's table (None for other algorithms)."""
    tracker = getattr(curriculum.algorithm, "task_tracker", None)
    return None if tracker is None else tracker.table


def run_episodes_timed(curriculum: Curriculum, agent: Any, episodes: int, latencies: CallLatencies) -> float:
    """``benchmark.run_episodes`` with every curriculum call timed into ``latencies``,
    and the table's longest lock wait over them; returns the seconds spent (the
    clock reads included)."""
    table = _table_of(curriculum)
    if table is not None and hasattr(table, "longest_lock_wait_ns"):
        table.longest_lock_wait_ns = table.longest_pass_hold_ns = 0
    else:
        table = None
    get_task = curriculum.get_task
    update = curriculum.update_task_performance
    play = agent.play
    clock = time.perf_counter_ns
    get_ns = latencies.get_task.append
    update_ns = latencies.update.append
    start = time.perf_counter()
    for _ in range(episodes):
        t0 = clock()
        task_id = get_task()._task_id
        t1 = clock()
        score = play(task_id)
        t2 = clock()
        update(task_id, score)
        t3 = clock()
        get_ns(t1 - t0)
        update_ns(t3 - t2)
    seconds = time.perf_counter() - start
    if table is not None:
        latencies.longest_lock_wait_ns = _larger(latencies.longest_lock_wait_ns, table.longest_lock_wait_ns)
        latencies.longest_pass_hold_ns = _larger(latencies.longest_pass_hold_ns, table.longest_pass_hold_ns)
    return seconds


def warm_up(curriculum: Curriculum, agent: Any, episodes_per_task: int) -> None:
    """Play ``episodes_per_task`` episodes per pool slot (untimed)."""
    get_task = curriculum.get_task
    update = curriculum.update_task_performance
    play = agent.play
    for _ in range(episodes_per_task * curriculum.num_active_tasks):
        task_id = get_task()._task_id
        update(task_id, play(task_id))


def scored_fraction(curriculum: Curriculum) -> float:
    """The share of a learning-progress pool's tasks that learning progress scores
    (completion_count >= min_samples_for_lp); NaN for other algorithms."""
    table = _table_of(curriculum)
    if table is None:
        return float("nan")
    slots = table.active_slots()
    if len(slots) == 0:
        return 0.0
    counts = table.rows[slots, COMPLETION_COUNT]
    return float((counts >= curriculum.algorithm.hypers.min_samples_for_lp).mean())


@dataclass(frozen=True)
class SteadyStateResult:
    """Seconds per round of ``episodes`` episodes, uniform and LP, interleaved."""

    tasks: int
    warm: int
    episodes: int
    batch: int
    scored_fraction: float
    uniform: list[float]
    lp: list[float]

    @property
    def uniform_us(self) -> float:
        return statistics.median(self.uniform) / self.episodes * 1e6

    @property
    def lp_us(self) -> float:
        return statistics.median(self.lp) / self.episodes * 1e6

    @property
    def ratio(self) -> float:
        """Median over rounds of LP time / uniform time."""
        return statistics.median(lp / u for lp, u in zip(self.lp, self.uniform))

    @property
    def total_ratio(self) -> float:
        """All LP rounds' time / all uniform rounds' time: counts every pass, also
        when fewer rounds than not hold one (batches longer than a round)."""
        return sum(self.lp) / sum(self.uniform)

    def line(self) -> str:
        return (
            f"{self.tasks:>9,} tasks  warm {self.warm}/task  scored {self.scored_fraction:5.1%}  "
            f"uniform {self.uniform_us:6.2f} us  lp {self.lp_us:6.2f} us  "
            f"ratio {self.ratio:5.2f}x  (median of {len(self.lp)} rounds of {self.episodes}; "
            f"all rounds {self.total_ratio:5.2f}x)"
        )


def lp_config(tasks: int, batch: int, min_samples_for_lp: int, session_id: str | None = None, **extra: Any):
    """lp-native as ``lptrack bench`` runs it."""
    from .config import LearningProgressConfig

    return LearningProgressConfig(
        engine="native",
        num_active_tasks=tasks,
        min_samples_for_lp=min_samples_for_lp,
        perf_invalidation_batch_size=batch,
        use_shared_memory=session_id is not None,
        session_id=session_id,
        **extra,
    )


def measure_steady_state(tasks: int, warm: int = 60, episodes: int = 2000, rounds: int = 15,
                         batch: int = 100, min_samples_for_lp: int = 3, seed: int = 0,
                         **lp_options: Any) -> SteadyStateResult:
    """Warm a uniform and an LP pool of ``tasks`` tasks, then time ``rounds``
    interleaved rounds of ``episodes`` episodes each (see the module doc).
    Rounds of at least two batches each count the passes in every round."""
    from .benchmark import SimulatedAgent, run_episodes

    uniform = Curriculum(DiscreteRandomCurriculumConfig(), num_active_tasks=tasks, seed=seed)
    lp = Curriculum(lp_config(tasks, batch, min_samples_for_lp, **lp_options), num_active_tasks=tasks, seed=seed)
    try:
        agents = SimulatedAgent(seed), SimulatedAgent(seed)
        warm_up(uniform, agents[0], warm)
        warm_up(lp, agents[1], warm)
        uniform_s: list[float] = []
        lp_s: list[float] = []
        for _ in range(rounds):
            uniform_s.append(run_episodes(uniform, agents[0], episodes))
            lp_s.append(run_episodes(lp, agents[1], episodes))
        return SteadyStateResult(tasks, warm, episodes, batch, scored_fraction(lp), uniform_s, lp_s)
    finally:
        lp.close()
        uniform.close()


# -- two processes on one session: per-call latency ------------------------------------------------

def _background_worker(session_id: str, tasks: int, batch: int, min_samples_for_lp: int,
                       lp_options: dict[str, Any], ready: Any, stop: Any) -> None:
    from .benchmark import SimulatedAgent, run_episodes

    curriculum = Curriculum(lp_config(tasks, batch, min_samples_for_lp, session_id, **lp_options),
                            num_active_tasks=tasks, seed=7)
    agent = SimulatedAgent(7)
    try:
        run_episodes(curriculum, agent, 100)
        ready.set()
        while not stop.is_set():
            run_episodes(curriculum, agent, 200)
    finally:
        curriculum.close()


@dataclass
class LatencyResult:
    tasks: int
    warm: int
    scored_fraction: float
    alone: CallLatencies
    shared: CallLatencies

    def lines(self) -> str:
        return "\n".join([
            f"{self.tasks:,} tasks, warm {self.warm}/task, scored {self.scored_fraction:.1%}",
            format_latencies("alone", self.alone),
            format_latencies("shared", self.shared),
        ])


def measure_call_latency(tasks: int = 100_000, warm: int = 20, episodes: int = 20_000,
                         batch: int = 100, min_samples_for_lp: int = 3,
                         context: str = "spawn", **lp_options: Any) -> LatencyResult:
    """Per-call latencies of a worker on a warmed shared pool: first alone, then
    while a second process of the session runs its episode loop (and so its
    passes) on the same pool.  ``lp_options``: more LearningProgressConfig fields."""
    from .benchmark import BARRIER_TIMEOUT_S, SimulatedAgent, new_session_id

    ctx = mp.get_context(context)
    session_id = new_session_id()
    curriculum = Curriculum(lp_config(tasks, batch, min_samples_for_lp, session_id, **lp_options),
                            num_active_tasks=tasks, seed=0)
    agent = SimulatedAgent(0)
    ready, stop = ctx.Event(), ctx.Event()
    other = None
    try:
        warm_up(curriculum, agent, warm)
        alone = CallLatencies()
        run_episodes_timed(curriculum, agent, episodes, alone)
        other = ctx.Process(target=_background_worker, name="lptrack-latency-background",
                            args=(session_id, tasks, batch, min_samples_for_lp, lp_options, ready, stop))
        other.start()
        if not ready.wait(BARRIER_TIMEOUT_S):
            raise RuntimeError("the background worker did not start")
        shared = CallLatencies()
        run_episodes_timed(curriculum, agent, episodes, shared)
        stop.set()
        other.join(BARRIER_TIMEOUT_S)
        if other.exitcode != 0:
            raise RuntimeError(f"background worker exited with code {other.exitcode}")
        return LatencyResult(tasks, warm, scored_fraction(curriculum), alone, shared)
    finally:
        stop.set()
        if other is not None and other.is_alive():
            other.kill()
            other.join(5)
        curriculum.close()
