/* lpt_segment.c: see lpt_segment.h. */
#define _GNU_SOURCE
#include "lpt_segment.h"

#include <string.h>

#include "lpt_crash.h"
#include "lpt_liveness.h"
#include "lpt_sampler.h"
#include "lpt_status.h"

_Static_assert(offsetof(lpt_header, reserved) == LPT_HEADER_FIELDS_BYTES,
               "update LPT_HEADER_FIELDS_BYTES (and LPT_LAYOUT_VERSION)");
_Static_assert(sizeof(lpt_header) == LPT_HEADER_BYTES, "the header must stay 1024 bytes");
_Static_assert(offsetof(lpt_header, lock) % LPT_ALIGNMENT == 0, "the lock gets its own cache line");
_Static_assert(offsetof(lpt_header, holder_undo_area) / LPT_ALIGNMENT == offsetof(lpt_header, lock) / LPT_ALIGNMENT,
               "what the lock holder writes on taking it shares the lock's cache line");
_Static_assert(offsetof(lpt_header, generation) % LPT_ALIGNMENT == 0
                   && offsetof(lpt_header, replacement_refusals) / LPT_ALIGNMENT == offsetof(lpt_header, generation) / LPT_ALIGNMENT,
               "the hot fields fill one cache line");
_Static_assert(sizeof(lpt_undo_area) == LPT_ALIGNMENT, "an undo record's row starts on its own cache line");
_Static_assert(sizeof(lpt_index_entry) == 16 && sizeof(lpt_label_entry) == 16,
               "index entries are part of the layout");

#define RELAXED memory_order_relaxed

/* -- layout ---------------------------------------------------------------- */

static uint64_t next_pow2(uint64_t x)
{
    uint64_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

static uint64_t align_up(uint64_t x)
{
    return (x + LPT_ALIGNMENT - 1) & ~(uint64_t)(LPT_ALIGNMENT - 1);
}

static uint64_t lpt_undo_area_bytes(uint64_t row_width)
{
    return align_up(sizeof(lpt_undo_area) + row_width * sizeof(double));
}

static inline lpt_undo_area *undo_area(const lpt_segment *seg, uint32_t index)
{
    return (lpt_undo_area *)(seg->undo_areas + (uint64_t)index * seg->undo_area_bytes);
}

int lpt_layout_compute(int64_t capacity, int64_t row_width, lpt_layout *out)
{
    if (capacity < 1 || capacity > LPT_MAX_CAPACITY || row_width < LPT_MIN_ROW_WIDTH
        || row_width > (int64_t)LPT_MAX_ROW_WIDTH)
        return LPT_ERR_INVALID;
    lpt_layout l;
    memset(&l, 0, sizeof l);
    l.capacity = (uint64_t)capacity;
    l.row_width = (uint64_t)row_width;
    l.index_size = next_pow2(2 * l.capacity);
    l.label_capacity = l.capacity > LPT_LABELS_MIN ? l.capacity : LPT_LABELS_MIN;
    l.label_index_size = next_pow2(2 * l.label_capacity);
    l.label_arena_bytes = l.label_capacity * LPT_LABEL_BYTES_PER_LABEL;
    if (l.label_arena_bytes > UINT32_MAX) /* arena offsets are uint32 */
        l.label_arena_bytes = UINT32_MAX;

    uint64_t off = LPT_HEADER_BYTES;
    l.off_index = off;
    off = align_up(off + l.index_size * sizeof(lpt_index_entry));
    l.off_free = off;
    off = align_up(off + l.capacity * sizeof(int64_t));
    l.off_active = off;
    off = align_up(off + l.capacity * sizeof(int64_t));
    l.off_active_pos = off;
    off = align_up(off + l.capacity * sizeof(int64_t));
    l.off_label_index = off;
    off = align_up(off + l.label_index_size * sizeof(lpt_label_entry));
    l.off_label_arena = off;
    off = align_up(off + l.label_arena_bytes);
    l.off_undo = off;
    off = align_up(off + LPT_UNDO_AREAS * lpt_undo_area_bytes(l.row_width));
    l.off_procs = off;
    off = align_up(off + LPT_MAX_PROCS * sizeof(uint64_t));
    l.off_row_seq = off;
    off = align_up(off + l.capacity * sizeof(uint64_t));
    l.off_sampler = off;
    off = align_up(off + lpt_sampler_region_bytes(l.capacity));
    l.off_rows = off;
    off = align_up(off + l.capacity * l.row_width * sizeof(double));
    l.total_bytes = off;
    *out = l;
    return LPT_OK;
}

static void view(void *base, const lpt_layout *l, lpt_segment *seg)
{
    char *b = (char *)base;
    seg->header = (lpt_header *)base;
    seg->index = (lpt_index_entry *)(b + l->off_index);
    seg->free_stack = (int64_t *)(b + l->off_free);
    seg->active = (int64_t *)(b + l->off_active);
    seg->active_pos = (int64_t *)(b + l->off_active_pos);
    seg->label_index = (lpt_label_entry *)(b + l->off_label_index);
    seg->label_arena = b + l->off_label_arena;
    seg->undo_areas = b + l->off_undo;
    seg->undo_area_bytes = lpt_undo_area_bytes(l->row_width);
    seg->undo = undo_area(seg, 0);
    seg->procs = (_Atomic uint64_t *)(b + l->off_procs);
    seg->row_seq = (_Atomic uint64_t *)(b + l->off_row_seq);
    seg->evict_leaves = lpt_sampler_tree_leaves(l->capacity);
    seg->weights = (double *)(b + l->off_sampler);
    seg->tree = seg->weights + l->capacity;
    seg->evict_key = seg->tree + 2 * seg->evict_leaves;
    seg->evict_tree = (int64_t *)(seg->evict_key + l->capacity);
    seg->scratch = (double *)(seg->evict_tree + 2 * seg->evict_leaves);
    seg->mature = (uint8_t *)(seg->scratch + 2 * l->capacity);
    seg->rows = (double *)(b + l->off_rows);
    seg->capacity = (int64_t)l->capacity;
    seg->row_width = (int64_t)l->row_width;
    seg->index_mask = l->index_size - 1;
    seg->label_mask = l->label_index_size - 1;
}

/* -- task index: open addressing, linear probing, backward-shift deletion -- */

/* splitmix64's finaliser: task ids are often sequential or share low bits,
 * and linear probing needs them spread over the whole table. */
static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

/* Position of task_id in the index, or -1.  Terminates: the index is at most
 * half full, and backward-shift deletion leaves no holes inside a cluster. */
static int64_t index_position(const lpt_segment *seg, int64_t task_id)
{
    uint64_t i = mix64((uint64_t)task_id) & seg->index_mask;
    for (;;) {
        const int64_t id = seg->index[i].task_id;
        if (id == task_id)
            return (int64_t)i;
        if (id == 0)
            return -1;
        i = (i + 1) & seg->index_mask;
    }
}

static void index_insert(lpt_segment *seg, int64_t task_id, int64_t slot)
{
    uint64_t i = mix64((uint64_t)task_id) & seg->index_mask;
    while (seg->index[i].task_id != 0)
        i = (i + 1) & seg->index_mask;
    seg->index[i].task_id = task_id;
    seg->index[i].slot = slot;
}

/* Empty position `hole`, then pull later members of its cluster back so that
 * no entry sits after a hole on its probe path. */
static void index_delete_at(lpt_segment *seg, uint64_t hole)
{
    const uint64_t mask = seg->index_mask;
    uint64_t j = hole;
    for (;;) {
        j = (j + 1) & mask;
        const int64_t id = seg->index[j].task_id;
        if (id == 0)
            break;
        const uint64_t home = mix64((uint64_t)id) & mask;
        /* The entry at j may move to the hole iff its home is not in the
         * cyclic interval (hole, j]: probing from home would then pass the hole. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            seg->index[hole] = seg->index[j];
            hole = j;
            LPT_CRASH_POINT();
        }
    }
    seg->index[hole].task_id = 0;
    seg->index[hole].slot = 0;
}

int64_t lpt_find_locked(const lpt_segment *seg, int64_t task_id)
{
    const int64_t pos = index_position(seg, task_id);
    return pos < 0 ? -1 : seg->index[pos].slot;
}

/* -- the pool: free stack and active list ---------------------------------- */

static void active_append(lpt_segment *seg, int64_t slot)
{
    const uint64_t n = atomic_load_explicit(&seg->header->n_active, RELAXED);
    seg->active[n] = slot;
    seg->active_pos[slot] = (int64_t)n;
    atomic_store_explicit(&seg->header->n_active, n + 1, RELAXED);
}

static void active_remove(lpt_segment *seg, int64_t slot)
{
    const uint64_t last = atomic_load_explicit(&seg->header->n_active, RELAXED) - 1;
    const int64_t pos = seg->active_pos[slot];
    const int64_t moved = seg->active[last];
    seg->active[pos] = moved;
    seg->active_pos[moved] = pos;
    seg->active_pos[slot] = -1;
    atomic_store_explicit(&seg->header->n_active, last, RELAXED);
    if (moved != slot)
        lpt_sampler_moved_locked(seg, moved);
}

/* The seqlock's writer side.  Odd: readers retry.  The release fence keeps
 * the odd number visible before any store to the row.  A row already odd (a
 * dead writer's, being repaired) stays so until row_write_end. */
static inline void row_write_begin(lpt_segment *seg, int64_t slot)
{
    const uint64_t seq = atomic_load_explicit(&seg->row_seq[slot], RELAXED);
    atomic_store_explicit(&seg->row_seq[slot], seq | 1, RELAXED);
    atomic_thread_fence(memory_order_release);
}

static inline void row_write_end(lpt_segment *seg, int64_t slot)
{
    atomic_store_explicit(&seg->row_seq[slot],
                          atomic_load_explicit(&seg->row_seq[slot], RELAXED) + 1,
                          memory_order_release);
}

void lpt_undo_begin_locked(lpt_segment *seg, int64_t slot, uint32_t op)
{
    lpt_undo_area *undo = seg->undo;
    memcpy(undo->row, lpt_row(seg, slot), (size_t)seg->row_width * sizeof(double));
    undo->slot = slot;
    LPT_CRASH_POINT();
    /* A crash leaves memory as the dying process's stores made it, so only
     * the compiler's order matters: pre-image before the tag, tag before any
     * change to the row. */
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&undo->op, op, RELAXED);
    row_write_begin(seg, slot);
    LPT_CRASH_POINT();
}

void lpt_undo_end_locked(lpt_segment *seg)
{
    lpt_undo_area *undo = seg->undo;
    if (atomic_load_explicit(&undo->op, RELAXED) == LPT_OP_NONE)
        return;
    lpt_sampler_refresh_locked(seg, undo->slot); /* the row's weight, O(log n) */
    row_write_end(seg, undo->slot);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&undo->op, LPT_OP_NONE, RELAXED);
}

int lpt_read_row(const lpt_segment *seg, int64_t slot, double *out, int attempts)
{
    _Atomic uint64_t *seq = &seg->row_seq[slot];
    for (int i = 0; i < attempts; i++) {
        const uint64_t before = atomic_load_explicit(seq, memory_order_acquire);
        if (before & 1)
            continue;
        memcpy(out, lpt_row(seg, slot), (size_t)seg->row_width * sizeof(double));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(seq, RELAXED) == before)
            return LPT_OK;
    }
    return LPT_BUSY;
}

int64_t lpt_claim_open_locked(lpt_segment *seg, const lpt_new_task *task, uint32_t op)
{
    lpt_header *h = seg->header;
    if (h->free_top == 0)
        return -1;
    const int64_t slot = seg->free_stack[h->free_top - 1];
    lpt_undo_begin_locked(seg, slot, op);
    h->free_top--;
    LPT_CRASH_POINT();
    double *row = lpt_row(seg, slot);
    memset(row, 0, (size_t)seg->row_width * sizeof(double));
    row[LPT_COL_CREATION_TIME] = task->creation_time;
    row[LPT_COL_SUCCESS_THRESHOLD] = task->success_threshold;
    row[LPT_COL_SEED] = task->seed;
    row[LPT_COL_GENERATOR_TYPE] = task->generator_type;
    row[LPT_COL_LP_SCORE] = task->lp_score;
    row[LPT_COL_LABEL_HASH] = task->label_hash;
    row[LPT_COL_IS_ACTIVE] = 1.0;
    LPT_CRASH_POINT();
    row[LPT_COL_TASK_ID] = (double)task->task_id;
    LPT_CRASH_POINT();
    index_insert(seg, task->task_id, slot);
    LPT_CRASH_POINT();
    active_append(seg, slot);
    LPT_CRASH_POINT();
    lpt_bump_locked(&h->generation);
    return slot;
}

int64_t lpt_claim_locked(lpt_segment *seg, const lpt_new_task *task)
{
    const int64_t slot = lpt_find_locked(seg, task->task_id);
    if (slot >= 0)
        return slot;
    const int64_t claimed = lpt_claim_open_locked(seg, task, LPT_OP_CLAIM);
    lpt_undo_end_locked(seg);
    return claimed;
}

int lpt_release_locked(lpt_segment *seg, int64_t task_id)
{
    lpt_header *h = seg->header;
    const int64_t pos = index_position(seg, task_id);
    if (pos < 0)
        return 0;
    const int64_t slot = seg->index[pos].slot;
    lpt_undo_begin_locked(seg, slot, LPT_OP_RELEASE);
    index_delete_at(seg, (uint64_t)pos);
    LPT_CRASH_POINT();
    active_remove(seg, slot);
    LPT_CRASH_POINT();
    seg->free_stack[h->free_top++] = slot;
    LPT_CRASH_POINT();
    memset(lpt_row(seg, slot), 0, (size_t)seg->row_width * sizeof(double));
    LPT_CRASH_POINT();
    lpt_bump_locked(&h->generation);
    lpt_undo_end_locked(seg);
    return 1;
}

static int valid_task_id(double id)
{
    return id >= 1.0 && id <= (double)LPT_MAX_TASK_ID && id == (double)(int64_t)id;
}

/* Rebuild index, free stack, active list and label count from the rows and
 * the label index, which are the source of truth.  A row with an invalid or
 * duplicate task id is dropped (zeroed).  The free stack pops the lowest slot
 * first; the active list comes out in slot order. */
void lpt_rebuild_locked(lpt_segment *seg)
{
    lpt_header *h = seg->header;
    const int64_t cap = seg->capacity;
    memset(seg->index, 0, (seg->index_mask + 1) * sizeof(lpt_index_entry));
    atomic_store_explicit(&h->n_active, 0, RELAXED);
    atomic_store_explicit(&h->n_replacements, 0, RELAXED); /* held slots are only an optimisation */
    h->replacement_refusals = 0;
    for (int64_t slot = 0; slot < cap; slot++)
        seg->active_pos[slot] = -1;
    for (int64_t slot = 0; slot < cap; slot++) {
        double *row = lpt_row(seg, slot);
        if (row[LPT_COL_TASK_ID] == 0.0)
            continue;
        const int64_t id = valid_task_id(row[LPT_COL_TASK_ID]) ? (int64_t)row[LPT_COL_TASK_ID] : 0;
        if (id == 0 || index_position(seg, id) >= 0) {
            row_write_begin(seg, slot);
            memset(row, 0, (size_t)seg->row_width * sizeof(double));
            row_write_end(seg, slot);
            continue;
        }
        index_insert(seg, id, slot);
        active_append(seg, slot);
    }
    h->free_top = 0;
    for (int64_t slot = cap - 1; slot >= 0; slot--)
        if (seg->active_pos[slot] < 0)
            seg->free_stack[h->free_top++] = slot;

    uint64_t labels = 0, arena_end = 0;
    for (uint64_t i = 0; i <= seg->label_mask; i++) {
        const lpt_label_entry *e = &seg->label_index[i];
        if (atomic_load_explicit(&e->key, RELAXED) == 0)
            continue;
        labels++;
        if ((uint64_t)e->offset + e->length > arena_end)
            arena_end = (uint64_t)e->offset + e->length;
    }
    h->label_count = labels;
    if (h->label_arena_used < arena_end)
        h->label_arena_used = arena_end;
    lpt_sampler_rebuild_locked(seg);
    lpt_bump_locked(&h->generation);
}

/* Zero every row (readers see each row whole, before or after). */
static void zero_rows(lpt_segment *seg)
{
    for (int64_t slot = 0; slot < seg->capacity; slot++) {
        row_write_begin(seg, slot);
        memset(lpt_row(seg, slot), 0, (size_t)seg->row_width * sizeof(double));
        row_write_end(seg, slot);
        LPT_CRASH_POINT();
    }
}

void lpt_clear_locked(lpt_segment *seg)
{
    /* A clear is rolled forward: a holder dying half-way leaves the tag, and
     * recovery zeroes the remaining rows. */
    atomic_store_explicit(&seg->undo->op, LPT_OP_CLEAR, RELAXED);
    atomic_signal_fence(memory_order_seq_cst);
    zero_rows(seg);
    lpt_rebuild_locked(seg);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&seg->undo->op, LPT_OP_NONE, RELAXED);
}

int lpt_verify_locked(const lpt_segment *seg)
{
    const lpt_header *h = seg->header;
    const uint64_t n = atomic_load_explicit(&h->n_active, RELAXED);
    const int64_t cap = seg->capacity;
    if (n + h->free_top != (uint64_t)cap)
        return LPT_ERR_CORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        const int64_t slot = seg->active[i];
        if (slot < 0 || slot >= cap || seg->active_pos[slot] != (int64_t)i)
            return LPT_ERR_CORRUPT;
        const double id = lpt_row(seg, slot)[LPT_COL_TASK_ID];
        if (!valid_task_id(id) || lpt_find_locked(seg, (int64_t)id) != slot)
            return LPT_ERR_CORRUPT;
    }
    /* The free stack must hold exactly the free slots: compare the sum and
     * the sum of squares of its entries with those of the zero rows (a
     * duplicate entry would have to be offset by a missing one in both). */
    uint64_t stack_sum = 0, stack_sq = 0, free_sum = 0, free_sq = 0, free_rows = 0;
    for (uint64_t i = 0; i < h->free_top; i++) {
        const int64_t slot = seg->free_stack[i];
        if (slot < 0 || slot >= cap || seg->active_pos[slot] != -1)
            return LPT_ERR_CORRUPT;
        stack_sum += (uint64_t)slot;
        stack_sq += (uint64_t)slot * (uint64_t)slot;
    }
    for (int64_t slot = 0; slot < cap; slot++) {
        if (lpt_row(seg, slot)[LPT_COL_TASK_ID] != 0.0)
            continue;
        free_rows++;
        free_sum += (uint64_t)slot;
        free_sq += (uint64_t)slot * (uint64_t)slot;
    }
    if (free_rows != h->free_top || free_sum != stack_sum || free_sq != stack_sq)
        return LPT_ERR_CORRUPT;
    uint64_t entries = 0;
    for (uint64_t i = 0; i <= seg->index_mask; i++) {
        const lpt_index_entry *e = &seg->index[i];
        if (e->task_id == 0)
            continue;
        entries++;
        if (e->slot < 0 || e->slot >= cap
            || lpt_row(seg, e->slot)[LPT_COL_TASK_ID] != (double)e->task_id
            || index_position(seg, e->task_id) != (int64_t)i)
            return LPT_ERR_CORRUPT;
    }
    return entries == n ? LPT_OK : LPT_ERR_CORRUPT;
}

int64_t lpt_copy_active_locked(const lpt_segment *seg, int64_t *slots, int64_t *task_ids)
{
    const int64_t n = (int64_t)atomic_load_explicit(&seg->header->n_active, RELAXED);
    for (int64_t i = 0; i < n; i++) {
        const int64_t slot = seg->active[i];
        if (slots)
            slots[i] = slot;
        if (task_ids)
            task_ids[i] = (int64_t)lpt_row(seg, slot)[LPT_COL_TASK_ID];
    }
    return n;
}

int lpt_set_fields_locked(lpt_segment *seg, int64_t task_id, const int64_t *columns,
                          const double *values, int64_t n, int64_t *slot)
{
    for (int64_t i = 0; i < n; i++)
        if (columns[i] <= LPT_COL_TASK_ID || columns[i] >= seg->row_width)
            return LPT_ERR_INVALID;
    *slot = lpt_find_locked(seg, task_id);
    if (*slot < 0)
        return LPT_OK;
    double *row = lpt_row(seg, *slot);
    lpt_undo_begin_locked(seg, *slot, LPT_OP_SET_FIELDS);
    for (int64_t i = 0; i < n; i++) {
        row[columns[i]] = values[i];
        LPT_CRASH_POINT();
    }
    lpt_undo_end_locked(seg);
    return LPT_OK;
}

/* -- labels ---------------------------------------------------------------- */

/* The entry holding `key`, or the empty entry where it would go.  The label
 * index is at most half full, so the probe ends. */
static lpt_label_entry *label_probe(const lpt_segment *seg, uint64_t key)
{
    uint64_t i = mix64(key) & seg->label_mask;
    for (;;) {
        lpt_label_entry *e = &seg->label_index[i];
        const uint64_t k = atomic_load_explicit(&e->key, memory_order_acquire);
        if (k == key || k == 0)
            return e;
        i = (i + 1) & seg->label_mask;
    }
}

int lpt_set_label_locked(lpt_segment *seg, int64_t task_id, uint64_t label_hash,
                         const char *label, uint64_t length, int64_t *slot)
{
    lpt_header *h = seg->header;
    if (label_hash > (uint64_t)LPT_MAX_TASK_ID)
        return LPT_ERR_INVALID;
    *slot = lpt_find_locked(seg, task_id);
    if (*slot < 0)
        return LPT_OK;
    const uint64_t key = label_hash + 1;
    lpt_label_entry *e = label_probe(seg, key);
    if (atomic_load_explicit(&e->key, RELAXED) == 0) {
        if (h->label_count >= h->layout.label_capacity
            || length > h->layout.label_arena_bytes - h->label_arena_used)
            return LPT_ERR_LABELS_FULL;
        /* Reserve the bytes before publishing: a holder dying in between
         * leaks them, never hands them out twice. */
        const uint64_t offset = h->label_arena_used;
        memcpy(seg->label_arena + offset, label, (size_t)length);
        h->label_arena_used = offset + length;
        e->offset = (uint32_t)offset;
        e->length = (uint32_t)length;
        atomic_store_explicit(&e->key, key, memory_order_release);
        h->label_count++;
    }
    lpt_row(seg, *slot)[LPT_COL_LABEL_HASH] = (double)label_hash;
    return LPT_OK;
}

int lpt_label_lookup(const lpt_segment *seg, uint64_t label_hash, const char **label,
                     uint64_t *length)
{
    if (label_hash > (uint64_t)LPT_MAX_TASK_ID)
        return 0;
    const lpt_label_entry *e = label_probe(seg, label_hash + 1);
    if (atomic_load_explicit(&e->key, memory_order_acquire) == 0)
        return 0;
    *label = seg->label_arena + e->offset;
    *length = e->length;
    return 1;
}

/* -- lifecycle ------------------------------------------------------------- */

int lpt_segment_create(void *base, uint64_t size, int64_t capacity, int64_t row_width,
                       int64_t creator_pid, lpt_segment *seg)
{
    lpt_layout l;
    int rc = lpt_layout_compute(capacity, row_width, &l);
    if (rc != LPT_OK)
        return rc;
    if ((uintptr_t)base % LPT_ALIGNMENT != 0)
        return LPT_ERR_ALIGNMENT;
    if (size < l.total_bytes)
        return LPT_ERR_INVALID;
    /* Every byte, so the invariants never depend on how the memory came. */
    memset(base, 0, (size_t)l.total_bytes);
    lpt_header *h = (lpt_header *)base;
    h->layout_version = LPT_LAYOUT_VERSION;
    h->header_bytes = LPT_HEADER_BYTES;
    h->creator_pid = creator_pid;
    h->layout = l;
    view(base, &l, seg);
    rc = lpt_lock_init(&h->lock);
    if (rc != LPT_OK)
        return rc;
    lpt_rebuild_locked(seg); /* all rows zero: an empty pool */
    /* The creator is a user before anyone can see the segment, so no process
     * opening the session ever finds it without a live user and removes it. */
    atomic_store_explicit(&seg->procs[0], lpt_proc_token(creator_pid), RELAXED);
    atomic_store_explicit(&h->generation, 0, RELAXED);
    atomic_store_explicit(&h->magic, LPT_MAGIC, memory_order_release);
    return LPT_OK;
}

int lpt_segment_attach(void *base, uint64_t size, int64_t capacity, int64_t row_width,
                       lpt_segment *seg, lpt_layout *found, uint32_t *found_version)
{
    const lpt_header *h = (const lpt_header *)base;
    if ((uintptr_t)base % LPT_ALIGNMENT != 0)
        return LPT_ERR_ALIGNMENT;
    if (size < sizeof(uint64_t))
        return LPT_ERR_NOT_READY;
    const uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (magic == 0)
        return LPT_ERR_NOT_READY;
    if (magic != LPT_MAGIC || size < LPT_HEADER_BYTES)
        return LPT_ERR_NOT_LPTRACK;
    *found = h->layout;
    *found_version = h->layout_version;
    lpt_layout expected;
    int rc = lpt_layout_compute(capacity, row_width, &expected);
    if (rc != LPT_OK)
        return rc;
    if (h->layout_version != LPT_LAYOUT_VERSION || h->header_bytes != LPT_HEADER_BYTES
        || memcmp(&h->layout, &expected, sizeof expected) != 0)
        return LPT_ERR_LAYOUT;
    if (size < expected.total_bytes)
        return LPT_ERR_INVALID;
    view(base, &expected, seg);
    return LPT_OK;
}

int lpt_segment_reset_lock(lpt_segment *seg)
{
    atomic_store_explicit(&seg->header->lock_owner_pid, 0, RELAXED);
    return lpt_lock_init(&seg->header->lock);
}

void lpt_segment_stats(const lpt_segment *seg, lpt_stats *out)
{
    const lpt_header *h = seg->header;
    out->generation = atomic_load_explicit(&h->generation, RELAXED);
    out->n_active = atomic_load_explicit(&h->n_active, RELAXED);
    out->n_updates = 0;
    for (uint32_t i = 0; i < LPT_UNDO_AREAS; i++)
        out->n_updates += atomic_load_explicit(&undo_area(seg, i)->n_updates, RELAXED);
    out->n_recomputations = atomic_load_explicit(&h->n_recomputations, RELAXED);
    out->n_lock_waits = atomic_load_explicit(&h->n_lock_waits, RELAXED);
    out->n_recoveries = atomic_load_explicit(&h->n_recoveries, RELAXED);
    out->label_count = h->label_count;
    out->creator_pid = h->creator_pid;
    out->lock_owner_pid = atomic_load_explicit(&h->lock_owner_pid, RELAXED);
    out->last_recovered_op = h->last_recovered_op;
    out->layout_version = h->layout_version;
}

/* -- lock ------------------------------------------------------------------ */

/* The previous holder died holding the lock: put back the row it was
 * changing, then rebuild everything derived from the rows. */
static void recover_locked(lpt_segment *seg)
{
    lpt_header *h = seg->header;
    /* The dead holder's record: the one it named when it took the lock (if it
     * died before naming it, the previous holder's, which it closed). */
    const uint32_t area = atomic_load_explicit(&h->holder_undo_area, RELAXED);
    lpt_undo_area *undo = undo_area(seg, area < LPT_UNDO_AREAS ? area : 0);
    const uint32_t op = atomic_load_explicit(&undo->op, RELAXED);
    if (op == LPT_OP_CLEAR) {
        zero_rows(seg);
    } else if (op != LPT_OP_NONE && undo->slot >= 0 && undo->slot < seg->capacity) {
        row_write_begin(seg, undo->slot);
        memcpy(lpt_row(seg, undo->slot), undo->row, (size_t)seg->row_width * sizeof(double));
        row_write_end(seg, undo->slot);
    }
    /* Any other sequence number left odd (the tag was not yet written, or a
     * recovery died itself) would send every lock-free reader to the lock
     * forever; the row is whole (nothing was written to it yet, or it is
     * rebuilt below from what it holds). */
    for (int64_t slot = 0; slot < seg->capacity; slot++)
        if (atomic_load_explicit(&seg->row_seq[slot], RELAXED) & 1)
            row_write_end(seg, slot);
    atomic_store_explicit(&undo->op, LPT_OP_NONE, RELAXED);
    h->last_recovered_op = op;
    lpt_rebuild_locked(seg);
    lpt_bump_locked(&h->n_recoveries);
}

static int finish_acquire(lpt_segment *seg, int rc, int owner_died)
{
    if (rc != LPT_OK)
        return rc;
    if (owner_died) {
        recover_locked(seg);
        rc = lpt_lock_mark_consistent(&seg->header->lock);
        if (rc != LPT_OK) {
            lpt_lock_release(&seg->header->lock);
            return rc;
        }
    }
    const int64_t pid = lpt_self_pid();
    const uint32_t area = (uint32_t)((uint64_t)pid % LPT_UNDO_AREAS);
    seg->undo = undo_area(seg, area);
    atomic_store_explicit(&seg->header->holder_undo_area, area, RELAXED);
    atomic_store_explicit(&seg->header->lock_owner_pid, pid, RELAXED);
    return LPT_OK;
}

int lpt_segment_trylock(lpt_segment *seg)
{
    int owner_died;
    const int rc = lpt_lock_try(&seg->header->lock, &owner_died);
    return finish_acquire(seg, rc, owner_died);
}

/* Most holds last a few hundred nanoseconds, a distribution pass tens of
 * microseconds (1,000 tasks); a futex sleep and wake-up costs tens of
 * microseconds on a virtual machine.  So a busy lock is first polled (pause,
 * read, try only when it looks free) for about as long as a pass takes, about
 * 50 us (256 x 8 pauses of about 25 ns), and only then slept on.  Measured with
 * two processes on one session: 64 polls 1.26x one process, 256 polls 1.44-1.57x. */
#define LPT_SPIN_POLLS 256
#define LPT_SPIN_PAUSES 8

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

int lpt_segment_lock(lpt_segment *seg, int64_t timeout_ns)
{
    int rc = lpt_segment_trylock(seg);
    for (int poll = 0; rc == LPT_BUSY && poll < LPT_SPIN_POLLS; poll++) {
        for (int i = 0; i < LPT_SPIN_PAUSES; i++)
            cpu_relax();
        if (!lpt_lock_looks_held(&seg->header->lock))
            rc = lpt_segment_trylock(seg);
    }
    if (rc != LPT_BUSY) {
        if (rc == LPT_OK)
            lpt_bump_locked(&seg->header->n_lock_waits);
        return rc;
    }
    int owner_died;
    rc = lpt_lock_wait(&seg->header->lock, timeout_ns, &owner_died);
    rc = finish_acquire(seg, rc, owner_died);
    if (rc == LPT_OK)
        lpt_bump_locked(&seg->header->n_lock_waits);
    return rc;
}

int lpt_segment_unlock(lpt_segment *seg)
{
    const int64_t owner = atomic_load_explicit(&seg->header->lock_owner_pid, RELAXED);
    atomic_store_explicit(&seg->header->lock_owner_pid, 0, RELAXED);
    const int rc = lpt_lock_release(&seg->header->lock);
    if (rc != LPT_OK) /* not ours to release: leave the holder's pid in place */
        atomic_store_explicit(&seg->header->lock_owner_pid, owner, RELAXED);
    return rc;
}

int lpt_segment_unlock_handoff(lpt_segment *seg, int64_t max_wait_ns)
{
    const int sleepers = lpt_lock_has_sleepers(&seg->header->lock);
    const int rc = lpt_segment_unlock(seg);
    if (rc != LPT_OK || !sleepers)
        return rc;
    const int64_t deadline = lpt_monotonic_ns() + max_wait_ns;
    while (!lpt_lock_looks_held(&seg->header->lock) && lpt_monotonic_ns() < deadline)
        for (int i = 0; i < LPT_SPIN_PAUSES; i++)
            cpu_relax();
    return LPT_OK;
}

int lpt_segment_lock_bench(lpt_segment *seg, int64_t n, double *ns_per_pair)
{
    const int64_t start = lpt_monotonic_ns();
    for (int64_t i = 0; i < n; i++) {
        int rc = lpt_segment_trylock(seg);
        if (rc != LPT_OK)
            return rc;
        rc = lpt_segment_unlock(seg);
        if (rc != LPT_OK)
            return rc;
    }
    *ns_per_pair = n > 0 ? (double)(lpt_monotonic_ns() - start) / (double)n : 0.0;
    return LPT_OK;
}
