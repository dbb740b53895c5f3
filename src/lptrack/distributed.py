"""One learning-progress distribution across a trainer's ranks: ``CurriculumSync``.

Each rank (host) keeps its own fast pool, shared by its env-worker processes
through its session.  Every process of the host that records an outcome also
appends it to the session's outcome journal (``lptrack._journal``, a lock-free
ring in shared memory).  One process per rank, usually the rank's main
process, holds a ``CurriculumSync`` and calls ``step()`` once per iteration of
its loop; when an exchange is due, the sync reads the outcomes its host
recorded since the last exchange, all-gathers them through a
``torch.distributed`` process group and applies them to its pool in rank
order.  After an exchange every rank's pool has seen every outcome of every
rank up to that exchange.

Two modes (``lockstep``):

* ``lockstep=True`` (the default): between exchanges a journaled outcome only
  goes to the journal; at each exchange every rank applies every rank's
  outcomes, its own included, in the same order (by rank, then in the order
  each host recorded them).  So all ranks' pools are identical after every
  exchange, bit for bit (the state of one pool fed that sequence), and every
  rank samples from the same distribution at all times.  The price: a host's
  pool learns from its own episodes at the next exchange, not at once.
* ``lockstep=False``: outcomes update the host's pool at once; at an exchange
  a rank applies the other ranks' outcomes, in rank order.  Completion counts
  agree after an exchange, but each rank applied the outcomes of an interval
  in its own order (its own first), and the per-task EMAs (p_fast, p_slow,
  p_true, reward, squared reward, success rate), the last score and
  ``random_baseline`` depend on that order; the learning-progress z-scores
  amplify the difference (README "Many hosts" states it as measured).

Only a fixed task set (``Curriculum(..., tasks=...)``) is synchronised: its
task ids mean the same task on every host.  A generated pool's ids are drawn
at random per host and its evictions are local decisions, so a foreign outcome
would name a task the local pool never had (README, "Many hosts").

Importing this module imports torch (``pip install 'lptrack[distributed]'``);
``import lptrack`` never does.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

try:
    import torch
    import torch.distributed as dist
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lptrack.distributed needs torch: pip install 'lptrack[distributed]'"
    ) from exc

from lptrack._journal import DEFAULT_CAPACITY, DEFAULT_READ_WAIT, OutcomeJournal
from lptrack._table import COMPLETION_COUNT
from lptrack.algorithm import LearningProgressAlgorithm
from lptrack.errors import ExchangeError

__all__ = ["CurriculumSync", "ExchangeError", "gather_pool_stats"]

#: Backends whose collectives take the CPU tensors an exchange sends.
CPU_BACKENDS = ("gloo", "mpi")
#: Rows of an exchange's first block (a header and outcomes; 16 bytes a row).
MIN_BLOCK_ROWS = 256
#: Growth limit of the step interval that ``every_seconds`` re-agrees at each
#: exchange: a first interval timed too short cannot push the next exchange far away.
_MAX_INTERVAL_GROWTH = 10


class CurriculumSync:
    """Exchanges a fixed-task-set curriculum's episode outcomes between the ranks of a group.

    ``curriculum``: this rank's ``Curriculum`` over a fixed task set with a
    learning-progress config; make the sync before the rank's env workers
    make or receive their curriculum (a worker's algorithm journals only if
    the session's journal exists when it is made, unpickled or forked).

    Exactly one of ``every_steps`` (an exchange every that many ``step()``
    calls) and ``every_seconds`` (about that often; the step interval is
    re-agreed at each exchange from the slowest rank's step time) schedules
    ``step()``; ``exchange()`` exchanges now.  Both are collectives: every rank
    of the group must make the same calls, ``step()`` the same number of times
    (once per training iteration, or per episode of each rank's own stream).

    ``group``: the process group (None: the default group).  Its backend must
    take CPU tensors (gloo, mpi); beside an NCCL training group pass
    ``torch.distributed.new_group(backend="gloo", timeout=...)``.  The group's
    timeout bounds how long an exchange waits for a rank that died or stopped
    exchanging; ``ExchangeError`` is raised then, and this rank's pool keeps
    everything it had (outcomes not yet sent stay queued for the next exchange).

    ``lockstep``: see the module's docstring.  After an ``ExchangeError`` the
    host carries on alone: outcomes not yet in its pool are applied to it,
    later ones update it at once, ``step()`` no longer exchanges and
    ``exchange()`` raises again.

    ``journal_capacity``: outcomes the host may record between two exchanges
    (a power of two) before the oldest are lost (counted in
    ``stats()["sync/lost_outcomes"]``).
    """

    def __init__(
        self,
        curriculum: Any,
        *,
        every_steps: int | None = None,
        every_seconds: float | None = None,
        group: Any = None,
        lockstep: bool = True,
        journal_capacity: int = DEFAULT_CAPACITY,
        read_wait: float = DEFAULT_READ_WAIT,
    ) -> None:
        algorithm = getattr(curriculum, "algorithm", None)
        if not isinstance(algorithm, LearningProgressAlgorithm):
            raise TypeError(
                "CurriculumSync needs a Curriculum with a LearningProgressConfig "
                f"(got algorithm {type(algorithm).__name__}): the uniform baseline learns nothing to share"
            )
        if not curriculum.is_fixed:
            raise ValueError(
                "CurriculumSync synchronises a fixed task set (Curriculum(..., tasks=...)): a generated "
                "pool's task ids and evictions are per host (README, 'Many hosts')"
            )
        if (every_steps is None) == (every_seconds is None):
            raise ValueError("give exactly one of every_steps and every_seconds")
        if every_steps is not None and (isinstance(every_steps, bool) or not isinstance(every_steps, int)
                                        or every_steps < 1):
            raise ValueError(f"every_steps must be an int >= 1, got {every_steps!r}")
        if every_seconds is not None and not (isinstance(every_seconds, (int, float))
                                              and math.isfinite(every_seconds) and every_seconds > 0):
            raise ValueError(f"every_seconds must be a finite number > 0, got {every_seconds!r}")
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: call init_process_group first")
        backend = dist.get_backend(group)
        if backend not in CPU_BACKENDS:
            raise ValueError(
                f"the group's backend is {backend!r}: exchanges send CPU tensors, so pass a gloo group "
                "(torch.distributed.new_group(backend='gloo'))"
            )
        self.curriculum = curriculum
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.every_steps = every_steps
        self.every_seconds = None if every_seconds is None else float(every_seconds)
        self._read_wait = read_wait
        self._algorithm = algorithm
        self._task_ids = np.array(sorted(task.task_id for task in curriculum.tasks), dtype=np.int64)
        tracker = algorithm.task_tracker
        session_id = algorithm.hypers.session_id if tracker.is_shared else None
        self._journal = OutcomeJournal.create(session_id, journal_capacity)
        self.lockstep = bool(lockstep)
        self._journal.deferred = self.lockstep
        algorithm.attach_outcome_journal(self._journal)
        self._failure: str | None = None
        # Lockstep: the pool's completions change only through this sync's exchanges.
        self._expected_completions = self._pool_completions()
        # Outcomes read from the journal and not yet delivered by an exchange.
        self._unsent_ids = np.empty(0, dtype=np.int64)
        self._unsent_scores = np.empty(0, dtype=np.float64)
        self._slots = MIN_BLOCK_ROWS
        self._steps = 0
        self._interval = every_steps if every_steps is not None else 1  # every_seconds: calibrate at once
        self._next_exchange = self._interval
        self._interval_started = time.perf_counter()
        self._steps_at_exchange = 0
        self._exchanges = 0
        self._sent = 0
        self._applied = 0
        self._lost = 0
        self._last_exchange_seconds = 0.0

    # -- the trainer's calls --------------------------------------------------------------
    def step(self) -> bool:
        """Count one iteration of the rank's loop; exchange when due.  Whether it exchanged."""
        self._steps += 1
        if self._steps < self._next_exchange or self._failure is not None:
            return False
        self.exchange()
        return True

    def exchange(self) -> int:
        """Exchange now (a collective: every rank calls it): send this host's outcomes
        recorded since the last exchange, apply the ranks' outcomes in rank order
        (lockstep: every rank's; else the other ranks'), and recompute the
        sampling distribution.  Returns the outcomes applied.

        ExchangeError if the group fails (a rank died, or did not call within the
        group's timeout): this host then carries on alone, and its pool loses
        nothing (the outcomes it recorded and did not apply yet are applied).
        """
        if self._failure is not None:
            raise ExchangeError(f"rank {self.rank}: an earlier exchange failed ({self._failure}); "
                                "this host carries on alone")
        started = time.perf_counter()
        self._take_journal()
        ids, scores = self._unsent_ids, self._unsent_scores
        steps = self._steps - self._steps_at_exchange
        seconds_per_step = (started - self._interval_started) / steps if steps else 0.0
        try:
            gathered, seconds = self._all_gather(ids, scores, seconds_per_step)
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            kept = self._go_alone()
            raise ExchangeError(
                f"rank {self.rank}: the outcome exchange with the group's {self.world_size} ranks failed "
                f"({self._failure}); a rank died or stopped exchanging. This host carries on alone: its "
                f"pool keeps its state{f' and got its {kept} outcomes not yet applied' if kept else ''}"
            ) from exc
        self._sent += ids.size
        self._unsent_ids = self._unsent_ids[:0]
        self._unsent_scores = self._unsent_scores[:0]
        applied = 0
        for rank, (rank_ids, rank_scores) in enumerate(gathered):
            if rank != self.rank or self.lockstep:
                applied += self._algorithm.apply_outcomes(rank_ids, rank_scores)
        self._refresh_distribution()
        self._applied += applied
        self._exchanges += 1
        if self.lockstep:
            self._check_all_journaled(applied)
        self._schedule_next(max(seconds))
        self._last_exchange_seconds = time.perf_counter() - started
        return applied

    def distribution(self) -> dict[int, float]:
        """The sampling probability of every task of the set, as the pool samples now."""
        scores = np.array(list(self._algorithm.score_tasks(self._task_ids.tolist()).values()))
        total = scores.sum()
        probabilities = scores / total if total > 0 else np.full(scores.size, 1.0 / scores.size)
        return dict(zip(self._task_ids.tolist(), probabilities.tolist()))

    def stats(self) -> dict[str, float]:
        """This rank's exchange counters (``sync/...``), flat floats for a logger."""
        return {
            "sync/exchanges": float(self._exchanges),
            "sync/outcomes_sent": float(self._sent),
            "sync/outcomes_applied": float(self._applied),
            "sync/outcomes_queued": float(self._unsent_ids.size + self._journal.pending),
            "sync/lost_outcomes": float(self._lost),
            "sync/interval_steps": float(self._interval),
            "sync/last_exchange_seconds": self._last_exchange_seconds,
        }

    def close(self) -> None:
        """Stop journaling and remove the journal (idempotent); no exchange is made.

        In lockstep the outcomes recorded since the last exchange are applied to
        this host's pool (they reach no other rank).  Close after the host's env
        workers stopped reporting: an outcome reported while close runs may miss
        the pool.
        """
        if self._journal.closed:
            return
        self._go_alone()
        self._journal.close()

    def __enter__(self) -> CurriculumSync:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self):
        raise TypeError("a CurriculumSync belongs to its rank's process: make one per rank")

    # -- internals ------------------------------------------------------------------------
    def _go_alone(self) -> int:
        """From now on the host's outcomes update its pool at once; apply those the
        journal holds back (lockstep).  How many were applied."""
        if not self.lockstep:
            return 0
        self._journal.deferred = False
        self._take_journal()  # what was recorded until the flag changed
        kept = self._algorithm.apply_outcomes(self._unsent_ids, self._unsent_scores)
        self._unsent_ids = self._unsent_ids[:0]
        self._unsent_scores = self._unsent_scores[:0]
        self._refresh_distribution()
        return kept

    def _pool_completions(self) -> int:
        rows = self._algorithm.task_tracker.snapshot_rows()
        return int(rows[:, COMPLETION_COUNT].sum())

    def _check_all_journaled(self, applied: int) -> None:
        """In lockstep every journaled outcome reaches the pool through an exchange; a
        process that updated the pool otherwise was started before the journal existed,
        and its outcomes reach no other rank."""
        self._expected_completions += applied
        found = self._pool_completions()
        if found != self._expected_completions:
            unjournaled = found - self._expected_completions
            self._expected_completions = found
            raise RuntimeError(
                f"rank {self.rank}: {unjournaled} outcomes reached this host's pool without the journal, so "
                "no other rank gets them: a process of the host made or received its curriculum before "
                "the CurriculumSync existed (make the sync before the env workers start)"
            )

    def _take_journal(self) -> None:
        outcomes = self._journal.read(self._read_wait)
        self._lost += outcomes.lost
        if outcomes.task_ids.size:
            self._unsent_ids = np.concatenate([self._unsent_ids, outcomes.task_ids])
            self._unsent_scores = np.concatenate([self._unsent_scores, outcomes.scores])

    def _all_gather(
        self, ids: np.ndarray, scores: np.ndarray, seconds_per_step: float
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[float]]:
        """Every rank's outcomes (ids, scores) and seconds per step, by rank.

        An exchange is bound by the collectives' latency, not their bytes, so it
        is one all_gather of a block of ``_slots`` rows: a header row (count,
        seconds per step) and up to ``_slots - 1`` outcomes (task ids are below
        2**53, exact in float64).  Only when a rank has more does a second
        all_gather carry the rest, padded to the longest rest.  Every rank
        sizes the next block from the same gathered counts.
        """
        block = torch.zeros((self._slots, 2), dtype=torch.float64)
        block[0, 0], block[0, 1] = float(ids.size), seconds_per_step
        first = min(ids.size, self._slots - 1)
        _fill(block[1:], ids[:first], scores[:first])
        blocks = [torch.empty_like(block) for _ in range(self.world_size)]
        dist.all_gather(blocks, block, group=self.group)
        counts = [int(received[0, 0].item()) for received in blocks]
        rows = [received[1 : 1 + min(count, self._slots - 1)] for count, received in zip(counts, blocks)]
        longest_rest = max(counts) - (self._slots - 1)
        if longest_rest > 0:
            rest = torch.zeros((longest_rest, 2), dtype=torch.float64)
            _fill(rest, ids[first:], scores[first:])
            rests = [torch.empty_like(rest) for _ in range(self.world_size)]
            dist.all_gather(rests, rest, group=self.group)
            rows = [torch.cat([head, received[: count - head.shape[0]]])
                    for count, head, received in zip(counts, rows, rests)]
        self._slots = _block_rows(max(counts))
        gathered = []
        for received in rows:
            array = received.numpy()
            gathered.append((array[:, 0].astype(np.int64), array[:, 1].copy()))
        return gathered, [float(received[0, 1].item()) for received in blocks]

    def _refresh_distribution(self) -> None:
        """Recompute the lp scores now, so every rank samples from its pool as of this exchange."""
        self._algorithm.invalidate_cache()
        self._algorithm.scorer.refresh()

    def _schedule_next(self, slowest_seconds_per_step: float) -> None:
        if self.every_seconds is not None:
            # The same inputs on every rank (the gathered step times), so the same interval.
            # (No rank stepped since the last exchange: nothing to time, keep the interval.)
            if slowest_seconds_per_step > 0:
                wanted = max(1, int(self.every_seconds / slowest_seconds_per_step))
                self._interval = min(wanted, self._interval * _MAX_INTERVAL_GROWTH)
        self._steps_at_exchange = self._steps
        self._next_exchange = self._steps + self._interval
        self._interval_started = time.perf_counter()


#: pool_stats keys that add up across ranks (per label too: ``/tasks``, ``/completions``).
_SUMMED = ("pool/tasks", "pool/capacity", "pool/completions", "pool/scored_tasks")


def gather_pool_stats(curriculum: Any, group: Any = None) -> dict[str, float]:
    """Every rank's ``curriculum.pool_stats()`` combined, for logging (a collective:
    every rank of ``group`` calls it; every rank gets the result).

    For any curriculum, generated pools included, whose pools are not
    synchronised: ``ranks/pool/tasks``, ``/capacity``, ``/completions`` and
    ``/scored_tasks`` summed over ranks, ``ranks/pool/mean_score`` over every
    rank's completions, and per label ``ranks/pool/label/<label>/tasks`` and
    ``/completions`` summed, ``/sample_prob`` averaged over ranks (the chance
    that an episode of a rank picked at random draws that label).
    """
    local = {name: value for name, value in curriculum.pool_stats(top=0).items()
             if name in _SUMMED or name == "pool/mean_score" or name.startswith("pool/label/")}
    everyone: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(everyone, local, group=group)
    combined: dict[str, float] = {}
    score_sum = 0.0
    for stats in everyone:
        score_sum += stats.get("pool/mean_score", 0.0) * stats.get("pool/completions", 0.0)
        for name, value in stats.items():
            if name == "pool/mean_score":
                continue
            weight = 1.0 / len(everyone) if name.endswith("/sample_prob") else 1.0
            combined[f"ranks/{name}"] = combined.get(f"ranks/{name}", 0.0) + weight * value
    completions = combined.get("ranks/pool/completions", 0.0)
    combined["ranks/pool/mean_score"] = score_sum / completions if completions else 0.0
    return dict(sorted(combined.items()))

def _fill(block: Any, ids: np.ndarray, scores: np.ndarray) -> None:
    """Write outcomes into the first rows of a (rows, 2) float64 tensor."""
    if ids.size:
        block[: ids.size, 0] = torch.from_numpy(ids.astype(np.float64))
        block[: ids.size, 1] = torch.from_numpy(scores)


def _block_rows(longest: int) -> int:
    """Rows of the next exchange's block: room for half again the longest of the
    last exchange (a power of two, at least MIN_BLOCK_ROWS)."""
    return max(MIN_BLOCK_ROWS, 1 << math.ceil(math.log2(longest * 3 // 2 + 2)))
