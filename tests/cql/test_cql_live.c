/*
 * The CQL client against a real Cassandra (label `cql`): every message,
 * value type and error the client knows that a healthy single node can be
 * made to produce. Errors a healthy node cannot produce on demand (timeouts,
 * overloaded, is_bootstrapping) are covered by test_cql_scripted.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "live.h"

#define KS "ann_cql_test"

static ann_cql_conn *C;

static void must(ann_cql_conn *c, const char *cql)
{
    ann_cql_result r;
    ann_err err;
    ann_err_clear(&err);
    int rc = ann_cql_query(c, cql, NULL, &r, &err);
    if (rc != 0)
        fail_msg("%s: %s", cql, err.msg);
    ann_cql_result_release(&r);
}

static int setup(void **state)
{
    (void)state;
    ann_cql_config cfg = live_config();
    ann_err err;
    if (ann_cql_conn_new(&cfg, &C, &err) < 0) {
        fprintf(stderr, "connect: %s\n", err.msg);
        return -1;
    }
    must(C, "CREATE KEYSPACE IF NOT EXISTS " KS " WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ann_cql_conn_free(C);
    return 0;
}

static bool bytes_eq(ann_cql_bytes b, const char *s)
{
    return b.len >= 0 && (size_t)b.len == strlen(s) && memcmp(b.p, s, (size_t)b.len) == 0;
}

static void test_options_supported(void **state)
{
    (void)state;
    ann_cql_result r;
    ann_err err;
    assert_int_equal(ann_cql_options(C, &r, &err), 0);
    assert_int_equal(r.opcode, ANN_CQL_OP_SUPPORTED);
    bool v4 = false, cqlv = false;
    for (uint16_t i = 0; i < r.nopts; i++) {
        if (bytes_eq(r.opt_keys[i], "PROTOCOL_VERSIONS"))
            for (uint16_t j = 0; j < r.opt_count[i]; j++)
                v4 |= bytes_eq(r.opt_vals[r.opt_first[i] + j], "4/v4");
        if (bytes_eq(r.opt_keys[i], "CQL_VERSION"))
            cqlv = r.opt_count[i] > 0;
    }
    assert_true(v4);
    assert_true(cqlv);
    ann_cql_result_release(&r);
}

static void test_auth(void **state)
{
    (void)state;
    ann_cql_config cfg = live_config();
    ann_cql_conn *c = NULL;
    ann_err err;
    /* right credentials: AUTHENTICATE, AUTH_RESPONSE, AUTH_SUCCESS */
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), 0);
    ann_cql_stats st;
    ann_cql_conn_stats(c, &st);
    assert_int_equal(st.connects, 1);
    ann_cql_conn_free(c);
    /* wrong password: ERROR authentication_error */
    cfg.password = "definitely-not-the-password";
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), -1);
    assert_null(c);
    assert_int_equal(err.code, ANN_EUNAUTH);
    assert_non_null(strstr(err.msg, "authentication_error"));
    /* no credentials: the server's AUTHENTICATE names the authenticator */
    cfg.username = cfg.password = NULL;
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), -1);
    assert_int_equal(err.code, ANN_EUNAUTH);
    assert_non_null(strstr(err.msg, "PasswordAuthenticator"));
    /* nobody listening: unavailable, with the address */
    cfg = live_config();
    cfg.contact_points = "127.0.0.1:1";
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), -1);
    assert_int_equal(err.code, ANN_EUNAVAIL);
}

static void test_schema_keyspace_errors(void **state)
{
    (void)state;
    ann_cql_result r;
    ann_err err;
    must(C, "DROP TABLE IF EXISTS " KS ".sc");
    assert_int_equal(ann_cql_query(C, "CREATE TABLE " KS ".sc (k int PRIMARY KEY)", NULL, &r, &err),
                     0);
    assert_int_equal(r.kind, ANN_CQL_RESULT_SCHEMA_CHANGE);
    assert_true(bytes_eq(r.change_type, "CREATED"));
    assert_true(bytes_eq(r.target, "TABLE"));
    assert_true(bytes_eq(r.sc_keyspace, KS));
    assert_true(bytes_eq(r.sc_name, "sc"));
    ann_cql_result_release(&r);

    /* already_exists, with keyspace and table */
    assert_int_equal(ann_cql_query(C, "CREATE TABLE " KS ".sc (k int PRIMARY KEY)", NULL, &r, &err),
                     -1);
    assert_int_equal(err.code, ANN_EEXISTS);
    assert_int_equal(r.opcode, ANN_CQL_OP_ERROR);
    assert_int_equal(r.error.code, ANN_CQL_E_ALREADY_EXISTS);
    assert_string_equal(r.error.keyspace, KS);
    assert_string_equal(r.error.table, "sc");
    ann_cql_result_release(&r);
    /* for a keyspace, the table is empty */
    assert_int_equal(ann_cql_query(C,
                                   "CREATE KEYSPACE " KS " WITH replication = "
                                   "{'class': 'SimpleStrategy', 'replication_factor': 1}",
                                   NULL, &r, &err),
                     -1);
    assert_int_equal(r.error.code, ANN_CQL_E_ALREADY_EXISTS);
    assert_string_equal(r.error.keyspace, KS);
    assert_string_equal(r.error.table, "");
    ann_cql_result_release(&r);

    /* syntax */
    assert_int_equal(ann_cql_query(C, "SELEC k FROM " KS ".sc", NULL, &r, &err), -1);
    assert_int_equal(r.error.code, ANN_CQL_E_SYNTAX);
    assert_int_equal(err.code, ANN_EINVAL);
    ann_cql_result_release(&r);
    /* invalid */
    assert_int_equal(ann_cql_query(C, "SELECT nosuchcolumn FROM " KS ".sc", NULL, &r, &err), -1);
    assert_int_equal(r.error.code, ANN_CQL_E_INVALID);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "invalid"));
    ann_cql_result_release(&r);
    /* unauthorized */
    assert_int_equal(ann_cql_query(C, "DROP TABLE system.local", NULL, &r, &err), -1);
    assert_int_equal(r.error.code, ANN_CQL_E_UNAUTHORIZED);
    assert_int_equal(err.code, ANN_EUNAUTH);
    ann_cql_result_release(&r);

    /* unavailable: RF 3 on one node cannot reach QUORUM (2 of 3) */
    must(C, "CREATE KEYSPACE IF NOT EXISTS ann_cql_rf3 WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 3}");
    must(C, "CREATE TABLE IF NOT EXISTS ann_cql_rf3.t (k int PRIMARY KEY, v int)");
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.consistency = ANN_CQL_QUORUM;
    assert_int_equal(
        ann_cql_query(C, "INSERT INTO ann_cql_rf3.t (k, v) VALUES (1, 1)", &p, &r, &err), -1);
    assert_int_equal(err.code, ANN_EUNAVAIL);
    assert_int_equal(r.error.code, ANN_CQL_E_UNAVAILABLE);
    assert_int_equal(r.error.consistency, ANN_CQL_QUORUM);
    assert_int_equal(r.error.required, 2);
    assert_int_equal(r.error.alive, 1);
    ann_cql_result_release(&r);
}

static void test_set_keyspace(void **state)
{
    (void)state;
    ann_cql_config cfg = live_config();
    ann_cql_conn *c;
    ann_err err;
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), 0);
    ann_cql_result r;
    assert_int_equal(ann_cql_query(c, "USE " KS, NULL, &r, &err), 0);
    assert_int_equal(r.kind, ANN_CQL_RESULT_SET_KEYSPACE);
    assert_true(bytes_eq(r.keyspace, KS));
    ann_cql_result_release(&r);
    ann_cql_conn_free(c);
    /* the config's keyspace is USEd at connect: unqualified names work */
    cfg.keyspace = KS;
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), 0);
    must(c, "CREATE TABLE IF NOT EXISTS unqualified (k int PRIMARY KEY)");
    must(c, "SELECT * FROM unqualified");
    ann_cql_conn_free(c);
    cfg.keyspace = "no_such_keyspace_here";
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
}

/* Every value type annals binds, through PREPARE/EXECUTE and through QUERY
 * with values, read back and compared. */
static void test_types_roundtrip(void **state)
{
    (void)state;
    ann_err err;
    ann_cql_result r;
    must(C, "CREATE TABLE IF NOT EXISTS " KS ".types (k text PRIMARY KEY, vc varchar, "
            "bi bigint, i int, ts timestamp, b blob, ok boolean, u uuid, m map<text,text>)");
    ann_cql_prepared *ins, *sel;
    assert_int_equal(ann_cql_prepare(C,
                                     "INSERT INTO " KS ".types (k, vc, bi, i, ts, b, ok, u, m) "
                                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                     &ins, &err),
                     0);
    assert_int_equal(ann_cql_prepared_nbind(ins), 9);
    assert_int_equal(ann_cql_prepared_bind_type(ins, 2), ANN_CQL_T_BIGINT);
    assert_int_equal(ann_cql_prepared_bind_type(ins, 8), ANN_CQL_T_MAP);
    ann_cql_prepared *again;
    assert_int_equal(ann_cql_prepare(C,
                                     "INSERT INTO " KS ".types (k, vc, bi, i, ts, b, ok, u, m) "
                                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                     &again, &err),
                     0);
    assert_ptr_equal(ins, again);
    assert_int_equal(
        ann_cql_prepare(C, "SELECT k, vc, bi, i, ts, b, ok, u, m FROM " KS ".types WHERE k = ?",
                        &sel, &err),
        0);

    uint8_t u[16], blob[300];
    for (int i = 0; i < 16; i++)
        u[i] = (uint8_t)(i * 17);
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)i;
    ann_cql_kv kv[] = {{"env", 3, "prod", 4}, {"emptyv", 6, "", 0}, {"ü", 2, "\xe2\x9c\x93", 3}};
    ann_cql_value v[] = {ann_cql_vtext("row1"),
                         ann_cql_vtext("h\xc3\xa9llo"),
                         ann_cql_vbigint(INT64_MIN + 1),
                         ann_cql_vint(-42),
                         ann_cql_vtimestamp(1700000000123),
                         ann_cql_vblob(blob, sizeof blob),
                         ann_cql_vbool(true),
                         ann_cql_vuuid(u),
                         ann_cql_vmap(kv, 3)};
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.values = v;
    p.nvalues = 9;
    assert_int_equal(ann_cql_execute(C, ins, &p, &r, &err), 0);
    assert_int_equal(r.kind, ANN_CQL_RESULT_VOID);
    ann_cql_result_release(&r);

    ann_cql_value key = ann_cql_vtext("row1");
    p.values = &key;
    p.nvalues = 1;
    assert_int_equal(ann_cql_execute(C, sel, &p, &r, &err), 0);
    assert_int_equal(r.kind, ANN_CQL_RESULT_ROWS);
    assert_int_equal(r.nrows, 1);
    const char *s;
    size_t n;
    assert_int_equal(ann_cql_get_text(&r, 0, 1, &s, &n, &err), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(s, "h\xc3\xa9llo", 6);
    int64_t i64;
    assert_int_equal(ann_cql_get_bigint(&r, 0, 2, &i64, &err), 0);
    assert_true(i64 == INT64_MIN + 1);
    int32_t i32;
    assert_int_equal(ann_cql_get_int(&r, 0, 3, &i32, &err), 0);
    assert_int_equal(i32, -42);
    assert_int_equal(r.cols[4].type, ANN_CQL_T_TIMESTAMP);
    assert_int_equal(ann_cql_get_bigint(&r, 0, 4, &i64, &err), 0);
    assert_true(i64 == 1700000000123);
    const uint8_t *bp;
    assert_int_equal(ann_cql_get_blob(&r, 0, 5, &bp, &n, &err), 0);
    assert_int_equal(n, sizeof blob);
    assert_memory_equal(bp, blob, sizeof blob);
    bool ok = false;
    assert_int_equal(ann_cql_get_bool(&r, 0, 6, &ok, &err), 0);
    assert_true(ok);
    uint8_t got[16];
    assert_int_equal(ann_cql_get_uuid(&r, 0, 7, got, &err), 0);
    assert_memory_equal(got, u, 16);
    assert_int_equal(r.cols[8].type, ANN_CQL_T_MAP);
    assert_int_equal(r.cols[8].sub[0], ANN_CQL_T_VARCHAR);
    ann_cql_map_iter it;
    ann_cql_bytes mk, mv;
    assert_int_equal(ann_cql_map_iter_init(&it, ann_cql_cell(&r, 0, 8)), 0);
    int seen = 0;
    while (ann_cql_map_next(&it, &mk, &mv) > 0) {
        seen++;
        if (bytes_eq(mk, "env"))
            assert_true(bytes_eq(mv, "prod"));
        else if (bytes_eq(mk, "emptyv"))
            assert_int_equal(mv.len, 0);
        else if (bytes_eq(mk, "ü"))
            assert_true(bytes_eq(mv, "\xe2\x9c\x93"));
        else
            fail_msg("unexpected key");
    }
    assert_int_equal(seen, 3);
    ann_cql_result_release(&r);

    /* QUERY with bound values; nulls and unset values */
    ann_cql_value qv[] = {ann_cql_vtext("row2"), ann_cql_vnull(), ann_cql_vbigint(7),
                          ann_cql_vunset()};
    p.values = qv;
    p.nvalues = 4;
    assert_int_equal(ann_cql_query(C, "INSERT INTO " KS ".types (k, vc, bi, i) VALUES (?, ?, ?, ?)",
                                   &p, &r, &err),
                     0);
    ann_cql_result_release(&r);
    key = ann_cql_vtext("row2");
    p.values = &key;
    p.nvalues = 1;
    assert_int_equal(
        ann_cql_query(C, "SELECT vc, bi, i, m FROM " KS ".types WHERE k = ?", &p, &r, &err), 0);
    assert_int_equal(r.nrows, 1);
    assert_int_equal(ann_cql_get_text(&r, 0, 0, &s, &n, &err), 1);
    assert_int_equal(ann_cql_get_bigint(&r, 0, 1, &i64, &err), 0);
    assert_int_equal(i64, 7);
    assert_int_equal(ann_cql_get_int(&r, 0, 2, &i32, &err), 1);
    assert_int_equal(ann_cql_map_iter_init(&it, ann_cql_cell(&r, 0, 3)), 1);
    /* a wrong-type getter is refused */
    assert_int_equal(ann_cql_get_int(&r, 0, 1, &i32, &err), -1);
    ann_cql_result_release(&r);

    /* a value of the wrong type is the server's invalid */
    ann_cql_value bad[] = {ann_cql_vtext("row3"), ann_cql_vtext("x"), ann_cql_vint(1)};
    p.values = bad;
    p.nvalues = 3;
    assert_int_equal(
        ann_cql_query(C, "INSERT INTO " KS ".types (k, vc, bi) VALUES (?, ?, ?)", &p, &r, &err),
        -1);
    assert_int_equal(r.error.code, ANN_CQL_E_INVALID);
    ann_cql_result_release(&r);

    /* the default timestamp is the write time */
    ann_cql_params_init(&p);
    p.has_timestamp = true;
    p.timestamp_us = 1234567890123456;
    assert_int_equal(
        ann_cql_query(C, "UPDATE " KS ".types SET i = 5 WHERE k = 'row4'", &p, &r, &err), 0);
    ann_cql_result_release(&r);
    assert_int_equal(
        ann_cql_query(C, "SELECT WRITETIME(i) FROM " KS ".types WHERE k = 'row4'", NULL, &r, &err),
        0);
    assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &i64, &err), 0);
    assert_true(i64 == 1234567890123456);
    ann_cql_result_release(&r);
}

static void test_paging(void **state)
{
    (void)state;
    ann_err err;
    ann_cql_result r;
    must(C, "CREATE TABLE IF NOT EXISTS " KS ".paged (p int, c int, v text, PRIMARY KEY (p, c))");
    must(C, "TRUNCATE " KS ".paged");
    ann_cql_prepared *ins;
    assert_int_equal(
        ann_cql_prepare(C, "INSERT INTO " KS ".paged (p, c, v) VALUES (1, ?, ?)", &ins, &err), 0);
    for (int i = 0; i < 250; i++) {
        char txt[16];
        snprintf(txt, sizeof txt, "v%d", i);
        ann_cql_value v[] = {ann_cql_vint(i), ann_cql_vtext(txt)};
        ann_cql_params p;
        ann_cql_params_init(&p);
        p.values = v;
        p.nvalues = 2;
        assert_int_equal(ann_cql_execute(C, ins, &p, &r, &err), 0);
        ann_cql_result_release(&r);
    }
    ann_cql_prepared *sel;
    assert_int_equal(ann_cql_prepare(C, "SELECT c, v FROM " KS ".paged WHERE p = 1", &sel, &err),
                     0);
    int pages = 0, next = 0;
    uint8_t state_buf[512];
    ann_cql_bytes ps = {NULL, -1};
    for (;;) {
        ann_cql_params p;
        ann_cql_params_init(&p);
        p.page_size = 100;
        p.paging_state = ps;
        assert_int_equal(ann_cql_execute(C, sel, &p, &r, &err), 0);
        pages++;
        for (int32_t i = 0; i < r.nrows; i++) {
            int32_t c;
            assert_int_equal(ann_cql_get_int(&r, i, 0, &c, &err), 0);
            assert_int_equal(c, next);
            next++;
        }
        if (r.paging_state.len < 0) {
            ann_cql_result_release(&r);
            break;
        }
        assert_int_equal(r.meta_flags & 0x0002, 0x0002);
        assert_true((size_t)r.paging_state.len <= sizeof state_buf);
        memcpy(state_buf, r.paging_state.p, (size_t)r.paging_state.len);
        ps = (ann_cql_bytes){state_buf, r.paging_state.len};
        ann_cql_result_release(&r);
        assert_true(pages < 10);
    }
    assert_int_equal(next, 250);
    assert_int_equal(pages, 3);
    /* The same through QUERY. */
    ps = (ann_cql_bytes){NULL, -1};
    int total = 0;
    pages = 0;
    do {
        ann_cql_params p;
        ann_cql_params_init(&p);
        p.page_size = 60;
        p.paging_state = ps;
        assert_int_equal(ann_cql_query(C, "SELECT c FROM " KS ".paged WHERE p = 1", &p, &r, &err),
                         0);
        total += r.nrows;
        pages++;
        bool more = r.paging_state.len >= 0;
        if (more) {
            memcpy(state_buf, r.paging_state.p, (size_t)r.paging_state.len);
            ps = (ann_cql_bytes){state_buf, r.paging_state.len};
        }
        ann_cql_result_release(&r);
        if (!more)
            break;
    } while (pages < 20);
    assert_int_equal(total, 250);
    assert_int_equal(pages, 5);
}

static int count_rows(ann_cql_conn *c, const char *cql)
{
    ann_cql_result r;
    ann_err err;
    if (ann_cql_query(c, cql, NULL, &r, &err) != 0)
        fail_msg("%s: %s", cql, err.msg);
    int64_t n = -1;
    assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &n, &err), 0);
    ann_cql_result_release(&r);
    return (int)n;
}

static void test_batches(void **state)
{
    (void)state;
    ann_err err;
    ann_cql_result r;
    must(C, "CREATE TABLE IF NOT EXISTS " KS ".bt (p int, c int, v text, PRIMARY KEY (p, c))");
    must(C, "TRUNCATE " KS ".bt");
    ann_cql_prepared *ins;
    assert_int_equal(
        ann_cql_prepare(C, "INSERT INTO " KS ".bt (p, c, v) VALUES (?, ?, ?)", &ins, &err), 0);
    ann_cql_value a[] = {ann_cql_vint(1), ann_cql_vint(1), ann_cql_vtext("prepared")};
    ann_cql_value b[] = {ann_cql_vint(2), ann_cql_vint(1)};
    ann_cql_batch_item items[] = {
        {.ps = ins, .values = a, .nvalues = 3},
        {.query = "INSERT INTO " KS ".bt (p, c, v) VALUES (?, ?, 'plain')",
         .values = b,
         .nvalues = 2},
        {.query = "INSERT INTO " KS ".bt (p, c, v) VALUES (3, 1, 'no values')"},
    };
    ann_cql_batch bt = {
        .type = ANN_CQL_BATCH_LOGGED, .items = items, .n = 3, .consistency = ANN_CQL_ONE};
    assert_int_equal(ann_cql_batch_run(C, &bt, &r, &err), 0);
    assert_int_equal(r.kind, ANN_CQL_RESULT_VOID);
    ann_cql_result_release(&r);
    assert_int_equal(count_rows(C, "SELECT COUNT(*) FROM " KS ".bt"), 3);

    ann_cql_value a2[] = {ann_cql_vint(4), ann_cql_vint(1), ann_cql_vtext("u")};
    ann_cql_value a3[] = {ann_cql_vint(4), ann_cql_vint(2), ann_cql_vtext("u")};
    ann_cql_batch_item uitems[] = {{.ps = ins, .values = a2, .nvalues = 3},
                                   {.ps = ins, .values = a3, .nvalues = 3}};
    bt = (ann_cql_batch){.type = ANN_CQL_BATCH_UNLOGGED,
                         .items = uitems,
                         .n = 2,
                         .consistency = ANN_CQL_ONE,
                         .has_timestamp = true,
                         .timestamp_us = 1000};
    assert_int_equal(ann_cql_batch_run(C, &bt, &r, &err), 0);
    ann_cql_result_release(&r);
    assert_int_equal(count_rows(C, "SELECT COUNT(*) FROM " KS ".bt WHERE p = 4"), 2);
    assert_int_equal(count_rows(C, "SELECT WRITETIME(v) FROM " KS ".bt WHERE p = 4 AND c = 2"),
                     1000);

    /* a SELECT is not allowed in a batch: invalid, nothing applied */
    ann_cql_value a5[] = {ann_cql_vint(5), ann_cql_vint(1), ann_cql_vtext("x")};
    ann_cql_batch_item bad[] = {{.ps = ins, .values = a5, .nvalues = 3},
                                {.query = "SELECT * FROM " KS ".bt"}};
    bt = (ann_cql_batch){
        .type = ANN_CQL_BATCH_LOGGED, .items = bad, .n = 2, .consistency = ANN_CQL_ONE};
    assert_int_equal(ann_cql_batch_run(C, &bt, &r, &err), -1);
    assert_int_equal(r.opcode, ANN_CQL_OP_ERROR);
    assert_true(r.error.code == ANN_CQL_E_INVALID || r.error.code == ANN_CQL_E_SYNTAX);
    ann_cql_result_release(&r);
    assert_int_equal(count_rows(C, "SELECT COUNT(*) FROM " KS ".bt WHERE p = 5"), 0);
}

/* Lightweight transactions: [applied], the current values, serial
 * consistency on statements and batches, and reads at SERIAL. */
static void test_lwt(void **state)
{
    (void)state;
    ann_err err;
    ann_cql_result r;
    bool applied;
    int64_t i64;
    must(C, "CREATE TABLE IF NOT EXISTS " KS ".lwt (k text, c int, epoch bigint, nxt bigint, "
            "v text, PRIMARY KEY (k, c))");
    must(C, "TRUNCATE " KS ".lwt");
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.consistency = ANN_CQL_LOCAL_QUORUM;
    p.serial_consistency = ANN_CQL_LOCAL_SERIAL;
    const char *ins = "INSERT INTO " KS ".lwt (k, c, epoch, nxt) VALUES ('h', 0, 1, 1) "
                      "IF NOT EXISTS";
    assert_int_equal(ann_cql_query(C, ins, &p, &r, &err), 0);
    assert_int_equal(ann_cql_applied(&r, &applied, &err), 0);
    assert_true(applied);
    ann_cql_result_release(&r);
    assert_int_equal(ann_cql_query(C, ins, &p, &r, &err), 0);
    assert_int_equal(ann_cql_applied(&r, &applied, &err), 0);
    assert_false(applied);
    /* not applied: the current row comes back */
    int32_t ci = ann_cql_column_index(&r, "epoch");
    assert_true(ci > 0);
    assert_int_equal(ann_cql_get_bigint(&r, 0, ci, &i64, &err), 0);
    assert_int_equal(i64, 1);
    ann_cql_result_release(&r);

    ann_cql_prepared *adv;
    assert_int_equal(ann_cql_prepare(C,
                                     "UPDATE " KS ".lwt SET nxt = ? WHERE k = 'h' AND c = 0 "
                                     "IF epoch = ? AND nxt = ?",
                                     &adv, &err),
                     0);
    ann_cql_value v[] = {ann_cql_vbigint(11), ann_cql_vbigint(1), ann_cql_vbigint(1)};
    p.values = v;
    p.nvalues = 3;
    p.serial_consistency = ANN_CQL_SERIAL;
    assert_int_equal(ann_cql_execute(C, adv, &p, &r, &err), 0);
    assert_int_equal(ann_cql_applied(&r, &applied, &err), 0);
    assert_true(applied);
    ann_cql_result_release(&r);
    /* a stale expectation is refused, with the current values */
    assert_int_equal(ann_cql_execute(C, adv, &p, &r, &err), 0);
    assert_int_equal(ann_cql_applied(&r, &applied, &err), 0);
    assert_false(applied);
    assert_int_equal(ann_cql_get_bigint(&r, 0, ann_cql_column_index(&r, "nxt"), &i64, &err), 0);
    assert_int_equal(i64, 11);
    ann_cql_result_release(&r);

    /* conditional single-partition batch: head advance + rows */
    ann_cql_value bv[] = {ann_cql_vbigint(13), ann_cql_vbigint(1), ann_cql_vbigint(11)};
    ann_cql_batch_item items[] = {
        {.ps = adv, .values = bv, .nvalues = 3},
        {.query = "INSERT INTO " KS ".lwt (k, c, v) VALUES ('h', 11, 'a')"},
        {.query = "INSERT INTO " KS ".lwt (k, c, v) VALUES ('h', 12, 'b')"},
    };
    ann_cql_batch bt = {.type = ANN_CQL_BATCH_LOGGED,
                        .items = items,
                        .n = 3,
                        .consistency = ANN_CQL_QUORUM,
                        .serial_consistency = ANN_CQL_LOCAL_SERIAL};
    assert_int_equal(ann_cql_batch_run(C, &bt, &r, &err), 0);
    assert_int_equal(ann_cql_applied(&r, &applied, &err), 0);
    assert_true(applied);
    ann_cql_result_release(&r);
    /* the same batch again: refused, and its rows are not written */
    items[1].query = "INSERT INTO " KS ".lwt (k, c, v) VALUES ('h', 21, 'zombie')";
    assert_int_equal(ann_cql_batch_run(C, &bt, &r, &err), 0);
    assert_int_equal(ann_cql_applied(&r, &applied, &err), 0);
    assert_false(applied);
    ann_cql_result_release(&r);
    assert_int_equal(count_rows(C, "SELECT COUNT(*) FROM " KS ".lwt WHERE k = 'h' AND c = 21"), 0);

    /* a linearizable read */
    ann_cql_params_init(&p);
    p.consistency = ANN_CQL_SERIAL;
    assert_int_equal(
        ann_cql_query(C, "SELECT nxt FROM " KS ".lwt WHERE k = 'h' AND c = 0", &p, &r, &err), 0);
    assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &i64, &err), 0);
    assert_int_equal(i64, 13);
    ann_cql_result_release(&r);
}

/* UNPREPARED: a dropped and re-created table evicts its prepared statements;
 * the client prepares again and resends, for EXECUTE and inside a BATCH. */
static void test_unprepared_reprepare(void **state)
{
    (void)state;
    ann_err err;
    ann_cql_result r;
    ann_cql_config cfg = live_config();
    ann_cql_conn *c;
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), 0);
    must(c, "DROP TABLE IF EXISTS " KS ".rp");
    must(c, "CREATE TABLE " KS ".rp (k int PRIMARY KEY, v int)");
    ann_cql_prepared *ins;
    assert_int_equal(ann_cql_prepare(c, "INSERT INTO " KS ".rp (k, v) VALUES (?, ?)", &ins, &err),
                     0);
    ann_cql_value v[] = {ann_cql_vint(1), ann_cql_vint(1)};
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.values = v;
    p.nvalues = 2;
    assert_int_equal(ann_cql_execute(c, ins, &p, &r, &err), 0);
    ann_cql_result_release(&r);

    must(c, "DROP TABLE " KS ".rp");
    must(c, "CREATE TABLE " KS ".rp (k int PRIMARY KEY, v int)");
    ann_cql_stats st0, st1;
    ann_cql_conn_stats(c, &st0);
    v[0] = ann_cql_vint(2);
    assert_int_equal(ann_cql_execute(c, ins, &p, &r, &err), 0);
    ann_cql_result_release(&r);
    ann_cql_conn_stats(c, &st1);
    assert_int_equal(st1.reprepares, st0.reprepares + 1);

    must(c, "DROP TABLE " KS ".rp");
    must(c, "CREATE TABLE " KS ".rp (k int PRIMARY KEY, v int)");
    ann_cql_value v3[] = {ann_cql_vint(3), ann_cql_vint(3)};
    ann_cql_batch_item items[] = {{.ps = ins, .values = v3, .nvalues = 2},
                                  {.query = "INSERT INTO " KS ".rp (k, v) VALUES (4, 4)"}};
    ann_cql_batch bt = {
        .type = ANN_CQL_BATCH_LOGGED, .items = items, .n = 2, .consistency = ANN_CQL_ONE};
    assert_int_equal(ann_cql_batch_run(c, &bt, &r, &err), 0);
    ann_cql_result_release(&r);
    ann_cql_conn_stats(c, &st0);
    assert_int_equal(st0.reprepares, st1.reprepares + 1);
    assert_int_equal(count_rows(c, "SELECT COUNT(*) FROM " KS ".rp"), 2);
    ann_cql_conn_free(c);
}

/* 100 requests in flight on one connection from one thread; each answer
 * must be the one for its own request. */
static void test_100_in_flight(void **state)
{
    (void)state;
    enum { N = 100 };
    ann_err err;
    ann_cql_result r;
    ann_cql_config cfg = live_config();
    ann_cql_conn *c;
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), 0);
    must(c, "CREATE TABLE IF NOT EXISTS " KS ".inflight (k int PRIMARY KEY, v text)");
    ann_cql_prepared *ins, *sel;
    assert_int_equal(
        ann_cql_prepare(c, "INSERT INTO " KS ".inflight (k, v) VALUES (?, ?)", &ins, &err), 0);
    assert_int_equal(ann_cql_prepare(c, "SELECT k, v FROM " KS ".inflight WHERE k = ?", &sel, &err),
                     0);
    ann_cql_future *f[N];
    char txt[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(txt[i], sizeof txt[i], "value-%d", i);
        ann_cql_value v[] = {ann_cql_vint(i), ann_cql_vtext(txt[i])};
        ann_cql_params p;
        ann_cql_params_init(&p);
        p.values = v;
        p.nvalues = 2;
        f[i] = ann_cql_execute_async(c, ins, &p, &err);
        assert_non_null(f[i]);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(ann_cql_future_wait(f[i], &r, &err), 0);
        assert_int_equal(r.kind, ANN_CQL_RESULT_VOID);
        ann_cql_result_release(&r);
    }
    for (int i = 0; i < N; i++) {
        ann_cql_value k = ann_cql_vint(i);
        ann_cql_params p;
        ann_cql_params_init(&p);
        p.values = &k;
        p.nvalues = 1;
        f[i] = ann_cql_execute_async(c, sel, &p, &err);
        assert_non_null(f[i]);
    }
    for (int i = N - 1; i >= 0; i--) { /* waited in reverse, answered in any order */
        assert_int_equal(ann_cql_future_wait(f[i], &r, &err), 0);
        assert_int_equal(r.nrows, 1);
        int32_t k;
        const char *s;
        size_t n;
        assert_int_equal(ann_cql_get_int(&r, 0, 0, &k, &err), 0);
        assert_int_equal(k, i);
        assert_int_equal(ann_cql_get_text(&r, 0, 1, &s, &n, &err), 0);
        assert_int_equal(n, strlen(txt[i]));
        assert_memory_equal(s, txt[i], n);
        ann_cql_result_release(&r);
    }
    ann_cql_stats st;
    ann_cql_conn_stats(c, &st);
    assert_int_equal(st.in_flight, 0);
    print_message("100 in flight: the most streams in use at once was %d\n", st.max_in_flight);
    ann_cql_conn_free(c);
}

/* A broken socket: the next request reconnects; an idempotent request in
 * flight is resent. */
static void test_break_reconnect(void **state)
{
    (void)state;
    ann_err err;
    ann_cql_result r;
    ann_cql_config cfg = live_config();
    cfg.contact_points = "127.0.0.1:1, 127.0.0.1:9042"; /* the first is refused */
    cfg.keyspace = KS;
    ann_cql_conn *c;
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), 0);
    ann_cql_prepared *sel;
    assert_int_equal(ann_cql_prepare(c, "SELECT release_version FROM system.local", &sel, &err), 0);
    ann_cql_conn_break(c);
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.idempotent = true;
    assert_int_equal(ann_cql_execute(c, sel, &p, &r, &err), 0);
    assert_int_equal(r.nrows, 1);
    ann_cql_result_release(&r);
    ann_cql_stats st;
    ann_cql_conn_stats(c, &st);
    assert_int_equal(st.connects, 2);
    /* the keyspace is USEd again on the new socket */
    must(c, "SELECT * FROM inflight LIMIT 1");
    ann_cql_conn_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_supported),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_schema_keyspace_errors),
        cmocka_unit_test(test_set_keyspace),
        cmocka_unit_test(test_types_roundtrip),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_lwt),
        cmocka_unit_test(test_unprepared_reprepare),
        cmocka_unit_test(test_100_in_flight),
        cmocka_unit_test(test_break_reconnect),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
