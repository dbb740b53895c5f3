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
    /* lp_score is the pass's scratch column: x lives there between steps. */
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double *row = lpt_row(seg, active[i]);
        const double fast = row[LPT_COL_P_FAST], slow = row[LPT_COL_P_SLOW];
        const double lp = reweighting ? fabs(reweight(fast, theta) - reweight(slow, theta))
                                      : fabs(fast - slow);
        double x = lp + p->progress_smoothing;
        if (p->performance_bonus_weight > 0)
            x = x + row[LPT_COL_P_TRUE] * p->performance_bonus_weight;
        row[LPT_COL_LP_SCORE] = x;
        sum += x;
    }
    double mean = 0.0, std = 0.0, scale = 0.0;
    int z_score = 0;
    if (p->lp_score_temperature == 0) {
        mean = sum / (double)n;
        double squares = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const double deviation = lpt_row(seg, active[i])[LPT_COL_LP_SCORE] - mean;
            squares += deviation * deviation;
        }
        std = sqrt(squares / (double)n);
        z_score = std > 1e-10;
    } else if (p->lp_score_temperature > 0) {
        scale = p->lp_score_temperature;
    }
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double *row = lpt_row(seg, active[i]);
        double x = row[LPT_COL_LP_SCORE];
        if (z_score)
            x = (x - mean) / std * p->z_score_amplification;
        else if (scale > 0)
            x = x / scale;
        x = x < -500.0 ? -500.0 : (x > 500.0 ? 500.0 : x);
        x = 1.0 / (1.0 + exp(-x));
        row[LPT_COL_LP_SCORE] = x;
        total += x;
    }
    for (int64_t i = 0; i < n; i++) {
        double *row = lpt_row(seg, active[i]);
        row[LPT_COL_LP_SCORE] = total > 0 ? row[LPT_COL_LP_SCORE] / total : 1.0 / (double)n;
    }
    lpt_bump_locked(&seg->header->n_recomputations);
    lpt_sampler_rebuild_locked(seg);
}
