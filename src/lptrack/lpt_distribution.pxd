# Mirrors csrc/lpt_distribution.h: keep in sync.
from libc.stdint cimport int64_t

cimport lptrack.lpt_segment as seg

cdef extern from "lpt_distribution.h" nogil:
    ctypedef struct lpt_distribution_params:
        double early_progress_amplification
        double progress_smoothing
        double performance_bonus_weight
        double lp_score_temperature
        double z_score_amplification

    enum:
        LPT_PUBLISH_SLOTS

    ctypedef struct lpt_pass:
        int64_t n
        int64_t *slots
        double *x
        double *slot_lp
        double *slot_id

    void lpt_pass_snapshot_locked(const seg.lpt_segment *s, lpt_pass *p)
    void lpt_pass_compute(const seg.lpt_segment *s, const lpt_distribution_params *params, lpt_pass *p)
    int64_t lpt_pass_publish_locked(seg.lpt_segment *s, const lpt_pass *p, int64_t first_slot,
                                    int invalidate_threshold)
    double lpt_pass_threshold(const seg.lpt_segment *s, lpt_pass *p, double percentile)
