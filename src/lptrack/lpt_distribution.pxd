# Mirrors csrc/lpt_distribution.h: keep in sync.
cimport lptrack.lpt_segment as seg

cdef extern from "lpt_distribution.h" nogil:
    ctypedef struct lpt_distribution_params:
        double early_progress_amplification
        double progress_smoothing
        double performance_bonus_weight
        double lp_score_temperature
        double z_score_amplification

    void lpt_distribution_locked(seg.lpt_segment *s, const lpt_distribution_params *p)
