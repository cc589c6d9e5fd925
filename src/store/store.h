/*
 * ann_store: the storage port of annals.
 *
 * Everything the gRPC surface needs from storage goes through this port: one
 * `ann_store_ops` table per backend (embedded: src/store/embedded; distributed:
 * the Kafka/Cassandra/PostgreSQL pipeline), built with designated
 * initialisers. Callers use the ann_store_*() wrappers below, never `ops->`.
 *
 * Invariants every backend keeps (../docs/invariants in DESIGN.md terms):
 *  - A log's entry ids are 1..N, dense, in acceptance order; one append's new
 *    entries get consecutive ids in request order.
 *  - An insert_id the log already holds stores nothing and reports the
 *    existing id, for the whole life of the log.
 *  - An append is all or nothing. It completes (returns, or calls its done
 *    function) once it meets its `wait` level (ann_wait): durable (per the
 *    backend's durability setting), sequenced (ids known), or queryable
 *    (visible to list, read_after and watchers). The embedded backend meets
 *    all three at once.
 *  - A tenant sees only its own logs: another tenant's log, a deleted log and
 *    a missing log all fail with ANN_ENOTFOUND and the same message.
 *  - Entries never change, except by revoke, which purges the body (labels
 *    and payload) from storage before it returns and sets ANN_ENTRY_REDACTED.
 *  - Integrity (optional ops below; docs/integrity.md): a backend that keeps a log's
 *    Merkle tree returns each entry's body with its LogEntry.integrity field (43, its
 *    body_salt) appended, and a redacted entry's body as that field holding its body_hash
 *    only (domain/integrity.h). A sealed log takes no new entries (ANN_EPRECOND), while
 *    an append whose insert_ids are all stored still answers their ids.
 *
 * Threading: every operation may be called from any thread concurrently;
 * appends from many threads are group-committed. Synchronous operations block
 * (they may wait for fsync): call them from worker threads, not from gRPC
 * completion-queue threads.
 *
 * Version 2 adds asynchronous commands (append, revoke, log_delete,
 * log_create): the call starts the operation and its ann_done_fn reports the
 * outcome, exactly once, from any thread, possibly before the call returns.
 * A backend fills either form of each command, or both; the wrappers adapt
 * (an async wrapper over a sync op runs it inline then calls done; a sync
 * wrapper over an async op waits for done). Every started operation must
 * complete in bounded time (backends time out their own waits): the server
 * waits for pending completions when it stops, before the store is closed.
 *
 * Version 4 adds retention and legal hold (docs/api.md, "Retention and legal hold"): a
 * held log is never deleted, by log_delete (ANN_EPRECOND) or by retention_pass; a hold
 * and a deletion of one log are decided one after the other, never both; retention
 * deletes only logs whose last write is older than their period, through log_delete's
 * own path, with an audit record each.
 */
#ifndef ANN_STORE_STORE_H
#define ANN_STORE_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "domain/body.h"
#include "domain/rules.h"

#define ANN_UUID_LEN 36 /* canonical text form, without the NUL */

/* How far an append goes before it completes (WriteLogEntriesRequest.wait). */
typedef enum ann_wait {
    ANN_WAIT_DEFAULT = 0,   /* the backend's default */
    ANN_WAIT_DURABLE = 1,   /* durable; the ids may not be known yet */
    ANN_WAIT_SEQUENCED = 2, /* ids assigned (and durable) */
    ANN_WAIT_QUERYABLE = 3, /* visible to every read */
} ann_wait;

/* Completion of an asynchronous operation: rc 0, or -1 with *err. Called exactly once,
 * from any thread, possibly before the *_async call returns. `err` is valid only during
 * the call (NULL when rc is 0). */
typedef void (*ann_done_fn)(void *ud, int rc, const ann_err *err);

enum {
    ANN_ENTRY_REDACTED = 1u << 0, /* body purged by revoke */
    /* On append input only: the API made the insert_id up (the client sent none), so it
     * is new unless this very request is replayed. A backend may use it to skip lookups. */
    ANN_ENTRY_GENERATED_ID = 1u << 1,
};

/* The audit record of a revocation, as kept by the store. */
typedef struct ann_revocation {
    const char *actor;
    const char *reason;
    int64_t time_ns;
} ann_revocation;

/*
 * One entry as the store sees it. The body is opaque to the store: the API
 * layer encodes the entry's labels and payload into it. Pointers in an entry
 * handed to a visitor are valid only during that call.
 */
typedef struct ann_entry {
    uint64_t entry_id;      /* 1..N within the log; ignored on append input */
    int64_t time_ns;        /* event time, ns since the Unix epoch */
    int64_t insert_time_ns; /* receipt time, ns since the Unix epoch */
    int32_t severity;
    uint32_t flags;        /* ANN_ENTRY_* */
    const char *insert_id; /* never empty on append (the API generates one) */
    size_t insert_id_len;
    const uint8_t *body; /* labels + payload (domain/body.h); once redacted, empty or (on
                          * output, from a backend with integrity) the body_hash field */
    size_t body_len;
    /* On output, for a redacted entry: the revocation that purged it (the first one),
     * when the backend knows it; NULL otherwise. */
    const ann_revocation *revocation;
} ann_entry;

/*
 * A tenant, and (v3) the key a call presented: tenant_by_key fills the key fields from
 * the key that matched, tenant_create from the admin key it made. A backend before v3 has
 * one key per tenant: the wrappers report it as an admin key named ANN_ADMIN_KEY_NAME.
 */
typedef struct ann_tenant {
    char id[ANN_UUID_LEN + 1];
    char name[129];
    char key_id[ANN_UUID_LEN + 1];       /* "" from a backend before v3 */
    char key_name[ANN_KEY_NAME_MAX + 1]; /* names the key in audit records */
    uint32_t roles;                      /* ANN_ROLE_* (domain/rules.h) */
    int64_t expire_ns;                   /* 0: never; the caller checks it against its clock */
    uint8_t key_hash[32];                /* the presented key's hash (tenant_by_key only) */
    /* A share link's scope (src/api/share.c), set by the service, never by a store: the
     * one log it reads ("" for a key) and its entry ids share_first..share_last. */
    char share_log[ANN_UUID_LEN + 1];
    uint64_t share_first, share_last;
} ann_tenant;

/* A key as the store keeps it: everything but the key itself, of which only the SHA-256
 * is stored. Ids are random version-4 UUIDs, unique across tenants. */
typedef struct ann_key {
    char id[ANN_UUID_LEN + 1];
    char tenant_id[ANN_UUID_LEN + 1];
    char name[ANN_KEY_NAME_MAX + 1];
    uint32_t roles;
    int64_t create_ns;
    int64_t expire_ns;    /* 0: never */
    int64_t revoke_ns;    /* 0: not revoked */
    int64_t last_used_ns; /* 0: never; recorded at most once per ANN_KEY_LAST_USE_EVERY_NS per
                           * server, so it may lag that much behind */
} ann_key;

/* One new key (key_create); in the caller's memory for the call. */
typedef struct ann_key_spec {
    const char *tenant_name;
    const char *name;  /* ann_key_name_valid; NULL: the key's id */
    uint32_t roles;    /* at least one */
    int64_t expire_ns; /* 0: never */
    uint8_t key_hash[32];
    int64_t now_ns;
} ann_key_spec;

/* Called for each listed key; return nonzero to stop early. */
typedef int (*ann_key_visit_fn)(const ann_key *k, void *ud);

/* v4: the audit record of a legal hold or release, as kept by the store. */
typedef struct ann_hold_change {
    bool hold; /* true: held; false: released */
    char actor[ANN_ACTOR_MAX];
    char *reason; /* malloc'd (ann_log_meta_release frees it); NULL when empty */
    int64_t time_ns;
} ann_hold_change;

/* Log metadata. `labels` is malloc'd by the store (opaque encoded bytes, as
 * given to log_create); free it with ann_log_meta_release(). */
typedef struct ann_log_meta {
    char id[ANN_UUID_LEN + 1];
    int64_t create_time_ns;
    uint64_t entry_count;   /* entries sequenced so far (the highest id) */
    uint64_t visible_count; /* v2: entries 1..visible_count are visible to reads
                             * (<= entry_count; embedded: equal) */
    uint8_t *labels;
    size_t labels_len;
    /* v4 (zero from older backends): legal_hold and retention_days from log_get and
     * logs_list, the last hold change from log_get only. */
    bool legal_hold;
    int32_t retention_days; /* as created; 0: the tenant's period applies */
    bool has_hold_change;   /* last_hold_change is set: held or released at least once */
    ann_hold_change last_hold_change;
    bool sealed; /* SealLog was called (backends without integrity: false) */
} ann_log_meta;

/* v4: a new log (log_create_spec); in the caller's memory for the call. */
typedef struct ann_log_spec {
    const char *tenant_id;
    const char *log_id;
    const uint8_t *labels;
    size_t labels_len;
    int64_t now_ns;
    int32_t retention_days; /* >= 0; 0: the tenant's period */
} ann_log_spec;

/* v4: what one retention pass did. */
typedef struct ann_retention_stats {
    size_t examined; /* candidate logs looked at */
    size_t deleted;  /* deleted (each with its audit record) */
    bool more;       /* the pass stopped at its bound: candidates may remain */
} ann_retention_stats;

/* v4: one record of a log's lifecycle audit trail (holds, releases, retention's
 * deletions), as operator tools read it. Pointers valid during the visit only. */
typedef struct ann_log_event {
    const char *log_id;
    int64_t time_ns;
    const char *kind; /* "hold", "release" or "retention" */
    const char *actor;
    const char *reason;
} ann_log_event;
/* Called for each record; return nonzero to stop early. */
typedef int (*ann_log_event_visit_fn)(const ann_log_event *ev, void *ud);

/* The actor of retention's audit records. */
#define ANN_RETENTION_ACTOR "annals:retention"

void ann_log_meta_release(ann_log_meta *m);

/* Sync over async: a waiter on the caller's stack. Init it, pass ann_store_waiter_done and
 * the waiter as an async op's done and ud, then ann_store_waiter_wait: 0, or -1 with the
 * op's error in *err (when not NULL). Used once. */
typedef struct ann_store_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    ann_err err;
} ann_store_waiter;
void ann_store_waiter_init(ann_store_waiter *w);
void ann_store_waiter_done(void *ud, int rc, const ann_err *err);
int ann_store_waiter_wait(ann_store_waiter *w, ann_err *err);

/* One append: in the caller's memory for the duration of the call (for append_async:
 * until its done function is called). */
typedef struct ann_append {
    const char *tenant_id;
    const char *log_id;
    const ann_entry *entries; /* n entries; entry_id and flags are ignored */
    size_t n;
    ann_wait wait;     /* v2: how far to go before completing; DEFAULT: the backend's */
    uint64_t *ids_out; /* caller's array of n: each entry's id, new or existing */
    size_t n_new_out;  /* how many entries were new */
    /* v2, output: false when the backend answered before the ids were known (DURABLE):
     * then ids_out is untouched and n_new_out is 0. */
    bool ids_known;
} ann_append;

/*
 * A listing in (time_ns, entry_id) order. Entries with entry_id > max_id are
 * skipped (a snapshot, so a paged walk is exactly-once while writes go on);
 * max_id 0 means no snapshot. With has_cursor, only entries strictly after
 * (cursor_time_ns, cursor_id) are listed. `filter`, when set, is applied
 * before `limit` counts an entry.
 */
typedef struct ann_list_query {
    int64_t start_ns; /* inclusive; INT64_MIN for no bound */
    int64_t end_ns;   /* exclusive; INT64_MAX for no bound */
    bool has_cursor;
    int64_t cursor_time_ns;
    uint64_t cursor_id;
    uint64_t max_id;
    size_t limit;
    bool (*filter)(const ann_entry *e, void *ud);
    void *filter_ud;
    /* v2: the same filter as data, for backends that push it down (e.g. into SQL). The
     * callback stays authoritative: a backend may ignore these, or pre-select with them
     * and still run the callback. min_severity 0: none; text_contains_len 0: none (a
     * byte-exact substring of the entry's text payload; redacted entries never match). */
    int32_t min_severity;
    const uint8_t *text_contains;
    size_t text_contains_len;
    /* Entries examined (time window, snapshot and cursor passed, filter run) at most;
     * 0: no bound. When the budget stops the walk, the store says so in the result. */
    uint64_t budget;
} ann_list_query;

/* How a listing ended: `budget_hit` when it stopped because `budget` entries were
 * examined; then (last_time_ns, last_id) is the last entry examined, from which the
 * walk continues (as a cursor). */
typedef struct ann_list_result {
    bool budget_hit;
    int64_t last_time_ns;
    uint64_t last_id;
} ann_list_result;

/*
 * A listing of a tenant's logs, newest create time first, ties by id (ascending, as
 * text). Deleted logs never appear. With has_cursor, only logs strictly after
 * (cursor_create_ns, cursor_id) in that order.
 */
typedef struct ann_logs_query {
    const ann_label_pair *labels; /* every pair must be among the log's labels */
    size_t n_labels;
    int64_t start_ns; /* create time, inclusive; INT64_MIN for no bound */
    int64_t end_ns;   /* exclusive; INT64_MAX for no bound */
    bool has_cursor;
    int64_t cursor_create_ns;
    char cursor_id[ANN_UUID_LEN + 1];
    size_t limit;
} ann_logs_query;

/* A position in a search walk: (time, log id as text, entry id). */
typedef struct ann_search_pos {
    int64_t time_ns;
    char log_id[ANN_UUID_LEN + 1];
    uint64_t entry_id;
} ann_search_pos;

/*
 * A search across a tenant's logs (domain/body.h says what matches). Entries are visited
 * in (time, log_id, entry_id) order, strictly after the cursor when has_cursor, and only
 * those with insert_time_ns <= snapshot_ns (the walk's snapshot: entries written during
 * the walk are left out). Redacted entries never match.
 */
typedef struct ann_search_query {
    const ann_matcher *match;
    const ann_label_pair *labels; /* on the logs' labels */
    size_t n_labels;
    const char (*log_ids)[ANN_UUID_LEN + 1]; /* when n_log_ids > 0: only these logs */
    size_t n_log_ids;
    int64_t start_ns; /* entry time, inclusive */
    int64_t end_ns;   /* exclusive */
    int64_t snapshot_ns;
    bool has_cursor;
    ann_search_pos cursor;
    size_t limit;    /* matches per call */
    uint64_t budget; /* entries examined per call at most (>= 1) */
} ann_search_query;

/* How a search call ended: `more` when the walk is not complete; then every match at or
 * before `resume` has been visited, and the next call continues strictly after it. */
typedef struct ann_search_result {
    bool more;
    ann_search_pos resume;
    uint64_t examined; /* entries examined in this call */
} ann_search_result;

/* Called for each listed entry; return nonzero to stop early (not an error). */
typedef int (*ann_entry_visit_fn)(const ann_entry *e, void *ud);

/* Called for each listed log; return nonzero to stop early. */
typedef int (*ann_log_visit_fn)(const ann_log_meta *m, void *ud);

/* Called for each search hit, with its log; return nonzero to stop early (the call then
 * reports `more` with the hit's position as `resume`). */
typedef int (*ann_hit_visit_fn)(const char *log_id, const ann_entry *e, void *ud);

/* Called from a store thread, without store locks held, after new entries of
 * the watched log become visible, or once the log is deleted. It must not
 * block and must not call ann_store_unwatch(). */
typedef void (*ann_watch_fn)(void *ud);

typedef struct ann_store ann_store;
typedef struct ann_watch ann_watch;

typedef struct ann_store_ops {
    unsigned version; /* 1 to 4 (the v2, v3 and v4 fields and ops below); callers check it */
    const char *name;

    void (*close)(ann_store *s);

    /* 32 bytes of server secret (e.g. for page-token MACs), the same for
     * every server of one deployment and stable across restarts. */
    int (*secret)(ann_store *s, uint8_t out[32], ann_err *err);

    /* v3: key_hash becomes the tenant's first key, named ANN_ADMIN_KEY_NAME, admin role. */
    int (*tenant_create)(ann_store *s, const char *name, const uint8_t key_hash[32],
                         ann_tenant *out, ann_err *err);
    /* ANN_EUNAUTH when no tenant has this key hash, or (v3) the key is revoked: the
     * same error and message. An expired key is found (expire_ns says so): the caller
     * refuses it. v3: records the key's last use, at most once per
     * ANN_KEY_LAST_USE_EVERY_NS per key and server (never a disk write per call). */
    int (*tenant_by_key)(ann_store *s, const uint8_t key_hash[32], ann_tenant *out, ann_err *err);

    int (*log_create)(ann_store *s, const char *tenant_id, const char *log_id,
                      const uint8_t *labels, size_t labels_len, int64_t now_ns, ann_err *err);
    int (*log_get)(ann_store *s, const char *tenant_id, const char *log_id, ann_log_meta *out,
                   ann_err *err);
    int (*log_delete)(ann_store *s, const char *tenant_id, const char *log_id, ann_err *err);

    int (*append)(ann_store *s, ann_append *req, ann_err *err);

    /* Redacts entries. Any id above the log's entry_count (or 0) fails the
     * whole call with ANN_ENOTFOUND naming it, and revokes nothing.
     * Revoking a redacted entry again is harmless. `actor` and `reason` are
     * kept with the time as the audit record. */
    int (*revoke)(ann_store *s, const char *tenant_id, const char *log_id, const uint64_t *ids,
                  size_t n, const char *actor, const char *reason, int64_t now_ns, ann_err *err);

    int (*list)(ann_store *s, const char *tenant_id, const char *log_id, const ann_list_query *q,
                ann_entry_visit_fn visit, void *ud, ann_list_result *res, ann_err *err);

    int (*logs_list)(ann_store *s, const char *tenant_id, const ann_logs_query *q,
                     ann_log_visit_fn visit, void *ud, ann_err *err);

    int (*search)(ann_store *s, const char *tenant_id, const ann_search_query *q,
                  ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err);

    /* Entries with id > after_id in id order, at most `limit` of them (0: no limit). */
    int (*read_after)(ann_store *s, const char *tenant_id, const char *log_id, uint64_t after_id,
                      size_t limit, ann_entry_visit_fn visit, void *ud, ann_err *err);

    int (*watch)(ann_store *s, const char *tenant_id, const char *log_id, ann_watch_fn fn, void *ud,
                 ann_watch **out, ann_err *err);
    /* After it returns, fn is not running and will never be called again. */
    void (*unwatch)(ann_store *s, ann_watch *w);

    /* ---- version 2: asynchronous commands (any may be NULL, see the top) ---- */

    /* req and all it points to stay valid until done. */
    void (*append_async)(ann_store *s, ann_append *req, ann_done_fn done, void *ud);
    /* ids, actor and reason stay valid until done. */
    void (*revoke_async)(ann_store *s, const char *tenant_id, const char *log_id,
                         const uint64_t *ids, size_t n, const char *actor, const char *reason,
                         int64_t now_ns, ann_done_fn done, void *ud);
    void (*log_delete_async)(ann_store *s, const char *tenant_id, const char *log_id,
                             ann_done_fn done, void *ud);
    /* labels stay valid until done. */
    void (*log_create_async)(ann_store *s, const char *tenant_id, const char *log_id,
                             const uint8_t *labels, size_t labels_len, int64_t now_ns,
                             ann_done_fn done, void *ud);

    /* ---- version 3: keys with roles (NULL: the wrappers fail with ANN_EINVAL) ---- */

    /* A new key of spec->tenant_name (ANN_ENOTFOUND when no such tenant; ANN_EEXISTS
     * when the tenant has a key of that name, revoked or not). Fills *out. */
    int (*key_create)(ann_store *s, const ann_key_spec *spec, ann_key *out, ann_err *err);
    /* The tenant's keys, revoked ones included, in creation order (ANN_ENOTFOUND when no
     * such tenant). */
    int (*key_list)(ann_store *s, const char *tenant_name, ann_key_visit_fn visit, void *ud,
                    ann_err *err);
    /* Revokes a key by id (ANN_ENOTFOUND when no key has it; revoking again is harmless).
     * From the call on, tenant_by_key on this store refuses it; on other servers of the
     * same deployment within the backend's stated bound (docs/api.md). Fills *out. */
    int (*key_revoke)(ann_store *s, const char *key_id, int64_t now_ns, ann_key *out, ann_err *err);

    /* ---- version 4: retention and legal hold (NULL: the wrappers fail with ANN_EPRECOND,
     * except log_create_spec with retention_days 0, which falls back to log_create, and
     * retention_pass, which then has nothing to do) ---- */

    /* log_create, with the log's own retention period. */
    int (*log_create_spec)(ann_store *s, const ann_log_spec *spec, ann_err *err);
    /* Holds (hold) or releases the log and keeps the audit record (actor, reason, time) in
     * one step; ANN_ENOTFOUND as log_get. Holding a held log records the call again. While
     * held, log_delete fails with ANN_EPRECOND and retention_pass skips the log; revoke
     * still works. */
    int (*log_set_hold)(ann_store *s, const char *tenant_id, const char *log_id, bool hold,
                        const char *actor, const char *reason, int64_t now_ns, ann_err *err);
    /* The tenant's period for its logs created with retention_days 0 (0: keep forever);
     * ANN_ENOTFOUND when no such tenant. */
    int (*tenant_set_retention)(ann_store *s, const char *tenant_name, int32_t days, ann_err *err);
    /* One bounded pass: deletes, exactly as log_delete does, at most max_logs logs that are
     * not held and whose last write (the insert time of their last entry, or their
     * creation) is older than now_ns - period * day_ns, keeping for each an audit record
     * (actor ANN_RETENTION_ACTOR) of what was deleted and why. Nothing else is touched. */
    int (*retention_pass)(ann_store *s, int64_t now_ns, int64_t day_ns, size_t max_logs,
                          ann_retention_stats *out, ann_err *err);
    /* The asynchronous form of log_create_spec (a backend fills either; spec and all it
     * points to stay valid until done). */
    void (*log_create_spec_async)(ann_store *s, const ann_log_spec *spec, ann_done_fn done,
                                  void *ud);

    /* ---- integrity (docs/integrity.md), in any version: NULL when the backend keeps no
     * tree; the wrappers then fail with ANN_EUNIMPL ---- */

    /* The log's latest signed checkpoint (a signed note), appended to out. It covers every
     * entry visible when it was made; the backend signs a new one when asked after the tree
     * grew. A log stored before integrity: ANN_EPRECOND. */
    int (*checkpoint)(ann_store *s, const char *tenant_id, const char *log_id, ann_buf *out,
                      ann_err *err);
    /* RFC 9162 2.1.3: the inclusion proof of entry `entry_id` (leaf entry_id - 1) in the
     * tree of `tree_size` leaves, into out (ANN_STORE_MAX_PROOF hashes), *n its length.
     * tree_size beyond the latest checkpoint's: ANN_EINVAL naming "tree_size"; entry_id 0
     * or above tree_size: ANN_EINVAL naming "entry_id". */
    int (*inclusion_proof)(ann_store *s, const char *tenant_id, const char *log_id,
                           uint64_t entry_id, uint64_t tree_size, uint8_t (*out)[32], size_t *n,
                           ann_err *err);
    /* RFC 9162 2.1.4: the consistency proof between trees of first and second leaves,
     * 0 < first <= second <= the latest checkpoint's size (else ANN_EINVAL naming
     * "first_size" or "second_size"). */
    int (*consistency_proof)(ann_store *s, const char *tenant_id, const char *log_id,
                             uint64_t first, uint64_t second, uint8_t (*out)[32], size_t *n,
                             ann_err *err);
    /* Seals the log (durably) and appends its final checkpoint, covering every entry
     * appended before the seal took, to out. Sealing again is harmless. */
    int (*log_seal)(ann_store *s, const char *tenant_id, const char *log_id, ann_buf *out,
                    ann_err *err);

    /* ---- in any version: NULL when no operation waits on an engine ---- */

    /* Completes at once every asynchronous operation still waiting on an engine, with
     * ANN_EUNAVAIL (its outcome unknown): the server's grace period at stop is over, and a
     * call waiting for an engine that is down must not hold the process. Later operations
     * run as before. */
    void (*abandon)(ann_store *s);
} ann_store_ops;

#define ANN_STORE_MAX_PROOF 65 /* = ANN_MERKLE_MAX_PROOF (domain/merkle.h) */

/* Every backend's handle starts with this. */
struct ann_store {
    const ann_store_ops *ops;
};

/* Wrappers: the only way callers reach a backend. */
void ann_store_close(ann_store *s);
/* ops->abandon, when the backend has it. */
void ann_store_abandon(ann_store *s);
int ann_store_secret(ann_store *s, uint8_t out[32], ann_err *err);
int ann_store_tenant_create(ann_store *s, const char *name, const uint8_t key_hash[32],
                            ann_tenant *out, ann_err *err);
int ann_store_tenant_by_key(ann_store *s, const uint8_t key_hash[32], ann_tenant *out,
                            ann_err *err);
int ann_store_log_create(ann_store *s, const char *tenant_id, const char *log_id,
                         const uint8_t *labels, size_t labels_len, int64_t now_ns, ann_err *err);
/* Version 3: keys (see the ops). */
int ann_store_key_create(ann_store *s, const ann_key_spec *spec, ann_key *out, ann_err *err);
int ann_store_key_list(ann_store *s, const char *tenant_name, ann_key_visit_fn visit, void *ud,
                       ann_err *err);
int ann_store_key_revoke(ann_store *s, const char *key_id, int64_t now_ns, ann_key *out,
                         ann_err *err);
/* Version 4: retention and legal hold (see the ops). */
void ann_store_log_create_spec_async(ann_store *s, const ann_log_spec *spec, ann_done_fn done,
                                     void *ud);
int ann_store_log_set_hold(ann_store *s, const char *tenant_id, const char *log_id, bool hold,
                           const char *actor, const char *reason, int64_t now_ns, ann_err *err);
int ann_store_tenant_set_retention(ann_store *s, const char *tenant_name, int32_t days,
                                   ann_err *err);
int ann_store_retention_pass(ann_store *s, int64_t now_ns, int64_t day_ns, size_t max_logs,
                             ann_retention_stats *out, ann_err *err);
int ann_store_log_get(ann_store *s, const char *tenant_id, const char *log_id, ann_log_meta *out,
                      ann_err *err);
int ann_store_log_delete(ann_store *s, const char *tenant_id, const char *log_id, ann_err *err);
int ann_store_append(ann_store *s, ann_append *req, ann_err *err);
int ann_store_revoke(ann_store *s, const char *tenant_id, const char *log_id, const uint64_t *ids,
                     size_t n, const char *actor, const char *reason, int64_t now_ns, ann_err *err);
int ann_store_list(ann_store *s, const char *tenant_id, const char *log_id, const ann_list_query *q,
                   ann_entry_visit_fn visit, void *ud, ann_list_result *res, ann_err *err);
int ann_store_logs_list(ann_store *s, const char *tenant_id, const ann_logs_query *q,
                        ann_log_visit_fn visit, void *ud, ann_err *err);
int ann_store_search(ann_store *s, const char *tenant_id, const ann_search_query *q,
                     ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err);
int ann_store_read_after(ann_store *s, const char *tenant_id, const char *log_id, uint64_t after_id,
                         size_t limit, ann_entry_visit_fn visit, void *ud, ann_err *err);
int ann_store_watch(ann_store *s, const char *tenant_id, const char *log_id, ann_watch_fn fn,
                    void *ud, ann_watch **out, ann_err *err);
void ann_store_unwatch(ann_store *s, ann_watch *w);

/* Integrity (see the ops): ANN_EUNIMPL over a backend without them. */
int ann_store_checkpoint(ann_store *s, const char *tenant_id, const char *log_id, ann_buf *out,
                         ann_err *err);
int ann_store_inclusion_proof(ann_store *s, const char *tenant_id, const char *log_id,
                              uint64_t entry_id, uint64_t tree_size, uint8_t (*out)[32], size_t *n,
                              ann_err *err);
int ann_store_consistency_proof(ann_store *s, const char *tenant_id, const char *log_id,
                                uint64_t first, uint64_t second, uint8_t (*out)[32], size_t *n,
                                ann_err *err);
int ann_store_log_seal(ann_store *s, const char *tenant_id, const char *log_id, ann_buf *out,
                       ann_err *err);

/* Version 2: the asynchronous commands. Every argument (the strings included) stays
 * valid until done is called. Over a backend without the async op, the sync op runs
 * inline and done is called before the wrapper returns (append: ids_known = true). */
void ann_store_append_async(ann_store *s, ann_append *req, ann_done_fn done, void *ud);
void ann_store_revoke_async(ann_store *s, const char *tenant_id, const char *log_id,
                            const uint64_t *ids, size_t n, const char *actor, const char *reason,
                            int64_t now_ns, ann_done_fn done, void *ud);
void ann_store_log_delete_async(ann_store *s, const char *tenant_id, const char *log_id,
                                ann_done_fn done, void *ud);
void ann_store_log_create_async(ann_store *s, const char *tenant_id, const char *log_id,
                                const uint8_t *labels, size_t labels_len, int64_t now_ns,
                                ann_done_fn done, void *ud);

#endif
