#include "schema.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "pg.h"

static int in_tx(PGconn *c, const char *ns, const char *what, const char *sql, ann_err *err)
{
    ann_pg_params p = {0};
    ann_pg_param_text(&p, ns);
    if (ann_pg_run(c, what, "BEGIN", NULL, err) != 0)
        return -1;
    /* Concurrent creators of one namespace take turns (CREATE IF NOT EXISTS races). */
    if (ann_pg_run(c, what, "SELECT pg_advisory_xact_lock(hashtext($1))", &p, err) != 0 ||
        ann_pg_run(c, what, sql, NULL, err) != 0 || ann_pg_run(c, what, "COMMIT", NULL, err) != 0) {
        PGresult *r = PQexec(c, "ROLLBACK");
        PQclear(r);
        return -1;
    }
    return 0;
}

int ann_pg_schema_ensure(PGconn *c, const char *ns, ann_err *err)
{
    if (!ann_namespace_valid(ns))
        return ann_err_set(err, ANN_EINVAL, "namespace: must be [a-z][a-z0-9_]{0,39}");
    /* pg_trgm (in Debian's postgresql-15; trusted: the database owner may create it) in
     * schema public, once per database, under a lock of its own (namespaces race). */
    char trgm[128];
    PGresult *r =
        ann_pg_exec(c, "schema",
                    "SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n"
                    " ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'",
                    NULL, false, err);
    if (!r)
        return -1;
    bool have = PQntuples(r) == 1;
    snprintf(trgm, sizeof trgm, "%s", have ? PQgetvalue(r, 0, 0) : "public");
    PQclear(r);
    if (!have && in_tx(c, "annals.pg_trgm", "create extension pg_trgm",
                       "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public", err) != 0)
        return -1;
    char sql[8192];
    snprintf(sql, sizeof sql,
             "CREATE SCHEMA IF NOT EXISTS \"%1$s\";"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".entries ("
             " tenant_id text COLLATE \"C\" NOT NULL, log_id text COLLATE \"C\" NOT NULL,"
             " entry_id bigint NOT NULL, ts bigint NOT NULL, insert_ts bigint NOT NULL,"
             " severity int NOT NULL, flags int NOT NULL, insert_id bytea NOT NULL,"
             " body bytea NOT NULL, bhash bytea, leaf bytea,"
             " PRIMARY KEY (tenant_id, log_id, entry_id, ts)) PARTITION BY RANGE (ts);"
             "ALTER TABLE \"%1$s\".entries ADD COLUMN IF NOT EXISTS bhash bytea;"
             "ALTER TABLE \"%1$s\".entries ADD COLUMN IF NOT EXISTS leaf bytea;"
             "CREATE INDEX IF NOT EXISTS entries_time ON \"%1$s\".entries"
             " (tenant_id, log_id, ts, entry_id);"
             "CREATE INDEX IF NOT EXISTS entries_tenant_time ON \"%1$s\".entries"
             " (tenant_id, ts, log_id, entry_id);"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".entries_default PARTITION OF \"%1$s\".entries"
             " DEFAULT;"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".logs ("
             " tenant_id text COLLATE \"C\" NOT NULL, log_id text COLLATE \"C\" NOT NULL,"
             " create_ts bigint NOT NULL, labels bytea NOT NULL, label_set text[] NOT NULL,"
             " deleted boolean NOT NULL DEFAULT false, PRIMARY KEY (tenant_id, log_id));"
             "CREATE INDEX IF NOT EXISTS logs_created ON \"%1$s\".logs"
             " (tenant_id, create_ts DESC, log_id);"
             "CREATE INDEX IF NOT EXISTS logs_labels ON \"%1$s\".logs USING gin (label_set);"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".log_state ("
             " tenant_id text COLLATE \"C\" NOT NULL, log_id text COLLATE \"C\" NOT NULL,"
             " visible_count bigint NOT NULL DEFAULT 0, applied_op bigint NOT NULL DEFAULT 0,"
             " deleted boolean NOT NULL DEFAULT false, ckpt_size bigint NOT NULL DEFAULT -1,"
             " checkpoint text, sealed boolean NOT NULL DEFAULT false,"
             " PRIMARY KEY (tenant_id, log_id));"
             "ALTER TABLE \"%1$s\".log_state ADD COLUMN IF NOT EXISTS sealed boolean NOT NULL"
             " DEFAULT false;"
             "ALTER TABLE \"%1$s\".log_state ADD COLUMN IF NOT EXISTS ckpt_size bigint NOT NULL"
             " DEFAULT -1;"
             "ALTER TABLE \"%1$s\".log_state ADD COLUMN IF NOT EXISTS checkpoint text;"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".revocations ("
             " tenant_id text COLLATE \"C\" NOT NULL, log_id text COLLATE \"C\" NOT NULL,"
             " entry_id bigint NOT NULL, actor text NOT NULL, reason text NOT NULL,"
             " time_ns bigint NOT NULL, PRIMARY KEY (tenant_id, log_id, entry_id));"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".projector_offsets ("
             " partition int PRIMARY KEY, next_offset bigint NOT NULL DEFAULT 0,"
             " epoch bigint NOT NULL DEFAULT 0);"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".purge_pending ("
             " rel text PRIMARY KEY, gen bigint NOT NULL DEFAULT 1);"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".search_docs ("
             " tenant_id text COLLATE \"C\" NOT NULL, log_id text COLLATE \"C\" NOT NULL,"
             " entry_id bigint NOT NULL, ts bigint NOT NULL, insert_ts bigint NOT NULL,"
             " doc text COLLATE \"C\" NOT NULL, PRIMARY KEY (tenant_id, log_id, entry_id, ts))"
             " PARTITION BY RANGE (ts);"
             "CREATE INDEX IF NOT EXISTS search_docs_trgm ON \"%1$s\".search_docs"
             " USING gin (doc %2$s.gin_trgm_ops);"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".search_docs_default PARTITION OF"
             " \"%1$s\".search_docs DEFAULT;"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".search_state ("
             " tenant_id text COLLATE \"C\" NOT NULL, log_id text COLLATE \"C\" NOT NULL,"
             " indexed bigint NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, log_id));"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".search_offsets ("
             " partition int PRIMARY KEY, next_offset bigint NOT NULL DEFAULT 0,"
             " epoch bigint NOT NULL DEFAULT 0);",
             ns, trgm);
    return in_tx(c, ns, "schema", sql, err);
}

int ann_pg_schema_drop(PGconn *c, const char *ns, ann_err *err)
{
    if (!ann_namespace_valid(ns))
        return ann_err_set(err, ANN_EINVAL, "namespace: must be [a-z][a-z0-9_]{0,39}");
    char sql[128];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", ns);
    return ann_pg_run(c, "drop schema", sql, NULL, err);
}

int ann_pg_month_of(int64_t ts_ns)
{
    int64_t s = ts_ns / 1000000000;
    if (ts_ns % 1000000000 < 0)
        s--;
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return -1;
    int year = tm.tm_year + 1900;
    if (year < ANN_PG_FIRST_YEAR || year >= ANN_PG_END_YEAR)
        return -1;
    return (year - ANN_PG_FIRST_YEAR) * 12 + tm.tm_mon;
}

static int64_t month_start_ns(int m)
{
    struct tm tm = {.tm_year = ANN_PG_FIRST_YEAR - 1900 + m / 12, .tm_mon = m % 12, .tm_mday = 1};
    return (int64_t)timegm(&tm) * 1000000000;
}

int ann_pg_month_ensure(PGconn *c, const char *ns, int m, ann_err *err)
{
    if (m < 0 || m >= ANN_PG_MONTHS)
        return 0; /* the default partition */
    char sql[1024];
    int y = ANN_PG_FIRST_YEAR + m / 12, mo = m % 12 + 1;
    long long from = (long long)month_start_ns(m), to = (long long)month_start_ns(m + 1);
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS \"%1$s\".entries_p%2$04d%3$02d PARTITION OF"
             " \"%1$s\".entries FOR VALUES FROM (%4$lld) TO (%5$lld);"
             "CREATE TABLE IF NOT EXISTS \"%1$s\".search_docs_p%2$04d%3$02d PARTITION OF"
             " \"%1$s\".search_docs FOR VALUES FROM (%4$lld) TO (%5$lld)",
             ns, y, mo, from, to);
    return in_tx(c, ns, "create partition", sql, err);
}

static void add_hex(ann_buf *b, const uint8_t *p, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        ann_buf_add_byte(b, (uint8_t)hx[p[i] >> 4]);
        ann_buf_add_byte(b, (uint8_t)hx[p[i] & 15]);
    }
}

static void add_pair(ann_buf *b, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    if (b->len > 1)
        ann_buf_add_byte(b, ',');
    ann_buf_add_byte(b, '"');
    add_hex(b, k, kn);
    ann_buf_add_byte(b, '=');
    add_hex(b, v, vn);
    ann_buf_add_byte(b, '"');
}

static int label_cb(const uint8_t *k, size_t kn, const uint8_t *v, size_t vn, void *ud)
{
    add_pair(ud, k, kn, v, vn);
    return 0;
}

void ann_pg_label_set_of_labels(ann_buf *b, const uint8_t *buf, size_t len, uint32_t field)
{
    b->len = 0;
    ann_buf_add_byte(b, '{');
    if (len)
        ann_labels_each(buf, len, field, label_cb, b);
    ann_buf_add(b, "}", 2);
}

void ann_pg_label_set_of_pairs(ann_buf *b, const ann_label_pair *pairs, size_t n)
{
    b->len = 0;
    ann_buf_add_byte(b, '{');
    for (size_t i = 0; i < n; i++)
        add_pair(b, pairs[i].key, pairs[i].key_len, pairs[i].value, pairs[i].value_len);
    ann_buf_add(b, "}", 2);
}

void ann_pg_text_array(ann_buf *b, const char *const *v, size_t n)
{
    b->len = 0;
    ann_buf_add_byte(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            ann_buf_add_byte(b, ',');
        ann_buf_add_byte(b, '"');
        for (const char *s = v[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                ann_buf_add_byte(b, '\\');
            ann_buf_add_byte(b, (uint8_t)*s);
        }
        ann_buf_add_byte(b, '"');
    }
    ann_buf_add(b, "}", 2);
}
