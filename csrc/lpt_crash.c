/* lpt_crash.c: see lpt_crash.h. */
#include "lpt_crash.h"

#include <signal.h>

int64_t lpt_crash_countdown = 0;

void lpt_crash_arm(int64_t n) { lpt_crash_countdown = n > 0 ? n : 0; }

void lpt_crash_now(void)
{
    raise(SIGKILL); /* cannot be caught: no handler runs, nothing is cleaned up */
}
