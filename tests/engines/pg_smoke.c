/* Smoke test of the development PostgreSQL (deploy/services-up.sh postgres) through libpq,
 * exercising what annals' projector relies on: log in as role annals, COPY a batch in
 * (text format, with the characters that need escaping and NULLs), read it back exactly,
 * and see a COPY with one bad row store nothing.
 * Each run creates its own table with a unique name and drops it at the end.
 * Connection: $ANN_PG_DSN, default
 *   host=127.0.0.1 port=5432 dbname=annals user=annals password=annals */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#define SMOKE_ROWS 1000

typedef struct smoke_ctx {
    PGconn *conn;
    char table[96]; /* unique per run */
} smoke_ctx;

/* Row I's payload: every few rows carries a tab, newline, backslash, carriage return or
 * non-ASCII text, and every 7th row a NULL payload. Returns NULL for the NULL rows. */
static const char *row_payload(int i, char *buf, size_t cap)
{
    static const char *const extra[] = {"plain",       "tab\there", "line\nbreak",
                                        "back\\slash", "cr\rlf",    "utf8 \xc3\xa9\xe2\x82\xac",
                                        "\\N literal"};
    if (i % 7 == 6)
        return NULL;
    snprintf(buf, cap, "entry %d: %s", i, extra[i % 7]);
    return buf;
}

/* Appends S to OUT (capacity CAP, length *LEN) escaped for COPY's text format. */
static void copy_escape(char *out, size_t cap, size_t *len, const char *s)
{
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '\\':
            rep = "\\\\";
            break;
        case '\t':
            rep = "\\t";
            break;
        case '\n':
            rep = "\\n";
            break;
        case '\r':
            rep = "\\r";
            break;
        default:
            break;
        }
        size_t n = rep ? 2 : 1;
        assert_true(*len + n < cap);
        memcpy(out + *len, rep ? rep : s, n);
        *len += n;
    }
    out[*len] = '\0';
}

static long count_rows(smoke_ctx *ctx)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", ctx->table);
    PGresult *r = PQexec(ctx->conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* Runs COPY ... FROM STDIN with LINES rows (row BAD_ROW, if >= 0, gets a non-number seq)
 * and returns the final result; the caller clears it. */
static PGresult *copy_in(smoke_ctx *ctx, int lines, int bad_row)
{
    char sql[160];
    snprintf(sql, sizeof sql, "COPY %s (id, seq, payload) FROM STDIN", ctx->table);
    PGresult *r = PQexec(ctx->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    for (int i = 0; i < lines; i++) {
        char line[512], buf[256];
        size_t len = (size_t)snprintf(line, sizeof line, "%d\t%lld\t", i, 1000000000000LL + i);
        const char *p = row_payload(i, buf, sizeof buf);
        if (i == bad_row)
            len = (size_t)snprintf(line, sizeof line, "%d\tnot-a-number\t", i);
        if (p)
            copy_escape(line, sizeof line, &len, p);
        else
            len += (size_t)snprintf(line + len, sizeof line - len, "\\N");
        line[len++] = '\n';
        if (PQputCopyData(ctx->conn, line, (int)len) != 1)
            fail_msg("PQputCopyData: %s", PQerrorMessage(ctx->conn));
    }
    if (PQputCopyEnd(ctx->conn, NULL) != 1)
        fail_msg("PQputCopyEnd: %s", PQerrorMessage(ctx->conn));
    r = PQgetResult(ctx->conn);
    PGresult *extra;
    while ((extra = PQgetResult(ctx->conn)) != NULL)
        PQclear(extra);
    return r;
}

static int setup(void **state)
{
    static smoke_ctx ctx;
    const char *dsn = getenv("ANN_PG_DSN");
    if (!dsn || !*dsn)
        dsn =
            "host=127.0.0.1 port=5432 dbname=annals user=annals password=annals connect_timeout=10";
    ctx.conn = PQconnectdb(dsn);
    if (PQstatus(ctx.conn) != CONNECTION_OK) {
        fprintf(stderr, "connect (%s): %s(is PostgreSQL up? make services-up)\n", dsn,
                PQerrorMessage(ctx.conn));
        PQfinish(ctx.conn);
        return -1;
    }
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(ctx.table, sizeof ctx.table, "smoke_%ld_%d_%04x", (long)time(NULL), (int)getpid(),
             rand() & 0xffff);
    char sql[256];
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (id integer PRIMARY KEY, seq bigint NOT NULL, payload text)",
             ctx.table);
    PGresult *r = PQexec(ctx.conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    if (!ok) {
        PQfinish(ctx.conn);
        return -1;
    }
    *state = &ctx;
    return 0;
}

static int teardown(void **state)
{
    smoke_ctx *ctx = *state;
    if (!ctx) /* setup failed and cleaned up after itself */
        return 0;
    char sql[160];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", ctx->table);
    PQclear(PQexec(ctx->conn, sql));
    PQfinish(ctx->conn);
    return 0;
}

/* A COPY whose row SMOKE_ROWS/2 has a non-number in a bigint column fails as a whole. */
static void test_copy_bad_row_stores_nothing(void **state)
{
    smoke_ctx *ctx = *state;
    PGresult *r = copy_in(ctx, SMOKE_ROWS, SMOKE_ROWS / 2);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22P02"); /* invalid text repr. */
    PQclear(r);
    assert_int_equal(count_rows(ctx), 0);
}

/* COPY a batch in, then read every row back, byte for byte, NULLs included. */
static void test_copy_batch_read_back(void **state)
{
    smoke_ctx *ctx = *state;
    PGresult *r = copy_in(ctx, SMOKE_ROWS, -1);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("COPY: %s", PQresultErrorMessage(r));
    assert_string_equal(PQcmdTuples(r), "1000");
    PQclear(r);
    assert_int_equal(count_rows(ctx), SMOKE_ROWS);

    char sql[160];
    snprintf(sql, sizeof sql, "SELECT id, seq, payload FROM %s ORDER BY id", ctx->table);
    r = PQexec(ctx->conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    assert_int_equal(PQntuples(r), SMOKE_ROWS);
    for (int i = 0; i < SMOKE_ROWS; i++) {
        char buf[256], seq[32];
        const char *want = row_payload(i, buf, sizeof buf);
        assert_int_equal(strtol(PQgetvalue(r, i, 0), NULL, 10), i);
        snprintf(seq, sizeof seq, "%lld", 1000000000000LL + i);
        assert_string_equal(PQgetvalue(r, i, 1), seq);
        if (!want) {
            assert_true(PQgetisnull(r, i, 2));
        } else {
            assert_false(PQgetisnull(r, i, 2));
            assert_string_equal(PQgetvalue(r, i, 2), want);
        }
    }
    PQclear(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_bad_row_stores_nothing),
        cmocka_unit_test(test_copy_batch_read_back),
    };
    return cmocka_run_group_tests_name("engines_postgres", tests, setup, teardown);
}
