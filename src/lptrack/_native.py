"""The native engine: ``NativeTable``, the ``Table`` over the C core (``csrc/``).

The Cython base class ``lptrack._core.SegmentTable`` implements every table
operation, so calls reach C without a Python frame in between; this module
owns the memory: a private 64-byte aligned buffer for a local table, or a
POSIX shared-memory segment named after the session for a shared one.

Shared segments: the first process to name a session creates the segment
(zero-filled, magic written last); every other process attaches and must ask
for the same capacity and row width (else LayoutMismatchError, and nothing
changes).  Only the creating process may unlink it; ``close()`` only detaches.

Liveness (csrc/lpt_liveness.h): every process using a shared segment is in
the segment's registry, from creation, attachment or a fork until close().
Opening a session whose segment has no live registered process (its
processes were all killed) removes that stale segment and creates a fresh
one; a segment with a live user is never removed.
"""

from __future__ import annotations

import os
import time
import weakref

import numpy as np

from lptrack import _shm
from lptrack._core import (
    DEFAULT_LOCK_TIMEOUT,
    LAYOUT_VERSION,
    SegmentBuffer,
    SegmentTable,
    aligned_image,
    peek_layout,
    segment_bytes,
)
from lptrack._table import ROW_WIDTH, Table, layout_mismatch
from lptrack.errors import LayoutMismatchError, SegmentError

#: Separates the native engine's segments from other engines' in /dev/shm.
SEGMENT_KIND = "native_"
#: Seconds an attacher waits for a concurrent creator to finish initialising.
ATTACH_TIMEOUT = 5.0
_ATTACH_POLL = 0.001


class NativeTable(SegmentTable, Table):
    """A task pool in one segment: local (``session_id=None``) or shared by session.

    ``rows`` is a live, writable ``(capacity, row_width)`` float64 view; it
    stays valid (the mapping stays alive) as long as any view of it does, even
    after ``close()``.
    """

    def __init__(
        self,
        capacity: int,
        row_width: int = ROW_WIDTH,
        session_id: str | None = None,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self._init_fields(session_id, lock_timeout)
        size = segment_bytes(capacity, row_width)
        _shm.check_allocatable(size, shared=session_id is not None)
        if session_id is None:
            self._create(aligned_image(size), capacity, row_width)
        else:
            self._open_shared(capacity, row_width, may_create=True)
            _open_shared_tables.add(self)

    def _init_fields(self, session_id: str | None, lock_timeout: float) -> None:
        self.lock_timeout = lock_timeout
        self.session_id = session_id
        self._segment = None  # the SharedMemory of a shared table
        self._creator_pid = 0  # os.getpid() of the process that created the segment

    @property
    def created(self) -> bool:
        """Whether this object made its segment (always, for a local table)."""
        return self.session_id is None or self._creator_pid != 0

    @property
    def segment_name(self) -> str | None:
        """The /dev/shm name of a shared table's segment (None for a local table)."""
        if self.session_id is None:
            return None
        return _shm.segment_name(self.session_id, SEGMENT_KIND)

    def _open_shared(self, capacity: int, row_width: int, *, may_create: bool) -> None:
        name = self.segment_name
        size = segment_bytes(capacity, row_width)
        deadline = time.monotonic() + ATTACH_TIMEOUT
        while True:
            if may_create and self._try_create(name, size, capacity, row_width):
                return
            if self._try_attach(name, capacity, row_width, missing_ok=may_create):
                return
            if time.monotonic() > deadline:
                raise SegmentError(
                    f"shared segment {name!r} did not become ready within {ATTACH_TIMEOUT} s "
                    "(a process that died while creating or removing it leaves it so: "
                    "`lptrack cleanup` removes it)"
                )
            time.sleep(_ATTACH_POLL)

    def _try_create(self, name: str, size: int, capacity: int, row_width: int) -> bool:
        try:
            segment = _shm.create_segment(name, size)
        except FileExistsError:
            return False
        try:
            self._create(SegmentBuffer(segment, segment.buf), capacity, row_width)
        except BaseException:
            _shm.unlink_segment(segment)
            _shm.close_segment(segment)
            raise
        self._segment = segment
        self._creator_pid = os.getpid()
        return True

    def _try_attach(self, name: str, capacity: int, row_width: int, *, missing_ok: bool) -> bool:
        """Attach if the segment exists and its creator has finished; raise on a mismatch.

        With ``missing_ok`` (opening a session, which may create) a stale
        segment is removed instead, and False returned so the caller creates.
        """
        try:
            segment = _shm.attach_segment(name)
        except FileNotFoundError as exc:  # not created yet, or just removed
            if missing_ok:
                return False
            raise SegmentError(f"shared segment {name!r} does not exist (was it unlinked?)") from exc
        except ValueError:  # size 0: the creator has not sized it yet
            return False
        buffer = SegmentBuffer(segment, segment.buf)
        try:
            ready = self._attach(buffer, capacity, row_width)
        except LayoutMismatchError:
            found = peek_layout(buffer)
            if found is None:
                raise
            raise layout_mismatch(self.session_id, found, (LAYOUT_VERSION, capacity, row_width)) from None
        finally:
            del buffer  # bound views hold it; otherwise the segment may close
        if not ready:
            _shm.close_segment(segment)
            return False
        stale = missing_ok and not self.live_pids() and self._retire()
        if stale:
            _shm.unlink_if_same(segment)
        if stale or not self._register():  # stale, or being removed by another process
            self._unbind()
            _shm.close_segment(segment)
            return False
        self._segment = segment
        return True

    # -- lifecycle ------------------------------------------------------------
    def close(self) -> None:
        """Detach this process (idempotent).  Views of ``rows`` keep the mapping alive."""
        self._unregister()
        self._unbind()
        if self._segment is not None:
            _shm.close_segment(self._segment)

    def unlink(self) -> None:
        """Remove the shared segment's name, if this process created it.

        A no-op for a local table and in any process that only attached (a
        forked child included): their exit must not take the pool away from
        the others.
        """
        if self._segment is not None and self._creator_pid == os.getpid():
            _shm.unlink_segment(self._segment)

    def __reduce__(self):
        if self.session_id is None:
            return (
                _restore_local,
                (self.capacity, self.row_width, self._image_copy(), self.lock_timeout),
            )
        return (_reattach, (self.session_id, self.capacity, self.row_width, self.lock_timeout))

    def __repr__(self) -> str:
        where = "local" if self.session_id is None else f"session {self.session_id!r}"
        if self.rows is None:
            return f"<NativeTable {where} closed>"
        return f"<NativeTable {where} {len(self)}/{self.capacity} tasks>"


def open_observer(name: str) -> NativeTable:
    """Attach to the native segment ``name`` (its /dev/shm name) as an observer,
    whatever its capacity: not registered as a user, so it never keeps a stale
    segment alive (``lptrack inspect`` and ``lptrack cleanup``).

    FileNotFoundError if it does not exist, SegmentError if it is not an
    initialised lptrack segment, LayoutMismatchError for another layout version.
    """
    segment = _shm.attach_segment(name)
    try:
        buffer = SegmentBuffer(segment, segment.buf)
        found = peek_layout(buffer)
        if found is None:
            raise SegmentError(f"{name!r} is not an initialised lptrack segment")
        version, capacity, row_width = found
        if version != LAYOUT_VERSION:
            raise LayoutMismatchError(
                f"{name!r} has layout version {version}; this lptrack reads version {LAYOUT_VERSION}"
            )
        table = NativeTable.__new__(NativeTable)
        table._init_fields(name.removeprefix(_shm.segment_name("", SEGMENT_KIND)), DEFAULT_LOCK_TIMEOUT)
        table._attach(buffer, capacity, row_width)
        del buffer
    except BaseException:
        _shm.close_segment(segment)
        raise
    table._segment = segment
    return table


def _reattach(session_id: str, capacity: int, row_width: int, lock_timeout: float) -> NativeTable:
    """Unpickle a shared table: attach to the session's existing segment."""
    table = NativeTable.__new__(NativeTable)
    table._init_fields(session_id, lock_timeout)
    table._open_shared(capacity, row_width, may_create=False)
    _open_shared_tables.add(table)
    return table


#: The shared tables open in this process, so that a forked child (which
#: inherits them without unpickling) enters the registries as a user too.
_open_shared_tables: weakref.WeakSet[NativeTable] = weakref.WeakSet()


def _register_in_forked_child() -> None:
    for table in list(_open_shared_tables):
        if table.rows is not None:
            table._register()


os.register_at_fork(after_in_child=_register_in_forked_child)


def _restore_local(capacity: int, row_width: int, image: bytes, lock_timeout: float) -> NativeTable:
    """Unpickle a local table: a private copy of the pickled image."""
    table = NativeTable.__new__(NativeTable)
    table._init_fields(None, lock_timeout)
    buffer = aligned_image(len(image))
    buffer[:] = np.frombuffer(image, dtype=np.uint8)
    table._restore(buffer, capacity, row_width)
    return table
