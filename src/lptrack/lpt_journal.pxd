# Mirrors csrc/lpt_journal.h: keep in sync.
from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from "lpt_journal.h" nogil:
    uint64_t LPT_JOURNAL_MAGIC
    unsigned int LPT_JOURNAL_VERSION
    int64_t LPT_JOURNAL_MIN_CAPACITY
    int64_t LPT_JOURNAL_MAX_CAPACITY

    ctypedef struct lpt_journal_header:
        uint32_t version
        int64_t capacity
        int64_t creator_pid
        uint64_t head
        uint64_t tail
        uint64_t lost

    ctypedef struct lpt_journal:
        lpt_journal_header *header
        uint64_t mask

    size_t lpt_journal_bytes(int64_t capacity)
    int lpt_journal_init(void *image, size_t size, int64_t capacity, int64_t creator_pid, lpt_journal *j)
    int lpt_journal_attach(void *image, size_t size, lpt_journal *j)
    void lpt_journal_append(const lpt_journal *j, int64_t task_id, double score)
    int lpt_journal_read(const lpt_journal *j, int64_t *task_ids, double *scores, int64_t max,
                         int64_t wait_ns, int64_t *n_read, int64_t *n_lost)
    int lpt_journal_deferred(const lpt_journal *j)
    void lpt_journal_set_deferred(const lpt_journal *j, int deferred)
    int64_t lpt_journal_pending(const lpt_journal *j)
