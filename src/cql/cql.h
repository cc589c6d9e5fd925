/*
 * ann_cql: a small Cassandra client speaking the CQL native protocol v4.
 *
 * Threading model: one connection (`ann_cql_conn`) carries many requests at
 * once, told apart by stream ids. Any number of threads may submit on one
 * connection concurrently; submission encodes the request, takes a free
 * stream id and writes the frame under a write lock. One reader thread per
 * connection reads response frames, decodes them (the pure decoder of
 * cql_codec.h) and hands each to the attempt waiting on its stream.
 *
 * Two ways to call:
 *  - blocking: ann_cql_query / _execute / _batch / _prepare / _options; the
 *    calling thread waits for the answer;
 *  - async: ann_cql_*_async returns a future at once (the request is on the
 *    wire); ann_cql_future_wait() waits for it and frees it. One thread can
 *    keep hundreds of requests in flight this way.
 *
 * Retry policy (applied inside the wait, in the waiting thread):
 *  - UNPREPARED: the statement is prepared again on the connection and the
 *    request resent, transparently, whatever its idempotence (it did not run).
 *  - A request that never reached the wire (no connection, connection lost
 *    before the write) is resent for any statement.
 *  - Otherwise only statements marked idempotent (params.idempotent) are
 *    resent: after a client timeout, a connection lost while in flight, or a
 *    server unavailable / overloaded / is_bootstrapping / read_timeout /
 *    write_timeout error. At most config.max_retries resends, with
 *    exponential backoff.
 *
 * Connections: the client holds one connection to one of the contact points.
 * When it breaks (node restart), every request in flight fails over to the
 * retry policy and the next submit reconnects, trying the contact points in
 * turn; prepared statements are re-prepared on demand.
 *
 * Errors: every call returns 0 or -1 and fills `ann_err`. A server ERROR also
 * leaves the typed error in out->error (out->opcode == ANN_CQL_OP_ERROR);
 * err->code is mapped by ann_cql_errcode_to_ann(). Transport failures are
 * ANN_EUNAVAIL (out->opcode stays 0).
 */
#ifndef ANN_CQL_CQL_H
#define ANN_CQL_CQL_H

#include "cql/cql_codec.h"

typedef struct ann_cql_config {
    const char *contact_points; /* "host[:port],host[:port]"; port 9042 by default */
    const char *username;       /* NULL: no authentication offered */
    const char *password;
    const char *keyspace;   /* NULL: none; else USE on every (re)connect */
    int connect_timeout_ms; /* default 5000 */
    int request_timeout_ms; /* default 12000, per attempt */
    int max_retries;        /* default 3 */
    int retry_backoff_ms;   /* default 50, doubled per retry, capped at 2 s */
    int max_streams;        /* default 1024; at most 32768 */
    uint32_t max_frame_len; /* default ANN_CQL_MAX_BODY */
} ann_cql_config;

typedef struct ann_cql_conn ann_cql_conn;
typedef struct ann_cql_future ann_cql_future;

/* A prepared statement, owned by its connection (freed with it). Preparing
 * the same text twice returns the same object. Its id may change after a
 * re-prepare; read it only through the connection's calls. */
typedef struct ann_cql_prepared ann_cql_prepared;

/* Connects to the first reachable contact point and performs the handshake
 * (STARTUP, then AUTHENTICATE/AUTH_RESPONSE with SASL PLAIN if the server
 * asks, then USE keyspace). The config's strings are copied. */
int ann_cql_conn_new(const ann_cql_config *cfg, ann_cql_conn **out, ann_err *err);

/* Closes the connection and frees it with its prepared statements. No call
 * on it may be running, and every future must have been waited for. */
void ann_cql_conn_free(ann_cql_conn *c);

/* Counters, for tests and figures. */
typedef struct ann_cql_stats {
    uint64_t connects;   /* successful handshakes, first one included */
    uint64_t reprepares; /* UNPREPARED answered by a re-prepare */
    uint64_t retries;    /* resends by the retry policy */
    int in_flight;       /* streams in use right now */
    int max_in_flight;   /* the most streams ever in use at once */
} ann_cql_stats;
void ann_cql_conn_stats(ann_cql_conn *c, ann_cql_stats *out);

/* Breaks the current socket as a network failure would (tests). */
void ann_cql_conn_break(ann_cql_conn *c);

/* OPTIONS: out is a SUPPORTED result. */
int ann_cql_options(ann_cql_conn *c, ann_cql_result *out, ann_err *err);

/* QUERY. `p` may be NULL (consistency ONE, no values). `out` is always
 * initialised and must be released with ann_cql_result_release(). */
int ann_cql_query(ann_cql_conn *c, const char *cql, const ann_cql_params *p, ann_cql_result *out,
                  ann_err *err);

/* Schema: adds `columns` ("name type, ...") to keyspace ks's table unless its column
 * `probe` is there already (a table made by an older version). Concurrent callers race
 * harmlessly: a failed ALTER is checked once more. */
int ann_cql_add_columns(ann_cql_conn *c, const char *ks, const char *table, const char *probe,
                        const char *columns, ann_err *err);

/* PREPARE (cached per connection by text). */
int ann_cql_prepare(ann_cql_conn *c, const char *cql, ann_cql_prepared **out, ann_err *err);
/* Bind markers of a prepared statement and their types. */
int32_t ann_cql_prepared_nbind(const ann_cql_prepared *ps);
uint16_t ann_cql_prepared_bind_type(const ann_cql_prepared *ps, int32_t i);

/* EXECUTE. */
int ann_cql_execute(ann_cql_conn *c, ann_cql_prepared *ps, const ann_cql_params *p,
                    ann_cql_result *out, ann_err *err);

/* BATCH: statements are plain text (query) or prepared (ps). */
typedef struct ann_cql_batch_item {
    const char *query; /* when ps is NULL */
    ann_cql_prepared *ps;
    const ann_cql_value *values;
    size_t nvalues;
} ann_cql_batch_item;

typedef struct ann_cql_batch {
    ann_cql_batch_type type;
    const ann_cql_batch_item *items;
    size_t n;
    uint16_t consistency;        /* default (0 given) means ANY: set it */
    uint16_t serial_consistency; /* 0, SERIAL or LOCAL_SERIAL */
    bool has_timestamp;
    int64_t timestamp_us;
    bool idempotent;
    int timeout_ms;
} ann_cql_batch;

int ann_cql_batch_run(ann_cql_conn *c, const ann_cql_batch *b, ann_cql_result *out, ann_err *err);

/* Async forms: NULL on failure to submit (err filled). Wait for each future
 * exactly once; the wait frees it. */
ann_cql_future *ann_cql_query_async(ann_cql_conn *c, const char *cql, const ann_cql_params *p,
                                    ann_err *err);
ann_cql_future *ann_cql_execute_async(ann_cql_conn *c, ann_cql_prepared *ps,
                                      const ann_cql_params *p, ann_err *err);
ann_cql_future *ann_cql_batch_async(ann_cql_conn *c, const ann_cql_batch *b, ann_err *err);
int ann_cql_future_wait(ann_cql_future *f, ann_cql_result *out, ann_err *err);

#endif
