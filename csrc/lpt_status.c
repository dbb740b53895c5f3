/* lpt_status.c: descriptions of the status codes (see lpt_status.h). */
#include "lpt_status.h"

const char *lpt_status_message(int status)
{
    switch ((lpt_status)status) {
    case LPT_OK: return "ok";
    case LPT_BUSY: return "the lock is held elsewhere";
    case LPT_ERR_INVALID: return "invalid argument";
    case LPT_ERR_ALIGNMENT: return "segment image is not 64-byte aligned";
    case LPT_ERR_NOT_READY: return "segment is not initialised yet";
    case LPT_ERR_NOT_LPTRACK: return "not an lptrack segment (bad magic)";
    case LPT_ERR_LAYOUT: return "segment layout mismatch";
    case LPT_ERR_LOCK_TIMEOUT: return "timed out waiting for the table lock";
    case LPT_ERR_LOCK_DEADLOCK: return "this thread already holds the table lock (it is not re-entrant)";
    case LPT_ERR_LOCK_NOT_OWNER: return "this thread does not hold the table lock";
    case LPT_ERR_LOCK_UNRECOVERABLE: return "the table lock is unrecoverable";
    case LPT_ERR_LOCK_SYSTEM: return "pthread mutex operation failed";
    case LPT_ERR_LABELS_FULL: return "label registry is full";
    case LPT_ERR_CORRUPT: return "segment index is inconsistent with its rows";
    case LPT_ERR_RETIRED: return "the segment was found stale and is being removed";
    }
    return "unknown status";
}
