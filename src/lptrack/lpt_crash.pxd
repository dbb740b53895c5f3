# Mirrors csrc/lpt_crash.h: keep in sync.
from libc.stdint cimport int64_t

cdef extern from "lpt_crash.h" nogil:
    void lpt_crash_arm(int64_t n)
