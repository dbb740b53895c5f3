/* lpt_distribution.h: the learning-progress distribution pass (SPEC.md,
 * Bidirectional score_task), computed outside the segment lock and published
 * in short lock holds.
 *
 * Keep in sync with src/lptrack/lpt_distribution.pxd.
 *
 * A pass is, for the calling process:
 *   1. lpt_pass_snapshot_locked: copy the active list (one short hold: a
 *      memcpy of 8 bytes a task);
 *   2. lpt_pass_compute: without the lock, read each listed row (under its
 *      sequence number, lpt_read_row's rule) and compute the distribution
 *      over them into the process's own scratch (struct lpt_pass);
 *   3. lpt_pass_publish_locked: store the lp_scores and sampling weights in
 *      slot ranges of LPT_PUBLISH_SLOTS, one short hold per range (the
 *      caller releases the lock in between), skipping slots whose task
 *      changed since it was read; the last range counts the pass.
 * So no hold lasts longer than one range, whatever the pool's size, and the
 * other processes keep sampling and updating while a pass runs.  The
 * staleness this adds (README, "Staleness"): each row enters the pass as it
 * was when read, so a pass reflects every event made before it started and
 * possibly some made during it; while the ranges are being published the
 * pool is sampled from a mix of the previous and the new lp_scores.  One
 * process alone (no other writer) gets exactly what one locked pass gives.
 *
 * Written operand for operand as SPEC.md gives the formulas (the build uses
 * -ffp-contract=off); sums run left to right in active-list order, like
 * lptrack._lpmath.ordered_sum in the pure engine.
 */
#ifndef LPT_DISTRIBUTION_H
#define LPT_DISTRIBUTION_H

#include "lpt_segment.h"

typedef struct lpt_distribution_params {
    double early_progress_amplification; /* theta: reweighting iff |theta - 0.5| > 1e-6 */
    double progress_smoothing;
    double performance_bonus_weight;
    double lp_score_temperature;
    double z_score_amplification;
} lpt_distribution_params;

/* Slots a publishing hold covers: about 50-100 us of stores at 100k tasks,
 * whose rows are out of cache. */
#define LPT_PUBLISH_SLOTS 4096

/* One process's pass in progress: arrays of the segment's capacity, owned by
 * the caller (never in the segment: passes of several processes may run at
 * once). */
typedef struct lpt_pass {
    int64_t n;         /* tasks listed by the snapshot */
    int64_t *slots;    /* [capacity] their slots, in active-list order */
    double *x;         /* [2 * capacity] their values, then the threshold's selection */
    double *slot_lp;   /* [capacity] the new lp_score by slot */
    double *slot_id;   /* [capacity] the task id read by slot, 0.0 for none */
} lpt_pass;

/* Step 1 (lock held): list the active slots. */
void lpt_pass_snapshot_locked(const lpt_segment *seg, lpt_pass *pass);

/* Step 2 (no lock): read the listed rows and compute the distribution. */
void lpt_pass_compute(const lpt_segment *seg, const lpt_distribution_params *p, lpt_pass *pass);

/* Step 3 (lock held): publish slots [first_slot, first_slot + LPT_PUBLISH_SLOTS)
 * (clamped to the capacity); returns the next range's first slot, or -1 after
 * the last range, which counts the pass (n_recomputations) and, with
 * `invalidate_threshold`, marks the eviction threshold for recomputation by
 * the next locked pick (else it stays as it was until the caller stores the
 * one of lpt_pass_threshold). */
int64_t lpt_pass_publish_locked(lpt_segment *seg, const lpt_pass *pass, int64_t first_slot,
                                int invalidate_threshold);

/* Step 4 (no lock): the eviction threshold (lpt_sampler.h) at `percentile` of
 * the published weights of the listed slots, O(n), for
 * lpt_sampler_store_threshold_locked. */
double lpt_pass_threshold(const lpt_segment *seg, lpt_pass *pass, double percentile);

#endif /* LPT_DISTRIBUTION_H */
