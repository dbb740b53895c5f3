# Mirrors csrc/lpt_lock.h: keep in sync.
from libc.stdint cimport int64_t

cdef extern from "lpt_lock.h" nogil:
    ctypedef union lpt_lock:
        pass

    int lpt_lock_init(lpt_lock *lock)
    int lpt_lock_try(lpt_lock *lock, int *owner_died)
    int lpt_lock_wait(lpt_lock *lock, int64_t timeout_ns, int *owner_died)
    int lpt_lock_mark_consistent(lpt_lock *lock)
    int lpt_lock_release(lpt_lock *lock)
    int lpt_lock_looks_held(const lpt_lock *lock)
    int lpt_lock_has_sleepers(const lpt_lock *lock)
    int64_t lpt_self_pid()
    int64_t lpt_monotonic_ns()
