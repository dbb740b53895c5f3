/* lpt_distribution.h: the learning-progress distribution pass (SPEC.md,
 * Bidirectional score_task): one pass over the active list, under one lock
 * hold, writing every task's lp_score and rebuilding the sampler.
 *
 * Keep in sync with src/lptrack/lpt_distribution.pxd.
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

/* Rewrite lp_score of every active row, then rebuild the sampler. */
void lpt_distribution_locked(lpt_segment *seg, const lpt_distribution_params *p);

#endif /* LPT_DISTRIBUTION_H */
