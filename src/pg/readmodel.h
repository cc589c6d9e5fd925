/*
 * ann_readmodel: the distributed mode's reads, from the PostgreSQL read model that the
 * projector fills (docs/distributed.md; schema in pg/schema.h).
 *
 * Each read has the storage port's semantics (store/store.h; the reference is
 * tests/support/memstore.c), with the same arguments minus the ann_store: a missing,
 * deleted or other tenant's log is ANN_ENOTFOUND "log <id> not found"; lists walk
 * (time, id) with the snapshot, cursor, filter and budget; searches walk (time, log id,
 * entry id) with the insert-time snapshot and the budget, exactly; redacted entries
 * carry their (first) revocation record. Engine failures are ANN_EUNAVAIL or ANN_EIO.
 *
 * Threading: every function may be called from any thread; each call borrows one pooled
 * connection for its duration.
 *
 * The listener: one thread with its own connection LISTENs on "<ns>_visible" (the
 * projector NOTIFYs "<tenant_id>/<log_id> <visible_count> <applied_op> <deleted 0|1>" once
 * per changed log per transaction) and calls back for each notification. Notifications
 * are lost while it is disconnected, so after every (re)connect it calls
 * cb(ud, NULL, NULL, 0, 0, false): "resync, re-check everything you wait for".
 */
#ifndef ANN_PG_READMODEL_H
#define ANN_PG_READMODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

typedef struct ann_readmodel ann_readmodel;

/* Opens a pool of `pool_size` connections and ensures the schema of `ns`. */
int ann_readmodel_open(const char *conninfo, const char *ns, size_t pool_size, ann_readmodel **out,
                       ann_err *err);
/* Stops the listener if running, closes the pool. */
void ann_readmodel_close(ann_readmodel *rm);

int ann_readmodel_list(ann_readmodel *rm, const char *tenant_id, const char *log_id,
                       const ann_list_query *q, ann_entry_visit_fn visit, void *ud,
                       ann_list_result *res, ann_err *err);

int ann_readmodel_read_after(ann_readmodel *rm, const char *tenant_id, const char *log_id,
                             uint64_t after_id, size_t limit, ann_entry_visit_fn visit, void *ud,
                             ann_err *err);

int ann_readmodel_logs_list(ann_readmodel *rm, const char *tenant_id, const ann_logs_query *q,
                            ann_log_visit_fn visit, void *ud, ann_err *err);

/* Search: with a query of 3 bytes or more holding a trigram, the candidates come from the
 * search projection (search_docs' trigram index for the indexed ids of each log, entries
 * for the rest), each checked exactly; otherwise, or when the candidates are too many,
 * the walk over entries. Same answers either way (docs/distributed.md, "Search"). */
int ann_readmodel_search(ann_readmodel *rm, const char *tenant_id, const ann_search_query *q,
                         ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err);

/* Benchmarks and tests: `on` makes every search walk entries (set before concurrent use). */
void ann_readmodel_search_walk_only(ann_readmodel *rm, bool on);

/* What the read model knows of a log. `exists` when the log was created (or anything of
 * it was applied); labels are malloc'd (free with ann_readmodel_log_state_release). */
typedef struct ann_rm_log_state {
    bool exists;
    bool deleted;
    int64_t create_time_ns;
    uint8_t *labels;
    size_t labels_len;
    uint64_t visible_count;
    uint64_t applied_op;
    bool sealed;
} ann_rm_log_state;

int ann_readmodel_log_state(ann_readmodel *rm, const char *tenant_id, const char *log_id,
                            ann_rm_log_state *out, ann_err *err);
void ann_readmodel_log_state_release(ann_rm_log_state *s);

/* The log's latest checkpoint (a signed note) appended to note, its tree size in *size:
 * ANN_ENOTFOUND for a missing or deleted log, ANN_EPRECOND for one without a tree. */
int ann_readmodel_checkpoint(ann_readmodel *rm, const char *tenant_id, const char *log_id,
                             ann_buf *note, uint64_t *size, ann_err *err);

/* The leaf hashes of entries first..first+n-1 into out[0..n) (ANN_EUNAVAIL when some are
 * not projected). */
int ann_readmodel_leaves(ann_readmodel *rm, const char *tenant_id, const char *log_id,
                         uint64_t first, size_t n, uint8_t (*out)[32], ann_err *err);

typedef void (*ann_rm_visible_fn)(void *ud, const char *tenant_id, const char *log_id,
                                  uint64_t visible, uint64_t applied_op, bool deleted);

/* Starts the listener thread (one per read model). ANN_EEXISTS if already running. */
int ann_readmodel_listen_start(ann_readmodel *rm, ann_rm_visible_fn cb, void *ud, ann_err *err);
/* Stops it; after it returns cb is not running and will not be called again. */
void ann_readmodel_listen_stop(ann_readmodel *rm);

#endif
