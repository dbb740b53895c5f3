/* lpt_distribution.c: see lpt_distribution.h. */
#include "lpt_distribution.h"

#include <math.h>

#include "lpt_sampler.h"

/* R(p) = p*(1-θ) / (p + θ*(1-2p)) on p clipped to [0, 1]; 0.0 or 1.0 when
 * the denominator is (almost) zero. */
static double reweight(double p, double theta)
{
    p = p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
    const double numerator = p * (1.0 - theta);
    const double denominator = p + theta * (1.0 - 2.0 * p);
    if (fabs(denominator) < 1e-10)
        return p < 0.5 ? 0.0 : 1.0;
    return numerator / denominator;
}


void lpt_distribution_locked(lpt_segment *seg, const lpt_distribution_params *p)
{
    const int64_t n = (int64_t)atomic_load_explicit(&seg->header->n_active, memory_order_relaxed);
    const int64_t *active = seg->active;
    if (n == 0)
        return;
    const double theta = p->early_progress_amplification;
    const int reweighting = fabs(theta - 0.5) > 1e-6;
    /* x lives in the sampler's scratch between steps, so the rows are read
     * once and written once: a row's lines are often in another process's
     * cache, and each visit to them is a transfer. */
    double *x = seg->scratch;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (i + LPT_ROW_PREFETCH < n) {
            /* Also the line the write-back stores lp_score into: at 100k tasks
             * the rows outgrow the caches, and fetching both lines of a row
             * together took the pass from 2.87 to 2.63 ms (median of 15). */
            const double *ahead = lpt_row(seg, active[i + LPT_ROW_PREFETCH]);
            __builtin_prefetch(ahead + LPT_COL_P_FAST);
            __builtin_prefetch(ahead + LPT_COL_LP_SCORE, 1);
        }
        const double *row = lpt_row(seg, active[i]);
        const double fast = row[LPT_COL_P_FAST], slow = row[LPT_COL_P_SLOW];
        const double lp = reweighting ? fabs(reweight(fast, theta) - reweight(slow, theta))
                                      : fabs(fast - slow);
        double xi = lp + p->progress_smoothing;
        if (p->performance_bonus_weight > 0)
            xi = xi + row[LPT_COL_P_TRUE] * p->performance_bonus_weight;
        x[i] = xi;
        sum += xi;
    }
    double mean = 0.0, std = 0.0, scale = 0.0;
    int z_score = 0;
    if (p->lp_score_temperature == 0) {
        mean = sum / (double)n;
        double squares = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const double deviation = x[i] - mean;
            squares += deviation * deviation;
        }
        std = sqrt(squares / (double)n);
        z_score = std > 1e-10;
    } else if (p->lp_score_temperature > 0) {
        scale = p->lp_score_temperature;
    }
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double xi = x[i];
        if (z_score)
            xi = (xi - mean) / std * p->z_score_amplification;
        else if (scale > 0)
            xi = xi / scale;
        xi = xi < -500.0 ? -500.0 : (xi > 500.0 ? 500.0 : xi);
        xi = 1.0 / (1.0 + exp(-xi));
        x[i] = xi;
        total += xi;
    }
    for (int64_t i = 0; i < n; i++)
        x[i] = total > 0 ? x[i] / total : 1.0 / (double)n;
    lpt_bump_locked(&seg->header->n_recomputations);
    lpt_sampler_store_lp_scores_locked(seg, x);
}
