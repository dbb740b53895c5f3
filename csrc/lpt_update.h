/* lpt_update.h: the per-row score update (SPEC.md,
 * update_task_performance_with_bidirectional_emas and update_task_performance).
 *
 * Keep in sync with src/lptrack/lpt_update.pxd.
 *
 * Formulas are written exactly as SPEC.md gives them, operand for operand:
 * the build uses -ffp-contract=off and the golden traces compare to 1e-12
 * against the original's Python arithmetic.
 */
#ifndef LPT_UPDATE_H
#define LPT_UPDATE_H

#include <stdint.h>

#include "lpt_segment.h"

typedef struct lpt_update_params {
    int64_t task_id;
    double score;             /* s */
    double ema_alpha;         /* a */
    double success_threshold; /* NaN: use (and keep) the row's */
    double lp_score;          /* NaN: leave lp_score alone */
    /* an untracked task is first claimed with these */
    double create_threshold;
    double creation_time;
    double seed;
    double generator_type;
    /* the bidirectional part (p_fast, p_slow, p_true, random_baseline) */
    int bidirectional;
    double fast_timescale; /* t = config.ema_timescale */
    double slow_timescale; /* u = t * config.slow_timescale_factor */
    int use_baseline_normalization;
} lpt_update_params;

/* Apply one score to one row (no lock, no index: the kernel alone). */
void lpt_row_update(double *row, const lpt_update_params *p);

/* Find or claim the task, then apply the score under a crash-recovery record;
 * returns the slot, or -1 (nothing changed) when untracked and the pool is full. */
int64_t lpt_update_locked(lpt_segment *seg, const lpt_update_params *p);

#endif /* LPT_UPDATE_H */
