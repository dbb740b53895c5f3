# Mirrors csrc/lpt_update.h: keep in sync.
from libc.stdint cimport int64_t

cimport lptrack.lpt_segment as seg

cdef extern from "lpt_update.h" nogil:
    ctypedef struct lpt_update_params:
        int64_t task_id
        double score
        double ema_alpha
        double success_threshold
        double lp_score
        double create_threshold
        double creation_time
        double seed
        double generator_type
        int bidirectional
        double fast_timescale
        double slow_timescale
        int use_baseline_normalization

    void lpt_row_update(double *row, const lpt_update_params *p)
    int64_t lpt_update_locked(seg.lpt_segment *s, const lpt_update_params *p)
