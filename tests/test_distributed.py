"""lptrack.distributed: 3 ranks (torch.multiprocessing, spawn; gloo on localhost), each with
its own session, its own episodes and a second env-worker process (fork or spawn) writing
to the rank's pool; they converge after a final exchange, and a rank that dies makes the
others raise ExchangeError within the group's timeout, losing nothing of their pools."""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import random
import signal
import socket
import time
from datetime import timedelta

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as torch_mp  # noqa: E402

from lptrack import Curriculum, LearningProgressConfig  # noqa: E402
from lptrack.distributed import CurriculumSync, ExchangeError, gather_pool_stats  # noqa: E402

WORLD = 3
TASKS = 40
MAIN_EPISODES = 600  # per rank, in its main process (one sync.step() each)
WORKER_EPISODES = 400  # per rank, in its second process
EVERY = 50
GROUP_TIMEOUT = 6.0  # seconds: the gloo group's timeout
JOIN_TIMEOUT = 120.0
#: lockstep=False: the largest total variation distance between two ranks' sampling
#: distributions after the final exchange (measured 0.05-0.20 with this workload; README
#: "Many hosts").  Lockstep distributions are compared for equality.
IMMEDIATE_TV_TOLERANCE = 0.35


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rank_session(session_id: str, rank: int) -> str:
    return f"r{rank}_{session_id}"


def lp_config(session_id: str) -> LearningProgressConfig:
    return LearningProgressConfig(session_id=session_id, min_samples_for_lp=3)


class Learner:
    """A simulated agent: tasks 1..TASKS/2 are learnable (the success chance grows with
    practice), the rest are always failed or always solved."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.practice: dict[int, int] = {}

    def score(self, task_id: int) -> float:
        if task_id > TASKS // 2:
            return float(task_id % 2)
        done = self.practice[task_id] = self.practice.get(task_id, 0) + 1
        return 1.0 if self.rng.random() < min(0.95, 0.05 + done / 60) else 0.0


def run_episodes(curriculum: Curriculum, learner: Learner, counts: np.ndarray, sync: CurriculumSync | None,
                 episodes: int) -> None:
    for _ in range(episodes):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, learner.score(task.task_id))
        counts[task.task_id - 1] += 1
        if sync is not None:
            sync.step()


def host_worker(curriculum: Curriculum, seed: int, episodes: int, results) -> None:
    """A second env-worker process of the rank's host: its own episodes on the host's pool."""
    counts = np.zeros(TASKS, dtype=np.int64)
    run_episodes(curriculum, Learner(seed), counts, None, episodes)
    results.put(counts.tolist())
    curriculum.close()


def pool_counts(curriculum: Curriculum) -> np.ndarray:
    tracker = curriculum.algorithm.task_tracker
    return np.array([tracker.get_task_stats(t)["completion_count"] for t in range(1, TASKS + 1)], dtype=np.int64)


def init_group(rank: int, port: int) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=GROUP_TIMEOUT))


def converging_rank(rank: int, port: int, session_id: str, method: str, lockstep: bool, results) -> None:
    init_group(rank, port)
    curriculum = Curriculum(lp_config(rank_session(session_id, rank)), tasks=TASKS, seed=rank)
    sync = CurriculumSync(curriculum, every_steps=EVERY, lockstep=lockstep)
    try:
        worker_results = multiprocessing.get_context(method).Queue()
        worker = multiprocessing.get_context(method).Process(
            target=host_worker, args=(curriculum, 1000 + rank, WORKER_EPISODES, worker_results)
        )
        worker.start()
        counts = np.zeros(TASKS, dtype=np.int64)
        run_episodes(curriculum, Learner(rank), counts, sync, MAIN_EPISODES)
        counts += np.array(worker_results.get(timeout=JOIN_TIMEOUT))
        worker.join(JOIN_TIMEOUT)
        sync.exchange()  # the final exchange, once every process of every host is done
        combined = gather_pool_stats(curriculum)
        results.put({
            "combined_completions": combined["ranks/pool/completions"],
            "combined_label_prob": combined["ranks/pool/label/default/sample_prob"],
            "rank": rank,
            "generated": counts.tolist(),
            "pool": pool_counts(curriculum).tolist(),
            "distribution": sync.distribution(),
            "stats": sync.stats(),
            "worker_exitcode": worker.exitcode,
        })
    finally:
        sync.close()
        curriculum.close()
        dist.destroy_process_group()


def start_ranks(target, args: tuple) -> tuple[list, object]:
    context = torch_mp.get_context("spawn")
    results = context.Queue()
    ranks = [context.Process(target=target, args=(rank, *args, results)) for rank in range(WORLD)]
    for process in ranks:
        process.start()
    return ranks, results


def collect(ranks: list, results, expected: int) -> list[dict]:
    collected = []
    deadline = time.monotonic() + JOIN_TIMEOUT
    try:
        while len(collected) < expected:
            try:
                collected.append(results.get(timeout=0.5))
            except queue.Empty:
                if time.monotonic() > deadline or not any(process.is_alive() for process in ranks):
                    exitcodes = [process.exitcode for process in ranks]
                    pytest.fail(f"only {len(collected)} of {expected} ranks reported (exit codes {exitcodes})")
        for process in ranks:
            process.join(max(1.0, deadline - time.monotonic()))
    finally:
        for process in ranks:
            if process.is_alive():
                process.kill()
                process.join()
    return sorted(collected, key=lambda result: result["rank"])


@pytest.mark.parametrize(("method", "lockstep"), [("fork", True), ("spawn", True), ("fork", False)])
def test_ranks_converge_to_one_pool(session_id: str, method: str, lockstep: bool) -> None:
    ranks, results = start_ranks(converging_rank, (free_port(), session_id, method, lockstep))
    reports = collect(ranks, results, WORLD)
    assert [process.exitcode for process in ranks] == [0] * WORLD
    assert all(report["worker_exitcode"] == 0 for report in reports)
    # Every rank's pool counts every outcome of every process of every rank, once.
    generated = np.sum([report["generated"] for report in reports], axis=0)
    assert generated.sum() == WORLD * (MAIN_EPISODES + WORKER_EPISODES)
    for report in reports:
        assert report["pool"] == generated.tolist(), f"rank {report['rank']}"
        # gather_pool_stats adds the ranks' pools up (here, each holding every outcome).
        assert report["combined_completions"] == WORLD * generated.sum()
        assert report["combined_label_prob"] == pytest.approx(1.0)
        assert report["stats"]["sync/lost_outcomes"] == 0
        assert report["stats"]["sync/outcomes_sent"] == MAIN_EPISODES + WORKER_EPISODES
        assert report["stats"]["sync/exchanges"] == MAIN_EPISODES // EVERY + 1
    # The same sampling distribution, up to the order of updates within an exchange.
    distributions = [np.array([report["distribution"][t] for t in range(1, TASKS + 1)]) for report in reports]
    for d in distributions:
        assert math.isclose(d.sum(), 1.0, rel_tol=1e-9)
    worst_tv = max(0.5 * np.abs(a - b).sum() for a in distributions for b in distributions)
    worst_prob = max(np.abs(a - b).max() for a in distributions for b in distributions)
    print(f"\nconvergence ({method}, lockstep={lockstep}): worst total variation {worst_tv:.2e}, "
          f"worst probability gap {worst_prob:.2e}")
    if lockstep:
        # Every rank applied the same outcomes in the same order: the same pool, bit for bit.
        assert all(np.array_equal(d, distributions[0]) for d in distributions)
    else:
        assert worst_tv <= IMMEDIATE_TV_TOLERANCE
    # Learning progress shaped it: the learnable half draws more than under uniform sampling.
    assert distributions[0][: TASKS // 2].sum() > 0.5


def dying_rank(rank: int, port: int, session_id: str, how: str, results) -> None:
    """Ranks 0 and 1 run on after rank 2, after its second exchange, is SIGKILLed
    (``how="killed"``) or stops exchanging while it lives on (``"stalled"``)."""
    init_group(rank, port)
    curriculum = Curriculum(lp_config(rank_session(session_id, rank)), tasks=TASKS, seed=rank)
    sync = CurriculumSync(curriculum, every_steps=EVERY)
    learner = Learner(rank)
    counts = np.zeros(TASKS, dtype=np.int64)
    try:
        run_episodes(curriculum, learner, counts, sync, 2 * EVERY)
        assert sync.stats()["sync/exchanges"] == 2
        if rank == WORLD - 1 and how == "stalled":
            time.sleep(GROUP_TIMEOUT + 4.0)  # alive, in no collective
            return
        if rank == WORLD - 1:
            # Die as a killed host does; first take the segments off the resource
            # tracker the ranks share, so that the test (not the tracker) removes them.
            from multiprocessing import resource_tracker

            for name in (curriculum.algorithm.task_tracker.table.segment_name, sync._journal._segment._name):
                resource_tracker.unregister("/" + name.lstrip("/"), "shared_memory")
            os.kill(os.getpid(), signal.SIGKILL)
        before = pool_counts(curriculum)
        own = np.zeros(TASKS, dtype=np.int64)
        started = time.monotonic()
        try:
            run_episodes(curriculum, learner, own, sync, EVERY)
        except ExchangeError as exc:
            error = str(exc)
        else:
            error = None
        elapsed = time.monotonic() - started
        results.put({
            "rank": rank,
            "error": error,
            "elapsed": elapsed,
            "kept": (pool_counts(curriculum) - before - own).tolist(),
            "queued": sync.stats()["sync/outcomes_queued"],
            "own": int(own.sum()),
            "steps_after": [sync.step() for _ in range(2 * EVERY)],
        })
    finally:
        sync.close()
        curriculum.close()


@pytest.mark.parametrize("how", ["killed", "stalled"])
def test_a_dead_rank_makes_the_others_raise_within_the_timeout(session_id: str, how: str) -> None:
    ranks, results = start_ranks(dying_rank, (free_port(), session_id, how))
    try:
        reports = collect(ranks, results, WORLD - 1)
    finally:
        for name in os.listdir("/dev/shm"):
            if name.endswith(rank_session(session_id, WORLD - 1)):
                os.unlink(f"/dev/shm/{name}")
    ranks[WORLD - 1].join(JOIN_TIMEOUT)
    assert ranks[WORLD - 1].exitcode == (-signal.SIGKILL if how == "killed" else 0)
    print(f"\n{how} rank: the others raised after {[round(r['elapsed'], 2) for r in reports]} s")
    for report in reports:
        assert report["error"] is not None and "a rank died or stopped exchanging" in report["error"]
        # Raised within the group's timeout (plus the episodes before the exchange).
        assert report["elapsed"] < GROUP_TIMEOUT + 5.0, report
        # Nothing lost: the pool holds all it had plus every own outcome since (in
        # lockstep those were held back for the exchange, and applied when it failed).
        assert report["own"] == EVERY
        assert report["kept"] == [0] * TASKS
        assert report["queued"] == 0
        # The host carries on alone: step() no longer exchanges.
        assert not any(report["steps_after"])


# -- one rank, in this process: the arguments, both block paths, every_seconds ------------------
@pytest.fixture
def single_rank_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1,
                            timeout=timedelta(seconds=GROUP_TIMEOUT))
    yield
    dist.destroy_process_group()


def test_the_sync_refuses_what_it_cannot_synchronise(session_id: str, single_rank_group) -> None:
    from lptrack import DiscreteRandomCurriculumConfig

    generated = Curriculum(lp_config(session_id), num_active_tasks=8)
    uniform = Curriculum(DiscreteRandomCurriculumConfig(), tasks=8)
    fixed = Curriculum(lp_config(rank_session(session_id, 0)), tasks=8)
    try:
        with pytest.raises(ValueError, match="fixed task set"):
            CurriculumSync(generated, every_steps=10)
        with pytest.raises(TypeError, match="LearningProgressConfig"):
            CurriculumSync(uniform, every_steps=10)
        for schedule in ({}, {"every_steps": 10, "every_seconds": 1.0}, {"every_steps": 0},
                         {"every_steps": 2.5}, {"every_seconds": -1.0}, {"every_seconds": math.inf}):
            with pytest.raises(ValueError):
                CurriculumSync(fixed, **schedule)
        assert fixed.algorithm._journal is None  # nothing was attached by the refusals
    finally:
        for curriculum in (generated, uniform, fixed):
            curriculum.close()


@pytest.mark.parametrize("outcomes", [10, 255, 256, 3000])
def test_one_rank_applies_its_own_outcomes_at_the_exchange(session_id: str, single_rank_group, outcomes: int) -> None:
    curriculum = Curriculum(lp_config(session_id), tasks=TASKS, seed=0)
    sync = CurriculumSync(curriculum, every_steps=10**6, journal_capacity=1 << 12)
    try:
        counts = np.zeros(TASKS, dtype=np.int64)
        run_episodes(curriculum, Learner(0), counts, sync, outcomes)
        assert pool_counts(curriculum).sum() == 0  # lockstep: held back until the exchange
        assert sync.exchange() == outcomes
        assert pool_counts(curriculum).tolist() == counts.tolist()
        run_episodes(curriculum, Learner(1), counts, sync, 5)  # the block was resized: both paths again
        assert sync.exchange() == 5
        assert pool_counts(curriculum).tolist() == counts.tolist()
    finally:
        sync.close()
        curriculum.close()


def test_close_applies_what_was_not_exchanged_and_stops_deferring(session_id: str, single_rank_group) -> None:
    curriculum = Curriculum(lp_config(session_id), tasks=TASKS, seed=0)
    sync = CurriculumSync(curriculum, every_steps=10**6)
    counts = np.zeros(TASKS, dtype=np.int64)
    run_episodes(curriculum, Learner(0), counts, sync, 30)
    sync.close()
    try:
        assert pool_counts(curriculum).tolist() == counts.tolist()
        run_episodes(curriculum, Learner(1), counts, None, 10)
        assert pool_counts(curriculum).tolist() == counts.tolist()
    finally:
        curriculum.close()


def test_every_seconds_grows_the_interval_from_one_step(session_id: str, single_rank_group) -> None:
    curriculum = Curriculum(lp_config(session_id), tasks=TASKS, seed=0)
    sync = CurriculumSync(curriculum, every_seconds=3600.0)
    try:
        exchanged = [sync.step() for _ in range(120)]
        # Calibrated at step 1, then each interval at most 10x the last, up to an hour of steps.
        assert [i + 1 for i, done in enumerate(exchanged) if done] == [1, 11, 111]
        assert sync.stats()["sync/interval_steps"] == 1000
    finally:
        sync.close()
        curriculum.close()


def test_gather_pool_stats_of_a_generated_pool(session_id: str, single_rank_group) -> None:
    curriculum = Curriculum(lp_config(session_id), num_active_tasks=16, seed=0)
    try:
        for _ in range(100):
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, 0.25)
        local = curriculum.pool_stats()
        combined = gather_pool_stats(curriculum)
        assert combined["ranks/pool/tasks"] == local["pool/tasks"] == 16
        assert combined["ranks/pool/completions"] == local["pool/completions"]
        assert combined["ranks/pool/mean_score"] == pytest.approx(0.25)
        assert combined["ranks/pool/label/default/sample_prob"] == pytest.approx(1.0)
    finally:
        curriculum.close()


def test_a_process_that_does_not_journal_is_reported(session_id: str, single_rank_group) -> None:
    curriculum = Curriculum(lp_config(session_id), tasks=TASKS, seed=0)
    early_worker = Curriculum(lp_config(session_id), tasks=TASKS, seed=1)  # made before the sync
    sync = CurriculumSync(curriculum, every_steps=10**6)
    try:
        curriculum.update_task_performance(1, 1.0)
        early_worker.update_task_performance(2, 1.0)
        with pytest.raises(RuntimeError, match="1 outcomes reached this host's pool without the journal"):
            sync.exchange()
        curriculum.update_task_performance(1, 1.0)
        assert sync.exchange() == 1  # reported once
    finally:
        sync.close()
        early_worker.close()
        curriculum.close()
