/*
 * ann_pg: thin helpers over libpq for annals' read model (docs/distributed.md).
 *
 * Statements run with PQexecParams: parameters in binary where it saves parsing
 * (integers, bytea), results in binary when the caller asks. Failures become ann_err:
 * a lost connection, a timeout or a serialization failure is ANN_EUNAVAIL (retry), any
 * other failure ANN_EIO. The message names the step and PostgreSQL's text; it is for the
 * server's log only (both codes are internal: clients read a fixed text).
 *
 * The pool hands out one connection at a time to concurrent readers (mutex + condition
 * variable); a connection found broken is reset before it is handed out again.
 */
#ifndef ANN_PG_PG_H
#define ANN_PG_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "domain/event.h"

/* Type oids of the built-in types we bind (pg_type.h is a server header). */
#define ANN_PG_BOOL 16
#define ANN_PG_BYTEA 17
#define ANN_PG_INT8 20
#define ANN_PG_INT4 23
#define ANN_PG_TEXT 25

#define ANN_PG_MAX_PARAMS 16
#define ANN_PG_NS_MAX ANN_NAMESPACE_MAX /* domain/event.h */

typedef struct ann_pg_params {
    int n;
    const char *values[ANN_PG_MAX_PARAMS];
    int lengths[ANN_PG_MAX_PARAMS];
    int formats[ANN_PG_MAX_PARAMS];
    Oid types[ANN_PG_MAX_PARAMS];
    char scratch[ANN_PG_MAX_PARAMS][8];
} ann_pg_params;

/* Each adds the next parameter ($1, $2, ...); pointers must live until the exec. */
void ann_pg_param_text(ann_pg_params *p, const char *s); /* NUL-terminated, type text */
void ann_pg_param_raw(ann_pg_params *p, const char *s);  /* text format, type inferred */
void ann_pg_param_i64(ann_pg_params *p, int64_t v);
void ann_pg_param_i32(ann_pg_params *p, int32_t v);
void ann_pg_param_bool(ann_pg_params *p, bool v);
void ann_pg_param_bytes(ann_pg_params *p, const void *data, size_t len);

/* A namespace is a schema name and a channel prefix: [a-z][a-z0-9_]{0,39}. */

/* Connects (and checks the connection). */
PGconn *ann_pg_connect(const char *conninfo, ann_err *err);

/* Runs one statement (several, without params and binary); NULL on failure (err set), else a result
 * the caller PQclear()s. `binary` asks for binary results. `what` names the step for the log. */
PGresult *ann_pg_exec(PGconn *c, const char *what, const char *sql, const ann_pg_params *p,
                      bool binary, ann_err *err);

/* Runs a statement without results (or one whose results are dropped). */
int ann_pg_run(PGconn *c, const char *what, const char *sql, const ann_pg_params *p, ann_err *err);

/* Fills err from a failed result (or the connection's state when r is NULL); returns -1. */
int ann_pg_fail(ann_err *err, PGconn *c, const PGresult *r, const char *what);

/* Binary result readers. */
int64_t ann_pg_get_i64(const PGresult *r, int row, int col);
int32_t ann_pg_get_i32(const PGresult *r, int row, int col);
bool ann_pg_get_bool(const PGresult *r, int row, int col);

/* Binary COPY: the stream header and trailer, and one tuple's fields, into a buffer. */
typedef struct ann_buf ann_buf;
void ann_pg_copy_header(ann_buf *b);
void ann_pg_copy_trailer(ann_buf *b);
void ann_pg_copy_tuple(ann_buf *b, int16_t nfields);
void ann_pg_copy_bytes(ann_buf *b, const void *p, size_t n);
void ann_pg_copy_null(ann_buf *b); /* a NULL field */
void ann_pg_copy_i64(ann_buf *b, int64_t v);
void ann_pg_copy_i32(ann_buf *b, int32_t v);

/* Sends a prepared buffer through COPY ... FROM STDIN (FORMAT binary). */
int ann_pg_copy_in(PGconn *c, const char *what, const char *sql, const void *data, size_t len,
                   ann_err *err);

/* ---- pool ---- */
typedef struct ann_pg_pool ann_pg_pool;

/* n connections, opened on first use. Fails only on bad arguments. */
int ann_pg_pool_open(const char *conninfo, size_t n, ann_pg_pool **out, ann_err *err);
/* Waits for a free connection; reconnects a broken one. NULL (EUNAVAIL) if it cannot. */
PGconn *ann_pg_pool_get(ann_pg_pool *p, ann_err *err);
/* Gives a connection back; one left inside a transaction or broken is reset. */
void ann_pg_pool_put(ann_pg_pool *p, PGconn *c);
void ann_pg_pool_close(ann_pg_pool *p);

#endif
