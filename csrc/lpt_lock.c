/* lpt_lock.c: see lpt_lock.h. */
#define _GNU_SOURCE /* pthread_mutex_clocklock (glibc >= 2.30) */
#include "lpt_lock.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "lpt_status.h"

#if !defined(__linux__) || !defined(_POSIX_THREADS)
#error "lptrack needs Linux robust process-shared pthread mutexes (see lpt_lock.h for a port)"
#endif

_Static_assert(sizeof(pthread_mutex_t) <= sizeof(((lpt_lock *)0)->footprint),
               "pthread_mutex_t does not fit the lock's footprint in the segment header");

/* glibc >= 2.30 can wait on CLOCK_MONOTONIC, immune to wall-clock jumps; other
 * libcs wait on CLOCK_REALTIME. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define LPT_LOCK_CLOCK CLOCK_MONOTONIC
#define LPT_TIMED_LOCK(m, deadline) pthread_mutex_clocklock((m), CLOCK_MONOTONIC, (deadline))
#else
#define LPT_LOCK_CLOCK CLOCK_REALTIME
#define LPT_TIMED_LOCK(m, deadline) pthread_mutex_timedlock((m), (deadline))
#endif

int lpt_lock_init(lpt_lock *lock)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return LPT_ERR_LOCK_SYSTEM;
    /* PTHREAD_MUTEX_ROBUST is an enum in glibc, not a macro: never #ifdef it. */
    if (pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) != 0
        || pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) != 0
        || pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK) != 0) {
        pthread_mutexattr_destroy(&attr);
        return LPT_ERR_LOCK_SYSTEM;
    }
    rc = pthread_mutex_init(&lock->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc == 0 ? LPT_OK : LPT_ERR_LOCK_SYSTEM;
}

static int status_of_lock_result(int rc, int *owner_died)
{
    *owner_died = 0;
    switch (rc) {
    case 0: return LPT_OK;
    case EOWNERDEAD: *owner_died = 1; return LPT_OK;
    case EBUSY: return LPT_BUSY;
    case ETIMEDOUT: return LPT_ERR_LOCK_TIMEOUT;
    case EDEADLK: return LPT_ERR_LOCK_DEADLOCK;
    case ENOTRECOVERABLE: return LPT_ERR_LOCK_UNRECOVERABLE;
    default: return LPT_ERR_LOCK_SYSTEM;
    }
}

int lpt_lock_try(lpt_lock *lock, int *owner_died)
{
    return status_of_lock_result(pthread_mutex_trylock(&lock->mutex), owner_died);
}

int lpt_lock_wait(lpt_lock *lock, int64_t timeout_ns, int *owner_died)
{
    struct timespec deadline;
    if (timeout_ns < 0)
        timeout_ns = 0;
    clock_gettime(LPT_LOCK_CLOCK, &deadline);
    int64_t nsec = (int64_t)deadline.tv_nsec + timeout_ns % 1000000000;
    deadline.tv_sec += (time_t)(timeout_ns / 1000000000 + nsec / 1000000000);
    deadline.tv_nsec = (long)(nsec % 1000000000);
    return status_of_lock_result(LPT_TIMED_LOCK(&lock->mutex, &deadline), owner_died);
}

int lpt_lock_mark_consistent(lpt_lock *lock)
{
    return pthread_mutex_consistent(&lock->mutex) == 0 ? LPT_OK : LPT_ERR_LOCK_SYSTEM;
}

int lpt_lock_looks_held(const lpt_lock *lock)
{
#if defined(__GLIBC__)
    /* glibc's futex word: the owner's tid (plus flag bits), 0 when free. */
    return __atomic_load_n(&lock->mutex.__data.__lock, __ATOMIC_RELAXED) != 0;
#else
    (void)lock;
    return 0; /* unknown layout: let the trylock find out */
#endif
}

int lpt_lock_has_sleepers(const lpt_lock *lock)
{
#if defined(__GLIBC__)
    /* A robust mutex's futex word carries FUTEX_WAITERS (bit 31) while a waiter sleeps. */
    return (__atomic_load_n(&lock->mutex.__data.__lock, __ATOMIC_RELAXED) & (int)0x80000000u) != 0;
#else
    (void)lock;
    return 0; /* unknown layout: no hand-off */
#endif
}

int lpt_lock_release(lpt_lock *lock)
{
    switch (pthread_mutex_unlock(&lock->mutex)) {
    case 0: return LPT_OK;
    case EPERM: return LPT_ERR_LOCK_NOT_OWNER;
    default: return LPT_ERR_LOCK_SYSTEM;
    }
}

static int64_t cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void refresh_pid(void) { cached_pid = (int64_t)getpid(); }

static void init_pid(void)
{
    refresh_pid();
    pthread_atfork(NULL, NULL, refresh_pid);
}

int64_t lpt_self_pid(void)
{
    pthread_once(&pid_once, init_pid);
    return cached_pid;
}

int64_t lpt_monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}
