/*
 * annals-search-bench: the search projection's figures (docs/bench.md, "Distributed mode:
 * search"), on the running PostgreSQL (make services-up), without Kafka: synthetic
 * Committed records go straight into ann_projector_apply, as the projector role would
 * apply them.
 *
 *   annals-search-bench load --ns NS [--entries 1000000] [--logs 100] [--rare 10]
 *                           [--search beside|off]
 *       Creates the logs, then applies Writes of 1,000 entries (200 bytes of text each,
 *       4 records a transaction, as the projector's batches under issue 2's load) through
 *       the browse projection; with `beside`, the search projection applies the same
 *       records at the same time on its own connection and thread. Prints the browse
 *       projection's rows/s (and the search one's). `--rare N` puts the token
 *       "ghp_rareToken" in N entries spread over the logs.
 *   annals-search-bench query --ns NS --q TEXT [--walk 1] [--limit 100] [--repeat 5]
 *                            [--calls N]
 *       Runs SearchLogEntries' port call (ann_readmodel_search, budget ANN_WORK_BUDGET)
 *       page after page until the walk is complete; prints the calls, the hits, the first
 *       page's and the whole walk's time (median of --repeat). --walk 1 forces the walk
 *       over entries (ann_readmodel_search_walk_only). --calls N stops after N calls (a
 *       common token's walk is long).
 *   annals-search-bench drop --ns NS
 *
 * --postgres CONNINFO defaults to the development database. Output: "RESULT ..." lines.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "annals/events/v1/events.pb-c.h"
#include "benchkit.h"
#include "common/buf.h"
#include "domain/body.h"
#include "domain/limits.h"
#include "pg/pg.h"
#include "pg/readmodel.h"
#include "pg/schema.h"
#include "projector/projector.h"

#define DEV_CONNINFO "host=127.0.0.1 port=5432 user=annals password=annals dbname=annals"
#define TENANT "00000000-0000-4000-8000-00000000beef"
#define PER_WRITE 1000
#define PER_TXN 4

typedef Annals__Events__V1__Committed committed;

static void fail(const char *what, const ann_err *err)
{
    fprintf(stderr, "annals-search-bench: %s: %s\n", what, err->msg);
    exit(1);
}

static void log_id(int i, char out[37])
{
    snprintf(out, 37, "00000000-0000-4000-8000-%012d", i);
}

/* ---- load ---- */

typedef struct stream {
    committed *recs; /* every record, in order */
    size_t n;
} stream;

static const char *WORDS[] = {
    "GET",     "POST",   "/api/v1/items", "/api/v1/users", "200",     "404",     "500",
    "ms",      "user=",  "trace=",        "span=",         "retry",   "timeout", "connected",
    "closing", "worker", "queue",         "batch",         "flushed", "cache"};

static void make_text(uint64_t *rng, char *t, size_t n, bool rare)
{
    size_t k = 0;
    if (rare)
        k += (size_t)snprintf(t, n, "token ghp_rareToken%04x ", (unsigned)(rng_next(rng) & 0xffff));
    while (k + 20 < n) {
        uint64_t r = rng_next(rng);
        if (r % 3 == 0)
            k += (size_t)snprintf(t + k, n - k, "%08" PRIx64 " ", r >> 20);
        else
            k += (size_t)snprintf(t + k, n - k, "%s ", WORDS[(r >> 8) % 20]);
    }
    while (k < n - 1)
        t[k++] = '.';
    t[k] = '\0';
}

static void build(stream *s, uint64_t entries, int logs, uint64_t rare)
{
    uint64_t nw = (entries + PER_WRITE - 1) / PER_WRITE;
    s->n = (size_t)logs + (size_t)nw;
    s->recs = ann_xcalloc(s->n, sizeof *s->recs);
    uint64_t *next = ann_xcalloc((size_t)logs, sizeof *next);
    int64_t base = ((int64_t)time(NULL) - 86400) * 1000000000;
    uint64_t rng = 88172645463325252ull;
    uint64_t every = rare ? entries / rare : 0, made = 0;
    for (int i = 0; i < logs; i++) {
        committed *c = &s->recs[i];
        annals__events__v1__committed__init(c);
        c->tenant_id = TENANT;
        c->log_id = ann_xcalloc(1, 37);
        log_id(i, c->log_id);
        c->op_seq = 1;
        c->op_case = ANNALS__EVENTS__V1__COMMITTED__OP_CREATE_LOG;
        c->create_log = ann_xcalloc(1, sizeof *c->create_log);
        annals__events__v1__create_log__init(c->create_log);
        c->create_log->create_time_ns = base;
        next[i] = 1;
    }
    char text[201];
    for (uint64_t w = 0; w < nw; w++) {
        int li = (int)(w % (uint64_t)logs);
        committed *c = &s->recs[(size_t)logs + w];
        annals__events__v1__committed__init(c);
        c->tenant_id = TENANT;
        c->log_id = s->recs[li].log_id;
        c->op_case = ANNALS__EVENTS__V1__COMMITTED__OP_WRITE;
        c->write = ann_xcalloc(1, sizeof *c->write);
        annals__events__v1__write__init(c->write);
        c->write->n_entries = PER_WRITE;
        c->write->entries = ann_xcalloc(PER_WRITE, sizeof *c->write->entries);
        for (size_t k = 0; k < PER_WRITE; k++) {
            Annals__Events__V1__Entry *e = ann_xcalloc(1, sizeof *e);
            annals__events__v1__entry__init(e);
            uint64_t g = w * PER_WRITE + k;
            e->entry_id = next[li]++;
            e->time_ns = base + (int64_t)g * 50000; /* 1M entries over ~50 s */
            e->insert_time_ns = e->time_ns;
            e->insert_id.data = ann_xcalloc(1, 16);
            e->insert_id.len = (size_t)snprintf((char *)e->insert_id.data, 16, "i%" PRIu64, g);
            bool r = every && g % every == every / 2 && made < rare;
            made += r;
            make_text(&rng, text, sizeof text, r);
            ann_buf b = ANN_BUF_INIT;
            ann_buf_add_len_field(&b, 30, text, strlen(text));
            e->body.data = b.data;
            e->body.len = b.len;
            c->write->entries[k] = e;
        }
        c->op_seq = w / (uint64_t)logs + 2;
        c->entry_count = next[li] - 1;
    }
    free(next);
}

typedef struct applier {
    const char *conninfo, *ns;
    ann_projector_kind kind;
    const stream *s;
    double secs;
    uint64_t rows;
} applier;

static void *apply_all(void *arg)
{
    applier *a = arg;
    ann_err err;
    ann_projector *p = NULL;
    if (ann_projector_open_kind(a->conninfo, a->ns, a->kind, &p, &err) != 0)
        fail("open projector", &err);
    int64_t next = 0;
    if (ann_projector_claim(p, 0, &next, &err) != 0)
        fail("claim", &err);
    ann_projector_record v[PER_TXN];
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < a->s->n;) {
        size_t n = 0;
        while (n < PER_TXN && i < a->s->n) {
            const committed *c = &a->s->recs[i++];
            v[n++] = (ann_projector_record){0, next++, c};
            if (c->op_case == ANNALS__EVENTS__V1__COMMITTED__OP_WRITE)
                a->rows += c->write->n_entries;
        }
        if (ann_projector_apply(p, v, n, &err) != 0)
            fail("apply", &err);
    }
    a->secs = (double)(bench_now_ns() - t0) / 1e9;
    ann_projector_close(p);
    return NULL;
}

static int cmd_load(const char *conninfo, const char *ns, uint64_t entries, int logs, uint64_t rare,
                    const char *search)
{
    stream s;
    build(&s, entries, logs, rare);
    bool beside = strcmp(search, "beside") == 0;
    applier b = {conninfo, ns, ANN_PROJECTOR_BROWSE, &s, 0, 0};
    applier x = {conninfo, ns, ANN_PROJECTOR_SEARCH, &s, 0, 0};
    pthread_t tb, tx;
    pthread_create(&tb, NULL, apply_all, &b);
    if (beside)
        pthread_create(&tx, NULL, apply_all, &x);
    pthread_join(tb, NULL);
    if (beside)
        pthread_join(tx, NULL);
    printf("RESULT load ns=%s entries=%" PRIu64 " search=%s browse_rows_per_s=%.0f", ns, b.rows,
           search, (double)b.rows / b.secs);
    if (beside)
        printf(" search_rows_per_s=%.0f", (double)x.rows / x.secs);
    printf("\n");
    return 0;
}

/* ---- query ---- */

typedef struct hits {
    uint64_t n;
} hits;

static int see(const char *log, const ann_entry *e, void *ud)
{
    (void)log, (void)e;
    ((hits *)ud)->n++;
    return 0;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_query(const char *conninfo, const char *ns, const char *qs, int walk, int limit,
                     int repeat, int max_calls)
{
    ann_err err;
    ann_readmodel *rm = NULL;
    if (ann_readmodel_open(conninfo, ns, 2, &rm, &err) != 0)
        fail("open read model", &err);
    ann_readmodel_search_walk_only(rm, walk != 0);
    ann_matcher m;
    ann_matcher_init(&m, (const uint8_t *)qs, strlen(qs), false);
    double first[64], all[64];
    uint64_t calls = 0, nh = 0, examined = 0;
    if (repeat > 64)
        repeat = 64;
    for (int r = 0; r < repeat; r++) {
        ann_search_query q = {.match = &m,
                              .start_ns = INT64_MIN,
                              .end_ns = INT64_MAX,
                              .snapshot_ns = INT64_MAX,
                              .limit = (size_t)limit,
                              .budget = ANN_WORK_BUDGET};
        hits h = {0};
        calls = examined = 0;
        uint64_t t0 = bench_now_ns();
        for (;;) {
            ann_search_result res;
            if (ann_readmodel_search(rm, TENANT, &q, see, &h, &res, &err) != 0)
                fail("search", &err);
            calls++;
            examined += res.examined;
            if (calls == 1)
                first[r] = (double)(bench_now_ns() - t0) / 1e6;
            if (!res.more || (max_calls && calls == (uint64_t)max_calls))
                break;
            q.has_cursor = true;
            q.cursor = res.resume;
        }
        all[r] = (double)(bench_now_ns() - t0) / 1e6;
        nh = h.n;
    }
    qsort(first, (size_t)repeat, sizeof first[0], cmp_dbl);
    qsort(all, (size_t)repeat, sizeof all[0], cmp_dbl);
    printf("RESULT query ns=%s q=%s mode=%s hits=%" PRIu64 " calls=%" PRIu64 " examined=%" PRIu64
           " first_page_ms=%.1f walk_ms=%.1f\n",
           ns, qs, walk ? "walk" : "index", nh, calls, examined, first[repeat / 2],
           all[repeat / 2]);
    ann_readmodel_close(rm);
    return 0;
}

int main(int argc, char **argv)
{
    const char *usage = "usage: annals-search-bench load|query|drop --ns NS [options]\n";
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *ns = NULL, *conninfo = DEV_CONNINFO, *search = "beside", *qs = "ghp_rareToken";
    uint64_t entries = 1000000, rare = 10;
    int logs = 100, walk = 0, limit = 100, repeat = 5, max_calls = 0;
    bench_opt opts[] = {{"ns", BOPT_STR, &ns},
                        {"postgres", BOPT_STR, &conninfo},
                        {"entries", BOPT_U64, &entries},
                        {"logs", BOPT_INT, &logs},
                        {"rare", BOPT_U64, &rare},
                        {"search", BOPT_STR, &search},
                        {"q", BOPT_STR, &qs},
                        {"walk", BOPT_INT, &walk},
                        {"limit", BOPT_INT, &limit},
                        {"repeat", BOPT_INT, &repeat},
                        {"calls", BOPT_INT, &max_calls},
                        {NULL, 0, NULL}};
    bench_args(argc, argv, 2, opts, usage);
    if (!ns || logs < 1 || limit < 1 || repeat < 1) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "load") == 0)
        return cmd_load(conninfo, ns, entries, logs, rare, search);
    if (strcmp(argv[1], "query") == 0)
        return cmd_query(conninfo, ns, qs, walk, limit, repeat, max_calls);
    if (strcmp(argv[1], "drop") == 0) {
        ann_err err;
        PGconn *c = ann_pg_connect(conninfo, &err);
        if (!c || ann_pg_schema_drop(c, ns, &err) != 0)
            fail("drop", &err);
        PQfinish(c);
        return 0;
    }
    fputs(usage, stderr);
    return 2;
}
