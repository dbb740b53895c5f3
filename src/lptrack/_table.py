"""The storage interface every engine implements.

A *table* is a fixed-capacity pool of task rows (SPEC.md layout, 18 float64 per
row) with an O(1) task-id -> slot index, a free-slot stack and a dense list of
active slots, all kept incrementally.  ``TaskTracker`` and the scorers talk to
storage only through this interface, so the pure-Python engine
(``lptrack._pytable.PythonTable``) and the native engine
(``lptrack._native.NativeTable``, C core in ``csrc/``) are interchangeable and
can be compared answer for answer.

Conventions shared by both engines:

* Slots are ``0 .. capacity-1``; a row whose TASK_ID is 0.0 is free.
* Task ids are Python ints in ``[1, 2**53)``; validation happens in the tracker,
  tables may assume valid ids.
* Every change of pool membership (claim of a new task, release, clear) bumps
  ``generation`` so that callers may cache ``active_ids()`` and revalidate.
* ``active_ids()`` / ``active_slots()`` return fresh arrays in active-list order.
  Removal is swap-with-last, so the order is tracking order until the first
  removal.
* Methods documented as atomic take the table's lock themselves; callers must
  not already hold it (the lock is not re-entrant).
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import NamedTuple

import numpy as np

ROW_WIDTH = 18
#: When ``Table.bind_choose``'s chooser recomputes the eviction threshold.
THRESHOLD_RULES = ("never", "always", "per_batch")
#: What ``claim(..., new_only=True)`` returns for a task already tracked.
TRACKED = -2

# Column indices (mirrors TaskStateIndices; kept here so engines need not import the API).
TASK_ID = 0
CREATION_TIME = 1
COMPLETION_COUNT = 2
REWARD_EMA = 3
LP_SCORE = 4
SUCCESS_RATE_EMA = 5
TOTAL_SCORE = 6
LAST_SCORE = 7
SUCCESS_THRESHOLD = 8
SEED = 9
GENERATOR_TYPE = 10
EMA_SQUARED = 11
IS_ACTIVE = 12
P_FAST = 13
P_SLOW = 14
P_TRUE = 15
RANDOM_BASELINE = 16
LABEL_HASH = 17


#: Task ids are ints in [1, MAX_TASK_ID): every one is exact as a float64 row value.
MAX_TASK_ID = 2**53


def check_task_id(task_id: object) -> int:
    """``task_id`` as an int in [1, 2**53): TypeError for non-ints (bool, float), ValueError out of range."""
    if type(task_id) is not int:
        if isinstance(task_id, (bool, np.bool_)) or not isinstance(task_id, numbers.Integral):
            raise TypeError(f"task ids must be ints, got {type(task_id).__name__} {task_id!r}")
        task_id = int(task_id)
    if not 1 <= task_id < MAX_TASK_ID:
        raise ValueError(f"task ids must be in [1, 2**53), got {task_id}")
    return task_id


def task_id_array(task_ids: Sequence[object] | np.ndarray) -> np.ndarray:
    """Task ids as an int64 array, each checked as ``check_task_id`` does (in bulk
    when they are plain ints, one by one only to name the first bad one)."""
    if isinstance(task_ids, np.ndarray):
        array = task_ids
    elif set(map(type, task_ids)) <= {int}:  # no bool (an int to numpy), float or str
        array = np.asarray(task_ids) if len(task_ids) else np.empty(0, dtype=np.int64)
    else:
        array = np.empty(0, dtype=object)  # not all ints: the checks one by one below
    if (
        array.ndim != 1
        or array.dtype.kind not in "iu"
        or (array.size and (array.min() < 1 or array.max() >= MAX_TASK_ID))
    ):
        return np.array([check_task_id(task_id) for task_id in task_ids], dtype=np.int64)
    return array.astype(np.int64, copy=False)


def check_finite(name: str, value: object) -> float:
    """``value`` as a finite float: TypeError for non-numbers, ValueError for NaN/inf."""
    if type(value) is float and math.isfinite(value):  # the hot path: skip the ABC check
        return value
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def check_uniform(uniform: float) -> None:
    """ValueError unless ``uniform`` is a draw from [0, 1)."""
    if not 0.0 <= uniform < 1.0:
        raise ValueError(f"uniform must be a draw from [0, 1), got {uniform}")


def check_percentile(percentile: float) -> None:
    """ValueError unless 0 <= percentile < 1 (the eviction threshold's rank must be in the pool)."""
    if not 0.0 <= percentile < 1.0:
        raise ValueError(f"eviction_threshold_percentile must be in [0, 1), got {percentile}")


class RunningTotals:
    """A tracker's running totals (SPEC.md): the scores it recorded and their sum.

    ``Table.update_tracked`` adds an applied update to them in the same call,
    so the episode's hot path needs no Python frame of its own for them.
    """

    __slots__ = ("completions", "sum_scores")

    def __init__(self, completions: int = 0, sum_scores: float = 0.0) -> None:
        self.completions = completions
        self.sum_scores = sum_scores

    def __reduce__(self) -> tuple[type, tuple[int, float]]:
        return (type(self), (self.completions, self.sum_scores))

    def __repr__(self) -> str:
        return f"RunningTotals(completions={self.completions}, sum_scores={self.sum_scores!r})"


class BatchCounter:
    """A scorer's batches (SPEC.md, deliberate change 1): updates and evictions
    count together, every ``size``-th ends a batch (``epoch`` + 1), and the
    distribution is stale while ``fresh_epoch != epoch``.

    ``Table.update_tracked`` and ``Table.choose_pool_task`` count into it in
    the same call as their update or eviction, and the latter runs a due pass.
    """

    __slots__ = ("epoch", "events", "fresh_epoch", "size")

    def __init__(self, size: int, events: int = 0, epoch: int = 0, fresh_epoch: int = -1) -> None:
        self.size = size
        self.events = events
        self.epoch = epoch
        self.fresh_epoch = fresh_epoch

    def count(self) -> None:
        """One update or eviction; the size-th ends the batch."""
        self.events += 1
        if self.events >= self.size:
            self.end_batch()

    def end_batch(self) -> None:
        self.events = 0
        self.epoch += 1

    def __reduce__(self) -> tuple[type, tuple[int, int, int, int]]:
        return (type(self), (self.size, self.events, self.epoch, self.fresh_epoch))


class BidirectionalParams(NamedTuple):
    """The scorer half of an update (SPEC.md, update_task_performance_with_bidirectional_emas)."""

    fast_timescale: float  # t = config.ema_timescale
    slow_timescale: float  # u = t * config.slow_timescale_factor
    use_baseline_normalization: bool


class DistributionParams(NamedTuple):
    """Inputs of the learning-progress distribution pass (SPEC.md, Bidirectional score_task)."""

    early_progress_amplification: float  # theta; reweighting applies iff |theta - 0.5| > 1e-6
    progress_smoothing: float
    performance_bonus_weight: float
    lp_score_temperature: float
    z_score_amplification: float


class Table(abc.ABC):
    """Abstract pool of task rows.  See the module docstring for conventions."""

    capacity: int
    row_width: int
    #: ``(capacity, row_width)`` float64, writable.  Writes through it bypass
    #: the lock; use it only for reads that tolerate races or under ``lock()``.
    rows: np.ndarray
    #: True when this object created its storage (always True for local
    #: tables, False after attaching or unpickling); only a creator may
    #: ``unlink()`` (SPEC.md, deliberate change 3).
    created: bool

    # -- locking --------------------------------------------------------------
    @abc.abstractmethod
    def lock(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold the table's lock (process-shared on shared tables).  Not re-entrant.

        Raises ``lptrack.errors.LockTimeoutError`` after ``timeout`` seconds
        (None: the engine's default, never infinite on shared tables).
        """

    @abc.abstractmethod
    def guard_row(self, slot: int) -> None:
        """Within ``with lock():``, before writing row ``slot`` through ``rows``:
        lock-free readers then never see the write half done, and if this
        process dies before the block ends the row is restored as it is now.
        One row per hold."""

    # -- pool membership (atomic) ---------------------------------------------
    @property
    @abc.abstractmethod
    def generation(self) -> int:
        """Counter bumped on every pool-membership change."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of active tasks."""

    @abc.abstractmethod
    def find(self, task_id: int) -> int:
        """Slot of ``task_id`` or -1.  O(1)."""

    @abc.abstractmethod
    def claim(
        self,
        task_id: int,
        creation_time: float,
        success_threshold: float,
        seed: float,
        generator_type: float,
        lp_score: float = 0.0,
        label_hash: float = 0.0,
        new_only: bool = False,
    ) -> int:
        """Track ``task_id``; returns its slot, or -1 when absent and the pool is full.

        A new row gets task_id, creation_time, is_active = 1, the threshold,
        seed, generator type, lp_score and label_hash (0.0 for a plain
        track_task_creation), every other field 0.  An already tracked task is
        left untouched: its existing slot is returned, or TRACKED with ``new_only``.
        """

    @abc.abstractmethod
    def release(self, task_id: int) -> bool:
        """Untrack ``task_id`` and zero its row; False when it was not tracked."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Untrack every task and zero every row."""

    @abc.abstractmethod
    def active_ids(self) -> np.ndarray:
        """int64 task ids of the active slots, active-list order (a copy)."""

    @abc.abstractmethod
    def active_slots(self) -> np.ndarray:
        """int64 active slots, same order as ``active_ids()`` (a copy)."""

    def task_id_array(self, task_ids: Sequence[object] | np.ndarray) -> np.ndarray:
        """A caller's task ids (a list, tuple or array) as an int64 array, validated
        (``check_task_id``): what the id-array operations below take."""
        return task_id_array(task_ids)

    # -- rows (atomic) --------------------------------------------------------
    @abc.abstractmethod
    def update(
        self,
        task_id: int,
        score: float,
        ema_alpha: float,
        success_threshold: float,
        lp_score: float,
        create_threshold: float,
        creation_time: float,
        seed: float,
        generator_type: float,
        bidirectional: BidirectionalParams | None,
    ) -> int:
        """One atomic score update of one row (SPEC.md formulas); returns the slot or -1.

        An untracked task is first claimed with ``create_threshold`` (and the
        given creation_time, seed, generator_type); if the pool is full nothing
        changes and -1 is returned.  ``success_threshold`` NaN means "use the
        row's threshold", otherwise it is used and stored.  ``lp_score`` NaN
        means "leave lp_score alone", otherwise it is stored.  With
        ``bidirectional`` the p_fast / p_slow / p_true / random_baseline part
        runs too.
        """

    @abc.abstractmethod
    def read_row(self, slot: int) -> np.ndarray:
        """A consistent copy of one row (never half of an update)."""

    @abc.abstractmethod
    def set_fields(self, task_id: int, fields: dict[int, float]) -> bool:
        """Atomically write ``{column: value}`` into the task's row; False if untracked."""

    # -- labels ---------------------------------------------------------------
    @abc.abstractmethod
    def set_label(self, task_id: int, label: str, label_hash: int) -> bool:
        """Store ``label_hash`` in the row and remember ``label``; False if untracked."""

    @abc.abstractmethod
    def label_for_hash(self, label_hash: int) -> str | None:
        """The label string stored under ``label_hash``, or None."""

    @abc.abstractmethod
    def label_hash_of(self, task_id: int) -> int:
        """The label hash in ``task_id``'s row; 0 when it has none or is not tracked."""

    @abc.abstractmethod
    def update_tracked(
        self,
        task_id: int,
        score: float,
        ema_alpha: float,
        bidirectional: BidirectionalParams,
        totals: RunningTotals | None = None,
        batch: BatchCounter | None = None,
    ) -> int:
        """``update`` of a tracked task with the row's threshold; -1 (nothing
        changes, nothing is claimed) when the task is not tracked.  An applied
        update is added to ``totals`` and counted in ``batch`` (made by
        ``new_running_totals`` and ``new_batch_counter``)."""

    def new_running_totals(self) -> RunningTotals:
        """Zeroed running totals of the kind this engine's ``update_tracked`` adds to."""
        return RunningTotals()

    def bind_update(
        self,
        ema_alpha: float,
        bidirectional: BidirectionalParams,
        totals: RunningTotals | None = None,
        batch: BatchCounter | None = None,
    ) -> Callable[[int, float], int]:
        """``update_tracked`` with all but the task and the score bound (the algorithm
        calls it once per episode; engines may bind in C).  The callable takes the
        caller's values as they come: check_task_id and check_finite("score") refuse
        bad ones."""

        def update(task_id: int, score: float) -> int:
            return self.update_tracked(
                check_task_id(task_id), check_finite("score", score), ema_alpha, bidirectional, totals, batch
            )

        return update

    def new_batch_counter(self, size: int) -> BatchCounter:
        """A batch counter (stale, no events yet) of the kind this engine counts into."""
        return BatchCounter(size)

    # -- scores, distribution, sampling, eviction -------------------------------
    # A task's score is SPEC.md's score_task value under the rule set by
    # configure_scoring (exploration_bonus for an untracked or inactive task
    # and below min_samples_for_lp; else lp_score, or the basic spread).  A
    # task is *mature* when a stale bidirectional scorer asked for its score
    # would recompute: active with completion_count >= min_samples_for_lp.
    # Scores are kept current on every row change (the native engine keeps
    # them in a sum tree over slots, so sampling is O(log capacity)).
    @abc.abstractmethod
    def configure_scoring(self, bidirectional: bool, exploration_bonus: float, min_samples_for_lp: float) -> None:
        """Set the score rule (bidirectional, else basic) for every process of the table."""

    @abc.abstractmethod
    def compute_lp_distribution(self, params: DistributionParams) -> None:
        """One pass over the active rows, under one lock hold: write every lp_score.

        SPEC.md "The distribution, in one pass over the tracked tasks".
        """

    @abc.abstractmethod
    def refresh_distribution(self, params: DistributionParams, ids: np.ndarray | None = None) -> bool:
        """``compute_lp_distribution`` iff some task of ``ids`` (int64; None: of
        the pool) is mature; returns whether it ran."""

    @abc.abstractmethod
    def scores(self, ids: np.ndarray) -> np.ndarray:
        """The score of each id of an int64 array, as float64."""

    @abc.abstractmethod
    def recommend_eviction(self, ids: np.ndarray, min_presentations: float, percentile: float) -> int:
        """SPEC.md recommend_eviction over ``ids`` (int64) with current scores: the id, or 0 for none."""

    @abc.abstractmethod
    def sample(self, uniform: float) -> int:
        """A task drawn with probability proportional to max(score, 0), ``uniform``
        in [0, 1): the first slot whose cumulative weight exceeds uniform * total;
        uniform over the active list (``active[int(uniform * n)]``) when the total
        is not positive.  0 when the pool is empty."""

    @abc.abstractmethod
    def eviction_candidates(
        self, min_presentations: float, percentile: float, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(slots, task_ids)`` (int64) of up to ``k`` pool tasks in the order
        recommend_eviction over ``active_ids()`` would pick them: eligible, at or
        below the percentile threshold, by (score, active position)."""

    #: The label hash and slot of the task the last ``choose_pool_task`` evicted or
    #: sampled (0 and -1: none).
    chosen_label_hash: int = 0
    chosen_slot: int = -1

    @abc.abstractmethod
    def pool_eviction_candidate(self, min_presentations: float, percentile: float, refresh_threshold: bool) -> int:
        """The pool task recommend_eviction over ``active_ids()`` would pick, or 0.

        Scores are the current ones; the percentile threshold may be cached
        since the last distribution pass (engines recompute it then, and when
        ``refresh_threshold``), so with batches it can be up to a batch old.
        """

    def bind_choose(
        self,
        percentile: float,
        refresh: DistributionParams | None = None,
        batch: BatchCounter | None = None,
        sampled: dict[int, int] | None = None,
        threshold: str = "per_batch",
    ) -> Callable[[float, float], int]:
        """``choose_pool_task`` with all but the draw and min_presentations bound:
        ``bind_choose(...)(uniform, min_presentations)``.

        ``threshold`` says when the eviction threshold is recomputed first:
        "always", "per_batch" (once per ``batch`` epoch) or "never" (the pass keeps
        it current).  A sampled task is counted in ``sampled`` by label hash.
        """
        check_percentile(percentile)
        if threshold not in THRESHOLD_RULES:
            raise ValueError(f"threshold must be one of {THRESHOLD_RULES}, got {threshold!r}")
        threshold_epoch = [-1]

        def choose(uniform: float, min_presentations: float) -> int:
            refresh_threshold = threshold == "always"
            if threshold == "per_batch":
                epoch = batch.epoch if batch is not None else 0
                refresh_threshold = epoch != threshold_epoch[0]
                threshold_epoch[0] = epoch
            choice = self.choose_pool_task(uniform, min_presentations, percentile, refresh_threshold, refresh, batch)
            if choice > 0 and sampled is not None:
                sampled[self.chosen_label_hash] = sampled.get(self.chosen_label_hash, 0) + 1
            return choice

        return choose

    @abc.abstractmethod
    def choose_pool_task(
        self,
        uniform: float,
        min_presentations: float,
        percentile: float,
        refresh_threshold: bool,
        refresh: DistributionParams | None = None,
        batch: BatchCounter | None = None,
    ) -> int:
        """The curriculum's pick for the next episode, atomically: 0 while the pool
        has a free slot, ``-task_id`` after releasing ``pool_eviction_candidate``'s
        task (a slot is free then; the eviction counts in ``batch``), else
        ``sample(uniform)``; ``chosen_label_hash`` and ``chosen_slot`` then hold
        the evicted or sampled task's label hash and slot.

        ``refresh`` (DistributionParams) first runs the pass if any pool task has
        enough samples, and if ``batch`` is given only while it is stale (then
        marked fresh).  On the native engine a pass that another process of the
        session ran since this table's last one also marks ``batch`` fresh (its
        events start again), a draw that needs no pass, threshold or eviction
        takes no lock, and the slot an eviction frees is held for this table's
        next ``claim`` (or 64 locked picks of others): other processes draw meanwhile."""

    # -- lifecycle ------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Detach this process (idempotent)."""

    @abc.abstractmethod
    def unlink(self) -> None:
        """Remove the underlying segment (shared tables; the creator calls it)."""
