# Mirrors csrc/lpt_segment.h: keep in sync.
from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from "lpt_segment.h" nogil:
    const uint32_t LPT_LAYOUT_VERSION
    const uint64_t LPT_ALIGNMENT
    const int64_t LPT_MAX_TASK_ID
    const int64_t LPT_MAX_CAPACITY
    enum: LPT_MAX_PROCS
    enum: LPT_COL_LABEL_HASH

    enum lpt_op:
        LPT_OP_NONE
        LPT_OP_CLAIM
        LPT_OP_RELEASE
        LPT_OP_UPDATE
        LPT_OP_SET_FIELDS
        LPT_OP_EXTERNAL
        LPT_OP_CLEAR

    ctypedef struct lpt_layout:
        uint64_t capacity
        uint64_t row_width
        uint64_t index_size
        uint64_t label_capacity
        uint64_t label_index_size
        uint64_t label_arena_bytes
        uint64_t off_rows
        uint64_t total_bytes

    ctypedef struct lpt_header:
        pass

    ctypedef struct lpt_segment:
        lpt_header *header
        double *rows
        int64_t capacity
        int64_t row_width

    ctypedef struct lpt_new_task:
        int64_t task_id
        double creation_time
        double success_threshold
        double seed
        double generator_type
        double lp_score
        double label_hash

    ctypedef struct lpt_stats:
        uint64_t generation
        uint64_t n_active
        uint64_t n_updates
        uint64_t n_recomputations
        uint64_t n_lock_waits
        uint64_t n_recoveries
        uint64_t label_count
        int64_t creator_pid
        int64_t lock_owner_pid
        uint32_t last_recovered_op
        uint32_t layout_version

    int lpt_layout_compute(int64_t capacity, int64_t row_width, lpt_layout *out)
    int lpt_segment_create(void *base, uint64_t size, int64_t capacity, int64_t row_width,
                           int64_t creator_pid, lpt_segment *seg)
    int lpt_segment_attach(void *base, uint64_t size, int64_t capacity, int64_t row_width,
                           lpt_segment *seg, lpt_layout *found, uint32_t *found_version)
    int lpt_segment_reset_lock(lpt_segment *seg)
    void lpt_segment_stats(const lpt_segment *seg, lpt_stats *out)
    uint64_t lpt_recomputations(const lpt_segment *seg)

    int lpt_segment_trylock(lpt_segment *seg)
    int lpt_segment_lock(lpt_segment *seg, int64_t timeout_ns)
    int lpt_segment_unlock(lpt_segment *seg)
    int lpt_segment_unlock_handoff(lpt_segment *seg, int64_t max_wait_ns)
    int lpt_segment_lock_bench(lpt_segment *seg, int64_t n, double *ns_per_pair)

    double *lpt_row(const lpt_segment *seg, int64_t slot)
    int64_t lpt_find_locked(const lpt_segment *seg, int64_t task_id)
    int64_t lpt_claim_locked(lpt_segment *seg, const lpt_new_task *task)
    int lpt_release_locked(lpt_segment *seg, int64_t task_id)
    void lpt_clear_locked(lpt_segment *seg)
    void lpt_rebuild_locked(lpt_segment *seg)
    int lpt_verify_locked(const lpt_segment *seg)
    int64_t lpt_copy_active_locked(const lpt_segment *seg, int64_t *slots, int64_t *task_ids)
    int lpt_set_fields_locked(lpt_segment *seg, int64_t task_id, const int64_t *columns,
                              const double *values, int64_t n, int64_t *slot)
    void lpt_undo_begin_locked(lpt_segment *seg, int64_t slot, uint32_t op)
    void lpt_undo_end_locked(lpt_segment *seg)
    int lpt_read_row(const lpt_segment *seg, int64_t slot, double *out, int attempts)

    int lpt_set_label_locked(lpt_segment *seg, int64_t task_id, uint64_t label_hash,
                             const char *label, uint64_t length, int64_t *slot)
    int lpt_label_lookup(const lpt_segment *seg, uint64_t label_hash, const char **label,
                         uint64_t *length)
