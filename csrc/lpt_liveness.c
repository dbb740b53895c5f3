/* lpt_liveness.c: see lpt_liveness.h. */
#define _GNU_SOURCE
#include "lpt_liveness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lpt_status.h"

#define SEQ_CST memory_order_seq_cst

/* /proc/<pid>/stat: "pid (comm) state ppid ... starttime ...", starttime the
 * 22nd field; comm may hold spaces and parentheses, so parse after the last
 * ')'.  Returns 0 when the process does not exist or is a zombie. */
uint64_t lpt_proc_token(int64_t pid)
{
    if (pid <= 0 || pid >= (INT64_C(1) << LPT_PID_BITS))
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return 0;
    const char state = p[2];
    if (state == 'Z' || state == 'X' || state == 'x')
        return 0;
    /* fields 3..22 follow: skip 19 separators to reach starttime */
    p += 2;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return 0;
        p++;
    }
    const unsigned long long start = strtoull(p, NULL, 10);
    return ((uint64_t)start << LPT_PID_BITS) | (uint64_t)pid;
}

int lpt_token_alive(uint64_t token)
{
    return token != 0 && lpt_proc_token(lpt_token_pid(token)) == token;
}

int64_t lpt_procs_live(lpt_segment *seg, int64_t *pids, int64_t max, int prune)
{
    int64_t live = 0;
    for (uint64_t i = 0; i < LPT_MAX_PROCS; i++) {
        uint64_t token = atomic_load_explicit(&seg->procs[i], SEQ_CST);
        if (token == 0)
            continue;
        if (!lpt_token_alive(token)) {
            /* Only this dead token is cleared: an entry re-used meanwhile
             * holds another token and the exchange fails. */
            if (prune)
                atomic_compare_exchange_strong_explicit(&seg->procs[i], &token, 0, SEQ_CST,
                                                        SEQ_CST);
            continue;
        }
        if (pids != NULL && live < max)
            pids[live] = lpt_token_pid(token);
        live++;
    }
    return live;
}

static int claim_entry(lpt_segment *seg, uint64_t token)
{
    for (uint64_t i = 0; i < LPT_MAX_PROCS; i++) {
        uint64_t empty = 0;
        if (atomic_load_explicit(&seg->procs[i], memory_order_relaxed) == 0
            && atomic_compare_exchange_strong_explicit(&seg->procs[i], &empty, token, SEQ_CST,
                                                       SEQ_CST))
            return 1;
    }
    return 0;
}

int lpt_procs_register(lpt_segment *seg, uint64_t token)
{
    lpt_header *h = seg->header;
    if (token == 0)
        return LPT_ERR_INVALID;
    int registered = claim_entry(seg, token);
    if (!registered) {
        lpt_procs_live(seg, NULL, 0, 1); /* prune the dead, then try once more */
        registered = claim_entry(seg, token);
    }
    if (!registered)
        atomic_store_explicit(&h->procs_overflow, 1, SEQ_CST);
    /* Dekker with lpt_segment_retire: our entry (or the overflow flag) is
     * stored before we look at the mark, the mark before it looks at entries. */
    if (atomic_load_explicit(&h->retired, SEQ_CST)) {
        if (registered)
            lpt_procs_unregister(seg, token);
        return LPT_ERR_RETIRED;
    }
    return LPT_OK;
}

void lpt_procs_unregister(lpt_segment *seg, uint64_t token)
{
    for (uint64_t i = 0; i < LPT_MAX_PROCS; i++) {
        uint64_t expected = token;
        if (atomic_compare_exchange_strong_explicit(&seg->procs[i], &expected, 0, SEQ_CST,
                                                    SEQ_CST))
            return;
    }
}

int lpt_segment_retire(lpt_segment *seg)
{
    lpt_header *h = seg->header;
    uint32_t expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&h->retired, &expected, 1, SEQ_CST, SEQ_CST))
        return LPT_BUSY;
    if (atomic_load_explicit(&h->procs_overflow, SEQ_CST) || lpt_procs_live(seg, NULL, 0, 1) > 0) {
        atomic_store_explicit(&h->retired, 0, SEQ_CST);
        return LPT_BUSY;
    }
    return LPT_OK;
}
