/*
 * The distributed mode's catalog in Cassandra: the deployment secret, tenants, their
 * hashed keys and the logs' metadata (docs/distributed.md, "Cassandra"). API servers
 * read and write it directly, so NOT_FOUND and UNAUTHENTICATED are answered at once;
 * the ordered path through Kafka is for what changes a log's contents.
 *
 * Threading: every call may run from any thread (one multiplexed CQL connection).
 */
#ifndef ANN_STORE_DISTRIBUTED_CATALOG_H
#define ANN_STORE_DISTRIBUTED_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "cql/cql.h"
#include "store/store.h"

typedef struct ann_catalog ann_catalog;

typedef struct ann_catalog_config {
    const ann_cql_config *cql; /* its keyspace is ignored */
    const char *keyspace;      /* the namespace; default "annals" */
    const char *replication;   /* full replication map; NULL: SimpleStrategy, factor 1 */
} ann_catalog_config;

/* Connects and creates the keyspace and the catalog's tables if missing. */
int ann_catalog_open(const ann_catalog_config *cfg, ann_catalog **out, ann_err *err);
void ann_catalog_close(ann_catalog *c);

/* The deployment's 32-byte secret, made once by whichever server asks first. */
int ann_catalog_secret(ann_catalog *c, uint8_t out[32], ann_err *err);

/* The Ed25519 seed of the deployment's checkpoint signing key when no --signing-key file is
 * given (docs/integrity.md, "Distributed mode"): made once, like the secret. For development:
 * whoever reads the catalog can sign; a production deployment gives every sequencer the
 * same key file. */
int ann_catalog_signing_seed(ann_catalog *c, uint8_t out[32], ann_err *err);

/* ANN_EEXISTS when the name is taken. */
int ann_catalog_tenant_create(ann_catalog *c, const char *name, const uint8_t key_hash[32],
                              ann_tenant *out, ann_err *err);
/* The tenant and the key (ann_tenant's key fields) of this key hash; ANN_EUNAUTH when no
 * key has it or the key is revoked. *last_used_ns: the key's last recorded use. */
int ann_catalog_tenant_by_key(ann_catalog *c, const uint8_t key_hash[32], ann_tenant *out,
                              int64_t *last_used_ns, ann_err *err);
/* Records a use of the key (the caller keeps it to once a minute per key). */
int ann_catalog_key_touch(ann_catalog *c, const uint8_t key_hash[32], int64_t now, ann_err *err);

/* Keys (store.h's key_create, key_list, key_revoke). key_revoke also gives the key's hash,
 * so the caller can forget it at once. */
int ann_catalog_key_create(ann_catalog *c, const ann_key_spec *spec, ann_key *out, ann_err *err);
int ann_catalog_key_list(ann_catalog *c, const char *tenant_name, ann_key_visit_fn visit, void *ud,
                         ann_err *err);
int ann_catalog_key_revoke(ann_catalog *c, const char *key_id, int64_t now, ann_key *out,
                           uint8_t key_hash[32], ann_err *err);

/* retention_days: the log's own period (0: the tenant's). */
int ann_catalog_log_create(ann_catalog *c, const char *tenant_id, const char *log_id,
                           const uint8_t *labels, size_t labels_len, int64_t now_ns,
                           int32_t retention_days, ann_err *err);

/* A log's metadata, its hold included (labels and the hold reason malloc'd into out;
 * release with ann_log_meta_release). Returns
 * 1 when found and not deleted, 0 when missing or deleted (out untouched), -1 on error. */
int ann_catalog_log_get(ann_catalog *c, const char *tenant_id, const char *log_id,
                        ann_log_meta *out, ann_err *err);

/* Sets legal_hold and retention_days of each of logs[0..n) (a page of ListLogs from the read
 * model, of the tenant's) from the catalog, in one read, and deleted[k] (when not NULL) for
 * those the catalog marks deleted; logs the catalog lacks keep theirs. */
int ann_catalog_logs_flags(ann_catalog *c, const char *tenant_id, ann_log_meta *logs, size_t n,
                           bool *deleted, ann_err *err);

/* Marks a log deleted (first step of DeleteLog), unless it is on legal hold: then
 * ANN_EPRECOND and nothing changes (one lightweight transaction, so a hold racing it
 * either wins or is refused). With it, in the same write: when, and for a deletion the
 * server makes, who and why (actor and reason NULL for DeleteLog's). */
int ann_catalog_log_mark_deleted(ann_catalog *c, const char *tenant_id, const char *log_id,
                                 int64_t now, const char *actor, const char *reason, ann_err *err);
/* The deletion is complete (read model and audit): later passes skip the row. */
int ann_catalog_log_delete_done(ann_catalog *c, const char *tenant_id, const char *log_id,
                                ann_err *err);

/* Holds or releases a live log (a lightweight transaction on its row, with the last change),
 * then records the change in log_events; ANN_ENOTFOUND when the log is missing, deleted or
 * another tenant's. */
int ann_catalog_log_set_hold(ann_catalog *c, const char *tenant_id, const char *log_id, bool hold,
                             const char *actor, const char *reason, int64_t now, ann_err *err);

/* The holds and releases recorded for the tenant named tenant_name (or one of its logs),
 * oldest first, at most 10,000 (annalsd audit --distributed); ANN_ENOTFOUND when no such
 * tenant. */
int ann_catalog_log_events(ann_catalog *c, const char *tenant_name, const char *log_id,
                           ann_log_event_visit_fn visit, void *ud, ann_err *err);

/* ---- retention (docs/distributed.md, "Retention and legal hold") ---- */

/* The period of the tenant's logs without their own (0: forever); ANN_ENOTFOUND when no
 * tenant has this name. */
int ann_catalog_tenant_set_retention(ann_catalog *c, const char *tenant_name, int32_t days,
                                     ann_err *err);

/* The tenants with a period (malloc'd array). */
typedef struct ann_catalog_period {
    char tenant_id[ANN_UUID_LEN + 1];
    int32_t days;
} ann_catalog_period;
int ann_catalog_tenant_periods(ann_catalog *c, ann_catalog_period **out, size_t *n, ann_err *err);

/* A walk over every log of the deployment, one page per call, resumable (the cursor is the
 * CQL paging state; state_len 0: from the start, and again once the walk ended). */
typedef struct ann_catalog_scan {
    uint8_t state[512];
    size_t state_len;
} ann_catalog_scan;
typedef struct ann_catalog_log_row {
    char tenant_id[ANN_UUID_LEN + 1];
    char log_id[ANN_UUID_LEN + 1];
    int64_t create_ns;
    bool deleted, held;
    int32_t days;          /* the log's own period (0: the tenant's) */
    int64_t last_write_ns; /* recorded lower bound (0: none) */
    bool delete_done;      /* deleted, and the deletion finished */
    int64_t delete_ns;     /* when it was marked deleted (0: before this was kept) */
    char delete_actor[ANN_ACTOR_MAX];
    char delete_reason[512]; /* "" for DeleteLog's */
} ann_catalog_log_row;
int ann_catalog_log_scan(ann_catalog *c, ann_catalog_scan *cur, size_t max,
                         int (*visit)(const ann_catalog_log_row *row, void *ud), void *ud,
                         ann_err *err);
int ann_catalog_log_set_last_write(ann_catalog *c, const char *tenant_id, const char *log_id,
                                   int64_t ns, ann_err *err);
/* One row of log_events. */
int ann_catalog_event_put(ann_catalog *c, const char *tenant_id, const char *log_id, int64_t now,
                          const char *kind, const char *actor, const char *reason, ann_err *err);

#endif
