/* lpt_status.h: the status codes every lptrack C function returns.
 *
 * Keep in sync with src/lptrack/lpt_status.pxd.
 *
 * The C core never aborts and never prints: it reports through these codes,
 * and the Cython layer (_core.pyx, `_check`) turns each into an exception.
 */
#ifndef LPT_STATUS_H
#define LPT_STATUS_H

typedef enum lpt_status {
    LPT_OK = 0,
    LPT_BUSY,                  /* trylock: another thread or process holds the lock */
    LPT_ERR_INVALID,           /* bad argument (capacity, row width, column, buffer size) */
    LPT_ERR_ALIGNMENT,         /* the segment image is not 64-byte aligned */
    LPT_ERR_NOT_READY,         /* attach: the creator has not finished initialising */
    LPT_ERR_NOT_LPTRACK,       /* attach: the buffer does not start with lptrack's magic */
    LPT_ERR_LAYOUT,            /* attach: another layout version, capacity or row width */
    LPT_ERR_LOCK_TIMEOUT,      /* the lock wait ran past its timeout */
    LPT_ERR_LOCK_DEADLOCK,     /* this thread already holds the lock (it is not re-entrant) */
    LPT_ERR_LOCK_NOT_OWNER,    /* unlock by a thread that does not hold the lock */
    LPT_ERR_LOCK_UNRECOVERABLE,/* a robust mutex left inconsistent: the segment is unusable */
    LPT_ERR_LOCK_SYSTEM,       /* any other pthread failure */
    LPT_ERR_LABELS_FULL,       /* the label registry has no room for another label */
    LPT_ERR_CORRUPT,           /* verify: index, free stack or active list disagree with the rows */
    LPT_ERR_RETIRED            /* the segment was found stale and is being removed: reopen */
} lpt_status;

/* A static, human-readable description of `status`. */
const char *lpt_status_message(int status);

#endif /* LPT_STATUS_H */
