/* lpt_liveness.h: which processes use a segment.
 *
 * Keep in sync with src/lptrack/lpt_liveness.pxd.
 *
 * Every process that opens a shared segment registers in the segment's
 * process registry and unregisters when it closes it.  A process that dies
 * without closing (SIGKILL, a crash, the whole process group killed) leaves
 * its entry, and the entry is recognised as dead: its pid is gone, is a
 * zombie, or now names another process (a different start time).  A segment
 * whose entries are all dead is *stale*: its session's processes are gone
 * and nothing will ever remove it, so the next process to open the session
 * (or `lptrack cleanup`) retires and removes it.
 *
 * Everything here is lock-free, so a dead lock holder never keeps a segment
 * from being judged.  An entry is one 64-bit word, pid and start time packed,
 * so it is written and cleared atomically and never seen half-written.
 *
 * The registry holds LPT_MAX_PROCS processes.  When a process finds it full
 * even after pruning dead entries, it sets the segment's overflow flag and
 * works unregistered; from then on the segment is never judged stale (it may
 * have live users nobody can see) and only an explicit removal takes it away.
 *
 * Linux only (reads /proc/<pid>/stat).  Processes in another pid namespace
 * sharing /dev/shm are not supported: their pids mean nothing here.
 */
#ifndef LPT_LIVENESS_H
#define LPT_LIVENESS_H

#include <stdint.h>

#include "lpt_segment.h"

/* Linux pids are below PID_MAX_LIMIT = 2**22; the start time (clock ticks
 * since boot) gets the other 42 bits, a thousand years at 100 Hz. */
#define LPT_PID_BITS 22

/* The token of process `pid` now: pid and start time, never 0; 0 when there
 * is no such process or it is a zombie. */
uint64_t lpt_proc_token(int64_t pid);

static inline int64_t lpt_token_pid(uint64_t token)
{
    return (int64_t)(token & ((UINT64_C(1) << LPT_PID_BITS) - 1));
}

/* Whether the process a token was taken from is still running. */
int lpt_token_alive(uint64_t token);

/* Register `token`: LPT_OK (registered, or the registry overflowed),
 * LPT_ERR_RETIRED (the segment is being removed as stale: not registered;
 * reopen the session), LPT_ERR_INVALID for a 0 token. */
int lpt_procs_register(lpt_segment *seg, uint64_t token);

/* Remove `token`'s entry (no-op when absent). */
void lpt_procs_unregister(lpt_segment *seg, uint64_t token);

/* The live registered processes: their number, and their pids in pids[0..max)
 * (pids may be NULL).  With `prune`, clears the entries of dead processes on
 * the way (an observer passes 0 and writes nothing). */
int64_t lpt_procs_live(lpt_segment *seg, int64_t *pids, int64_t max, int prune);

static inline int lpt_segment_retired(const lpt_segment *seg)
{
    return (int)atomic_load_explicit(&seg->header->retired, memory_order_seq_cst);
}

static inline int lpt_procs_overflowed(const lpt_segment *seg)
{
    return (int)atomic_load_explicit(&seg->header->procs_overflow, memory_order_seq_cst);
}

/* Mark a stale segment retired: LPT_OK when no live process is registered
 * and the registry never overflowed, and this caller won the right (and the
 * duty) to unlink it; LPT_BUSY when it is in use, already retired, or its
 * users cannot be known.  A process registering at the same moment either is
 * seen here (LPT_BUSY) or sees the mark (LPT_ERR_RETIRED), never neither. */
int lpt_segment_retire(lpt_segment *seg);

#endif /* LPT_LIVENESS_H */
