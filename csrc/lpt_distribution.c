/* lpt_distribution.c: see lpt_distribution.h. */
#include "lpt_distribution.h"

#include <math.h>
#include <string.h>

#include "lpt_sampler.h"

/* Tries at a row's consistent copy before the pass takes what it read: a row
 * stays mid-write for the ~100 ns of an update, or until recovery if its
 * writer died (its values are finite either way: old, new, or a mix of the
 * two for one task). */
#define PASS_READ_ATTEMPTS 64

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

void lpt_pass_snapshot_locked(const lpt_segment *seg, lpt_pass *pass)
{
    const int64_t n = (int64_t)atomic_load_explicit(&seg->header->n_active, memory_order_relaxed);
    memcpy(pass->slots, seg->active, (size_t)n * sizeof(int64_t));
    pass->n = n;
}

/* What the pass reads of a row. */
typedef struct pass_row {
    double task_id, fast, slow, truth;
} pass_row;

static void read_pass_row(const lpt_segment *seg, int64_t slot, pass_row *out)
{
    _Atomic uint64_t *seq = &seg->row_seq[slot];
    const double *row = lpt_row(seg, slot);
    for (int attempt = 0;; attempt++) {
        const uint64_t before = atomic_load_explicit(seq, memory_order_acquire);
        out->task_id = row[LPT_COL_TASK_ID];
        out->fast = row[LPT_COL_P_FAST];
        out->slow = row[LPT_COL_P_SLOW];
        out->truth = row[LPT_COL_P_TRUE];
        atomic_thread_fence(memory_order_acquire);
        if (((before & 1) == 0 && atomic_load_explicit(seq, memory_order_relaxed) == before)
            || attempt >= PASS_READ_ATTEMPTS)
            return;
    }
}

void lpt_pass_compute(const lpt_segment *seg, const lpt_distribution_params *p, lpt_pass *pass)
{
    const int64_t listed = pass->n;
    int64_t *slots = pass->slots;
    double *x = pass->x;
    memset(pass->slot_id, 0, (size_t)seg->capacity * sizeof(double));
    const double theta = p->early_progress_amplification;
    const int reweighting = fabs(theta - 0.5) > 1e-6;
    double sum = 0.0;
    int64_t n = 0; /* the listed slots that still hold a task, compacted to the front */
    for (int64_t i = 0; i < listed; i++) {
        if (i + LPT_ROW_PREFETCH < listed)
            __builtin_prefetch(lpt_row(seg, slots[i + LPT_ROW_PREFETCH]) + LPT_COL_P_FAST);
        const int64_t slot = slots[i];
        pass_row row;
        read_pass_row(seg, slot, &row);
        if (row.task_id == 0.0)
            continue; /* released since the snapshot */
        const double lp = reweighting ? fabs(reweight(row.fast, theta) - reweight(row.slow, theta))
                                      : fabs(row.fast - row.slow);
        double xi = lp + p->progress_smoothing;
        if (p->performance_bonus_weight > 0)
            xi = xi + row.truth * p->performance_bonus_weight;
        x[n] = xi;
        slots[n] = slot;
        pass->slot_id[slot] = row.task_id;
        n++;
        sum += xi;
    }
    pass->n = n;
    if (n == 0)
        return;
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
        pass->slot_lp[slots[i]] = total > 0 ? x[i] / total : 1.0 / (double)n;
}

int64_t lpt_pass_publish_locked(lpt_segment *seg, const lpt_pass *pass, int64_t first_slot,
                                int invalidate_threshold)
{
    int64_t end = first_slot + LPT_PUBLISH_SLOTS;
    if (end > seg->capacity)
        end = seg->capacity;
    lpt_sampler_store_lp_scores_locked(seg, pass->slot_lp, pass->slot_id, first_slot, end);
    if (end < seg->capacity)
        return end;
    if (invalidate_threshold)
        seg->header->evict_threshold = NAN;
    lpt_bump_locked(&seg->header->n_recomputations);
    return -1;
}

double lpt_pass_threshold(const lpt_segment *seg, lpt_pass *pass, double percentile)
{
    for (int64_t i = 0; i < pass->n; i++)
        pass->x[i] = seg->weights[pass->slots[i]];
    return lpt_percentile(pass->x, pass->n, percentile);
}
