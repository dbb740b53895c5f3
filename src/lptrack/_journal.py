"""A session's outcome journal: the (task id, score) outcomes its processes recorded, in order.

The pool keeps each task's statistics, not the outcomes that made them, and
its EMAs depend on the order of the outcomes; so a process that forwards a
host's outcomes elsewhere (the synchroniser of ``lptrack.distributed``) reads
them from this journal: a lock-free ring in its own small shared segment
(``csrc/lpt_journal.h``), next to the pool's.  Every process of the session
whose algorithm has the journal appends each outcome it records (one atomic
fetch-add and three stores): after updating the pool, or, while the journal
is ``deferred``, instead of it (the reader then applies it); one process reads.

Who journals: the algorithm of a shared session looks for the session's
journal when it is made or unpickled, and ``attach_outcome_journal`` adds it
to an algorithm made earlier.  So the reader creates the journal before the
session's other processes make or receive their algorithm (README, "Many
hosts").  A pool that is not shared gets a private journal (no segment).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, NamedTuple

import numpy as np

from lptrack import _shm
from lptrack.errors import SegmentError

# lptrack._core (the extension) is imported where a journal is made: the
# algorithm imports this module to look for a session's journal, and
# `import lptrack` must work where the extension is not built.

#: Separates journal segments from pool segments in /dev/shm.
SEGMENT_KIND = "journal_"
#: Outcomes a journal holds unread before the oldest are overwritten (32 bytes each: 2 MiB).
DEFAULT_CAPACITY = 1 << 16
#: Seconds the reader waits for an outcome claimed but not yet published before
#: counting it lost (its producer died, or stalled that long, between the two).
DEFAULT_READ_WAIT = 1.0
#: Seconds an attacher waits for a concurrent creator to finish initialising.
ATTACH_TIMEOUT = 5.0
_READ_CHUNK = 1 << 16


class Outcomes(NamedTuple):
    """Outcomes read from a journal, in the order they were recorded."""

    task_ids: np.ndarray  # int64
    scores: np.ndarray  # float64
    lost: int  # outcomes overwritten before this read, or never published


def journal_name(session_id: str) -> str:
    return _shm.segment_name(session_id, SEGMENT_KIND)


class OutcomeJournal:
    """One process's handle on a session's journal (or on a private one)."""

    def __init__(self, ring: Any, segment: object, session_id: str | None, created: bool) -> None:
        self._ring = ring
        self._segment = segment  # the SharedMemory, None for a private journal
        self.session_id = session_id
        self._creator_pid = os.getpid() if created else 0

    # -- opening ----------------------------------------------------------------
    @classmethod
    def create(cls, session_id: str | None, capacity: int = DEFAULT_CAPACITY) -> OutcomeJournal:
        """A new journal: the session's segment, or a private one for ``session_id=None``.

        SegmentError if the session already has a journal whose creator is
        alive (one reader per session); a dead creator's journal is replaced.
        """
        from lptrack._core import JournalRing, aligned_image, journal_bytes, process_alive

        size = journal_bytes(capacity)
        ring = JournalRing()
        if session_id is None:
            ring._create(aligned_image(size), capacity)
            return cls(ring, None, None, created=True)
        name = journal_name(session_id)
        _shm.check_allocatable(size, shared=True)
        for _ in range(3):
            try:
                segment = _shm.create_segment(name, size)
            except FileExistsError:
                existing = cls.open(session_id)
                if existing is None:
                    continue  # removed meanwhile
                creator = existing.creator_pid
                if process_alive(creator):
                    existing.close()
                    raise SegmentError(
                        f"session {session_id!r} already has an outcome journal, created by pid "
                        f"{creator}: one synchroniser per session"
                    ) from None
                _shm.unlink_if_same(existing._segment)  # a dead reader's leftover
                existing.close()
                continue
            try:
                ring._create(_shm_view(segment), capacity)
            except BaseException:
                _shm.unlink_segment(segment)
                _shm.close_segment(segment)
                raise
            return cls(ring, segment, session_id, created=True)
        raise SegmentError(f"could not create the outcome journal {name!r}: it keeps being replaced")

    @classmethod
    def open(cls, session_id: str) -> OutcomeJournal | None:
        """Attach to the session's journal; None if it has none."""
        from lptrack._core import JournalRing

        name = journal_name(session_id)
        deadline = time.monotonic() + ATTACH_TIMEOUT
        while True:
            try:
                segment = _shm.attach_segment(name)
            except FileNotFoundError:
                return None
            except ValueError:  # size 0: the creator has not sized it yet
                segment = None
            if segment is not None:
                ring = JournalRing()
                try:
                    if ring._attach(_shm_view(segment)):
                        return cls(ring, segment, session_id, created=False)
                except BaseException:
                    _shm.close_segment(segment)
                    raise
                _shm.close_segment(segment)
            if time.monotonic() > deadline:
                raise SegmentError(f"outcome journal {name!r} did not become ready within {ATTACH_TIMEOUT} s")
            time.sleep(0.001)

    # -- use --------------------------------------------------------------------
    def append(self, task_id: int, score: float) -> None:
        """Record one outcome (the reader's tests and tools; the algorithm appends
        through ``journaling``)."""
        self._ring.append(task_id, score)

    def journaling(self, update: Callable[[int, float], int]) -> Callable[[int, float], int]:
        """``update`` (a table's bound update, returning the slot) that also
        records each update it applied."""
        return self._ring.journaling(update)

    def read(self, wait: float = DEFAULT_READ_WAIT) -> Outcomes:
        """Every outcome recorded since the last read, in order (the one reader only)."""
        pending = max(self._ring.pending, 0)
        chunk = min(max(pending, 1), _READ_CHUNK, self._ring.capacity)
        ids_parts, score_parts, lost = [], [], 0
        while True:
            ids = np.empty(chunk, dtype=np.int64)
            scores = np.empty(chunk, dtype=np.float64)
            got, missed = self._ring.read(ids, scores, wait)
            lost += missed
            ids_parts.append(ids[:got])
            score_parts.append(scores[:got])
            if got < chunk:
                break
        return Outcomes(np.concatenate(ids_parts), np.concatenate(score_parts), lost)

    @property
    def capacity(self) -> int:
        return self._ring.capacity

    @property
    def creator_pid(self) -> int:
        return self._ring.creator_pid

    @property
    def appended(self) -> int:
        """Outcomes recorded since the journal was created."""
        return self._ring.appended

    @property
    def deferred(self) -> bool:
        """True: the session's journaled updates only go to the journal, and the
        reader applies them to the pool (lptrack.distributed's lockstep mode);
        False: they update the pool at once and are also journaled."""
        return self._ring.deferred

    @deferred.setter
    def deferred(self, value: bool) -> None:
        self._ring.deferred = bool(value)

    @property
    def pending(self) -> int:
        """Outcomes recorded and not yet read."""
        return self._ring.pending

    @property
    def lost(self) -> int:
        """Outcomes lost since creation (overwritten unread, or never published)."""
        return self._ring.lost

    @property
    def closed(self) -> bool:
        return not self._ring.bound

    # -- lifecycle ----------------------------------------------------------------
    def close(self) -> None:
        """Detach (idempotent); the creating process also removes the segment's name."""
        self._ring._unbind()
        segment, self._segment = self._segment, None
        if segment is None:
            return
        if self._creator_pid == os.getpid():
            _shm.unlink_segment(segment)
        _shm.close_segment(segment)

    def __reduce__(self):
        if self.session_id is None:
            # A pickled local pool is a copy, another pool: its copy journals nothing.
            return (_no_journal, ())
        return (_reattach, (self.session_id,))

    def __repr__(self) -> str:
        where = "private" if self.session_id is None else f"session {self.session_id!r}"
        if self.closed:
            return f"<OutcomeJournal {where} closed>"
        return f"<OutcomeJournal {where} {self.pending} pending of {self.capacity}>"


def _shm_view(segment: Any) -> Any:
    from lptrack._core import SegmentBuffer

    # Views taken through a SegmentBuffer keep the SharedMemory alive (see _core).
    return SegmentBuffer(segment, segment.buf)


def _no_journal() -> None:
    return None


def _reattach(session_id: str) -> OutcomeJournal | None:
    """Unpickle a session's journal: attach, or None if its reader removed it meanwhile
    (no synchroniser reads this session any more, so there is nothing to record)."""
    return OutcomeJournal.open(session_id)


def open_session_journal(session_id: str) -> OutcomeJournal | None:
    """The session's journal if it has one (a synchroniser made it), else None; one
    failed ``stat`` when it has none."""
    if not os.path.exists(os.path.join(_shm.SHM_DIR, journal_name(session_id))):
        return None
    return OutcomeJournal.open(session_id)
