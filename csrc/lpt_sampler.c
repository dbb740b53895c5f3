/* lpt_sampler.c: see lpt_sampler.h. */
#include "lpt_sampler.h"

#include <math.h>
#include <string.h>

#include "lpt_crash.h"
#include "lpt_status.h"


int64_t lpt_sampler_tree_leaves(uint64_t capacity)
{
    int64_t leaves = 1;
    while ((uint64_t)leaves < capacity)
        leaves *= 2;
    return leaves;
}

uint64_t lpt_sampler_region_bytes(uint64_t capacity)
{
    /* weights, evict keys, scratch (two halves); the weight tree and the evict tree; mature flags */
    return capacity * (4 * sizeof(double) + sizeof(uint8_t))
           + 2 * (uint64_t)lpt_sampler_tree_leaves(capacity) * (sizeof(double) + sizeof(int64_t));
}

/* -- scores ---------------------------------------------------------------- */

static inline int row_active(const double *row)
{
    return row[LPT_COL_TASK_ID] != 0.0 && row[LPT_COL_IS_ACTIVE] != 0.0;
}

/* score_task of a tracked row (SPEC.md); get_task_stats reads lp_score,
 * reward_ema and ema_squared as 0.0 while the count is 0. */
static double row_score(const lpt_header *h, const double *row)
{
    const double count = row[LPT_COL_COMPLETION_COUNT];
    if (!row_active(row))
        return h->exploration_bonus;
    if (h->score_mode == LPT_SCORE_BASIC) {
        if (count < 2.0 || count < h->min_samples_for_lp)
            return h->exploration_bonus;
        const double ema = row[LPT_COL_REWARD_EMA];
        const double spread = row[LPT_COL_EMA_SQUARED] - ema * ema;
        return sqrt(spread > 0.0 ? spread : 0.0);
    }
    if (count < h->min_samples_for_lp)
        return h->exploration_bonus;
    return count > 0.0 ? row[LPT_COL_LP_SCORE] : 0.0;
}

static inline int row_mature(const lpt_header *h, const double *row)
{
    return row_active(row) && row[LPT_COL_COMPLETION_COUNT] >= h->min_samples_for_lp;
}

/* What the tree adds up: negative scores (only a hand-written lp_score can
 * be negative) never draw. */
static inline double draw_weight(double score)
{
    return score > 0.0 ? score : 0.0;
}

/* -- the evict tree ------------------------------------------------------------ */

static inline int evictable(const double *row, double min_presentations)
{
    return row_active(row) && row[LPT_COL_COMPLETION_COUNT] >= min_presentations;
}

static inline double evict_key(const lpt_segment *seg, int64_t slot)
{
    const double *row = lpt_row(seg, slot);
    return evictable(row, seg->header->evict_min_presentations) ? seg->weights[slot] : INFINITY;
}

/* The better of two slots (-1: none) by (evict_key, active position):
 * recommend_eviction's "lowest score, first in order".  Without a branch on
 * the keys: a rebuild compares about capacity pairs of random keys. */
static inline int64_t better(const lpt_segment *seg, int64_t a, int64_t b)
{
    const int64_t slot_a = a < 0 ? 0 : a, slot_b = b < 0 ? 0 : b;
    const double ka = seg->evict_key[slot_a], kb = seg->evict_key[slot_b];
    const int64_t pa = seg->active_pos[slot_a], pb = seg->active_pos[slot_b];
    const int a_first = (ka < kb) | ((ka == kb) & (pa < pb));
    return ((b < 0) | ((a >= 0) & a_first)) ? a : b;
}

static void evict_tree_fix(lpt_segment *seg, int64_t slot)
{
    int64_t *tree = seg->evict_tree;
    int64_t i = seg->evict_leaves + slot;
    tree[i] = isinf(seg->evict_key[slot]) ? -1 : slot;
    for (i >>= 1; i >= 1; i >>= 1)
        tree[i] = better(seg, tree[2 * i], tree[2 * i + 1]);
}

/* The evict tree's inner nodes from its leaves. */
static void evict_tree_build(lpt_segment *seg)
{
    int64_t *tree = seg->evict_tree;
    for (int64_t i = seg->evict_leaves - 1; i >= 1; i--)
        tree[i] = better(seg, tree[2 * i], tree[2 * i + 1]);
    seg->header->evict_threshold = NAN;
}

static inline void evict_leaf_set(lpt_segment *seg, int64_t slot, double key)
{
    seg->evict_key[slot] = key;
    seg->evict_tree[seg->evict_leaves + slot] = isinf(key) ? -1 : slot;
}

static void evict_tree_rebuild(lpt_segment *seg)
{
    for (int64_t slot = 0; slot < seg->capacity; slot++) {
        const int used = lpt_row(seg, slot)[LPT_COL_TASK_ID] != 0.0;
        evict_leaf_set(seg, slot, used ? evict_key(seg, slot) : INFINITY);
    }
    for (int64_t slot = seg->capacity; slot < seg->evict_leaves; slot++)
        seg->evict_tree[seg->evict_leaves + slot] = -1;
    evict_tree_build(seg);
}

void lpt_sampler_moved_locked(lpt_segment *seg, int64_t slot)
{
    if (!isinf(seg->evict_key[slot]))
        evict_tree_fix(seg, slot);
}

/* -- the tree ---------------------------------------------------------------- */

/* The sum tree's inner nodes from its leaves. */
static void sum_tree_build(lpt_segment *seg)
{
    double *tree = seg->tree;
    for (int64_t i = seg->evict_leaves - 1; i >= 1; i--)
        tree[i] = tree[2 * i] + tree[2 * i + 1];
    tree[0] = 0.0;
}

void lpt_sampler_rebuild_locked(lpt_segment *seg)
{
    lpt_header *h = seg->header;
    const int64_t cap = seg->capacity, leaves = seg->evict_leaves;
    uint64_t mature = 0;
    /* One visit to each row: its weight, mature flag and evict key, and both
     * trees' leaves. */
    for (int64_t slot = 0; slot < cap; slot++) {
        const double *row = lpt_row(seg, slot);
        const int used = row[LPT_COL_TASK_ID] != 0.0;
        const double weight = used ? row_score(h, row) : 0.0;
        seg->weights[slot] = weight;
        seg->mature[slot] = (uint8_t)(used && row_mature(h, row));
        mature += seg->mature[slot];
        seg->tree[leaves + slot] = draw_weight(weight);
        evict_leaf_set(seg, slot, used ? evict_key(seg, slot) : INFINITY);
    }
    for (int64_t slot = cap; slot < leaves; slot++) {
        seg->tree[leaves + slot] = 0.0;
        seg->evict_tree[leaves + slot] = -1;
    }
    sum_tree_build(seg);
    h->n_mature = mature;
    evict_tree_build(seg);
}

/* Both trees' inner nodes above the leaves of slots [first, end): one level
 * at a time, each covering the parents of the one below, up to the root. */
static void trees_rebuild_range(lpt_segment *seg, int64_t first, int64_t end)
{
    double *tree = seg->tree;
    int64_t *evict_tree = seg->evict_tree;
    int64_t lo = (seg->evict_leaves + first) >> 1, hi = (seg->evict_leaves + end - 1) >> 1;
    for (; lo >= 1; lo >>= 1, hi >>= 1)
        for (int64_t i = lo; i <= hi; i++) {
            tree[i] = tree[2 * i] + tree[2 * i + 1];
            evict_tree[i] = better(seg, evict_tree[2 * i], evict_tree[2 * i + 1]);
        }
}

void lpt_sampler_store_lp_scores_locked(lpt_segment *seg, const double *slot_lp,
                                        const double *slot_id, int64_t first, int64_t end)
{
    lpt_header *h = seg->header;
    const int64_t leaves = seg->evict_leaves;
    const int weights_move = h->score_mode == LPT_SCORE_BIDIRECTIONAL;
    if (first >= end)
        return;
    for (int64_t slot = first; slot < end; slot++) {
        if (slot_id[slot] == 0.0)
            continue;
        double *row = lpt_row(seg, slot);
        if (row[LPT_COL_TASK_ID] != slot_id[slot])
            continue; /* another task since the pass read it: it keeps its own score */
        const double lp = slot_lp[slot];
        row[LPT_COL_LP_SCORE] = lp;
        LPT_CRASH_POINT();
        if (!weights_move || !seg->mature[slot])
            continue;
        /* row_score and evict_key of a mature (so active) row, written out:
         * calling them (active checks, score-mode branches) made the pass 12%
         * slower at 1k and at 100k tasks. */
        const double count = row[LPT_COL_COMPLETION_COUNT];
        const double weight = count > 0.0 ? lp : 0.0;
        seg->weights[slot] = weight;
        seg->tree[leaves + slot] = draw_weight(weight);
        if (count >= h->evict_min_presentations)
            evict_leaf_set(seg, slot, weight);
    }
    trees_rebuild_range(seg, first, end);
}

static inline int same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

void lpt_sampler_refresh_locked(lpt_segment *seg, int64_t slot)
{
    lpt_header *h = seg->header;
    const double *row = lpt_row(seg, slot);
    const int used = row[LPT_COL_TASK_ID] != 0.0;
    const double weight = used ? row_score(h, row) : 0.0;
    const uint8_t mature = (uint8_t)(used && row_mature(h, row));
    /* Unchanged values are not stored again: a store dirties its cache line
     * for every other process that reads it. */
    if (mature != seg->mature[slot]) {
        h->n_mature = h->n_mature + mature - seg->mature[slot];
        seg->mature[slot] = mature;
    }
    const double delta = draw_weight(weight) - draw_weight(seg->weights[slot]);
    if (!same_bits(weight, seg->weights[slot]))
        seg->weights[slot] = weight;
    const double key = used ? evict_key(seg, slot) : INFINITY;
    if (key != seg->evict_key[slot]) {
        seg->evict_key[slot] = key;
        evict_tree_fix(seg, slot);
    }
    if (delta == 0.0)
        return;
    /* Each node is recomputed from its children, never adjusted by a delta: a
     * sum of non-negative weights is exact enough that a tiny weight next to
     * a large one is never cancelled away (0.1 -> 1e-40 leaves 1e-40). */
    int64_t i = seg->evict_leaves + slot;
    seg->tree[i] = draw_weight(weight);
    for (i >>= 1; i >= 1; i >>= 1)
        seg->tree[i] = seg->tree[2 * i] + seg->tree[2 * i + 1];
}

int lpt_sampler_configure_locked(lpt_segment *seg, uint32_t mode, double exploration_bonus,
                                 double min_samples_for_lp)
{
    if ((mode != LPT_SCORE_BIDIRECTIONAL && mode != LPT_SCORE_BASIC) || !isfinite(exploration_bonus)
        || !(min_samples_for_lp >= 0.0))
        return LPT_ERR_INVALID;
    lpt_header *h = seg->header;
    h->score_mode = mode;
    h->exploration_bonus = exploration_bonus;
    h->min_samples_for_lp = min_samples_for_lp;
    lpt_sampler_rebuild_locked(seg);
    return LPT_OK;
}

/* -- scores of many ids ---------------------------------------------------------- */

int64_t lpt_scores_locked(const lpt_segment *seg, const int64_t *ids, int64_t n, double *out)
{
    const lpt_header *h = seg->header;
    int64_t mature = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t slot = lpt_find_locked(seg, ids[i]);
        if (slot < 0) {
            out[i] = h->exploration_bonus;
            continue;
        }
        out[i] = seg->weights[slot];
        mature += seg->mature[slot];
    }
    return mature;
}

int lpt_any_mature_locked(const lpt_segment *seg, const int64_t *ids, int64_t n)
{
    /* No mature task in the pool: none among the ids either, without n lookups
     * (a pool whose tasks are evicted before maturing asks this every call). */
    if (ids == NULL || seg->header->n_mature == 0)
        return seg->header->n_mature > 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t slot = lpt_find_locked(seg, ids[i]);
        if (slot >= 0 && seg->mature[slot])
            return 1;
    }
    return 0;
}

/* -- sampling ---------------------------------------------------------------------- */

/* The task id in `slot`'s row; 0 for no slot (-1). */
static inline int64_t task_id_in(const lpt_segment *seg, int64_t slot)
{
    return slot < 0 ? 0 : (int64_t)lpt_row(seg, slot)[LPT_COL_TASK_ID];
}

/* The sum-tree descent: the first slot whose cumulative weight exceeds
 * uniform * total, or -1 when the total is not positive or rounding landed on
 * a slot without weight. */
static int64_t tree_draw(const lpt_segment *seg, double uniform)
{
    if (!(seg->tree[1] > 0.0))
        return -1;
    const int64_t leaves = seg->evict_leaves;
    /* Left while the target falls in the left subtree's sum (or the right one
     * is empty, where rounding left the target at the boundary). */
    double target = uniform * seg->tree[1];
    int64_t i = 1;
    while (i < leaves) {
        const double left = seg->tree[2 * i];
        if (target < left || !(seg->tree[2 * i + 1] > 0.0)) {
            i = 2 * i;
        } else {
            target -= left;
            i = 2 * i + 1;
        }
    }
    const int64_t slot = i - leaves;
    return slot < seg->capacity && draw_weight(seg->weights[slot]) > 0.0 ? slot : -1;
}

/* lpt_sample_locked's draw as a slot, -1 when the pool is empty. */
static int64_t sample_slot(const lpt_segment *seg, double uniform)
{
    const int64_t n = (int64_t)atomic_load_explicit(&seg->header->n_active, memory_order_relaxed);
    if (n == 0)
        return -1;
    const int64_t slot = tree_draw(seg, uniform);
    if (slot >= 0)
        return slot;
    /* Clamped, so that no uniform (callers check [0, 1)) reads outside the list. */
    int64_t position = uniform > 0.0 ? (int64_t)(uniform * (double)n) : 0;
    if (position >= n)
        position = n - 1;
    return seg->active[position];
}

int64_t lpt_sample_locked(const lpt_segment *seg, double uniform)
{
    return task_id_in(seg, sample_slot(seg, uniform));
}

/* -- eviction ------------------------------------------------------------------------ */

static inline void swap_double(double *a, double *b)
{
    const double t = *a;
    *a = *b;
    *b = t;
}

/* The k-th smallest of v[0..n) (0-based); v has room for 2n doubles and its
 * contents are lost.  Quickselect with a median-of-three pivot, O(n)
 * expected, each round copying its range from one half of v into the other:
 * the smaller values to the front, the greater to the back, the equal ones
 * only counted.  The stores are unconditional and the comparisons only move
 * the two ends, so the loop has no branch to mispredict on random scores
 * (a swapping partition's branches cost about 10 ns a score); counting the
 * equal values keeps it linear on the many equal scores a pool has. */
static double select_kth(double *v, int64_t n, int64_t k)
{
    double *const half[2] = {v, v + n};
    int from_half = 0;
    int64_t start = 0; /* the range: half[from_half][start .. start + n) */
    for (;;) {
        const double *from = half[from_half] + start;
        double *to = half[!from_half];
        double a = from[0], b = from[n / 2], c = from[n - 1];
        if (b < a)
            swap_double(&a, &b);
        if (c < b)
            swap_double(&b, &c);
        if (b < a)
            swap_double(&a, &b);
        const double pivot = b;
        int64_t below = 0, above = 0;
        for (int64_t i = 0; i < n; i++) {
            const double x = from[i];
            to[below] = x;
            to[n - 1 - above] = x;
            below += x < pivot;
            above += pivot < x;
        }
        /* The pivot counts as equal (everything does, were it NaN), so each
         * round drops at least one value. */
        if (k < below) {
            start = 0;
            n = below;
        } else if (k >= n - above) {
            start = n - above;
            k -= start;
            n = above;
        } else {
            return pivot;
        }
        from_half = !from_half;
    }
}

/* Python's int(len * percentile), clamped like sorted[max(0, ...)] and to the
 * last element (callers check 0 <= percentile < 1; this keeps the selection
 * inside its array whatever they pass). */
static int64_t threshold_rank(int64_t n, double percentile)
{
    if (!(percentile > 0.0))
        return 0;
    const int64_t rank = (int64_t)((double)n * percentile);
    return rank >= n ? n - 1 : rank;
}

double lpt_percentile(double *v, int64_t n, double percentile)
{
    return n > 0 ? select_kth(v, n, threshold_rank(n, percentile)) : NAN;
}

void lpt_sampler_store_threshold_locked(lpt_segment *seg, double percentile, double threshold)
{
    seg->header->evict_percentile = percentile;
    seg->header->evict_threshold = threshold;
}

/* Fibonacci hashing into a power-of-two set of ids (0 marks an empty cell). */
static int set_insert(int64_t *set, int64_t size, int64_t id)
{
    uint64_t i = ((uint64_t)id * UINT64_C(0x9e3779b97f4a7c15)) & (uint64_t)(size - 1);
    while (set[i] != 0) {
        if (set[i] == id)
            return 0;
        i = (i + 1) & (uint64_t)(size - 1);
    }
    set[i] = id;
    return 1;
}

int64_t lpt_recommend_eviction_locked(const lpt_segment *seg, const int64_t *ids, int64_t n,
                                      double min_presentations, double percentile,
                                      double *scores, int64_t *set, int64_t set_size)
{
    if (n <= 1)
        return 0;
    /* The distinct ids' scores, for the threshold (the original keys scores by id). */
    memset(set, 0, (size_t)set_size * sizeof(int64_t));
    int64_t distinct = 0;
    for (int64_t i = 0; i < n; i++)
        if (set_insert(set, set_size, ids[i]))
            lpt_scores_locked(seg, &ids[i], 1, &scores[distinct++]);
    const double threshold = select_kth(scores, distinct, threshold_rank(distinct, percentile));
    int64_t best = 0;
    double best_score = INFINITY;
    for (int64_t i = 0; i < n; i++) {
        const int64_t slot = lpt_find_locked(seg, ids[i]);
        if (slot < 0)
            continue;
        const double score = seg->weights[slot];
        if (score > threshold || score >= best_score)
            continue;
        if (evictable(lpt_row(seg, slot), min_presentations)) {
            best = ids[i];
            best_score = score;
        }
    }
    return best;
}

/* (weight, position) order of the candidate max-heap. */
static inline int heap_less(const double *w, const int64_t *pos, int64_t a, int64_t b)
{
    return w[a] < w[b] || (w[a] == w[b] && pos[a] < pos[b]);
}

static void heap_sift_down(double *w, int64_t *pos, int64_t n, int64_t i)
{
    for (;;) {
        int64_t largest = i;
        const int64_t l = 2 * i + 1, r = 2 * i + 2;
        if (l < n && heap_less(w, pos, largest, l))
            largest = l;
        if (r < n && heap_less(w, pos, largest, r))
            largest = r;
        if (largest == i)
            return;
        swap_double(&w[i], &w[largest]);
        const int64_t t = pos[i];
        pos[i] = pos[largest];
        pos[largest] = t;
        i = largest;
    }
}

static void heap_sift_up(double *w, int64_t *pos, int64_t i)
{
    while (i > 0) {
        const int64_t parent = (i - 1) / 2;
        if (!heap_less(w, pos, parent, i))
            return;
        swap_double(&w[i], &w[parent]);
        const int64_t t = pos[i];
        pos[i] = pos[parent];
        pos[parent] = t;
        i = parent;
    }
}

int64_t lpt_eviction_candidates_locked(const lpt_segment *seg, double min_presentations,
                                       double percentile, int64_t k, int64_t *slots,
                                       int64_t *ids, double *scratch)
{
    const int64_t n = (int64_t)atomic_load_explicit(&seg->header->n_active, memory_order_relaxed);
    if (n <= 1 || k <= 0)
        return 0;
    for (int64_t i = 0; i < n; i++)
        scratch[i] = seg->weights[seg->active[i]];
    const double threshold = select_kth(scratch, n, threshold_rank(n, percentile));
    /* A max-heap of the k lowest (weight, position) eligible candidates; its
     * weights live in scratch (free again after the threshold) and its
     * positions in ids[] until the final ordering. */
    double *heap_w = scratch;
    int64_t *heap_pos = ids;
    int64_t size = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t slot = seg->active[i];
        const double w = seg->weights[slot];
        if (w > threshold || !evictable(lpt_row(seg, slot), min_presentations))
            continue;
        if (size < k) {
            heap_w[size] = w;
            heap_pos[size] = i;
            heap_sift_up(heap_w, heap_pos, size++);
        } else if (w < heap_w[0]) { /* equal weight: the earlier position stays */
            heap_w[0] = w;
            heap_pos[0] = i;
            heap_sift_down(heap_w, heap_pos, size, 0);
        }
    }
    /* Heap sort in place: the largest goes last, so the result ascends. */
    for (int64_t end = size - 1; end > 0; end--) {
        swap_double(&heap_w[0], &heap_w[end]);
        const int64_t t = heap_pos[0];
        heap_pos[0] = heap_pos[end];
        heap_pos[end] = t;
        heap_sift_down(heap_w, heap_pos, end, 0);
    }
    for (int64_t i = 0; i < size; i++) {
        slots[i] = seg->active[heap_pos[i]];
        ids[i] = (int64_t)lpt_row(seg, slots[i])[LPT_COL_TASK_ID];
    }
    return size;
}

/* -- the pool's eviction candidate ----------------------------------------------------- */

/* The evict tree's best slot if it is at or below the cached threshold, else
 * -1.  Reads no more than one evict-tree node and one key, so the pick
 * without the lock (lpt_choose_unlocked) asks it too; the bound check is for
 * that caller. */
static int64_t due_candidate(const lpt_segment *seg)
{
    const int64_t best = seg->evict_tree[1];
    if (best < 0 || best >= seg->capacity || seg->evict_key[best] > seg->header->evict_threshold)
        return -1;
    return best;
}

/* lpt_pool_candidate_locked's task as a slot, -1 for none. */
static int64_t pool_candidate_slot(lpt_segment *seg, double min_presentations, double percentile,
                                   int refresh_threshold)
{
    lpt_header *h = seg->header;
    const int64_t n = (int64_t)atomic_load_explicit(&h->n_active, memory_order_relaxed);
    if (n <= 1)
        return -1;
    if (min_presentations != h->evict_min_presentations) {
        h->evict_min_presentations = min_presentations;
        evict_tree_rebuild(seg);
    }
    if (percentile != h->evict_percentile || refresh_threshold || isnan(h->evict_threshold)) {
        for (int64_t i = 0; i < n; i++)
            seg->scratch[i] = seg->weights[seg->active[i]];
        h->evict_threshold = select_kth(seg->scratch, n, threshold_rank(n, percentile));
        h->evict_percentile = percentile;
    }
    return due_candidate(seg);
}

int64_t lpt_pool_candidate_locked(lpt_segment *seg, double min_presentations, double percentile,
                                  int refresh_threshold)
{
    return task_id_in(seg, pool_candidate_slot(seg, min_presentations, percentile, refresh_threshold));
}

void lpt_replacement_end_locked(lpt_segment *seg)
{
    lpt_header *h = seg->header;
    const uint64_t held = atomic_load_explicit(&h->n_replacements, memory_order_relaxed);
    if (held > 0)
        atomic_store_explicit(&h->n_replacements, held - 1, memory_order_relaxed);
    if (held <= 1)
        h->replacement_refusals = 0;
}

int64_t lpt_choose_locked(lpt_segment *seg, double uniform, double min_presentations,
                          double percentile, int refresh_threshold, int replace,
                          double *label_hash, int64_t *slot_out)
{
    lpt_header *h = seg->header;
    *label_hash = 0.0;
    *slot_out = -1;
    const uint64_t n = atomic_load_explicit(&h->n_active, memory_order_relaxed);
    if (n < (uint64_t)seg->capacity) {
        const uint64_t held = atomic_load_explicit(&h->n_replacements, memory_order_relaxed);
        if (n + held < (uint64_t)seg->capacity)
            return 0;
        if (++h->replacement_refusals > LPT_REPLACEMENT_REFUSALS) {
            atomic_store_explicit(&h->n_replacements, 0, memory_order_relaxed);
            h->replacement_refusals = 0;
            return 0;
        }
        /* Every free slot is held for another process's new task: draw, or evict. */
    }
    int64_t slot = pool_candidate_slot(seg, min_presentations, percentile, refresh_threshold);
    *slot_out = slot;
    if (slot >= 0) {
        /* Evicted in this hold: no other process can pick or evict it in between. */
        const int64_t victim = task_id_in(seg, slot);
        *label_hash = lpt_row(seg, slot)[LPT_COL_LABEL_HASH];
        lpt_release_locked(seg, victim);
        if (replace)
            lpt_bump_locked(&h->n_replacements);
        return -victim;
    }
    slot = sample_slot(seg, uniform);
    *slot_out = slot;
    if (slot >= 0)
        *label_hash = lpt_row(seg, slot)[LPT_COL_LABEL_HASH];
    return task_id_in(seg, slot);
}

int64_t lpt_choose_unlocked(const lpt_segment *seg, double uniform, double min_presentations,
                            double percentile, double *label_hash, int64_t *slot_out)
{
    const lpt_header *h = seg->header;
    *label_hash = 0.0;
    *slot_out = -1;
    const uint64_t n = atomic_load_explicit(&h->n_active, memory_order_acquire);
    /* A free slot that is not held for another process's replacement is for
     * creating a task into; held ones leave the pick a draw (uncounted here:
     * the locked picks count the refusals that end a dead process's hold). */
    if (n < (uint64_t)seg->capacity
        && n + atomic_load_explicit(&h->n_replacements, memory_order_relaxed) < (uint64_t)seg->capacity)
        return 0;
    if (n > 1) {
        /* pool_candidate_slot would recompute something, or evict */
        if (min_presentations != h->evict_min_presentations || percentile != h->evict_percentile
            || isnan(h->evict_threshold))
            return 0;
        if (due_candidate(seg) >= 0)
            return 0;
    }
    const int64_t slot = tree_draw(seg, uniform);
    if (slot < 0)
        return 0;
    /* The drawn slot's task, from a row no writer was in (lpt_read_row's rule). */
    _Atomic uint64_t *seq = &seg->row_seq[slot];
    const uint64_t before = atomic_load_explicit(seq, memory_order_acquire);
    if (before & 1)
        return 0;
    const double *row = lpt_row(seg, slot);
    const double task_id = row[LPT_COL_TASK_ID], hash = row[LPT_COL_LABEL_HASH];
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(seq, memory_order_relaxed) != before || task_id == 0.0)
        return 0;
    *label_hash = hash;
    *slot_out = slot;
    return (int64_t)task_id;
}
