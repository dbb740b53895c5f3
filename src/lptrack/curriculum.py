"""The trainer-facing pool manager: hands out tasks for episodes and takes their scores back.

``Curriculum`` runs over one of two task spaces:

* a **generated pool** (the default): ``task_factory(task_id)`` makes a task's
  env config; the pool is filled to ``num_active_tasks`` tasks, then each
  ``get_task`` may evict the task the algorithm recommends and create a
  replacement, else samples a task by score;
* a **fixed task set** (``tasks=``): the given tasks, with stable ids, are the
  whole pool; nothing is evicted or created, the algorithm samples among them.

It drives any algorithm that implements :class:`PoolAlgorithm`: the
learning-progress algorithm (``LearningProgressConfig``) or the uniform
baseline (``DiscreteRandomCurriculumConfig``, the default).  The pool itself
lives in the algorithm (for learning progress: the tracker's table, shared by
every process of a session), so several worker processes each holding a
``Curriculum`` on one session draw from, evict from and fill one pool.
"""

from __future__ import annotations

import os
import random
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from . import _table as col
from ._table import check_task_id
from .algorithm import CurriculumTask, NullStatsLogger
from .config import ConfigModel, ConstCheck, FieldCheck, IntCheck, LearningProgressConfig, WeightsCheck

#: Task ids are drawn uniformly from [1, 2**53): exactly representable in a float64 row.
TASK_ID_BITS = 53
#: get_task gives up after this many picks that found their free slot taken by
#: another process (each such pick means the pool just gained a task).
_MAX_CHOICES = 1000
#: The Curriculum's min_presentations_for_eviction for learning progress, as a
#: multiple of the presentations after which the scorer scores a task (see
#: ``default_min_presentations``).
LP_EVICTION_FACTOR = 2
#: min_presentations_for_eviction of a generated pool under the uniform baseline
#: (which never evicts: kept for the original's default).
DEFAULT_MIN_PRESENTATIONS = 5
#: A generated pool's size when num_active_tasks is not given.
DEFAULT_POOL_SIZE = 1000
#: How many top tasks ``Curriculum.stats`` lists.
DEFAULT_TOP_TASKS = 5


class SharedStreamWarning(UserWarning):
    """A curriculum drew a task id already in its pool: another process draws the same
    random stream (built with the same explicit seed, or restored from one checkpoint)."""


class InactiveLearningProgressWarning(UserWarning):
    """A learning-progress curriculum whose tasks are evicted before they can be scored:
    (almost) no task is ever sampled by learning progress, sampling is uniform."""


class PoolAlgorithm(Protocol):
    """What ``Curriculum`` needs of an algorithm (no per-task Python loops behind any of it)."""

    def pool_size(self) -> int: ...
    def is_tracked(self, task_id: int) -> bool: ...
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


@dataclass(kw_only=True)
class DiscreteRandomCurriculumConfig(ConfigModel):
    """The uniform baseline: a per-process pool, sampled uniformly, never evicted.

    A config dataclass like ``LearningProgressConfig`` (``type`` is the
    discriminator of the original's ``CurriculumConfig.algorithm_config``
    union).  ``initial_weights`` and ``num_active_tasks`` are the original's
    base-config fields, carried for code that reads or syncs them (the
    original's ``CurriculumConfig`` does); ``Curriculum`` sizes its pool by its
    own ``num_active_tasks`` argument.
    """

    _field_checks: ClassVar[Mapping[str, FieldCheck]] = MappingProxyType({
        "type": ConstCheck("discrete_random"),
        "initial_weights": WeightsCheck(),
        "num_active_tasks": IntCheck(1),
    })

    type: Literal["discrete_random"] = "discrete_random"
    initial_weights: list[float] | None = None
    num_active_tasks: int = 64

    def algorithm_type(self) -> str:
        return self.type

    def create(self, num_tasks: int, stats_logger: Any = None) -> DiscreteRandomAlgorithm:
        return DiscreteRandomAlgorithm(num_tasks)


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

    def is_tracked(self, task_id: int) -> bool:
        return task_id in self._position

    def on_task_created(self, task: CurriculumTask) -> None:
        self.add_pool_task(task)

    def add_pool_task(self, task: CurriculumTask, sampled: bool = False) -> int:
        """Track the task; its position in the pool list is its slot (-1: full)."""
        task_id = check_task_id(task._task_id)
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

    def task_ids(self) -> list[int]:
        """The pool's task ids (a new list)."""
        return list(self._task_ids)

    def completions(self) -> int:
        """Scores recorded by this process."""
        return self._completions

    def mean_score(self) -> float:
        """The mean of the scores recorded (0.0 before any)."""
        return self._sum_scores / self._completions if self._completions else 0.0

    def stats(self, prefix: str = "") -> dict[str, float]:
        mean = self.mean_score()
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

    Generated pool (``tasks`` not given): until the pool holds
    ``num_active_tasks`` tasks (default 1000) every ``get_task`` creates one, with
    an id drawn from [1, 2**53) and ``task_factory(task_id)`` as its env config.
    Then each ``get_task`` evicts the task the algorithm recommends (one with at
    least ``min_presentations_for_eviction`` scores) and creates a replacement,
    or else samples a task by score.

    Fixed task set (``tasks=``): a count ``n`` (ids 1..n, env configs
    ``task_factory(task_id)``), a sequence of env configs (the config at
    position ``i`` gets id ``i + 1``: 0 is no task id) or a mapping
    ``{task_id: env_cfg}`` (ids the user chose, ints in [1, 2**53)).  Those tasks
    are the whole pool, on every process and every host given the same tasks;
    none is evicted, and the algorithm samples among them.

    ``seed``: ``None`` (the default) gives every process its own random stream
    (from the OS), so workers that build the curriculum from one config or
    receive a pickled or forked copy of it never replay each other's tasks.  An
    int makes the run of the process that built the curriculum reproducible:
    its draws are those of ``random.Random(seed)``, so with the same algorithm
    config, pool and reported scores, one process alone gets the same task
    sequence.  A copy of a seeded curriculum in another process (pickled, or
    inherited by fork) draws its own stream from the OS, not reproducible; for
    reproducible workers build each one's curriculum with its own seed (such as
    ``seed=base + rank``): workers built with the same seed replay one stream.
    """

    def __init__(
        self,
        algorithm_config: LearningProgressConfig | DiscreteRandomCurriculumConfig | None = None,
        num_active_tasks: int | None = None,
        task_factory: Callable[[int], Any] | None = None,
        min_presentations_for_eviction: int | None = None,
        seed: int | None = None,
        *,
        tasks: Sequence[Any] | Mapping[int, Any] | int | None = None,
    ) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be None or an int, got {seed!r}")
        if task_factory is not None and not callable(task_factory):
            raise TypeError(f"task_factory must be callable, got {task_factory!r}")
        if algorithm_config is None:
            algorithm_config = DiscreteRandomCurriculumConfig()
        elif not isinstance(algorithm_config, (LearningProgressConfig, DiscreteRandomCurriculumConfig)):
            raise TypeError(
                "algorithm_config must be a LearningProgressConfig, a "
                f"DiscreteRandomCurriculumConfig or None, got {type(algorithm_config).__name__}"
            )
        fixed_tasks = None if tasks is None else _fixed_task_set(tasks, task_factory)
        num_active_tasks, min_presentations_for_eviction = _pool_size_and_eviction(
            fixed_tasks, num_active_tasks, min_presentations_for_eviction, algorithm_config
        )
        if isinstance(algorithm_config, LearningProgressConfig):
            if algorithm_config.num_active_tasks != num_active_tasks:
                algorithm_config = algorithm_config.model_copy(
                    update={"num_active_tasks": num_active_tasks}
                )
            if fixed_tasks is None:
                _warn_if_never_scored(algorithm_config, min_presentations_for_eviction)
        self.algorithm_config = algorithm_config
        self.num_active_tasks = num_active_tasks
        #: None for a fixed task set (it never evicts).
        self.min_presentations_for_eviction = None if fixed_tasks is not None else min_presentations_for_eviction
        self.seed = seed
        self._task_factory = task_factory if task_factory is not None else _DefaultEnvConfig
        self._fixed = fixed_tasks is not None
        # What get_task passes to the algorithm's choice: a fixed set's tasks are never evictable.
        self._min_presentations = float("inf") if self._fixed else float(min_presentations_for_eviction)
        self._algorithm: PoolAlgorithm = algorithm_config.create(num_active_tasks, NullStatsLogger())
        # CurriculumTask objects of this process, by id; tasks created by other
        # processes of a shared session are materialised on first sample.  A fixed
        # set's tasks are all here, always.
        self._tasks: dict[int, CurriculumTask] = {}
        self._fixed_ids: tuple[int, ...] = ()
        # The id of the cached task last seen in each pool slot: a cached task
        # that another process evicted is dropped when its slot's next task is
        # cached, so the cache stays within twice the pool without any scan.
        self._slot_tasks: list[int] = [0] * num_active_tasks
        self._episodes = 0
        self._created = 0
        self._evicted = 0
        self._stream_warned = False
        self._rng = _new_stream(seed, own=True)
        self._bind()
        if fixed_tasks is not None:
            self._tasks = {task._task_id: task for task in fixed_tasks}
            self._fixed_ids = tuple(self._tasks)
            self._track_fixed_tasks()
        _LIVE_CURRICULA.add(self)

    @property
    def algorithm(self) -> PoolAlgorithm:
        return self._algorithm

    @property
    def is_fixed(self) -> bool:
        """Whether the task space is a fixed task set (else a generated pool)."""
        return self._fixed

    @property
    def tasks(self) -> list[CurriculumTask]:
        """A fixed set's tasks, in their order ([] for a generated pool)."""
        return list(self._tasks.values()) if self._fixed else []

    def get_task(self) -> CurriculumTask:
        """The task for the next episode."""
        choice = self._choose_pool_task(self._random(), self._min_presentations)
        if choice <= 0:
            return self._replace(choice)
        task = self._tasks.get(choice)
        return self._adopt(choice) if task is None else task

    def _replace(self, choice: int) -> CurriculumTask:
        """A new task in the slot the algorithm freed by evicting ``-choice`` (0: a slot was free)."""
        if self._fixed:
            return self._refill_fixed()
        for _ in range(_MAX_CHOICES):
            if choice < 0:
                self._tasks.pop(-choice, None)
                self._evicted += 1
            # Ids are 53 random bits; meeting a tracked one (about pool / 2**53 a creation)
            # re-creates that task (add_pool_task) and hands it out again.
            task_id = self._rng.getrandbits(TASK_ID_BITS) or 1  # in [1, 2**53)
            if not self._stream_warned and self._algorithm.is_tracked(task_id):
                self._warn_shared_stream(task_id)
            task = CurriculumTask(task_id, self._task_factory(task_id))
            slot = self._algorithm.add_pool_task(task, sampled=True)
            if slot >= 0:
                self._cache(task, slot)
                self._created += 1
                return task
            # Another process of the session took the free slot first.
            choice = self._choose_pool_task(self._random(), self._min_presentations)
            if choice > 0:
                task = self._tasks.get(choice)
                return self._adopt(choice) if task is None else task
        raise RuntimeError(
            f"no task after {_MAX_CHOICES} tries: other processes keep filling the pool's free slots"
        )

    def update_task_performance(self, task_id: int, score: float) -> None:
        """Report the score of a finished episode of ``task_id`` (``task.task_id``)."""
        self._update_algorithm(task_id, score)
        self._episodes += 1

    # -- statistics -------------------------------------------------------------------------
    def stats(self, top: int = DEFAULT_TOP_TASKS) -> dict[str, float]:
        """``pool_stats(top)`` and ``process_stats()`` in one flat ``{name: float}`` dict."""
        stats = self.pool_stats(top)
        stats.update(self.process_stats())
        return stats

    def pool_stats(self, top: int = DEFAULT_TOP_TASKS) -> dict[str, float]:
        """The pool as every process of its session sees it (``pool/...``), O(pool size).

        Under learning progress: ``pool/tasks`` and ``pool/capacity``;
        ``pool/completions`` and ``pool/mean_score`` over the tasks now in the
        pool (a fixed set's whole run); ``pool/scored_tasks``: tasks with
        ``min_samples_for_lp`` scores, which learning progress scores (the others
        weigh ``exploration_bonus``); per label ``pool/label/<label>/tasks``,
        ``/completions`` and ``/sample_prob``; ``pool/max_sample_prob``; and the
        ``top`` tasks by sampling probability, ``pool/top/<rank>/task_id``,
        ``/sample_prob``, ``/completions``, ``/mean_score`` (rank 1 first).

        A sampling probability is the task's weight over the pool's total, the
        weights the next draw uses: ``exploration_bonus`` below
        ``min_samples_for_lp`` scores, else the task's ``lp_score`` (a pass that
        is due runs first, as before a draw).  Not ``lp_score`` alone: a young
        task's ``lp_score`` is tiny while it weighs ``exploration_bonus``.

        Under the uniform baseline the pool is this process's own: tasks,
        capacity, completions, mean score, per-label task counts and
        ``pool/max_sample_prob`` (1 / tasks).
        """
        if isinstance(top, bool) or not isinstance(top, int) or top < 0:
            raise ValueError(f"top must be an int >= 0, got {top!r}")
        if isinstance(self._algorithm, DiscreteRandomAlgorithm):
            return self._uniform_pool_stats()
        return _lp_pool_stats(self._algorithm, top)

    def process_stats(self) -> dict[str, float]:
        """This process's own counters (``process/...``): its episodes (scores it
        reported), tasks it created and evicted, the mean of the scores it
        reported and, under learning progress, its late updates (scores of tasks
        evicted while their episode ran)."""
        stats = {
            "process/episodes": float(self._episodes),
            "process/tasks_created": float(self._created),
            "process/tasks_evicted": float(self._evicted),
        }
        algorithm = self._algorithm
        if isinstance(algorithm, DiscreteRandomAlgorithm):
            stats["process/mean_score"] = algorithm.mean_score()
        else:
            totals = algorithm.task_tracker.get_global_stats()
            stats["process/mean_score"] = float(totals["mean_score"])
            stats["process/late_updates"] = float(algorithm.get_base_stats()["late_updates"])
        return stats

    def _uniform_pool_stats(self) -> dict[str, float]:
        algorithm = self._algorithm
        size = algorithm.pool_size()
        stats = {
            "pool/tasks": float(size),
            "pool/capacity": float(self.num_active_tasks),
            "pool/completions": float(algorithm.completions()),
            "pool/mean_score": algorithm.mean_score(),
            "pool/max_sample_prob": 1.0 / size if size else 0.0,
        }
        labels: dict[str, int] = {}
        for task_id in algorithm.task_ids():
            task = self._tasks.get(task_id)
            if task is None:  # restored by load_state and not handed out since
                task = CurriculumTask(task_id, self._task_factory(task_id))
            label = task.get_label()
            labels[label] = labels.get(label, 0) + 1
        for label, count in sorted(labels.items()):
            stats[f"pool/label/{label}/tasks"] = float(count)
        return stats

    # -- checkpoints ---------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "num_active_tasks": self.num_active_tasks,
            "min_presentations_for_eviction": self.min_presentations_for_eviction,
            "fixed_task_ids": list(self._fixed_ids) if self._fixed else None,
            "seed": self.seed,
            "rng_state": self._rng.getstate(),
            "episodes": self._episodes,
            "created": self._created,
            "evicted": self._evicted,
            "algorithm": self._algorithm.get_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint of ``get_state``; the pool is checked before anything changes.

        The random stream continues from the checkpoint's (whatever ``seed`` says)."""
        for key in ("num_active_tasks", "rng_state", "algorithm"):
            if key not in state:
                raise ValueError(f"curriculum checkpoint lacks {key!r}")
        if state["num_active_tasks"] != self.num_active_tasks:
            raise ValueError(
                f"checkpoint is for {state['num_active_tasks']} active tasks, "
                f"this curriculum has {self.num_active_tasks}"
            )
        fixed_ids = state.get("fixed_task_ids")
        if (list(fixed_ids) if fixed_ids is not None else None) != (list(self._fixed_ids) if self._fixed else None):
            raise ValueError("checkpoint is of another task space (fixed task set or generated pool, or other ids)")
        rng = random.Random()
        rng.setstate(_as_rng_state(state["rng_state"]))
        self._algorithm.load_state(state["algorithm"])
        self._rng.setstate(rng.getstate())
        if self._fixed:
            self._track_fixed_tasks()
        else:
            self._tasks.clear()
        self._slot_tasks = [0] * self.num_active_tasks
        self._episodes = int(state.get("episodes", 0))
        self._created = int(state.get("created", 0))
        self._evicted = int(state.get("evicted", 0))

    def close(self) -> None:
        """Release the algorithm's shared memory (the session's creator removes the segment)."""
        self._algorithm.cleanup_shared_memory()
        if not self._fixed:
            self._tasks.clear()

    def __enter__(self) -> Curriculum:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- copies in other processes ---------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_random", "_choose_pool_task", "_update_algorithm", "_rng"):
            del state[name]
        if not self._fixed:
            # The cache is rebuilt on demand: env configs are not shipped along.
            state["_tasks"] = {}
            state["_slot_tasks"] = [0] * self.num_active_tasks
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rng = _new_stream(self.seed, own=False)
        self._bind()
        _LIVE_CURRICULA.add(self)

    def _after_fork(self) -> None:
        """In a forked child: a stream of its own (the parent's would be replayed)."""
        self._rng = _new_stream(self.seed, own=False)
        self._bind()

    # -- internals -------------------------------------------------------------
    def _bind(self) -> None:
        # Bound once: get_task and update_task_performance run once per episode.
        self._random = self._rng.random
        self._choose_pool_task = self._algorithm.choose_pool_task
        self._update_algorithm = self._algorithm.update_task_performance

    def _track_fixed_tasks(self) -> None:
        """Put every task of the fixed set in the pool unless a process of the session did already."""
        algorithm = self._algorithm
        for task_id, task in self._tasks.items():
            if not algorithm.is_tracked(task_id) and algorithm.add_pool_task(task) < 0:
                raise ValueError(
                    "the session's pool holds tasks that are not in this fixed task set: "
                    "every process of a session must be given the same tasks"
                )

    def _warn_shared_stream(self, task_id: int) -> None:
        """Once per curriculum: a new id met a tracked one, which 53 random bits all but
        never do unless another process drew the same stream."""
        self._stream_warned = True
        warnings.warn(
            f"task id {task_id} drawn for a new task is already in the pool: another process "
            "draws the same random stream and replays its tasks (curricula built with one "
            "explicit seed, or restored from one checkpoint). Give each process its own seed, "
            "or seed=None.",
            SharedStreamWarning,
            stacklevel=4,
        )

    def _refill_fixed(self) -> CurriculumTask:
        """A fixed set's pool lost a task (someone evicted it through the algorithm): put
        the missing tasks back, then choose again."""
        self._track_fixed_tasks()
        choice = self._choose_pool_task(self._random(), self._min_presentations)
        if choice <= 0:
            raise RuntimeError("the fixed task set's pool keeps losing tasks: something evicts them")
        return self._tasks.get(choice) or self._adopt(choice)

    def _adopt(self, task_id: int) -> CurriculumTask:
        """The CurriculumTask of the pool task just chosen, which another process of the
        session created (or this one before load_state)."""
        if self._fixed:
            raise RuntimeError(
                f"the pool holds task {task_id}, which is not in this fixed task set: "
                "every process of a session must be given the same tasks"
            )
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


def _pool_size_and_eviction(
    fixed_tasks: list[CurriculumTask] | None,
    num_active_tasks: object,
    min_presentations: object,
    algorithm_config: LearningProgressConfig | DiscreteRandomCurriculumConfig,
) -> tuple[int, int]:
    """The checked pool size and min_presentations_for_eviction of a Curriculum (the
    latter is unused by a fixed set, which never evicts)."""
    if fixed_tasks is not None:
        if num_active_tasks is not None and num_active_tasks != len(fixed_tasks):
            raise ValueError(
                f"num_active_tasks={num_active_tasks!r} but the fixed task set has {len(fixed_tasks)} tasks "
                "(leave num_active_tasks unset)"
            )
        if min_presentations is not None:
            raise ValueError("a fixed task set never evicts: leave min_presentations_for_eviction unset")
        num_active_tasks = len(fixed_tasks)
    elif num_active_tasks is None:
        num_active_tasks = DEFAULT_POOL_SIZE
    if isinstance(num_active_tasks, bool) or not isinstance(num_active_tasks, int):
        raise TypeError(f"num_active_tasks must be an int, got {num_active_tasks!r}")
    if num_active_tasks <= 0:
        raise ValueError(f"num_active_tasks must be > 0, got {num_active_tasks}")
    if min_presentations is None:
        return num_active_tasks, default_min_presentations(algorithm_config)
    if isinstance(min_presentations, bool) or not isinstance(min_presentations, int):
        raise TypeError(f"min_presentations_for_eviction must be an int, got {min_presentations!r}")
    if min_presentations < 0:
        raise ValueError(f"min_presentations_for_eviction must be >= 0, got {min_presentations}")
    return num_active_tasks, min_presentations


def default_min_presentations(algorithm_config: LearningProgressConfig | DiscreteRandomCurriculumConfig) -> int:
    """The Curriculum's ``min_presentations_for_eviction`` when none is given.

    Learning progress scores a task only from its ``min_samples_for_lp``-th score
    on (the basic scorer from its 2nd at the least); a task evicted before that
    only ever weighs ``exploration_bonus``.  So a task stays for
    ``LP_EVICTION_FACTOR`` times that many presentations: learning progress scores
    it for the second half of its minimum life.  The uniform baseline never
    evicts; its value (5) is the original's default.
    """
    if isinstance(algorithm_config, LearningProgressConfig):
        return LP_EVICTION_FACTOR * _samples_to_score(algorithm_config)
    return DEFAULT_MIN_PRESENTATIONS


def _samples_to_score(config: LearningProgressConfig) -> int:
    """The completions from which the config's scorer scores a task by learning progress."""
    return config.min_samples_for_lp if config.use_bidirectional else max(2, config.min_samples_for_lp)


def _warn_if_never_scored(config: LearningProgressConfig, min_presentations: int) -> None:
    needed = _samples_to_score(config)
    if min_presentations < needed:
        warnings.warn(
            f"min_presentations_for_eviction={min_presentations} is below the {needed} scores "
            "learning progress needs to score a task (min_samples_for_lp): tasks are evicted before "
            "they are scored, so sampling is uniform. Leave min_presentations_for_eviction unset "
            f"(it then defaults to {LP_EVICTION_FACTOR * needed}) or raise it.",
            InactiveLearningProgressWarning,
            stacklevel=3,
        )


def _fixed_task_set(tasks: Any, task_factory: Callable[[int], Any] | None) -> list[CurriculumTask]:
    """The CurriculumTasks of ``Curriculum(tasks=...)``: a count, a sequence or a mapping."""
    if isinstance(tasks, bool):
        raise TypeError(f"tasks must be a count, a sequence or a mapping of env configs, got {tasks!r}")
    if isinstance(tasks, int):
        if tasks <= 0:
            raise ValueError(f"a fixed task set needs at least one task, got tasks={tasks}")
        factory = task_factory if task_factory is not None else _DefaultEnvConfig
        return [CurriculumTask(task_id, factory(task_id)) for task_id in range(1, tasks + 1)]
    if task_factory is not None:
        raise ValueError("task_factory makes the env configs of a count of tasks; tasks= already gives them")
    if isinstance(tasks, Mapping):
        pairs = [(check_task_id(task_id), env_cfg) for task_id, env_cfg in tasks.items()]
    elif isinstance(tasks, Sequence) and not isinstance(tasks, (str, bytes)):
        pairs = list(enumerate(tasks, start=1))
    else:
        raise TypeError(f"tasks must be a count, a sequence or a mapping of env configs, got {type(tasks).__name__}")
    if not pairs:
        raise ValueError("a fixed task set needs at least one task")
    return [CurriculumTask(task_id, env_cfg) for task_id, env_cfg in pairs]


def _new_stream(seed: int | None, own: bool) -> random.Random:
    """The random stream of a curriculum: ``random.Random(seed)`` where it was built
    with a seed, else seeded by the OS (each process, each copy, its own)."""
    if seed is not None and own:
        return random.Random(seed)
    return random.Random(int.from_bytes(os.urandom(16), "little"))


#: Every Curriculum of this process, for _reseed_after_fork.
_LIVE_CURRICULA: weakref.WeakSet[Curriculum] = weakref.WeakSet()


def _reseed_after_fork() -> None:
    for curriculum in list(_LIVE_CURRICULA):
        curriculum._after_fork()


os.register_at_fork(after_in_child=_reseed_after_fork)


def _lp_pool_stats(algorithm: Any, top: int) -> dict[str, float]:
    """``Curriculum.pool_stats`` of a learning-progress algorithm, from its tracker's
    rows and scores (what ``lptrack inspect`` reads from the segment)."""
    tracker = algorithm.task_tracker
    hypers = algorithm.hypers
    rows = tracker.snapshot_rows()
    ids = rows[:, col.TASK_ID].astype(np.int64)
    completions = rows[:, col.COMPLETION_COUNT]
    total_scores = rows[:, col.TOTAL_SCORE]
    # The weights the next draw uses: a due distribution pass runs first, as it would then.
    weights = np.maximum(algorithm.scorer.score_many(ids), 0.0) if ids.size else np.empty(0)
    total_weight = float(weights.sum())
    if total_weight > 0.0:
        probabilities = weights / total_weight
    else:  # a draw is uniform then
        probabilities = np.full(ids.size, 1.0 / ids.size if ids.size else 0.0)
    done = float(completions.sum())
    stats: dict[str, float] = {
        "pool/tasks": float(ids.size),
        "pool/capacity": float(algorithm.num_tasks),
        "pool/completions": done,
        "pool/mean_score": float(total_scores.sum()) / done if done else 0.0,
        "pool/scored_tasks": float(np.count_nonzero(completions >= _samples_to_score(hypers))),
        "pool/max_sample_prob": float(probabilities.max()) if ids.size else 0.0,
    }
    hashes, first, group = np.unique(rows[:, col.LABEL_HASH], return_index=True, return_inverse=True)
    tasks_per_label = np.bincount(group, minlength=hashes.size)
    completions_per_label = np.bincount(group, weights=completions, minlength=hashes.size)
    prob_per_label = np.bincount(group, weights=probabilities, minlength=hashes.size)
    by_label: dict[str, list[float]] = {}
    for index in range(hashes.size):
        # The label string by one task of the label (None: removed since the snapshot).
        label = tracker.get_task_label(int(ids[first[index]])) if hashes[index] else None
        entry = by_label.setdefault("(none)" if label is None else label, [0.0, 0.0, 0.0])
        entry[0] += float(tasks_per_label[index])
        entry[1] += float(completions_per_label[index])
        entry[2] += float(prob_per_label[index])
    for label, (count, label_completions, probability) in sorted(by_label.items()):
        stats[f"pool/label/{label}/tasks"] = count
        stats[f"pool/label/{label}/completions"] = label_completions
        stats[f"pool/label/{label}/sample_prob"] = probability
    order = np.argsort(-probabilities, kind="stable")[:top]
    for rank, index in enumerate(order.tolist(), start=1):
        count = float(completions[index])
        stats[f"pool/top/{rank}/task_id"] = float(ids[index])
        stats[f"pool/top/{rank}/sample_prob"] = float(probabilities[index])
        stats[f"pool/top/{rank}/completions"] = count
        stats[f"pool/top/{rank}/mean_score"] = float(total_scores[index]) / count if count else 0.0
    return stats


def _as_rng_state(state: Any) -> tuple:
    """``random.Random.getstate()`` survives JSON as nested lists: turn them back into tuples."""
    version, internal, gauss_next = state
    return (version, tuple(internal), gauss_next)
