/*
 * Throughput of the C CQL client on one connection, for the workloads that
 * bench_cql.py runs with the Python cassandra-driver:
 *   insert  single prepared INSERTs            (N rows)
 *   batch   unlogged single-partition batches  (N rows, B rows per batch)
 *   lwt     conditional UPDATE ... IF v = ?    (N statements, distinct keys)
 * A window of W requests is kept in flight. Prints one line:
 *   c <workload> <ops> <seconds> <ops/s>
 * Usage: bench_cql WORKLOAD N W [B] [ROUND]   (env ANN_CQL_CONTACT/USER/PASSWORD)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cql/cql.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *env(const char *n, const char *d)
{
    const char *v = getenv(n);
    return v && *v ? v : d;
}

static void die(const char *what, const ann_err *err)
{
    fprintf(stderr, "bench_cql: %s: %s\n", what, err->msg);
    exit(1);
}

static void wait_ok(ann_cql_future *f, bool lwt)
{
    ann_cql_result r;
    ann_err err;
    if (ann_cql_future_wait(f, &r, &err) < 0)
        die("request", &err);
    if (lwt) {
        bool applied = false;
        if (ann_cql_applied(&r, &applied, &err) < 0)
            die("lwt result", &err);
        if (!applied) {
            fprintf(stderr, "bench_cql: lwt not applied\n");
            exit(1);
        }
    }
    ann_cql_result_release(&r);
}

static void simple(ann_cql_conn *c, const char *q)
{
    ann_cql_result r;
    ann_err err;
    if (ann_cql_query(c, q, NULL, &r, &err) < 0)
        die(q, &err);
    ann_cql_result_release(&r);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s insert|batch|lwt N W [B] [ROUND]\n", argv[0]);
        return 2;
    }
    const char *wl = argv[1];
    long n = atol(argv[2]), w = atol(argv[3]);
    long bsz = argc > 4 ? atol(argv[4]) : 50;
    long round = argc > 5 ? atol(argv[5]) : 0;
    if (n <= 0 || w <= 0 || w > 1000 || bsz <= 0 || bsz > 1000)
        return 2;
    ann_cql_config cfg = {.contact_points = env("ANN_CQL_CONTACT", "127.0.0.1:9042"),
                          .username = env("ANN_CQL_USER", "cassandra"),
                          .password = env("ANN_CQL_PASSWORD", "cassandra"),
                          .request_timeout_ms = 30000};
    ann_cql_conn *c;
    ann_err err;
    if (ann_cql_conn_new(&cfg, &c, &err) < 0)
        die("connect", &err);
    simple(c, "CREATE KEYSPACE IF NOT EXISTS ann_bench WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}");
    simple(c, "CREATE TABLE IF NOT EXISTS ann_bench.kv (k bigint PRIMARY KEY, v text)");
    simple(c, "CREATE TABLE IF NOT EXISTS ann_bench.rows (p bigint, c int, v text, "
              "PRIMARY KEY (p, c))");
    simple(c, "CREATE TABLE IF NOT EXISTS ann_bench.lwt (k bigint PRIMARY KEY, v bigint)");
    char payload[101];
    memset(payload, 'x', 100);
    payload[100] = 0;
    /* keys unique per client, round and workload, so runs never collide */
    int64_t base = ((int64_t)1 << 40) + round * 10000000LL;

    ann_cql_future **win = calloc((size_t)w, sizeof *win);
    long ops = 0;
    double t0 = 0, t1 = 0;
    if (strcmp(wl, "insert") == 0) {
        ann_cql_prepared *ps;
        if (ann_cql_prepare(c, "INSERT INTO ann_bench.kv (k, v) VALUES (?, ?)", &ps, &err) < 0)
            die("prepare", &err);
        t0 = now_s();
        for (long i = 0; i < n; i++) {
            long slot = i % w;
            if (win[slot])
                wait_ok(win[slot], false);
            ann_cql_value v[] = {ann_cql_vbigint(base + i), ann_cql_vtext(payload)};
            ann_cql_params p;
            ann_cql_params_init(&p);
            p.values = v;
            p.nvalues = 2;
            win[slot] = ann_cql_execute_async(c, ps, &p, &err);
            if (!win[slot])
                die("submit", &err);
        }
        for (long s = 0; s < w; s++)
            if (win[s])
                wait_ok(win[s], false);
        t1 = now_s();
        ops = n;
    } else if (strcmp(wl, "batch") == 0) {
        ann_cql_prepared *ps;
        if (ann_cql_prepare(c, "INSERT INTO ann_bench.rows (p, c, v) VALUES (?, ?, ?)", &ps, &err) <
            0)
            die("prepare", &err);
        ann_cql_value *vals = calloc((size_t)bsz * 3, sizeof *vals);
        ann_cql_batch_item *items = calloc((size_t)bsz, sizeof *items);
        long nb = n / bsz;
        t0 = now_s();
        for (long b = 0; b < nb; b++) {
            long slot = b % w;
            if (win[slot])
                wait_ok(win[slot], false);
            for (long j = 0; j < bsz; j++) {
                vals[j * 3] = ann_cql_vbigint(base + b);
                vals[j * 3 + 1] = ann_cql_vint((int32_t)j);
                vals[j * 3 + 2] = ann_cql_vtext(payload);
                items[j] = (ann_cql_batch_item){.ps = ps, .values = &vals[j * 3], .nvalues = 3};
            }
            ann_cql_batch bt = {.type = ANN_CQL_BATCH_UNLOGGED,
                                .items = items,
                                .n = (size_t)bsz,
                                .consistency = ANN_CQL_ONE};
            win[slot] = ann_cql_batch_async(c, &bt, &err);
            if (!win[slot])
                die("submit", &err);
        }
        for (long s = 0; s < w; s++)
            if (win[s])
                wait_ok(win[s], false);
        t1 = now_s();
        ops = nb * bsz;
        free(vals);
        free(items);
    } else if (strcmp(wl, "lwt") == 0) {
        ann_cql_prepared *ins, *upd;
        if (ann_cql_prepare(c, "INSERT INTO ann_bench.lwt (k, v) VALUES (?, 0)", &ins, &err) < 0 ||
            ann_cql_prepare(c, "UPDATE ann_bench.lwt SET v = ? WHERE k = ? IF v = ?", &upd, &err) <
                0)
            die("prepare", &err);
        for (long i = 0; i < n; i++) { /* setup, not timed */
            long slot = i % w;
            if (win[slot])
                wait_ok(win[slot], false);
            ann_cql_value v[] = {ann_cql_vbigint(base + i)};
            ann_cql_params p;
            ann_cql_params_init(&p);
            p.values = v;
            p.nvalues = 1;
            win[slot] = ann_cql_execute_async(c, ins, &p, &err);
            if (!win[slot])
                die("submit", &err);
        }
        for (long s = 0; s < w; s++)
            if (win[s])
                wait_ok(win[s], false);
        memset(win, 0, (size_t)w * sizeof *win);
        t0 = now_s();
        for (long i = 0; i < n; i++) {
            long slot = i % w;
            if (win[slot])
                wait_ok(win[slot], true);
            ann_cql_value v[] = {ann_cql_vbigint(1), ann_cql_vbigint(base + i), ann_cql_vbigint(0)};
            ann_cql_params p;
            ann_cql_params_init(&p);
            p.values = v;
            p.nvalues = 3;
            p.serial_consistency = ANN_CQL_LOCAL_SERIAL;
            win[slot] = ann_cql_execute_async(c, upd, &p, &err);
            if (!win[slot])
                die("submit", &err);
        }
        for (long s = 0; s < w; s++)
            if (win[s])
                wait_ok(win[s], true);
        t1 = now_s();
        ops = n;
    } else {
        fprintf(stderr, "bench_cql: unknown workload %s\n", wl);
        return 2;
    }
    printf("c %s %ld %.3f %.0f\n", wl, ops, t1 - t0, (double)ops / (t1 - t0));
    free(win);
    ann_cql_conn_free(c);
    return 0;
}
