"""``lptrack bench --env ENV_ID``: real environment steps with random actions, through ``lptrack.gym``.

Where ``lptrack bench`` times the curriculum's share of a simulated episode,
this runs a gymnasium environment: every episode takes its task from the
curriculum at reset (``CurriculumWrapper``; for CartPole a task sets the pole
length, gravity and push force) and reports its return at the end.  What is
timed is everything a trainer waits for: env steps, resets, the curriculum and,
with ``--workers N`` > 1, the ``AsyncVectorEnv`` round trips to N worker
processes that share one pool (a session the main process creates).  One
worker runs the env in this process.

Algorithms:

* ``none``: the bare env, no wrapper and no curriculum (the env's own cost);
* ``discrete``, ``lp-python``, ``lp-native``: as in ``lptrack bench``
  (uniform sampling; learning progress before the fix; after it).

Every algorithm's envs are built first and stay up; each epoch then runs in
``ROUNDS_PER_EPOCH`` rounds, every algorithm taking its turn for a tenth of its
steps in each round (the order rotating from round to round), so that a drift
of the host's speed moves them alike; the ratios between algorithms are
medians over rounds of turns run side by side.  Actions are random, drawn
before the clock of each turn starts.
"""

from __future__ import annotations

import functools
import math
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from . import benchmark
from .curriculum import Curriculum

ALGORITHMS = ("none",) + benchmark.ALGORITHMS

#: How long the parent waits for one vector step, reset or close of its workers.
WAIT_TIMEOUT_S = 600.0

#: Each epoch interleaves the algorithms in this many rounds.
ROUNDS_PER_EPOCH = 10

#: ``--quick`` with ``--env``: a smoke run of every algorithm.
QUICK = dict(tasks=200, steps_per_epoch=2000, epochs=3)


@dataclass(frozen=True)
class EnvBenchConfig:
    env: str = "CartPole-v1"
    tasks: int = 1000
    #: Env steps per epoch and algorithm, over all workers (about 2,000 random CartPole
    #: episodes: learning progress scores most of a 1,000-task pool from the 5th epoch).
    steps_per_epoch: int = 50000
    epochs: int = 10
    workers: int = 1
    batch: int = 100
    #: As in ``lptrack bench``: the config's default (the Curriculum may evict from twice that).
    min_samples_for_lp: int = benchmark.BenchConfig.min_samples_for_lp
    #: perf_invalidation_batch_fraction of lp-native, as in ``lptrack bench``.
    batch_fraction: float = benchmark.BenchConfig.batch_fraction
    algorithms: tuple[str, ...] = ALGORITHMS
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("tasks", "steps_per_epoch", "epochs", "workers", "batch", "min_samples_for_lp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.steps_per_epoch < self.workers * ROUNDS_PER_EPOCH:
            raise ValueError(
                f"steps_per_epoch must be >= {ROUNDS_PER_EPOCH} x workers "
                f"({self.workers * ROUNDS_PER_EPOCH}), got {self.steps_per_epoch}"
            )
        unknown = [a for a in self.algorithms if a not in ALGORITHMS]
        if unknown or not self.algorithms or len(set(self.algorithms)) != len(self.algorithms):
            raise ValueError(
                f"algorithms must be distinct names of {', '.join(ALGORITHMS)}; got {list(self.algorithms)}"
            )


@dataclass
class EnvEpochResult:
    algorithm: str
    epoch: int
    steps: int
    episodes: int
    seconds: float
    steps_per_second: float
    episodes_per_second: float


@dataclass
class EnvTurn:
    """One algorithm's turn in one round of an epoch."""

    algorithm: str
    epoch: int
    round: int
    steps: int
    episodes: int
    seconds: float


@dataclass
class EnvBenchResult:
    config: EnvBenchConfig
    rows: list[EnvEpochResult] = field(default_factory=list)
    turns: list[EnvTurn] = field(default_factory=list)

    def by_algorithm(self) -> dict[str, list[EnvEpochResult]]:
        grouped: dict[str, list[EnvEpochResult]] = {a: [] for a in self.config.algorithms}
        for row in self.rows:
            grouped[row.algorithm].append(row)
        return {a: sorted(rows, key=lambda r: r.epoch) for a, rows in grouped.items() if rows}

    def summary(self) -> dict[str, Any]:
        """Per algorithm: median steps/s and episodes/s over epochs, the change from the first
        to the last epoch; and ``steps_ratio_vs_discrete`` / ``_vs_none``: the median over
        rounds of the algorithm's steps/s over the baseline's in the same round (turns a
        fraction of a second apart, so a drift of the host moves both alike)."""
        grouped = self.by_algorithm()
        out: dict[str, Any] = {}
        for algorithm, rows in grouped.items():
            first, last = rows[0].steps_per_second, rows[-1].steps_per_second
            out[algorithm] = {
                "median_steps_per_second": statistics.median(r.steps_per_second for r in rows),
                "median_episodes_per_second": statistics.median(r.episodes_per_second for r in rows),
                "first_epoch_steps_per_second": first,
                "last_epoch_steps_per_second": last,
                "first_to_last_change": (last - first) / first if first > 0 else math.nan,
            }
        rates: dict[tuple[int, int], dict[str, float]] = {}
        for turn in self.turns:
            if turn.seconds > 0:
                rates.setdefault((turn.epoch, turn.round), {})[turn.algorithm] = turn.steps / turn.seconds
        for baseline in ("discrete", "none"):
            for algorithm in out:
                ratios = [r[algorithm] / r[baseline] for r in rates.values()
                          if algorithm in r and baseline in r and algorithm != baseline]
                if ratios:
                    out[algorithm][f"steps_ratio_vs_{baseline}"] = statistics.median(ratios)
        return out

    def to_json(self) -> dict[str, Any]:
        config = asdict(self.config)
        config["algorithms"] = list(self.config.algorithms)
        return {
            "config": config,
            "rows": [asdict(r) for r in self.rows],
            "turns": [asdict(t) for t in self.turns],
            "summary": self.summary(),
        }


# -- the environments ---------------------------------------------------------------------------
def cartpole_task(task_id: int) -> dict[str, Any]:
    """A CartPole variant drawn from the task id: pole half-length, gravity, push force."""
    rng = random.Random(task_id)
    length = rng.uniform(0.25, 1.0)
    return {
        "length": length,
        "gravity": rng.uniform(4.9, 14.7),
        "force_mag": rng.uniform(5.0, 15.0),
        "label": "long_pole" if length > 0.625 else "short_pole",
    }


def apply_cartpole_task(env: Any, task: Any) -> None:
    cartpole = env.unwrapped
    cfg = task.env_cfg
    cartpole.length = cfg["length"]
    cartpole.polemass_length = cartpole.masspole * cartpole.length
    cartpole.gravity = cfg["gravity"]
    cartpole.force_mag = cfg["force_mag"]


def apply_nothing(env: Any, task: Any) -> None:
    """Other envs run unchanged: the curriculum still chooses and scores every episode's task."""


def _is_cartpole(env_id: str) -> bool:
    return env_id.split("/")[-1].startswith("CartPole")


def make_env(env_id: str, make_curriculum: Callable[[], Curriculum] | None) -> Any:
    """The env of one worker: bare (``make_curriculum`` None) or wrapped by the curriculum."""
    import gymnasium

    from .gym import ClippedReturn, CurriculumWrapper

    env = gymnasium.make(env_id)
    if make_curriculum is None:
        return env
    # Scores in [0, 1]: the return over the episode's step limit (CartPole: 1 reward a step).
    limit = env.spec.max_episode_steps if env.spec is not None else None
    score = ClippedReturn(0.0, float(limit)) if limit else ClippedReturn()
    apply_task = apply_cartpole_task if _is_cartpole(env_id) else apply_nothing
    return CurriculumWrapper(env, make_curriculum, apply_task, score)


def _curriculum_factory(
    algorithm: str, config: EnvBenchConfig, session_id: str | None, worker: int
) -> Callable[[], Curriculum] | None:
    if algorithm == "none":
        return None
    algorithm_config = benchmark.make_curriculum_config(
        algorithm,
        benchmark.BenchConfig(tasks=config.tasks, workers=config.workers, batch=config.batch,
                              min_samples_for_lp=config.min_samples_for_lp,
                              batch_fraction=config.batch_fraction),
        session_id,
    )
    return functools.partial(
        Curriculum, algorithm_config, num_active_tasks=config.tasks,
        task_factory=cartpole_task if _is_cartpole(config.env) else None,
        seed=config.seed + 1000 * worker,
    )


class _InProcessRunner:
    """One env stepped in this process (``--workers 1``)."""

    def __init__(self, algorithm: str, config: EnvBenchConfig) -> None:
        self.env = make_env(config.env, _curriculum_factory(algorithm, config, None, 0))
        self.env.action_space.seed(config.seed)
        self.env.reset(seed=config.seed)

    def actions(self, steps: int) -> list[Any]:
        sample = self.env.action_space.sample
        return [sample() for _ in range(steps)]

    def run(self, actions: list[Any]) -> tuple[float, int]:
        env = self.env
        step, reset = env.step, env.reset
        episodes = 0
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = step(action)
            if terminated or truncated:
                episodes += 1
                reset()
        return time.perf_counter() - start, episodes

    def close(self) -> None:
        self.env.close()


class _VectorRunner:
    """``AsyncVectorEnv`` with ``config.workers`` worker processes (spawn) that reset in the
    step that ends an episode, so every vector step is ``workers`` real env steps."""

    def __init__(self, algorithm: str, config: EnvBenchConfig) -> None:
        import gymnasium
        from gymnasium.vector import AutoresetMode

        self.owner: Curriculum | None = None
        session_id = None
        if algorithm in ("lp-python", "lp-native"):
            # The main process creates the session, so the pool outlives every worker.
            session_id = benchmark.new_session_id()
            self.owner = _curriculum_factory(algorithm, config, session_id, config.workers)()
        try:
            self.envs = gymnasium.vector.AsyncVectorEnv(
                [functools.partial(make_env, config.env, _curriculum_factory(algorithm, config, session_id, w))
                 for w in range(config.workers)],
                context="spawn",
                autoreset_mode=AutoresetMode.SAME_STEP,
            )
            self.envs.action_space.seed(config.seed)
            self.envs.reset_async(seed=config.seed)
            self.envs.reset_wait(timeout=WAIT_TIMEOUT_S)
        except BaseException:
            if self.owner is not None:
                self.owner.close()
            raise

    def actions(self, steps: int) -> list[Any]:
        sample = self.envs.action_space.sample
        return [sample() for _ in range(steps // self.envs.num_envs)]

    def run(self, actions: list[Any]) -> tuple[float, int]:
        envs = self.envs
        step_async, step_wait = envs.step_async, envs.step_wait
        episodes = 0
        start = time.perf_counter()
        for action in actions:
            step_async(action)
            _, _, terminated, truncated, _ = step_wait(timeout=WAIT_TIMEOUT_S)
            episodes += int((terminated | truncated).sum())
        return time.perf_counter() - start, episodes

    def close(self) -> None:
        try:
            self.envs.close(timeout=WAIT_TIMEOUT_S)
        finally:
            if self.owner is not None:
                self.owner.close()


def require_gymnasium() -> None:
    """Fail early, with the fix, when ``--env`` cannot run."""
    try:
        import gymnasium  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("lptrack bench --env needs gymnasium: pip install 'lptrack[gym]'") from exc


def run_env_bench(config: EnvBenchConfig, progress: Callable[[str], None] | None = None) -> EnvBenchResult:
    """Run the benchmark; ``progress`` gets a line per algorithm and epoch (default: stderr)."""
    if progress is None:
        def progress(line: str) -> None:
            print(line, file=sys.stderr, flush=True)
    require_gymnasium()
    import gymnasium

    try:
        gymnasium.spec(config.env)
    except gymnasium.error.Error as exc:
        raise ValueError(f"unknown gymnasium env {config.env!r}: {exc}") from exc
    progress(
        f"lptrack bench --env {config.env}: {config.tasks} tasks, {config.steps_per_epoch} steps x "
        f"{config.epochs} epochs, {config.workers} worker(s), batch {config.batch}"
    )
    runner_type = _InProcessRunner if config.workers == 1 else _VectorRunner
    result = EnvBenchResult(config)
    runners: dict[str, Any] = {}
    try:
        for algorithm in config.algorithms:
            runners[algorithm] = runner_type(algorithm, config)
        order = list(config.algorithms)
        turn_steps = config.steps_per_epoch // ROUNDS_PER_EPOCH
        for epoch in range(config.epochs):
            totals = {algorithm: [0, 0, 0.0] for algorithm in order}  # steps, episodes, seconds
            for round_ in range(ROUNDS_PER_EPOCH):
                rotation = (epoch * ROUNDS_PER_EPOCH + round_) % len(order)
                for algorithm in order[rotation:] + order[:rotation]:
                    runner = runners[algorithm]
                    actions = runner.actions(turn_steps)
                    seconds, episodes = runner.run(actions)
                    steps = len(actions) * config.workers
                    result.turns.append(EnvTurn(algorithm, epoch, round_, steps, episodes, seconds))
                    total = totals[algorithm]
                    total[0] += steps
                    total[1] += episodes
                    total[2] += seconds
            for algorithm in order:
                steps, episodes, seconds = totals[algorithm]
                row = EnvEpochResult(algorithm, epoch, steps, episodes, seconds,
                                     steps / seconds, episodes / seconds)
                result.rows.append(row)
                progress(
                    f"{algorithm:>10}  epoch {epoch:>3}  {steps} steps  {episodes:>6} episodes  "
                    f"{seconds:8.3f} s  {row.steps_per_second:10,.0f} steps/s  "
                    f"{row.episodes_per_second:8,.0f} episodes/s"
                )
    finally:
        for runner in runners.values():
            runner.close()
    return result


def format_table(result: EnvBenchResult) -> str:
    """The stdout report: steps/s and episodes/s per algorithm and epoch, then the summary."""
    grouped = result.by_algorithm()
    header = f"{'algorithm':<10} " + " ".join(f"{'epoch ' + str(e):>10}" for e in range(result.config.epochs))
    lines = []
    for title, attribute in (("steps per second", "steps_per_second"),
                             ("episodes per second", "episodes_per_second")):
        lines += [title, header, "-" * len(header)]
        for algorithm, rows in grouped.items():
            lines.append(f"{algorithm:<10} " + " ".join(f"{getattr(r, attribute):10,.0f}" for r in rows))
        lines.append("")
    for algorithm, s in result.summary().items():
        parts = [
            f"median {s['median_steps_per_second']:,.0f} steps/s",
            f"{s['median_episodes_per_second']:,.0f} episodes/s",
            f"first->last epoch {s['first_to_last_change']:+.1%}",
        ]
        for baseline in ("discrete", "none"):
            if f"steps_ratio_vs_{baseline}" in s:
                parts.append(f"steps/s vs {baseline} {s[f'steps_ratio_vs_{baseline}']:.3f}x")
        lines.append(f"{algorithm:<10} " + ", ".join(parts))
    return "\n".join(lines)


def write_plot(result: EnvBenchResult, path: str) -> None:
    """Steps/s and episodes/s over epochs per algorithm, as a PNG (needs the ``plot`` extra)."""
    benchmark.require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, attribute in zip(axes, ("steps_per_second", "episodes_per_second")):
        for algorithm, rows in result.by_algorithm().items():
            ax.plot([r.epoch for r in rows], [getattr(r, attribute) for r in rows], marker="o", label=algorithm)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(attribute.replace("_", " ") + " (log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    c = result.config
    fig.suptitle(f"lptrack bench --env {c.env}: {c.tasks} tasks, {c.workers} worker(s), batch {c.batch}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
