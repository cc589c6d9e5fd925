/*
 * bench_store: drives the embedded store directly with the ingest shape of
 * the service benchmark and prints throughput, latency and memory.
 *
 *   bench_store [-d fsync|none|both] [-t threads] [-l logs] [-b batch]
 *               [-s body_bytes] [-n total_entries] [-D dir] [-k] [-P] [-S]
 *
 * Defaults: both durabilities, 8 threads, 100 logs, batches of 1,000,
 * 220-byte bodies (a 200-byte text payload plus labels, as the API encodes
 * it), 36-byte insert ids, 2,000,000 entries. Each durability runs in its
 * own child process (so peak RSS is its own) on a fresh directory under
 * /tmp (or -D), removed afterwards unless -k. Figures are printed, never
 * asserted. -P turns on the store's preallocation, -S turns off its index snapshots
 * (to measure them), -K its checkpointer (the integrity tree is then built only when asked:
 * docs/integrity.md).
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/embedded/embedded.h"

typedef struct cfg {
    int threads, logs, batch, body;
    long total;
    const char *base;
    bool keep;
    bool prealloc;
    bool no_snapshot;
    bool no_checkpointer;
} cfg;

typedef struct worker {
    const cfg *c;
    ann_store *s;
    const char *tenant;
    int tid;
    atomic_long *next_batch;
    long nbatches;
    double *lat; /* ms per append */
    size_t nlat;
    int failures;
} worker;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    const cfg *c = w->c;
    ann_entry *es = calloc((size_t)c->batch, sizeof *es);
    char *iids = malloc((size_t)c->batch * 64);
    uint8_t *body = malloc((size_t)c->body);
    uint64_t *ids = malloc((size_t)c->batch * sizeof *ids);
    w->lat = malloc((size_t)w->nbatches * sizeof *w->lat);
    memset(body, 'x', (size_t)c->body);
    /* A text payload (LogEntry field 30) as the API encodes it, so that the integrity tree
     * hashes what it would hash for real entries (docs/integrity.md). */
    if (c->body >= 4) {
        size_t n = (size_t)c->body - 3 >= 128 ? (size_t)c->body - 4 : (size_t)c->body - 3;
        body[0] = 0xf2, body[1] = 0x01;
        if (n >= 128)
            body[2] = (uint8_t)(0x80 | (n & 0x7f)), body[3] = (uint8_t)(n >> 7);
        else
            body[2] = (uint8_t)n;
    }
    for (;;) {
        long b = atomic_fetch_add(w->next_batch, 1);
        if (b >= w->nbatches)
            break;
        char log[40];
        snprintf(log, sizeof log, "log-%03ld", b % c->logs);
        int64_t t = now_ns();
        for (int i = 0; i < c->batch; i++) {
            char *iid = iids + (size_t)i * 64;
            snprintf(iid, 64, "%08lx-%04x-4000-8000-%012lx", (unsigned long)b, (unsigned)i,
                     (unsigned long)(b * c->batch + i));
            es[i] = (ann_entry){.time_ns = t + i,
                                .insert_time_ns = t,
                                .severity = 300,
                                .insert_id = iid,
                                .insert_id_len = strlen(iid),
                                .body = body,
                                .body_len = (size_t)c->body};
        }
        ann_append a = {.tenant_id = w->tenant,
                        .log_id = log,
                        .entries = es,
                        .n = (size_t)c->batch,
                        .ids_out = ids};
        ann_err err;
        double t0 = now_s();
        if (ann_store_append(w->s, &a, &err) != 0) {
            fprintf(stderr, "append: %s\n", err.msg);
            w->failures++;
            continue;
        }
        w->lat[w->nlat++] = (now_s() - t0) * 1000.0;
    }
    free(es);
    free(iids);
    free(body);
    free(ids);
    return NULL;
}

static int count_visit(const ann_entry *e, void *ud)
{
    (void)e;
    ++*(long *)ud;
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int run(const cfg *c, ann_durability d)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/ann-bench-store-XXXXXX", c->base);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    ann_store_embedded_opts o;
    ann_store_embedded_opts_init(&o);
    o.durability = d;
    o.prealloc = c->prealloc;
    if (c->no_snapshot)
        o.snapshot_min = SIZE_MAX;
    o.no_checkpointer = c->no_checkpointer;
    ann_store *s;
    ann_err err;
    if (ann_store_embedded_open(dir, &o, &s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    uint8_t key[32] = {1};
    ann_tenant t;
    if (ann_store_tenant_create(s, "bench", key, &t, &err) != 0) {
        fprintf(stderr, "tenant: %s\n", err.msg);
        return 1;
    }
    for (int l = 0; l < c->logs; l++) {
        char log[40];
        snprintf(log, sizeof log, "log-%03d", l);
        if (ann_store_log_create(s, t.id, log, NULL, 0, now_ns(), &err) != 0) {
            fprintf(stderr, "log: %s\n", err.msg);
            return 1;
        }
    }
    long nbatches = c->total / c->batch;
    atomic_long next = 0;
    worker *ws = calloc((size_t)c->threads, sizeof *ws);
    pthread_t *th = calloc((size_t)c->threads, sizeof *th);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now_s();
    int64_t tstart = now_ns();
    for (int i = 0; i < c->threads; i++) {
        ws[i] = (worker){
            .c = c, .s = s, .tenant = t.id, .tid = i, .next_batch = &next, .nbatches = nbatches};
        pthread_create(&th[i], NULL, worker_main, &ws[i]);
    }
    size_t nlat = 0;
    int failures = 0;
    for (int i = 0; i < c->threads; i++) {
        pthread_join(th[i], NULL);
        nlat += ws[i].nlat;
        failures += ws[i].failures;
    }
    double el = now_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    double *lat = malloc(nlat * sizeof *lat);
    size_t k = 0;
    for (int i = 0; i < c->threads; i++) {
        memcpy(lat + k, ws[i].lat, ws[i].nlat * sizeof *lat);
        k += ws[i].nlat;
        free(ws[i].lat);
    }
    qsort(lat, nlat, sizeof *lat, cmp_d);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
                 (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    double entries = (double)nlat * c->batch;
    double rec = 48 + 36 + c->body;
    double tc = now_s();
    ann_store_close(s); /* writes the index snapshots of big logs */
    double close_s = now_s() - tc;
    /* A reopen rebuilds every log's index from its file: time it too. */
    double t2 = now_s();
    if (ann_store_embedded_open(dir, &o, &s, &err) != 0) {
        fprintf(stderr, "reopen: %s\n", err.msg);
        return 1;
    }
    ann_log_meta m;
    uint64_t total = 0;
    for (int l = 0; l < c->logs; l++) {
        char log[40];
        snprintf(log, sizeof log, "log-%03d", l);
        if (ann_store_log_get(s, t.id, log, &m, &err) == 0) {
            total += m.entry_count;
            ann_log_meta_release(&m);
        }
    }
    double reopen = now_s() - t2;

    /* Query latency on the first log (its index is built by now). */
    enum { Q = 300 };
    double ql[Q], rl[Q];
    unsigned seed = 1;
    int64_t span = (int64_t)(el * 1e9) + 1;
    for (int i = 0; i < Q; i++) {
        ann_list_query q = {.start_ns =
                                tstart + (int64_t)(((double)rand_r(&seed) / RAND_MAX) * span),
                            .end_ns = INT64_MAX,
                            .limit = 100};
        long cnt = 0;
        double a = now_s();
        ann_store_list(s, t.id, "log-000", &q, count_visit, &cnt, NULL, &err);
        ql[i] = (now_s() - a) * 1000.0;
        uint64_t after = (uint64_t)rand_r(&seed) % (total / c->logs + 1);
        a = now_s();
        ann_store_read_after(s, t.id, "log-000", after, 100, count_visit, &cnt, &err);
        rl[i] = (now_s() - a) * 1000.0;
    }
    qsort(ql, Q, sizeof *ql, cmp_d);
    qsort(rl, Q, sizeof *rl, cmp_d);
    struct rusage r2;
    getrusage(RUSAGE_SELF, &r2);
    ann_store_close(s);
    printf("durability=%-5s%s threads=%d logs=%d batch=%d body=%dB entries=%.0f failures=%d\n",
           d == ANN_DURABILITY_NONE ? "none" : "fsync", c->prealloc ? " (prealloc)" : "",
           c->threads, c->logs, c->batch, c->body, entries, failures);
    printf("  %.0f entries/s  %.1f MB/s of records (%.1f MB/s of bodies)  in %.2f s\n",
           entries / el, entries * rec / el / 1e6, entries * c->body / el / 1e6, el);
    printf("  append latency p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", nlat ? lat[nlat / 2] : 0.0,
           nlat ? lat[(size_t)((double)nlat * 0.99)] : 0.0, nlat ? lat[nlat - 1] : 0.0);
    printf("  CPU %.2f s (%.2f CPU-s per million entries)  peak RSS %ld MiB\n", cpu,
           cpu / (entries / 1e6), r1.ru_maxrss / 1024);
    printf("  close (drain, snapshots): %.2f s\n", close_s);
    printf("  reopen + index %s of %llu entries: %.2f s\n",
           c->no_snapshot ? "by scan" : "by snapshot or scan", (unsigned long long)total, reopen);
    printf("  one log of %llu entries: list 100 from a random time p50 %.3f ms p99 %.3f ms; "
           "read_after 100 p50 %.3f ms p99 %.3f ms\n",
           (unsigned long long)(total / c->logs), ql[Q / 2], ql[Q * 99 / 100], rl[Q / 2],
           rl[Q * 99 / 100]);
    printf("  peak RSS after reopen and queries: %ld MiB\n", r2.ru_maxrss / 1024);
    fflush(stdout);
    free(lat);
    free(ws);
    free(th);
    if (!c->keep)
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    else
        printf("  data kept in %s\n", dir);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    cfg c = {
        .threads = 8, .logs = 100, .batch = 1000, .body = 220, .total = 2000000, .base = "/tmp"};
    const char *dur = "both";
    int opt;
    while ((opt = getopt(argc, argv, "d:t:l:b:s:n:D:kPSK")) != -1) {
        switch (opt) {
        case 'd':
            dur = optarg;
            break;
        case 't':
            c.threads = atoi(optarg);
            break;
        case 'l':
            c.logs = atoi(optarg);
            break;
        case 'b':
            c.batch = atoi(optarg);
            break;
        case 's':
            c.body = atoi(optarg);
            break;
        case 'n':
            c.total = atol(optarg);
            break;
        case 'D':
            c.base = optarg;
            break;
        case 'k':
            c.keep = true;
            break;
        case 'P':
            c.prealloc = true;
            break;
        case 'S':
            c.no_snapshot = true;
            break;
        case 'K':
            c.no_checkpointer = true;
            break;
        default:
            fprintf(stderr,
                    "usage: %s [-d fsync|none|both] [-t threads] [-l logs] [-b batch] "
                    "[-s body] [-n entries] [-D dir] [-k] [-P] [-S] [-K]\n",
                    argv[0]);
            return 2;
        }
    }
    if (c.threads < 1 || c.logs < 1 || c.batch < 1 || c.body < 0 || c.total < c.batch)
        return 2;
    ann_durability ds[2];
    int nd = 0;
    if (!strcmp(dur, "fsync") || !strcmp(dur, "both"))
        ds[nd++] = ANN_DURABILITY_FSYNC;
    if (!strcmp(dur, "none") || !strcmp(dur, "both"))
        ds[nd++] = ANN_DURABILITY_NONE;
    int rc = 0;
    for (int i = 0; i < nd; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            _exit(run(&c, ds[i]));
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st))
            rc = 1;
    }
    return rc;
}
