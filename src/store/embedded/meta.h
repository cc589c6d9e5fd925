/*
 * ann_meta: the embedded store's metadata in SQLite (DIR/meta.db, WAL mode,
 * synchronous=FULL unless durability is NONE): the server secret, tenants,
 * logs (labels, create time, state) and revocation audit records. Entries
 * never go here (see docs/storage.md).
 *
 * Every function is thread-safe (one connection behind a mutex). Several
 * processes may open the same file (an admin tool beside a server).
 */
#ifndef ANN_STORE_EMBEDDED_META_H
#define ANN_STORE_EMBEDDED_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "domain/limits.h"
#include "domain/rules.h"
#include "store/store.h"

typedef struct ann_meta ann_meta;

enum { ANN_META_LOG_LIVE = 0, ANN_META_LOG_DELETING = 1 };

int ann_meta_open(const char *path, bool durable, ann_meta **out, ann_err *err);
void ann_meta_free(ann_meta *m);

int ann_meta_secret(ann_meta *m, uint8_t out[32], ann_err *err);
/* 16 random bytes made once: the store's SipHash key (index snapshots keep
 * hash tags, so the key must outlive a process). */
int ann_meta_hashkey(ann_meta *m, uint8_t out[16], ann_err *err);

/* The tenant and its first key (key_id, named ANN_ADMIN_KEY_NAME, admin role), at once. */
int ann_meta_tenant_create(ann_meta *m, const char *id, const char *name, const char *key_id,
                           const uint8_t key_hash[32], int64_t now_ns, ann_err *err);

/* Keys (the keys table). The key with this hash, revoked or not, with its tenant (*t's key
 * fields filled): 1 found, 0 not found, -1 error. */
int ann_meta_key_by_hash(ann_meta *m, const uint8_t key_hash[32], ann_tenant *t, ann_key *k,
                         ann_err *err);
/* ANN_ENOTFOUND: no such tenant; ANN_EEXISTS: the name is taken in the tenant. */
int ann_meta_key_create(ann_meta *m, const ann_key_spec *spec, const char *key_id, ann_key *out,
                        ann_err *err);
/* The tenant's keys in creation order; fn runs without the lock held. */
int ann_meta_key_list(ann_meta *m, const char *tenant_name, int (*fn)(const ann_key *k, void *ud),
                      void *ud, ann_err *err);
/* Sets revoke_ns (once) and grows the keys epoch, in one transaction. */
int ann_meta_key_revoke(ann_meta *m, const char *key_id, int64_t now_ns, ann_key *out,
                        ann_err *err);
/* Records a use (never moves last_used_ns back). */
int ann_meta_key_touch(ann_meta *m, const char *key_id, int64_t now_ns, ann_err *err);
/* The keys epoch: it changes whenever a key is revoked, by any process. Read on a
 * connection of its own (never behind a commit). */
int ann_meta_keys_epoch(ann_meta *m, int64_t *out, ann_err *err);
int ann_meta_tenant_exists(ann_meta *m, const char *id, ann_err *err);

/* Fails with ANN_EEXISTS if the (tenant, log) row exists in any state. */
int ann_meta_log_insert(ann_meta *m, const char *tenant, const char *log, const uint8_t *labels,
                        size_t labels_len, int64_t create_ns, int32_t retention_days, ann_err *err);
/* 1 found (fills state, create time and a malloc'd copy of labels, which
 * may be NULL when empty), 0 not found, -1 error. */
int ann_meta_log_lookup(ann_meta *m, const char *tenant, const char *log, int *state,
                        int64_t *create_ns, uint8_t **labels, size_t *labels_len, ann_err *err);
/* One audit record of a log's lifecycle (the log_events table): kind "hold", "release" or
 * "retention". Pointers valid during the call (or the callback) only. */
typedef struct ann_meta_event {
    const char *log_id; /* on output */
    int64_t time_ns;
    const char *kind;
    const char *actor;
    const char *reason;
} ann_meta_event;

/* Marks a live log deleting, with its audit record (audit may be NULL), in one
 * transaction; ANN_EPRECOND when the log is on legal hold (nothing changes). */
int ann_meta_log_set_deleting(ann_meta *m, const char *tenant, const char *log,
                              const ann_meta_event *audit, ann_err *err);
/* Sets or clears a live log's hold and records the event, in one transaction;
 * ANN_ENOTFOUND when no live log. */
int ann_meta_log_set_hold(ann_meta *m, const char *tenant, const char *log, bool hold,
                          const char *actor, const char *reason, int64_t now_ns, ann_err *err);
/* Fills out's v4 fields (legal_hold, retention_days, the last hold change). */
int ann_meta_log_lifecycle(ann_meta *m, const char *tenant, const char *log, ann_log_meta *out,
                           ann_err *err);
/* ANN_ENOTFOUND when no tenant has this name. */
int ann_meta_tenant_set_retention(ann_meta *m, const char *name, int32_t days, ann_err *err);

/* A log retention may have to delete: live, not held, a period, and a recorded last write
 * (a lower bound of the true one) older than it. */
typedef struct ann_meta_candidate {
    char tenant[ANN_UUID_LEN + 1];
    char log[ANN_UUID_LEN + 1];
    int64_t last_write_ns;
    int32_t days;
    bool own_period; /* the log's own period (else its tenant's) */
} ann_meta_candidate;
/* At most max candidates, oldest recorded last write first (a malloc'd array). */
int ann_meta_retention_candidates(ann_meta *m, int64_t now_ns, int64_t day_ns, size_t max,
                                  ann_meta_candidate **out, size_t *n, ann_err *err);
/* Raises the recorded last write (never lowers it). */
int ann_meta_log_set_last_write(ann_meta *m, const char *tenant, const char *log, int64_t ns,
                                ann_err *err);
/* The lifecycle audit records of the tenant named tenant_name (of one log, or all when log
 * is NULL), oldest first; ANN_ENOTFOUND when no such tenant. fn runs with the lock held (it
 * must not call ann_meta_*) and may stop by returning nonzero. */
int ann_meta_log_events(ann_meta *m, const char *tenant_name, const char *log,
                        int (*fn)(const ann_meta_event *ev, void *ud), void *ud, ann_err *err);
/* Removes the row and marks the log's revocations applied. */
int ann_meta_log_remove(ann_meta *m, const char *tenant, const char *log, ann_err *err);

/* (tenant, log) pairs as "tenant/log" strings, malloc'd array of malloc'd
 * strings, for logs in `state` (or with pending revocations when
 * pending_revocations is set). Free with ann_meta_strv_free. */
int ann_meta_logs_where(ann_meta *m, bool pending_revocations, int state, char ***out, size_t *n,
                        ann_err *err);
void ann_meta_strv_free(char **v, size_t n);

/* Writes the audit record (durably) before the overwrite; *rowid names it. */
int ann_meta_revoke_insert(ann_meta *m, const char *tenant, const char *log, const uint64_t *ids,
                           size_t n, const char *actor, const char *reason, int64_t now_ns,
                           int64_t *rowid, ann_err *err);
int ann_meta_revoke_applied(ann_meta *m, int64_t rowid, ann_err *err);
/* Marks every pending revocation of the log applied. */
int ann_meta_revoke_applied_log(ann_meta *m, const char *tenant, const char *log, ann_err *err);
/* Sorted, deduplicated ids of the log's pending revocations (malloc'd). */
int ann_meta_revoke_pending(ann_meta *m, const char *tenant, const char *log, uint64_t **ids,
                            size_t *n, ann_err *err);

/* One audit record, for tests and tools. */
typedef struct ann_meta_revocation {
    int64_t time_ns;
    char actor[256];
    char reason[ANN_MAX_REASON_BYTES + 1]; /* the API's limit, whole */
    size_t n_ids;
    bool applied;
} ann_meta_revocation;
_Static_assert(sizeof(((ann_meta_revocation *)0)->actor) >= ANN_ACTOR_MAX,
               "an actor names the tenant and the key whole");

/* Calls fn for each of the log's audit records in order. */
int ann_meta_revocations(ann_meta *m, const char *tenant, const char *log,
                         void (*fn)(const ann_meta_revocation *r, void *ud), void *ud,
                         ann_err *err);

/* A log's entry count as recorded at its last clean close (count_dirty: it may have
 * grown since). 1 found, 0 not found, -1 error. */
int ann_meta_log_count_set(ann_meta *m, const char *tenant, const char *log, uint64_t count,
                           bool dirty, ann_err *err);
/* SealLog: marks the log sealed (synchronous=FULL: durable on return). */
int ann_meta_log_seal(ann_meta *m, const char *tenant, const char *log, ann_err *err);
/* Whether the log is sealed: 1 found, 0 not found, -1 error. */
int ann_meta_log_sealed(ann_meta *m, const char *tenant, const char *log, bool *sealed,
                        ann_err *err);
int ann_meta_log_count_get(ann_meta *m, const char *tenant, const char *log, uint64_t *count,
                           bool *dirty, ann_err *err);

/* One row of a log listing; pointers valid during the callback only. */
typedef struct ann_meta_log_row {
    const char *log_id;
    int64_t create_ns;
    const uint8_t *labels; /* Log fields 2 */
    size_t labels_len;
    uint64_t entry_count;
    bool count_dirty;
    bool legal_hold;
    int32_t retention_days;
} ann_meta_log_row;

/* A tenant's live logs in ListLogs order (create time desc, id asc), filtered by q's
 * labels and window, after its cursor, at most q->limit (0: all). fn may stop the walk
 * by returning nonzero. Runs fn with the metadata lock held: fn must not call ann_meta_*. */
int ann_meta_logs_page(ann_meta *m, const char *tenant, const ann_logs_query *q,
                       int (*fn)(const ann_meta_log_row *row, void *ud), void *ud, ann_err *err);

/* Every audit record of the log, applied or pending, oldest first: its ids (8-byte
 * little-endian each), actor, reason and time. Same locking rule as above. */
int ann_meta_revocation_records(ann_meta *m, const char *tenant, const char *log,
                                int (*fn)(const uint8_t *ids_le, size_t n, const char *actor,
                                          const char *reason, int64_t time_ns, void *ud),
                                void *ud, ann_err *err);

#endif
