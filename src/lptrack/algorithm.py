"""``LearningProgressAlgorithm``: the curriculum's decisions on top of the tracker and scorer.

It scores tasks, recommends evictions, and keeps per-label bookkeeping
(sampling and eviction counts, a FIFO of labels no longer in the pool).  Label
bookkeeping is per algorithm instance; the rows (and, on the native engine,
the label strings) are shared.
"""

from __future__ import annotations

import operator
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from lptrack import _table as col
from lptrack._lpmath import gini
from lptrack._table import MAX_TASK_ID, TRACKED, check_task_id
from lptrack.config import LearningProgressConfig
from lptrack.scorers import BasicLPScorer, BidirectionalLPScorer, LPScorer
from lptrack.tracker import bidirectional_params, check_capacity, create_task_tracker, label_hash

UNKNOWN_LABEL = "unknown"


class StatsLogger:
    """Base of objects that report curriculum statistics as a flat ``{name: number}`` dict."""

    def __init__(self, enable_detailed_logging: bool = False) -> None:
        self.enable_detailed_logging = enable_detailed_logging

    def get_base_stats(self) -> dict[str, float]:
        return {}

    def get_detailed_stats(self) -> dict[str, float]:
        return {}

    def stats(self, prefix: str = "") -> dict[str, float]:
        """Base stats, plus detailed ones when enabled, each name prefixed with ``prefix``."""
        stats = self.get_base_stats()
        if self.enable_detailed_logging:
            stats.update(self.get_detailed_stats())
        return {f"{prefix}{name}": value for name, value in stats.items()}

    def invalidate_cache(self) -> None:
        """Nothing cached here; subclasses that cache drop it."""


class NullStatsLogger(StatsLogger):
    """Reports nothing."""


class CurriculumTask:
    """One task of the curriculum: an id, its environment config and its running score.

    Public, read-only: ``task_id`` (the int to pass back to
    ``update_task_performance``), ``env_cfg`` (what the task factory or the fixed
    task list gave) and ``label`` (see ``get_label``).  ``_task_id`` and
    ``get_env_cfg()`` stay for the original's users.
    """

    # The running score until complete() first sets it on the instance: class
    # defaults make a task cheaper to create (one is made every few episodes).
    _num_completions = 0
    _total_score = 0.0
    _mean_score = 0.0
    #: A label assigned to ``_label`` (the original's attribute, which its tests set).
    _label_override: str | None = None

    def __init__(self, task_id: int, env_cfg: Any, slice_values: dict[str, Any] | None = None) -> None:
        self._task_id = task_id
        self._env_cfg = env_cfg
        self._slice_values = {} if slice_values is None else slice_values

    @property
    def task_id(self) -> int:
        return self._task_id

    @property
    def env_cfg(self) -> Any:
        return self._env_cfg

    @property
    def label(self) -> str:
        """``get_label()``: the env config's label, "unknown" without one."""
        return self.get_label()

    def get_label(self) -> str:
        """``env_cfg.label`` as a str (``env_cfg["label"]`` for mappings); "unknown" when absent or None."""
        if self._label_override is not None:
            return self._label_override
        label = getattr(self._env_cfg, "label", None)
        if label is None and isinstance(self._env_cfg, Mapping):
            label = self._env_cfg.get("label")
        if type(label) is str:
            return label
        return UNKNOWN_LABEL if label is None else str(label)

    @property
    def _label(self) -> str:
        """The original's label attribute: ``get_label()``; assigning it overrides the env config's."""
        return self.get_label()

    @_label.setter
    def _label(self, label: object) -> None:
        self._label_override = UNKNOWN_LABEL if label is None else str(label)

    def get_env_cfg(self) -> Any:
        return self._env_cfg

    def get_slice_values(self) -> dict[str, Any]:
        return self._slice_values

    def complete(self, score: float) -> None:
        self._num_completions += 1
        self._total_score += score
        self._mean_score = self._total_score / self._num_completions


class LearningProgressAlgorithm(StatsLogger):
    """The learning-progress curriculum (SPEC.md ``LearningProgressAlgorithm``)."""

    def __init__(
        self,
        num_tasks: int,
        stats_logger: StatsLogger | None = None,
        hypers: LearningProgressConfig | None = None,
    ) -> None:
        self.num_tasks = check_capacity("num_tasks", num_tasks)
        self.hypers = LearningProgressConfig() if hypers is None else hypers
        super().__init__(enable_detailed_logging=self.hypers.show_curriculum_troubleshooting_logging)
        self.stats_logger = NullStatsLogger() if stats_logger is None else stats_logger
        self.performance_mode = self.hypers.performance_mode
        self.task_tracker = create_task_tracker(
            max_memory_tasks=self.hypers.num_active_tasks,
            ema_alpha=self.hypers.task_tracker_ema_alpha,
            use_shared_memory=self.hypers.use_shared_memory,
            default_success_threshold=self.hypers.task_default_success_threshold,
            default_generator_type=self.hypers.task_default_generator_type,
            _session_id=self.hypers.session_id,
            enable_task_list_cache=self.hypers.perf_cache_task_list,
            engine=self.hypers.engine,
        )
        scorer_class = BidirectionalLPScorer if self.hypers.use_bidirectional else BasicLPScorer
        self.scorer: LPScorer = scorer_class(self.hypers, self.task_tracker)
        self._curriculum: Any = None
        self._late_updates = 0
        self._label_task_counts: dict[str, int] = {}
        self._sampling_counts: dict[str, int] = {}
        # The bound chooser (_bind_table_calls) counts samples here by label hash,
        # in C; _label_sampling_counts folds them into _sampling_counts when read.
        self._sampled_hashes: dict[int, int] = {}
        self._label_eviction_counts: dict[str, int] = {}  # cumulative
        self._epoch_eviction_counts: dict[str, int] = {}
        self._inactive_labels: dict[str, None] = {}  # insertion-ordered set: the FIFO
        self._bidirectional = bidirectional_params(self.hypers)
        self._label_hashes: dict[str, int] = {}
        self._labels_by_hash: dict[int, str] = {}
        self._registered_labels: set[str] = set()
        self._table = self.task_tracker.table
        self._percentile = self.hypers.eviction_threshold_percentile
        # When the eviction threshold is recomputed (a Table.bind_choose rule): always
        # at batch size 1, which wants exact answers; once per batch for the basic
        # scorer, whose scores move with every update; otherwise the distribution
        # pass keeps it current.
        if self.scorer.batch.size == 1:
            self._threshold_rule = "always"
        else:
            self._threshold_rule = "never" if self.scorer.bidirectional else "per_batch"
        self._threshold_epoch = -1
        # The scorer's batches and pass, which the hot path hands to the table.
        self._batch = self.scorer.batch
        self._refresh_params = self.scorer.refresh_params
        self._bind_table_calls()
        self._finalizer = self._make_finalizer()

    def _make_finalizer(self) -> weakref.finalize | None:
        """Clean the shared segment up when the creating algorithm is collected."""
        if not self.task_tracker.is_shared:
            return None
        return weakref.finalize(self, self.task_tracker.cleanup_shared_memory)

    def _bind_table_calls(self) -> None:
        """The two table calls of every episode, their fixed arguments bound once (the
        tracker's ema_alpha and totals, the scorer's batch and pass, the percentile)."""
        tracker = self.task_tracker
        self._update_in_table = self._table.bind_update(
            tracker.ema_alpha, self._bidirectional, tracker.totals, self._batch
        )
        self._choose_in_table = self._table.bind_choose(
            self._percentile, self._refresh_params, self._batch, self._sampled_hashes, self._threshold_rule
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_finalizer", "_update_in_table", "_choose_in_table"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._finalizer = None  # the receiving process only attached
        self._registered_labels = set()  # the pure engine's shared tables keep labels per process
        self._bind_table_calls()

    # -- scoring ------------------------------------------------------------------------------
    def score_tasks(self, task_ids: Iterable[int]) -> dict[int, float]:
        """{id: score} of every id: the ids converted once, the scores read in one
        table pass, the dict built in one step (no Python loop per task here)."""
        if type(task_ids) is not list:
            task_ids = list(task_ids)
        scores = self.scorer.score_many(self._table.task_id_array(task_ids))
        return dict(zip(task_ids, scores.tolist()))

    def get_task_score(self, task_id: int) -> float:
        return self.scorer.score_task(task_id, self.task_tracker)

    def recommend_eviction(self, task_ids: list[int], min_presentations: int = 5) -> int | None:
        """The lowest-scoring evictable task (first in ``task_ids`` order on ties), or None.

        Evictable: tracked, at least ``min_presentations`` completions, and a
        score at or below the ``eviction_threshold_percentile`` of the scores.
        """
        if not len(task_ids):
            return None
        ids = self._table.task_id_array(task_ids)
        self.scorer.refresh(ids)
        return self.task_tracker.recommend_eviction(ids, min_presentations, self.hypers.eviction_threshold_percentile)

    # -- the pool, for Curriculum --------------------------------------------------------------
    def pool_size(self) -> int:
        """Tasks in the pool (of every process of a shared session)."""
        return self.task_tracker.num_tracked()

    def is_tracked(self, task_id: int) -> bool:
        return self.task_tracker.get_task_index(task_id) is not None

    def recommend_pool_eviction(self, min_presentations: int) -> int | None:
        """``recommend_eviction`` over the whole pool (``get_all_tracked_tasks()`` order),
        in O(log pool size).

        At batch size 1 exactly that; with larger batches the percentile
        threshold may be up to a batch old, as the scores are between
        recomputations (SPEC.md, deliberate change 1).
        """
        self.scorer.refresh()
        return self._table.pool_eviction_candidate(min_presentations, self._percentile, self._refresh_threshold()) or None

    def choose_pool_task(self, uniform: float, min_presentations: int) -> int:
        """Curriculum's pick for the next episode, in one table call: 0 while the pool
        has room (create a task), ``-task_id`` after evicting that task (create
        one next), else a pool task sampled by score, counted as sampled (as
        ``on_task_sampled``); O(log pool size), ``uniform`` in [0, 1)."""
        # table.choose_pool_task, bound: it recomputes the eviction threshold when
        # _refresh_threshold would, runs a due pass, counts an eviction in the
        # scorer's batch and a sample in _sampled_hashes.
        choice = self._choose_in_table(uniform, min_presentations)
        if choice < 0:
            hashed = self._table.chosen_label_hash
            self._label_evicted(self._labels_by_hash.get(hashed) or self._label_for_hash(hashed))
        return choice

    @property
    def _label_sampling_counts(self) -> dict[str, int]:
        """Sampling counts per label (those counted by label hash folded in first)."""
        if self._sampled_hashes:
            counts = self._sampling_counts
            for hashed, sampled in self._sampled_hashes.items():
                label = self._label_for_hash(hashed)
                if label is not None:
                    counts[label] = counts.get(label, 0) + sampled
            self._sampled_hashes.clear()
        return self._sampling_counts

    @_label_sampling_counts.setter
    def _label_sampling_counts(self, counts: dict[str, int]) -> None:
        self._sampled_hashes.clear()
        self._sampling_counts = counts

    # -- the original's private names: its own code and tests read them ---------------------------------
    @property
    def _active_labels(self) -> frozenset[str]:
        """Labels with a task in the pool (the original's set; read-only here)."""
        return frozenset(self._label_task_counts)

    @property
    def _inactive_labels_fifo(self) -> list[str]:
        """Labels no longer in the pool, oldest first (a copy; assigning replaces them)."""
        return list(self._inactive_labels)

    @_inactive_labels_fifo.setter
    def _inactive_labels_fifo(self, labels: Iterable[str]) -> None:
        self._inactive_labels = dict.fromkeys(labels)

    @property
    def _label_evictions(self) -> dict[str, int]:
        """Evictions per label in the current epoch (the live dict, as in the original)."""
        return self._epoch_eviction_counts

    @_label_evictions.setter
    def _label_evictions(self, counts: dict[str, int]) -> None:
        self._epoch_eviction_counts = counts

    def _label_for_hash(self, hashed: int) -> str | None:
        """The label string of a label hash (0: no label), cached per process."""
        label = self._labels_by_hash.get(hashed)
        if label is None and hashed:
            label = self._table.label_for_hash(hashed)
            if label is not None:
                self._labels_by_hash[hashed] = label
        return label

    #: The slot of the task the last ``choose_pool_task`` sampled or evicted (-1: none).
    #: (An attrgetter, not a def: read once per adopted task, it needs no Python frame.)
    chosen_slot = property(operator.attrgetter("_table.chosen_slot"))

    def _refresh_threshold(self) -> bool:
        """Whether recommend_pool_eviction's table call recomputes the eviction threshold
        first, by ``_threshold_rule`` (the bound chooser applies the same rule in C)."""
        if self._threshold_rule != "per_batch":
            return self._threshold_rule == "always"
        epoch = self._batch.epoch
        if epoch == self._threshold_epoch:
            return False
        self._threshold_epoch = epoch
        return True

    def should_evict_task(self, task_id: int, min_presentations: int) -> bool:
        """Always False: eviction goes through ``recommend_eviction``."""
        return False

    # -- pool events ----------------------------------------------------------------------------
    def on_task_created(self, task: CurriculumTask) -> None:
        """Track the task; when it got a slot, give it exploration_bonus and record its label."""
        self.add_pool_task(task)

    def add_pool_task(self, task: CurriculumTask, sampled: bool = False) -> int:
        """``on_task_created``, returning the task's slot (-1: the pool is full, it is
        not tracked); ``sampled`` also counts it as sampled (as ``on_task_sampled``)."""
        task_id = task._task_id
        if type(task_id) is not int or not 0 < task_id < MAX_TASK_ID:
            task_id = check_task_id(task_id)
        label = task.get_label()
        tracker = self.task_tracker
        hashed = self._label_hashes.get(label)
        if hashed is None:
            hashed = self._label_hashes[label] = label_hash(label)
            self._labels_by_hash[hashed] = label
        slot = tracker.claim_task(task_id, self.hypers.exploration_bonus, hashed, new_only=True)
        if slot == TRACKED:
            self._recreate(task_id, label)
            slot = self._table.find(task_id)
        elif slot < 0:
            return -1
        else:
            if label not in self._registered_labels:
                # The first task of a label in this process registers its string for every process.
                tracker.set_task_label(task_id, label)
                self._registered_labels.add(label)
            self._label_joined_pool(label)
        if sampled:
            self._sampling_counts[label] = self._sampling_counts.get(label, 0) + 1
        return slot

    def _recreate(self, task_id: int, label: str) -> None:
        """on_task_created of a task already tracked: exploration_bonus again, the new label."""
        tracker = self.task_tracker
        previous_label = tracker.get_task_label(task_id)
        tracker.update_lp_score(task_id, self.hypers.exploration_bonus)
        tracker.set_task_label(task_id, label)
        if previous_label != label:
            if previous_label is not None:
                self._label_left_pool(previous_label)
            self._label_joined_pool(label)

    def on_task_evicted(self, task_id: int) -> None:
        """Remove the task, count its eviction under its label, and count the event for the scorer."""
        self.evict_pool_task(task_id)

    def evict_pool_task(self, task_id: int) -> bool:
        """``on_task_evicted``, telling whether this call removed the task (False: it was
        not tracked, e.g. another process of the session evicted it first)."""
        task_id = check_task_id(task_id)
        label = self._label_for_hash(self._table.label_hash_of(task_id))
        if not self.task_tracker.remove_task(task_id):
            return False
        self.scorer.remove_task(task_id)
        self._label_evicted(label)
        return True

    def _label_evicted(self, label: str | None) -> None:
        """The label bookkeeping of an evicted task."""
        if label is not None:
            self._label_eviction_counts[label] = self._label_eviction_counts.get(label, 0) + 1
            self._epoch_eviction_counts[label] = self._epoch_eviction_counts.get(label, 0) + 1
            self._label_left_pool(label)

    def _label_joined_pool(self, label: str) -> None:
        self._label_task_counts[label] = self._label_task_counts.get(label, 0) + 1
        self._inactive_labels.pop(label, None)

    def _label_left_pool(self, label: str) -> None:
        """One task of ``label`` left; the last one moves the label to the inactive FIFO."""
        remaining = self._label_task_counts.get(label, 0) - 1
        if remaining > 0:
            self._label_task_counts[label] = remaining
            return
        self._label_task_counts.pop(label, None)
        self._inactive_labels[label] = None
        while len(self._inactive_labels) > self.hypers.max_inactive_labels_retained:
            oldest = next(iter(self._inactive_labels))
            del self._inactive_labels[oldest]
            self._label_eviction_counts.pop(oldest, None)

    def on_task_sampled(self, task_id: int) -> None:
        label = self._label_for_hash(self._table.label_hash_of(check_task_id(task_id)))
        if label is not None:
            self._sampling_counts[label] = self._sampling_counts.get(label, 0) + 1

    def update_task_performance(self, task_id: int, score: float) -> None:
        """Record a score; a score for a task no longer tracked is ignored and counted as late."""
        # table.update_tracked, which also checks task_id and score: the row update,
        # the tracker's running totals and the scorer's batch count in one call.
        if self._update_in_table(task_id, score) < 0:
            self._late_updates += 1

    # -- label bookkeeping ------------------------------------------------------------------------
    def get_evictions(self) -> dict[str, int]:
        """Evictions per label in the current epoch."""
        return dict(self._epoch_eviction_counts)

    def get_and_reset_evictions(self) -> dict[str, int]:
        evictions, self._epoch_eviction_counts = self._epoch_eviction_counts, {}
        return evictions

    def get_and_reset_sampling_counts(self) -> dict[str, int]:
        counts, self._label_sampling_counts = self._label_sampling_counts, {}
        return counts

    def on_epoch_end(self) -> None:
        self._label_sampling_counts = {}
        self._epoch_eviction_counts = {}

    def get_pool_composition_stats(self) -> dict[str, dict[str, int]]:
        return {
            "pool_composition": dict(self._label_task_counts),
            "sampling_counts": dict(self._label_sampling_counts),
        }

    # -- statistics ----------------------------------------------------------------------------------
    def stats(self, prefix: str = "") -> dict[str, float]:
        """Base and detailed stats (plus Gini coefficients with troubleshooting logging); {} in performance mode."""
        if self.performance_mode:
            return {}
        stats = self.get_base_stats()
        stats.update(self.get_detailed_stats())
        if self.hypers.show_curriculum_troubleshooting_logging:
            stats.update(self.calculate_gini_coefficients())
        return {f"{prefix}{name}": value for name, value in stats.items()}

    def get_base_stats(self) -> dict[str, float]:
        global_stats = self.task_tracker.get_global_stats()
        stats: dict[str, float] = {
            "num_tasks": self.num_tasks,
            "tracker/mean_score": global_stats["mean_score"],
            "tracker/total_completions": global_stats["total_completions"],
            "late_updates": self._late_updates,
        }
        if self.performance_mode:
            return stats
        for prefix, counts in (
            ("pool_composition", self._label_task_counts),
            ("sampling_counts", self._label_sampling_counts),
            ("eviction_counts", self._label_eviction_counts),
        ):
            stats.update({f"{prefix}/{label}": count for label, count in counts.items()})
        return stats

    def get_detailed_stats(self) -> dict[str, float]:
        return {f"lp/{name}": value for name, value in self.scorer.get_stats().model_dump().items()}

    def calculate_gini_coefficients(self) -> dict[str, float]:
        """The original's inequality statistics, key for key (SPEC.md): over the tracked
        tasks (none: {}), Gini coefficients of completion counts, ages, raw learning
        progress |p_fast - p_slow| and sampling scores (``score_task``), per task and
        summed per label; of the label counts; the selectivity losses between them;
        the mean and max task age; per-task metrics with troubleshooting logging.
        ``debug/task_age_min_seconds`` is lptrack's own addition."""
        rows = self.task_tracker.snapshot_rows()
        if rows.shape[0] == 0:
            return {}
        task_ids = rows[:, col.TASK_ID].astype(np.int64)
        completions = rows[:, col.COMPLETION_COUNT]
        sampling_probs = self.scorer.score_many(task_ids)  # score_task of each: may run a due pass
        raw_lp = np.abs(rows[:, col.P_FAST] - rows[:, col.P_SLOW])
        ages = time.time() - rows[:, col.CREATION_TIME]
        # Labels grouped by hash: the same groups as by label string (no label: hash 0).
        _, label_of_task, tasks_per_label = np.unique(
            rows[:, col.LABEL_HASH], return_inverse=True, return_counts=True
        )
        stats: dict[str, float] = {}
        if self.hypers.show_curriculum_troubleshooting_logging:
            for task_id, count, lp, prob in zip(
                task_ids.tolist(), completions.tolist(), raw_lp.tolist(), sampling_probs.tolist()
            ):
                stats[f"task_metrics/{task_id}/completion_count"] = count
                stats[f"task_metrics/{task_id}/raw_lp"] = lp
                stats[f"task_metrics/{task_id}/sampling_prob"] = prob
        stats["curriculum_gini/pool_occupancy"] = gini(completions)
        stats["curriculum_gini/task_age"] = gini(ages)
        stats["debug/task_age_mean_seconds"] = float(ages.mean())
        stats["debug/task_age_max_seconds"] = float(ages.max())
        stats["curriculum_gini/raw_lp_scores"] = gini(raw_lp)
        stats["curriculum_gini/raw_lp_by_label"] = gini(np.bincount(label_of_task, weights=raw_lp))
        stats["curriculum_gini/zscored_lp_scores"] = gini(np.abs(sampling_probs))  # the original's choice
        stats["curriculum_gini/sampling_probs"] = gini(sampling_probs)
        stats["curriculum_gini/sampling_probs_by_label"] = gini(np.bincount(label_of_task, weights=sampling_probs))
        sampling_counts = self._label_sampling_counts
        if sampling_counts:
            stats["curriculum_gini/sampling_by_label"] = gini(_counts(sampling_counts))
        if sum(self._label_eviction_counts.values()) > 0:
            stats["curriculum_gini/evictions_by_label"] = gini(_counts(self._label_eviction_counts))
        stats["curriculum_gini/pool_composition_by_label"] = gini(tasks_per_label)
        for loss, (from_key, to_key) in _SELECTIVITY_LOSSES.items():
            if from_key in stats and to_key in stats:
                stats[loss] = stats[from_key] - stats[to_key]
        stats["debug/task_age_min_seconds"] = float(ages.min())
        return stats

    def _calculate_gini_coefficient(self, values: Iterable[float]) -> float:
        """The original's Gini helper (its tests call it)."""
        return gini(np.fromiter(values, dtype=np.float64))

    def set_curriculum_reference(self, curriculum: Any) -> None:
        self._curriculum = curriculum

    def invalidate_cache(self) -> None:
        """Mark the distribution stale now."""
        self.scorer.invalidate_cache()

    # -- checkpoints ------------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "type": self.hypers.algorithm_type(),
            "hypers": self.hypers.model_dump(),
            "task_tracker": self.task_tracker.get_state(),
            "scorer": self.scorer.get_state(),
            "label_tracking": {
                "label_sampling_counts": dict(self._label_sampling_counts),
                "label_eviction_counts": dict(self._label_eviction_counts),
                "active_labels": list(self._label_task_counts),
                "inactive_labels_fifo": list(self._inactive_labels),
            },
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore tracker, scorer and label bookkeeping; the checkpoint is validated before anything changes."""
        if not isinstance(state, Mapping) or "task_tracker" not in state:
            raise ValueError("an algorithm checkpoint must be a mapping with a 'task_tracker' entry")
        tracking = _parse_label_tracking(state.get("label_tracking", {}))
        self.task_tracker.load_state(state["task_tracker"])
        self.scorer.load_state(state.get("scorer", {}))
        sampling, evictions, active_labels, inactive = tracking
        self._label_sampling_counts = sampling
        self._label_eviction_counts = evictions
        self._epoch_eviction_counts = {}
        self._inactive_labels = dict.fromkeys(inactive)
        self._label_task_counts = {}
        labels_by_hash = {label_hash(label): label for label in active_labels}
        for task_id, entry in self.task_tracker.get_state()["task_memory"].items():
            label = labels_by_hash.get(int(entry["label_hash"]))
            if label is not None:
                self.task_tracker.set_task_label(task_id, label)
                self._label_task_counts[label] = self._label_task_counts.get(label, 0) + 1
            if entry["completion_count"] == 0:
                self.task_tracker.update_lp_score(task_id, self.hypers.exploration_bonus)

    def cleanup_shared_memory(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        else:
            self.task_tracker.cleanup_shared_memory()


#: The original's selectivity losses: Gini coefficient lost from one stage to the next.
_SELECTIVITY_LOSSES: dict[str, tuple[str, str]] = {
    "curriculum_gini/selectivity_loss_lp_to_prob": (
        "curriculum_gini/raw_lp_scores", "curriculum_gini/sampling_probs"),
    "curriculum_gini/selectivity_loss_lp_label_to_prob_label": (
        "curriculum_gini/raw_lp_by_label", "curriculum_gini/sampling_probs_by_label"),
    "curriculum_gini/selectivity_loss_lp_label_to_sampling_label": (
        "curriculum_gini/raw_lp_by_label", "curriculum_gini/sampling_by_label"),
}


def _counts(counts: dict[str, int]) -> np.ndarray:
    return np.fromiter(counts.values(), dtype=np.float64, count=len(counts))


def _parse_label_tracking(
    tracking: object,
) -> tuple[dict[str, int], dict[str, int], list[str], list[str]]:
    """Validate the label_tracking part of a checkpoint (all keys optional)."""
    if not isinstance(tracking, Mapping):
        raise TypeError(f"label_tracking must be a mapping, got {type(tracking).__name__}")

    def label_counts(key: str) -> dict[str, int]:
        counts = tracking.get(key, {})
        if not isinstance(counts, Mapping) or not all(
            isinstance(label, str) and isinstance(count, int) and not isinstance(count, bool) and count >= 0
            for label, count in counts.items()
        ):
            raise ValueError(f"label_tracking[{key!r}] must map labels (str) to non-negative ints")
        return dict(counts)

    def labels(key: str) -> list[str]:
        values = tracking.get(key, [])
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"label_tracking[{key!r}] must be a collection of labels")
        values = list(values)
        if not all(isinstance(label, str) for label in values):
            raise ValueError(f"label_tracking[{key!r}] must hold str labels")
        return values

    return (
        label_counts("label_sampling_counts"),
        label_counts("label_eviction_counts"),
        labels("active_labels"),
        labels("inactive_labels_fifo"),
    )
