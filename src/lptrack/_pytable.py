"""The pure-Python + numpy engine: a reference ``Table`` with no compiled code.

It is the oracle the native engine is checked against and the baseline it is
measured against, so it follows SPEC.md literally and keeps every pool
operation O(1): a dict task id -> slot, a free-slot stack and a dense active
list with each slot's position in it (removal swaps with the last entry).

Two flavours:

* local (``session_id=None``): rows in a private numpy array;
* shared (``session_id`` given): rows in a ``multiprocessing.shared_memory``
  segment named ``_shm.segment_name(session_id, "py_")``, created or attached.
  Only the rows are shared.  The index, free stack, active list, label strings
  and the lock are per process, as in the original tracker: a process sees the
  tasks that were in the segment when it attached plus its own changes, and two
  processes may claim the same slot.  One pool really shared by every process
  is what the native engine adds (SPEC.md, deliberate change 2).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from lptrack import _shm
from lptrack._lpmath import learning_progress, ordered_sum
from lptrack._table import (
    COMPLETION_COUNT,
    CREATION_TIME,
    EMA_SQUARED,
    GENERATOR_TYPE,
    IS_ACTIVE,
    LABEL_HASH,
    LAST_SCORE,
    LP_SCORE,
    P_FAST,
    P_SLOW,
    P_TRUE,
    RANDOM_BASELINE,
    REWARD_EMA,
    ROW_WIDTH,
    SEED,
    SUCCESS_RATE_EMA,
    SUCCESS_THRESHOLD,
    TASK_ID,
    TOTAL_SCORE,
    TRACKED,
    BatchCounter,
    BidirectionalParams,
    RunningTotals,
    DistributionParams,
    Table,
    check_percentile,
    check_uniform,
    layout_mismatch,
)
from lptrack.errors import LockReentryError, LockTimeoutError, SegmentError

#: Segment-name prefix separating this engine's segments from the native ones.
SEGMENT_KIND = "py_"
#: Header of a shared segment: int64 words, padded so the rows stay 64-byte aligned.
_HEADER_WORDS = 8
_HEADER_BYTES = _HEADER_WORDS * 8
_MAGIC = 0x4C50_5452_4B50_5931  # "LPTRKPY1"
_LAYOUT_VERSION = 1
_H_MAGIC, _H_VERSION, _H_CAPACITY, _H_ROW_WIDTH, _H_CREATOR_PID = range(5)
#: How long an attaching process waits for the creator to finish the header.
_ATTACH_READY_TIMEOUT = 5.0
#: Default lock wait (never infinite: a stuck holder raises instead of hanging).
LOCK_TIMEOUT = 30.0


def _check_capacity(capacity: int, row_width: int) -> None:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
        raise ValueError(f"capacity must be a positive int, got {capacity!r}")
    if isinstance(row_width, bool) or not isinstance(row_width, int) or row_width < ROW_WIDTH:
        raise ValueError(f"row_width must be an int >= {ROW_WIDTH}, got {row_width!r}")


class PythonTable(Table):
    """Pure Python + numpy table; see the module docstring for what is shared."""

    def __init__(self, capacity: int, row_width: int = ROW_WIDTH, session_id: str | None = None) -> None:
        _check_capacity(capacity, row_width)
        _shm.check_allocatable(capacity * row_width * 8, shared=session_id is not None)
        self.capacity = capacity
        self.row_width = row_width
        self.session_id = session_id
        self._segment = None
        if session_id is None:
            self.rows = np.zeros((capacity, row_width), dtype=np.float64)
            self.created = True
        else:
            self._open_segment(session_id, create_if_missing=True)
        self._init_process_state()

    # -- construction helpers ---------------------------------------------------
    def _open_segment(self, session_id: str, *, create_if_missing: bool) -> None:
        """Create the session's segment or attach to it and check its layout."""
        if not isinstance(session_id, str) or not session_id:
            raise ValueError(f"session_id must be a non-empty str, got {session_id!r}")
        name = _shm.segment_name(session_id, SEGMENT_KIND)
        size = _HEADER_BYTES + self.capacity * self.row_width * 8
        segment = None
        if create_if_missing:
            try:
                segment = _shm.create_segment(name, size)
            except FileExistsError:
                segment = None
        if segment is not None:
            header = np.ndarray((_HEADER_WORDS,), dtype=np.int64, buffer=segment.buf)
            header[_H_VERSION] = _LAYOUT_VERSION
            header[_H_CAPACITY] = self.capacity
            header[_H_ROW_WIDTH] = self.row_width
            header[_H_CREATOR_PID] = os.getpid()
            header[_H_MAGIC] = _MAGIC  # last: attachers wait for it
            self.created = True
        else:
            try:
                segment = _shm.attach_segment(name)
            except FileNotFoundError as exc:
                raise SegmentError(f"shared segment {name!r} does not exist (was it cleaned up?)") from exc
            try:
                self._check_layout(segment, name)
            except BaseException:
                _shm.close_segment(segment)
                raise
            self.created = False
        self._segment = segment
        self.rows = np.ndarray(
            (self.capacity, self.row_width), dtype=np.float64, buffer=segment.buf, offset=_HEADER_BYTES
        )

    def _check_layout(self, segment: Any, name: str) -> None:
        """Refuse a segment of another layout (SPEC.md, deliberate change 3)."""
        if segment.size < _HEADER_BYTES:
            raise SegmentError(f"shared segment {name!r} is too small to be an lptrack segment")
        header = np.ndarray((_HEADER_WORDS,), dtype=np.int64, buffer=segment.buf)
        deadline = time.monotonic() + _ATTACH_READY_TIMEOUT
        while int(header[_H_MAGIC]) != _MAGIC:
            if time.monotonic() > deadline:
                raise SegmentError(f"shared segment {name!r} is not an initialised lptrack python-engine segment")
            time.sleep(0.001)
        found = (int(header[_H_VERSION]), int(header[_H_CAPACITY]), int(header[_H_ROW_WIDTH]))
        wanted = (_LAYOUT_VERSION, self.capacity, self.row_width)
        del header
        if found != wanted:
            raise layout_mismatch(self.session_id, found, wanted)

    def _init_process_state(self) -> None:
        """Build this process's index from the rows (empty for a new table)."""
        self._lock = threading.Lock()
        self._lock_owner: int | None = None  # threading.get_ident() of the holder
        self._lock_timeout = LOCK_TIMEOUT
        self._closed = False
        self._generation = 0
        self._slot_of: dict[int, int] = {}
        self._active: list[int] = []
        self._position: list[int] = [-1] * self.capacity
        # Label strings by hash; like the native registry, it only grows.
        self._labels: dict[int, str] = {}
        # The score rule (configure_scoring); a new native segment starts the same way.
        self._scoring = (True, 0.0, 0.0)
        occupied = np.flatnonzero(self.rows[:, TASK_ID] != 0.0).tolist()
        ids = self.rows[occupied, TASK_ID].astype(np.int64).tolist()
        for slot, task_id in zip(occupied, ids):
            self._slot_of[task_id] = slot
            self._position[slot] = len(self._active)
            self._active.append(slot)
        taken = set(occupied)
        # Reversed so that a fresh table hands out slot 0 first.
        self._free: list[int] = [slot for slot in range(self.capacity - 1, -1, -1) if slot not in taken]

    # -- pickling -----------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "capacity": self.capacity,
            "row_width": self.row_width,
            "session_id": self.session_id,
            "scoring": self._scoring,
        }
        if self.session_id is None:
            # A local table travels as a copy of its state, active order included.
            state["rows"] = self.rows.copy()
            state["active"] = list(self._active)
            state["labels"] = dict(self._labels)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.capacity = state["capacity"]
        self.row_width = state["row_width"]
        self.session_id = state["session_id"]
        self._segment = None
        if self.session_id is None:
            self.rows = state["rows"]
            self.created = True
        else:
            # A shared table re-attaches; the receiving process never owns the segment.
            self._open_segment(self.session_id, create_if_missing=False)
        self._init_process_state()
        self._scoring = state["scoring"]
        if self.session_id is None:
            self._restore_active_order(state["active"])
            self._labels = state["labels"]

    def _restore_active_order(self, active: list[int]) -> None:
        self._active = list(active)
        for position, slot in enumerate(self._active):
            self._position[slot] = position

    # -- locking --------------------------------------------------------------------
    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        if self._closed:
            raise SegmentError("the table is closed")
        wait = self._lock_timeout if timeout is None else timeout
        me = threading.get_ident()
        if self._lock_owner == me:
            raise LockReentryError("this thread already holds the table lock (it is not re-entrant)")
        if not self._lock.acquire(timeout=wait):
            raise LockTimeoutError(
                f"could not acquire the table lock within {wait} s (held in this process, pid {os.getpid()})",
                holder_pid=os.getpid(),
            )
        self._lock_owner = me
        try:
            yield
        finally:
            self._lock_owner = None
            self._lock.release()

    def guard_row(self, slot: int) -> None:
        """Nothing to do: every reader takes the (process-local) lock, and a dead
        process takes its rows' only readers with it."""

    # -- pool membership --------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._generation

    def __len__(self) -> int:
        return len(self._active)

    def find(self, task_id: int) -> int:
        return self._slot_of.get(task_id, -1)

    def _claim_locked(
        self,
        task_id: int,
        creation_time: float,
        success_threshold: float,
        seed: float,
        generator_type: float,
        lp_score: float = 0.0,
        label_hash: float = 0.0,
    ) -> int:
        slot = self._slot_of.get(task_id, -1)
        if slot >= 0 or not self._free:
            return slot
        slot = self._free.pop()
        row = self.rows[slot]
        row[:] = 0.0
        row[TASK_ID] = task_id
        row[CREATION_TIME] = creation_time
        row[SUCCESS_THRESHOLD] = success_threshold
        row[SEED] = seed
        row[GENERATOR_TYPE] = generator_type
        row[LP_SCORE] = lp_score
        row[LABEL_HASH] = label_hash
        row[IS_ACTIVE] = 1.0
        self._slot_of[task_id] = slot
        self._position[slot] = len(self._active)
        self._active.append(slot)
        self._generation += 1
        return slot

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
        with self.lock():
            if new_only and task_id in self._slot_of:
                return TRACKED
            return self._claim_locked(
                task_id, creation_time, success_threshold, seed, generator_type, lp_score, label_hash
            )

    def release(self, task_id: int) -> bool:
        with self.lock():
            slot = self._slot_of.pop(task_id, -1)
            if slot < 0:
                return False
            self.rows[slot] = 0.0
            position = self._position[slot]
            last = self._active.pop()
            if last != slot:
                self._active[position] = last
                self._position[last] = position
            self._position[slot] = -1
            self._free.append(slot)
            self._generation += 1
            return True

    def clear(self) -> None:
        with self.lock():
            self.rows[:] = 0.0
            self._slot_of.clear()
            for slot in self._active:
                self._position[slot] = -1
            self._active.clear()
            self._free = list(range(self.capacity - 1, -1, -1))
            self._generation += 1

    def active_ids(self) -> np.ndarray:
        with self.lock():
            return self.rows[self._active, TASK_ID].astype(np.int64)

    def active_slots(self) -> np.ndarray:
        with self.lock():
            return np.array(self._active, dtype=np.int64)

    # -- rows ---------------------------------------------------------------------------
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
        with self.lock():
            slot = self._claim_locked(task_id, creation_time, create_threshold, seed, generator_type)
            if slot < 0:
                return -1
            row = self.rows[slot].tolist()
            _update_row(row, score, ema_alpha, success_threshold, bidirectional)
            if not math.isnan(lp_score):
                row[LP_SCORE] = lp_score
            self.rows[slot] = row
            return slot

    def update_tracked(
        self,
        task_id: int,
        score: float,
        ema_alpha: float,
        bidirectional: BidirectionalParams,
        totals: RunningTotals | None = None,
        batch: BatchCounter | None = None,
    ) -> int:
        with self.lock():
            slot = self._slot_of.get(task_id, -1)
            if slot < 0:
                return -1
            row = self.rows[slot].tolist()
            _update_row(row, score, ema_alpha, math.nan, bidirectional)
            self.rows[slot] = row
        if totals is not None:
            totals.completions += 1
            totals.sum_scores += score
        if batch is not None:
            batch.count()
        return slot

    def read_row(self, slot: int) -> np.ndarray:
        with self.lock():
            return self.rows[slot].copy()

    def set_fields(self, task_id: int, fields: dict[int, float]) -> bool:
        with self.lock():
            slot = self._slot_of.get(task_id, -1)
            if slot < 0:
                return False
            row = self.rows[slot]
            for column, value in fields.items():
                row[column] = value
            return True

    # -- labels ---------------------------------------------------------------------------
    def set_label(self, task_id: int, label: str, label_hash: int) -> bool:
        with self.lock():
            slot = self._slot_of.get(task_id, -1)
            if slot < 0:
                return False
            self.rows[slot, LABEL_HASH] = label_hash
            self._labels[label_hash] = label
            return True

    def label_for_hash(self, label_hash: int) -> str | None:
        return self._labels.get(label_hash)

    def label_hash_of(self, task_id: int) -> int:
        with self.lock():
            slot = self._slot_of.get(task_id, -1)
            return 0 if slot < 0 else int(self.rows[slot, LABEL_HASH])

    # -- scores, distribution, sampling, eviction -------------------------------------------
    def configure_scoring(self, bidirectional: bool, exploration_bonus: float, min_samples_for_lp: float) -> None:
        if not math.isfinite(exploration_bonus) or not min_samples_for_lp >= 0.0:
            raise ValueError("exploration_bonus must be finite and min_samples_for_lp >= 0")
        self._scoring = (bool(bidirectional), float(exploration_bonus), float(min_samples_for_lp))

    def _slots_of(self, ids: np.ndarray) -> np.ndarray:
        """Slot of each id, -1 when untracked."""
        get = self._slot_of.get
        return np.array([get(task_id, -1) for task_id in ids.tolist()], dtype=np.intp)

    def _slot_scores(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score, mature) of each slot (-1: untracked), SPEC.md score_task."""
        bidirectional, bonus, min_samples = self._scoring
        rows = self.rows[slots]
        count = rows[:, COMPLETION_COUNT]
        active = (slots >= 0) & (rows[:, TASK_ID] != 0.0) & (rows[:, IS_ACTIVE] != 0.0)
        if bidirectional:
            score = np.where(count > 0, rows[:, LP_SCORE], 0.0)
            few = count < min_samples
        else:
            ema = rows[:, REWARD_EMA]
            score = np.sqrt(np.maximum(rows[:, EMA_SQUARED] - ema * ema, 0.0))
            few = (count < 2) | (count < min_samples)
        score = np.where(active & ~few, score, bonus)
        return score, active & (count >= min_samples)

    def refresh_distribution(self, params: DistributionParams, ids: np.ndarray | None = None) -> bool:
        with self.lock():
            slots = np.array(self._active, dtype=np.intp) if ids is None else self._slots_of(ids)
        mature = bool(self._slot_scores(slots)[1].any())
        if mature:
            self.compute_lp_distribution(params)
        return mature

    def scores(self, ids: np.ndarray) -> np.ndarray:
        with self.lock():
            return self._slot_scores(self._slots_of(ids))[0]

    def _evictable(self, slots: np.ndarray, min_presentations: float) -> np.ndarray:
        rows = self.rows[slots]
        return (
            (slots >= 0)
            & (rows[:, TASK_ID] != 0.0)
            & (rows[:, IS_ACTIVE] != 0.0)
            & (rows[:, COMPLETION_COUNT] >= min_presentations)
        )

    def recommend_eviction(self, ids: np.ndarray, min_presentations: float, percentile: float) -> int:
        check_percentile(percentile)
        if ids.size <= 1:
            return 0
        with self.lock():
            slots = self._slots_of(ids)
            scores = self._slot_scores(slots)[0]
            _, first = np.unique(ids, return_index=True)
            distinct = np.sort(scores[first])
            threshold = distinct[max(0, int(distinct.size * percentile))]
            eligible = self._evictable(slots, min_presentations) & (scores <= threshold)
            if not eligible.any():
                return 0
            candidates = np.flatnonzero(eligible)
            return int(ids[candidates[np.argmin(scores[candidates])]])

    def eviction_candidates(
        self, min_presentations: float, percentile: float, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        check_percentile(percentile)
        with self.lock():
            slots = np.array(self._active, dtype=np.intp)
            none = np.empty(0, dtype=np.int64)
            if slots.size <= 1:
                return none, none
            scores = self._slot_scores(slots)[0]
            threshold = np.sort(scores)[max(0, int(slots.size * percentile))]
            eligible = np.flatnonzero(self._evictable(slots, min_presentations) & (scores <= threshold))
            order = eligible[np.argsort(scores[eligible], kind="stable")][:k]
            chosen = slots[order].astype(np.int64)
            return chosen, self.rows[chosen, TASK_ID].astype(np.int64)

    def pool_eviction_candidate(self, min_presentations: float, percentile: float, refresh_threshold: bool) -> int:
        """Always current: the pure engine recomputes the threshold on every call (the "before")."""
        ids = self.eviction_candidates(min_presentations, percentile, 1)[1]
        return int(ids[0]) if ids.size else 0

    def choose_pool_task(
        self,
        uniform: float,
        min_presentations: float,
        percentile: float,
        refresh_threshold: bool,
        refresh: DistributionParams | None = None,
        batch: BatchCounter | None = None,
    ) -> int:
        check_uniform(uniform)
        due = refresh is not None and (batch is None or batch.fresh_epoch != batch.epoch)
        if due and self.refresh_distribution(refresh) and batch is not None:
            batch.fresh_epoch = batch.epoch
        self.chosen_label_hash = 0
        self.chosen_slot = -1
        if len(self._active) < self.capacity:
            return 0
        candidate = self.pool_eviction_candidate(min_presentations, percentile, refresh_threshold)
        chosen = candidate or self.sample(uniform)
        slot = self.chosen_slot = self.find(chosen)
        if slot >= 0:
            self.chosen_label_hash = int(self.rows[slot, LABEL_HASH])
        if candidate:
            self.release(candidate)
            if batch is not None:
                batch.count()
            return -candidate
        return chosen

    def sample(self, uniform: float) -> int:
        check_uniform(uniform)
        with self.lock():
            n = len(self._active)
            if n == 0:
                return 0
            occupied = np.flatnonzero(self.rows[:, TASK_ID] != 0.0)
            weights = np.zeros(self.capacity)
            weights[occupied] = np.maximum(self._slot_scores(occupied)[0], 0.0)
            cumulative = np.cumsum(weights)
            total = cumulative[-1]
            if total > 0.0:
                slot = int(np.searchsorted(cumulative, uniform * total, side="right"))
                if slot < self.capacity and weights[slot] > 0.0:
                    return int(self.rows[slot, TASK_ID])
            return int(self.rows[self._active[min(int(uniform * n), n - 1)], TASK_ID])

    def compute_lp_distribution(self, params: DistributionParams) -> None:
        with self.lock():
            if not self._active:
                return
            slots = np.array(self._active, dtype=np.intp)
            rows = self.rows[slots]
            x = learning_progress(rows[:, P_FAST], rows[:, P_SLOW], params.early_progress_amplification)
            x = x + params.progress_smoothing
            if params.performance_bonus_weight > 0:
                x = x + rows[:, P_TRUE] * params.performance_bonus_weight
            n = x.size
            if params.lp_score_temperature == 0:
                mean = ordered_sum(x) / n
                deviation = x - mean
                std = math.sqrt(ordered_sum(deviation * deviation) / n)
                if std > 1e-10:
                    x = (x - mean) / std * params.z_score_amplification
            elif params.lp_score_temperature > 0:
                x = x / params.lp_score_temperature
            x = 1 / (1 + np.exp(-np.clip(x, -500, 500)))
            total = ordered_sum(x)
            if total > 0:
                x = x / total
            else:
                x = np.full(n, 1.0 / n)
            self.rows[slots, LP_SCORE] = x

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._segment is not None:
            self.rows = np.zeros((0, self.row_width), dtype=np.float64)
            _shm.close_segment(self._segment)

    def unlink(self) -> None:
        """Remove the segment's name; a no-op for local tables and for tables that only attached."""
        if self._segment is not None and self.created:
            _shm.unlink_segment(self._segment)


def _update_row(
    row: list[float], s: float, a: float, success_threshold: float, bidirectional: BidirectionalParams | None
) -> None:
    """SPEC.md update_task_performance_with_bidirectional_emas, in place on a row list."""
    n = row[COMPLETION_COUNT]
    row[COMPLETION_COUNT] = n + 1
    row[TOTAL_SCORE] += s
    row[LAST_SCORE] = s
    if n == 0:
        row[REWARD_EMA] = s
        row[EMA_SQUARED] = s * s
    else:
        row[REWARD_EMA] = (1 - a) * row[REWARD_EMA] + a * s
        row[EMA_SQUARED] = (1 - a) * row[EMA_SQUARED] + a * (s * s)
    if math.isnan(success_threshold):
        threshold = row[SUCCESS_THRESHOLD]
    else:
        threshold = row[SUCCESS_THRESHOLD] = success_threshold
    hit = 1.0 if s >= threshold else 0.0
    row[SUCCESS_RATE_EMA] = hit if n == 0 else (1 - a) * row[SUCCESS_RATE_EMA] + a * hit
    if bidirectional is None:
        return
    t = bidirectional.fast_timescale
    u = bidirectional.slow_timescale
    if bidirectional.use_baseline_normalization:
        if row[RANDOM_BASELINE] == 0.0:
            row[RANDOM_BASELINE] = min(s, 0.75)
        baseline = row[RANDOM_BASELINE]
        x = max(s - baseline, 0.0) / max(1.0 - baseline, 1e-10)
    else:
        x = s
    if row[P_FAST] == 0.0 and row[P_SLOW] == 0.0:
        row[P_FAST] = row[P_SLOW] = x
        row[P_TRUE] = s
    else:
        row[P_FAST] = x * t + row[P_FAST] * (1.0 - t)
        row[P_SLOW] = x * u + row[P_SLOW] * (1.0 - u)
        row[P_TRUE] = s * t + row[P_TRUE] * (1.0 - t)
