"""Random operation streams through the python and native engines side by side.

The pure-Python engine is the model (pyroaring's habit): every answer the
native engine gives must equal the python engine's, and both must keep the
pool invariants after every step.
"""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import hypothesis.strategies as st
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from lptrack import LearningProgressConfig, TaskTracker
from lptrack._table import DistributionParams

CAPACITY = 12
TIME_DEPENDENT = {"age_seconds"}

task_ids = st.integers(min_value=1, max_value=2**53 - 1)
scores = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False) | st.sampled_from([0.0, 0.5, 1.0])
thresholds = st.none() | st.floats(min_value=0.0, max_value=1.0)
labels = st.sampled_from(["alpha", "beta", "gamma", "δέλτα"])


def _close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


class EnginesAgree(RuleBasedStateMachine):
    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self.model = TaskTracker(max_memory_tasks=CAPACITY, ema_alpha=0.1, engine="python")
        self.native = TaskTracker(max_memory_tasks=CAPACITY, ema_alpha=0.1, engine="native")
        self.scorer = SimpleNamespace(config=LearningProgressConfig(use_shared_memory=False))
        self.scoring = (True, 0.1, 2)
        self.both("configure_scoring", *self.scoring)

    def both(self, method: str, *args, **kwargs):
        # Same random draws for both (the seed an update-created task gets).
        state = random.getstate()
        expected = getattr(self.model, method)(*args, **kwargs)
        random.setstate(state)
        actual = getattr(self.native, method)(*args, **kwargs)
        return expected, actual

    @rule(target=tasks, task_id=task_ids, threshold=thresholds, seed=st.integers(0, 2**31 - 1))
    def create(self, task_id, threshold, seed):
        self.both("track_task_creation", task_id, success_threshold=threshold, seed=float(seed))
        expected, actual = self.both("get_task_index", task_id)
        assert (expected is None) == (actual is None)
        return task_id

    @rule(task_id=tasks, score=scores, threshold=thresholds)
    def bidirectional_update(self, task_id, score, threshold):
        self.both(
            "update_task_performance_with_bidirectional_emas",
            task_id,
            score,
            scorer=self.scorer,
            success_threshold=threshold,
        )
        self.compare_stats(task_id)

    @rule(task_id=tasks, score=scores, lp_score=st.none() | st.floats(0.0, 1.0))
    def basic_update(self, task_id, score, lp_score):
        self.both("update_task_performance", task_id, score, lp_score=lp_score)
        self.compare_stats(task_id)

    @rule(task_id=consumes(tasks))
    def remove(self, task_id):
        self.both("remove_task", task_id)
        expected, actual = self.both("get_task_index", task_id)
        assert expected is None and actual is None

    @rule(task_id=tasks, label=labels)
    def label(self, task_id, label):
        self.both("set_task_label", task_id, label)
        expected, actual = self.both("get_task_label", task_id)
        assert expected == actual

    @rule(
        theta=st.sampled_from([0.5, 0.05, 0.8]),
        smoothing=st.sampled_from([0.0, 0.01]),
        bonus=st.sampled_from([0.0, 0.5]),
        temperature=st.sampled_from([0.0, 0.1, 1.0, -1.0]),
        z=st.sampled_from([1.0, 5.0, 10.0]),
    )
    def distribution(self, theta, smoothing, bonus, temperature, z):
        params = DistributionParams(theta, smoothing, bonus, temperature, z)
        self.both("compute_lp_distribution", params)
        for task_id in self.model.get_all_tracked_tasks():
            self.compare_stats(task_id)

    @rule(bidirectional=st.booleans(), bonus=st.sampled_from([0.0, 0.1, 0.3]), min_samples=st.integers(0, 4))
    def configure_scoring(self, bidirectional, bonus, min_samples):
        self.scoring = (bidirectional, bonus, min_samples)
        self.both("configure_scoring", *self.scoring)

    @rule(
        extra=st.lists(task_ids, max_size=3),
        uniform=st.floats(0.0, 1.0, exclude_max=True),
        min_presentations=st.integers(0, 4),
        percentile=st.sampled_from([0.0, 0.4, 0.9]),
    )
    def scores_sampling_eviction(self, extra, uniform, min_presentations, percentile):
        """The Table's score paths agree: scores, recommend_eviction (duplicates and
        untracked ids included), the pool's eviction candidates, and sampling."""
        pool = self.model.get_all_tracked_tasks()
        assert pool == self.native.get_all_tracked_tasks()  # same slots, same active order
        ids = np.array(pool + extra + pool[:2], dtype=np.int64)
        expected, actual = self.both("scores", ids)
        assert all(_close(e, a) for e, a in zip(expected.tolist(), actual.tolist()))
        expected, actual = self.both("recommend_eviction", ids, min_presentations, percentile)
        assert expected == actual
        expected, actual = (
            [a.tolist() for a in tracker.table.eviction_candidates(min_presentations, percentile, 4)]
            for tracker in (self.model, self.native)
        )
        assert expected == actual
        recommended = self.model.recommend_eviction(np.array(pool, dtype=np.int64), min_presentations, percentile)
        assert (expected[1][0] if expected[1] else None) == recommended
        for tracker in (self.model, self.native):
            candidate = tracker.table.pool_eviction_candidate(min_presentations, percentile, True)
            assert (candidate or None) == recommended
        expected, actual = (tracker.table.sample(uniform) for tracker in (self.model, self.native))
        assert (expected == 0) == (actual == 0) == (not pool)
        if pool and not self.near_a_boundary(uniform):
            assert expected == actual
        else:  # a cumulative sum and a sum tree may round a boundary to either side
            assert actual == expected or actual in pool

    def near_a_boundary(self, uniform: float) -> bool:
        """Whether uniform * total lies within rounding of a slot's cumulative weight."""
        rows = self.model.table.rows
        occupied = np.flatnonzero(rows[:, 0] != 0.0)
        weights = np.zeros(CAPACITY)
        weights[occupied] = np.maximum(self.model.table.scores(rows[occupied, 0].astype(np.int64)), 0.0)
        cumulative = np.cumsum(weights)
        total = cumulative[-1]
        return bool(total > 0.0 and np.min(np.abs(cumulative - uniform * total)) <= 1e-9 * total)

    @rule(task_id=tasks)
    def stats(self, task_id):
        self.compare_stats(task_id)

    def compare_stats(self, task_id):
        expected, actual = self.both("get_task_stats", task_id)
        assert (expected is None) == (actual is None), (expected, actual)
        if expected is None:
            return
        assert expected.keys() == actual.keys()
        for key in expected.keys() - TIME_DEPENDENT:
            assert _close(expected[key], actual[key]), (key, expected[key], actual[key])

    @invariant()
    def same_pool(self):
        expected, actual = self.both("get_all_tracked_tasks")
        assert sorted(expected) == sorted(actual)
        assert len(set(actual)) == len(actual) <= CAPACITY
        assert len(self.native._task_id_to_index) == len(actual)

    @invariant()
    def same_totals(self):
        expected, actual = self.both("get_global_stats")
        assert expected["total_completions"] == actual["total_completions"]
        assert _close(expected["mean_score"], actual["mean_score"])
        expected, actual = self.both("get_label_completion_counts")
        assert expected == actual

    def teardown(self):
        self.native.cleanup_shared_memory()
        self.model.cleanup_shared_memory()


EnginesAgree.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEnginesAgree = EnginesAgree.TestCase
