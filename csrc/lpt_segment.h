/* lpt_segment.h: the shared segment: layout, create/attach, task index, free
 * stack, active list, label registry, crash recovery and the pool operations.
 *
 * Keep in sync with src/lptrack/lpt_segment.pxd.
 *
 * A segment is one contiguous, position-independent byte image (regions are
 * found by offsets stored in the header, never by pointers), so it can live in
 * POSIX shared memory mapped at different addresses by different processes, or
 * in ordinary process memory for a local table.  Layout, in order:
 *
 *   header       lpt_header (1024 bytes): identity, pool state, counters,
 *                crash-recovery record, the lock in its own cache line
 *   index        index_size x lpt_index_entry: task id -> slot, open addressing
 *                with linear probing and backward-shift deletion (no
 *                tombstones); index_size is a power of two >= 2 * capacity, so
 *                the load factor never exceeds 1/2 and every probe ends
 *   free stack   capacity x int64: free slots, top at header.free_top
 *   active list  capacity x int64: the dense list of active slots, then
 *   active pos   capacity x int64: each slot's position in it (-1 when free);
 *                removal swaps the last entry into the hole
 *   label index  label_index_size x lpt_label_entry: label hash -> arena span
 *   label arena  label_arena_bytes of UTF-8, append-only
 *   undo areas   LPT_UNDO_AREAS x lpt_undo_area: the crash-recovery records
 *   processes    LPT_MAX_PROCS x uint64: the registry of attached processes
 *                (lpt_liveness.h), so a session whose processes all died is
 *                recognised as stale
 *   row seq      capacity x uint64: each row's sequence number, odd while the
 *                row is being written, so readers copy rows without the lock
 *                and never see half of a change (lpt_read_row)
 *   sampler      each slot's sampling weight, a sum tree of them and a
 *                per-slot flag (lpt_sampler.h)
 *   rows         capacity x row_width x float64, 64-byte aligned: the source
 *                of truth; everything above except labels is rebuilt from them
 *
 * Row columns follow SPEC.md (TASK_ID = 0 ... LABEL_HASH = 17); a row whose
 * TASK_ID is 0.0 is free.  Every pool change is O(1) under the lock; only
 * clear and rebuild scan the capacity.
 *
 * Functions named *_locked require the caller to hold the segment lock
 * (lpt_segment_lock / lpt_segment_trylock) and never wait.
 */
#ifndef LPT_SEGMENT_H
#define LPT_SEGMENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lpt_lock.h"

/* "LPTRACK" + format byte, read as a little-endian uint64.  Written last by
 * the creator, so an attacher that sees it sees an initialised segment. */
#define LPT_MAGIC UINT64_C(0x014b43415254504c)
/* Bump on any change to the header or the regions; attach refuses others. */
#define LPT_LAYOUT_VERSION 6u
#define LPT_HEADER_BYTES 1024u
#define LPT_ALIGNMENT 64u
#define LPT_HEADER_FIELDS_BYTES 320u /* checked in lpt_segment.c */

/* Row columns the C core reads or writes (the full list is in SPEC.md). */
enum lpt_column {
    LPT_COL_TASK_ID = 0,
    LPT_COL_CREATION_TIME = 1,
    LPT_COL_COMPLETION_COUNT = 2,
    LPT_COL_REWARD_EMA = 3,
    LPT_COL_LP_SCORE = 4,
    LPT_COL_SUCCESS_RATE_EMA = 5,
    LPT_COL_TOTAL_SCORE = 6,
    LPT_COL_LAST_SCORE = 7,
    LPT_COL_SUCCESS_THRESHOLD = 8,
    LPT_COL_SEED = 9,
    LPT_COL_GENERATOR_TYPE = 10,
    LPT_COL_EMA_SQUARED = 11,
    LPT_COL_IS_ACTIVE = 12,
    LPT_COL_P_FAST = 13,
    LPT_COL_P_SLOW = 14,
    LPT_COL_P_TRUE = 15,
    LPT_COL_RANDOM_BASELINE = 16,
    LPT_COL_LABEL_HASH = 17,
    LPT_MIN_ROW_WIDTH = 18
};

/* Limits.  Task ids are integers in [1, 2**53) (exact in a float64 row). */
#define LPT_MAX_TASK_ID ((INT64_C(1) << 53) - 1)
#define LPT_MAX_CAPACITY (INT64_C(1) << 30)
#define LPT_MAX_ROW_WIDTH 4096u
/* The label registry holds max(LPT_LABELS_MIN, capacity) distinct labels and
 * LPT_LABEL_BYTES_PER_LABEL bytes of UTF-8 per label on average (one label
 * may use the whole arena; the arena is capped at 4 GiB).  Labels are never removed: a session that keeps
 * inventing new labels eventually gets LPT_ERR_LABELS_FULL. */
#define LPT_LABELS_MIN 1024u
#define LPT_LABEL_BYTES_PER_LABEL 64u
/* Processes a segment's registry holds at once (lpt_liveness.h). */
#define LPT_MAX_PROCS 4096u

/* Crash-recovery records.  Only the lock holder writes one, so every process
 * could share a single record; each uses the one its pid picks instead, so that
 * a hold's undo writes stay in the holder's own cache lines. */
#define LPT_UNDO_AREAS 64u

/* What a crash-recovery record says was in progress (lpt_undo_area.op). */
enum lpt_op {
    LPT_OP_NONE = 0,
    LPT_OP_CLAIM = 1,
    LPT_OP_RELEASE = 2,
    LPT_OP_UPDATE = 3,
    LPT_OP_SET_FIELDS = 4,
    LPT_OP_EXTERNAL = 5, /* a row write from above the C core, under lock() */
    LPT_OP_CLEAR = 6     /* clear: recovery finishes it (zeroes every row) */
};

/* While op != LPT_OP_NONE, row holds the pre-image of row `slot`: a locker
 * that inherits the lock from a dead holder restores it, then rebuilds the
 * index from the rows.  Followed by row_width doubles, the whole rounded up to
 * LPT_ALIGNMENT (lpt_undo_area_bytes). */
typedef struct lpt_undo_area {
    _Atomic uint32_t op;
    uint32_t reserved;
    int64_t slot;
    _Atomic uint64_t n_updates; /* updates applied by holders using this record */
    uint64_t reserved_tail[5];
    double row[];
} lpt_undo_area;

typedef struct lpt_index_entry {
    int64_t task_id; /* 0: empty */
    int64_t slot;
} lpt_index_entry;

typedef struct lpt_label_entry {
    _Atomic uint64_t key; /* label hash + 1 (hashes are < 2**53); 0: empty */
    uint32_t offset; /* into the arena */
    uint32_t length; /* bytes of UTF-8, no terminator */
} lpt_label_entry;

/* Sizes and offsets of a segment, a pure function of (capacity, row_width). */
typedef struct lpt_layout {
    uint64_t capacity;
    uint64_t row_width;
    uint64_t index_size;       /* power of two >= 2 * capacity */
    uint64_t label_capacity;   /* distinct labels */
    uint64_t label_index_size; /* power of two >= 2 * label_capacity */
    uint64_t label_arena_bytes;
    uint64_t off_index;
    uint64_t off_free;
    uint64_t off_active;
    uint64_t off_active_pos;
    uint64_t off_label_index;
    uint64_t off_label_arena;
    uint64_t off_undo;
    uint64_t off_procs;
    uint64_t off_row_seq;
    uint64_t off_sampler;
    uint64_t off_rows;
    uint64_t total_bytes;
} lpt_layout;

typedef struct lpt_header {
    /* identity: written once by the creator, magic last */
    _Atomic uint64_t magic;
    uint32_t layout_version;
    uint32_t header_bytes;
    int64_t creator_pid;
    lpt_layout layout;

    /* Processes sharing a segment take turns holding its lock; each cache line
     * a hold writes then moves between their cores.  So the header fields that
     * holds read are kept apart from those they write, and the written ones
     * fit in two lines, the hot line and the lock's (each process's undo
     * record is in its own lines, lpt_undo_area). */

    /* liveness (lpt_liveness.h), lock-free: set once the registry overflowed
     * (the segment is then never judged stale), and once the segment was
     * found stale and is being removed (attachers must go and re-create) */
    _Atomic uint32_t procs_overflow;
    _Atomic uint32_t retired;

    /* the scoring rule and the sampler (lpt_sampler.h), under the lock; read
     * by every hold, written by configure, the pass and threshold refreshes */
    uint32_t score_mode; /* enum lpt_score_mode */
    uint32_t score_reserved;
    double exploration_bonus;
    double min_samples_for_lp;
    double evict_min_presentations; /* what makes a task evictable (evict tree keys) */
    double evict_percentile;        /* of evict_threshold */
    double evict_threshold;         /* NaN: recompute before use */

    /* rarely written (read without the lock, hence atomic) */
    _Atomic uint64_t n_recomputations;
    _Atomic uint64_t n_recoveries;
    uint64_t label_count;
    uint64_t label_arena_used;

    /* the hot line: what pool changes write (n_active and generation are
     * also read without the lock, hence atomic) */
    _Alignas(LPT_ALIGNMENT) _Atomic uint64_t generation; /* bumped on every pool-membership change */
    _Atomic uint64_t n_active;
    uint64_t free_top;
    uint64_t n_mature; /* active tasks with count >= min_samples_for_lp */
    _Atomic uint64_t n_lock_waits; /* acquisitions that found the lock busy */
    uint32_t last_recovered_op;
    uint32_t hot_reserved;
    /* free slots held for the new tasks of processes that just evicted, and
     * the locked picks they turned away since none was held (lpt_sampler.h,
     * lpt_choose_locked) */
    _Atomic uint64_t n_replacements;
    uint64_t replacement_refusals;

    /* room to grow without moving the lock (a layout version bump still) */
    uint8_t reserved[LPT_HEADER_BYTES - 2 * LPT_ALIGNMENT - LPT_HEADER_FIELDS_BYTES];

    /* the lock's line: the mutex and what its holder writes on taking it */
    _Alignas(LPT_ALIGNMENT) lpt_lock lock;
    _Atomic int64_t lock_owner_pid;     /* for error messages; 0 when free */
    _Atomic uint32_t holder_undo_area;  /* the record the holder uses */
    uint32_t lock_reserved;
    uint8_t reserved_tail[LPT_ALIGNMENT];
} lpt_header;

/* A process-local view of a segment: pointers into one mapping of it.
 * Never stored in the segment. */
typedef struct lpt_segment {
    lpt_header *header;
    lpt_index_entry *index;
    int64_t *free_stack;
    int64_t *active;
    int64_t *active_pos;
    lpt_label_entry *label_index;
    char *label_arena;
    char *undo_areas;
    lpt_undo_area *undo; /* this process's record (lpt_segment_trylock picks it) */
    uint64_t undo_area_bytes;
    _Atomic uint64_t *procs;
    _Atomic uint64_t *row_seq;
    double *weights;  /* the sampler region (lpt_sampler.h) */
    double *tree;
    double *evict_key;
    int64_t *evict_tree;
    int64_t evict_leaves;
    double *scratch;
    uint8_t *mature;
    double *rows;
    int64_t capacity;
    int64_t row_width;
    uint64_t index_mask;
    uint64_t label_mask;
} lpt_segment;

/* What a new row starts with (SPEC.md track_task_creation). */
typedef struct lpt_new_task {
    int64_t task_id;
    double creation_time;
    double success_threshold;
    double seed;
    double generator_type;
    double lp_score;   /* the algorithm's exploration bonus; 0 for a plain track */
    double label_hash; /* 0: no label */
} lpt_new_task;

/* Header snapshot for inspection and tests (racy reads, no lock). */
typedef struct lpt_stats {
    uint64_t generation;
    uint64_t n_active;
    uint64_t n_updates;
    uint64_t n_recomputations;
    uint64_t n_lock_waits;
    uint64_t n_recoveries;
    uint64_t label_count;
    int64_t creator_pid;
    int64_t lock_owner_pid;
    uint32_t last_recovered_op;
    uint32_t layout_version;
} lpt_stats;

/* -- layout and lifecycle -------------------------------------------------- */

/* The layout for (capacity, row_width); LPT_ERR_INVALID if out of limits. */
int lpt_layout_compute(int64_t capacity, int64_t row_width, lpt_layout *out);

/* Initialise a fresh segment in [base, base + size) and view it.  Writes every
 * byte of the image, the magic last. */
int lpt_segment_create(void *base, uint64_t size, int64_t capacity, int64_t row_width,
                       int64_t creator_pid, lpt_segment *seg);

/* View an existing segment, checking that it is one of (capacity, row_width)
 * at this layout version.  Reads only.  *found receives what the header
 * declares (for error messages) once the magic is present:
 * LPT_ERR_NOT_READY (magic not written yet), LPT_ERR_NOT_LPTRACK,
 * LPT_ERR_LAYOUT, LPT_ERR_INVALID (buffer too small for what it declares). */
int lpt_segment_attach(void *base, uint64_t size, int64_t capacity, int64_t row_width,
                       lpt_segment *seg, lpt_layout *found, uint32_t *found_version);

/* Re-initialise the lock of a segment copied from another image (a local
 * table restored from a pickle): the copied mutex state means nothing here. */
int lpt_segment_reset_lock(lpt_segment *seg);

void lpt_segment_stats(const lpt_segment *seg, lpt_stats *out);

/* -- lock ------------------------------------------------------------------ */

/* Both repair the segment if the previous holder died holding the lock
 * (restore the undo row, rebuild from the rows: O(capacity), rare). */
int lpt_segment_trylock(lpt_segment *seg);                    /* LPT_OK / LPT_BUSY */
int lpt_segment_lock(lpt_segment *seg, int64_t timeout_ns);   /* counts a lock wait */
int lpt_segment_unlock(lpt_segment *seg);
/* lpt_segment_unlock, then, when a waiter slept on the lock, poll (at most
 * max_wait_ns) until another process takes it: a holder about to lock again at
 * once (the distribution pass's publishing holds) lets the sleeper go first,
 * instead of keeping it waiting through every one of its holds (a woken sleeper
 * needs tens of microseconds to run; the holder would relock within one). */
int lpt_segment_unlock_handoff(lpt_segment *seg, int64_t max_wait_ns);

/* Time n uncontended lock/unlock pairs of this segment's lock (the path every
 * operation pays); *ns_per_pair receives the mean. */
int lpt_segment_lock_bench(lpt_segment *seg, int64_t n, double *ns_per_pair);

/* -- pool operations (lock held) ------------------------------------------- */

/* Counters change only under the lock, so a plain load and store will do (no
 * locked read-modify-write on the hot path); being atomic lets unlocked
 * readers see whole values. */
static inline void lpt_bump_locked(_Atomic uint64_t *counter)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static inline double *lpt_row(const lpt_segment *seg, int64_t slot)
{
    return seg->rows + slot * seg->row_width;
}

/* Distribution passes run on the segment so far, by any process (read
 * without the lock). */
static inline uint64_t lpt_recomputations(const lpt_segment *seg)
{
    return atomic_load_explicit(&seg->header->n_recomputations, memory_order_relaxed);
}

/* Loops over the active list visit rows in an order churn makes random: they
 * fetch the row this many entries ahead, so its lines arrive while others are
 * being used. */
#define LPT_ROW_PREFETCH 8

int64_t lpt_find_locked(const lpt_segment *seg, int64_t task_id);        /* slot or -1 */
int64_t lpt_claim_locked(lpt_segment *seg, const lpt_new_task *task);   /* slot or -1 (full) */
/* Claim an untracked task (the caller checked) and leave the crash-recovery
 * record open under `op`, its pre-image the free row: the caller's further
 * writes to the row then roll back together with the claim.  -1 when full. */
int64_t lpt_claim_open_locked(lpt_segment *seg, const lpt_new_task *task, uint32_t op);
int lpt_release_locked(lpt_segment *seg, int64_t task_id);              /* 1 released, 0 absent */
void lpt_clear_locked(lpt_segment *seg);                                 /* O(capacity) */
void lpt_rebuild_locked(lpt_segment *seg);                               /* O(capacity) */
int lpt_verify_locked(const lpt_segment *seg);                           /* O(capacity + index) */

/* Copy the active slots and/or their task ids (either may be NULL) in
 * active-list order; returns how many (header.n_active). */
int64_t lpt_copy_active_locked(const lpt_segment *seg, int64_t *slots, int64_t *task_ids);

/* Write {columns[i]: values[i]} into the task's row; LPT_ERR_INVALID for a
 * column out of range or TASK_ID.  *slot = -1 (and nothing written) if the
 * task is not tracked. */
int lpt_set_fields_locked(lpt_segment *seg, int64_t task_id, const int64_t *columns,
                          const double *values, int64_t n, int64_t *slot);

/* Crash-recovery record around a row change: begin saves the row's
 * pre-image and makes the row's sequence number odd, end discards the record
 * and makes it even again (a no-op when no record is open).  Every row write
 * but a single-column store (set_label) happens inside such a record. */
void lpt_undo_begin_locked(lpt_segment *seg, int64_t slot, uint32_t op);
void lpt_undo_end_locked(lpt_segment *seg);

/* Copy row `slot` without the lock: LPT_OK with a copy no writer touched
 * while it was taken, or LPT_BUSY after `attempts` tries each found the row
 * mid-write (the caller then takes the lock, which also repairs a row a dead
 * writer left behind).  Never waits. */
int lpt_read_row(const lpt_segment *seg, int64_t slot, double *out, int attempts);

/* -- labels ---------------------------------------------------------------- */

/* Register `label` under `label_hash` (the first registration of a hash wins)
 * and store the hash in the task's row; *slot = -1 (nothing changed) if the
 * task is not tracked.  LPT_ERR_LABELS_FULL changes nothing. */
int lpt_set_label_locked(lpt_segment *seg, int64_t task_id, uint64_t label_hash,
                         const char *label, uint64_t length, int64_t *slot);

/* The label registered under `label_hash`: 1 and its span, or 0.  Safe
 * without the lock: entries are append-only and published key-last. */
int lpt_label_lookup(const lpt_segment *seg, uint64_t label_hash, const char **label,
                     uint64_t *length);

#endif /* LPT_SEGMENT_H */
