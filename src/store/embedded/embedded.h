/*
 * The embedded backend of the storage port (store.h): one process, one data
 * directory, nothing else to run.
 *
 *   DIR/meta.db                     SQLite (WAL): secret, tenants, logs,
 *                                   revocation audit records
 *   DIR/logs/<tenant>/<log>.dat     one append-only data file per log
 *   DIR/logs/<tenant>/<log>.blk     its sealed blocks: older entries, compressed, with
 *                                   search filters (block.h)
 *   DIR/LOCK                        flock'd by the serving process
 *
 * File formats, recovery, group commit and memory use: docs/storage.md.
 *
 * Behaviour beyond store.h:
 *  - list() and read_after() treat limit 0 as "no limit".
 *  - tenant and log ids are 1..36 characters of [A-Za-z0-9_-] (they name
 *    files); any other log id is simply not found, log_create refuses it.
 *  - Stored data failing its checksum is ANN_ECORRUPT and is also reported on
 *    stderr; a torn tail (the last, never acknowledged group commit) is cut
 *    off when the log is opened, with a warning on stderr.
 */
#ifndef ANN_STORE_EMBEDDED_EMBEDDED_H
#define ANN_STORE_EMBEDDED_EMBEDDED_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/metrics.h"
#include "store/store.h"

typedef enum ann_durability {
    ANN_DURABILITY_FSYNC = 0, /* default: fdatasync/fsync before append, revoke,
                                 delete and create return */
    ANN_DURABILITY_NONE = 1,  /* no fsync at all: for benchmarks only */
} ann_durability;

typedef struct ann_store_embedded_opts {
    ann_durability durability;
    /* Open only the metadata, to create tenants while a server runs on the
     * same directory: only secret, tenant_create and tenant_by_key work,
     * everything else fails with ANN_EINVAL. */
    bool admin_only;
    size_t max_open_logs;   /* open logs kept while idle (fd + index); 0: 512 */
    size_t cache_bytes;     /* index memory of idle open logs; 0: 64 MiB ... */
    unsigned idle_evict_ms; /* ... beyond which logs idle this long are closed; 0: 5000 */
    /* A log of at least this many entries leaves an index snapshot
     * (DIR/logs/<tenant>/<log>.idx) when it is closed; 0: 100,000. */
    size_t snapshot_min;
    /* Write zeros ahead of busy logs so that fdatasync need not commit the
     * filesystem journal (docs/storage.md: it pays under foreign fsync load,
     * costs bandwidth on a quiet disk). Off by default. */
    bool prealloc;
    /* No sealing: entries stay uncompressed in the data files, with no search filters
     * (for benchmarks that compare; docs/storage.md, "Sealed blocks"). */
    bool no_blocks;
    /* A log is sealed whole once it has had no append for this long; 0: 3000. */
    unsigned seal_idle_ms;
    /* Memory for the search summaries of logs that are not open; 0: 128 MiB. */
    size_t summary_bytes;
    /* Borrowed, may be NULL; it must outlive the store. A serving store counts into it
     * (annals_store_*: entries and bytes appended, fsync latency, group-commit sizes) and
     * reports open logs and bytes on disk at scrape time (docs/operations.md). */
    ann_metrics *metrics;
    /* The deployment's checkpoint signing key (docs/integrity.md): this file (borrowed,
     * PRIVATE+KEY+... form) when set, else DIR/signing.key, created at the first serving
     * open with the name key_name (NULL: "annals"). */
    const char *signing_key;
    const char *key_name;
    /* A checkpoint of each open log that grew is signed this often (ms; 0: 1000), so
     * checkpoints follow writes within that bound; no_checkpointer: only when asked
     * (GetLogCheckpoint, SealLog), for benchmarks that compare. */
    unsigned checkpoint_ms;
    bool no_checkpointer;
} ann_store_embedded_opts;

/* The signing key a serving open would use (see the opts), creating DIR/signing.key when
 * key_file is NULL and there is none: for `annalsd verifier-key`. */
struct ann_note_signer;
int ann_store_embedded_signer(const char *dir, const char *key_file, const char *key_name,
                              struct ann_note_signer *out, ann_err *err);

/* Fills the defaults (all zero). */
void ann_store_embedded_opts_init(ann_store_embedded_opts *o);

/*
 * Opens (creating if needed) the store in `dir`; opts may be NULL for the
 * defaults. A serving (not admin_only) open takes DIR/LOCK, finishes
 * half-done deletions and re-applies pending revocations before it returns;
 * a second serving open of the same directory fails with ANN_EUNAVAIL.
 * On success *out is the store; free it with ann_store_close().
 */
int ann_store_embedded_open(const char *dir, const ann_store_embedded_opts *opts, ann_store **out,
                            ann_err *err);

/* The lifecycle audit trail of a tenant (by name), or of one of its logs (log_id not
 * NULL): legal holds, releases and retention's deletions, oldest first (docs/api.md,
 * "Retention and legal hold"). visit may stop the walk by returning nonzero; it must not
 * call the store. ANN_ENOTFOUND when no tenant has this name. */
int ann_store_embedded_audit(ann_store *s, const char *tenant_name, const char *log_id,
                             ann_log_event_visit_fn visit, void *ud, ann_err *err);

#endif
