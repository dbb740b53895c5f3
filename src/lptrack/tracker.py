"""Per-task state: the row record, the memory backends and ``TaskTracker``.

``TaskTracker`` validates its input and turns each call into one table
operation; it never walks the pool in Python on a hot path.  The backends own
a ``Table`` (pure or native engine, see ``lptrack._engines``) and keep the
original's backend surface on top of it.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
import math
import numbers
import os
import random
import time
from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from lptrack import _table as col
from lptrack._engines import DEFAULT_ENGINE, make_table
from lptrack._table import (
    ROW_WIDTH,
    BidirectionalParams,
    DistributionParams,
    Table,
    check_finite,
    check_task_id,
)
from lptrack.config import new_session_id
from lptrack.errors import PoolFullError

_LABEL_HASH_MASK = (1 << 53) - 1
#: Threshold of a task created by an update (SPEC: ``success_threshold or 0.5``).
_UPDATE_CREATE_THRESHOLD = 0.5
_SEED_BITS = 31  # seeds are floats in [0, 2**31)
_NAN = math.nan


class TaskStateIndices:
    """Column of each field in a row (SPEC.md row layout)."""

    TASK_ID: ClassVar[int] = col.TASK_ID
    CREATION_TIME: ClassVar[int] = col.CREATION_TIME
    COMPLETION_COUNT: ClassVar[int] = col.COMPLETION_COUNT
    REWARD_EMA: ClassVar[int] = col.REWARD_EMA
    LP_SCORE: ClassVar[int] = col.LP_SCORE
    SUCCESS_RATE_EMA: ClassVar[int] = col.SUCCESS_RATE_EMA
    TOTAL_SCORE: ClassVar[int] = col.TOTAL_SCORE
    LAST_SCORE: ClassVar[int] = col.LAST_SCORE
    SUCCESS_THRESHOLD: ClassVar[int] = col.SUCCESS_THRESHOLD
    SEED: ClassVar[int] = col.SEED
    GENERATOR_TYPE: ClassVar[int] = col.GENERATOR_TYPE
    EMA_SQUARED: ClassVar[int] = col.EMA_SQUARED
    IS_ACTIVE: ClassVar[int] = col.IS_ACTIVE
    P_FAST: ClassVar[int] = col.P_FAST
    P_SLOW: ClassVar[int] = col.P_SLOW
    P_TRUE: ClassVar[int] = col.P_TRUE
    RANDOM_BASELINE: ClassVar[int] = col.RANDOM_BASELINE
    LABEL_HASH: ClassVar[int] = col.LABEL_HASH


@dataclass
class TaskState:
    """One row as a typed record; fields in row order."""

    task_id: float = 0.0
    creation_time: float = 0.0
    completion_count: float = 0.0
    reward_ema: float = 0.0
    lp_score: float = 0.0
    success_rate_ema: float = 0.0
    total_score: float = 0.0
    last_score: float = 0.0
    success_threshold: float = 0.0
    seed: float = 0.0
    generator_type: float = 0.0
    ema_squared: float = 0.0
    is_active: float = 0.0
    p_fast: float = 0.0
    p_slow: float = 0.0
    p_true: float = 0.0
    random_baseline: float = 0.0
    label_hash: float = 0.0

    @classmethod
    def struct_size(cls) -> int:
        return ROW_WIDTH

    def to_array(self) -> np.ndarray:
        return np.array(dataclasses.astuple(self), dtype=np.float64)

    @classmethod
    def from_array(cls, arr: np.ndarray) -> TaskState:
        return cls(*(float(value) for value in arr[:ROW_WIDTH]))


#: Checkpoint field name -> column (every row field but task_id and is_active).
_CHECKPOINT_FIELDS: dict[str, int] = {
    name: getattr(TaskStateIndices, name.upper())
    for name in (
        "creation_time", "completion_count", "reward_ema", "lp_score", "success_rate_ema", "total_score",
        "last_score", "success_threshold", "seed", "generator_type", "ema_squared", "p_fast", "p_slow",
        "p_true", "random_baseline", "label_hash",
    )
}


def bidirectional_params(config: Any) -> BidirectionalParams:
    """The bidirectional half of an update, from a scorer's config."""
    t = config.ema_timescale
    return BidirectionalParams(t, t * config.slow_timescale_factor, bool(config.use_baseline_normalization))


# -- validation ------------------------------------------------------------------------------
def check_capacity(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return int(value)


def _row_width(task_struct_size: int | None) -> int:
    if task_struct_size is None:
        return ROW_WIDTH
    width = check_capacity("task_struct_size", task_struct_size)
    if width < ROW_WIDTH:
        raise ValueError(f"task_struct_size must be >= {ROW_WIDTH}, got {width}")
    return width


def _check_tracker_args(
    ema_alpha: object, default_success_threshold: object, default_generator_type: object
) -> tuple[float, float, float]:
    """Validated (ema_alpha, default threshold, default generator type), checked before any allocation."""
    alpha = check_finite("ema_alpha", ema_alpha)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"ema_alpha must be in (0, 1], got {ema_alpha!r}")
    return (
        alpha,
        check_finite("default_success_threshold", default_success_threshold),
        check_finite("default_generator_type", default_generator_type),
    )


@functools.lru_cache(maxsize=4096)
def label_hash(label: str) -> int:
    """First 8 bytes of sha256(label), big-endian, masked to 53 bits (exact as a float64)."""
    digest = hashlib.sha256(label.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & _LABEL_HASH_MASK


# -- backends --------------------------------------------------------------------------------
class TaskMemoryBackend(abc.ABC):
    """A pool of task rows owned through one ``Table``."""

    table: Table

    def __init__(self, table: Table) -> None:
        self.table = table
        self.max_tasks = table.capacity
        self.task_struct_size = table.row_width

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"slot index must be an int, got {index!r}")
        if not 0 <= index < self.max_tasks:
            raise IndexError(f"slot index {index} out of range [0, {self.max_tasks})")
        return int(index)

    def get_task_data(self, index: int) -> np.ndarray:
        """The writable float64 view of one row (writes bypass the lock, as in the original)."""
        return self.table.rows[self._check_index(index)]

    def get_task_state(self, index: int) -> TaskState:
        return TaskState.from_array(self.table.read_row(self._check_index(index)))

    def set_task_state(self, index: int, state: TaskState) -> None:
        """Overwrite one row under the lock.

        The row must keep the task it holds: pool membership changes only
        through ``TaskTracker`` (the table's index would otherwise go stale).
        """
        index = self._check_index(index)
        values = state.to_array()
        with self.table.lock():
            current = self.table.rows[index, col.TASK_ID]
            if values[col.TASK_ID] != current:
                raise ValueError(
                    f"set_task_state cannot change the task of slot {index} "
                    f"({current:.0f} -> {values[col.TASK_ID]:.0f}); track and remove tasks through TaskTracker"
                )
            self.table.guard_row(index)
            self.table.rows[index, : values.size] = values

    def acquire_lock(self) -> AbstractContextManager[None]:
        """The table's lock as a context manager (not re-entrant)."""
        return self.table.lock()

    def clear(self) -> None:
        self.table.clear()

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Release what the backend holds beyond this object's lifetime."""


class LocalMemoryBackend(TaskMemoryBackend):
    """Rows in this process's memory."""

    def __init__(self, max_tasks: int, task_struct_size: int | None = None, *, engine: str = DEFAULT_ENGINE) -> None:
        capacity = check_capacity("max_tasks", max_tasks)
        super().__init__(make_table(engine, capacity, _row_width(task_struct_size)))

    def cleanup(self) -> None:
        """Nothing outlives the process: the rows are ordinary memory."""


class SharedMemoryBackend(TaskMemoryBackend):
    """Rows in the shared segment of ``session_id`` (created, or attached when it exists).

    ``cleanup()`` removes the segment only in the process that created it; a
    pickled backend re-attaches by session id in the receiving process and never
    owns the segment there.
    """

    def __init__(
        self,
        max_tasks: int,
        session_id: str | None = None,
        task_struct_size: int | None = None,
        *,
        engine: str = DEFAULT_ENGINE,
    ) -> None:
        capacity = check_capacity("max_tasks", max_tasks)
        self.session_id = new_session_id() if session_id is None else session_id
        super().__init__(make_table(engine, capacity, _row_width(task_struct_size), self.session_id))
        self._creator_pid = os.getpid() if self.table.created else None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_creator_pid"] = None
        return state

    def cleanup(self) -> None:
        """Unlink the segment (creating process only) and detach (idempotent)."""
        if self._creator_pid == os.getpid():
            self.table.unlink()
            self._creator_pid = None
        self.table.close()


# -- tracker ---------------------------------------------------------------------------------
class _TaskIndexView(Mapping[int, int]):
    """Read-only ``task id -> slot`` mapping over a table (the original's ``_task_id_to_index``)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def __getitem__(self, task_id: object) -> int:
        if isinstance(task_id, numbers.Integral) and not isinstance(task_id, bool):
            slot = self._table.find(int(task_id))
            if slot >= 0:
                return slot
        raise KeyError(task_id)

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, numbers.Integral) and not isinstance(task_id, bool) and (
            self._table.find(int(task_id)) >= 0
        )

    def __iter__(self) -> Iterator[int]:
        return iter(self._table.active_ids().tolist())

    def __len__(self) -> int:
        return len(self._table)

    def copy(self) -> dict[int, int]:
        """A ``{task id: slot}`` dict of the pool now, built in one step (the original's
        ``_task_id_to_index`` was a dict, and its tests copy it)."""
        slots = self._table.active_slots()
        task_ids = self._table.rows[slots, col.TASK_ID]
        tracked = task_ids != 0.0  # released since the active list was read
        return dict(zip(task_ids[tracked].astype(np.int64).tolist(), slots[tracked].tolist()))

    def items(self) -> ItemsView[int, int]:
        """One consistent snapshot (the mixin's would look each id up again)."""
        return self.copy().items()

    def values(self) -> ValuesView[int]:
        return self.copy().values()


class TaskTracker:
    """Per-task EMAs and statistics in a backend's rows (SPEC.md ``TaskTracker``)."""

    def __init__(
        self,
        max_memory_tasks: int = 1000,
        ema_alpha: float = 0.1,
        backend: TaskMemoryBackend | None = None,
        default_success_threshold: float = 0.5,
        default_generator_type: float = 0.0,
        enable_task_list_cache: bool = True,
        *,
        engine: str = DEFAULT_ENGINE,
    ) -> None:
        self.ema_alpha, self.default_success_threshold, self.default_generator_type = _check_tracker_args(
            ema_alpha, default_success_threshold, default_generator_type
        )
        if backend is None:
            backend = LocalMemoryBackend(check_capacity("max_memory_tasks", max_memory_tasks), engine=engine)
        self._backend = backend
        self._table = backend.table
        self.max_memory_tasks = backend.max_tasks
        self.enable_task_list_cache = enable_task_list_cache
        #: Scores recorded through this tracker and their sum (SPEC.md's running totals).
        self.totals = self._table.new_running_totals()
        self._drop_task_list_cache()

    @property
    def _total_completions(self) -> int:
        return self.totals.completions

    @_total_completions.setter
    def _total_completions(self, value: int) -> None:
        self.totals.completions = value

    @property
    def _sum_scores(self) -> float:
        return self.totals.sum_scores

    @_sum_scores.setter
    def _sum_scores(self, value: float) -> None:
        self.totals.sum_scores = value

    def _drop_task_list_cache(self) -> None:
        self._task_list_generation = -1
        self._task_list: list[int] = []

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # Generations are per table object: a cached list must not survive the trip.
        state["_task_list_generation"] = -1
        state["_task_list"] = []
        return state

    @property
    def backend(self) -> TaskMemoryBackend:
        return self._backend

    @property
    def table(self) -> Table:
        """The storage engine's table (for the algorithm's one-call hot paths)."""
        return self._table

    @property
    def is_shared(self) -> bool:
        return isinstance(self._backend, SharedMemoryBackend)

    @property
    def _task_id_to_index(self) -> Mapping[int, int]:
        return _TaskIndexView(self._table)

    # -- pool membership ----------------------------------------------------------------------
    def track_task_creation(
        self,
        task_id: int,
        success_threshold: float | None = None,
        seed: float | None = None,
        generator_type: float | None = None,
    ) -> None:
        """Claim a slot for ``task_id``; no-op when already tracked or when the pool is full."""
        tid = check_task_id(task_id)
        threshold = (
            self.default_success_threshold if success_threshold is None
            else check_finite("success_threshold", success_threshold)
        )
        seed_value = float(random.getrandbits(_SEED_BITS)) if seed is None else check_finite("seed", seed)
        generator = (
            self.default_generator_type if generator_type is None else check_finite("generator_type", generator_type)
        )
        self._table.claim(tid, time.time(), threshold, seed_value, generator)

    def claim_task(self, task_id: int, lp_score: float, label_hash: int, new_only: bool = False) -> int:
        """``track_task_creation`` with the defaults that also sets a new row's lp_score
        and label_hash, in one table call (``task_id`` validated by the caller): the
        slot, or -1 when the pool is full.  An already tracked task is left untouched
        (its slot is returned, or with ``new_only`` lptrack._table.TRACKED)."""
        return self._table.claim(
            task_id, time.time(), self.default_success_threshold, float(random.getrandbits(_SEED_BITS)),
            self.default_generator_type, lp_score, float(label_hash), new_only,
        )

    def remove_task(self, task_id: int) -> bool:
        """Free the task's slot (row zeroed) for reuse: whether it was tracked (no-op if not)."""
        return self._table.release(check_task_id(task_id))

    def num_tracked(self) -> int:
        """Tasks in the pool (of every process of a shared session)."""
        return len(self._table)

    def get_task_index(self, task_id: int) -> int | None:
        slot = self._table.find(check_task_id(task_id))
        return None if slot < 0 else slot

    def get_all_tracked_tasks(self) -> list[int]:
        """A new list of the tracked task ids, in the table's active order."""
        if not self.enable_task_list_cache:
            return self._table.active_ids().tolist()
        generation = self._table.generation
        if generation != self._task_list_generation:
            # Generation read first: a change racing with the copy only makes the next call refresh.
            self._task_list = self._table.active_ids().tolist()
            self._task_list_generation = generation
        return list(self._task_list)

    # -- updates --------------------------------------------------------------------------------
    def _update(
        self,
        task_id: int,
        score: float,
        success_threshold: float | None,
        lp_score: float,
        bidirectional: BidirectionalParams | None,
    ) -> None:
        tid = check_task_id(task_id)
        s = check_finite("score", score)
        threshold = _NAN if success_threshold is None else check_finite("success_threshold", success_threshold)
        slot = self._table.update(
            tid,
            s,
            self.ema_alpha,
            threshold,
            lp_score,
            threshold if success_threshold else _UPDATE_CREATE_THRESHOLD,
            time.time(),
            float(random.getrandbits(_SEED_BITS)),
            self.default_generator_type,
            bidirectional,
        )
        if slot >= 0:
            totals = self.totals
            totals.completions += 1
            totals.sum_scores += s

    def update_task_performance_with_bidirectional_emas(
        self, task_id: int, score: float, scorer: Any = None, success_threshold: float | None = None
    ) -> None:
        """The hot path: one atomic row update (creating the task when untracked and a slot is free)."""
        config = getattr(scorer, "config", None) if scorer is not None else None
        bidirectional = None if config is None else bidirectional_params(config)
        self._update(task_id, score, success_threshold, _NAN, bidirectional)

    def update_task_performance(
        self, task_id: int, score: float, lp_score: float | None = None, success_threshold: float | None = None
    ) -> None:
        """The basic EMAs only; also stores ``lp_score`` when given."""
        lp = _NAN if lp_score is None else check_finite("lp_score", lp_score)
        self._update(task_id, score, success_threshold, lp, None)

    def update_lp_score(self, task_id: int, lp_score: float) -> None:
        self._table.set_fields(check_task_id(task_id), {col.LP_SCORE: check_finite("lp_score", lp_score)})

    def update_bidirectional_emas(
        self, task_id: int, p_fast: float, p_slow: float, p_true: float, random_baseline: float
    ) -> None:
        tid = check_task_id(task_id)
        fields = {
            col.P_FAST: check_finite("p_fast", p_fast),
            col.P_SLOW: check_finite("p_slow", p_slow),
            col.P_TRUE: check_finite("p_true", p_true),
            col.RANDOM_BASELINE: check_finite("random_baseline", random_baseline),
        }
        self._table.set_fields(tid, fields)

    def compute_lp_distribution(self, params: DistributionParams) -> None:
        """Rewrite every tracked task's lp_score in one table pass (the scorer's recomputation)."""
        self._table.compute_lp_distribution(params)

    # -- scores, sampling, eviction (one table call each, no loop over tasks here) ------------------
    def configure_scoring(self, bidirectional: bool, exploration_bonus: float, min_samples_for_lp: float) -> None:
        """The score rule the table keeps every task's score (and sampling weight) by."""
        self._table.configure_scoring(bidirectional, exploration_bonus, min_samples_for_lp)

    def refresh_distribution(self, params: DistributionParams, ids: np.ndarray | None = None) -> bool:
        """Recompute the distribution iff a task of ``ids`` (None: any) has enough samples."""
        return self._table.refresh_distribution(params, ids)

    def scores(self, ids: np.ndarray) -> np.ndarray:
        return self._table.scores(ids)

    def recommend_eviction(self, ids: np.ndarray, min_presentations: float, percentile: float) -> int | None:
        return self._table.recommend_eviction(ids, min_presentations, percentile) or None

    # -- reads ------------------------------------------------------------------------------------
    def _active_row(self, task_id: int) -> np.ndarray | None:
        """A consistent copy of the task's row, or None when untracked or inactive."""
        slot = self._table.find(task_id)
        if slot < 0:
            return None
        row = self._table.read_row(slot)
        if row[col.TASK_ID] != task_id or row[col.IS_ACTIVE] == 0.0:
            return None  # released (and maybe reused) since find(), or inactive
        return row

    def get_task_stats(self, task_id: int) -> dict[str, float] | None:
        row = self._active_row(check_task_id(task_id))
        if row is None:
            return None
        values = row.tolist()
        count = int(values[col.COMPLETION_COUNT])
        seen = count > 0
        return {
            "completion_count": count,
            "mean_score": values[col.TOTAL_SCORE] / count if seen else 0.0,
            "reward_ema": values[col.REWARD_EMA] if seen else 0.0,
            "ema_squared": values[col.EMA_SQUARED] if seen else 0.0,
            "lp_score": values[col.LP_SCORE] if seen else 0.0,
            "success_rate_ema": values[col.SUCCESS_RATE_EMA] if seen else 0.0,
            "last_score": values[col.LAST_SCORE] if seen else 0.0,
            "success_threshold": values[col.SUCCESS_THRESHOLD],
            "seed": values[col.SEED],
            "generator_type": values[col.GENERATOR_TYPE],
            "age_seconds": time.time() - values[col.CREATION_TIME],
            "p_fast": values[col.P_FAST],
            "p_slow": values[col.P_SLOW],
            "p_true": values[col.P_TRUE],
            "random_baseline": values[col.RANDOM_BASELINE],
        }

    def snapshot_rows(self) -> np.ndarray:
        """A copy of every tracked row in active order (for statistics; not a consistent snapshot)."""
        rows = self._table.rows[self._table.active_slots()]
        return rows[rows[:, col.TASK_ID] != 0.0]

    def get_global_stats(self) -> dict[str, float]:
        count = self._total_completions
        return {"mean_score": self._sum_scores / count if count > 0 else 0.0, "total_completions": count}

    # -- labels ----------------------------------------------------------------------------------
    def set_task_label(self, task_id: int, label: str) -> None:
        """Attach ``label`` to a tracked task (no-op for an unknown task)."""
        tid = check_task_id(task_id)
        if not isinstance(label, str):
            raise TypeError(f"labels must be str, got {type(label).__name__} {label!r}")
        self._table.set_label(tid, label, label_hash(label))

    def get_task_label(self, task_id: int) -> str | None:
        row = self._active_row(check_task_id(task_id))
        if row is None or row[col.LABEL_HASH] == 0.0:
            return None
        return self._table.label_for_hash(int(row[col.LABEL_HASH]))

    def get_label_completion_counts(self) -> dict[str, int]:
        """{label: summed completion_count} over active tasks whose label is known."""
        rows = self.snapshot_rows()
        rows = rows[(rows[:, col.IS_ACTIVE] != 0.0) & (rows[:, col.LABEL_HASH] != 0.0)]
        hashes, group = np.unique(rows[:, col.LABEL_HASH], return_inverse=True)
        sums = np.bincount(group, weights=rows[:, col.COMPLETION_COUNT], minlength=hashes.size)
        counts: dict[str, int] = {}
        for hash_value, total in zip(hashes.tolist(), sums.tolist()):
            label = self._table.label_for_hash(int(hash_value))
            if label is not None:
                counts[label] = counts.get(label, 0) + int(total)
        return counts

    # -- checkpoints ------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        task_memory: dict[int, dict[str, float]] = {}
        for values in self.snapshot_rows().tolist():
            entry = {name: values[column] for name, column in _CHECKPOINT_FIELDS.items()}
            entry["completion_count"] = int(entry["completion_count"])
            task_memory[int(values[col.TASK_ID])] = entry
        return {
            "max_memory_tasks": self.max_memory_tasks,
            "tracker_type": "centralized" if self.is_shared else "local",
            "session_id": getattr(self._backend, "session_id", None),
            "task_memory": task_memory,
            "task_creation_order": [],
            "cached_total_completions": sum(entry["completion_count"] for entry in task_memory.values()),
            "cache_valid": True,
            "global_total_completions": self._total_completions,
            "global_sum_scores": self._sum_scores,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace the pool with a checkpoint's tasks; the whole checkpoint is validated first."""
        tasks, total_completions, sum_scores = _parse_checkpoint(state, self.max_memory_tasks)
        self._table.clear()
        now = time.time()
        for task_id, fields in tasks:
            slot = self._table.claim(
                task_id,
                fields.pop(col.CREATION_TIME, now),
                fields.pop(col.SUCCESS_THRESHOLD, 0.5),
                fields.pop(col.SEED, 0.0),
                fields.pop(col.GENERATOR_TYPE, 0.0),
            )
            if slot < 0:
                raise PoolFullError(f"no free slot for task {task_id} while loading (another process filled the pool)")
            if fields:
                self._table.set_fields(task_id, fields)
        self._total_completions = total_completions
        self._sum_scores = sum_scores

    def cleanup_shared_memory(self) -> None:
        self._backend.cleanup()


def _parse_checkpoint(state: Mapping[str, Any], capacity: int) -> tuple[list[tuple[int, dict[int, float]]], int, float]:
    """Validate a tracker checkpoint; returns ([(task_id, {column: value})], total completions, sum of scores)."""
    if not isinstance(state, Mapping):
        raise TypeError(f"a tracker checkpoint must be a mapping, got {type(state).__name__}")
    for key in ("max_memory_tasks", "task_memory"):
        if key not in state:
            raise ValueError(f"tracker checkpoint lacks {key!r}")
    check_capacity("max_memory_tasks", state["max_memory_tasks"])
    task_memory = state["task_memory"]
    if not isinstance(task_memory, Mapping):
        raise TypeError(f"task_memory must be a mapping, got {type(task_memory).__name__}")
    if len(task_memory) > capacity:
        raise PoolFullError(f"checkpoint holds {len(task_memory)} tasks but the pool has {capacity} slots")
    tasks: list[tuple[int, dict[int, float]]] = []
    seen: set[int] = set()
    for key, entry in task_memory.items():
        if isinstance(key, str):
            try:
                key_id: object = int(key)
            except ValueError:
                raise ValueError(f"task_memory key {key!r} is not an integer task id") from None
        else:
            key_id = key
        task_id = check_task_id(key_id)
        if task_id in seen:
            raise ValueError(f"task {task_id} appears twice in task_memory")
        seen.add(task_id)
        if not isinstance(entry, Mapping):
            raise TypeError(f"task_memory[{key!r}] must be a mapping, got {type(entry).__name__}")
        fields = {
            column: check_finite(f"task_memory[{key!r}][{name!r}]", entry[name])
            for name, column in _CHECKPOINT_FIELDS.items()
            if name in entry
        }
        count = fields.get(col.COMPLETION_COUNT, 0.0)
        if count < 0 or not count.is_integer():
            raise ValueError(f"task_memory[{key!r}]['completion_count'] must be a non-negative int, got {count!r}")
        label = fields.get(col.LABEL_HASH, 0.0)
        if label < 0 or not label.is_integer() or label > _LABEL_HASH_MASK:
            raise ValueError(f"task_memory[{key!r}]['label_hash'] must be a 53-bit int, got {label!r}")
        fields[col.IS_ACTIVE] = check_finite(f"task_memory[{key!r}]['is_active']", entry.get("is_active", 1.0))
        tasks.append((task_id, fields))
    total_completions = check_finite("global_total_completions", state.get("global_total_completions", 0))
    if total_completions < 0 or not total_completions.is_integer():
        raise ValueError(f"global_total_completions must be a non-negative int, got {total_completions!r}")
    sum_scores = check_finite("global_sum_scores", state.get("global_sum_scores", 0.0))
    return tasks, int(total_completions), sum_scores


def create_task_tracker(
    max_memory_tasks: int = 1000,
    ema_alpha: float = 0.1,
    use_shared_memory: bool = False,
    default_success_threshold: float = 0.5,
    default_generator_type: float = 0.0,
    _session_id: str | None = None,
    enable_task_list_cache: bool = True,
    *,
    engine: str = DEFAULT_ENGINE,
) -> TaskTracker:
    """A tracker over a shared backend (session ``_session_id``) or a local one."""
    capacity = check_capacity("max_memory_tasks", max_memory_tasks)
    _check_tracker_args(ema_alpha, default_success_threshold, default_generator_type)
    backend: TaskMemoryBackend
    if use_shared_memory:
        backend = SharedMemoryBackend(capacity, session_id=_session_id, engine=engine)
    else:
        backend = LocalMemoryBackend(capacity, engine=engine)
    return TaskTracker(
        capacity,
        ema_alpha,
        backend,
        default_success_threshold,
        default_generator_type,
        enable_task_list_cache,
    )
