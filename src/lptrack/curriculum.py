"""The trainer-facing pool manager: create tasks until the pool is full, then evict and sample.

``Curriculum`` drives any algorithm that implements :class:`PoolAlgorithm`: the
learning-progress algorithm (``LearningProgressConfig``) or the uniform baseline
(``DiscreteRandomCurriculumConfig``, the default).  The pool itself lives in the
algorithm (for learning progress: the tracker's table, shared by every process
of a session), so several worker processes each holding a ``Curriculum`` on one
session draw from, evict from and fill one pool.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Protocol

from .algorithm import CurriculumTask, NullStatsLogger, warn_score_out_of_range
from .config import LearningProgressConfig

#: Task ids are drawn uniformly from [1, 2**53): exactly representable in a float64 row.
TASK_ID_BITS = 53
#: get_task gives up after this many picks that found their free slot taken by
#: another process (each such pick means the pool just gained a task).
_MAX_CHOICES = 1000


class PoolAlgorithm(Protocol):
    """What ``Curriculum`` needs of an algorithm (no per-task Python loops behind any of it)."""

    def pool_size(self) -> int: ...
    def choose_pool_task(self, uniform: float, min_presentations: int) -> int:
        """0: create a task; ``-task_id``: that task was evicted (on_task_evicted
        included), create one; else a task id sampled (on_task_sampled included)."""
        ...
    @property
    def chosen_slot(self) -> int:
        """The pool slot of the task the last choose_pool_task sampled or evicted."""
        ...
    def add_pool_task(self, task: CurriculumTask, sampled: bool = False) -> int:
        """Track a new task: its slot (-1: the pool is full); ``sampled``: it is
        handed out next (on_task_sampled included)."""
        ...
    def update_task_performance(self, task_id: int, score: float) -> None: ...
    def stats(self, prefix: str = "") -> dict[str, float]: ...
    def get_state(self) -> dict[str, Any]: ...
    def load_state(self, state: dict[str, Any]) -> None: ...
    def cleanup_shared_memory(self) -> None: ...


class _DefaultEnvConfig:
    """The environment config a task gets when no ``task_factory`` is given."""

    label = "default"
    __slots__ = ("task_id",)  # one is made per task created or adopted

    def __init__(self, task_id: int) -> None:
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"_DefaultEnvConfig(task_id={self.task_id})"


class DiscreteRandomCurriculumConfig:
    """The uniform baseline: a per-process pool, sampled uniformly, never evicted."""

    type = "discrete_random"

    def algorithm_type(self) -> str:
        return self.type

    def model_dump(self) -> dict[str, Any]:
        return {"type": self.type}

    def create(self, num_tasks: int, stats_logger: Any = None) -> DiscreteRandomAlgorithm:
        return DiscreteRandomAlgorithm(num_tasks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DiscreteRandomCurriculumConfig)

    def __hash__(self) -> int:
        return hash(self.type)

    def __repr__(self) -> str:
        return "DiscreteRandomCurriculumConfig()"


class DiscreteRandomAlgorithm:
    """Uniform sampling over a pool kept in this process (a list plus positions: O(1) ops)."""

    def __init__(self, num_tasks: int) -> None:
        if num_tasks <= 0:
            raise ValueError(f"num_tasks must be > 0, got {num_tasks}")
        self.num_tasks = num_tasks
        self._task_ids: list[int] = []
        self._position: dict[int, int] = {}
        self._completions = 0
        self._sum_scores = 0.0
        #: The position of the task the last choose_pool_task sampled (-1: none).
        self.chosen_slot = -1

    def pool_size(self) -> int:
        return len(self._task_ids)

    def on_task_created(self, task: CurriculumTask) -> None:
        self.add_pool_task(task)

    def add_pool_task(self, task: CurriculumTask, sampled: bool = False) -> int:
        """Track the task; its position in the pool list is its slot (-1: full)."""
        task_id = task._task_id
        position = self._position.get(task_id)
        if position is not None:
            return position
        if len(self._task_ids) >= self.num_tasks:
            return -1
        position = self._position[task_id] = len(self._task_ids)
        self._task_ids.append(task_id)
        return position

    def on_task_evicted(self, task_id: int) -> None:
        self.evict_pool_task(task_id)

    def evict_pool_task(self, task_id: int) -> bool:
        position = self._position.pop(task_id, None)
        if position is None:
            return False
        last = self._task_ids.pop()
        if last != task_id:
            self._task_ids[position] = last
            self._position[last] = position
        return True

    def on_task_sampled(self, task_id: int) -> None:
        pass

    def choose_pool_task(self, uniform: float, min_presentations: int) -> int:
        """Create until full, then sample uniformly; never evict."""
        task_ids = self._task_ids
        if len(task_ids) < self.num_tasks:
            self.chosen_slot = -1
            return 0
        position = self.chosen_slot = int(uniform * len(task_ids))
        return task_ids[position]

    def update_task_performance(self, task_id: int, score: float) -> None:
        self._completions += 1
        self._sum_scores += score
        if not 0.0 <= score <= 1.0:
            warn_score_out_of_range(score)

    def stats(self, prefix: str = "") -> dict[str, float]:
        mean = self._sum_scores / self._completions if self._completions else 0.0
        return {
            f"{prefix}num_tasks": float(len(self._task_ids)),
            f"{prefix}mean_score": mean,
            f"{prefix}total_completions": float(self._completions),
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "type": DiscreteRandomCurriculumConfig.type,
            "task_ids": list(self._task_ids),
            "completions": self._completions,
            "sum_scores": self._sum_scores,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        task_ids = [int(t) for t in state["task_ids"]]
        if len(task_ids) > self.num_tasks or len(set(task_ids)) != len(task_ids):
            raise ValueError("checkpoint pool is larger than num_tasks or repeats a task id")
        self._task_ids = task_ids
        self._position = {t: i for i, t in enumerate(task_ids)}
        self._completions = int(state.get("completions", 0))
        self._sum_scores = float(state.get("sum_scores", 0.0))

    def cleanup_shared_memory(self) -> None:
        pass


class Curriculum:
    """Hands out tasks for episodes and feeds their scores back to the algorithm.

    Until the pool holds ``num_active_tasks`` tasks every ``get_task`` creates
    one (ids random in [1, 2**53)).  Then each ``get_task`` evicts the task the
    algorithm recommends (one with at least ``min_presentations_for_eviction``
    scores) and creates a replacement, or else samples a task by score.  The
    same seed gives the same task sequence.
    """

    def __init__(
        self,
        algorithm_config: LearningProgressConfig | DiscreteRandomCurriculumConfig | None = None,
        num_active_tasks: int = 1000,
        task_factory: Callable[[int], Any] | None = None,
        min_presentations_for_eviction: int = 5,
        seed: int = 0,
    ) -> None:
        if isinstance(num_active_tasks, bool) or not isinstance(num_active_tasks, int):
            raise TypeError(f"num_active_tasks must be an int, got {num_active_tasks!r}")
        if num_active_tasks <= 0:
            raise ValueError(f"num_active_tasks must be > 0, got {num_active_tasks}")
        if min_presentations_for_eviction < 0:
            raise ValueError(
                f"min_presentations_for_eviction must be >= 0, got {min_presentations_for_eviction}"
            )
        if algorithm_config is None:
            algorithm_config = DiscreteRandomCurriculumConfig()
        if isinstance(algorithm_config, LearningProgressConfig):
            if algorithm_config.num_active_tasks != num_active_tasks:
                algorithm_config = algorithm_config.model_copy(
                    update={"num_active_tasks": num_active_tasks}
                )
        elif not isinstance(algorithm_config, DiscreteRandomCurriculumConfig):
            raise TypeError(
                "algorithm_config must be a LearningProgressConfig, a "
                f"DiscreteRandomCurriculumConfig or None, got {type(algorithm_config).__name__}"
            )
        self.algorithm_config = algorithm_config
        self.num_active_tasks = num_active_tasks
        self.min_presentations_for_eviction = min_presentations_for_eviction
        self.seed = seed
        self._task_factory = task_factory if task_factory is not None else _DefaultEnvConfig
        self._rng = random.Random(seed)
        self._algorithm: PoolAlgorithm = algorithm_config.create(num_active_tasks, NullStatsLogger())
        # Bound once: get_task and update_task_performance run once per episode.
        self._random = self._rng.random
        self._choose_pool_task = self._algorithm.choose_pool_task
        self._update_algorithm = self._algorithm.update_task_performance
        # CurriculumTask objects of this process, by id; tasks created by other
        # processes of a shared session are materialised on first sample.
        self._tasks: dict[int, CurriculumTask] = {}
        # The id of the cached task last seen in each pool slot: a cached task
        # that another process evicted is dropped when its slot's next task is
        # cached, so the cache stays within twice the pool without any scan.
        self._slot_tasks: list[int] = [0] * num_active_tasks
        self._episodes = 0
        self._created = 0
        self._evicted = 0

    @property
    def algorithm(self) -> PoolAlgorithm:
        return self._algorithm

    def get_task(self) -> CurriculumTask:
        """The task for the next episode."""
        choice = self._choose_pool_task(self._random(), self.min_presentations_for_eviction)
        if choice <= 0:
            return self._replace(choice)
        task = self._tasks.get(choice)
        return self._adopt(choice) if task is None else task

    def _replace(self, choice: int) -> CurriculumTask:
        """A new task in the slot the algorithm freed by evicting ``-choice`` (0: a slot was free)."""
        for _ in range(_MAX_CHOICES):
            if choice < 0:
                self._tasks.pop(-choice, None)
                self._evicted += 1
            # Ids are 53 random bits; meeting a tracked one (about pool / 2**53 a creation)
            # re-creates that task (add_pool_task) and hands it out again.
            task_id = self._rng.getrandbits(TASK_ID_BITS) or 1  # in [1, 2**53)
            task = CurriculumTask(task_id, self._task_factory(task_id))
            slot = self._algorithm.add_pool_task(task, sampled=True)
            if slot >= 0:
                self._cache(task, slot)
                self._created += 1
                return task
            # Another process of the session took the free slot first.
            choice = self._choose_pool_task(self._random(), self.min_presentations_for_eviction)
            if choice > 0:
                task = self._tasks.get(choice)
                return self._adopt(choice) if task is None else task
        raise RuntimeError(
            f"no task after {_MAX_CHOICES} tries: other processes keep filling the pool's free slots"
        )

    def update_task_performance(self, task_id: int, score: float) -> None:
        """Report the score of a finished episode of ``task_id``."""
        self._update_algorithm(task_id, score)
        self._episodes += 1

    def stats(self) -> dict[str, float]:
        stats = {
            "curriculum/episodes": float(self._episodes),
            "curriculum/tasks_created": float(self._created),
            "curriculum/tasks_evicted": float(self._evicted),
            "curriculum/pool_size": float(self._algorithm.pool_size()),
        }
        stats.update(self._algorithm.stats("algorithm/"))
        return stats

    def get_state(self) -> dict[str, Any]:
        return {
            "num_active_tasks": self.num_active_tasks,
            "min_presentations_for_eviction": self.min_presentations_for_eviction,
            "seed": self.seed,
            "rng_state": self._rng.getstate(),
            "episodes": self._episodes,
            "created": self._created,
            "evicted": self._evicted,
            "algorithm": self._algorithm.get_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint of ``get_state``; the pool is checked before anything changes."""
        for key in ("num_active_tasks", "rng_state", "algorithm"):
            if key not in state:
                raise ValueError(f"curriculum checkpoint lacks {key!r}")
        if state["num_active_tasks"] != self.num_active_tasks:
            raise ValueError(
                f"checkpoint is for {state['num_active_tasks']} active tasks, "
                f"this curriculum has {self.num_active_tasks}"
            )
        rng = random.Random()
        try:
            rng.setstate(_as_rng_state(state["rng_state"]))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(
                "curriculum checkpoint has a malformed 'rng_state' (not what get_state saved from "
                f"random.Random.getstate()): {exc}"
            ) from None
        self._algorithm.load_state(state["algorithm"])
        self._rng.setstate(rng.getstate())
        self._tasks.clear()
        self._slot_tasks = [0] * self.num_active_tasks
        self._episodes = int(state.get("episodes", 0))
        self._created = int(state.get("created", 0))
        self._evicted = int(state.get("evicted", 0))

    def close(self) -> None:
        """Release the algorithm's shared memory (the session's creator removes the segment)."""
        self._algorithm.cleanup_shared_memory()
        self._tasks.clear()

    def __enter__(self) -> Curriculum:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------
    def _adopt(self, task_id: int) -> CurriculumTask:
        """The CurriculumTask of the pool task just chosen, which another process of the
        session created (or this one before load_state)."""
        task = CurriculumTask(task_id, self._task_factory(task_id))
        self._cache(task, self._algorithm.chosen_slot)
        return task

    def _cache(self, task: CurriculumTask, slot: int) -> None:
        """Cache a task object by id, dropping the one last seen in its slot (if it is
        another, it left the pool: another process evicted it)."""
        task_id = task._task_id
        slot_tasks = self._slot_tasks
        if 0 <= slot < len(slot_tasks):
            previous = slot_tasks[slot]
            if previous != task_id:
                self._tasks.pop(previous, None)
            slot_tasks[slot] = task_id
        self._tasks[task_id] = task


def _as_rng_state(state: Any) -> tuple:
    """``random.Random.getstate()`` survives JSON as nested lists: turn them back into tuples."""
    version, internal, gauss_next = state
    return (version, tuple(internal), gauss_next)
