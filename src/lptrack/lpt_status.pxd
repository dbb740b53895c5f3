# Mirrors csrc/lpt_status.h: keep in sync.

cdef extern from "lpt_status.h" nogil:
    ctypedef enum lpt_status:
        LPT_OK
        LPT_BUSY
        LPT_ERR_INVALID
        LPT_ERR_ALIGNMENT
        LPT_ERR_NOT_READY
        LPT_ERR_NOT_LPTRACK
        LPT_ERR_LAYOUT
        LPT_ERR_LOCK_TIMEOUT
        LPT_ERR_LOCK_DEADLOCK
        LPT_ERR_LOCK_NOT_OWNER
        LPT_ERR_LOCK_UNRECOVERABLE
        LPT_ERR_LOCK_SYSTEM
        LPT_ERR_LABELS_FULL
        LPT_ERR_CORRUPT
        LPT_ERR_RETIRED

    const char *lpt_status_message(int status)
