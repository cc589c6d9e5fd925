/*
 * An acknowledged write survives kill -9 of Cassandra. The test starts its
 * OWN node (deploy/services-up.sh with ANN_NODE, default 9: 127.0.0.9, and its
 * own ANN_SERVICES directory under the build tree), writes with hundreds of
 * requests acknowledged per second, kills the node with SIGKILL while writes
 * are in flight, starts it again and reads back every write it was told was
 * applied. Never the shared node: label `engine-kill` (not matched by `-L cql`), run with
 * `ctest -L engine-kill` (two JVM starts, about a minute).
 *
 * With the commit log in `periodic` mode (Cassandra's default), the node
 * acknowledges writes before the log section holding them is marked, and the
 * replay after a kill -9 drops the unmarked tail: the last ~100 ms of
 * acknowledged writes are gone. deploy/cassandra/cassandra.yaml.in sets
 * `commitlog_sync: batch`, under which this test must find every write.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "live.h"

#ifndef ANN_DEFAULT_DEPLOY_DIR
#define ANN_DEFAULT_DEPLOY_DIR "deploy"
#endif
#ifndef ANN_KILL_SERVICES_DIR
#define ANN_KILL_SERVICES_DIR "cql-kill-services"
#endif

#define WINDOW 32
#define MAX_ACKED 2000000

static char g_env[1024];

static void services(const char *script)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s '%s/%s' cassandra", g_env,
             live_env("ANN_DEPLOY_DIR", ANN_DEFAULT_DEPLOY_DIR), script);
    print_message("engine kill test: %s\n", cmd);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("%s: exit %d", cmd, rc);
}

static pid_t node_pid(const char *dir, int node)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/cassandra/node%d/cassandra.pid", dir, node);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("no pid file %s", path);
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    assert_true(pid > 1);
    return (pid_t)pid;
}

static void must(ann_cql_conn *c, const char *cql)
{
    ann_cql_result r;
    ann_err err;
    if (ann_cql_query(c, cql, NULL, &r, &err) != 0)
        fail_msg("%s: %s", cql, err.msg);
    ann_cql_result_release(&r);
}

static void test_acked_writes_survive_kill9(void **state)
{
    (void)state;
    int node = atoi(live_env("ANN_CQL_KILL_NODE", "9"));
    assert_true(node >= 2 && node <= 254); /* never node 1, the shared one */
    const char *dir = live_env("ANN_CQL_KILL_SERVICES", ANN_KILL_SERVICES_DIR);
    snprintf(g_env, sizeof g_env,
             "ANN_NODE=%d ANN_SERVICES='%s' ANN_CASSANDRA_CLUSTER=annals-kill9", node, dir);
    char contact[64];
    snprintf(contact, sizeof contact, "127.0.0.%d:9042", node);
    services("services-up.sh");

    ann_cql_config cfg = live_config();
    cfg.contact_points = contact;
    cfg.max_retries = -1; /* no resend: an answer is about the one write sent */
    cfg.request_timeout_ms = 10000;
    ann_err err;
    ann_cql_conn *c;
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), 0);
    must(c, "CREATE KEYSPACE IF NOT EXISTS kill9 WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}");
    must(c, "DROP TABLE IF EXISTS kill9.t");
    must(c, "CREATE TABLE kill9.t (k int PRIMARY KEY, v text)");
    ann_cql_prepared *ins;
    assert_int_equal(ann_cql_prepare(c, "INSERT INTO kill9.t (k, v) VALUES (?, ?)", &ins, &err), 0);

    /* Writes, WINDOW in flight, until the node dies under them. */
    int32_t *acked = calloc(MAX_ACKED, sizeof *acked);
    assert_non_null(acked);
    size_t nacked = 0;
    ann_cql_future *f[WINDOW] = {0};
    int32_t key[WINDOW];
    pid_t pid = node_pid(dir, node);
    bool killed = false;
    int failed = 0;
    for (int32_t k = 0; k < MAX_ACKED; k++) {
        int s = k % WINDOW;
        if (f[s]) {
            ann_cql_result r;
            if (ann_cql_future_wait(f[s], &r, &err) == 0)
                acked[nacked++] = key[s];
            else
                failed++;
            ann_cql_result_release(&r);
            f[s] = NULL;
        }
        if (!killed && nacked >= 5000) {
            print_message("kill -9 %d with %zu writes acknowledged, %d in flight\n", (int)pid,
                          nacked, WINDOW - 1);
            assert_int_equal(kill(pid, SIGKILL), 0);
            killed = true;
        }
        if (failed)
            break;
        ann_cql_value v[2] = {ann_cql_vint(k), ann_cql_vtext("a row acknowledged before the kill")};
        ann_cql_params p;
        ann_cql_params_init(&p);
        p.values = v;
        p.nvalues = 2;
        p.consistency = ANN_CQL_LOCAL_QUORUM;
        key[s] = k;
        f[s] = ann_cql_execute_async(c, ins, &p, &err);
        if (!f[s])
            break;
    }
    for (int s = 0; s < WINDOW; s++)
        if (f[s]) {
            ann_cql_result r;
            if (ann_cql_future_wait(f[s], &r, &err) == 0)
                acked[nacked++] = key[s];
            ann_cql_result_release(&r);
        }
    assert_true(killed);
    ann_cql_conn_free(c);
    while (kill(pid, 0) == 0) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }

    services("services-up.sh");
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), 0);
    ann_cql_prepared *sel;
    assert_int_equal(ann_cql_prepare(c, "SELECT v FROM kill9.t WHERE k = ?", &sel, &err), 0);
    size_t lost = 0;
    int32_t first_lost = -1;
    for (size_t i = 0; i < nacked; i++) {
        ann_cql_value v[1] = {ann_cql_vint(acked[i])};
        ann_cql_params p;
        ann_cql_params_init(&p);
        p.values = v;
        p.nvalues = 1;
        p.idempotent = true;
        p.consistency = ANN_CQL_LOCAL_QUORUM;
        ann_cql_result r;
        if (ann_cql_execute(c, sel, &p, &r, &err) != 0)
            fail_msg("read back %d: %s", (int)acked[i], err.msg);
        if (r.nrows != 1 && lost++ == 0)
            first_lost = acked[i];
        ann_cql_result_release(&r);
    }
    print_message("%zu writes acknowledged, %zu missing after kill -9 and restart (first %d)\n",
                  nacked, lost, (int)first_lost);
    ann_cql_conn_free(c);
    free(acked);
    services("services-down.sh");
    assert_int_equal(lost, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acked_writes_survive_kill9),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
