"""lptrack.distributed: the cost of an exchange, and of the episode loop with exchanges.

Collectives need several processes, which pytest-benchmark does not time, so
this is a script (pytest runs it once, quick, to keep it working):

    python bench/bench_distributed.py            # the figures of README "Many hosts"
    python bench/bench_distributed.py --quick    # a smoke run

Three ranks (torch.multiprocessing, spawn) on one gloo group over localhost,
each with its own shared session and a fixed task set:

* ``exchange``: one ``CurriculumSync.exchange()`` after each rank recorded K
  outcomes (K = 100 and 1,000), at 1,000 and 10,000 tasks; every rank enters
  after a barrier, the figure is the median over rounds of the slowest rank's
  time.  ``all_gather alone``: one bare all_gather of the block the exchange
  sent, timed the same way; ``apply+pass``: applying 3 K outcomes and the
  distribution pass without any collective, on one rank.
* ``episode loop``: get_task + a simulated score + update_task_performance +
  ``sync.step()`` per episode at 1,000 tasks, without a sync and with exchanges
  every 100 and 1,000 episodes (lockstep, the default, and immediate); each
  round runs every variant in turn on all three ranks at once, and the figure
  is the median over rounds of rank 0's microseconds per episode.  The three
  ranks share this host's cores, as they never would across hosts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import sys
import time
from datetime import timedelta

import numpy as np

WORLD = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_curriculum(tasks: int, tag: str, rank: int):
    from lptrack import Curriculum, LearningProgressConfig

    config = LearningProgressConfig(session_id=f"bench{os.getpid()}_{tag}", min_samples_for_lp=3)
    return Curriculum(config, tasks=tasks, seed=rank)


def episodes(curriculum, rng: random.Random, count: int, sync=None) -> None:
    get_task, update, uniform = curriculum.get_task, curriculum.update_task_performance, rng.random
    step = sync.step if sync is not None else None
    for _ in range(count):
        task = get_task()
        update(task.task_id, 1.0 if uniform() < (task.task_id % 7) / 7 else 0.0)
        if step is not None:
            step()


def measure_exchange(rank: int, tasks: int, per_rank: int, rounds: int) -> dict[str, float]:
    import torch
    import torch.distributed as dist

    from lptrack.distributed import CurriculumSync

    rng = random.Random(rank)
    curriculum = make_curriculum(tasks, f"x{tasks}_{per_rank}", rank)
    sync = CurriculumSync(curriculum, every_steps=10**9)
    times, local, bare = [], [], []
    try:
        episodes(curriculum, rng, per_rank, None)
        sync.exchange()  # warm: every task scored once
        for _ in range(rounds):
            episodes(curriculum, rng, per_rank, None)
            dist.barrier()
            start = time.perf_counter()
            sync.exchange()
            times.append(time.perf_counter() - start)
            # The collective alone: one all_gather of a block of the size the exchange sent.
            block = torch.zeros((sync._slots, 2), dtype=torch.float64)
            blocks = [torch.empty_like(block) for _ in range(WORLD)]
            dist.barrier()
            start = time.perf_counter()
            dist.all_gather(blocks, block)
            bare.append(time.perf_counter() - start)
        # Without the collectives: apply 3 K outcomes and run the pass, as an exchange does.
        ids = np.resize(np.array([task.task_id for task in curriculum.tasks]), WORLD * per_rank)
        scores = np.zeros(ids.size)
        for _ in range(rounds):
            start = time.perf_counter()
            curriculum.algorithm.apply_outcomes(ids, scores)
            sync._refresh_distribution()
            local.append(time.perf_counter() - start)
    finally:
        sync.close()
        curriculum.close()
    return {"exchange_ms": 1e3 * statistics.median(slowest_rank(times)),
            "all_gather_ms": 1e3 * statistics.median(slowest_rank(bare)),
            "apply_pass_ms": 1e3 * statistics.median(local)}


def slowest_rank(times: list[float]) -> list[float]:
    """Per round, the longest of the ranks' times (a collective)."""
    import torch.distributed as dist

    gathered: list = [None] * WORLD
    dist.all_gather_object(gathered, times)
    return [max(round_times) for round_times in zip(*gathered)]


VARIANTS = [("no sync", None, None), ("lockstep, every 100", 100, True), ("lockstep, every 1000", 1000, True),
            ("immediate, every 100", 100, False), ("immediate, every 1000", 1000, False)]


def measure_loop(rank: int, tasks: int, per_round: int, rounds: int) -> dict[str, float]:
    from lptrack.distributed import CurriculumSync

    rng = random.Random(rank)
    runs = []
    try:
        for name, every, lockstep in VARIANTS:
            curriculum = make_curriculum(tasks, f"loop{len(runs)}", rank)
            sync = None if every is None else CurriculumSync(curriculum, every_steps=every, lockstep=lockstep)
            runs.append((name, curriculum, sync))
            episodes(curriculum, rng, 3 * tasks, sync)  # warm: every task scored
        samples: dict[str, list[float]] = {name: [] for name, _, _ in runs}
        for _ in range(rounds):
            for name, curriculum, sync in runs:
                start = time.perf_counter()
                episodes(curriculum, rng, per_round, sync)
                samples[name].append((time.perf_counter() - start) / per_round * 1e6)
        return {name: statistics.median(values) for name, values in samples.items()}
    finally:
        for _, curriculum, sync in runs:
            if sync is not None:
                sync.close()
            curriculum.close()


def rank_main(rank: int, port: int, args: argparse.Namespace, results) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=120))
    try:
        report: dict = {"exchange": {}, "loop": {}}
        for tasks in args.tasks:
            for per_rank in args.outcomes:
                report["exchange"][f"{tasks} tasks, {per_rank} outcomes/rank"] = measure_exchange(
                    rank, tasks, per_rank, args.rounds)
        report["loop"] = measure_loop(rank, args.loop_tasks, args.loop_episodes, args.rounds)
        if rank == 0:
            results.put(report)
    finally:
        dist.destroy_process_group()


def run(args: argparse.Namespace) -> dict:
    import torch.multiprocessing as torch_mp

    context = torch_mp.get_context("spawn")
    results = context.Queue()
    port = free_port()
    ranks = [context.Process(target=rank_main, args=(rank, port, args, results)) for rank in range(WORLD)]
    for process in ranks:
        process.start()
    try:
        report = results.get(timeout=args.timeout)
        for process in ranks:
            process.join(args.timeout)
    finally:
        for process in ranks:
            if process.is_alive():
                process.kill()
                process.join()
    if any(process.exitcode != 0 for process in ranks):
        raise RuntimeError(f"a rank failed: exit codes {[process.exitcode for process in ranks]}")
    return report


def format_report(report: dict) -> str:
    lines = ["exchange (3 ranks, median of the slowest rank)     exchange  all_gather alone  apply+pass alone"]
    for name, figures in report["exchange"].items():
        lines.append(f"  {name:<46} {figures['exchange_ms']:7.2f} ms  {figures['all_gather_ms']:7.2f} ms"
                     f"        {figures['apply_pass_ms']:7.2f} ms")
    lines.append("episode loop (rank 0, us per episode, median)")
    base = report["loop"]["no sync"]
    for name, value in report["loop"].items():
        lines.append(f"  {name:<24} {value:6.2f} us  {value / base:5.2f}x")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 10000])
    parser.add_argument("--outcomes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000])
    parser.add_argument("--loop-tasks", type=int, default=1000)
    parser.add_argument("--loop-episodes", type=int, default=10_000, help="episodes per variant per round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small and few")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.outcomes, args.loop_tasks, args.loop_episodes, args.rounds = [100], [50], 100, 300, 2
        args.timeout = 300.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(format_report(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2)
    return 0


# -- the journal on the update path (pytest-benchmark; no torch needed) ------------------------
JOURNAL_MODES = ["no journal", "journaled", "deferred"]
UPDATES = 1000


def update_path_curricula() -> tuple[list, list]:
    """A shared 1,000-task fixed set per mode: without a journal, journaled (the pool
    updated at once and the outcome appended, lockstep=False) and deferred (lockstep:
    the journal only)."""
    import uuid

    from lptrack import Curriculum, LearningProgressConfig
    from lptrack._journal import OutcomeJournal

    curricula, journals = [], []
    for mode in JOURNAL_MODES:
        session = f"bench{os.getpid()}_{uuid.uuid4().hex[:6]}"
        curriculum = Curriculum(LearningProgressConfig(session_id=session, min_samples_for_lp=3), tasks=1000, seed=0)
        journal = None
        if mode != "no journal":
            journal = OutcomeJournal.create(session, capacity=1 << 12)
            journal.deferred = mode == "deferred"
            curriculum.algorithm.attach_outcome_journal(journal)
        curricula.append(curriculum)
        journals.append(journal)
    return curricula, journals


def timed_updates(curriculum, journal) -> float:
    update = curriculum.update_task_performance
    ids = [1 + (i * 7919) % 1000 for i in range(UPDATES)]
    if journal is not None:
        journal.read()  # as the sync would, between exchanges
    start = time.perf_counter()
    for task_id in ids:
        update(task_id, 0.5)
    return time.perf_counter() - start


def test_bench_update_path(benchmark) -> None:
    """1,000 Curriculum.update_task_performance calls per mode, in interleaved rounds (this
    host's speed drifts); ``extra_info``: each mode's median ns per update and its median
    per-round ratio to no journal.  The benchmark's own figure is the deferred mode."""
    curricula, journals = update_path_curricula()
    try:
        samples: dict[str, list[float]] = {mode: [] for mode in JOURNAL_MODES}
        for _ in range(300):
            for mode, curriculum, journal in zip(JOURNAL_MODES, curricula, journals):
                samples[mode].append(timed_updates(curriculum, journal))
        base = samples["no journal"]
        for mode in JOURNAL_MODES:
            benchmark.extra_info[f"{mode} ns/update"] = 1e9 * statistics.median(samples[mode]) / UPDATES
            benchmark.extra_info[f"{mode} / no journal"] = statistics.median(
                [t / b for t, b in zip(samples[mode], base)])
        print("\nupdate path:", {k: round(v, 2) for k, v in benchmark.extra_info.items()})
        benchmark.group = "update-path (1,000 updates)"
        benchmark.pedantic(timed_updates, args=(curricula[2], journals[2]), rounds=50)
    finally:
        for curriculum, journal in zip(curricula, journals):
            if journal is not None:
                journal.close()
            curriculum.close()


def test_bench_distributed_quick(capsys) -> None:
    """pytest runs the script once, quick, so that it keeps working (CI)."""
    import pytest

    pytest.importorskip("torch")
    assert main(["--quick"]) == 0
    assert "every 100" in capsys.readouterr().out


if __name__ == "__main__":
    sys.exit(main())
