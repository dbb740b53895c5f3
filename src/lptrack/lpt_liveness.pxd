# Mirrors csrc/lpt_liveness.h: keep in sync.
from libc.stdint cimport int64_t, uint64_t

cimport lptrack.lpt_segment as seg

cdef extern from "lpt_liveness.h" nogil:
    uint64_t lpt_proc_token(int64_t pid)
    int64_t lpt_token_pid(uint64_t token)
    int lpt_token_alive(uint64_t token)
    int lpt_procs_register(seg.lpt_segment *s, uint64_t token)
    void lpt_procs_unregister(seg.lpt_segment *s, uint64_t token)
    int64_t lpt_procs_live(seg.lpt_segment *s, int64_t *pids, int64_t max, int prune)
    int lpt_segment_retired(const seg.lpt_segment *s)
    int lpt_procs_overflowed(const seg.lpt_segment *s)
    int lpt_segment_retire(seg.lpt_segment *s)
