"""``Curriculum``: the pool manager, and the table paths it runs on (scores,
O(log n) sampling, eviction candidates), on both engines and across processes."""

from __future__ import annotations

import math
import multiprocessing
import random
from types import SimpleNamespace

import numpy as np
import pytest

from lptrack import LearningProgressConfig
from lptrack._engines import make_table
from lptrack._table import BidirectionalParams, DistributionParams
from lptrack.curriculum import Curriculum, DiscreteRandomCurriculumConfig

JOIN_TIMEOUT = 60.0
PARAMS = BidirectionalParams(0.1, 0.02, True)
DISTRIBUTION = DistributionParams(0.05, 0.0, 0.0, 0.0, 10.0)


def lp_config(engine: str, **overrides) -> LearningProgressConfig:
    return LearningProgressConfig(use_shared_memory=False, engine=engine, **overrides)


def play(curriculum: Curriculum, episodes: int, seed: int = 0) -> list[int]:
    """Run episodes with a seeded score per task; returns the task sequence."""
    rng = random.Random(seed)
    sequence = []
    for _ in range(episodes):
        task_id = curriculum.get_task()._task_id
        sequence.append(task_id)
        curriculum.update_task_performance(task_id, rng.random() * (task_id % 7) / 6.0)
    return sequence


@pytest.fixture(params=["discrete", "python", "native"])
def algorithm_config(request):
    if request.param == "discrete":
        return DiscreteRandomCurriculumConfig()
    return lp_config(request.param, perf_invalidation_batch_size=10, min_samples_for_lp=3)


def test_fills_the_pool_then_evicts_and_creates(algorithm_config) -> None:
    with Curriculum(algorithm_config, num_active_tasks=20, min_presentations_for_eviction=3) as curriculum:
        first = play(curriculum, 20)
        assert len(set(first)) == 20  # every get_task created a task until the pool was full
        assert all(1 <= task_id < 2**53 for task_id in first)
        play(curriculum, 400)
        stats = curriculum.stats()
        assert stats["pool/tasks"] == 20.0
        assert stats["process/episodes"] == 420.0
        if isinstance(algorithm_config, DiscreteRandomCurriculumConfig):
            assert stats["process/tasks_evicted"] == 0.0
        else:
            assert stats["process/tasks_evicted"] > 0
            assert stats["process/tasks_created"] == 20 + stats["process/tasks_evicted"]


def test_same_seed_same_sequence(algorithm_config) -> None:
    sequences = []
    for seed in (7, 7, 8):
        with Curriculum(algorithm_config, num_active_tasks=15, seed=seed) as curriculum:
            sequences.append(play(curriculum, 300))
    assert sequences[0] == sequences[1]
    assert sequences[0] != sequences[2]


def test_engines_give_the_same_sequence() -> None:
    """The native table samples and evicts exactly as the pure engine does."""
    sequences = []
    for engine in ("python", "native"):
        with Curriculum(lp_config(engine, perf_invalidation_batch_size=5), num_active_tasks=12, seed=3) as c:
            sequences.append(play(c, 600))
    assert sequences[0] == sequences[1]


def test_task_factory_and_labels() -> None:
    def factory(task_id: int) -> SimpleNamespace:
        return SimpleNamespace(label=f"level{task_id % 3}", task_id=task_id)

    with Curriculum(lp_config("native"), num_active_tasks=9, task_factory=factory) as curriculum:
        task = curriculum.get_task()
        assert task.get_env_cfg().task_id == task._task_id
        assert task.get_label() == f"level{task._task_id % 3}"
        play(curriculum, 50)
        composition = curriculum.algorithm.get_pool_composition_stats()["pool_composition"]
        assert sum(composition.values()) == 9
        assert set(composition) <= {"level0", "level1", "level2"}
    with Curriculum(num_active_tasks=3) as curriculum:
        assert curriculum.get_task().get_label() == "default"


def test_state_round_trip(algorithm_config) -> None:
    """The pool, its rows, the counters and the rng survive; the restored curriculum carries on.
    (Not necessarily with the same tasks: slots are refilled in checkpoint order, and sampling walks slots.)"""
    with Curriculum(algorithm_config, num_active_tasks=10, seed=1) as curriculum:
        play(curriculum, 120)
        state = curriculum.get_state()
        stats = curriculum.stats()
    with Curriculum(algorithm_config, num_active_tasks=10, seed=1) as restored:
        restored.load_state(state)
        assert restored.get_state() == state
        assert restored.stats() == stats
        play(restored, 200)
        assert restored.stats()["process/episodes"] == 320.0
        assert restored.stats()["pool/tasks"] == 10.0


def test_close_removes_the_shared_segment(session_id: str) -> None:
    config = LearningProgressConfig(use_shared_memory=True, session_id=session_id)
    curriculum = Curriculum(config, num_active_tasks=8)
    play(curriculum, 30)
    curriculum.close()  # the session_id fixture fails the test if the segment stays


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"num_active_tasks": 0}, ValueError),
        ({"num_active_tasks": 2.5}, TypeError),
        ({"num_active_tasks": True}, TypeError),
        ({"min_presentations_for_eviction": -1}, ValueError),
        ({"algorithm_config": "learning_progress"}, TypeError),
    ],
)
def test_bad_arguments(kwargs, error) -> None:
    with pytest.raises(error):
        Curriculum(**kwargs)


def test_load_state_refuses_another_pool_size() -> None:
    with Curriculum(num_active_tasks=4) as small, Curriculum(num_active_tasks=5) as large:
        with pytest.raises(ValueError, match="active tasks"):
            large.load_state(small.get_state())


def test_late_score_of_an_evicted_task_is_ignored() -> None:
    config = lp_config("native", min_samples_for_lp=1)
    with Curriculum(config, num_active_tasks=4, min_presentations_for_eviction=1) as curriculum:
        play(curriculum, 4)
        victim = curriculum.get_task()._task_id
        curriculum.algorithm.on_task_evicted(victim)
        curriculum.update_task_performance(victim, 1.0)
        assert curriculum.stats()["process/late_updates"] == 1.0


# -- the table paths Curriculum runs on -------------------------------------------------------------
def filled_table(engine: str, capacity: int, seed: int):
    """A table with varied rows, a configured score rule and a distribution."""
    rng = random.Random(seed)
    table = make_table(engine, capacity)
    table.configure_scoring(True, 0.1, 4)
    for task_id in rng.sample(range(1, 10**6), capacity):
        table.claim(task_id, 0.0, 0.5, 0.0, 0.0)
        for _ in range(rng.randrange(8)):
            table.update_tracked(task_id, rng.random(), 0.1, PARAMS)
    table.compute_lp_distribution(DISTRIBUTION)
    return table


def test_sampling_follows_the_scores(engine: str) -> None:
    table = filled_table(engine, 40, seed=11)
    ids = table.active_ids()
    expected = table.scores(ids) / table.scores(ids).sum()
    draws = 20_000
    rng = np.random.default_rng(0)
    drawn = [table.sample(u) for u in rng.random(draws).tolist()]
    observed = np.array([drawn.count(task_id) for task_id in ids.tolist()])
    chi_square = float(np.sum((observed - draws * expected) ** 2 / (draws * expected)))
    # 39 degrees of freedom: the 0.999 quantile is about 72; a wrong weight moves it to the thousands.
    assert chi_square < 72.0
    table.close()


def test_sample_matches_a_brute_force_cumulative_sum_under_churn() -> None:
    """The native sum tree, maintained by O(log n) updates through claims,
    releases, updates and lp_score writes, against sums over all slots."""
    rng = random.Random(5)
    capacity = 64
    table = make_table("native", capacity)
    table.configure_scoring(True, 0.1, 3)
    live: list[int] = []
    next_id = 1
    for step in range(3000):
        action = rng.random()
        if action < 0.3 and len(live) < capacity:
            table.claim(next_id, 0.0, 0.5, 0.0, 0.0)
            live.append(next_id)
            next_id += 1
        elif action < 0.45 and live:
            table.release(live.pop(rng.randrange(len(live))))
        elif action < 0.55 and live:
            table.set_fields(rng.choice(live), {4: rng.random()})
        elif live:
            table.update_tracked(rng.choice(live), rng.random(), 0.1, PARAMS)
        if step % 500 == 250:
            table.compute_lp_distribution(DISTRIBUTION)
        if step % 10 == 0 and live:
            slots = np.flatnonzero(table.rows[:, 0] != 0.0)
            weights = np.zeros(capacity)
            weights[slots] = np.maximum(table.scores(table.rows[slots, 0].astype(np.int64)), 0.0)
            cumulative = np.cumsum(weights)
            u = rng.random()
            slot = int(np.searchsorted(cumulative, u * cumulative[-1], side="right"))
            assert table.sample(u) == int(table.rows[slot, 0])
    table.verify()
    table.close()


def test_pool_eviction_candidate_agrees_with_recommend_eviction_at_batch_1(engine: str) -> None:
    config = lp_config(engine, perf_invalidation_batch_size=1, min_samples_for_lp=3)
    # The curriculum evicts at 8 presentations, so tasks with 4 to 7 stay around to be recommended at 4.
    with Curriculum(config, num_active_tasks=30, min_presentations_for_eviction=8, seed=2) as curriculum:
        algorithm = curriculum.algorithm
        rng = random.Random(2)
        agreed = 0
        for _ in range(600):
            pool = algorithm.task_tracker.get_all_tracked_tasks()
            if len(pool) == 30:
                expected = algorithm.recommend_eviction(pool, 4)
                assert algorithm.recommend_pool_eviction(4) == expected
                agreed += expected is not None
            task_id = curriculum.get_task()._task_id
            curriculum.update_task_performance(task_id, rng.random())
        assert agreed > 50


def test_eviction_candidates_are_checked_when_used(engine: str) -> None:
    """A cached candidate another process evicted is skipped, not returned."""
    config = lp_config(engine, perf_invalidation_batch_size=1000, min_samples_for_lp=2)
    with Curriculum(config, num_active_tasks=10, min_presentations_for_eviction=10**9) as curriculum:
        play(curriculum, 100)
        algorithm = curriculum.algorithm
        first = algorithm.recommend_pool_eviction(1)
        assert first is not None and algorithm.recommend_pool_eviction(1) == first
        algorithm.task_tracker.remove_task(first)  # behind the algorithm's back
        second = algorithm.recommend_pool_eviction(1)
        assert second not in (None, first) and algorithm.is_tracked(second)


# -- several processes, one session -------------------------------------------------------------
def _worker(session_id: str, seed: int, episodes: int) -> None:
    config = LearningProgressConfig(use_shared_memory=True, session_id=session_id, perf_invalidation_batch_size=7)
    curriculum = Curriculum(config, num_active_tasks=24, min_presentations_for_eviction=10**9, seed=seed)
    try:
        play(curriculum, episodes, seed)
        assert curriculum.stats()["process/late_updates"] == 0.0
    finally:
        curriculum.close()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_processes_share_one_pool(start_method: str, session_id: str) -> None:
    context = multiprocessing.get_context(start_method)
    config = LearningProgressConfig(use_shared_memory=True, session_id=session_id)
    owner = Curriculum(config, num_active_tasks=24, min_presentations_for_eviction=10**9)
    episodes = 150
    processes = [context.Process(target=_worker, args=(session_id, seed, episodes)) for seed in (1, 2)]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(JOIN_TIMEOUT)
        assert [p.exitcode for p in processes] == [0, 0]
        tracker = owner.algorithm.task_tracker
        pool = tracker.get_all_tracked_tasks()
        assert len(pool) == len(set(pool)) == 24
        tracker.backend.table.verify()
        state = tracker.get_state()
        assert state["cached_total_completions"] == 2 * episodes  # no update lost, none evicted
        assert owner.get_task()._task_id in pool
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
        owner.close()


def test_score_tasks_validates_ids() -> None:
    with Curriculum(lp_config("native"), num_active_tasks=3) as curriculum:
        algorithm = curriculum.algorithm
        with pytest.raises(TypeError):
            algorithm.score_tasks([1, 2.5])
        with pytest.raises(ValueError):
            algorithm.score_tasks([0])
        assert algorithm.score_tasks([5, 5]) == {5: algorithm.hypers.exploration_bonus}
        assert math.isclose(algorithm.get_task_score(5), algorithm.hypers.exploration_bonus)
