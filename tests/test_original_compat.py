"""The original's own code on lptrack (issue #14): its private names and its statistics.

The original's code and tests read private attributes of the algorithm, tracker
and scorer; ``calculate_gini_coefficients()`` must give the original's keys
with the original's meanings (SPEC.md, last section).  The expected statistics
here come from a plain Python reference over the tracker's public per-task
reads, not from the code under test.
"""

from __future__ import annotations

import math
import numbers
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from lptrack import CurriculumTask, LearningProgressAlgorithm, LearningProgressConfig, NullStatsLogger


def make(engine: str, **overrides: Any) -> LearningProgressAlgorithm:
    settings = {"num_active_tasks": 32, "use_shared_memory": False, "min_samples_for_lp": 3,
                "perf_invalidation_batch_size": 1, "engine": engine, **overrides}
    config = LearningProgressConfig(**settings)
    return LearningProgressAlgorithm(config.num_active_tasks, NullStatsLogger(), config)


def create(algorithm: LearningProgressAlgorithm, task_id: int, label: str) -> None:
    algorithm.on_task_created(CurriculumTask(task_id, SimpleNamespace(label=label)))


# -- the reference: the original's calculation, written out over public reads --------------------------
def reference_gini(values: list[float]) -> float:
    if not values or sum(values) == 0 or any(math.isnan(v) or math.isinf(v) for v in values):
        return 0.0
    ordered = sorted(values)
    n = len(ordered)
    weighted = 0.0
    for rank, value in enumerate(ordered, start=1):
        weighted += rank * value
    return 2.0 * weighted / (n * sum(values)) - (n + 1.0) / n


def reference_statistics(algorithm: LearningProgressAlgorithm, now: float) -> dict[str, float]:
    tracker = algorithm.task_tracker
    counts: list[float] = []
    raw_lp: list[float] = []
    probs: list[float] = []
    ages: list[float] = []
    labels: list[str | None] = []
    per_task: dict[str, float] = {}
    for task_id in tracker.get_all_tracked_tasks():
        stats = tracker.get_task_stats(task_id)
        counts.append(float(stats["completion_count"]))
        probs.append(algorithm.scorer.score_task(task_id, tracker))
        raw_lp.append(abs(stats["p_fast"] - stats["p_slow"]))
        ages.append(now - tracker.backend.get_task_state(tracker.get_task_index(task_id)).creation_time)
        labels.append(tracker.get_task_label(task_id))
        if algorithm.hypers.show_curriculum_troubleshooting_logging:
            per_task[f"task_metrics/{task_id}/completion_count"] = counts[-1]
            per_task[f"task_metrics/{task_id}/raw_lp"] = raw_lp[-1]
            per_task[f"task_metrics/{task_id}/sampling_prob"] = probs[-1]
    if not counts:
        return {}
    lp_by_label: dict[str | None, float] = {}
    prob_by_label: dict[str | None, float] = {}
    tasks_by_label: dict[str | None, int] = {}
    for label, lp, prob in zip(labels, raw_lp, probs):
        lp_by_label[label] = lp_by_label.get(label, 0.0) + lp
        prob_by_label[label] = prob_by_label.get(label, 0.0) + prob
        tasks_by_label[label] = tasks_by_label.get(label, 0) + 1
    expected = {
        **per_task,
        "curriculum_gini/pool_occupancy": reference_gini(counts),
        "curriculum_gini/task_age": reference_gini(ages),
        "debug/task_age_mean_seconds": sum(ages) / len(ages),
        "debug/task_age_max_seconds": max(ages),
        "curriculum_gini/raw_lp_scores": reference_gini(raw_lp),
        "curriculum_gini/raw_lp_by_label": reference_gini(list(lp_by_label.values())),
        "curriculum_gini/zscored_lp_scores": reference_gini([abs(p) for p in probs]),
        "curriculum_gini/sampling_probs": reference_gini(probs),
        "curriculum_gini/sampling_probs_by_label": reference_gini(list(prob_by_label.values())),
        "curriculum_gini/pool_composition_by_label": reference_gini([float(n) for n in tasks_by_label.values()]),
    }
    sampling = algorithm.get_pool_composition_stats()["sampling_counts"]
    if sampling:
        expected["curriculum_gini/sampling_by_label"] = reference_gini([float(n) for n in sampling.values()])
    evictions = algorithm._label_eviction_counts
    if sum(evictions.values()) > 0:
        expected["curriculum_gini/evictions_by_label"] = reference_gini([float(n) for n in evictions.values()])
    for loss, first, second in (
        ("lp_to_prob", "raw_lp_scores", "sampling_probs"),
        ("lp_label_to_prob_label", "raw_lp_by_label", "sampling_probs_by_label"),
        ("lp_label_to_sampling_label", "raw_lp_by_label", "sampling_by_label"),
    ):
        if f"curriculum_gini/{first}" in expected and f"curriculum_gini/{second}" in expected:
            expected[f"curriculum_gini/selectivity_loss_{loss}"] = (
                expected[f"curriculum_gini/{first}"] - expected[f"curriculum_gini/{second}"]
            )
    return expected


def populate(algorithm: LearningProgressAlgorithm) -> None:
    """Tasks of four labels with different histories: learning, flat and fresh
    ones, some past min_samples_for_lp, an eviction and some samples."""
    for task_id in range(1, 13):
        create(algorithm, task_id, f"label_{task_id % 4}")
    for step in range(12):
        for task_id in range(1, 13):
            if step < task_id:  # task k gets min(k, 12) scores
                score = min(1.0, 0.05 * step * (task_id % 5)) if task_id % 3 else 0.5
                algorithm.update_task_performance(task_id, score)
    for task_id in (2, 3, 3, 7):
        algorithm.on_task_sampled(task_id)
    algorithm.on_task_evicted(4)
    create(algorithm, 40, "label_unseen")  # a label with one fresh task


@pytest.mark.parametrize("troubleshooting", [False, True])
def test_gini_statistics_are_the_originals(engine: str, troubleshooting: bool, monkeypatch) -> None:
    algorithm = make(engine, show_curriculum_troubleshooting_logging=troubleshooting)
    populate(algorithm)
    now = time.time() + 5.0
    monkeypatch.setattr(time, "time", lambda: now)
    actual = algorithm.calculate_gini_coefficients()
    expected = reference_statistics(algorithm, now)
    # Every key of the original; the one addition under a new name.
    assert set(actual) - set(expected) == {"debug/task_age_min_seconds"}
    assert set(expected) <= set(actual)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    ages = [now - algorithm.task_tracker.backend.get_task_state(algorithm.task_tracker.get_task_index(t)).creation_time
            for t in algorithm.task_tracker.get_all_tracked_tasks()]
    assert actual["debug/task_age_min_seconds"] == pytest.approx(min(ages), rel=1e-12)
    # The data is not degenerate: these keys would not tell wrong meanings apart otherwise.
    assert 0.0 < actual["curriculum_gini/raw_lp_scores"] < 1.0
    assert actual["curriculum_gini/raw_lp_scores"] != pytest.approx(actual["curriculum_gini/sampling_probs"])
    assert "curriculum_gini/evictions_by_label" in actual and "curriculum_gini/sampling_by_label" in actual


def test_raw_lp_scores_measure_learning_progress_not_lp_scores(engine: str) -> None:
    """|p_fast - p_slow| per task (the issue: lptrack measured the lp_score column)."""
    algorithm = make(engine)
    for task_id in (1, 2, 3):
        create(algorithm, task_id, "l")
    for score in (0.2, 0.6, 0.9, 0.9):
        algorithm.update_task_performance(1, score)  # learning: p_fast moves away from p_slow
    for _ in range(5):
        algorithm.update_task_performance(2, 0.5)  # flat: raw LP 0
    lp = [abs(s["p_fast"] - s["p_slow"]) for s in map(algorithm.task_tracker.get_task_stats, (1, 2, 3))]
    assert lp[0] > 0.0 and lp[1] == lp[2] == 0.0
    # One task holds all the learning progress: G = 2*3*lp/(3*lp) - 4/3 = 2/3.
    assert algorithm.calculate_gini_coefficients()["curriculum_gini/raw_lp_scores"] == pytest.approx(2 / 3)


def test_gini_of_an_empty_pool_is_empty(engine: str) -> None:
    algorithm = make(engine)
    assert algorithm.calculate_gini_coefficients() == {}
    algorithm.on_task_sampled(1)  # labels counted, no task: still nothing, as in the original
    assert algorithm.calculate_gini_coefficients() == {}


def test_calculate_gini_coefficient_helper(engine: str) -> None:
    gini = make(engine)._calculate_gini_coefficient
    assert gini([]) == 0.0 and gini([0.0, 0.0]) == 0.0 and gini([1.0, math.nan]) == 0.0
    assert gini([2.0, math.inf]) == 0.0
    assert gini([5.0, 5.0, 5.0]) == pytest.approx(0.0, abs=1e-15)
    assert gini([0.0, 0.0, 1.0]) == pytest.approx(2 / 3)
    assert gini([3.0, 1.0, 2.0]) == pytest.approx(reference_gini([3.0, 1.0, 2.0]), rel=1e-15)
    assert gini([-1.0, -2.0]) == pytest.approx(reference_gini([-1.0, -2.0]))  # only a zero total is 0.0


def test_troubleshooting_stats_include_the_gini_keys(engine: str) -> None:
    algorithm = make(engine, show_curriculum_troubleshooting_logging=True)
    populate(algorithm)
    stats = algorithm.stats()
    assert "curriculum_gini/selectivity_loss_lp_to_prob" in stats and "debug/task_age_mean_seconds" in stats


# -- the algorithm's private names -------------------------------------------------------------------------
def test_active_and_inactive_labels(engine: str) -> None:
    """The original's label-retention scenario: 20 labels, 5 retained once inactive."""
    algorithm = make(engine, max_inactive_labels_retained=5)
    for task_id in range(1, 21):
        create(algorithm, task_id, f"label_{task_id}")
        algorithm.update_task_performance(task_id, 0.5)
    for task_id in range(1, 16):
        algorithm.on_task_evicted(task_id)
    assert algorithm._active_labels == {f"label_{i}" for i in range(16, 21)}
    assert algorithm._inactive_labels_fifo == [f"label_{i}" for i in range(11, 16)]  # oldest first
    assert len(algorithm.task_tracker.get_label_completion_counts()) == 5
    # Reactivation: back to the active set, out of the FIFO.
    create(algorithm, 30, "label_12")
    assert "label_12" in algorithm._active_labels and "label_12" not in algorithm._inactive_labels_fifo
    # Copies: changing them changes nothing; assigning the FIFO replaces it.
    algorithm._inactive_labels_fifo.append("x")
    assert "x" not in algorithm._inactive_labels_fifo
    with pytest.raises(AttributeError):
        algorithm._active_labels.add("x")  # type: ignore[attr-defined]
    algorithm._inactive_labels_fifo = ["a", "b"]
    assert algorithm.get_state()["label_tracking"]["inactive_labels_fifo"] == ["a", "b"]


def test_inactive_label_fifo_survives_a_checkpoint(engine: str) -> None:
    algorithm = make(engine, max_inactive_labels_retained=10)
    for task_id in range(1, 6):
        create(algorithm, task_id, f"label_{task_id}")
        algorithm.update_task_performance(task_id, 0.5)
        algorithm.on_task_evicted(task_id)
    restored = make(engine, max_inactive_labels_retained=10)
    restored.load_state(algorithm.get_state())
    assert restored._inactive_labels_fifo == algorithm._inactive_labels_fifo == [f"label_{i}" for i in range(1, 6)]


def test_label_evictions_are_the_epoch_counts(engine: str) -> None:
    algorithm = make(engine)
    create(algorithm, 1, "a")
    create(algorithm, 2, "a")
    algorithm.on_task_evicted(1)
    assert algorithm._label_evictions == {"a": 1} == algorithm.get_evictions()
    algorithm.on_epoch_end()
    assert algorithm._label_evictions == {}
    algorithm.on_task_evicted(2)
    assert algorithm._label_evictions == {"a": 1} and algorithm._label_eviction_counts == {"a": 2}


def test_label_assigned_to_a_task_is_used(engine: str) -> None:
    """The original's tests set ``task._label`` before on_task_created."""
    task = CurriculumTask(7, SimpleNamespace(label="from_env"))
    assert task._label == "from_env"
    task._label = "set_by_test"
    assert task.get_label() == "set_by_test" and task._label == "set_by_test"
    algorithm = make(engine)
    algorithm.on_task_created(task)
    assert algorithm.task_tracker.get_task_label(7) == "set_by_test"
    assert algorithm._active_labels == {"set_by_test"}


# -- the tracker's and the scorer's ------------------------------------------------------------------------
def test_task_id_to_index_copy_is_a_dict_snapshot(engine: str) -> None:
    algorithm = make(engine)
    tracker = algorithm.task_tracker
    for task_id in range(100, 110):
        tracker.track_task_creation(task_id)
    snapshot = tracker._task_id_to_index.copy()
    assert type(snapshot) is dict
    assert snapshot == {task_id: tracker.get_task_index(task_id) for task_id in range(100, 110)}
    assert {slot: task_id for task_id, slot in tracker._task_id_to_index.items()} == {
        slot: task_id for task_id, slot in snapshot.items()
    }
    assert sorted(tracker._task_id_to_index.values()) == sorted(snapshot.values())
    tracker.remove_task(103)
    assert 103 in snapshot and 103 not in tracker._task_id_to_index
    assert len(tracker._task_id_to_index.copy()) == 9


def test_stale_dist_flag(engine: str) -> None:
    algorithm = make(engine)
    scorer, tracker = algorithm.scorer, algorithm.task_tracker
    create(algorithm, 1, "l")
    create(algorithm, 2, "l")
    for score in (0.1, 0.4, 0.9):
        algorithm.update_task_performance(1, score)
        algorithm.update_task_performance(2, 0.5)
    assert scorer._stale_dist is True  # batch size 1: every update
    scorer.score_task(1, tracker)  # a mature task's score recomputes
    assert scorer._stale_dist is False
    scorer._stale_dist = True
    assert scorer._stale_dist is True
    algorithm.update_task_performance(1, 0.0)
    before = algorithm.get_task_score(1)
    scorer._stale_dist = False  # the original's tests freeze the distribution so
    algorithm.update_task_performance(2, 1.0)
    scorer._stale_dist = False
    assert algorithm.get_task_score(1) == before


def test_scorer_helpers(engine: str) -> None:
    algorithm = make(engine, early_progress_amplification=0.1)
    scorer, tracker = algorithm.scorer, algorithm.task_tracker
    for task_id in (1, 2, 3):
        create(algorithm, task_id, "l")
    for score in (0.2, 0.2, 0.9, 0.9):
        algorithm.update_task_performance(1, score)
        algorithm.update_task_performance(2, 1.0 - score)
    theta = 0.1

    def reweight(p: float) -> float:
        return p * (1 - theta) / (p + theta * (1 - 2 * p))

    emas = {task_id: scorer._get_ema(task_id) for task_id in (1, 2, 3)}
    assert emas[1] == tuple(tracker.get_task_stats(1)[k] for k in ("p_fast", "p_slow", "p_true", "random_baseline"))
    assert scorer._get_ema(99) == (0.0, 0.0, 0.0, 0.0)
    expected = [abs(reweight(min(max(emas[t][0], 0.0), 1.0)) - reweight(min(max(emas[t][1], 0.0), 1.0)))
                for t in tracker.get_all_tracked_tasks()]
    assert scorer._learning_progress() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert scorer._learning_progress([2, 99, 1]) == pytest.approx(
        [expected[tracker.get_all_tracked_tasks().index(2)], 0.0, expected[tracker.get_all_tracked_tasks().index(1)]]
    )
    assert scorer._reweight(0.3) == pytest.approx(reweight(0.3), rel=1e-15)
    assert scorer._sigmoid(np.array([0.0, 1000.0]))[0] == 0.5
    scorer._stale_dist = True
    scorer._calculate_task_distribution(tracker)
    assert scorer._stale_dist is False
    lp_scores = [tracker.backend.get_task_data(tracker.get_task_index(t))[4] for t in tracker.get_all_tracked_tasks()]
    assert sum(lp_scores) == pytest.approx(1.0)


# -- the ids the original's Curriculum passes every episode ------------------------------------------------
@pytest.mark.parametrize(
    "bad, error, message",
    [
        (2.5, TypeError, "got float 2.5"),
        (True, TypeError, "got bool True"),
        ("3", TypeError, "got str '3'"),
        (None, TypeError, "got NoneType None"),
        (0, ValueError, "got 0"),
        (-5, ValueError, "got -5"),
        (2**53, ValueError, "got 9007199254740992"),
        (2**64, ValueError, "got 18446744073709551616"),
    ],
)
def test_bad_ids_are_refused_in_score_tasks_and_recommend_eviction(
    engine: str, bad: object, error: type, message: str
) -> None:
    algorithm = make(engine)
    create(algorithm, 1, "l")
    for call in (lambda ids: algorithm.score_tasks(ids), lambda ids: algorithm.recommend_eviction(ids, 0)):
        for ids in ([1, bad], (bad, 1)):
            with pytest.raises(error, match=message):
                call(ids)


def test_score_tasks_takes_any_collection_of_ids(engine: str) -> None:
    algorithm = make(engine)
    for task_id in (1, 2, 3):
        create(algorithm, task_id, "l")
    for score in (0.1, 0.5, 0.9):
        algorithm.update_task_performance(2, score)
    expected = {task_id: algorithm.get_task_score(task_id) for task_id in (1, 2, 3, 7)}
    assert algorithm.score_tasks([1, 2, 3, 7]) == expected
    assert algorithm.score_tasks((1, 2, 3, 7)) == expected
    assert algorithm.score_tasks(iter([1, 2, 3, 7])) == expected
    assert algorithm.score_tasks(np.array([1, 2, 3, 7])) == expected
    assert algorithm.score_tasks([np.int64(2), 3]) == {2: expected[2], 3: expected[3]}
    assert algorithm.score_tasks([2, 2, 1]) == {2: expected[2], 1: expected[1]}
    assert algorithm.score_tasks([]) == {}
    assert algorithm.recommend_eviction(np.array([2, 1]), 3) == algorithm.recommend_eviction([2, 1], 3)


def test_native_conversion_refuses_ids_changed_while_converting() -> None:
    """The typed loop reads the list without bounds checks: an id whose conversion
    shrinks the list must stop it, not read past the end."""
    from lptrack._native import NativeTable

    ids: list[object] = []

    class ShrinkingId(int):
        def __int__(self) -> int:
            ids.clear()
            return 5

    assert isinstance(ShrinkingId(5), numbers.Integral)
    ids.extend([1, ShrinkingId(5), 3, 4])
    table = NativeTable(4)
    try:
        with pytest.raises(RuntimeError, match="changed"):
            table.task_id_array(ids)
        assert table.task_id_array([1, np.int64(2), 3]).tolist() == [1, 2, 3]
    finally:
        table.close()
