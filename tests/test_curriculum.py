"""``Curriculum``: the pool manager, and the table paths it runs on (scores,
O(log n) sampling, eviction candidates), on both engines and across processes."""

from __future__ import annotations

import math
import multiprocessing
import pickle
import random
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from lptrack import CurriculumTask, LearningProgressConfig
from lptrack._engines import make_table
from lptrack._table import BidirectionalParams, DistributionParams
from lptrack.curriculum import (
    Curriculum,
    DiscreteRandomCurriculumConfig,
    InactiveLearningProgressWarning,
    SharedStreamWarning,
    default_min_presentations,
)

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


def counts(stats: dict[str, float]) -> dict[str, float]:
    """The stats that do not depend on the distribution's age."""
    return {name: value for name, value in stats.items() if "/top/" not in name and "prob" not in name}


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
        # The restored scorer recomputes the distribution, which the original may have had up
        # to a batch old: sampling probabilities may differ, the counts may not.
        assert counts(restored.stats()) == counts(stats)
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


# -- item 1: a random stream per process ------------------------------------------------------------
STREAM_POOL = 16
#: Each worker plays until it created this many tasks (or STREAM_MAX_EPISODES episodes).
STREAM_CREATIONS = 40
STREAM_MAX_EPISODES = 20_000
STREAM_WORKERS = 4


def stream_config(session_id: str) -> LearningProgressConfig:
    # Tasks scored from their 1st score and evicted from their 2nd: many creations per worker.
    return LearningProgressConfig(use_shared_memory=True, session_id=session_id, min_samples_for_lp=1)


def _creating_worker(source, how: str, seed, queue) -> None:
    """Play episodes on the session until this process created STREAM_CREATIONS tasks;
    put their ids and whether it warned of a shared stream."""
    if how == "config":
        curriculum = Curriculum(source, num_active_tasks=STREAM_POOL, seed=seed)
    elif how == "pickled":
        curriculum = pickle.loads(source)
    else:  # the Curriculum object itself: inherited by a forked child, pickled for a spawned one
        curriculum = source
    created: list[int] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(STREAM_MAX_EPISODES):
                if len(created) == STREAM_CREATIONS:
                    break
                before = curriculum.process_stats()["process/tasks_created"]
                task = curriculum.get_task()
                if curriculum.process_stats()["process/tasks_created"] > before:
                    created.append(task.task_id)
                curriculum.update_task_performance(task.task_id, float(task.task_id % 2))
        queue.put((created, any(issubclass(w.category, SharedStreamWarning) for w in caught)))
    finally:
        curriculum.close()


def created_ids(start_method: str, session_id: str, how: str, seeds) -> tuple[list[list[int]], int]:
    """The ids each of STREAM_WORKERS processes created on one session (``seeds[i]``:
    worker i's), and how many of them warned of a shared stream."""
    config = stream_config(session_id)
    owner = Curriculum(config, num_active_tasks=STREAM_POOL, seed=seeds[0])
    source = {"config": config, "pickled": pickle.dumps(owner), "object": owner}[how]
    try:
        results = run_workers(start_method, _creating_worker, [(source, how, seed) for seed in seeds])
    finally:
        owner.close()
    return [ids for ids, _ in results], sum(warned for _, warned in results)


def run_workers(start_method: str, target, arguments: list[tuple]) -> list:
    """One process per argument tuple, ``target(*args, queue)``; the one result each puts,
    after every process exited with 0 (any still running at the end is killed)."""
    context = multiprocessing.get_context(start_method)
    queue = context.Queue()
    processes = [context.Process(target=target, args=(*args, queue)) for args in arguments]
    try:
        for process in processes:
            process.start()
        results = [queue.get(timeout=JOIN_TIMEOUT) for _ in processes]
        for process in processes:
            process.join(JOIN_TIMEOUT)
        assert [p.exitcode for p in processes] == [0] * len(processes)
        return results
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()


@pytest.mark.parametrize("how", ["config", "pickled", "object"])
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_default_seed_gives_every_process_its_own_stream(start_method: str, how: str, session_id: str) -> None:
    """4 workers, default seed, the curriculum built in each worker from the config or
    pickled from the parent: no id is created twice (ids are 53 random bits)."""
    per_worker, warned = created_ids(start_method, session_id, how, [None] * STREAM_WORKERS)
    total = sum(map(len, per_worker))
    assert warned == 0
    assert [len(ids) for ids in per_worker] == [STREAM_CREATIONS] * STREAM_WORKERS
    assert len({task_id for ids in per_worker for task_id in ids}) == total


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_copies_of_a_seeded_curriculum_draw_their_own_streams(start_method: str, session_id: str) -> None:
    per_worker, warned = created_ids(start_method, session_id, "pickled", [7] * STREAM_WORKERS)
    assert warned == 0
    assert len({task_id for ids in per_worker for task_id in ids}) == sum(map(len, per_worker))


def test_curricula_built_with_one_seed_replay_one_stream(session_id: str) -> None:
    """What the docs warn of: an explicit seed is the whole stream of the process that
    builds it.  (Whether a process also warns depends on the timing: the id it draws
    again may have been evicted already; test_a_replayed_stream_warns_once checks that.)"""
    per_worker, _ = created_ids("fork", session_id, "config", [7] * STREAM_WORKERS)
    distinct = len({task_id for ids in per_worker for task_id in ids})
    assert distinct < sum(map(len, per_worker))  # processes created the same ids


def test_a_replayed_stream_warns_once(session_id: str) -> None:
    config = LearningProgressConfig(use_shared_memory=True, session_id=session_id)
    with Curriculum(config, num_active_tasks=8, seed=3) as first:
        play(first, 8)  # fills the pool
        with Curriculum(config, num_active_tasks=8, seed=3) as second:
            first.algorithm.on_task_evicted(first.get_task().task_id)  # room for one
            with pytest.warns(SharedStreamWarning, match="same random stream"):
                second.get_task()  # draws the first id of seed 3's stream again
            first.algorithm.on_task_evicted(first.get_task().task_id)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                second.get_task()


def test_an_explicit_seed_is_random_Random_of_it() -> None:
    with Curriculum(num_active_tasks=5, seed=11) as curriculum:
        expected = random.Random(11)
        expected.random()  # the draw of the first choice
        assert curriculum.get_task().task_id == (expected.getrandbits(53) or 1)


def test_default_seed_differs_per_curriculum_and_per_copy() -> None:
    first_ids = []
    for _ in range(3):
        with Curriculum(num_active_tasks=5) as curriculum:
            first_ids.append(curriculum.get_task().task_id)
            copy = pickle.loads(pickle.dumps(curriculum))
            first_ids.append(copy.get_task().task_id)
    assert len(set(first_ids)) == 6


@pytest.mark.parametrize("seed", [1.5, "0", True])
def test_seed_must_be_an_int_or_none(seed) -> None:
    with pytest.raises(TypeError, match="seed"):
        Curriculum(seed=seed)


# -- item 2: fixed task sets -------------------------------------------------------------------------
def test_fixed_task_set_from_a_sequence() -> None:
    env_cfgs = [{"label": "easy", "level": 0}, {"label": "hard", "level": 1}, SimpleNamespace(level=2)]
    with Curriculum(lp_config("native"), tasks=env_cfgs, seed=0) as curriculum:
        assert curriculum.is_fixed and curriculum.num_active_tasks == 3
        assert curriculum.min_presentations_for_eviction is None
        assert [(t.task_id, t.env_cfg, t.label) for t in curriculum.tasks] == [
            (1, env_cfgs[0], "easy"), (2, env_cfgs[1], "hard"), (3, env_cfgs[2], "unknown")
        ]
        seen = play(curriculum, 600)
        assert set(seen) == {1, 2, 3}
        stats = curriculum.stats()
        assert stats["process/tasks_created"] == stats["process/tasks_evicted"] == 0.0
        assert stats["pool/completions"] == 600.0  # nothing evicted: the whole run's history
        task = curriculum.get_task()
        assert task is next(t for t in curriculum.tasks if t.task_id == task.task_id)


def test_fixed_task_set_from_a_mapping_and_from_a_count(algorithm_config) -> None:
    with Curriculum(algorithm_config, tasks={10: "a", 2**52: "b", 7: "c"}) as curriculum:
        assert [t.task_id for t in curriculum.tasks] == [10, 2**52, 7]
        assert set(play(curriculum, 200)) == {10, 2**52, 7}
    with Curriculum(algorithm_config, tasks=4, task_factory=lambda task_id: f"cfg{task_id}") as curriculum:
        assert [(t.task_id, t.env_cfg) for t in curriculum.tasks] == [(1, "cfg1"), (2, "cfg2"), (3, "cfg3"), (4, "cfg4")]
        assert set(play(curriculum, 200)) == {1, 2, 3, 4}
        assert curriculum.stats()["pool/tasks"] == 4.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tasks": []}, ValueError, "at least one"),
        ({"tasks": 0}, ValueError, "at least one"),
        ({"tasks": True}, TypeError, "tasks"),
        ({"tasks": "abc"}, TypeError, "tasks"),
        ({"tasks": {0: "a"}}, ValueError, "task ids"),
        ({"tasks": {1.0: "a"}}, TypeError, "task ids"),
        ({"tasks": ["a"], "task_factory": str}, ValueError, "task_factory"),
        ({"tasks": ["a", "b"], "num_active_tasks": 3}, ValueError, "num_active_tasks"),
        ({"tasks": ["a"], "min_presentations_for_eviction": 5}, ValueError, "never evicts"),
        ({"task_factory": 3}, TypeError, "task_factory"),
        ({"min_presentations_for_eviction": 2.0}, TypeError, "min_presentations"),
    ],
)
def test_bad_task_spaces(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        Curriculum(**kwargs)


def test_fixed_task_set_state_round_trip(algorithm_config) -> None:
    with Curriculum(algorithm_config, tasks=["a", "b", "c", "d"], seed=3) as curriculum:
        play(curriculum, 150)
        state = curriculum.get_state()
        stats = curriculum.stats()
        following = play(curriculum, 50, seed=9)
    with Curriculum(algorithm_config, tasks=["a", "b", "c", "d"], seed=5) as restored:
        restored.load_state(state)
        assert restored.get_state() == {**state, "seed": 5}
        assert counts(restored.stats()) == counts(stats)
        assert play(restored, 50, seed=9) == following  # the checkpoint's pool and stream: same tasks
    with Curriculum(algorithm_config, tasks=["a", "b", "c"]) as other, pytest.raises(ValueError, match="active tasks"):
        other.load_state(state)
    with Curriculum(algorithm_config, tasks={1: "a", 2: "b", 3: "c", 5: "d"}) as other:
        with pytest.raises(ValueError, match="task space"):
            other.load_state(state)
    with Curriculum(algorithm_config, num_active_tasks=4) as generated:
        with pytest.raises(ValueError, match="task space"):
            generated.load_state(state)


def test_fixed_task_set_puts_back_a_task_evicted_behind_its_back() -> None:
    with Curriculum(lp_config("native"), tasks=["a", "b", "c"]) as curriculum:
        curriculum.algorithm.on_task_evicted(2)
        assert {curriculum.get_task().task_id for _ in range(200)} == {1, 2, 3}
        assert curriculum.algorithm.pool_size() == 3


def _fixed_worker(source, how: str, episodes: int, queue) -> None:
    if how == "config":
        curriculum = Curriculum(source, tasks=FIXED_TASKS)
    else:
        curriculum = pickle.loads(source)
    try:
        labels = {}
        for _ in range(episodes):
            task = curriculum.get_task()
            labels[task.task_id] = task.label
            curriculum.update_task_performance(task.task_id, 1.0 if task.label == "solved" else 0.0)
        queue.put((labels, curriculum.process_stats()))
    finally:
        curriculum.close()


FIXED_TASKS = [{"label": "solved"}, {"label": "unsolved"}] * 6


@pytest.mark.parametrize("how", ["config", "pickled"])
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_fixed_task_set_across_processes(start_method: str, how: str, session_id: str) -> None:
    """Workers join the creator's fixed set (same ids, no task added or evicted), and the
    pool-wide stats in the creator count every worker's episodes."""
    config = LearningProgressConfig(use_shared_memory=True, session_id=session_id, min_samples_for_lp=3)
    owner = Curriculum(config, tasks=FIXED_TASKS)
    source = config if how == "config" else pickle.dumps(owner)
    episodes = 200
    try:
        results = run_workers(start_method, _fixed_worker, [(source, how, episodes)] * 3)
        expected_labels = {task.task_id: task.label for task in owner.tasks}
        for labels, process_stats in results:
            assert labels.items() <= expected_labels.items()  # one id, one task, in every process
            assert process_stats["process/episodes"] == episodes
            assert process_stats["process/tasks_created"] == 0.0
        stats = owner.stats()
        assert stats["pool/tasks"] == len(FIXED_TASKS)
        assert stats["pool/completions"] == 3 * episodes
        assert stats["process/episodes"] == 0.0  # the owner played none itself
        assert stats["pool/label/solved/tasks"] == stats["pool/label/unsolved/tasks"] == 6.0
        assert stats["pool/label/solved/completions"] + stats["pool/label/unsolved/completions"] == 3 * episodes
        assert stats["pool/mean_score"] == pytest.approx(stats["pool/label/solved/completions"] / (3 * episodes))
        # The workers' close() left the segment to its creator: a late joiner finds the pool.
        with Curriculum(config, tasks=FIXED_TASKS) as late:
            assert late.pool_stats()["pool/completions"] == 3 * episodes
    finally:
        owner.close()


def test_a_different_fixed_set_on_one_session_is_refused(session_id: str) -> None:
    config = LearningProgressConfig(use_shared_memory=True, session_id=session_id)
    with Curriculum(config, tasks=["a", "b"]):
        with pytest.raises(ValueError, match="same tasks"):
            Curriculum(config, tasks={1: "a", 3: "c"})


# -- item 3: learning progress on with the defaults ---------------------------------------------------
KINDS = ("learnable", "solved", "unsolved")


class SimulatedLearner:
    """Always solves "solved" tasks, never "unsolved" ones; on a "learnable" task it succeeds
    with probability practice / horizon, its practice being its episodes of that task."""

    def __init__(self, seed: int, horizon: int = 200) -> None:
        self._rng = random.Random(seed)
        self._practice: dict[int, int] = {}
        self._horizon = horizon

    def play(self, task) -> float:
        if task.label != "learnable":
            return 1.0 if task.label == "solved" else 0.0
        practice = self._practice.get(task.task_id, 0)
        self._practice[task.task_id] = practice + 1
        return 1.0 if self._rng.random() < min(1.0, practice / self._horizon) else 0.0


def learnable_share(curriculum: Curriculum, seed: int, warmup: int = 1000, measured: int = 3000) -> float:
    """The share of the episodes after ``warmup`` spent on learnable tasks."""
    learner = SimulatedLearner(seed)
    learnable = 0
    for episode in range(warmup + measured):
        task = curriculum.get_task()
        learnable += episode >= warmup and task.label == "learnable"
        curriculum.update_task_performance(task.task_id, learner.play(task))
    return learnable / measured


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learning_progress_samples_learnable_tasks_more_on_a_fixed_set(seed: int, engine: str) -> None:
    """10 learnable, 10 always solved, 10 never solved tasks.  Measured (seeds 0-7, native):
    uniform gives learnable tasks 0.315-0.344 of the episodes, learning progress with
    LearningProgressConfig()'s defaults 0.847-0.951 (median 0.892)."""
    tasks = [{"label": kind} for kind in KINDS for _ in range(10)]
    with Curriculum(tasks=tasks, seed=seed) as uniform:
        uniform_share = learnable_share(uniform, seed)
    with Curriculum(LearningProgressConfig(use_shared_memory=False, engine=engine), tasks=tasks, seed=seed) as lp:
        lp_share = learnable_share(lp, seed)
    assert 0.28 < uniform_share < 0.39
    assert lp_share > 0.75 and lp_share > 2.0 * uniform_share


def kind_factory(task_id: int) -> dict[str, str]:
    return {"label": KINDS[task_id % 3]}


@pytest.mark.parametrize("seed", [0, 1])
def test_learning_progress_is_active_with_the_defaults_on_a_generated_pool(seed: int) -> None:
    """A generated pool of 30 (about a third of each kind).  Measured (seeds 0-7): with the
    Curriculum's default min_presentations_for_eviction (20) learnable tasks get 0.809-0.938
    of the episodes; evicted after 5 presentations, as before, 0.304-0.340: uniform."""
    config = LearningProgressConfig(use_shared_memory=False)
    with Curriculum(config, num_active_tasks=30, task_factory=kind_factory, seed=seed) as curriculum:
        assert curriculum.min_presentations_for_eviction == 20
        active_share = learnable_share(curriculum, seed)
        assert curriculum.stats()["pool/scored_tasks"] > 0
    with pytest.warns(InactiveLearningProgressWarning, match="min_samples_for_lp"):
        trap = Curriculum(config, num_active_tasks=30, task_factory=kind_factory, seed=seed,
                          min_presentations_for_eviction=5)
    with trap:
        trap_share = learnable_share(trap, seed)
        assert trap.stats()["pool/scored_tasks"] == 0.0
    assert active_share > 0.75
    assert trap_share < 0.45


def test_default_min_presentations_follows_the_scorer() -> None:
    assert default_min_presentations(DiscreteRandomCurriculumConfig()) == 5
    assert default_min_presentations(LearningProgressConfig(use_shared_memory=False)) == 20
    assert default_min_presentations(LearningProgressConfig(use_shared_memory=False, min_samples_for_lp=3)) == 6
    basic = LearningProgressConfig(use_shared_memory=False, use_bidirectional=False, min_samples_for_lp=0)
    assert default_min_presentations(basic) == 4  # the basic scorer scores from the 2nd score


def test_no_warning_when_tasks_can_be_scored() -> None:
    config = LearningProgressConfig(use_shared_memory=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Curriculum(config, min_presentations_for_eviction=10).close()  # scored at their 10th score
        Curriculum(config, tasks=3).close()  # a fixed set never evicts
        Curriculum(num_active_tasks=3, min_presentations_for_eviction=0).close()  # uniform


# -- item 4: a public task ---------------------------------------------------------------------------
def test_task_attributes_are_public_and_read_only() -> None:
    task = CurriculumTask(5, {"label": "maze"})
    assert (task.task_id, task.env_cfg, task.label) == (5, {"label": "maze"}, "maze")
    assert (task._task_id, task.get_env_cfg(), task.get_label()) == (5, {"label": "maze"}, "maze")
    for name in ("task_id", "env_cfg", "label"):
        with pytest.raises(AttributeError):
            setattr(task, name, 1)
    with Curriculum(num_active_tasks=3, task_factory=lambda task_id: SimpleNamespace(label=None)) as curriculum:
        assert curriculum.get_task().label == "unknown"


# -- items 5 and 6: statistics ---------------------------------------------------------------------------
def test_stats_are_flat_floats_and_name_their_scope(algorithm_config) -> None:
    with Curriculum(algorithm_config, num_active_tasks=12, task_factory=kind_factory, seed=4) as curriculum:
        play(curriculum, 300)
        stats = curriculum.stats()
    assert all(type(name) is str and type(value) is float for name, value in stats.items())
    assert all(name.startswith(("pool/", "process/")) for name in stats)
    assert stats["pool/tasks"] == stats["pool/capacity"] == 12.0
    assert sum(stats[f"pool/label/{kind}/tasks"] for kind in KINDS if f"pool/label/{kind}/tasks" in stats) == 12.0
    assert stats["process/episodes"] == 300.0


def test_top_tasks_are_ranked_by_the_probability_sampling_uses() -> None:
    config = lp_config("native", perf_invalidation_batch_size=1, min_samples_for_lp=3)
    with Curriculum(config, tasks=[{"label": kind} for kind in KINDS for _ in range(4)], seed=1) as curriculum:
        learnable_share(curriculum, seed=1, warmup=0, measured=400)
        stats = curriculum.pool_stats(top=12)
        algorithm = curriculum.algorithm
        ids = [int(stats[f"pool/top/{rank}/task_id"]) for rank in range(1, 13)]
        probabilities = [stats[f"pool/top/{rank}/sample_prob"] for rank in range(1, 13)]
        assert sorted(ids) == list(range(1, 13))
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0)
        weights = algorithm.score_tasks(ids)  # the scores the sum tree holds
        total = sum(max(w, 0.0) for w in weights.values())
        assert probabilities == pytest.approx([max(weights[i], 0.0) / total for i in ids])
        assert stats["pool/max_sample_prob"] == probabilities[0]
        assert stats["pool/label/learnable/sample_prob"] > 0.5
        # the draws follow them: the top task is drawn about as often as its probability says
        drawn = [curriculum.get_task().task_id for _ in range(4000)]
        assert drawn.count(ids[0]) / 4000 == pytest.approx(probabilities[0], abs=0.05)
        assert len(curriculum.pool_stats(top=0)) < len(stats)
        with pytest.raises(ValueError, match="top"):
            curriculum.pool_stats(top=-1)


def test_uniform_pool_stats() -> None:
    with Curriculum(num_active_tasks=6, task_factory=kind_factory, seed=2) as curriculum:
        for _ in range(60):
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, 1.0 if task.label == "solved" else 0.25)
        stats = curriculum.stats()
    assert stats["pool/tasks"] == 6.0 and stats["pool/max_sample_prob"] == pytest.approx(1 / 6)
    assert stats["pool/completions"] == stats["process/episodes"] == 60.0
    assert 0.25 <= stats["pool/mean_score"] == stats["process/mean_score"] <= 1.0
