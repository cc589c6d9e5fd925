/*
 * annals-archive-rows: Cassandra's cost of the sequencer's writes per layout, measured on
 * the running engine in interleaved bursts (docs/bench.md, "Batch rows").
 *
 *   annals-archive-rows [--entries N] [--rounds R] [--cassandra-pid PID]
 *
 * Writes N entries (200-byte bodies, commands of 1,000, 100 logs, 16 commands in flight)
 * in each of three shapes, R rounds of A B C:
 *   rows    the layout before: a log_entries row per entry (batches of <= 256 per
 *           partition) and a log_insert_ids row per entry (batched per bucket), raw CQL
 *           with the old statements, in a keyspace of its own
 *   client  ann_archive_writer: a log_batches row per command, a log_insert_ids row per
 *           client-given insert_id
 *   server  ann_archive_writer with server-made insert_ids: a log_batches row and a
 *           log_requests row per command
 * and prints per burst: entries/s and Cassandra's CPU-s per million entries (utime+stime
 * of PID from /proc: shared engines count everything they do meanwhile). The keyspace
 * (annals_rows_<pid>) is dropped at the end. ANN_CQL_CONTACT/USER/PASSWORD as the tests.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive_cassandra.h"
#include "domain/event.h"

#define CMD 1000
#define LOGS 100
#define INFLIGHT 16
#define BODY 200

static const char *env_or(const char *n, const char *d)
{
    const char *v = getenv(n);
    return v && *v ? v : d;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long ticks(int pid)
{
    char p[64], buf[2048];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = strrchr(buf, ')');
    long ut = 0, st = 0;
    if (s && sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st) == 2)
        return ut + st;
    return 0;
}

static void die(const char *what, const ann_err *err)
{
    fprintf(stderr, "annals-archive-rows: %s: %s\n", what, err->msg);
    exit(1);
}

static void run(ann_cql_conn *c, const char *q)
{
    ann_cql_result r;
    ann_err err;
    if (ann_cql_query(c, q, NULL, &r, &err) < 0)
        die(q, &err);
    ann_cql_result_release(&r);
}

typedef struct shape_ctx {
    ann_archive *a;
    ann_cql_conn *c;
    ann_cql_prepared *ins_entry, *ins_iid;
    char body[BODY];
    uint64_t next_id[LOGS];
    char logs[LOGS][40];
    uint64_t seq;
} shape_ctx;

/* The layout before: entry rows and insert_id rows, as the old writer batched them. */
static void old_rows(shape_ctx *x, int li, const ann_entry *e, size_t n, ann_cql_future **futs,
                     size_t *nf)
{
    static ann_cql_value vals[256 * 11];
    static ann_cql_batch_item items[256];
    ann_err err;
    size_t k = 0;
    for (size_t i = 0; i <= n; i++) {
        bool flush =
            i == n || k == 256 || (k && e[i].entry_id / 65536 != e[i - 1].entry_id / 65536);
        if (flush && k) {
            ann_cql_batch bt = {.type = ANN_CQL_BATCH_UNLOGGED,
                                .items = items,
                                .n = k,
                                .consistency = ANN_CQL_LOCAL_QUORUM,
                                .idempotent = true};
            if (!(futs[(*nf)++] = ann_cql_batch_async(x->c, &bt, &err)))
                die("batch", &err);
            k = 0;
        }
        if (i == n)
            break;
        ann_cql_value *v = &vals[k * 11];
        v[0] = ann_cql_vtext("bench");
        v[1] = ann_cql_vtext(x->logs[li]);
        v[2] = ann_cql_vbigint((int64_t)(e[i].entry_id / 65536));
        v[3] = ann_cql_vbigint((int64_t)e[i].entry_id);
        v[4] = ann_cql_vbigint(1);
        v[5] = ann_cql_vbigint(e[i].time_ns);
        v[6] = ann_cql_vbigint(e[i].insert_time_ns);
        v[7] = ann_cql_vint(e[i].severity);
        v[8] = ann_cql_vint(0);
        v[9] = ann_cql_vtextn(e[i].insert_id, e[i].insert_id_len);
        v[10] = ann_cql_vblob(e[i].body, e[i].body_len);
        items[k++] = (ann_cql_batch_item){.ps = x->ins_entry, .values = v, .nvalues = 11};
    }
    for (int32_t bk = 0; bk < ANN_ARCHIVE_ID_BUCKETS; bk++) {
        k = 0;
        for (size_t i = 0; i < n; i++) {
            if (ann_archive_insert_id_bucket(e[i].insert_id, e[i].insert_id_len) != bk)
                continue;
            ann_cql_value *v = &vals[k * 11];
            v[0] = ann_cql_vtext("bench");
            v[1] = ann_cql_vtext(x->logs[li]);
            v[2] = ann_cql_vint(bk);
            v[3] = ann_cql_vtextn(e[i].insert_id, e[i].insert_id_len);
            v[4] = ann_cql_vbigint(1);
            v[5] = ann_cql_vbigint((int64_t)e[i].entry_id);
            items[k++] = (ann_cql_batch_item){.ps = x->ins_iid, .values = v, .nvalues = 6};
            if (k == 256)
                break;
        }
        if (!k)
            continue;
        ann_cql_batch bt = {.type = ANN_CQL_BATCH_UNLOGGED,
                            .items = items,
                            .n = k,
                            .consistency = ANN_CQL_LOCAL_QUORUM,
                            .idempotent = true};
        if (!(futs[(*nf)++] = ann_cql_batch_async(x->c, &bt, &err)))
            die("batch", &err);
    }
}

static void burst(shape_ctx *x, const char *shape, uint64_t total, int cpid)
{
    static ann_entry e[INFLIGHT][CMD];
    static char ids[INFLIGHT][CMD][48];
    static ann_cql_future *futs[INFLIGHT * 80];
    ann_err err;
    ann_archive_writer *w = ann_archive_writer_new(x->a, &err);
    if (!w)
        die("writer", &err);
    long t0 = ticks(cpid);
    double s0 = now_s();
    uint64_t done = 0;
    while (done < total) {
        size_t nf = 0;
        for (int k = 0; k < INFLIGHT && done < total; k++, done += CMD) {
            int li = (int)(x->seq++ % LOGS);
            bool server = strcmp(shape, "server") == 0;
            char req[40];
            snprintf(req, sizeof req, "%08" PRIx64 "-0000-4000-8000-%012" PRIx64,
                     (uint64_t)getpid(), x->seq);
            for (size_t i = 0; i < CMD; i++) {
                if (server)
                    snprintf(ids[k][i], sizeof ids[k][i], "%s/%zu", req, i);
                else
                    snprintf(ids[k][i], sizeof ids[k][i], "w%02d-%012" PRIu64, k, x->seq * CMD + i);
                e[k][i] = (ann_entry){.entry_id = x->next_id[li] + i,
                                      .time_ns = (int64_t)done,
                                      .insert_time_ns = (int64_t)done,
                                      .severity = 300,
                                      .flags = server ? ANN_ENTRY_GENERATED_ID : 0,
                                      .insert_id = ids[k][i],
                                      .insert_id_len = strlen(ids[k][i]),
                                      .body = (const uint8_t *)x->body,
                                      .body_len = BODY};
            }
            x->next_id[li] += CMD;
            if (strcmp(shape, "rows") == 0)
                old_rows(x, li, e[k], CMD, futs, &nf);
            else if (ann_archive_writer_add(w, "bench", x->logs[li], 1, e[k], CMD, &err) < 0)
                die("add", &err);
        }
        for (size_t i = 0; i < nf; i++) {
            ann_cql_result r;
            if (ann_cql_future_wait(futs[i], &r, &err) < 0)
                die("write", &err);
            ann_cql_result_release(&r);
        }
        if (ann_archive_writer_wait(w, &err) < 0)
            die("wait", &err);
    }
    double s1 = now_s();
    long t1 = ticks(cpid);
    long hz = sysconf(_SC_CLK_TCK);
    printf("%-7s %8" PRIu64 " entries %6.2f s %9.0f entries/s  Cassandra %6.2f CPU-s per M\n",
           shape, done, s1 - s0, (double)done / (s1 - s0),
           (double)(t1 - t0) / (double)hz / ((double)done / 1e6));
    fflush(stdout);
    ann_archive_writer_free(w);
}

int main(int argc, char **argv)
{
    uint64_t total = 200000;
    int rounds = 2, cpid = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--entries"))
            total = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cassandra-pid"))
            cpid = atoi(argv[i + 1]);
    }
    ann_cql_config cql = {.contact_points = env_or("ANN_CQL_CONTACT", "127.0.0.1:9042"),
                          .username = env_or("ANN_CQL_USER", "cassandra"),
                          .password = env_or("ANN_CQL_PASSWORD", "cassandra"),
                          .request_timeout_ms = 30000};
    char ks[48];
    snprintf(ks, sizeof ks, "annals_rows_%d", (int)getpid());
    ann_archive_config ac = {.cql = &cql, .keyspace = ks, .replication_factor = 1};
    shape_ctx *x = calloc(1, sizeof *x);
    ann_err err;
    if (!x || ann_archive_open(&ac, &x->a, &err) < 0)
        die("open", &err);
    x->c = ann_archive_conn(x->a);
    char q[1024];
    snprintf(q, sizeof q,
             "CREATE TABLE IF NOT EXISTS %s.log_entries (tenant_id text, log_id text, "
             "bucket bigint, entry_id bigint, epoch bigint, time_ns bigint, "
             "insert_time_ns bigint, severity int, flags int, insert_id text, body blob, "
             "PRIMARY KEY ((tenant_id, log_id, bucket), entry_id, epoch)) "
             "WITH CLUSTERING ORDER BY (entry_id ASC, epoch DESC)",
             ks);
    run(x->c, q);
    snprintf(q, sizeof q,
             "INSERT INTO %s.log_entries (tenant_id, log_id, bucket, entry_id, epoch, "
             "time_ns, insert_time_ns, severity, flags, insert_id, body) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             ks);
    if (ann_cql_prepare(x->c, q, &x->ins_entry, &err) < 0)
        die("prepare", &err);
    snprintf(q, sizeof q,
             "INSERT INTO %s.log_insert_ids (tenant_id, log_id, bucket, insert_id, epoch, "
             "entry_id) VALUES (?, ?, ?, ?, ?, ?)",
             ks);
    if (ann_cql_prepare(x->c, q, &x->ins_iid, &err) < 0)
        die("prepare", &err);
    for (size_t i = 0; i < sizeof x->body; i++)
        x->body[i] = (char)('a' + (i * 7) % 26);
    for (int i = 0; i < LOGS; i++) {
        snprintf(x->logs[i], sizeof x->logs[i], "log-%d", i);
        x->next_id[i] = 1;
    }
    const char *shapes[] = {"rows", "client", "server"};
    for (int r = 0; r < rounds; r++)
        for (int s = 0; s < 3; s++)
            burst(x, shapes[s], total, cpid);
    snprintf(q, sizeof q, "DROP KEYSPACE IF EXISTS %s", ks);
    run(x->c, q);
    ann_archive_close(x->a);
    free(x);
    return 0;
}
