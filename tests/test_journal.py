"""The outcome journal (csrc/lpt_journal, lptrack._journal): order, several producers,
overflow, a producer that dies between claim and publication, and the algorithm's
journaled updates across processes."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time

import numpy as np
import pytest

from lptrack import Curriculum, LearningProgressConfig, _core
from lptrack._journal import OutcomeJournal, journal_name
from lptrack.errors import SegmentError

JOIN_TIMEOUT = 60.0


@pytest.fixture(params=["fork", "spawn"])
def context(request: pytest.FixtureRequest) -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context(request.param)


def join_all(processes: list) -> None:
    for process in processes:
        process.join(JOIN_TIMEOUT)
    hung = [p for p in processes if p.is_alive()]
    for process in hung:
        process.kill()
        process.join()
    assert not hung, "a child process hung"


def test_private_journal_keeps_order_and_empties_on_read() -> None:
    journal = OutcomeJournal.create(None, capacity=64)
    for i in range(50):
        journal.append(i + 1, i / 8)
    assert journal.pending == 50
    outcomes = journal.read()
    assert outcomes.task_ids.tolist() == list(range(1, 51))
    assert outcomes.scores.tolist() == [i / 8 for i in range(50)]
    assert outcomes.lost == 0 and journal.pending == 0
    journal.append(7, -1.5)
    again = journal.read()
    assert again.task_ids.tolist() == [7] and again.scores.tolist() == [-1.5]
    assert journal.read().task_ids.size == 0
    journal.close()
    assert journal.closed
    journal.append(1, 1.0)  # ignored once closed, never a write into freed memory


def test_reads_across_the_ring_boundary_many_times() -> None:
    journal = OutcomeJournal.create(None, capacity=16)
    expected = 1
    for round_ in range(40):
        count = (round_ * 7) % 16 + 1
        for _ in range(count):
            journal.append(expected, float(expected))
            expected += 1
        outcomes = journal.read()
        assert outcomes.lost == 0
        assert outcomes.task_ids.tolist() == list(range(expected - count, expected))
    journal.close()


def test_overflow_loses_the_oldest_outcomes_and_counts_them() -> None:
    journal = OutcomeJournal.create(None, capacity=8)
    for i in range(20):
        journal.append(i + 1, float(i))
    assert journal.pending == 20
    outcomes = journal.read()
    assert outcomes.task_ids.tolist() == list(range(13, 21))  # the newest 8
    assert outcomes.lost == 12 and journal.lost == 12
    journal.append(99, 0.5)
    assert journal.read() == (pytest.approx([99]), pytest.approx([0.5]), 0)
    journal.close()


@pytest.mark.parametrize("capacity", [0, 3, 1000, 2**31])
def test_capacity_must_be_a_power_of_two_in_range(capacity: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        OutcomeJournal.create(None, capacity=capacity)


def produce(session_id: str, producer: int, count: int, backlog: int) -> None:
    journal = OutcomeJournal.open(session_id)
    assert journal is not None
    deadline = time.monotonic() + JOIN_TIMEOUT
    for i in range(count):
        # Stay within the ring (a producer never waits; this test's producers do,
        # so that the reader, sharing the CPUs, keeps up and the ring wraps many times).
        while journal.pending > backlog and time.monotonic() < deadline:
            time.sleep(0.0005)
        # The id says who and the score which one: the reader checks both orders.
        journal.append(producer + 1, float(i))
    journal.close()


def test_several_producers_lose_nothing_and_keep_each_ones_order(session_id: str, context) -> None:
    producers, per_producer = 3, 20_000
    journal = OutcomeJournal.create(session_id, capacity=1 << 10)  # wraps about 60 times
    try:
        children = [context.Process(target=produce, args=(session_id, p, per_producer, 256))
                    for p in range(producers)]
        for child in children:
            child.start()
        seen: dict[int, list[float]] = {p + 1: [] for p in range(producers)}
        while any(child.is_alive() for child in children) or journal.pending:
            outcomes = journal.read(wait=5.0)
            assert outcomes.lost == 0, "the reader fell a whole ring behind"
            for task_id, score in zip(outcomes.task_ids.tolist(), outcomes.scores.tolist()):
                seen[task_id].append(score)
        join_all(children)
        assert all(child.exitcode == 0 for child in children)
        for scores in seen.values():
            assert scores == [float(i) for i in range(per_producer)]
    finally:
        journal.close()


def die_between_claim_and_publication(session_id: str) -> None:
    journal = OutcomeJournal.open(session_id)
    journal.append(5, 5.0)
    _core._arm_crash(1)  # the next crash point is the one between claim and publication
    journal.append(6, 6.0)
    raise AssertionError("the crash point did not kill the process")


def test_an_outcome_whose_producer_died_is_skipped_as_lost(session_id: str, context) -> None:
    journal = OutcomeJournal.create(session_id, capacity=64)
    try:
        journal.append(4, 4.0)
        child = context.Process(target=die_between_claim_and_publication, args=(session_id,))
        child.start()
        join_all([child])
        assert child.exitcode == -9
        journal.append(7, 7.0)
        assert journal.pending == 4  # 4, 5, the claimed 6, 7
        outcomes = journal.read(wait=0.05)
        assert outcomes.task_ids.tolist() == [4, 5, 7]
        assert outcomes.lost == 1 and journal.lost == 1
        assert journal.read().task_ids.size == 0
    finally:
        journal.close()


def test_one_reader_per_session_and_a_dead_readers_journal_is_replaced(session_id: str, context) -> None:
    journal = OutcomeJournal.create(session_id, capacity=64)
    try:
        with pytest.raises(SegmentError, match="one synchroniser per session"):
            OutcomeJournal.create(session_id)
    finally:
        journal.close()
    assert not os.path.exists(f"/dev/shm/{journal_name(session_id)}")
    child = context.Process(target=create_and_die, args=(session_id,))
    child.start()
    join_all([child])
    assert child.exitcode == -9
    replaced = OutcomeJournal.create(session_id, capacity=32)
    try:
        assert replaced.capacity == 32 and replaced.pending == 0
    finally:
        replaced.close()


def create_and_die(session_id: str) -> None:
    journal = OutcomeJournal.create(session_id, capacity=64)
    journal.append(1, 1.0)
    # Unregister from the resource tracker so it does not remove the leftover for us.
    from multiprocessing import resource_tracker

    resource_tracker.unregister(journal._segment._name, "shared_memory")
    os.kill(os.getpid(), 9)


# -- the algorithm journals its updates ------------------------------------------------------
def lp_config(session_id: str | None) -> LearningProgressConfig:
    return LearningProgressConfig(session_id=session_id, use_shared_memory=session_id is not None,
                                  min_samples_for_lp=3)


def report_outcomes(curriculum: Curriculum | None, session_id: str, first: int, count: int) -> None:
    if curriculum is None:  # built from the config, as an env worker's factory would
        curriculum = Curriculum(lp_config(session_id), tasks=8, seed=first)
    for i in range(count):
        curriculum.update_task_performance((first + i) % 8 + 1, (first + i) % 100 / 100)
    curriculum.close()


@pytest.mark.parametrize("how", ["pickled", "built"])
def test_every_process_of_the_session_journals_its_updates(session_id: str, context, how: str) -> None:
    curriculum = Curriculum(lp_config(session_id), tasks=8, seed=0)
    journal = OutcomeJournal.create(session_id, capacity=256)
    try:
        curriculum.algorithm.attach_outcome_journal(journal)
        curriculum.update_task_performance(1, 0.25)
        child = context.Process(
            target=report_outcomes, args=(curriculum if how == "pickled" else None, session_id, 100, 30)
        )
        child.start()
        join_all([child])
        assert child.exitcode == 0
        outcomes = journal.read()
        assert outcomes.task_ids.tolist() == [1] + [(100 + i) % 8 + 1 for i in range(30)]
        assert outcomes.scores.tolist() == [0.25] + [(100 + i) % 100 / 100 for i in range(30)]
        # Foreign outcomes update the pool and are not journaled again.
        before = curriculum.pool_stats()["pool/completions"]
        applied = curriculum.algorithm.apply_outcomes(np.array([2, 3, 2]), np.array([1.0, 0.0, 0.5]))
        assert applied == 3
        assert curriculum.pool_stats()["pool/completions"] == before + 3
        assert journal.pending == 0
    finally:
        journal.close()
        curriculum.close()


def test_a_session_without_journal_binds_the_plain_update(session_id: str) -> None:
    curriculum = Curriculum(lp_config(session_id), tasks=4, seed=0)
    try:
        algorithm = curriculum.algorithm
        assert algorithm._journal is None
        assert type(algorithm._update_in_table) is type(algorithm._table.bind_update(0.1, algorithm._bidirectional))
    finally:
        curriculum.close()


def test_a_local_pool_gets_a_private_journal_that_its_copies_do_not_share() -> None:
    curriculum = Curriculum(lp_config(None), tasks=4, seed=0)
    journal = OutcomeJournal.create(None, capacity=16)
    curriculum.algorithm.attach_outcome_journal(journal)
    curriculum.update_task_performance(2, 0.5)
    copy = pickle.loads(pickle.dumps(curriculum))
    copy.update_task_performance(3, 0.5)
    assert copy.algorithm._journal is None
    assert journal.read().task_ids.tolist() == [2]
    journal.close()


def test_a_deferred_journal_holds_updates_back_from_the_pool(session_id: str, context) -> None:
    curriculum = Curriculum(lp_config(session_id), tasks=8, seed=0)
    journal = OutcomeJournal.create(session_id, capacity=64)
    try:
        journal.deferred = True
        curriculum.algorithm.attach_outcome_journal(journal)
        child = context.Process(target=report_outcomes, args=(None, session_id, 0, 6))
        child.start()
        join_all([child])
        assert child.exitcode == 0
        curriculum.update_task_performance(1, 0.75)
        for bad_id, bad_score in ((0, 0.5), (2**53, 0.5), (1, float("nan")), ("1", 0.5)):
            with pytest.raises((ValueError, TypeError)):
                curriculum.update_task_performance(bad_id, bad_score)
        assert curriculum.pool_stats()["pool/completions"] == 0  # nothing reached the pool
        outcomes = journal.read()
        assert outcomes.task_ids.tolist() == [1, 2, 3, 4, 5, 6, 1]
        assert curriculum.algorithm.apply_outcomes(outcomes.task_ids, outcomes.scores) == 7
        assert curriculum.pool_stats()["pool/completions"] == 7
        journal.deferred = False
        curriculum.update_task_performance(3, 0.5)
        assert curriculum.pool_stats()["pool/completions"] == 8
        assert journal.read().task_ids.tolist() == [3]
    finally:
        journal.close()
        curriculum.close()


def test_importing_lptrack_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, lptrack, lptrack.algorithm, lptrack._journal; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
