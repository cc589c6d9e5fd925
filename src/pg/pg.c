#include "pg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

static void *slot(ann_pg_params *p, Oid type, int format)
{
    if (p->n >= ANN_PG_MAX_PARAMS)
        abort(); /* a bug in the statement's caller */
    int i = p->n++;
    p->types[i] = type;
    p->formats[i] = format;
    p->lengths[i] = 0;
    return p->scratch[i];
}

void ann_pg_param_text(ann_pg_params *p, const char *s)
{
    slot(p, ANN_PG_TEXT, 0);
    p->values[p->n - 1] = s;
}

void ann_pg_param_raw(ann_pg_params *p, const char *s)
{
    slot(p, 0, 0);
    p->values[p->n - 1] = s;
}

static void put_be(char *out, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        out[i] = (char)(v & 0xff);
}

void ann_pg_param_i64(ann_pg_params *p, int64_t v)
{
    char *s = slot(p, ANN_PG_INT8, 1);
    put_be(s, (uint64_t)v, 8);
    p->values[p->n - 1] = s;
    p->lengths[p->n - 1] = 8;
}

void ann_pg_param_i32(ann_pg_params *p, int32_t v)
{
    char *s = slot(p, ANN_PG_INT4, 1);
    put_be(s, (uint32_t)v, 4);
    p->values[p->n - 1] = s;
    p->lengths[p->n - 1] = 4;
}

void ann_pg_param_bool(ann_pg_params *p, bool v)
{
    char *s = slot(p, ANN_PG_BOOL, 1);
    s[0] = v ? 1 : 0;
    p->values[p->n - 1] = s;
    p->lengths[p->n - 1] = 1;
}

void ann_pg_param_bytes(ann_pg_params *p, const void *data, size_t len)
{
    slot(p, ANN_PG_BYTEA, 1);
    p->values[p->n - 1] = len ? data : "";
    p->lengths[p->n - 1] = (int)len;
}

/* One line of PostgreSQL's message, for the log. */
static void trim(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r') {
            *p = '\0';
            break;
        }
}

int ann_pg_fail(ann_err *err, PGconn *c, const PGresult *r, const char *what)
{
    char msg[200];
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : c ? PQerrorMessage(c) : "");
    trim(msg);
    ann_code code = ANN_EIO;
    if (!c || PQstatus(c) != CONNECTION_OK)
        code = ANN_EUNAVAIL;
    else if (state && (strncmp(state, "08", 2) == 0 ||  /* connection exception */
                       strcmp(state, "57014") == 0 ||   /* query canceled (timeout) */
                       strncmp(state, "57P", 3) == 0 || /* shutdown */
                       strcmp(state, "40001") == 0 ||   /* serialization failure */
                       strcmp(state, "40P01") == 0 ||   /* deadlock */
                       strcmp(state, "55P03") == 0 ||   /* lock not available */
                       strcmp(state, "53300") == 0))    /* too many connections */
        code = ANN_EUNAVAIL;
    return ann_err_set(err, code, "postgres: %s: %s%s%s", what, state ? state : "",
                       state ? " " : "", msg);
}

PGconn *ann_pg_connect(const char *conninfo, ann_err *err)
{
    PGconn *c = PQconnectdb(conninfo);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        ann_pg_fail(err, c, NULL, "connect");
        if (err)
            err->code = ANN_EUNAVAIL;
        PQfinish(c);
        return NULL;
    }
    PQsetErrorVerbosity(c, PQERRORS_TERSE);
    /* Our statements are small; a stuck one is an outage, not a wait. */
    PGresult *r = PQexec(c, "SET statement_timeout = '60s'; SET client_min_messages = warning");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        ann_pg_fail(err, c, r, "connect settings");
    PQclear(r);
    if (!ok) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

PGresult *ann_pg_exec(PGconn *c, const char *what, const char *sql, const ann_pg_params *p,
                      bool binary, ann_err *err)
{
    /* Without parameters or binary results: the simple protocol (several statements). */
    PGresult *r;
    if (p)
        r = PQexecParams(c, sql, p->n, p->types, p->values, p->lengths, p->formats, binary);
    else if (binary)
        r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 1);
    else
        r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    ann_pg_fail(err, c, r, what);
    PQclear(r);
    return NULL;
}

int ann_pg_run(PGconn *c, const char *what, const char *sql, const ann_pg_params *p, ann_err *err)
{
    PGresult *r = ann_pg_exec(c, what, sql, p, false, err);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

static uint64_t get_be(const char *s, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | (uint8_t)s[i];
    return v;
}

int64_t ann_pg_get_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return (int64_t)get_be(PQgetvalue(r, row, col), 8);
}

int32_t ann_pg_get_i32(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return (int32_t)(uint32_t)get_be(PQgetvalue(r, row, col), 4);
}

bool ann_pg_get_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] != 0;
}

/* ---- binary COPY ---- */

void ann_pg_copy_header(ann_buf *b)
{
    static const uint8_t sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
    ann_buf_add(b, sig, sizeof sig);
    static const uint8_t zero[8] = {0};
    ann_buf_add(b, zero, 8); /* flags, header extension length */
}

void ann_pg_copy_trailer(ann_buf *b)
{
    ann_buf_add_byte(b, 0xff);
    ann_buf_add_byte(b, 0xff);
}

static void add_be(ann_buf *b, uint64_t v, int n)
{
    char tmp[8];
    put_be(tmp, v, n);
    ann_buf_add(b, tmp, (size_t)n);
}

void ann_pg_copy_tuple(ann_buf *b, int16_t nfields)
{
    add_be(b, (uint16_t)nfields, 2);
}

void ann_pg_copy_bytes(ann_buf *b, const void *p, size_t n)
{
    add_be(b, (uint32_t)n, 4);
    if (n)
        ann_buf_add(b, p, n);
}

void ann_pg_copy_null(ann_buf *b)
{
    add_be(b, 0xffffffffu, 4);
}

void ann_pg_copy_i64(ann_buf *b, int64_t v)
{
    add_be(b, 8, 4);
    add_be(b, (uint64_t)v, 8);
}

void ann_pg_copy_i32(ann_buf *b, int32_t v)
{
    add_be(b, 4, 4);
    add_be(b, (uint32_t)v, 4);
}

int ann_pg_copy_in(PGconn *c, const char *what, const char *sql, const void *data, size_t len,
                   ann_err *err)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        ann_pg_fail(err, c, r, what);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    const char *p = data;
    int ok = 1;
    while (len > 0 && ok == 1) {
        int n = len > (1 << 20) ? (1 << 20) : (int)len;
        ok = PQputCopyData(c, p, n);
        p += n;
        len -= (size_t)n;
    }
    if (ok != 1) {
        ann_pg_fail(err, c, NULL, what);
        PQputCopyEnd(c, "aborted");
    } else if (PQputCopyEnd(c, NULL) != 1) {
        ok = 0;
        ann_pg_fail(err, c, NULL, what);
    }
    int rc = ok == 1 ? 0 : -1;
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0)
            rc = ann_pg_fail(err, c, r, what);
        PQclear(r);
    }
    return rc;
}

/* ---- pool ---- */

struct ann_pg_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *conninfo;
    size_t n;
    PGconn **conns; /* NULL until first use */
    bool *busy;
};

int ann_pg_pool_open(const char *conninfo, size_t n, ann_pg_pool **out, ann_err *err)
{
    if (!conninfo || n == 0)
        return ann_err_set(err, ANN_EINVAL, "pg pool: conninfo and a size are required");
    ann_pg_pool *p = ann_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->conninfo = strdup(conninfo);
    if (!p->conninfo)
        abort();
    p->n = n;
    p->conns = ann_xcalloc(n, sizeof *p->conns);
    p->busy = ann_xcalloc(n, sizeof *p->busy);
    *out = p;
    return 0;
}

PGconn *ann_pg_pool_get(ann_pg_pool *p, ann_err *err)
{
    pthread_mutex_lock(&p->mu);
    size_t i;
    for (;;) {
        for (i = 0; i < p->n && p->busy[i]; i++)
            ;
        if (i < p->n)
            break;
        pthread_cond_wait(&p->cv, &p->mu);
    }
    p->busy[i] = true;
    PGconn *c = p->conns[i];
    p->conns[i] = NULL;
    pthread_mutex_unlock(&p->mu);
    if (c && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = NULL;
    }
    if (!c)
        c = ann_pg_connect(p->conninfo, err);
    if (!c) {
        pthread_mutex_lock(&p->mu);
        p->busy[i] = false;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return c;
}

void ann_pg_pool_put(ann_pg_pool *p, PGconn *c)
{
    if (!c)
        return;
    if (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE) {
        PQfinish(c); /* reconnected on the next get */
        c = NULL;
    }
    pthread_mutex_lock(&p->mu);
    size_t i;
    for (i = 0; i < p->n && !(p->busy[i] && !p->conns[i]); i++)
        ;
    if (i < p->n) {
        p->conns[i] = c;
        p->busy[i] = false;
        pthread_cond_signal(&p->cv);
    } else {
        PQfinish(c);
    }
    pthread_mutex_unlock(&p->mu);
}

void ann_pg_pool_close(ann_pg_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        PQfinish(p->conns[i]);
    free(p->conns);
    free(p->busy);
    free(p->conninfo);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
