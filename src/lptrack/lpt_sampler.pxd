# Mirrors csrc/lpt_sampler.h: keep in sync.
from libc.stdint cimport int64_t, uint32_t, uint64_t

cimport lptrack.lpt_segment as seg

cdef extern from "lpt_sampler.h" nogil:
    enum lpt_score_mode:
        LPT_SCORE_BIDIRECTIONAL
        LPT_SCORE_BASIC

    uint64_t lpt_sampler_region_bytes(uint64_t capacity)
    int lpt_sampler_configure_locked(seg.lpt_segment *s, uint32_t mode, double exploration_bonus,
                                     double min_samples_for_lp)
    void lpt_sampler_rebuild_locked(seg.lpt_segment *s)
    void lpt_sampler_store_lp_scores_locked(seg.lpt_segment *s, const double *slot_lp,
                                            const double *slot_id, int64_t first, int64_t end)
    double lpt_percentile(double *v, int64_t n, double percentile)
    void lpt_sampler_store_threshold_locked(seg.lpt_segment *s, double percentile, double threshold)
    void lpt_sampler_refresh_locked(seg.lpt_segment *s, int64_t slot)
    int64_t lpt_scores_locked(const seg.lpt_segment *s, const int64_t *ids, int64_t n, double *out)
    int lpt_any_mature_locked(const seg.lpt_segment *s, const int64_t *ids, int64_t n)
    int64_t lpt_sample_locked(const seg.lpt_segment *s, double uniform)
    int64_t lpt_recommend_eviction_locked(const seg.lpt_segment *s, const int64_t *ids, int64_t n,
                                          double min_presentations, double percentile,
                                          double *scores, int64_t *set, int64_t set_size)
    int64_t lpt_eviction_candidates_locked(const seg.lpt_segment *s, double min_presentations,
                                           double percentile, int64_t k, int64_t *slots,
                                           int64_t *ids, double *scratch)

    int64_t lpt_sampler_tree_leaves(uint64_t capacity)
    int64_t lpt_pool_candidate_locked(seg.lpt_segment *s, double min_presentations,
                                      double percentile, int refresh_threshold)
    int64_t lpt_choose_locked(seg.lpt_segment *s, double uniform, double min_presentations,
                              double percentile, int refresh_threshold, int replace,
                              double *label_hash, int64_t *slot_out)
    void lpt_replacement_end_locked(seg.lpt_segment *s)
    int64_t lpt_choose_unlocked(const seg.lpt_segment *s, double uniform, double min_presentations,
                                double percentile, double *label_hash, int64_t *slot_out)
    void lpt_sampler_moved_locked(seg.lpt_segment *s, int64_t slot)
