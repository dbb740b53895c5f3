/* lpt_journal.h: a session's outcome journal, a lock-free multi-producer,
 * single-consumer ring of (task id, score) records in its own shared segment.
 *
 * Keep in sync with src/lptrack/lpt_journal.pxd.
 *
 * Every process of a host that records an episode outcome appends it here
 * (besides updating the pool); one process per host, the synchroniser of
 * lptrack.distributed, reads the outcomes in order and exports them to the
 * other hosts.  Producers never wait and never fail:
 *   - a producer claims a ticket with one atomic fetch-add on `head`, writes
 *     its entry (slot ticket % capacity) and publishes it by storing
 *     ticket + 1 into the entry's sequence word (release);
 *   - the reader takes entries in ticket order from `tail`, up to the first
 *     one not yet published.  An entry still unpublished after the reader's
 *     wait was claimed by a producer that died (or stalled) between claim and
 *     publication: it is skipped and counted lost;
 *   - when the reader falls more than `capacity` entries behind, producers
 *     have overwritten the oldest unread entries: they are counted lost.
 *     A reader meets an entry being overwritten as a sequence word that
 *     changed while it read (a seqlock), never as a torn record.
 * The `deferred` flag tells the session's processes whether an outcome also
 * updates the pool at once (0) or only goes to the journal (1), the reader
 * applying it later (lptrack.distributed's lockstep mode).
 * Linux/x86-64 and any C11 platform with lock-free 64-bit atomics.
 */
#ifndef LPT_JOURNAL_H
#define LPT_JOURNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* "lptjrnl" + a layout version digit, written last by the creator. */
#define LPT_JOURNAL_MAGIC UINT64_C(0x6c70746a726e6c31)
#define LPT_JOURNAL_VERSION 1u
/* Capacity bounds (entries, a power of two): 32 bytes each. */
#define LPT_JOURNAL_MIN_CAPACITY 2
#define LPT_JOURNAL_MAX_CAPACITY (INT64_C(1) << 30)

typedef struct lpt_journal_entry {
    _Atomic uint64_t seq;        /* ticket + 1 once published; 0 never written */
    _Atomic int64_t task_id;
    _Atomic uint64_t score_bits; /* the double's bits */
    uint64_t reserved;
} lpt_journal_entry;

typedef struct lpt_journal_header {
    _Atomic uint64_t magic;
    uint32_t version;
    uint32_t entry_bytes;
    int64_t capacity;
    int64_t creator_pid;
    _Atomic uint64_t deferred; /* 1: the session's updates go to the journal only */
    unsigned char pad0[24];
    /* Producers' line: the next ticket. */
    _Atomic uint64_t head;
    unsigned char pad1[56];
    /* The reader's line (one reader): the next ticket to read, outcomes lost. */
    _Atomic uint64_t tail;
    _Atomic uint64_t lost;
    unsigned char pad2[48];
} lpt_journal_header;

/* A process's view of a journal image (nothing in it is shared state). */
typedef struct lpt_journal {
    lpt_journal_header *header;
    lpt_journal_entry *entries;
    uint64_t mask;
} lpt_journal;

/* Bytes of a journal of `capacity` entries (a power of two within the bounds),
 * or 0 if `capacity` is not one. */
size_t lpt_journal_bytes(int64_t capacity);

/* Initialise a zero-filled, 64-byte aligned image of lpt_journal_bytes(capacity)
 * bytes (magic last) and bind `j` to it: LPT_OK or LPT_ERR_INVALID/ALIGNMENT. */
int lpt_journal_init(void *image, size_t size, int64_t capacity, int64_t creator_pid, lpt_journal *j);

/* Bind `j` to an initialised image: LPT_OK, LPT_ERR_NOT_READY (magic not yet
 * written), LPT_ERR_NOT_LPTRACK, LPT_ERR_LAYOUT (another version, or a size
 * that does not match the declared capacity) or LPT_ERR_ALIGNMENT. */
int lpt_journal_attach(void *image, size_t size, lpt_journal *j);

/* Record one outcome.  Never waits, never fails (see the overflow rule above). */
void lpt_journal_append(const lpt_journal *j, int64_t task_id, double score);

/* The single reader: copy up to `max` outcomes, in ticket order, from the
 * tail up to the head as it was on entry, into task_ids/scores; *n_read gets
 * how many.  An unpublished entry below that head is waited for at most
 * `wait_ns` (from its first sighting in this call), then skipped as lost.
 * *n_lost gets the outcomes lost in this call (overwritten or skipped), which
 * are also added to the header's `lost`.  Returns LPT_OK. */
int lpt_journal_read(const lpt_journal *j, int64_t *task_ids, double *scores, int64_t max,
                     int64_t wait_ns, int64_t *n_read, int64_t *n_lost);

/* The `deferred` flag: read on every journaled update (one load of a line
 * that is rarely written), set by the reader. */
int lpt_journal_deferred(const lpt_journal *j);
void lpt_journal_set_deferred(const lpt_journal *j, int deferred);

/* Outcomes appended and not yet read (a snapshot; may exceed the capacity). */
int64_t lpt_journal_pending(const lpt_journal *j);

#endif /* LPT_JOURNAL_H */
