"""The native table engine: a thin Cython layer over the C core in ``csrc/``.

``SegmentTable`` binds one mapping of a segment image (shared memory or a
private buffer; ``lptrack._native`` decides which) and implements the
``lptrack._table.Table`` operations, each one lock acquisition around O(1) C
calls.  The lock is first tried with the GIL held, so an uncontended operation
never releases the GIL; a real wait, and every loop over many rows, runs
``with nogil``.  Every C status goes through ``_check``.
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_FORMAT,
    PyBUF_ND,
    PyBUF_STRIDES,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.object cimport PyObject_IsTrue
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.math cimport NAN, isfinite
from libc.stdint cimport int64_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cimport numpy as cnp
import numpy as np

cimport lptrack.lpt_lock as lk
cimport lptrack.lpt_segment as seg
cimport lptrack.lpt_status as st
cimport lptrack.lpt_distribution as dist
cimport lptrack.lpt_sampler as smp
cimport lptrack.lpt_update as upd
cimport lptrack.lpt_crash as crash
cimport lptrack.lpt_liveness as live

from lptrack._table import (
    THRESHOLD_RULES,
    check_finite,
    check_percentile,
    check_task_id,
    check_uniform,
    task_id_array,
)
from lptrack.errors import LayoutMismatchError, LockReentryError, LockTimeoutError, SegmentError

cnp.import_array()

#: Version of the segment layout this build reads and writes.
LAYOUT_VERSION = seg.LPT_LAYOUT_VERSION
#: Largest task id: ids are integers in [1, MAX_TASK_ID], exact in a float64 row.
MAX_TASK_ID = seg.LPT_MAX_TASK_ID
#: Seconds a lock wait lasts when no timeout is given.  A hold is one row
#: update or one distribution pass, so reaching it means a stuck holder.
DEFAULT_LOCK_TIMEOUT = 10.0
#: Lock-free tries of read_row before it takes the lock.  A row write is a few
#: dozen stores, so a reader meeting one retries within nanoseconds; only a
#: writer descheduled or dead mid-row exhausts them.
READ_ROW_ATTEMPTS = 64
#: Slots one publishing hold of a distribution pass covers (lpt_distribution.h).
PUBLISH_SLOTS = dist.LPT_PUBLISH_SLOTS
#: How long a pass between two publishing holds waits for a process asleep on the
#: lock to take it (a futex wake-up takes tens of microseconds on a VM).
DEF PUBLISH_HANDOFF_NS = 200000
#: claim(new_only=True) of a task already tracked (lptrack._table.TRACKED).
cdef int64_t _TRACKED = -2


cdef int _check(int rc, SegmentTable table=None, str detail=None) except -1:
    """Raise the exception that stands for a C status (LPT_OK passes)."""
    if rc == st.LPT_OK:
        return 0
    message = st.lpt_status_message(rc).decode()
    if detail:
        message = f"{message}: {detail}"
    if rc == st.LPT_ERR_LOCK_TIMEOUT:
        holder = table.lock_owner_pid if table is not None else 0
        raise LockTimeoutError(f"{message} (held by pid {holder})", holder)
    if rc == st.LPT_ERR_LAYOUT:
        raise LayoutMismatchError(message)
    if rc == st.LPT_ERR_INVALID or rc == st.LPT_ERR_ALIGNMENT:
        raise ValueError(message)
    if rc == st.LPT_ERR_LABELS_FULL:
        raise MemoryError(message)
    if rc == st.LPT_ERR_LOCK_DEADLOCK:
        raise LockReentryError(message)
    if rc == st.LPT_ERR_LOCK_NOT_OWNER:
        raise RuntimeError(message)
    raise SegmentError(message)


cdef inline int _check_task_id(int64_t task_id) except -1:
    if task_id < 1 or task_id > seg.LPT_MAX_TASK_ID:
        raise ValueError(f"task id {task_id} is outside [1, 2**53)")
    return 0


# The comparisons stay in C on the hot path; the errors come from lptrack._table,
# so both engines refuse the same values with the same message.
cdef inline int _check_uniform(double uniform) except -1:
    if not 0.0 <= uniform < 1.0:
        check_uniform(uniform)
    return 0


cdef inline int _check_percentile(double percentile) except -1:
    if not 0.0 <= percentile < 1.0:
        check_percentile(percentile)
    return 0


cdef inline long long _task_id_arg(object task_id) except? -1:
    """A caller's task id as a C integer, refused as lptrack._table.check_task_id
    refuses it (the same errors); an exact int in range is tested in C."""
    cdef long long tid
    cdef int overflow = 0
    if PyLong_CheckExact(task_id):
        tid = PyLong_AsLongLongAndOverflow(task_id, &overflow)
        if not overflow and 1 <= tid <= seg.LPT_MAX_TASK_ID:
            return tid
    return check_task_id(task_id)


cdef inline double _score_arg(object score) except? -1.0:
    """A caller's score as a C double, refused as check_finite refuses it; an exact
    finite float is tested in C."""
    if PyFloat_CheckExact(score) and isfinite(PyFloat_AS_DOUBLE(score)):
        return PyFloat_AS_DOUBLE(score)
    return check_finite("score", score)


cdef seg.lpt_layout _layout(int64_t capacity, int64_t row_width) except *:
    cdef seg.lpt_layout layout
    _check(seg.lpt_layout_compute(capacity, row_width, &layout), None,
           f"capacity {capacity} must be in [1, {seg.LPT_MAX_CAPACITY}] and "
           f"row width {row_width} at least 18")
    return layout


def segment_bytes(int64_t capacity, int64_t row_width):
    """Size in bytes of the segment of ``capacity`` rows of ``row_width`` float64."""
    return _layout(capacity, row_width).total_bytes


def _arm_crash(int64_t countdown):
    """Test hook: the ``countdown``-th crash point this process reaches in the C
    core SIGKILLs it (0 disarms).  See csrc/lpt_crash.h."""
    crash.lpt_crash_arm(countdown)


def peek_layout(image):
    """``(layout_version, capacity, row_width)`` an lptrack segment image declares,
    or None when ``image`` is not one (or not initialised yet).  Reads only."""
    cdef unsigned char[::1] view = image
    cdef seg.lpt_segment unused
    cdef seg.lpt_layout found
    cdef uint32_t version = 0
    if view.shape[0] == 0:
        return None
    found.capacity = found.row_width = 0
    # Capacity 1 and the minimal row width are merely valid arguments: every
    # mismatch still reports what the header declares.
    rc = seg.lpt_segment_attach(&view[0], view.shape[0], 1, 18, &unused, &found, &version)
    if rc == st.LPT_ERR_NOT_READY or rc == st.LPT_ERR_NOT_LPTRACK or rc == st.LPT_ERR_ALIGNMENT:
        return None
    return (version, found.capacity, found.row_width)


def process_alive(int64_t pid):
    """Whether ``pid`` names a running process (not a zombie)."""
    return live.lpt_proc_token(pid) != 0


def aligned_image(Py_ssize_t nbytes):
    """A zeroed, writable uint8 array of ``nbytes`` whose data is 64-byte aligned."""
    cdef cnp.ndarray raw = np.zeros(nbytes + seg.LPT_ALIGNMENT, dtype=np.uint8)
    cdef uintptr_t address = <uintptr_t>cnp.PyArray_DATA(raw)
    cdef Py_ssize_t offset = <Py_ssize_t>((seg.LPT_ALIGNMENT - address % seg.LPT_ALIGNMENT)
                                          % seg.LPT_ALIGNMENT)
    return raw[offset:offset + nbytes]


@cython.final
@cython.auto_pickle(False)
@cython.no_gc_clear  # the owner must outlive the views even in a collected cycle
cdef class SegmentBuffer:
    """Re-exports the bytes of ``source`` and keeps ``owner`` alive while any view
    of them lives.

    ``numpy.frombuffer(shm.buf)`` references only the mapping, so the
    ``SharedMemory`` object could be collected, its ``close()`` failing on the
    exported views, while arrays still point into the mapping.  Views taken
    through a ``SegmentBuffer`` hold it and it holds ``owner``: the mapping is
    released only after the last view is gone.
    """

    cdef object _owner
    cdef Py_buffer _source
    cdef bint _held
    cdef Py_ssize_t _length
    cdef Py_ssize_t _stride

    def __cinit__(self, owner, source):
        PyObject_GetBuffer(source, &self._source, PyBUF_WRITABLE)
        self._held = True
        self._owner = owner
        self._length = self._source.len
        self._stride = 1

    def __getbuffer__(self, Py_buffer *view, int flags):
        view.buf = self._source.buf
        view.len = self._source.len
        view.readonly = 0
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"  # a C string literal: static storage
        view.ndim = 1
        view.shape = &self._length if flags & PyBUF_ND else NULL
        view.strides = &self._stride if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL
        view.obj = self

    def __releasebuffer__(self, Py_buffer *view):
        pass

    def __dealloc__(self):
        if self._held:
            PyBuffer_Release(&self._source)


@cython.final
@cython.auto_pickle(False)
cdef class _HeldLock:
    """``Table.lock()``: the table's lock for the ``with`` block."""

    cdef SegmentTable _table
    cdef double _timeout

    def __enter__(self):
        self._table._acquire(self._timeout)

    def __exit__(self, exc_type, exc, tb):
        # A guard_row() record lives as long as this hold.
        seg.lpt_undo_end_locked(&self._table._seg)
        self._table._release()
        return False


cdef int _read_bidirectional(object bidirectional, upd.lpt_update_params *p) except -1:
    """Copy a BidirectionalParams into ``p``.  It is a tuple subclass: its items are
    read directly (generic indexing of a tuple subclass costs more than the update)."""
    if not PyTuple_Check(bidirectional) or PyTuple_GET_SIZE(bidirectional) != 3:
        raise TypeError("bidirectional must be a BidirectionalParams")
    p.bidirectional = 1
    p.fast_timescale = <object>PyTuple_GET_ITEM(bidirectional, 0)
    p.slow_timescale = <object>PyTuple_GET_ITEM(bidirectional, 1)
    p.use_baseline_normalization = PyObject_IsTrue(<object>PyTuple_GET_ITEM(bidirectional, 2))
    return 0


# Table.bind_choose's threshold rules.
cdef enum:
    _THRESHOLD_NEVER = 0
    _THRESHOLD_ALWAYS = 1
    _THRESHOLD_PER_BATCH = 2

cdef int _threshold_rule(str threshold) except -1:
    if threshold == "never":
        return _THRESHOLD_NEVER
    if threshold == "always":
        return _THRESHOLD_ALWAYS
    if threshold == "per_batch":
        return _THRESHOLD_PER_BATCH
    raise ValueError(f"threshold must be one of {THRESHOLD_RULES}, got {threshold!r}")


cdef int _tracked_update_params(double ema_alpha, object bidirectional,
                                upd.lpt_update_params *p) except -1:
    """The parameters of update_tracked's call into C that do not change per task."""
    p.ema_alpha = ema_alpha
    p.success_threshold = NAN
    p.lp_score = NAN
    return _read_bidirectional(bidirectional, p)


cdef class BatchCounter:
    """A scorer's batches (SPEC.md, deliberate change 1): updates and evictions
    count together, every ``size``-th ends a batch (``epoch`` + 1), and the
    distribution is stale while ``fresh_epoch != epoch`` (lptrack._table's
    BatchCounter, counted into from C here without a Python call)."""

    cdef public long long size
    cdef public long long events
    cdef public long long epoch
    cdef public long long fresh_epoch

    def __init__(self, long long size, long long events=0, long long epoch=0, long long fresh_epoch=-1):
        self.size = size
        self.events = events
        self.epoch = epoch
        self.fresh_epoch = fresh_epoch

    cpdef count(self):
        """One update or eviction; the size-th ends the batch."""
        self.events += 1
        if self.events >= self.size:
            self.end_batch()

    cpdef end_batch(self):
        self.events = 0
        self.epoch += 1

    def __reduce__(self):
        return (BatchCounter, (self.size, self.events, self.epoch, self.fresh_epoch))


cdef class RunningTotals:
    """A tracker's running totals (SPEC.md): the scores it recorded and their sum.

    ``SegmentTable.update_tracked`` adds to them in the call that updates the
    row, so the episode's hot path needs no Python frame for them.
    """

    cdef public long long completions
    cdef public double sum_scores

    def __init__(self, long long completions=0, double sum_scores=0.0):
        self.completions = completions
        self.sum_scores = sum_scores

    def __reduce__(self):
        return (RunningTotals, (self.completions, self.sum_scores))

    def __repr__(self):
        return f"RunningTotals(completions={self.completions}, sum_scores={self.sum_scores!r})"


@cython.auto_pickle(False)
cdef class SegmentTable:
    """A pool of task rows in one segment image (see ``lptrack._table.Table``).

    Unbound until one of ``_create``, ``_attach`` or ``_restore`` succeeds;
    ``lptrack._native.NativeTable`` owns the memory and calls them.
    """

    cdef seg.lpt_segment _seg
    cdef unsigned char[::1] _image
    # Lock holds and waits in flight through this object: close() refuses
    # while there are any, so no C call ever runs on an unmapped image.
    cdef int _busy
    cdef readonly int64_t capacity
    cdef readonly int64_t row_width
    #: ``(capacity, row_width)`` float64, writable, a live view of the rows.
    cdef readonly object rows
    #: Seconds every lock wait of this object lasts when no timeout is given.
    cdef public double lock_timeout
    # This process's entry in the segment's process registry (0: none).
    cdef uint64_t _token
    #: The label hash and slot of the task the last choose_pool_task evicted or
    #: sampled (0 and -1: none).
    cdef readonly int64_t chosen_label_hash
    cdef readonly int64_t chosen_slot
    # The segment's pass count when this object last ran or noticed a pass:
    # a higher count means that another process recomputed the distribution.
    cdef uint64_t _passes_seen
    # The last choose_pool_task evicted, and its slot is held for this object's
    # next claim (lpt_choose_locked's replacement) until that claim or choose.
    cdef bint _replacing
    #: The longest wait for the lock (ns) of any call through this object, since
    #: it was made or this was last set to 0: the stalls other holders caused.
    cdef public int64_t longest_lock_wait_ns
    #: The longest lock hold (ns) of this object's distribution passes (the
    #: snapshot or one publishing range), likewise.
    cdef public int64_t longest_pass_hold_ns
    # This process's distribution pass scratch (lpt_distribution.h), allocated
    # at the first pass: passes run without the lock, so never in the segment.
    cdef dist.lpt_pass _pass_scratch
    cdef bint _passing

    def __cinit__(self, *args, **kwargs):
        self._seg.header = NULL
        self.chosen_slot = -1
        self.lock_timeout = DEFAULT_LOCK_TIMEOUT
        self._pass_scratch.slots = NULL
        self._pass_scratch.x = NULL
        self._pass_scratch.slot_lp = NULL
        self._pass_scratch.slot_id = NULL

    def __dealloc__(self):
        free(self._pass_scratch.slots)
        free(self._pass_scratch.x)
        free(self._pass_scratch.slot_lp)
        free(self._pass_scratch.slot_id)

    # -- binding --------------------------------------------------------------
    def _create(self, image, int64_t capacity, int64_t row_width):
        """Initialise a new segment in ``image`` (writes every byte, the magic last)."""
        cdef unsigned char[::1] view = image
        cdef seg.lpt_segment bound
        if view.shape[0] == 0:
            raise ValueError("empty segment image")
        _check(seg.lpt_segment_create(&view[0], view.shape[0], capacity, row_width,
                                      lk.lpt_self_pid(), &bound))
        self._token = live.lpt_proc_token(lk.lpt_self_pid())  # entered by the creation
        self._bind(image, view, bound)

    def _attach(self, image, int64_t capacity, int64_t row_width):
        """Bind an existing segment; False while its creator has not finished.

        Raises LayoutMismatchError for another layout version, capacity or row
        width, SegmentError for a buffer that is not an lptrack segment.
        """
        cdef unsigned char[::1] view = image
        cdef seg.lpt_segment bound
        cdef seg.lpt_layout found
        cdef uint32_t found_version = 0
        if view.shape[0] == 0:
            return False
        found.capacity = found.row_width = 0
        rc = seg.lpt_segment_attach(&view[0], view.shape[0], capacity, row_width,
                                    &bound, &found, &found_version)
        if rc == st.LPT_ERR_NOT_READY:
            return False
        _check(rc, None,
               f"the segment has layout version {found_version}, capacity "
               f"{found.capacity}, row width {found.row_width}; this process expects "
               f"layout version {seg.LPT_LAYOUT_VERSION}, capacity {capacity}, "
               f"row width {row_width}")
        self._bind(image, view, bound)
        return True

    def _restore(self, image, int64_t capacity, int64_t row_width):
        """Bind a copy of another table's image (its copied lock is re-initialised)."""
        if not self._attach(image, capacity, row_width):
            raise SegmentError("the copied image was never initialised")
        _check(seg.lpt_segment_reset_lock(&self._seg))

    cdef _bind(self, image, unsigned char[::1] view, seg.lpt_segment bound):
        cdef seg.lpt_layout layout = _layout(bound.capacity, bound.row_width)
        self.rows = np.frombuffer(image, dtype=np.float64,
                                  count=bound.capacity * bound.row_width,
                                  offset=layout.off_rows).reshape(bound.capacity, bound.row_width)
        self._image = view
        self._seg = bound
        self._passes_seen = seg.lpt_recomputations(&self._seg)
        self.capacity = bound.capacity
        self.row_width = bound.row_width

    def _unbind(self):
        """Forget the image (idempotent); the caller releases the memory."""
        if self._busy:
            raise RuntimeError("the table's lock is held or awaited through this table")
        self._seg.header = NULL
        self._image = None
        self.rows = None

    def _image_copy(self):
        """A consistent copy of the whole segment image (bytes)."""
        cdef Py_ssize_t n = self._image.shape[0] if self._seg.header != NULL else 0
        copy = PyBytes_FromStringAndSize(NULL, n)
        cdef char *dst = PyBytes_AS_STRING(copy)
        self._acquire(self.lock_timeout)
        self._busy += 1
        with nogil:
            memcpy(dst, &self._image[0], n)
        self._busy -= 1
        self._release()
        return copy

    # -- locking --------------------------------------------------------------
    cdef int _acquire(self, double timeout) except -1:
        cdef int rc
        cdef int64_t timeout_ns, waited
        if self._seg.header == NULL:
            raise ValueError("the table is closed")
        self._busy += 1
        # Never waits.  (If the last holder died, it repairs the segment here,
        # O(capacity) with the GIL held: rare enough not to matter.)
        rc = seg.lpt_segment_trylock(&self._seg)
        if rc == st.LPT_BUSY:
            timeout_ns = <int64_t>(timeout * 1e9)
            waited = lk.lpt_monotonic_ns()
            with nogil:
                rc = seg.lpt_segment_lock(&self._seg, timeout_ns)
            waited = lk.lpt_monotonic_ns() - waited
            if waited > self.longest_lock_wait_ns:
                self.longest_lock_wait_ns = waited
        if rc != st.LPT_OK:
            self._busy -= 1
            return _check(rc, self)
        return 0

    cdef inline void _end_replacement_locked(self) noexcept:
        """End the replacement this table's last eviction began, if any (lock held):
        the slot it held is free for every process again."""
        if self._replacing:
            smp.lpt_replacement_end_locked(&self._seg)
            self._replacing = False

    cdef inline int _release(self) except -1:
        self._busy -= 1
        return _check(seg.lpt_segment_unlock(&self._seg), self)

    def lock(self, timeout=None):
        """Hold the table's lock in a ``with`` block (not re-entrant).

        LockTimeoutError, naming the holder's pid, after ``timeout`` seconds
        (None: ``lock_timeout``); RuntimeError if this thread already holds it.
        """
        cdef _HeldLock held = _HeldLock.__new__(_HeldLock)
        held._table = self
        held._timeout = self.lock_timeout if timeout is None else timeout
        if not (isfinite(held._timeout) and held._timeout >= 0.0):
            raise ValueError(f"lock timeout must be finite and >= 0, not {timeout!r}")
        return held

    def guard_row(self, int64_t slot):
        """Within ``with lock():``, before writing row ``slot`` through ``rows``:
        if this process dies before the block ends, the next locker restores
        the row as it is now.  One row per hold (a later call replaces it)."""
        if not 0 <= slot < self.capacity:
            raise IndexError(f"slot {slot} out of range")
        seg.lpt_undo_begin_locked(&self._seg, slot, seg.LPT_OP_EXTERNAL)

    # -- header ---------------------------------------------------------------
    cdef seg.lpt_stats _stats(self) except *:
        cdef seg.lpt_stats stats
        if self._seg.header == NULL:
            raise ValueError("the table is closed")
        seg.lpt_segment_stats(&self._seg, &stats)
        return stats

    @property
    def generation(self):
        """Bumped on every pool-membership change, by any process."""
        return self._stats().generation

    def __len__(self):
        return self._stats().n_active

    @property
    def update_count(self):
        """Score updates applied to this segment, by every process."""
        return self._stats().n_updates

    @property
    def recomputation_count(self):
        """Distribution passes run over this segment."""
        return self._stats().n_recomputations

    @property
    def lock_wait_count(self):
        """Lock acquisitions that had to wait for another holder."""
        return self._stats().n_lock_waits

    @property
    def recovery_count(self):
        """Times a holder died with the lock and the segment was repaired."""
        return self._stats().n_recoveries

    @property
    def label_count(self):
        """Distinct labels registered in the segment."""
        return self._stats().label_count

    @property
    def creator_pid(self):
        return self._stats().creator_pid

    @property
    def lock_owner_pid(self):
        """Pid of the process holding the lock now, 0 when free (racy snapshot)."""
        return self._stats().lock_owner_pid

    @property
    def segment_bytes(self):
        return self._image.shape[0] if self._seg.header != NULL else 0

    # -- liveness (csrc/lpt_liveness.h) ---------------------------------------
    def _register(self):
        """Enter this process in the segment's registry of users; False (and
        not entered) when the segment was found stale and is being removed."""
        cdef uint64_t token
        if self._seg.header == NULL:
            raise ValueError("the table is closed")
        token = live.lpt_proc_token(lk.lpt_self_pid())
        rc = live.lpt_procs_register(&self._seg, token)
        if rc == st.LPT_ERR_RETIRED:
            return False
        _check(rc, self, "cannot read this process's /proc entry")
        self._token = token
        return True

    def _unregister(self):
        """Leave the registry (idempotent; a forked child never removes its
        parent's entry: the token names a pid and a start time)."""
        if self._seg.header != NULL and self._token != 0:
            live.lpt_procs_unregister(&self._seg, self._token)
        self._token = 0

    def live_pids(self, bint prune=True):
        """Pids of the registered processes still running; ``prune`` clears the
        entries of dead ones (an observer passes False and writes nothing)."""
        cdef int64_t pids[seg.LPT_MAX_PROCS]
        cdef int64_t n
        if self._seg.header == NULL:
            raise ValueError("the table is closed")
        n = live.lpt_procs_live(&self._seg, pids, seg.LPT_MAX_PROCS, prune)
        return [pids[i] for i in range(min(n, <int64_t>seg.LPT_MAX_PROCS))]

    @property
    def registry_overflowed(self):
        """Whether some process found the registry full (never judged stale then)."""
        return self._seg.header != NULL and live.lpt_procs_overflowed(&self._seg) != 0

    @property
    def retired(self):
        """Whether the segment was found stale and is being removed."""
        return self._seg.header != NULL and live.lpt_segment_retired(&self._seg) != 0

    def _retire(self):
        """Mark the segment retired if no live process uses it: True means the
        caller must now unlink it (see lpt_segment_retire)."""
        if self._seg.header == NULL:
            raise ValueError("the table is closed")
        return live.lpt_segment_retire(&self._seg) == st.LPT_OK

    def verify(self):
        """Check index, free stack and active list against the rows (O(capacity));
        SegmentError if they disagree."""
        cdef int rc
        self._acquire(self.lock_timeout)
        self._busy += 1
        with nogil:
            rc = seg.lpt_verify_locked(&self._seg)
        self._busy -= 1
        self._release()
        _check(rc, self)

    # -- pool membership ------------------------------------------------------
    def find(self, int64_t task_id):
        """Slot of ``task_id`` or -1.  O(1)."""
        cdef int64_t slot
        _check_task_id(task_id)
        self._acquire(self.lock_timeout)
        slot = seg.lpt_find_locked(&self._seg, task_id)
        self._release()
        return slot

    def label_hash_of(self, int64_t task_id):
        """The label hash in ``task_id``'s row; 0 when it has none or is not tracked."""
        cdef int64_t slot
        cdef double hashed = 0.0
        _check_task_id(task_id)
        self._acquire(self.lock_timeout)
        slot = seg.lpt_find_locked(&self._seg, task_id)
        if slot >= 0:
            hashed = seg.lpt_row(&self._seg, slot)[seg.LPT_COL_LABEL_HASH]
        self._release()
        return <int64_t>hashed

    def claim(self, int64_t task_id, double creation_time, double success_threshold,
              double seed, double generator_type, double lp_score=0.0, double label_hash=0.0,
              bint new_only=False):
        """Track ``task_id``: its slot, -1 when full.  A tracked task is left
        unchanged: its slot is returned, or with ``new_only`` TRACKED (-2).
        Ends the replacement this table's last eviction began (see
        ``choose_pool_task``)."""
        cdef seg.lpt_new_task task
        cdef int64_t slot
        _check_task_id(task_id)
        task.task_id = task_id
        task.creation_time = creation_time
        task.success_threshold = success_threshold
        task.seed = seed
        task.generator_type = generator_type
        task.lp_score = lp_score
        task.label_hash = label_hash
        self._acquire(self.lock_timeout)
        self._end_replacement_locked()  # this is the new task of the last eviction, if any
        if new_only and seg.lpt_find_locked(&self._seg, task_id) >= 0:
            slot = _TRACKED
        else:
            slot = seg.lpt_claim_locked(&self._seg, &task)
        self._release()
        return slot

    def release(self, int64_t task_id):
        """Untrack ``task_id`` and zero its row; False when it was not tracked."""
        cdef int released
        _check_task_id(task_id)
        self._acquire(self.lock_timeout)
        released = seg.lpt_release_locked(&self._seg, task_id)
        self._release()
        return released == 1

    def clear(self):
        """Untrack every task and zero every row (labels stay registered)."""
        self._acquire(self.lock_timeout)
        self._busy += 1
        with nogil:
            seg.lpt_clear_locked(&self._seg)
        self._busy -= 1
        self._release()

    cdef cnp.ndarray _active(self, bint want_ids):
        cdef cnp.npy_intp n
        cdef cnp.ndarray out
        cdef int64_t *data
        self._acquire(self.lock_timeout)
        try:
            n = self._stats().n_active
            out = cnp.PyArray_EMPTY(1, &n, cnp.NPY_INT64, 0)
            data = <int64_t *>cnp.PyArray_DATA(out)
            self._busy += 1
            with nogil:
                if want_ids:
                    seg.lpt_copy_active_locked(&self._seg, NULL, data)
                else:
                    seg.lpt_copy_active_locked(&self._seg, data, NULL)
            self._busy -= 1
        finally:
            self._release()
        return out

    def active_ids(self):
        """int64 task ids of the active slots, in active-list order (a copy)."""
        return self._active(True)

    def active_slots(self):
        """int64 active slots, same order as ``active_ids()`` (a copy)."""
        return self._active(False)

    def task_id_array(self, task_ids):
        """``Table.task_id_array``: a list or tuple of plain ints in range is copied
        in one typed loop (a caller's list of the whole pool, every episode);
        other items, and other inputs, take lptrack._table's checks."""
        cdef Py_ssize_t n, i
        cdef cnp.npy_intp size
        cdef cnp.ndarray out
        cdef int64_t *data
        cdef long long value
        cdef int overflow
        if type(task_ids) is not list and type(task_ids) is not tuple:
            return task_id_array(task_ids)
        n = len(task_ids)
        size = n
        out = cnp.PyArray_EMPTY(1, &size, cnp.NPY_INT64, 0)
        data = <int64_t *>cnp.PyArray_DATA(out)
        for i in range(n):
            item = task_ids[i]
            if PyLong_CheckExact(item):
                value = PyLong_AsLongLongAndOverflow(item, &overflow)
                if overflow == 0 and 1 <= value <= seg.LPT_MAX_TASK_ID:
                    data[i] = value
                    continue
            data[i] = check_task_id(item)  # converts an integral id or raises
            if len(task_ids) != n:  # check_task_id ran the item's own code
                raise RuntimeError("task_ids changed while being converted")
        return out

    # -- rows -----------------------------------------------------------------
    def update(self, int64_t task_id, double score, double ema_alpha,
               double success_threshold, double lp_score, double create_threshold,
               double creation_time, double seed, double generator_type, bidirectional):
        """One atomic score update of one row (see ``Table.update``); slot or -1."""
        cdef upd.lpt_update_params p
        cdef int64_t slot
        _check_task_id(task_id)
        p.task_id = task_id
        p.score = score
        p.ema_alpha = ema_alpha
        p.success_threshold = success_threshold
        p.lp_score = lp_score
        p.create_threshold = create_threshold
        p.creation_time = creation_time
        p.seed = seed
        p.generator_type = generator_type
        if bidirectional is None:
            p.bidirectional = 0
        else:
            _read_bidirectional(bidirectional, &p)
        self._acquire(self.lock_timeout)
        slot = upd.lpt_update_locked(&self._seg, &p)
        self._release()
        return slot

    def update_tracked(self, int64_t task_id, double score, double ema_alpha, bidirectional,
                       RunningTotals totals=None, BatchCounter batch=None):
        """``update`` of a tracked task with the row's threshold, never claiming:
        the slot, or -1 (nothing changed) when the task is not tracked.  An
        applied update is also added to ``totals`` and counted in ``batch``."""
        cdef upd.lpt_update_params p
        _tracked_update_params(ema_alpha, bidirectional, &p)
        return self._update_tracked(task_id, score, &p, totals, batch)

    cdef int64_t _update_tracked(self, int64_t task_id, double score, upd.lpt_update_params *p,
                                 RunningTotals totals, BatchCounter batch) except -2:
        cdef int64_t slot
        _check_task_id(task_id)
        p.task_id = task_id
        p.score = score
        self._acquire(self.lock_timeout)
        slot = seg.lpt_find_locked(&self._seg, task_id)
        if slot >= 0:
            slot = upd.lpt_update_locked(&self._seg, p)
        self._release()
        if slot >= 0:
            if totals is not None:
                totals.completions += 1
                totals.sum_scores += score
            if batch is not None:
                batch.count()
        return slot

    def bind_update(self, double ema_alpha, bidirectional, RunningTotals totals=None,
                    BatchCounter batch=None):
        """``update_tracked`` with everything but the task and the score bound:
        ``bind_update(...)(task_id, score)``, one call with two arguments per
        episode instead of six."""
        cdef _BoundUpdate bound = _BoundUpdate.__new__(_BoundUpdate)
        _tracked_update_params(ema_alpha, bidirectional, &bound._params)
        bound._table = self
        bound._totals = totals
        bound._batch = batch
        return bound.update

    def new_running_totals(self):
        """Zeroed running totals of the kind ``update_tracked`` adds to (``RunningTotals``)."""
        return RunningTotals()

    def new_batch_counter(self, long long size):
        """A batch counter (stale, no events yet) of the kind this table counts into."""
        return BatchCounter(size)

    def _noop_update(self, int64_t task_id, double score, double ema_alpha,
                     double success_threshold, double lp_score, double create_threshold,
                     double creation_time, double seed, double generator_type, bidirectional):
        """``update``'s call and argument conversion without the work (benchmark baseline)."""
        return -1

    def read_row(self, int64_t slot):
        """A consistent copy of row ``slot`` (never half of an update).

        Lock-free while no writer is in the row (its sequence number, see
        lpt_read_row); after READ_ROW_ATTEMPTS tries that each met a writer, it
        takes the lock, which waits at most ``lock_timeout`` and repairs a row
        a dead writer left half-written.
        """
        cdef cnp.npy_intp width = self.row_width
        cdef cnp.ndarray out
        if not 0 <= slot < self.capacity:
            raise IndexError(f"slot {slot} out of range [0, {self.capacity})")
        if self._seg.header == NULL:
            raise ValueError("the table is closed")
        out = cnp.PyArray_EMPTY(1, &width, cnp.NPY_FLOAT64, 0)
        if seg.lpt_read_row(&self._seg, slot, <double *>cnp.PyArray_DATA(out),
                            READ_ROW_ATTEMPTS) == st.LPT_OK:
            return out
        self._acquire(self.lock_timeout)
        memcpy(cnp.PyArray_DATA(out), seg.lpt_row(&self._seg, slot), width * sizeof(double))
        self._release()
        return out

    def set_fields(self, int64_t task_id, dict fields not None):
        """Atomically write ``{column: value}`` into the task's row; False if untracked."""
        cdef int64_t n = len(fields)
        cdef int64_t i = 0
        cdef int64_t slot = -1
        cdef int rc
        cdef int64_t *columns
        cdef double *values
        _check_task_id(task_id)
        columns = <int64_t *>malloc(n * sizeof(int64_t) + 1)
        values = <double *>malloc(n * sizeof(double) + 1)
        try:
            if columns == NULL or values == NULL:
                raise MemoryError()
            for column, value in fields.items():
                columns[i] = column
                values[i] = value
                i += 1
            self._acquire(self.lock_timeout)
            rc = seg.lpt_set_fields_locked(&self._seg, task_id, columns, values, n, &slot)
            self._release()
        finally:
            free(columns)
            free(values)
        _check(rc, self, f"columns must be in [1, {self.row_width}) (not TASK_ID)")
        return slot >= 0

    # -- labels ---------------------------------------------------------------
    def set_label(self, int64_t task_id, str label not None, uint64_t label_hash):
        """Store ``label_hash`` in the task's row and register ``label`` under it for
        every process; False if untracked.  MemoryError when the registry is full
        (nothing changes)."""
        cdef bytes utf8 = label.encode("utf-8")
        cdef int64_t slot = -1
        cdef int rc
        _check_task_id(task_id)
        self._acquire(self.lock_timeout)
        rc = seg.lpt_set_label_locked(&self._seg, task_id, label_hash, utf8, len(utf8), &slot)
        self._release()
        _check(rc, self, f"label hash {label_hash} (hashes are < 2**53)")
        return slot >= 0

    def label_for_hash(self, uint64_t label_hash):
        """The label registered under ``label_hash``, or None.  Lock-free."""
        cdef const char *label
        cdef uint64_t length
        if self._seg.header == NULL:
            raise ValueError("the table is closed")
        if not seg.lpt_label_lookup(&self._seg, label_hash, &label, &length):
            return None
        return label[:length].decode("utf-8")

    # -- scores, the learning-progress distribution, sampling, eviction -------
    def configure_scoring(self, bint bidirectional, double exploration_bonus,
                          double min_samples_for_lp):
        """Set the score_task rule of every process of the segment (bidirectional:
        lp_score, else basic) and rebuild the sampling weights: O(capacity)."""
        cdef int rc
        self._acquire(self.lock_timeout)
        self._busy += 1
        with nogil:
            rc = smp.lpt_sampler_configure_locked(
                &self._seg, smp.LPT_SCORE_BIDIRECTIONAL if bidirectional else smp.LPT_SCORE_BASIC,
                exploration_bonus, min_samples_for_lp)
        self._busy -= 1
        self._release()
        _check(rc, self, "exploration_bonus must be finite and min_samples_for_lp >= 0")

    cdef int _pass_alloc(self) except -1:
        cdef dist.lpt_pass *scratch = &self._pass_scratch
        cdef size_t cap = <size_t>self.capacity
        if scratch.slots != NULL:
            return 0
        scratch.slots = <int64_t *>malloc(cap * sizeof(int64_t))
        scratch.x = <double *>malloc(2 * cap * sizeof(double))
        scratch.slot_lp = <double *>malloc(cap * sizeof(double))
        scratch.slot_id = <double *>malloc(cap * sizeof(double))
        if scratch.slots == NULL or scratch.x == NULL or scratch.slot_lp == NULL or scratch.slot_id == NULL:
            free(scratch.slots)
            free(scratch.x)
            free(scratch.slot_lp)
            free(scratch.slot_id)
            scratch.slots = NULL
            scratch.x = scratch.slot_lp = scratch.slot_id = NULL
            raise MemoryError()
        return 0

    cdef bint _run_pass(self, params, double percentile, bint if_mature) except -1:
        """The distribution pass (lpt_distribution.h), no lock held on entry or
        exit: the active list copied in one hold, the distribution computed
        without the lock, published in holds of LPT_PUBLISH_SLOTS slots.  With
        ``if_mature``, only if some pool task has enough samples; whether it
        ran.  A ``percentile`` (not NaN) also computes the eviction threshold
        without the lock and stores it; NaN leaves it to the next locked pick."""
        cdef int64_t next_slot = 0
        cdef double threshold
        cdef bint invalidate = not (percentile == percentile)
        if self._passing:
            # Another thread's pass through this object is under way (its scratch
            # is this object's): that pass refreshes the distribution.
            return False
        self._passing = True
        try:
            if not self._begin_pass(params, if_mature):
                return False
            if self._pass_scratch.n == 0:
                return True
            while next_slot >= 0:
                next_slot = self._publish_pass(next_slot, invalidate)
            if not invalidate:
                self._busy += 1
                with nogil:
                    threshold = dist.lpt_pass_threshold(&self._seg, &self._pass_scratch, percentile)
                self._busy -= 1
                self._acquire(self.lock_timeout)
                smp.lpt_sampler_store_threshold_locked(&self._seg, percentile, threshold)
                self._release()
            return True
        finally:
            self._passing = False

    cdef bint _begin_pass(self, params, bint if_mature) except -1:
        """A pass's snapshot (one hold) and computation (no lock); False when
        ``if_mature`` and no pool task has enough samples."""
        cdef dist.lpt_distribution_params p
        cdef dist.lpt_pass *scratch = &self._pass_scratch
        cdef int64_t held
        if not PyTuple_Check(params) or PyTuple_GET_SIZE(params) != 5:
            raise TypeError("params must be a DistributionParams")
        p.early_progress_amplification = <object>PyTuple_GET_ITEM(params, 0)
        p.progress_smoothing = <object>PyTuple_GET_ITEM(params, 1)
        p.performance_bonus_weight = <object>PyTuple_GET_ITEM(params, 2)
        p.lp_score_temperature = <object>PyTuple_GET_ITEM(params, 3)
        p.z_score_amplification = <object>PyTuple_GET_ITEM(params, 4)
        self._pass_alloc()
        scratch.n = 0
        self._acquire(self.lock_timeout)
        try:
            if if_mature and not smp.lpt_any_mature_locked(&self._seg, NULL, 0):
                return False
            held = lk.lpt_monotonic_ns()
            self._busy += 1
            with nogil:
                dist.lpt_pass_snapshot_locked(&self._seg, scratch)
            self._busy -= 1
            self._note_pass_hold(held)
        finally:
            self._release()
        if scratch.n > 0:
            self._busy += 1
            with nogil:
                dist.lpt_pass_compute(&self._seg, &p, scratch)
            self._busy -= 1
        return True

    cdef inline void _note_pass_hold(self, int64_t since) noexcept:
        cdef int64_t held = lk.lpt_monotonic_ns() - since
        if held > self.longest_pass_hold_ns:
            self.longest_pass_hold_ns = held

    cdef int64_t _publish_pass(self, int64_t first_slot, bint invalidate_threshold) except -2:
        """One publishing hold of the pass ``_begin_pass`` computed: the next range's first slot, or -1."""
        cdef int64_t next_slot, held
        cdef int rc
        if self._pass_scratch.slots == NULL:
            raise RuntimeError("no pass was begun")
        if first_slot < 0 or first_slot >= self.capacity:
            raise ValueError(f"first_slot must be in [0, {self.capacity}), got {first_slot}")
        self._acquire(self.lock_timeout)
        held = lk.lpt_monotonic_ns()
        self._busy += 1
        with nogil:
            next_slot = dist.lpt_pass_publish_locked(&self._seg, &self._pass_scratch, first_slot,
                                                     invalidate_threshold)
        self._busy -= 1
        self._note_pass_hold(held)
        if next_slot < 0:
            self._release()
            self._passes_seen = seg.lpt_recomputations(&self._seg)
            return next_slot
        # Another range follows at once: a process asleep on the lock takes it first.
        self._busy -= 1
        with nogil:
            rc = seg.lpt_segment_unlock_handoff(&self._seg, PUBLISH_HANDOFF_NS)
        _check(rc, self)
        return next_slot

    def begin_pass(self, params):
        """The first steps of ``compute_lp_distribution``: copy the active list
        (one hold) and compute the distribution over the rows as read then
        (no lock), into this object's scratch; nothing is published yet.
        For tests and tools: not to be mixed with passes of other threads
        through this object."""
        self._begin_pass(params, False)

    def publish_pass(self, int64_t first_slot=0):
        """Publish the begun pass's lp_scores for one range of
        ``PUBLISH_SLOTS`` slots from ``first_slot`` (one hold): the next
        range's first slot, or -1 once the last one counted the pass."""
        return self._publish_pass(first_slot, True)

    def compute_lp_distribution(self, params):
        """Rewrite every active task's lp_score and its sampling weight: one C
        pass computed without the lock and published in short holds
        (lpt_distribution.h)."""
        self._run_pass(params, NAN, False)

    def refresh_distribution(self, params, const int64_t[::1] ids=None):
        """Run the pass iff some task of ``ids`` (None: of the pool) is tracked,
        active and has at least min_samples_for_lp completions; whether it ran."""
        cdef int mature
        if ids is None:
            return self._run_pass(params, NAN, True)
        self._acquire(self.lock_timeout)
        self._busy += 1
        with nogil:
            mature = smp.lpt_any_mature_locked(&self._seg, &ids[0] if ids.shape[0] else NULL,
                                               ids.shape[0])
        self._busy -= 1
        self._release()
        if mature:
            self._run_pass(params, NAN, False)
        return bool(mature)

    def scores(self, const int64_t[::1] ids not None):
        """score_task of each id as a float64 array (exploration_bonus when untracked)."""
        cdef cnp.npy_intp n = ids.shape[0]
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &n, cnp.NPY_FLOAT64, 0)
        cdef double *data = <double *>cnp.PyArray_DATA(out)
        if n == 0:
            return out
        self._acquire(self.lock_timeout)
        self._busy += 1
        with nogil:
            smp.lpt_scores_locked(&self._seg, &ids[0], n, data)
        self._busy -= 1
        self._release()
        return out

    def recommend_eviction(self, const int64_t[::1] ids not None, double min_presentations,
                           double percentile):
        """SPEC.md recommend_eviction over ``ids`` (current scores): the task id, or 0."""
        cdef int64_t n = ids.shape[0]
        cdef int64_t set_size = 1
        cdef int64_t best
        cdef double *scores
        cdef int64_t *id_set
        _check_percentile(percentile)
        if n <= 1:
            return 0
        while set_size < 2 * n:
            set_size *= 2
        scores = <double *>malloc(2 * n * sizeof(double))
        id_set = <int64_t *>malloc(set_size * sizeof(int64_t))
        try:
            if scores == NULL or id_set == NULL:
                raise MemoryError()
            self._acquire(self.lock_timeout)
            self._busy += 1
            with nogil:
                best = smp.lpt_recommend_eviction_locked(&self._seg, &ids[0], n, min_presentations,
                                                         percentile, scores, id_set, set_size)
            self._busy -= 1
            self._release()
        finally:
            free(scores)
            free(id_set)
        return best

    def sample(self, double uniform):
        """A task drawn with probability proportional to its score (sum-tree
        descent, O(log capacity)), ``uniform`` in [0, 1); 0 when the pool is empty."""
        cdef int64_t task_id
        _check_uniform(uniform)
        self._acquire(self.lock_timeout)
        task_id = smp.lpt_sample_locked(&self._seg, uniform)
        self._release()
        return task_id

    def choose_pool_task(self, double uniform, double min_presentations, double percentile,
                         bint refresh_threshold, refresh=None, BatchCounter batch=None):
        """Curriculum's pick for the next episode, in one lock hold: 0 while the
        pool has a free slot (create a task), ``-task_id`` after evicting
        ``pool_eviction_candidate``'s task (create one next; the eviction counts
        in ``batch``), else a task sampled by score (``uniform`` in [0, 1)), all
        O(log capacity).  A draw that needs no pass, threshold or eviction
        takes no lock (``lpt_choose_unlocked``, csrc/lpt_sampler.h).  The slot
        an eviction frees is held for this table's next ``claim`` (the new
        task): until then, or for 64 locked picks at the most, other processes'
        picks draw instead of creating a task into it.
        ``chosen_label_hash`` and ``chosen_slot`` then hold the evicted or
        sampled task's label hash and slot (0 and -1 for none).

        ``refresh`` (DistributionParams) first runs the pass if any pool task
        has enough samples, and if ``batch`` is given only while it is stale
        (then marked fresh); a pass another process ran since this table's
        last one also marks ``batch`` fresh, its events starting again.
        """
        return self._choose(uniform, min_presentations, percentile, refresh_threshold, refresh, batch)

    def bind_choose(self, double percentile, refresh=None, BatchCounter batch=None,
                    dict sampled=None, str threshold="per_batch"):
        """``choose_pool_task`` with everything but the draw and min_presentations bound:
        ``bind_choose(...)(uniform, min_presentations)`` (see Table.bind_choose)."""
        cdef _BoundChoose bound = _BoundChoose.__new__(_BoundChoose)
        _check_percentile(percentile)
        bound._table = self
        bound._percentile = percentile
        bound._refresh = refresh
        bound._batch = batch
        bound._sampled = sampled
        bound._threshold_rule = _threshold_rule(threshold)
        bound._threshold_epoch = -1
        return bound.choose

    cdef int64_t _choose(self, double uniform, double min_presentations, double percentile,
                         bint refresh_threshold, object refresh, BatchCounter batch) except? -1:
        cdef int64_t choice, slot
        cdef double label_hash
        cdef bint due
        cdef uint64_t passes
        _check_uniform(uniform)
        _check_percentile(percentile)
        if refresh is not None and batch is not None and self._seg.header != NULL:
            passes = seg.lpt_recomputations(&self._seg)
            if passes != self._passes_seen:
                # Another process recomputed the session's distribution: this
                # process's batch starts again from that pass.
                self._passes_seen = passes
                batch.fresh_epoch = batch.epoch
                batch.events = 0
        due = refresh is not None and (batch is None or batch.fresh_epoch != batch.epoch)
        if due and self._run_pass(refresh, NAN if refresh_threshold else percentile, True) \
                and batch is not None:
            # Before the pick, not in its hold: the pass holds the lock only
            # briefly (lpt_distribution.h), and computes the eviction threshold
            # unless the pick recomputes it anyway.
            batch.fresh_epoch = batch.epoch
        if not refresh_threshold and not self._replacing and self._busy == 0 \
                and self._seg.header != NULL:
            # The common case, a draw that changes nothing, needs no lock: the
            # processes of a session then only queue for it to write.
            choice = smp.lpt_choose_unlocked(&self._seg, uniform, min_presentations, percentile,
                                             &label_hash, &slot)
            if choice > 0:
                self.chosen_label_hash = <int64_t>label_hash
                self.chosen_slot = slot
                return choice
        self._acquire(self.lock_timeout)
        try:
            self._end_replacement_locked()  # the last eviction's new task never came
            choice = smp.lpt_choose_locked(&self._seg, uniform, min_presentations, percentile,
                                           refresh_threshold, True, &label_hash, &slot)
            self._replacing = choice < 0
        finally:
            self._release()
        self.chosen_label_hash = <int64_t>label_hash
        self.chosen_slot = slot
        if batch is not None and choice < 0:
            batch.count()
        return choice

    def pool_eviction_candidate(self, double min_presentations, double percentile,
                                bint refresh_threshold):
        """The pool task recommend_eviction over the active list would pick, or 0,
        in O(log capacity) (the threshold as in ``lpt_pool_candidate_locked``,
        csrc/lpt_sampler.h)."""
        cdef int64_t task_id
        _check_percentile(percentile)
        self._acquire(self.lock_timeout)
        task_id = smp.lpt_pool_candidate_locked(&self._seg, min_presentations, percentile,
                                                refresh_threshold)
        self._release()
        return task_id

    def eviction_candidates(self, double min_presentations, double percentile, int64_t k):
        """Up to ``k`` pool tasks recommend_eviction would pick, best first:
        ``(slots, task_ids)`` int64 arrays, O(active)."""
        cdef cnp.npy_intp size = max(k, 0)
        cdef cnp.ndarray slots = cnp.PyArray_EMPTY(1, &size, cnp.NPY_INT64, 0)
        cdef cnp.ndarray task_ids = cnp.PyArray_EMPTY(1, &size, cnp.NPY_INT64, 0)
        cdef double *scratch
        cdef int64_t found
        _check_percentile(percentile)
        scratch = <double *>malloc(2 * self.capacity * sizeof(double))
        if scratch == NULL:
            raise MemoryError()
        try:
            self._acquire(self.lock_timeout)
            self._busy += 1
            with nogil:
                found = smp.lpt_eviction_candidates_locked(
                    &self._seg, min_presentations, percentile, size,
                    <int64_t *>cnp.PyArray_DATA(slots), <int64_t *>cnp.PyArray_DATA(task_ids), scratch)
            self._busy -= 1
            self._release()
        finally:
            free(scratch)
        return slots[:found], task_ids[:found]

    # -- benchmarks -----------------------------------------------------------
    def lock_bench(self, int64_t n):
        """Mean nanoseconds of one uncontended lock/unlock pair of this segment's
        lock, timed in C over ``n`` pairs."""
        cdef double ns = 0.0
        cdef int rc
        if self._seg.header == NULL:
            raise ValueError("the table is closed")
        self._busy += 1
        with nogil:
            rc = seg.lpt_segment_lock_bench(&self._seg, n, &ns)
        self._busy -= 1
        _check(rc, self)
        return ns


@cython.final
@cython.auto_pickle(False)
cdef class _BoundUpdate:
    """What ``SegmentTable.bind_update`` binds; its ``update`` is the callable."""

    cdef SegmentTable _table
    cdef upd.lpt_update_params _params
    cdef RunningTotals _totals
    cdef BatchCounter _batch

    def update(self, task_id, score):
        """``update_tracked(task_id, score, <the bound rest>)``: the slot, or -1.
        Takes the caller's values as they come and refuses bad ones as
        lptrack._table's check_task_id and check_finite do (the same errors)."""
        return self._table._update_tracked(_task_id_arg(task_id), _score_arg(score),
                                           &self._params, self._totals, self._batch)


@cython.final
@cython.auto_pickle(False)
cdef class _BoundChoose:
    """What ``SegmentTable.bind_choose`` binds; its ``choose`` is the callable."""

    cdef SegmentTable _table
    cdef double _percentile
    cdef object _refresh
    cdef BatchCounter _batch
    cdef dict _sampled
    cdef int _threshold_rule
    cdef long long _threshold_epoch

    def choose(self, double uniform, double min_presentations):
        """``choose_pool_task(uniform, min_presentations, <the bound rest>)``, the
        threshold recomputed by the bound rule and a sampled task counted."""
        cdef bint refresh_threshold = self._threshold_rule == _THRESHOLD_ALWAYS
        cdef long long epoch
        cdef int64_t choice
        if self._threshold_rule == _THRESHOLD_PER_BATCH:
            epoch = self._batch.epoch if self._batch is not None else 0
            refresh_threshold = epoch != self._threshold_epoch
            self._threshold_epoch = epoch
        choice = self._table._choose(uniform, min_presentations, self._percentile, refresh_threshold,
                                     self._refresh, self._batch)
        if choice > 0 and self._sampled is not None:
            key = self._table.chosen_label_hash
            self._sampled[key] = self._sampled.get(key, 0) + 1
        return choice


# -- the outcome journal (csrc/lpt_journal.h) --------------------------------------
cimport lptrack.lpt_journal as jr

#: Bounds of a journal's capacity (entries; a power of two).
JOURNAL_MIN_CAPACITY = jr.LPT_JOURNAL_MIN_CAPACITY
JOURNAL_MAX_CAPACITY = jr.LPT_JOURNAL_MAX_CAPACITY


def journal_bytes(int64_t capacity):
    """Size in bytes of an outcome journal of ``capacity`` entries (a power of two)."""
    cdef size_t size = jr.lpt_journal_bytes(capacity)
    if size == 0:
        raise ValueError(
            f"journal capacity must be a power of two in [{jr.LPT_JOURNAL_MIN_CAPACITY}, "
            f"{jr.LPT_JOURNAL_MAX_CAPACITY}], got {capacity}")
    return size


@cython.final
@cython.auto_pickle(False)
cdef class JournalRing:
    """A bound outcome journal image: appends from any process, reads by its one reader.

    The owner of the memory (lptrack._journal) keeps the image alive and calls
    ``_unbind`` before releasing it; an unbound ring ignores appends.
    """

    cdef jr.lpt_journal _journal
    cdef unsigned char[::1] _image

    def _create(self, image, int64_t capacity):
        """Initialise a new journal in the zero-filled ``image`` (the magic last)."""
        cdef unsigned char[::1] view = image
        _check(jr.lpt_journal_init(&view[0] if view.shape[0] else NULL, view.shape[0], capacity,
                                   lk.lpt_self_pid(), &self._journal), None,
               f"journal capacity {capacity}, image of {view.shape[0]} bytes")
        self._image = view

    def _attach(self, image):
        """Bind an existing journal; False while its creator has not finished.
        SegmentError for a buffer that is not a journal, LayoutMismatchError for
        another journal layout."""
        cdef unsigned char[::1] view = image
        if view.shape[0] == 0:
            return False
        rc = jr.lpt_journal_attach(&view[0], view.shape[0], &self._journal)
        if rc == st.LPT_ERR_NOT_READY:
            return False
        _check(rc, None, "not an lptrack outcome journal of this version")
        self._image = view
        return True

    def _unbind(self):
        """Forget the image (idempotent); appends are ignored from now on."""
        self._journal.header = NULL
        self._image = None

    @property
    def bound(self):
        return self._journal.header != NULL

    @property
    def capacity(self):
        return self._journal.header.capacity if self._journal.header != NULL else 0

    @property
    def creator_pid(self):
        return self._journal.header.creator_pid if self._journal.header != NULL else 0

    @property
    def appended(self):
        """Outcomes appended since creation (tickets claimed)."""
        return self._journal.header.head if self._journal.header != NULL else 0

    @property
    def read_position(self):
        """The next ticket the reader takes."""
        return self._journal.header.tail if self._journal.header != NULL else 0

    @property
    def lost(self):
        """Outcomes the reader found overwritten or never published, since creation."""
        return self._journal.header.lost if self._journal.header != NULL else 0

    @property
    def deferred(self):
        """Whether the session's journaled updates go to the journal only (the
        reader applies them), not to the pool at once."""
        return self._journal.header != NULL and jr.lpt_journal_deferred(&self._journal)

    @deferred.setter
    def deferred(self, bint value):
        if self._journal.header == NULL:
            raise ValueError("the journal is closed")
        jr.lpt_journal_set_deferred(&self._journal, value)

    @property
    def pending(self):
        """Outcomes appended and not yet read."""
        return jr.lpt_journal_pending(&self._journal) if self._journal.header != NULL else 0

    cdef inline void _append(self, int64_t task_id, double score) noexcept:
        if self._journal.header != NULL:
            jr.lpt_journal_append(&self._journal, task_id, score)

    def append(self, int64_t task_id, double score):
        """Record one outcome (no check: the pool update before it checked them)."""
        self._append(task_id, score)

    def read(self, int64_t[::1] task_ids not None, double[::1] scores not None, double wait):
        """The reader: fill the arrays with up to their length of outcomes, in order;
        ``(read, lost)``.  An entry claimed but unpublished is awaited ``wait``
        seconds, then counted lost (its producer died or stalled)."""
        cdef int64_t n_read = 0, n_lost = 0
        cdef int64_t size = min(task_ids.shape[0], scores.shape[0])
        cdef int64_t wait_ns = <int64_t>(wait * 1e9) if wait > 0 else 0
        if self._journal.header == NULL:
            raise ValueError("the journal is closed")
        with nogil:
            jr.lpt_journal_read(&self._journal, &task_ids[0] if size else NULL,
                                &scores[0] if size else NULL, size, wait_ns, &n_read, &n_lost)
        return n_read, n_lost

    def journaling(self, update):
        """``update(task_id, score) -> slot`` that also appends each applied update
        (slot >= 0) here: the pool's bound update of a journaled session.  While
        the journal is ``deferred`` it only checks and appends the outcome (and
        returns 0): the reader applies it to the pool later."""
        cdef _JournaledUpdate bound = _JournaledUpdate.__new__(_JournaledUpdate)
        bound._update = update
        bound._ring = self
        return bound.update


@cython.final
@cython.auto_pickle(False)
cdef class _JournaledUpdate:
    """What ``JournalRing.journaling`` binds; its ``update`` is the callable."""

    cdef object _update
    cdef JournalRing _ring

    def update(self, task_id, score):
        cdef JournalRing ring = self._ring
        cdef long long tid
        if ring._journal.header != NULL and jr.lpt_journal_deferred(&ring._journal):
            # Refused as the pool's update would refuse them (_BoundUpdate.update's checks).
            tid = _task_id_arg(task_id)
            ring._append(tid, _score_arg(score))
            return 0
        slot = self._update(task_id, score)
        if slot >= 0:  # the update checked both values
            ring._append(task_id, score)
        return slot
