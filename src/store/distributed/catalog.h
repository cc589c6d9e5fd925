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

int ann_catalog_log_create(ann_catalog *c, const char *tenant_id, const char *log_id,
                           const uint8_t *labels, size_t labels_len, int64_t now_ns, ann_err *err);

/* A log's metadata, its hold included (labels and the hold reason malloc'd into out;
 * release with ann_log_meta_release). Returns
 * 1 when found and not deleted, 0 when missing or deleted (out untouched), -1 on error. */
int ann_catalog_log_get(ann_catalog *c, const char *tenant_id, const char *log_id,
                        ann_log_meta *out, ann_err *err);

/* Marks a log deleted (first step of DeleteLog), unless it is on legal hold: then
 * ANN_EPRECOND and nothing changes (one lightweight transaction, so a hold racing it
 * either wins or is refused). */
int ann_catalog_log_mark_deleted(ann_catalog *c, const char *tenant_id, const char *log_id,
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

#endif
