"""Learning-progress scorers: task rows -> sampling scores.

The bidirectional scorer's distribution is one table pass
(``TaskTracker.compute_lp_distribution``), recomputed lazily and at most once
per ``perf_invalidation_batch_size`` updates and evictions (SPEC.md,
deliberate change 1).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lptrack import _table as col
from lptrack._lpmath import REWEIGHT_DENOMINATOR_FLOOR, learning_progress
from lptrack._table import DistributionParams

if TYPE_CHECKING:
    from lptrack.config import LearningProgressConfig
    from lptrack.tracker import TaskTracker


@dataclass
class LPScorerStats:
    """Summary of the current learning-progress distribution."""

    mean_learning_progress: float = 0.0
    mean_lp_score: float = 0.0
    mean_task_success_rate: float = 0.0
    mean_sample_prob: float = 0.0
    num_zeros_lp_dist: int = 0

    def model_dump(self) -> dict[str, float]:
        return dataclasses.asdict(self)


class LPScorer(abc.ABC):
    """Turns a tracker's rows into per-task scores.

    Updates and evictions are counted together in ``batch``; every
    ``perf_invalidation_batch_size``-th ends a batch (SPEC.md, deliberate
    change 1), bumping ``batch_epoch``: what is derived from scores between
    batches (the bidirectional distribution, the algorithm's eviction
    candidates) is refreshed once per epoch.  ``batch`` is the table's kind of
    BatchCounter, so the algorithm's hot path lets the table count an update or
    an eviction (and run a due pass) in the call that makes it.
    """

    #: The table's score rule (``Table.configure_scoring``).
    bidirectional: bool = False
    #: The pass a table runs before scores are read while the distribution is
    #: stale (None: this scorer's scores need none).
    refresh_params: DistributionParams | None = None

    def __init__(self, config: LearningProgressConfig, tracker: TaskTracker) -> None:
        self.config = config
        self.tracker = tracker
        self.batch = tracker.table.new_batch_counter(config.invalidation_batch_size(tracker.max_memory_tasks))
        tracker.configure_scoring(self.bidirectional, config.exploration_bonus, config.min_samples_for_lp)

    @property
    def batch_epoch(self) -> int:
        return self.batch.epoch

    @property
    def pending_refresh(self) -> DistributionParams | None:
        """``refresh_params`` while the distribution is stale, else None; see ``mark_fresh``."""
        batch = self.batch
        return self.refresh_params if batch.fresh_epoch != batch.epoch else None

    def mark_fresh(self) -> None:
        """``pending_refresh``'s pass ran (a table may also mark ``batch`` fresh itself)."""
        self.batch.fresh_epoch = self.batch.epoch

    @abc.abstractmethod
    def score_task(self, task_id: int, tracker: TaskTracker) -> float:
        """The task's sampling score (exploration_bonus while it has too few samples)."""

    def score_many(self, ids: np.ndarray) -> np.ndarray:
        """``score_task`` of every id of an int64 array, in one table pass."""
        self.refresh(ids)
        return self.tracker.scores(ids)

    def refresh(self, ids: np.ndarray | None = None) -> None:
        """Bring the scores of ``ids`` (None: of the pool) up to date before they are read."""

    def update_with_score(self, task_id: int, score: float) -> None:
        """Note that ``task_id`` got a score (its row is already updated by the tracker)."""
        self.batch.count()

    def remove_task(self, task_id: int) -> None:
        """Note that ``task_id`` left the pool."""
        self.batch.count()

    def get_stats(self) -> LPScorerStats:
        return LPScorerStats()

    def get_state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Scorers keep nothing beyond the rows: what derives from them is dropped."""
        self.invalidate_cache()

    def invalidate_cache(self) -> None:
        """Drop anything derived from the rows (an explicit request, not a batched event)."""
        self.batch.end_batch()

    @property
    def _stale_dist(self) -> bool:
        """The original's flag: whether what derives from the rows is due for recomputation.
        Setting it True is ``invalidate_cache()``; False keeps the current scores."""
        batch = self.batch
        return batch.fresh_epoch != batch.epoch

    @_stale_dist.setter
    def _stale_dist(self, stale: bool) -> None:
        if stale:
            self.invalidate_cache()
        else:
            self.mark_fresh()


class BidirectionalLPScorer(LPScorer):
    """Scores from the fast/slow success EMAs (p_fast, p_slow) through the LP distribution."""

    bidirectional = True

    def __init__(self, config: LearningProgressConfig, tracker: TaskTracker) -> None:
        super().__init__(config, tracker)
        self.refresh_params = self._distribution_params()  # stale until the first pass

    def _distribution_params(self) -> DistributionParams:
        config = self.config
        return DistributionParams(
            early_progress_amplification=config.early_progress_amplification,
            progress_smoothing=config.progress_smoothing,
            performance_bonus_weight=config.performance_bonus_weight,
            lp_score_temperature=config.lp_score_temperature,
            z_score_amplification=config.z_score_amplification,
        )

    @property
    def is_stale(self) -> bool:
        """Whether the next score of a task with enough samples recomputes the distribution."""
        return self.pending_refresh is not None

    def score_task(self, task_id: int, tracker: TaskTracker) -> float:
        stats = tracker.get_task_stats(task_id)
        if stats is None or stats["completion_count"] < self.config.min_samples_for_lp:
            return self.config.exploration_bonus
        if self.pending_refresh is None:
            return stats["lp_score"]
        tracker.compute_lp_distribution(self.refresh_params)
        self.mark_fresh()
        stats = tracker.get_task_stats(task_id)
        return self.config.exploration_bonus if stats is None else stats["lp_score"]

    def refresh(self, ids: np.ndarray | None = None) -> None:
        """The lazy rule: recompute only while stale, and only if some task of ``ids``
        (None: of the pool) has enough samples, exactly when the per-task
        ``score_task`` loop would have."""
        if self.pending_refresh is not None and self.tracker.refresh_distribution(self.refresh_params, ids):
            self.mark_fresh()

    def get_stats(self) -> LPScorerStats:
        rows = self.tracker.snapshot_rows()
        if rows.shape[0] == 0:
            return LPScorerStats()
        lp = learning_progress(rows[:, col.P_FAST], rows[:, col.P_SLOW], self.config.early_progress_amplification)
        seen = rows[rows[:, col.COMPLETION_COUNT] > 0]
        if seen.shape[0] == 0:
            return LPScorerStats(mean_learning_progress=float(np.mean(lp)))
        lp_scores = seen[:, col.LP_SCORE]
        mean_lp_score = float(np.mean(lp_scores))
        return LPScorerStats(
            mean_learning_progress=float(np.mean(lp)),
            mean_lp_score=mean_lp_score,
            mean_task_success_rate=float(np.mean(seen[:, col.SUCCESS_RATE_EMA])),
            mean_sample_prob=mean_lp_score,
            num_zeros_lp_dist=int(np.count_nonzero(lp_scores == 0.0)),
        )

    def get_state(self) -> dict[str, Any]:
        # The distribution lives in the rows; a restored scorer recomputes it before use.
        return {"stale_dist": True}

    # -- the original's private helpers, which its tests call -------------------------------------------
    def _get_ema(self, task_id: int) -> tuple[float, float, float, float]:
        """(p_fast, p_slow, p_true, random_baseline) of a task; zeros when it is not tracked."""
        stats = self.tracker.get_task_stats(task_id)
        if stats is None:
            return 0.0, 0.0, 0.0, 0.0
        return stats["p_fast"], stats["p_slow"], stats["p_true"], stats["random_baseline"]

    def _reweight(self, p: float) -> float:
        """R(p) with theta = early_progress_amplification (SPEC.md; p unclipped, as in the original)."""
        theta = self.config.early_progress_amplification
        denominator = p + theta * (1.0 - 2.0 * p)
        if abs(denominator) < REWEIGHT_DENOMINATOR_FLOOR:
            return 0.0 if p < 0.5 else 1.0
        return p * (1.0 - theta) / denominator

    def _learning_progress(self, task_ids: list[int] | None = None) -> np.ndarray:
        """The learning progress of each id (None: every tracked task, in
        ``get_all_tracked_tasks()`` order); 0.0 for an id not tracked."""
        rows = self.tracker.snapshot_rows()
        p_fast, p_slow = rows[:, col.P_FAST], rows[:, col.P_SLOW]
        if task_ids is not None:
            tracked = rows.shape[0]  # the index of a zero appended for untracked ids
            position = dict(zip(rows[:, col.TASK_ID].astype(np.int64).tolist(), range(tracked)))
            index = np.array([position.get(task_id, tracked) for task_id in task_ids], dtype=np.int64)
            p_fast, p_slow = np.append(p_fast, 0.0)[index], np.append(p_slow, 0.0)[index]
        return learning_progress(p_fast, p_slow, self.config.early_progress_amplification)

    @staticmethod
    def _sigmoid(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(x, -500, 500)))

    def _calculate_task_distribution(self, tracker: TaskTracker | None = None) -> None:
        """Recompute the distribution now (one pass) and mark it fresh."""
        self.tracker.compute_lp_distribution(self._distribution_params())
        self.mark_fresh()


class BasicLPScorer(LPScorer):
    """Scores by the spread of a task's scores: sqrt(E[s^2] - E[s]^2) from its EMAs."""

    def score_task(self, task_id: int, tracker: TaskTracker) -> float:
        stats = tracker.get_task_stats(task_id)
        if stats is None or stats["completion_count"] < 2:
            return self.config.exploration_bonus
        if stats["completion_count"] < self.config.min_samples_for_lp:
            return self.config.exploration_bonus
        reward_ema = stats["reward_ema"]
        return math.sqrt(max(0.0, stats["ema_squared"] - reward_ema * reward_ema))
