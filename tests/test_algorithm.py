"""``LearningProgressAlgorithm``, the scorers, ``CurriculumTask`` and the stats loggers."""

from __future__ import annotations

import gc
import json
import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lptrack import (
    BasicLPScorer,
    BidirectionalLPScorer,
    CurriculumTask,
    LearningProgressAlgorithm,
    LearningProgressConfig,
    LPScorerStats,
    NullStatsLogger,
    StatsLogger,
    TaskStateIndices,
)
from lptrack import _shm


def make(engine: str, **overrides: Any) -> LearningProgressAlgorithm:
    settings = {"num_active_tasks": 8, "use_shared_memory": False, "min_samples_for_lp": 2,
                "perf_invalidation_batch_size": 1, "engine": engine, **overrides}
    config = LearningProgressConfig(**settings)
    return LearningProgressAlgorithm(config.num_active_tasks, NullStatsLogger(), config)


def create(algorithm: LearningProgressAlgorithm, task_id: int, label: str | None = "l") -> None:
    algorithm.on_task_created(CurriculumTask(task_id, SimpleNamespace(label=label)))


def lp_scores(algorithm: LearningProgressAlgorithm) -> dict[int, float]:
    backend = algorithm.task_tracker.backend
    return {
        task_id: float(backend.get_task_data(algorithm.task_tracker.get_task_index(task_id))[TaskStateIndices.LP_SCORE])
        for task_id in algorithm.task_tracker.get_all_tracked_tasks()
    }


def train(algorithm: LearningProgressAlgorithm, task_ids: list[int], rounds: int) -> None:
    for step in range(rounds):
        for task_id in task_ids:
            algorithm.update_task_performance(task_id, ((task_id * 0.37 + step * 0.11) % 1.0))


# -- CurriculumTask and loggers -----------------------------------------------------------------------
def test_curriculum_task() -> None:
    task = CurriculumTask(5, SimpleNamespace(label=3), {"size": 2})
    assert task._task_id == 5 and task.get_label() == "3" and task.get_slice_values() == {"size": 2}
    assert task.get_env_cfg().label == 3
    assert CurriculumTask(1, SimpleNamespace()).get_label() == "unknown"
    assert CurriculumTask(1, SimpleNamespace(label=None)).get_label() == "unknown"
    assert CurriculumTask(1, {"label": "m"}).get_label() == "m"
    assert CurriculumTask(1, None).get_slice_values() == {}
    task.complete(0.5)
    task.complete(1.0)
    assert task._num_completions == 2 and task._mean_score == 0.75


def test_stats_loggers() -> None:
    assert NullStatsLogger().stats("x/") == {}

    class Logger(StatsLogger):
        def get_base_stats(self) -> dict[str, float]:
            return {"a": 1.0}

        def get_detailed_stats(self) -> dict[str, float]:
            return {"b": 2.0}

    assert Logger().stats("p/") == {"p/a": 1.0}
    assert Logger(enable_detailed_logging=True).stats() == {"a": 1.0, "b": 2.0}


# -- construction -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_tasks, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError)])
def test_bad_num_tasks(engine: str, num_tasks: object, error: type) -> None:
    config = LearningProgressConfig(use_shared_memory=False, engine=engine)
    with pytest.raises(error):
        LearningProgressAlgorithm(num_tasks, NullStatsLogger(), config)  # type: ignore[arg-type]


def test_attributes(engine: str) -> None:
    algorithm = make(engine, task_tracker_ema_alpha=0.3, performance_mode=True)
    assert algorithm.num_tasks == 8 and algorithm.performance_mode is True
    assert algorithm.task_tracker.max_memory_tasks == 8 and algorithm.task_tracker.ema_alpha == 0.3
    assert isinstance(algorithm.scorer, BidirectionalLPScorer) and isinstance(algorithm.stats_logger, NullStatsLogger)
    assert isinstance(make(engine, use_bidirectional=False).scorer, BasicLPScorer)


# -- creation, eviction, labels ---------------------------------------------------------------------------------
def test_on_task_created_tracks_with_exploration_bonus_and_label(engine: str) -> None:
    algorithm = make(engine, exploration_bonus=0.2)
    create(algorithm, 1, "maze")
    tracker = algorithm.task_tracker
    assert lp_scores(algorithm) == {1: 0.2} and tracker.get_task_label(1) == "maze"
    assert algorithm.get_pool_composition_stats() == {"pool_composition": {"maze": 1}, "sampling_counts": {}}
    create(algorithm, 1, "maze")  # already tracked: counted once
    assert algorithm.get_pool_composition_stats()["pool_composition"] == {"maze": 1}


def test_on_task_created_with_a_full_pool_tracks_nothing(engine: str) -> None:
    algorithm = make(engine, num_active_tasks=2)
    for task_id in (1, 2, 3):
        create(algorithm, task_id, f"l{task_id}")
    assert algorithm.task_tracker.get_task_index(3) is None
    assert algorithm.get_pool_composition_stats()["pool_composition"] == {"l1": 1, "l2": 1}


def test_evictions_are_counted_per_label_and_epoch(engine: str) -> None:
    algorithm = make(engine)
    for task_id, label in ((1, "a"), (2, "a"), (3, "b")):
        create(algorithm, task_id, label)
    algorithm.on_task_evicted(1)
    algorithm.on_task_evicted(1)  # no longer tracked: nothing happens
    algorithm.on_task_evicted(3)
    assert algorithm.task_tracker.get_task_index(1) is None
    assert algorithm.get_evictions() == {"a": 1, "b": 1}
    assert algorithm.get_pool_composition_stats()["pool_composition"] == {"a": 1}
    assert algorithm.get_state()["label_tracking"]["inactive_labels_fifo"] == ["b"]
    assert algorithm.get_and_reset_evictions() == {"a": 1, "b": 1}
    assert algorithm.get_evictions() == {}
    base = algorithm.get_base_stats()
    assert base["eviction_counts/a"] == 1 and base["eviction_counts/b"] == 1  # cumulative


def test_inactive_label_fifo_is_pruned(engine: str) -> None:
    algorithm = make(engine, max_inactive_labels_retained=2)
    for task_id in (1, 2, 3):
        create(algorithm, task_id, f"l{task_id}")
        algorithm.on_task_evicted(task_id)
    tracking = algorithm.get_state()["label_tracking"]
    assert tracking["inactive_labels_fifo"] == ["l2", "l3"]
    assert tracking["label_eviction_counts"] == {"l2": 1, "l3": 1}  # l1 lost its cumulative count
    create(algorithm, 4, "l2")  # a returning label leaves the FIFO
    assert algorithm.get_state()["label_tracking"]["inactive_labels_fifo"] == ["l3"]
    assert algorithm.get_state()["label_tracking"]["active_labels"] == ["l2"]


def test_sampling_counts_and_epoch_end(engine: str) -> None:
    algorithm = make(engine)
    create(algorithm, 1, "a")
    algorithm.on_task_sampled(1)
    algorithm.on_task_sampled(1)
    algorithm.on_task_sampled(99)  # unknown: ignored
    assert algorithm.get_pool_composition_stats()["sampling_counts"] == {"a": 2}
    algorithm.on_task_evicted(1)
    algorithm.on_epoch_end()
    assert algorithm.get_pool_composition_stats()["sampling_counts"] == {} and algorithm.get_evictions() == {}
    create(algorithm, 2, "a")
    algorithm.on_task_sampled(2)
    assert algorithm.get_and_reset_sampling_counts() == {"a": 1}
    assert algorithm.get_and_reset_sampling_counts() == {}


# -- updates and late scores ------------------------------------------------------------------------------------
def test_late_updates_are_ignored_and_counted(engine: str) -> None:
    algorithm = make(engine)
    create(algorithm, 1)
    algorithm.update_task_performance(1, 0.5)
    algorithm.on_task_evicted(1)
    algorithm.update_task_performance(1, 0.9)
    algorithm.update_task_performance(2, 0.9)
    assert algorithm.task_tracker.get_all_tracked_tasks() == []
    assert algorithm.get_base_stats()["late_updates"] == 2
    assert algorithm.task_tracker.get_global_stats()["total_completions"] == 1
    with pytest.raises(ValueError):
        algorithm.update_task_performance(0, 0.5)
    with pytest.raises(ValueError):
        algorithm.update_task_performance(1, float("nan"))
    assert algorithm.get_base_stats()["late_updates"] == 2


def test_update_runs_the_bidirectional_part(engine: str) -> None:
    algorithm = make(engine, use_baseline_normalization=False, ema_timescale=0.2)
    create(algorithm, 1)
    algorithm.update_task_performance(1, 0.4)
    algorithm.update_task_performance(1, 0.9)
    stats = algorithm.task_tracker.get_task_stats(1)
    assert stats["p_fast"] == 0.9 * 0.2 + 0.4 * (1.0 - 0.2)


# -- scoring: the lazy rule and batched invalidation --------------------------------------------------------------
def test_score_of_a_task_with_few_samples_is_the_exploration_bonus(engine: str) -> None:
    algorithm = make(engine, min_samples_for_lp=3, exploration_bonus=0.05)
    create(algorithm, 1)
    train(algorithm, [1], 2)
    assert algorithm.get_task_score(1) == 0.05 and algorithm.get_task_score(42) == 0.05
    assert algorithm.scorer.is_stale  # scoring those does not recompute


def test_recomputation_is_lazy(engine: str) -> None:
    algorithm = make(engine)
    for task_id in (1, 2, 3):
        create(algorithm, task_id)
    train(algorithm, [1, 2, 3], 4)
    before = lp_scores(algorithm)
    assert before == {1: 0.1, 2: 0.1, 3: 0.1}  # updates never recompute
    scores = algorithm.score_tasks([1, 2, 3])
    after = lp_scores(algorithm)
    assert scores == after and sum(after.values()) == pytest.approx(1.0)
    assert not algorithm.scorer.is_stale


def test_batched_invalidation(engine: str) -> None:
    algorithm = make(engine, perf_invalidation_batch_size=3)
    for task_id in (1, 2, 3, 4):
        create(algorithm, task_id)
    train(algorithm, [1, 2, 3], 3)
    algorithm.score_tasks([1])
    assert not algorithm.scorer.is_stale
    frozen = lp_scores(algorithm)
    algorithm.update_task_performance(1, 0.9)
    algorithm.update_task_performance(2, 0.1)
    create(algorithm, 5)  # creations do not count
    assert not algorithm.scorer.is_stale
    assert algorithm.score_tasks([1, 2, 3]) == {task_id: frozen[task_id] for task_id in (1, 2, 3)}
    algorithm.on_task_evicted(4)  # the third event
    assert algorithm.scorer.is_stale
    algorithm.score_tasks([1])
    assert not algorithm.scorer.is_stale and lp_scores(algorithm)[1] != frozen[1]
    algorithm.invalidate_cache()  # explicit: immediately stale
    assert algorithm.scorer.is_stale


def test_batch_of_one_invalidates_on_every_update(engine: str) -> None:
    algorithm = make(engine)
    for task_id in (1, 2):
        create(algorithm, task_id)
    train(algorithm, [1, 2], 3)
    algorithm.score_tasks([1])
    algorithm.update_task_performance(2, 0.3)
    assert algorithm.scorer.is_stale


def test_basic_scorer(engine: str) -> None:
    algorithm = make(engine, use_bidirectional=False, min_samples_for_lp=3, exploration_bonus=0.07)
    create(algorithm, 1)
    algorithm.update_task_performance(1, 0.2)
    algorithm.update_task_performance(1, 0.8)
    assert algorithm.get_task_score(1) == 0.07  # two samples < min_samples_for_lp
    algorithm.update_task_performance(1, 0.5)
    stats = algorithm.task_tracker.get_task_stats(1)
    expected = max(0.0, stats["ema_squared"] - stats["reward_ema"] * stats["reward_ema"]) ** 0.5
    assert algorithm.get_task_score(1) == pytest.approx(expected, rel=1e-15)
    assert algorithm.scorer.get_stats() == LPScorerStats()
    assert make(engine, use_bidirectional=False, min_samples_for_lp=0).get_task_score(5) == 0.1


def test_bidirectional_scorer_stats(engine: str) -> None:
    algorithm = make(engine, use_baseline_normalization=False)
    for task_id in (1, 2, 3):
        create(algorithm, task_id)
    train(algorithm, [1, 2], 3)
    algorithm.score_tasks([1])
    stats = algorithm.scorer.get_stats()
    scores = lp_scores(algorithm)
    assert stats.mean_lp_score == pytest.approx((scores[1] + scores[2]) / 2)
    assert stats.mean_sample_prob == stats.mean_lp_score and stats.num_zeros_lp_dist == 0
    rows = [algorithm.task_tracker.get_task_stats(t) for t in (1, 2, 3)]
    assert stats.mean_learning_progress == pytest.approx(sum(abs(r["p_fast"] - r["p_slow"]) for r in rows) / 3)
    assert stats.mean_task_success_rate == pytest.approx((rows[0]["success_rate_ema"] + rows[1]["success_rate_ema"]) / 2)
    assert set(stats.model_dump()) == {"mean_learning_progress", "mean_lp_score", "mean_task_success_rate",
                                       "mean_sample_prob", "num_zeros_lp_dist"}
    assert algorithm.scorer.get_state() == {"stale_dist": True}


# -- recommend_eviction ----------------------------------------------------------------------------------------------------
def test_recommend_eviction(engine: str) -> None:
    algorithm = make(engine, eviction_threshold_percentile=0.5)
    for task_id in (1, 2, 3, 4):
        create(algorithm, task_id)
    train(algorithm, [1, 2, 3, 4], 3)
    scores = algorithm.score_tasks([1, 2, 3, 4])
    lowest = min((1, 2, 3, 4), key=lambda t: scores[t])
    assert algorithm.recommend_eviction([1, 2, 3, 4], 3) == lowest
    assert algorithm.recommend_eviction([1, 2, 3, 4, lowest], 3) == lowest  # duplicates collapse
    assert algorithm.recommend_eviction([1, 2, 3, 4], 4) is None  # too few presentations
    assert algorithm.recommend_eviction([], 0) is None
    assert algorithm.recommend_eviction([lowest], 0) is None
    assert algorithm.recommend_eviction([99, 98], 0) is None  # untracked ids are never candidates


def test_recommend_eviction_takes_the_first_of_equal_scores(engine: str) -> None:
    algorithm = make(engine, min_samples_for_lp=100)  # every score is the exploration bonus
    for task_id in (1, 2, 3):
        create(algorithm, task_id)
    train(algorithm, [1, 2, 3], 1)
    assert algorithm.recommend_eviction([3, 1, 2], 1) == 3
    assert algorithm.recommend_eviction([2, 3, 1], 1) == 2
    assert algorithm.should_evict_task(2, 0) is False


# -- stats ------------------------------------------------------------------------------------------------------------------
def test_stats(engine: str) -> None:
    algorithm = make(engine)
    create(algorithm, 1, "a")
    algorithm.update_task_performance(1, 0.5)
    algorithm.on_task_sampled(1)
    stats = algorithm.stats("lp_algo/")
    assert stats["lp_algo/num_tasks"] == 8 and stats["lp_algo/tracker/total_completions"] == 1
    assert stats["lp_algo/tracker/mean_score"] == 0.5 and stats["lp_algo/pool_composition/a"] == 1
    assert stats["lp_algo/sampling_counts/a"] == 1 and stats["lp_algo/late_updates"] == 0
    assert "lp_algo/lp/mean_lp_score" in stats and not any("gini" in key for key in stats)
    assert set(algorithm.get_detailed_stats()) == {f"lp/{name}" for name in LPScorerStats().model_dump()}


def test_stats_in_performance_mode(engine: str) -> None:
    algorithm = make(engine, performance_mode=True)
    create(algorithm, 1, "a")
    assert algorithm.stats() == {}
    assert not any("/a" in key for key in algorithm.get_base_stats())


def test_gini_coefficients(engine: str) -> None:
    algorithm = make(engine, show_curriculum_troubleshooting_logging=True)
    assert algorithm.calculate_gini_coefficients() == {}
    for task_id in (1, 2, 3):
        create(algorithm, task_id, f"l{task_id % 2}")
    train(algorithm, [1], 5)
    gini = algorithm.calculate_gini_coefficients()
    assert gini["curriculum_gini/pool_occupancy"] == pytest.approx(2 / 3)
    assert gini["curriculum_gini/pool_composition_by_label"] == pytest.approx(1 / 6)
    assert 0.0 <= gini["debug/task_age_min_seconds"] <= gini["debug/task_age_mean_seconds"]
    assert gini["debug/task_age_mean_seconds"] <= gini["debug/task_age_max_seconds"]
    assert "curriculum_gini/raw_lp_scores" in algorithm.stats()


def test_curriculum_reference_is_kept(engine: str) -> None:
    algorithm = make(engine)
    marker = object()
    algorithm.set_curriculum_reference(marker)
    assert algorithm._curriculum is marker


# -- checkpoints -------------------------------------------------------------------------------------------------------------
def test_state_round_trip_through_json(engine: str) -> None:
    algorithm = make(engine, exploration_bonus=0.2)
    for task_id, label in ((1, "a"), (2, "b"), (3, "a"), (4, "c")):
        create(algorithm, task_id, label)
    train(algorithm, [1, 2], 3)
    algorithm.score_tasks([1])
    algorithm.on_task_sampled(2)
    algorithm.on_task_evicted(4)
    state = algorithm.get_state()
    assert state["type"] == "learning_progress" and state["scorer"] == {"stale_dist": True}
    assert state["hypers"] == algorithm.hypers.model_dump()

    restored = make(engine, exploration_bonus=0.2)
    create(restored, 9, "z")
    restored.load_state(json.loads(json.dumps(state)))
    assert sorted(restored.task_tracker.get_all_tracked_tasks()) == [1, 2, 3]
    assert {t: restored.task_tracker.get_task_label(t) for t in (1, 2, 3)} == {1: "a", 2: "b", 3: "a"}
    assert restored.get_pool_composition_stats() == {"pool_composition": {"a": 2, "b": 1}, "sampling_counts": {"b": 1}}
    assert restored.get_state()["label_tracking"] == state["label_tracking"]
    assert lp_scores(restored)[3] == 0.2  # no completions: exploration bonus
    assert restored.scorer.is_stale
    assert restored.score_tasks([1, 2, 3]) == algorithm.score_tasks([1, 2, 3])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.pop("task_tracker"),
        lambda s: s["label_tracking"].update(label_sampling_counts={"a": -1}),
        lambda s: s["label_tracking"].update(active_labels="abc"),
        lambda s: s["task_tracker"]["task_memory"].update({"0": {}}),
    ],
)
def test_load_state_validates_before_touching(engine: str, mutate: Any) -> None:
    algorithm = make(engine)
    create(algorithm, 1, "a")
    state = make(engine).get_state()
    mutate(state)
    with pytest.raises((ValueError, TypeError)):
        algorithm.load_state(state)
    assert algorithm.task_tracker.get_all_tracked_tasks() == [1]
    assert algorithm.get_pool_composition_stats()["pool_composition"] == {"a": 1}


def test_local_algorithm_pickles(engine: str) -> None:
    algorithm = make(engine)
    create(algorithm, 1, "a")
    algorithm.update_task_performance(1, 0.5)
    clone = pickle.loads(pickle.dumps(algorithm))
    assert clone.task_tracker.get_task_stats(1)["completion_count"] == 1
    assert clone.get_pool_composition_stats() == algorithm.get_pool_composition_stats()


# -- shared memory lifecycle -------------------------------------------------------------------------------------------------
def segment_exists(session_id: str) -> bool:
    return any(path.name.endswith(session_id) for path in Path("/dev/shm").glob(f"{_shm.SEGMENT_PREFIX}*"))


def test_shared_algorithm_cleanup_and_pickling(engine: str, session_id: str) -> None:
    algorithm = make(engine, use_shared_memory=True, session_id=session_id)
    create(algorithm, 1, "a")
    assert segment_exists(session_id)
    clone = pickle.loads(pickle.dumps(algorithm))
    assert clone.task_tracker.get_task_stats(1) is not None
    clone.cleanup_shared_memory()  # only attached: keeps the segment
    assert segment_exists(session_id)
    algorithm.cleanup_shared_memory()
    assert not segment_exists(session_id)


def test_shared_algorithm_is_cleaned_up_when_collected(engine: str, session_id: str) -> None:
    algorithm = make(engine, use_shared_memory=True, session_id=session_id)
    assert segment_exists(session_id)
    del algorithm
    gc.collect()
    assert not segment_exists(session_id)


@pytest.mark.parametrize(
    ("task_id", "score", "error", "message"),
    [
        (True, 0.5, TypeError, "task ids must be ints"),
        (5.0, 0.5, TypeError, "task ids must be ints"),
        ("5", 0.5, TypeError, "task ids must be ints"),
        (0, 0.5, ValueError, r"task ids must be in \[1, 2\*\*53\)"),
        (2**53, 0.5, ValueError, r"task ids must be in \[1, 2\*\*53\)"),
        (2**70, 0.5, ValueError, r"task ids must be in \[1, 2\*\*53\)"),
        (5, float("nan"), ValueError, "score must be finite"),
        (5, float("-inf"), ValueError, "score must be finite"),
        (5, "0.5", TypeError, "score must be a real number"),
    ],
)
def test_update_refuses_bad_input_and_changes_nothing(engine: str, task_id: Any, score: Any, error: type,
                                                       message: str) -> None:
    """The per-episode update checks in the table call; both engines refuse alike."""
    algorithm = make(engine)
    create(algorithm, 5)
    algorithm.update_task_performance(5, 1.0)
    before = (algorithm.task_tracker.get_task_stats(5), algorithm.task_tracker.get_global_stats(),
              algorithm.scorer.batch.events)
    with pytest.raises(error, match=message):
        algorithm.update_task_performance(task_id, score)
    after = (algorithm.task_tracker.get_task_stats(5), algorithm.task_tracker.get_global_stats(),
             algorithm.scorer.batch.events)
    before[0].pop("age_seconds"), after[0].pop("age_seconds")
    assert after == before


def test_update_accepts_numpy_and_int_values(engine: str) -> None:
    import numpy as np

    algorithm = make(engine)
    create(algorithm, 5)
    algorithm.update_task_performance(np.int64(5), np.float32(0.5))
    algorithm.update_task_performance(5, 1)
    stats = algorithm.task_tracker.get_global_stats()
    assert stats == {"mean_score": 0.75, "total_completions": 2}
