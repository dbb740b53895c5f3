/* lpt_crash.h: failure injection for the crash-recovery tests.
 *
 * Keep in sync with src/lptrack/lpt_crash.pxd.
 *
 * The C core marks the points where a process could die in the middle of a
 * pool change or a row write with LPT_CRASH_POINT().  A test sets a countdown
 * in a child process; the n-th crash point that child reaches kills it with
 * SIGKILL, as if the kernel's OOM killer or an operator had, with the lock
 * held and the segment half-changed.  Disarmed (the default, 0) a crash point
 * is one load and one predictable branch, so release builds keep them and the
 * tests exercise the code that ships.
 */
#ifndef LPT_CRASH_H
#define LPT_CRASH_H

#include <stdint.h>

/* Process-global, not thread-safe: tests arm it in a single-threaded child. */
extern int64_t lpt_crash_countdown;

/* Arm (n > 0) or disarm (0) the countdown of this process. */
void lpt_crash_arm(int64_t n);

void lpt_crash_now(void);

#define LPT_CRASH_POINT()                                                        \
    do {                                                                         \
        if (__builtin_expect(lpt_crash_countdown != 0, 0) && --lpt_crash_countdown == 0) \
            lpt_crash_now();                                                     \
    } while (0)

#endif /* LPT_CRASH_H */
