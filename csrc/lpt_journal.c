/* lpt_journal.c: see lpt_journal.h. */
#define _POSIX_C_SOURCE 200809L
#include "lpt_journal.h"

#include <string.h>
#include <time.h>

#include "lpt_crash.h"
#include "lpt_status.h"

_Static_assert(sizeof(lpt_journal_header) == 192, "journal header layout");
_Static_assert(sizeof(lpt_journal_entry) == 32, "journal entry layout");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the journal needs lock-free 64-bit atomics");

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release

static int is_power_of_two(int64_t n)
{
    return n > 0 && (n & (n - 1)) == 0;
}

size_t lpt_journal_bytes(int64_t capacity)
{
    if (capacity < LPT_JOURNAL_MIN_CAPACITY || capacity > LPT_JOURNAL_MAX_CAPACITY || !is_power_of_two(capacity))
        return 0;
    return sizeof(lpt_journal_header) + (size_t)capacity * sizeof(lpt_journal_entry);
}

static void bind(void *image, int64_t capacity, lpt_journal *j)
{
    j->header = (lpt_journal_header *)image;
    j->entries = (lpt_journal_entry *)((unsigned char *)image + sizeof(lpt_journal_header));
    j->mask = (uint64_t)capacity - 1;
}

int lpt_journal_init(void *image, size_t size, int64_t capacity, int64_t creator_pid, lpt_journal *j)
{
    const size_t needed = lpt_journal_bytes(capacity);
    if (needed == 0 || image == NULL || size < needed)
        return LPT_ERR_INVALID;
    if ((uintptr_t)image % 64 != 0)
        return LPT_ERR_ALIGNMENT;
    lpt_journal_header *h = (lpt_journal_header *)image;
    h->version = LPT_JOURNAL_VERSION;
    h->entry_bytes = (uint32_t)sizeof(lpt_journal_entry);
    h->capacity = capacity;
    h->creator_pid = creator_pid;
    atomic_store_explicit(&h->head, 0, RELAXED);
    atomic_store_explicit(&h->tail, 0, RELAXED);
    atomic_store_explicit(&h->lost, 0, RELAXED);
    atomic_store_explicit(&h->deferred, 0, RELAXED);
    /* Entries are zero (never written) in a fresh segment. */
    atomic_store_explicit(&h->magic, LPT_JOURNAL_MAGIC, RELEASE);
    bind(image, capacity, j);
    return LPT_OK;
}

int lpt_journal_attach(void *image, size_t size, lpt_journal *j)
{
    if (image == NULL || size < sizeof(lpt_journal_header))
        return LPT_ERR_NOT_READY;
    if ((uintptr_t)image % 64 != 0)
        return LPT_ERR_ALIGNMENT;
    lpt_journal_header *h = (lpt_journal_header *)image;
    const uint64_t magic = atomic_load_explicit(&h->magic, ACQUIRE);
    if (magic == 0)
        return LPT_ERR_NOT_READY;
    if (magic != LPT_JOURNAL_MAGIC)
        return LPT_ERR_NOT_LPTRACK;
    if (h->version != LPT_JOURNAL_VERSION || h->entry_bytes != sizeof(lpt_journal_entry)
        || lpt_journal_bytes(h->capacity) == 0 || size < lpt_journal_bytes(h->capacity))
        return LPT_ERR_LAYOUT;
    bind(image, h->capacity, j);
    return LPT_OK;
}

void lpt_journal_append(const lpt_journal *j, int64_t task_id, double score)
{
    const uint64_t ticket = atomic_fetch_add_explicit(&j->header->head, 1, RELAXED);
    LPT_CRASH_POINT(); /* a producer dying between claim and publication */
    lpt_journal_entry *e = &j->entries[ticket & j->mask];
    uint64_t bits;
    memcpy(&bits, &score, sizeof bits);
    /* Seqlock write: mark the entry in change (0 is never a published value),
     * so a reader of the older lap it overwrites sees a changed sequence. */
    atomic_store_explicit(&e->seq, 0, RELAXED);
    atomic_thread_fence(RELEASE);
    atomic_store_explicit(&e->task_id, task_id, RELAXED);
    atomic_store_explicit(&e->score_bits, bits, RELAXED);
    atomic_store_explicit(&e->seq, ticket + 1, RELEASE);
}

/* Copy entry `ticket` if it is published and intact: 1 copied, 0 not yet
 * published (an older lap's or in change), -1 overwritten by a later lap. */
static int take(const lpt_journal *j, uint64_t ticket, int64_t *task_id, double *score)
{
    const lpt_journal_entry *e = &j->entries[ticket & j->mask];
    const uint64_t before = atomic_load_explicit(&e->seq, ACQUIRE);
    if (before != ticket + 1)
        return before > ticket + 1 ? -1 : 0;
    const int64_t id = atomic_load_explicit(&e->task_id, RELAXED);
    const uint64_t bits = atomic_load_explicit(&e->score_bits, RELAXED);
    atomic_thread_fence(ACQUIRE);
    if (atomic_load_explicit(&e->seq, RELAXED) != before)
        return -1; /* a producer of a later lap started overwriting it */
    *task_id = id;
    memcpy(score, &bits, sizeof bits);
    return 1;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

int lpt_journal_read(const lpt_journal *j, int64_t *task_ids, double *scores, int64_t max,
                     int64_t wait_ns, int64_t *n_read, int64_t *n_lost)
{
    lpt_journal_header *h = j->header;
    const uint64_t capacity = j->mask + 1;
    const uint64_t head = atomic_load_explicit(&h->head, ACQUIRE);
    uint64_t tail = atomic_load_explicit(&h->tail, RELAXED);
    int64_t read = 0, lost = 0;
    if (head - tail > capacity) {
        /* Producers lapped the reader: the oldest unread entries are gone. */
        lost += (int64_t)(head - tail - capacity);
        tail = head - capacity;
    }
    int64_t waiting_since = -1;
    while (tail < head && read < max) {
        const int got = take(j, tail, &task_ids[read], &scores[read]);
        if (got == 0) {
            /* Claimed, not yet published: a producer between its fetch-add and
             * its release store, or one that died there. */
            const int64_t now = now_ns();
            if (waiting_since < 0)
                waiting_since = now;
            if (now - waiting_since < wait_ns) {
                const struct timespec pause = {0, 20000};
                nanosleep(&pause, NULL);
                continue;
            }
        }
        waiting_since = -1;
        if (got == 1)
            read++;
        else
            lost++;
        tail++;
    }
    atomic_store_explicit(&h->tail, tail, RELEASE);
    if (lost)
        atomic_fetch_add_explicit(&h->lost, (uint64_t)lost, RELAXED);
    *n_read = read;
    *n_lost = lost;
    return LPT_OK;
}

int lpt_journal_deferred(const lpt_journal *j)
{
    return atomic_load_explicit(&j->header->deferred, ACQUIRE) != 0;
}

void lpt_journal_set_deferred(const lpt_journal *j, int deferred)
{
    atomic_store_explicit(&j->header->deferred, deferred ? 1 : 0, RELEASE);
}

int64_t lpt_journal_pending(const lpt_journal *j)
{
    const uint64_t head = atomic_load_explicit(&j->header->head, ACQUIRE);
    const uint64_t tail = atomic_load_explicit(&j->header->tail, RELAXED);
    return (int64_t)(head - tail);
}
