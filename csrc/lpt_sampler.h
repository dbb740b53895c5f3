/* lpt_sampler.h: task scores, the sampling weights of every slot (a sum tree
 * in the segment, shared by every process), O(log n) sampling, and the
 * eviction rule (SPEC.md, score_task and recommend_eviction).
 *
 * Keep in sync with src/lptrack/lpt_sampler.pxd.
 *
 * A slot's weight is its task's score_task value under the scoring rule in
 * the header (lpt_sampler_configure_locked): exploration_bonus below
 * min_samples_for_lp, else lp_score (bidirectional) or
 * sqrt(max(0, ema_squared - reward_ema^2)) (basic); 0 for a free slot.  Every
 * change to a row calls lpt_sampler_refresh_locked (O(log capacity)), so the
 * tree always holds the current weights; the distribution pass rebuilds it in
 * O(capacity).
 *
 * The sampler region, at layout.off_sampler: weights[capacity] double, then
 * tree[2 * leaves] double (node i holds the sum of its children 2i and 2i + 1,
 * the root is node 1, the leaf of slot s is leaves + s, the weight clamped at
 * 0; leaves = the power of two >= capacity), then evict_key[capacity] double
 * (the weight of an evictable task, else +inf), evict_tree[2 * leaves] int64
 * (a tournament tree over slots: node i holds the best slot of its subtree
 * by (evict_key, active position), -1 for none; the same leaf numbering),
 * scratch[2 * capacity] double (the distribution pass's values, the
 * threshold's selection), then mature[capacity] uint8
 * (1 while the slot's task would make a stale bidirectional scorer
 * recompute: active and count >= min_samples_for_lp).
 */
#ifndef LPT_SAMPLER_H
#define LPT_SAMPLER_H

#include <stdint.h>

#include "lpt_segment.h"

enum lpt_score_mode {
    LPT_SCORE_BIDIRECTIONAL = 0, /* lp_score from the distribution pass */
    LPT_SCORE_BASIC = 1          /* spread of the scores, from the EMAs */
};

/* Bytes of the sampler region for `capacity` slots. */
uint64_t lpt_sampler_region_bytes(uint64_t capacity);

/* Leaves of the evict tree: the power of two >= capacity. */
int64_t lpt_sampler_tree_leaves(uint64_t capacity);

/* Set the scoring rule for every process of the segment and rebuild. */
int lpt_sampler_configure_locked(lpt_segment *seg, uint32_t mode, double exploration_bonus,
                                 double min_samples_for_lp);

/* Recompute every slot's weight and the tree from the rows: O(capacity). */
void lpt_sampler_rebuild_locked(lpt_segment *seg);

/* The distribution pass's write-back for slots [first, end): store
 * slot_lp[slot] as the lp_score of each slot whose row still holds task
 * slot_id[slot] (0.0: none), bring its sampling weight up to date (a pass
 * changes nothing else, so only mature tasks' weights move), then both trees'
 * inner nodes above the range: O(end - first + log capacity). */
void lpt_sampler_store_lp_scores_locked(lpt_segment *seg, const double *slot_lp,
                                        const double *slot_id, int64_t first, int64_t end);

/* The k-th smallest of v[0..n) for recommend_eviction's percentile rank k
 * (v has room for 2n doubles; its contents are lost); NaN when n is 0. */
double lpt_percentile(double *v, int64_t n, double percentile);

/* Store an eviction threshold computed without the lock (lpt_pass_threshold)
 * for `percentile`. */
void lpt_sampler_store_threshold_locked(lpt_segment *seg, double percentile, double threshold);

/* The row of `slot` changed (or the slot was claimed or freed): O(log capacity). */
void lpt_sampler_refresh_locked(lpt_segment *seg, int64_t slot);

/* score_task of each id (exploration_bonus when untracked) into out[n];
 * returns how many ids are mature (see above). */
int64_t lpt_scores_locked(const lpt_segment *seg, const int64_t *ids, int64_t n, double *out);

/* Whether any id (any tracked task when ids is NULL) is mature. */
int lpt_any_mature_locked(const lpt_segment *seg, const int64_t *ids, int64_t n);

/* A task drawn with probability weight / total by a sum-tree descent, `uniform`
 * in [0, 1); uniform over the active list when the total is not positive (or
 * rounding lands on an empty slot).  0 when the pool is empty. */
int64_t lpt_sample_locked(const lpt_segment *seg, double uniform);

/* recommend_eviction over ids[n] (SPEC.md): the task id, or 0 for none.
 * Scratch: scores[2n] doubles and set[set_size] int64 with set_size a power of
 * two >= 2n (to count each id once in the percentile). */
int64_t lpt_recommend_eviction_locked(const lpt_segment *seg, const int64_t *ids, int64_t n,
                                      double min_presentations, double percentile,
                                      double *scores, int64_t *set, int64_t set_size);

/* The same rule over the whole pool, in active-list order, returning up to k
 * candidates: the k eligible slots of lowest (weight, position), lowest
 * first, each at or below the percentile threshold.  Scratch: 2 * capacity
 * doubles.  Returns how many were written to slots[] and ids[]. */
int64_t lpt_eviction_candidates_locked(const lpt_segment *seg, double min_presentations,
                                       double percentile, int64_t k, int64_t *slots,
                                       int64_t *ids, double *scratch);

/* The pool task to evict next by recommend_eviction's rule over the active
 * list (SPEC.md), or 0, in O(log capacity): the evictable tasks (active, at
 * least min_presentations completions) are kept in a tournament tree by
 * (weight, active position), and the percentile threshold of all weights is
 * cached in the header.  Each rebuild (every distribution pass, configure,
 * recovery) and `refresh_threshold` recompute the threshold (O(active));
 * between them it can be up to a batch old, as the weights are.  Another
 * min_presentations re-keys the tree once, O(capacity). */
int64_t lpt_pool_candidate_locked(lpt_segment *seg, double min_presentations, double percentile,
                                  int refresh_threshold);

/* How many locked picks of other processes the slots held for replacements
 * turn away (see lpt_choose_locked) before they are free for anyone: far more
 * than are made while a task is created, few enough that a process that dies
 * in between costs the pool little. */
#define LPT_REPLACEMENT_REFUSALS 64u

/* The curriculum's pick for the next episode: 0 while the pool has a free
 * slot; -task_id when it evicted lpt_pool_candidate_locked's task (released
 * here, so a slot is free now); else a task sampled by lpt_sample_locked.
 * *label_hash and *slot_out receive the evicted or sampled task's label hash
 * and slot (0.0 and -1 for none).
 *
 * With `replace`, the slot an eviction frees is held for the caller's new task
 * (header.n_replacements) until it ends the replacement
 * (lpt_replacement_end_locked, in the hold that claims the new task), or until
 * LPT_REPLACEMENT_REFUSALS locked picks found only held slots free since the
 * holds were last all over: meanwhile other processes' picks count it as
 * taken and draw (or evict) instead of creating a task into it, which would
 * leave the evicting process's new task without a slot. */
int64_t lpt_choose_locked(lpt_segment *seg, double uniform, double min_presentations,
                          double percentile, int refresh_threshold, int replace,
                          double *label_hash, int64_t *slot_out);

/* One replacement lpt_choose_locked began is over (its new task was claimed,
 * or will not be): the slot it held is free for anyone. */
void lpt_replacement_end_locked(lpt_segment *seg);

/* lpt_choose_locked without the lock, for its common case, a draw that
 * changes nothing: the pool is full (or its free slots are all held for
 * replacements), no eviction is due and the threshold needs no recomputation
 * (refresh_threshold would be 0).  Returns the drawn task id (> 0), its label
 * hash and slot as lpt_choose_locked would, or 0: the caller then takes the
 * lock and calls lpt_choose_locked (a slot is free, an eviction may be due,
 * the threshold is stale, or the draw met a row being written).  Writers may be mid-change meanwhile: the draw then
 * follows a mix of the weights before and after their change, and returns a
 * task that was in its slot, never a freed slot. */
int64_t lpt_choose_unlocked(const lpt_segment *seg, double uniform, double min_presentations,
                            double percentile, double *label_hash, int64_t *slot_out);

/* The active-list position of `slot` changed (the active list's swap-remove
 * moved it): O(log capacity). */
void lpt_sampler_moved_locked(lpt_segment *seg, int64_t slot);

#endif /* LPT_SAMPLER_H */
