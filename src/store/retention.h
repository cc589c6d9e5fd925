/*
 * ann_retention: the server's retention runner. One thread that calls
 * ann_store_retention_pass() every `every_ms` milliseconds (and once at start, so a
 * restarted server catches up at once), each pass deleting at most `max_per_pass` logs;
 * when a pass stops at its bound, the next one follows after `busy_ms` instead. The
 * state (periods, holds, recorded last writes, audit records) is the store's, so a
 * restart loses nothing. docs/storage.md, "Retention", says what a pass costs.
 */
#ifndef ANN_STORE_RETENTION_H
#define ANN_STORE_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

#define ANN_RETENTION_DAY_NS (86400LL * 1000000000LL)

typedef struct ann_retention_opts {
    unsigned every_ms;   /* between passes; 0: 60,000 */
    unsigned busy_ms;    /* after a pass that hit its bound; 0: 100 */
    size_t max_per_pass; /* candidate logs examined per pass; 0: 1,000 */
    /* The length of a day, in ns; 0: 86,400 s. Tests only (annalsd serve's hidden
     * --retention-day-ms), so a period of days passes in seconds. */
    int64_t day_ns;
} ann_retention_opts;

typedef struct ann_retention ann_retention;

/* Starts the runner on `store` (borrowed: it must outlive ann_retention_stop). */
int ann_retention_start(ann_store *store, const ann_retention_opts *o, ann_retention **out,
                        ann_err *err);
/* Stops the thread (waiting for a pass under way) and frees the runner; NULL is a no-op. */
void ann_retention_stop(ann_retention *r);

#endif
