/*
 * Cassandra is stopped and started again (deploy/services-down.sh and
 * services-up.sh) under a live connection and a live archive: requests fail
 * as unavailable while it is down, and once it is back the same connection
 * and the same archive handle carry on (reconnect, USE, prepared statements
 * prepared again on demand). Label `cql`, run on its own (RUN_SERIAL).
 * ANN_DEPLOY_DIR overrides where the deploy scripts are.
 */
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

#include "archive/archive_cassandra.h"
#include "live.h"

#ifndef ANN_DEFAULT_DEPLOY_DIR
#define ANN_DEFAULT_DEPLOY_DIR "deploy"
#endif

static void sh(const char *deploy, const char *script)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s/%s' cassandra", deploy, script);
    print_message("restart test: %s\n", cmd);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("%s: exit %d", cmd, rc);
}

static void test_restart_reconnect(void **state)
{
    (void)state;
    const char *deploy = live_env("ANN_DEPLOY_DIR", ANN_DEFAULT_DEPLOY_DIR);
    char up[1024], down[1024];
    snprintf(up, sizeof up, "%s/services-up.sh", deploy);
    snprintf(down, sizeof down, "%s/services-down.sh", deploy);
    if (access(up, X_OK) != 0 || access(down, X_OK) != 0) {
        print_message("no %s: skipped\n", up);
        skip();
    }
    sh(deploy, "services-up.sh");

    ann_cql_config cfg = live_config();
    cfg.request_timeout_ms = 5000;
    cfg.connect_timeout_ms = 2000;
    ann_err err;
    ann_cql_conn *c;
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), 0);
    ann_cql_result r;
    assert_int_equal(ann_cql_query(c,
                                   "CREATE KEYSPACE IF NOT EXISTS ann_cql_test WITH "
                                   "replication = {'class': 'SimpleStrategy', "
                                   "'replication_factor': 1}",
                                   NULL, &r, &err),
                     0);
    ann_cql_result_release(&r);
    assert_int_equal(ann_cql_query(c,
                                   "CREATE TABLE IF NOT EXISTS ann_cql_test.restart "
                                   "(k int PRIMARY KEY, v text)",
                                   NULL, &r, &err),
                     0);
    ann_cql_result_release(&r);
    ann_cql_prepared *ins, *sel;
    assert_int_equal(
        ann_cql_prepare(c, "INSERT INTO ann_cql_test.restart (k, v) VALUES (?, ?)", &ins, &err), 0);
    assert_int_equal(
        ann_cql_prepare(c, "SELECT v FROM ann_cql_test.restart WHERE k = ?", &sel, &err), 0);

    /* A fixed keyspace: dropped first, so that one left by an older layout (which
     * ann_archive_open refuses) or by an interrupted run starts over. */
    assert_int_equal(ann_cql_query(c, "DROP KEYSPACE IF EXISTS ann_archive_test", NULL, &r, &err),
                     0);
    ann_cql_result_release(&r);
    ann_cql_config acql = live_config();
    acql.request_timeout_ms = 5000;
    acql.connect_timeout_ms = 2000;
    ann_archive_config acfg = {.cql = &acql, .keyspace = "ann_archive_test"};
    ann_archive *a;
    assert_int_equal(ann_archive_open(&acfg, &a, &err), 0);
    char log[64];
    snprintf(log, sizeof log, "restart-%ld", (long)time(NULL));
    ann_archive_head h;
    /* A partition of its own, far from the sequencer tests' few. */
    const int32_t part = 900 + (int32_t)(time(NULL) % 99);
    uint64_t epoch = 0;
    assert_int_equal(ann_archive_claim_partition(a, part, &epoch, &err), 0);
    ann_entry e = {.entry_id = 1,
                   .insert_id = "before",
                   .insert_id_len = 6,
                   .body = (const uint8_t *)"x",
                   .body_len = 1};
    assert_int_equal(ann_archive_write_entries(a, "tenant-restart", log, epoch, &e, 1, &err), 0);
    ann_archive_head_update hu = {
        .tenant_id = "tenant-restart", .log_id = log, .next_id = 2, .next_op = 2};
    assert_int_equal(ann_archive_commit_heads(a, part, epoch, &hu, 1, NULL, &err), 0);

    /* down */
    sh(deploy, "services-down.sh");
    ann_cql_value v[] = {ann_cql_vint(1), ann_cql_vtext("while down")};
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.values = v;
    p.nvalues = 2;
    assert_int_equal(ann_cql_execute(c, ins, &p, &r, &err), -1);
    assert_int_equal(err.code, ANN_EUNAVAIL);
    print_message("while down: %s\n", err.msg);
    ann_cql_result_release(&r);

    /* up again: the same connection object carries on */
    sh(deploy, "services-up.sh");
    v[1] = ann_cql_vtext("after restart");
    p.idempotent = true; /* an upsert of a fixed value: safe to resend */
    int rc = -1;
    for (int i = 0; i < 120 && rc != 0; i++) {
        rc = ann_cql_execute(c, ins, &p, &r, &err);
        ann_cql_result_release(&r);
        if (rc != 0)
            sleep(1);
    }
    if (rc != 0)
        fail_msg("no reconnect: %s", err.msg);
    ann_cql_value k = ann_cql_vint(1);
    ann_cql_params_init(&p);
    p.values = &k;
    p.nvalues = 1;
    assert_int_equal(ann_cql_execute(c, sel, &p, &r, &err), 0);
    const char *s;
    size_t n;
    assert_int_equal(ann_cql_get_text(&r, 0, 0, &s, &n, &err), 0);
    assert_int_equal(n, 13);
    assert_memory_equal(s, "after restart", 13);
    ann_cql_result_release(&r);
    ann_cql_stats st;
    ann_cql_conn_stats(c, &st);
    print_message("connects %llu, reprepares %llu, retries %llu\n", (unsigned long long)st.connects,
                  (unsigned long long)st.reprepares, (unsigned long long)st.retries);
    assert_true(st.connects >= 2);

    /* the archive handle too: the owner goes on appending */
    ann_entry e2 = {.entry_id = 2,
                    .insert_id = "after",
                    .insert_id_len = 5,
                    .body = (const uint8_t *)"y",
                    .body_len = 1};
    rc = -1;
    for (int i = 0; i < 60 && rc != 0; i++) {
        ann_archive_head cur;
        rc = ann_archive_head_load(a, part, "tenant-restart", log, true, &cur, &err);
        if (rc == 0 && cur.next_id == 2)
            rc = ann_archive_write_entries(a, "tenant-restart", log, epoch, &e2, 1, &err);
        if (rc == 0 && cur.next_id == 2) {
            hu.next_id = 3;
            hu.next_op = 3;
            rc = ann_archive_commit_heads(a, part, epoch, &hu, 1, NULL, &err);
        } else if (rc == 0)
            if (rc == 0)
                fail_msg("head next_id %llu after restart", (unsigned long long)cur.next_id);
        if (rc != 0)
            sleep(1);
    }
    if (rc != 0)
        fail_msg("archive after restart: %s", err.msg);
    ann_archive_head_load(a, part, "tenant-restart", log, true, &h, &err);
    assert_int_equal(h.next_id, 3);
    ann_archive_close(a);
    ann_cql_conn_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_reconnect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
