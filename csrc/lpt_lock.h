/* lpt_lock.h: the process-shared, robust, error-checking mutex that guards a segment.
 *
 * Keep in sync with src/lptrack/lpt_lock.pxd.
 *
 * The mutex lives inside the shared segment, so every process that maps the
 * segment contends on the same lock without a server process.  It is
 *   - PTHREAD_PROCESS_SHARED: usable from every process mapping it;
 *   - PTHREAD_MUTEX_ROBUST: when a holder dies, the next locker gets
 *     EOWNERDEAD instead of hanging forever (the caller repairs the segment
 *     and calls lpt_lock_mark_consistent);
 *   - PTHREAD_MUTEX_ERRORCHECK: relocking from the holding thread is reported
 *     (LPT_ERR_LOCK_DEADLOCK), not a self-deadlock.
 * Every wait has a timeout.  Linux only (glibc or musl both implement robust
 * process-shared mutexes); a port elsewhere would replace this file with an
 * owner-pid lock whose waiters check the holder's liveness with kill(pid, 0).
 */
#ifndef LPT_LOCK_H
#define LPT_LOCK_H

#include <pthread.h>
#include <stdint.h>

/* A fixed 48-byte footprint in the segment header, whatever the libc's
 * sizeof(pthread_mutex_t) (40 on x86-64 glibc), so the header layout does not
 * depend on it; the rest of its cache line is the holder's (lpt_segment.h). */
typedef union lpt_lock {
    pthread_mutex_t mutex;
    unsigned char footprint[48];
} lpt_lock;

/* Initialise an unlocked mutex in place (creation, or a copied local image). */
int lpt_lock_init(lpt_lock *lock);

/* Take the lock without waiting: LPT_OK or LPT_BUSY (or an error status).
 * *owner_died is set to 1 when the previous holder died while holding it: the
 * lock is then held, but the protected data must be repaired before
 * lpt_lock_mark_consistent. */
int lpt_lock_try(lpt_lock *lock, int *owner_died);

/* Take the lock, waiting at most timeout_ns nanoseconds (monotonic clock):
 * LPT_OK, LPT_ERR_LOCK_TIMEOUT or another error status; *owner_died as above. */
int lpt_lock_wait(lpt_lock *lock, int64_t timeout_ns, int *owner_died);

/* After repairing what a dead holder left behind: the lock is usable again. */
int lpt_lock_mark_consistent(lpt_lock *lock);

int lpt_lock_release(lpt_lock *lock);

/* Whether the lock looks held, by a plain read: waiters poll this and try to
 * take the lock only when it looks free, so that they do not pull its cache
 * line away from the holder on every poll.  A hint, never a guarantee. */
int lpt_lock_looks_held(const lpt_lock *lock);

/* Whether a waiter sleeps on the lock (in the kernel, not polling), by a plain
 * read of the holder: a hint, 0 where the libc's layout is unknown. */
int lpt_lock_has_sleepers(const lpt_lock *lock);

/* This process's pid, cached (getpid() is a system call on glibc >= 2.25) and
 * refreshed in a forked child. */
int64_t lpt_self_pid(void);

/* Nanoseconds on CLOCK_MONOTONIC (benchmarks, deadlines). */
int64_t lpt_monotonic_ns(void);

#endif /* LPT_LOCK_H */
