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
from contextlib import AbstractContextManager
from typing import NamedTuple

import numpy as np

ROW_WIDTH = 18

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
    ) -> int:
        """Track ``task_id``; returns its slot, or -1 when absent and the pool is full.

        A new row gets task_id, creation_time, is_active = 1, the threshold,
        seed and generator type, every other field 0.  An already tracked task
        is left untouched (its existing slot is returned).
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

    # -- learning-progress distribution ---------------------------------------
    @abc.abstractmethod
    def compute_lp_distribution(self, params: DistributionParams) -> None:
        """One pass over the active rows, under one lock hold: write every lp_score.

        SPEC.md "The distribution, in one pass over the tracked tasks".
        """

    # -- lifecycle ------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Detach this process (idempotent)."""

    @abc.abstractmethod
    def unlink(self) -> None:
        """Remove the underlying segment (shared tables; the creator calls it)."""
