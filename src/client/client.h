/*
 * ann_client: a small gRPC client for annals on the gRPC core C API.
 *
 * One ann_client holds one channel and the caller's API key. Every call sends
 * the metadata `authorization: Bearer <token>` (when a token is given). Calls
 * are independent: each owns its completion queue, so one client may be used
 * by several threads at once (the channel is thread-safe); a stream must be
 * driven by one thread at a time.
 *
 * gRPC itself is initialised by ann_client_new() and shut down by
 * ann_client_free() (grpc_init/grpc_shutdown are reference counted); nothing
 * else is global.
 *
 * Every byte a call returns comes from the network: treat it as untrusted.
 */
#ifndef ANN_CLIENT_CLIENT_H
#define ANN_CLIENT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* gRPC status codes, numbered as on the wire (the same as grpc_status_code). */
enum {
    ANN_RPC_OK = 0,
    ANN_RPC_CANCELLED = 1,
    ANN_RPC_UNKNOWN = 2,
    ANN_RPC_INVALID_ARGUMENT = 3,
    ANN_RPC_DEADLINE_EXCEEDED = 4,
    ANN_RPC_NOT_FOUND = 5,
    ANN_RPC_ALREADY_EXISTS = 6,
    ANN_RPC_PERMISSION_DENIED = 7,
    ANN_RPC_RESOURCE_EXHAUSTED = 8,
    ANN_RPC_FAILED_PRECONDITION = 9,
    ANN_RPC_ABORTED = 10,
    ANN_RPC_OUT_OF_RANGE = 11,
    ANN_RPC_UNIMPLEMENTED = 12,
    ANN_RPC_INTERNAL = 13,
    ANN_RPC_UNAVAILABLE = 14,
    ANN_RPC_DATA_LOSS = 15,
    ANN_RPC_UNAUTHENTICATED = 16,
};

/*
 * The outcome of a call: a gRPC status code and its message. Failures on
 * this side (out of memory, a malformed response) are reported with a code
 * too (INTERNAL), so a caller has one thing to look at. The message is the
 * server's bytes, truncated: escape it before showing it to a terminal.
 */
typedef struct ann_rpc_status {
    int code;
    char msg[512];
    /* The server flagged the failure retriable (trailing metadata `annals-retriable:
     * true`): the same request may succeed later, e.g. once a full disk has room. */
    int retriable;
} ann_rpc_status;

/* The canonical name of a status code: "OK", "NOT_FOUND", ...; a code
 * outside 0..16 gives "UNKNOWN_CODE". Never NULL. */
const char *ann_rpc_code_name(int code);

/* Sets st->code and formats st->msg; returns -1 (for `return ann_rpc_fail(...)`). */
int ann_rpc_fail(ann_rpc_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct ann_client_opts {
    const char *addr;  /* "host:port" or any gRPC target; required */
    const char *token; /* API key; NULL or "" sends no authorization */
    int tls;           /* 0: plaintext; 1: TLS */
    /* With tls: PEM root certificates (the text, not a path); NULL uses
     * gRPC's default roots. */
    const char *tls_roots_pem;
    /* 1: this client gets its own TCP connection instead of sharing one with
     * other clients to the same target (load generators want this). */
    int own_connection;
    /* Largest response accepted, in bytes; 0 means 64 MiB. */
    int max_recv_bytes;
} ann_client_opts;

typedef struct ann_client ann_client;

/*
 * Creates a client. Connection is lazy: an unreachable server shows up as
 * UNAVAILABLE on the first call. On success *out owns a client to release
 * with ann_client_free(); on failure *out is NULL and st says why.
 */
int ann_client_new(const ann_client_opts *opts, ann_client **out, ann_rpc_status *st);

/* Destroys the channel. Every stream of this client must be freed first. */
void ann_client_free(ann_client *c);

/*
 * One unary call to `method` ("/annals.v1.LoggingQueryService/GetLog").
 * Sends req[0..req_len), waits up to timeout_ms (<= 0: no deadline) and on
 * status OK stores the response in `resp` (replacing what it held; the
 * caller keeps ownership of `resp`). Returns 0 when the status is OK, -1
 * otherwise, with st filled either way.
 */
int ann_client_unary(ann_client *c, const char *method, const void *req, size_t req_len,
                     int64_t timeout_ms, ann_buf *resp, ann_rpc_status *st);

typedef struct ann_client_stream ann_client_stream;

/*
 * Starts a server-streaming call: sends the one request and half-closes.
 * timeout_ms <= 0 means no deadline. On success *out owns the stream (free
 * it with ann_client_stream_free()); on failure *out is NULL.
 */
int ann_client_stream_start(ann_client *c, const char *method, const void *req, size_t req_len,
                            int64_t timeout_ms, ann_client_stream **out, ann_rpc_status *st);

/* What ann_client_stream_next() found. */
enum {
    ANN_STREAM_MSG = 1,     /* a message is in `msg` */
    ANN_STREAM_END = 0,     /* the call is over; st holds its final status */
    ANN_STREAM_TIMEOUT = 2, /* nothing within wait_ms; call again */
};

/*
 * Waits up to wait_ms (< 0: forever) for the next message. Returns one of
 * the ANN_STREAM_ values. After ANN_STREAM_END, st holds the status (OK
 * when the server finished normally) and further calls return END again.
 * A timeout leaves the receive pending, so no message is lost.
 */
int ann_client_stream_next(ann_client_stream *s, int wait_ms, ann_buf *msg, ann_rpc_status *st);

/* Asks the call to stop; the next ann_client_stream_next() reports END with
 * CANCELLED. Safe to call more than once. */
void ann_client_stream_cancel(ann_client_stream *s);

/* Cancels the call if it is still running, waits for gRPC to give back every
 * pending operation, and frees the stream. NULL is allowed. */
void ann_client_stream_free(ann_client_stream *s);

#endif
