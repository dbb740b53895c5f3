/* lpt_update.c: see lpt_update.h. */
#include "lpt_update.h"

#include <math.h>

#include "lpt_crash.h"

/* Python's max(a, b) and min(a, b): the first argument unless the second is
 * strictly greater (smaller), which also fixes which signed zero comes out. */
static inline double py_max(double a, double b) { return b > a ? b : a; }
static inline double py_min(double a, double b) { return b < a ? b : a; }

static void bidirectional_update(double *row, const lpt_update_params *p)
{
    const double s = p->score;
    const double t = p->fast_timescale;
    const double u = p->slow_timescale;
    double x;
    if (p->use_baseline_normalization) {
        if (row[LPT_COL_RANDOM_BASELINE] == 0.0)
            row[LPT_COL_RANDOM_BASELINE] = py_min(s, 0.75);
        const double baseline = row[LPT_COL_RANDOM_BASELINE];
        x = py_max(s - baseline, 0.0) / py_max(1.0 - baseline, 1e-10);
    } else {
        x = s;
    }
    /* "== 0.0" re-initialisation is part of the contract (SPEC.md). */
    if (row[LPT_COL_P_FAST] == 0.0 && row[LPT_COL_P_SLOW] == 0.0) {
        row[LPT_COL_P_FAST] = x;
        row[LPT_COL_P_SLOW] = x;
        row[LPT_COL_P_TRUE] = s;
    } else {
        row[LPT_COL_P_FAST] = x * t + row[LPT_COL_P_FAST] * (1.0 - t);
        row[LPT_COL_P_SLOW] = x * u + row[LPT_COL_P_SLOW] * (1.0 - u);
        row[LPT_COL_P_TRUE] = s * t + row[LPT_COL_P_TRUE] * (1.0 - t);
    }
}

void lpt_row_update(double *row, const lpt_update_params *p)
{
    const double s = p->score;
    const double a = p->ema_alpha;
    const double n = row[LPT_COL_COMPLETION_COUNT];
    row[LPT_COL_COMPLETION_COUNT] = n + 1.0;
    row[LPT_COL_TOTAL_SCORE] = row[LPT_COL_TOTAL_SCORE] + s;
    row[LPT_COL_LAST_SCORE] = s;
    if (n == 0.0) {
        row[LPT_COL_REWARD_EMA] = s;
        row[LPT_COL_EMA_SQUARED] = s * s;
    } else {
        row[LPT_COL_REWARD_EMA] = (1.0 - a) * row[LPT_COL_REWARD_EMA] + a * s;
        row[LPT_COL_EMA_SQUARED] = (1.0 - a) * row[LPT_COL_EMA_SQUARED] + a * (s * s);
    }
    if (!isnan(p->success_threshold))
        row[LPT_COL_SUCCESS_THRESHOLD] = p->success_threshold;
    const double hit = s >= row[LPT_COL_SUCCESS_THRESHOLD] ? 1.0 : 0.0;
    row[LPT_COL_SUCCESS_RATE_EMA] =
        n == 0.0 ? hit : (1.0 - a) * row[LPT_COL_SUCCESS_RATE_EMA] + a * hit;
    if (!isnan(p->lp_score))
        row[LPT_COL_LP_SCORE] = p->lp_score;
    if (p->bidirectional)
        bidirectional_update(row, p);
}

int64_t lpt_update_locked(lpt_segment *seg, const lpt_update_params *p)
{
    int64_t slot = lpt_find_locked(seg, p->task_id);
    if (slot < 0) {
        const lpt_new_task task = {
            .task_id = p->task_id,
            .creation_time = p->creation_time,
            .success_threshold = p->create_threshold,
            .seed = p->seed,
            .generator_type = p->generator_type,
        };
        /* One crash-recovery record for claim and update: a crash rolls
         * both back, never leaves a tracked task without its score. */
        slot = lpt_claim_open_locked(seg, &task, LPT_OP_UPDATE);
        if (slot < 0)
            return -1;
    } else {
        lpt_undo_begin_locked(seg, slot, LPT_OP_UPDATE);
    }
    lpt_row_update(lpt_row(seg, slot), p);
    LPT_CRASH_POINT();
    lpt_bump_locked(&seg->undo->n_updates);
    lpt_undo_end_locked(seg);
    return slot;
}
