/*
 * ann_service: the RPCs of annals, independent of the transport.
 *
 * Each handler takes the request's bytes exactly as they came off the network
 * (untrusted), validates them, runs them against the storage port, and produces the
 * response's bytes or an ann_err whose code src/api/status.c maps onto a gRPC status.
 * The gRPC server (server.c) only moves bytes; the fuzzers and unit tests call these
 * directly.
 */
#ifndef ANN_API_SERVICE_H
#define ANN_API_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "store/store.h"

typedef enum ann_rpc {
    ANN_RPC_CREATE_LOG,
    ANN_RPC_DELETE_LOG,
    ANN_RPC_WRITE,
    ANN_RPC_REVOKE,
    ANN_RPC_LIST,
    ANN_RPC_GET_LOG,
    ANN_RPC_TAIL, /* server streaming: ann_tail_* */
    ANN_RPC_LIST_LOGS,
    ANN_RPC_READ,
    ANN_RPC_SEARCH,
    ANN_RPC_CHECKPOINT, /* integrity (docs/integrity.md) */
    ANN_RPC_INCLUSION,
    ANN_RPC_CONSISTENCY,
    ANN_RPC_SEAL,
    ANN_RPC_SHARE, /* CreateShareLink */
    ANN_RPC_SET_LEGAL_HOLD,
} ann_rpc;

typedef struct ann_service {
    ann_store *store; /* borrowed */
    uint8_t secret[32];
    /* The wait of a WriteLogEntriesRequest that says WAIT_UNSPECIFIED: QUERYABLE after
     * ann_service_init (annalsd serve --default-wait); ANN_WAIT_DEFAULT leaves it to the
     * backend. */
    ann_wait default_wait;
} ann_service;

/* Fills `svc` for `store` (borrowed; it must outlive svc). */
int ann_service_init(ann_service *svc, ann_store *store, ann_err *err);

/* Maps a gRPC method path ("/annals.v1.LoggingCommandService/CreateLog") to an rpc;
 * -1 when unknown. */
int ann_rpc_from_path(const char *path, size_t len);
/* The method path of an rpc (the inverse); NULL for an unknown value. */
const char *ann_rpc_path(ann_rpc rpc);
#define ANN_NRPC (ANN_RPC_SET_LEGAL_HOLD + 1)

/* Checks an `authorization` metadata value ("Bearer <key>"); ANN_EUNAUTH otherwise, with
 * the same message for a missing, unknown, revoked or expired key. *out gets the tenant and
 * the key (its roles, name and hash). */
int ann_service_auth(ann_service *svc, const char *value, size_t len, ann_tenant *out,
                     ann_err *err);

/* Checks again a key that authenticated before (a long call: a tail), by its hash: as
 * ann_service_auth. */
int ann_service_recheck(ann_service *svc, const uint8_t key_hash[32], ann_tenant *out,
                        ann_err *err);

/* Whether the key's roles allow the rpc: 0, or ANN_EPERM with a message naming the role
 * the rpc needs. Every rpc is checked before its request is read (ann_service_unary_async,
 * ann_tail_open), so a refused call changes nothing. */
int ann_service_authorize(const ann_tenant *t, ann_rpc rpc, ann_err *err);

/*
 * The completion of a unary rpc: rc 0 with the serialized response in *resp, or -1 with
 * *err. Called exactly once, from any thread, possibly before ann_service_unary_async
 * returns. resp and err are valid only during the call (resp is never NULL when rc is 0;
 * the callee may take its memory, leaving it ANN_BUF_INIT).
 */
typedef void (*ann_unary_done_fn)(void *ud, int rc, ann_buf *resp, const ann_err *err);

/* Runs a unary rpc. The commands (CreateLog, DeleteLog, WriteLogEntries,
 * RevokeLogEntries) complete when the store does (ann_store_*_async), the others
 * synchronously (done is called before this returns). req bytes stay valid until done. */
void ann_service_unary_async(ann_service *svc, ann_rpc rpc, const ann_tenant *tenant,
                             const uint8_t *req, size_t len, ann_unary_done_fn done, void *ud);

/* Runs a unary rpc and waits for it (the fuzzers and unit tests). On success resp holds
 * the serialized response (appended). */
int ann_service_unary(ann_service *svc, ann_rpc rpc, const ann_tenant *tenant, const uint8_t *req,
                      size_t len, ann_buf *resp, ann_err *err);

/* How often an open tail's key is checked again, at most (the server's tick). */
#define ANN_TAIL_KEY_RECHECK_MS 1000

/* A tail: the position of one TailLogEntries stream. */
typedef struct ann_tail {
    ann_service *svc;
    ann_tenant tenant;
    char log_id[ANN_UUID_LEN + 1];
    uint64_t last_id; /* the last id sent; entries after it come next */
} ann_tail;

/* Validates a TailLogEntriesRequest and positions the tail. */
int ann_tail_open(ann_service *svc, const ann_tenant *tenant, const uint8_t *req, size_t len,
                  ann_tail *out, ann_err *err);

/* Appends to resp one TailLogEntriesResponse with the entries after last_id (as many as
 * fit one message) and advances last_id. *n is how many; 0 means caught up (resp
 * untouched). ANN_ENOTFOUND once the log is gone; ANN_EUNAUTH once the tail's key is
 * revoked or expired (checked on every call: the server calls it at least every
 * ANN_TAIL_KEY_RECHECK_MS while a tail is open). */
int ann_tail_next(ann_tail *t, ann_buf *resp, size_t *n, ann_err *err);

#endif
