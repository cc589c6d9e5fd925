/*
 * annals-load: a load generator for annalsd over gRPC (see docs/bench.md).
 *
 *   annals-load ingest [--threads N] [--batch N] [--entry-size B] [--logs N] [--wait W]
 *                      [--duration S | --total N] [--server-pid PID]
 *   annals-load query  [--log-entries N] [--queries N] [--page-size N] [--threads N]
 *                      [--server-pid PID]
 *   annals-load tail   [--rate N] [--duration S] [--entry-size B] [--server-pid PID]
 *
 * The server is ANNALS_ADDR (default 127.0.0.1:50051) with the key in
 * ANNALS_TOKEN (or --addr / --token). Figures are printed as "name value" lines
 * and one "RESULT key=value ..." line for scripts. Nothing is asserted: the
 * numbers are measurements, to be read against the targets in docs/bench.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "benchkit.h"
#include "client/rpc.h"

#define UUID_LEN 36
#define SEQ_DIGITS 12

typedef struct opts {
    const char *mode;
    const char *addr, *token;
    int threads, batch, entry_size, logs, queries, page_size, rate;
    double duration;
    uint64_t total, log_entries;
    int server_pid;
    const char *wait_name; /* --wait: durable, sequenced, queryable or server (the default) */
    int wait;              /* WriteLogEntriesRequest.wait */
    double entry_rate;     /* ingest: entries/s over all threads; 0 = as fast as possible */
    int tails;             /* ingest: tail followers, on the first logs */
    const char *stop_pids; /* ingest: SIGSTOP these (comma-separated) once the logs exist */
    int server_ids;        /* ingest: send no insert_ids (the API server makes them) */
} opts;

/* ---- small utilities ---------------------------------------------------- */

static void realtime(int64_t *sec, int32_t *nsec)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = ts.tv_sec;
    *nsec = (int32_t)ts.tv_nsec;
}

static void die(const char *what, const ann_rpc_status *st)
{
    fprintf(stderr, "annals-load: %s: %s: %s\n", what, ann_rpc_code_name(st->code), st->msg);
    exit(1);
}

/* ---- the server process, from /proc ------------------------------------ */

static void print_server(const opts *o, proc_sample before, proc_sample after, uint64_t entries)
{
    if (!before.ok || !after.ok) {
        printf("server_cpu_s_per_M_entries  n/a (no --server-pid)\n");
        return;
    }
    double cpu = after.cpu_s - before.cpu_s;
    printf("server_cpu_s                %.2f\n", cpu);
    if (entries)
        printf("server_cpu_s_per_M_entries  %.2f\n", cpu / ((double)entries / 1e6));
    printf("server_peak_rss_mib         %.1f\n", after.hwm_kib / 1024.0);
    printf("server_rss_mib              %.1f\n", after.rss_kib / 1024.0);
    (void)o;
}

static ann_client *connect_client(const opts *o, int own)
{
    ann_client *c;
    ann_rpc_status st;
    ann_client_opts co = {.addr = o->addr, .token = o->token, .own_connection = own};
    if (ann_client_new(&co, &c, &st) < 0)
        die("connect", &st);
    return c;
}

/* Creates a log and returns its id (36 characters, heap). */
static char *create_log(ann_client *c, const char *bench)
{
    Annals__V1__CreateLogRequest req = ANNALS__V1__CREATE_LOG_REQUEST__INIT;
    Annals__V1__CreateLogRequest__LabelsEntry lab =
        ANNALS__V1__CREATE_LOG_REQUEST__LABELS_ENTRY__INIT;
    Annals__V1__CreateLogRequest__LabelsEntry *labp = &lab;
    Annals__Wire__V1__CreateLogResponse *resp;
    ann_rpc_status st;
    lab.key = "bench";
    lab.value = (char *)bench;
    req.n_labels = 1;
    req.labels = &labp;
    if (ann_rpc_create_log(c, &req, 30000, &resp, &st) < 0)
        die("CreateLog", &st);
    if (!resp->log || resp->log->id.len != UUID_LEN) {
        fprintf(stderr, "annals-load: CreateLog returned no usable id\n");
        exit(1);
    }
    char *id = strndup((const char *)resp->log->id.data, UUID_LEN);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return id;
}

static void fill_text(char *p, size_t n, uint64_t *rng)
{
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .:=/-_";
    for (size_t i = 0; i < n; i++)
        p[i] = alphabet[rng_next(rng) % (sizeof alphabet - 1)];
}

static void put_digits(uint8_t *p, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (uint8_t)('0' + v % 10);
        v /= 10;
    }
}

/* ---- a tail follower ----------------------------------------------------- */

/* Follows a log from its start (TailLogEntries on its own connection) until *stop, handing
 * each entry to on_entry with the time it arrived. */
typedef struct follower {
    const opts *o;
    const char *log;
    _Atomic int *stop;
    _Atomic int ready;
    void (*on_entry)(void *ud, const Annals__Wire__V1__LogEntry *e, uint64_t now);
    void *ud;
} follower;

static void *follow_run(void *arg)
{
    follower *f = arg;
    ann_client *c = connect_client(f->o, 1);
    Annals__V1__TailLogEntriesRequest req = ANNALS__V1__TAIL_LOG_ENTRIES_REQUEST__INIT;
    ann_client_stream *s;
    ann_rpc_status st;
    req.log_id = (char *)f->log;
    req.after_entry_id = "0";
    if (ann_rpc_tail_start(c, &req, &s, &st) < 0)
        die("TailLogEntries", &st);
    atomic_store(&f->ready, 1);
    while (!atomic_load(f->stop)) {
        Annals__Wire__V1__TailLogEntriesResponse *m;
        int r = ann_rpc_tail_next(s, 100, &m, &st);
        if (r == ANN_STREAM_TIMEOUT)
            continue;
        if (r == ANN_STREAM_END) {
            fprintf(stderr, "annals-load: tail ended: %s: %s\n", ann_rpc_code_name(st.code),
                    st.msg);
            break;
        }
        uint64_t now = bench_now_ns();
        for (size_t i = 0; i < m->n_entries; i++)
            f->on_entry(f->ud, m->entries[i], now);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    ann_client_stream_free(s);
    ann_client_free(c);
    return NULL;
}

static void follow_start(follower *f, pthread_t *th)
{
    pthread_create(th, NULL, follow_run, f);
    while (!atomic_load(&f->ready))
        usleep(1000);
}

/* ---- ingest ------------------------------------------------------------- */

/*
 * Each worker packs one WriteLogEntriesRequest once and then only patches
 * it: the log id (every id is 36 bytes) and the digits of each insert_id
 * ("wNN-<12 digits>"), so every entry is new to the server and the client
 * spends almost nothing per request.
 */
typedef struct worker {
    const opts *o;
    int idx;
    char **logs;
    _Atomic uint64_t *budget; /* entries left in --total mode */
    uint64_t deadline_ns;
    uint8_t *req;
    size_t req_len, log_off;
    size_t *id_off;
    lat lat;
    uint64_t entries, requests, errors;
    ann_rpc_status first_error;
    _Atomic uint64_t *sent_ns; /* --tails: send time of request k (seq / batch) */
    uint64_t max_sent;
    _Atomic uint64_t tailed_ok; /* requests acknowledged into a followed log */
} worker;

/* Up to this many requests per worker are timed for --tails (8 bytes each, touched lazily). */
#define MAX_TIMED_REQUESTS (1u << 22)

static void worker_build(worker *w)
{
    const opts *o = w->o;
    Annals__Wire__V1__WriteLogEntriesRequest req =
        ANNALS__WIRE__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    Annals__Wire__V1__LogEntry *entries = calloc((size_t)o->batch, sizeof *entries);
    Annals__Wire__V1__LogEntry **ptrs = calloc((size_t)o->batch, sizeof *ptrs);
    char *ids = calloc((size_t)o->batch, 32);
    char *texts = malloc((size_t)o->batch * (size_t)o->entry_size + 1);
    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(w->idx + 1) * 0xD1B54A32D192ED03ULL;

    w->id_off = calloc((size_t)o->batch, sizeof *w->id_off);
    if (!entries || !ptrs || !ids || !texts || !w->id_off) {
        perror("annals-load");
        exit(1);
    }
    fill_text(texts, (size_t)o->batch * (size_t)o->entry_size, &rng);
    req.log_id.data = (uint8_t *)w->logs[0];
    req.log_id.len = UUID_LEN;
    for (int i = 0; i < o->batch; i++) {
        Annals__Wire__V1__LogEntry *e = &entries[i];
        annals__wire__v1__log_entry__init(e);
        snprintf(ids + 32 * i, 32, "w%02d-%0*d", w->idx % 100, SEQ_DIGITS, i);
        if (!o->server_ids) {
            e->insert_id.data = (uint8_t *)(ids + 32 * i);
            e->insert_id.len = strlen(ids + 32 * i);
        }
        e->payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
        e->text_payload.data = (uint8_t *)texts + (size_t)i * (size_t)o->entry_size;
        e->text_payload.len = (size_t)o->entry_size;
        e->severity = 300;
        ptrs[i] = e;
    }
    req.n_entries = (size_t)o->batch;
    req.entries = ptrs;
    req.wait = o->wait;
    w->req_len = annals__wire__v1__write_log_entries_request__get_packed_size(&req);
    w->req = malloc(w->req_len);
    annals__wire__v1__write_log_entries_request__pack(&req, w->req);

    /* Find what to patch. */
    uint8_t *at = memmem(w->req, w->req_len, w->logs[0], UUID_LEN);
    w->log_off = (size_t)(at - w->req);
    size_t from = 0;
    for (int i = 0; i < o->batch && !o->server_ids; i++) {
        const char *id = ids + 32 * i;
        size_t len = strlen(id);
        at = memmem(w->req + from, w->req_len - from, id, len);
        if (!at) {
            fprintf(stderr, "annals-load: template error\n");
            exit(1);
        }
        w->id_off[i] = (size_t)(at - w->req) + len - SEQ_DIGITS;
        from = (size_t)(at - w->req) + len;
    }
    free(texts);
    free(ids);
    free(ptrs);
    free(entries);
}

static void *worker_run(void *arg)
{
    worker *w = arg;
    const opts *o = w->o;
    ann_client *c = connect_client(o, 1);
    ann_buf resp = ANN_BUF_INIT;
    ann_rpc_status st;
    uint64_t seq = 0;
    /* --entry-rate: each worker sends its share on a fixed schedule, the workers staggered. */
    double period = o->entry_rate > 0 ? o->batch * o->threads / o->entry_rate * 1e9 : 0;
    uint64_t start = bench_now_ns() + (uint64_t)(period * w->idx / o->threads);

    for (uint64_t k = 0;; k++) {
        if (period > 0) {
            uint64_t due = start + (uint64_t)(period * (double)k), now = bench_now_ns();
            if (due > now)
                usleep((useconds_t)((due - now) / 1000));
        }
        if (w->deadline_ns && bench_now_ns() >= w->deadline_ns)
            break;
        if (w->budget) {
            uint64_t left = atomic_load(w->budget);
            do {
                if (left < (uint64_t)o->batch)
                    goto out;
            } while (!atomic_compare_exchange_weak(w->budget, &left, left - (uint64_t)o->batch));
        }
        uint64_t li = (w->idx + k * (uint64_t)o->threads) % (uint64_t)o->logs;
        memcpy(w->req + w->log_off, w->logs[li], UUID_LEN);
        uint64_t req_k = seq / (uint64_t)o->batch;
        for (int i = 0; i < o->batch; i++, seq++)
            if (!o->server_ids)
                put_digits(w->req + w->id_off[i], seq, SEQ_DIGITS);
        uint64_t t0 = bench_now_ns();
        if (w->sent_ns && req_k < w->max_sent)
            atomic_store(&w->sent_ns[req_k], t0);
        int rc = ann_client_unary(c, ANN_METHOD_WRITE_LOG_ENTRIES, w->req, w->req_len, 60000, &resp,
                                  &st);
        uint64_t t1 = bench_now_ns();
        if (rc < 0) {
            if (!w->errors++)
                w->first_error = st;
            continue;
        }
        lat_add(&w->lat, (t1 - t0) / 1000);
        w->entries += (uint64_t)o->batch;
        w->requests++;
        if (li < (uint64_t)o->tails)
            atomic_fetch_add(&w->tailed_ok, 1);
    }
out:
    ann_buf_release(&resp);
    ann_client_free(c);
    return NULL;
}

/* Write-to-tail in the ingest shape: the tail sees insert_ids "wNN-<seq>"; the last entry
 * of request k (seq = k * batch + batch - 1) completes it. */
typedef struct ingest_tails {
    worker *ws;
    const opts *o;
    pthread_mutex_t mu;
    lat lat;
    uint64_t requests; /* requests seen whole */
} ingest_tails;

static void ingest_tail_entry(void *ud, const Annals__Wire__V1__LogEntry *e, uint64_t now)
{
    ingest_tails *t = ud;
    char buf[32];
    unsigned wi;
    uint64_t seq;
    size_t k = e->insert_id.len < sizeof buf - 1 ? e->insert_id.len : sizeof buf - 1;
    memcpy(buf, e->insert_id.data, k);
    buf[k] = '\0';
    if (sscanf(buf, "w%u-%" SCNu64, &wi, &seq) != 2 || (int)wi >= t->o->threads ||
        seq % (uint64_t)t->o->batch != (uint64_t)t->o->batch - 1)
        return;
    worker *w = &t->ws[wi];
    uint64_t req_k = seq / (uint64_t)t->o->batch, sent;
    if (req_k >= w->max_sent || !(sent = atomic_load(&w->sent_ns[req_k])))
        return;
    pthread_mutex_lock(&t->mu);
    lat_add(&t->lat, (now - sent) / 1000);
    t->requests++;
    pthread_mutex_unlock(&t->mu);
}

static int run_ingest(const opts *o)
{
    ann_client *c = connect_client(o, 0);
    char **logs = calloc((size_t)o->logs, sizeof *logs);
    worker *ws = calloc((size_t)o->threads, sizeof *ws);
    pthread_t *th = calloc((size_t)o->threads, sizeof *th);
    _Atomic uint64_t budget = o->total;
    lat all = {0};
    uint64_t entries = 0, requests = 0, errors = 0;

    int ntails = o->tails < o->logs ? o->tails : o->logs;
    follower *fs = calloc((size_t)ntails + 1, sizeof *fs);
    pthread_t *fth = calloc((size_t)ntails + 1, sizeof *fth);
    _Atomic int tails_stop = 0;
    ingest_tails it = {.ws = ws, .o = o, .mu = PTHREAD_MUTEX_INITIALIZER};

    for (int i = 0; i < o->logs; i++)
        logs[i] = create_log(c, "ingest");
    for (int i = 0; i < o->threads; i++) {
        ws[i].o = o;
        ws[i].idx = i;
        ws[i].logs = logs;
        ws[i].budget = o->total ? &budget : NULL;
        if (ntails) {
            ws[i].max_sent = MAX_TIMED_REQUESTS;
            ws[i].sent_ns = calloc(MAX_TIMED_REQUESTS, sizeof *ws[i].sent_ns);
        }
        worker_build(&ws[i]);
    }
    /* The DURABLE shape: the sequencer and projector of a throwaway namespace sit out the
     * timed phase (bench/distributed/run.sh kills them afterwards). */
    for (const char *p = o->stop_pids; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
        if (atoi(p) > 0)
            kill(atoi(p), SIGSTOP);
    for (int i = 0; i < ntails; i++) {
        fs[i] = (follower){
            .o = o, .log = logs[i], .stop = &tails_stop, .on_entry = ingest_tail_entry, .ud = &it};
        follow_start(&fs[i], &fth[i]);
    }
    proc_sample before = proc_read(o->server_pid);
    double cpu0 = self_cpu_s();
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < o->threads; i++) {
        ws[i].deadline_ns = o->total ? 0 : t0 + (uint64_t)(o->duration * 1e9);
        pthread_create(&th[i], NULL, worker_run, &ws[i]);
    }
    for (int i = 0; i < o->threads; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    proc_sample after = proc_read(o->server_pid);
    double client_cpu = self_cpu_s() - cpu0;
    uint64_t tail_want = 0;
    for (int i = 0; i < o->threads; i++)
        tail_want += atomic_load(&ws[i].tailed_ok);
    for (int i = 0; i < 100 && ntails; i++) { /* up to 10 s for the last entries */
        pthread_mutex_lock(&it.mu);
        uint64_t got = it.requests;
        pthread_mutex_unlock(&it.mu);
        if (got >= tail_want)
            break;
        usleep(100000);
    }
    atomic_store(&tails_stop, 1);
    for (int i = 0; i < ntails; i++)
        pthread_join(fth[i], NULL);
    double tp50 = lat_pct_ms(&it.lat, 0.50), tp99 = lat_pct_ms(&it.lat, 0.99);
    double tmax = it.lat.n ? (double)it.lat.v[it.lat.n - 1] / 1000.0 : NAN;

    for (int i = 0; i < o->threads; i++) {
        entries += ws[i].entries;
        requests += ws[i].requests;
        errors += ws[i].errors;
        lat_merge(&all, &ws[i].lat);
        if (ws[i].errors)
            fprintf(stderr, "annals-load: worker %d: %" PRIu64 " failed requests, first: %s: %s\n",
                    i, ws[i].errors, ann_rpc_code_name(ws[i].first_error.code),
                    ws[i].first_error.msg);
    }
    double eps = (double)entries / secs;
    double mbps = eps * o->entry_size / 1e6;
    double wire = (double)requests * (double)ws[0].req_len / secs / 1e6;
    double p50 = lat_pct_ms(&all, 0.50), p99 = lat_pct_ms(&all, 0.99);
    printf("mode                        ingest\n");
    printf("wait                        %s\n", o->wait_name);
    if (o->entry_rate > 0)
        printf("entry_rate_target           %.0f\n", o->entry_rate);
    printf("threads                     %d\n", o->threads);
    printf("batch                       %d\n", o->batch);
    printf("entry_size_bytes            %d\n", o->entry_size);
    printf("logs                        %d\n", o->logs);
    printf("seconds                     %.2f\n", secs);
    printf("entries                     %" PRIu64 "\n", entries);
    printf("requests                    %" PRIu64 "\n", requests);
    printf("failed_requests             %" PRIu64 "\n", errors);
    printf("entries_per_s               %.0f\n", eps);
    printf("payload_mb_per_s            %.1f\n", mbps);
    printf("request_mb_per_s            %.1f\n", wire);
    printf("write_latency_p50_ms        %.2f\n", p50);
    printf("write_latency_p99_ms        %.2f\n", p99);
    printf("client_cpu_s                %.2f\n", client_cpu);
    if (ntails) {
        printf("tails                       %d (the first logs, from their start)\n", ntails);
        printf("tailed_requests             %" PRIu64 " of %" PRIu64 "\n", it.requests, tail_want);
        printf("write_to_tail_p50_ms        %.2f\n", tp50);
        printf("write_to_tail_p99_ms        %.2f\n", tp99);
        printf("write_to_tail_max_ms        %.2f\n", tmax);
    }
    print_server(o, before, after, entries);
    printf("RESULT mode=ingest wait=%s threads=%d batch=%d entry_size=%d logs=%d entries=%" PRIu64
           " failed=%" PRIu64 " entries_per_s=%.0f payload_mb_per_s=%.1f p50_ms=%.2f p99_ms=%.2f"
           " tailed=%" PRIu64 " tail_want=%" PRIu64 " tail_p50_ms=%.2f tail_p99_ms=%.2f"
           " server_cpu_s_per_M=%.2f server_peak_rss_mib=%.1f\n",
           o->wait_name, o->threads, o->batch, o->entry_size, o->logs, entries, errors, eps, mbps,
           p50, p99, it.requests, tail_want, tp50, tp99,
           before.ok && after.ok && entries ? (after.cpu_s - before.cpu_s) / ((double)entries / 1e6)
                                            : NAN,
           after.ok ? after.hwm_kib / 1024.0 : NAN);

    for (int i = 0; i < o->threads; i++) {
        free(ws[i].req);
        free(ws[i].id_off);
        free(ws[i].lat.v);
        free((void *)ws[i].sent_ns);
    }
    for (int i = 0; i < o->logs; i++)
        free(logs[i]);
    free(all.v);
    free(it.lat.v);
    free(fs);
    free(fth);
    free(th);
    free(ws);
    free(logs);
    ann_client_free(c);
    return errors || it.requests < tail_want ? 1 : 0;
}

/* ---- query -------------------------------------------------------------- */

/* The query log: entry i (0-based) has time t0 + i * INTERVAL. */
#define QUERY_INTERVAL_NS 1000000LL /* 1 ms: 10 million entries span 2.8 hours */

/* Writers of the query log take the next 1,000 entry indexes from a shared
 * counter, so ids and times grow together (as in a real log with a few
 * writers) apart from the few batches in flight at once. */
typedef struct filler {
    const opts *o;
    const char *log;
    _Atomic uint64_t *next; /* next entry index to hand out */
    uint64_t n;             /* entries in all */
    int64_t t0_sec;
    uint64_t errors;
} filler;

static void *filler_run(void *arg)
{
    filler *f = arg;
    const opts *o = f->o;
    ann_client *c = connect_client(o, 1);
    int batch = 1000;
    Annals__Wire__V1__WriteLogEntriesRequest req =
        ANNALS__WIRE__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    Annals__Wire__V1__LogEntry *entries = calloc((size_t)batch, sizeof *entries);
    Annals__Wire__V1__LogEntry **ptrs = calloc((size_t)batch, sizeof *ptrs);
    Annals__Wire__V1__Timestamp *times = calloc((size_t)batch, sizeof *times);
    char *ids = calloc((size_t)batch, 32);
    char *text = malloc((size_t)o->entry_size);
    uint64_t rng = 12345 + (uint64_t)(uintptr_t)f;
    ann_buf packed = ANN_BUF_INIT, resp = ANN_BUF_INIT;
    ann_rpc_status st;

    fill_text(text, (size_t)o->entry_size, &rng);
    req.log_id.data = (uint8_t *)f->log;
    req.log_id.len = UUID_LEN;
    req.entries = ptrs;
    for (;;) {
        uint64_t i = atomic_fetch_add(f->next, (uint64_t)batch);
        if (i >= f->n)
            break;
        uint64_t to = i + (uint64_t)batch < f->n ? i + (uint64_t)batch : f->n;
        if (i / 1000000 != to / 1000000 && to < f->n)
            fprintf(stderr, "annals-load: query log: %" PRIu64 " entries\n", to);
        size_t n = 0;
        for (; i < to; n++, i++) {
            Annals__Wire__V1__LogEntry *e = &entries[n];
            annals__wire__v1__log_entry__init(e);
            annals__wire__v1__timestamp__init(&times[n]);
            int64_t ns = (int64_t)i * QUERY_INTERVAL_NS;
            times[n].seconds = f->t0_sec + ns / 1000000000;
            times[n].nanos = (int32_t)(ns % 1000000000);
            snprintf(ids + 32 * n, 32, "q-%" PRIu64, i);
            e->insert_id.data = (uint8_t *)(ids + 32 * n);
            e->insert_id.len = strlen(ids + 32 * n);
            e->time = &times[n];
            e->severity = 300;
            e->payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
            e->text_payload.data = (uint8_t *)text;
            e->text_payload.len = (size_t)o->entry_size;
            ptrs[n] = e;
        }
        req.n_entries = n;
        packed.len = 0;
        ann_buf_reserve(&packed,
                        annals__wire__v1__write_log_entries_request__get_packed_size(&req));
        packed.len = annals__wire__v1__write_log_entries_request__pack(&req, packed.data);
        for (int attempt = 0;; attempt++) {
            if (ann_client_unary(c, ANN_METHOD_WRITE_LOG_ENTRIES, packed.data, packed.len, 60000,
                                 &resp, &st) == 0)
                break;
            if (attempt == 5)
                die("WriteLogEntries (query setup)", &st);
            f->errors++;
            usleep(200000);
        }
    }
    ann_buf_release(&packed);
    ann_buf_release(&resp);
    free(text);
    free(ids);
    free(times);
    free(ptrs);
    free(entries);
    ann_client_free(c);
    return NULL;
}

static int list_page(ann_client *c, const char *log, int64_t start_ns, int64_t end_ns,
                     const char *token, int page_size, size_t *n_entries, char **next, uint64_t *us)
{
    Annals__V1__ListLogEntriesRequest req = ANNALS__V1__LIST_LOG_ENTRIES_REQUEST__INIT;
    Google__Protobuf__Timestamp s = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Google__Protobuf__Timestamp e = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Annals__Wire__V1__ListLogEntriesResponse *resp;
    ann_rpc_status st;
    req.log_id = (char *)log;
    if (start_ns) {
        s.seconds = start_ns / 1000000000;
        s.nanos = (int32_t)(start_ns % 1000000000);
        req.start_time = &s;
    }
    if (end_ns) {
        e.seconds = end_ns / 1000000000;
        e.nanos = (int32_t)(end_ns % 1000000000);
        req.end_time = &e;
    }
    req.page_size = page_size;
    if (token)
        req.page_token = (char *)token;
    uint64_t t0 = bench_now_ns();
    int rc = ann_rpc_list_log_entries(c, &req, 30000, &resp, &st);
    *us = (bench_now_ns() - t0) / 1000;
    if (rc < 0) {
        fprintf(stderr, "annals-load: ListLogEntries: %s: %s\n", ann_rpc_code_name(st.code),
                st.msg);
        return -1;
    }
    *n_entries = resp->n_entries;
    if (next)
        *next = resp->next_page_token.len
                    ? strndup((const char *)resp->next_page_token.data, resp->next_page_token.len)
                    : NULL;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return 0;
}

static int run_query(const opts *o)
{
    ann_client *c = connect_client(o, 0);
    char *log = create_log(c, "query");
    uint64_t n = o->log_entries;
    int64_t now_s;
    int32_t now_nsec;
    realtime(&now_s, &now_nsec);
    /* Entries end about now. */
    int64_t t0_sec = now_s - (int64_t)(n * (uint64_t)QUERY_INTERVAL_NS / 1000000000u) - 1;
    int64_t t0_ns = t0_sec * 1000000000LL;
    int64_t span_ns = (int64_t)n * QUERY_INTERVAL_NS;
    filler *fs = calloc((size_t)o->threads, sizeof *fs);
    pthread_t *th = calloc((size_t)o->threads, sizeof *th);
    lat window = {0}, deep = {0};
    uint64_t errors = 0, short_pages = 0, rng = 777;

    proc_sample p0 = proc_read(o->server_pid);
    uint64_t s0 = bench_now_ns();
    _Atomic uint64_t next = 0;
    for (int i = 0; i < o->threads; i++) {
        fs[i] = (filler){.o = o, .log = log, .t0_sec = t0_sec, .next = &next, .n = n};
        pthread_create(&th[i], NULL, filler_run, &fs[i]);
    }
    for (int i = 0; i < o->threads; i++)
        pthread_join(th[i], NULL);
    double setup_s = (double)(bench_now_ns() - s0) / 1e9;
    proc_sample p1 = proc_read(o->server_pid);

    sleep(1); /* let the server finish the setup's group commits */
    proc_sample q0 = proc_read(o->server_pid);
    const int64_t hour = 3600LL * 1000000000LL;
    for (int q = 0; q < o->queries; q++) {
        size_t got;
        uint64_t us;
        char *next = NULL;
        /* The first page of a random one-hour window. */
        int64_t room = span_ns > hour ? span_ns - hour : 0;
        int64_t start = t0_ns + (room ? (int64_t)(rng_next(&rng) % (uint64_t)room) : 0);
        if (list_page(c, log, start, start + hour, NULL, o->page_size, &got, NULL, &us) < 0) {
            errors++;
            continue;
        }
        lat_add(&window, us);
        if (got < (size_t)o->page_size && n >= (uint64_t)o->page_size * 4)
            short_pages++;
        /* A page deep in the log: where a time in its second half lands, then
         * the page after it through its token. */
        int64_t deep_start =
            t0_ns + span_ns / 2 +
            (int64_t)(rng_next(&rng) % (uint64_t)(span_ns / 2 - span_ns / 100 + 1));
        if (list_page(c, log, deep_start, 0, NULL, o->page_size, &got, &next, &us) < 0 || !next) {
            errors++;
            free(next);
            continue;
        }
        if (list_page(c, log, deep_start, 0, next, o->page_size, &got, NULL, &us) < 0)
            errors++;
        else
            lat_add(&deep, us);
        free(next);
    }
    proc_sample q1 = proc_read(o->server_pid);

    double wp50 = lat_pct_ms(&window, 0.5), wp99 = lat_pct_ms(&window, 0.99);
    double dp50 = lat_pct_ms(&deep, 0.5), dp99 = lat_pct_ms(&deep, 0.99);
    printf("mode                        query\n");
    printf("log_entries                 %" PRIu64 "\n", n);
    printf("setup_seconds               %.2f\n", setup_s);
    printf("setup_entries_per_s         %.0f  (%d threads into one log, batches of 1000)\n",
           (double)n / setup_s, o->threads);
    if (p0.ok && p1.ok && n)
        printf("setup_server_cpu_s_per_M    %.2f\n", (p1.cpu_s - p0.cpu_s) / ((double)n / 1e6));
    printf("queries                     %d (each: one window page + one deep page)\n", o->queries);
    printf("page_size                   %d\n", o->page_size);
    printf("failed_queries              %" PRIu64 "\n", errors);
    printf("short_window_pages          %" PRIu64 "\n", short_pages);
    printf("window_first_page_p50_ms    %.2f\n", wp50);
    printf("window_first_page_p99_ms    %.2f\n", wp99);
    printf("deep_page_p50_ms            %.2f\n", dp50);
    printf("deep_page_p99_ms            %.2f\n", dp99);
    if (q0.ok && q1.ok)
        printf("server_cpu_s_queries        %.2f\n", q1.cpu_s - q0.cpu_s);
    if (q1.ok)
        printf("server_peak_rss_mib         %.1f\n", q1.hwm_kib / 1024.0);
    printf("RESULT mode=query log_entries=%" PRIu64 " queries=%d failed=%" PRIu64
           " window_p50_ms=%.2f window_p99_ms=%.2f deep_p50_ms=%.2f deep_p99_ms=%.2f"
           " setup_entries_per_s=%.0f server_peak_rss_mib=%.1f\n",
           n, o->queries, errors, wp50, wp99, dp50, dp99, (double)n / setup_s,
           q1.ok ? q1.hwm_kib / 1024.0 : NAN);
    free(window.v);
    free(deep.v);
    free(th);
    free(fs);
    free(log);
    ann_client_free(c);
    return errors ? 1 : 0;
}

/* ---- write-to-tail ------------------------------------------------------ */

typedef struct tail_state {
    _Atomic uint64_t *sent_ns; /* send time of entry seq (0: not yet) */
    uint64_t max_seq;
    lat lat;
    uint64_t received, unknown;
} tail_state;

static void tail_entry(void *ud, const Annals__Wire__V1__LogEntry *e, uint64_t now)
{
    tail_state *t = ud;
    ProtobufCBinaryData p = e->text_payload;
    char buf[32];
    uint64_t seq;
    size_t k = p.len < sizeof buf - 1 ? p.len : sizeof buf - 1;
    memcpy(buf, p.data, k);
    buf[k] = '\0';
    if (sscanf(buf, "seq=%" SCNu64, &seq) == 1 && seq < t->max_seq &&
        atomic_load(&t->sent_ns[seq])) {
        lat_add(&t->lat, (now - atomic_load(&t->sent_ns[seq])) / 1000);
        t->received++;
    } else {
        t->unknown++;
    }
}

static int run_tail(const opts *o)
{
    ann_client *c = connect_client(o, 0);
    char *log = create_log(c, "tail");
    tail_state t = {0};
    _Atomic int stop = 0;
    follower f = {.o = o, .log = log, .stop = &stop, .on_entry = tail_entry, .ud = &t};
    uint64_t max = (uint64_t)(o->duration * o->rate) + 16;
    pthread_t th;
    lat wlat = {0};
    uint64_t sent = 0, errors = 0;
    char *text = malloc((size_t)o->entry_size + 32);

    t.sent_ns = calloc(max, sizeof *t.sent_ns);
    t.max_seq = max;
    follow_start(&f, &th);
    usleep(200000); /* let the stream settle */

    Annals__Wire__V1__WriteLogEntriesRequest req =
        ANNALS__WIRE__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    Annals__Wire__V1__LogEntry e = ANNALS__WIRE__V1__LOG_ENTRY__INIT, *ep = &e;
    ann_buf pack = ANN_BUF_INIT, resp = ANN_BUF_INIT;
    ann_rpc_status st;
    uint64_t rng = 99;
    req.log_id.data = (uint8_t *)log;
    req.log_id.len = UUID_LEN;
    req.n_entries = 1;
    req.entries = &ep;
    req.wait = o->wait;
    e.payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    e.severity = 300;
    proc_sample p0 = proc_read(o->server_pid);
    uint64_t start = bench_now_ns(), period = (uint64_t)(1e9 / o->rate);
    for (uint64_t seq = 0; seq < max - 16; seq++) {
        uint64_t due = start + seq * period;
        uint64_t now = bench_now_ns();
        if (due > now)
            usleep((useconds_t)((due - now) / 1000));
        int len = snprintf(text, 32, "seq=%" PRIu64 " ", seq);
        size_t total = (size_t)o->entry_size > (size_t)len ? (size_t)o->entry_size : (size_t)len;
        fill_text(text + len, total - (size_t)len, &rng);
        e.text_payload.data = (uint8_t *)text;
        e.text_payload.len = total;
        pack.len = 0;
        ann_buf_reserve(&pack, annals__wire__v1__write_log_entries_request__get_packed_size(&req));
        size_t plen = annals__wire__v1__write_log_entries_request__pack(&req, pack.data);
        uint64_t t0 = bench_now_ns();
        atomic_store(&t.sent_ns[seq], t0);
        if (ann_client_unary(c, ANN_METHOD_WRITE_LOG_ENTRIES, pack.data, plen, 30000, &resp, &st) <
            0) {
            if (!errors++)
                fprintf(stderr, "annals-load: write: %s: %s\n", ann_rpc_code_name(st.code), st.msg);
            continue;
        }
        lat_add(&wlat, (bench_now_ns() - t0) / 1000);
        sent++;
    }
    /* Give the tail a moment to deliver the last entries. */
    for (int i = 0; i < 50 && t.received + t.unknown < sent; i++)
        usleep(100000);
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    proc_sample p1 = proc_read(o->server_pid);

    double p50 = lat_pct_ms(&t.lat, 0.5), p99 = lat_pct_ms(&t.lat, 0.99);
    double mx = t.lat.n ? (double)t.lat.v[t.lat.n - 1] / 1000.0 : NAN;
    double wp50 = lat_pct_ms(&wlat, 0.5), wp99 = lat_pct_ms(&wlat, 0.99);
    printf("mode                        tail\n");
    printf("rate_per_s                  %d\n", o->rate);
    printf("entries_written             %" PRIu64 "\n", sent);
    printf("entries_tailed              %" PRIu64 "\n", t.received);
    printf("failed_writes               %" PRIu64 "\n", errors);
    printf("write_latency_p50_ms        %.2f\n", wp50);
    printf("write_latency_p99_ms        %.2f\n", wp99);
    printf("write_to_tail_p50_ms        %.2f\n", p50);
    printf("write_to_tail_p99_ms        %.2f\n", p99);
    printf("write_to_tail_max_ms        %.2f\n", mx);
    print_server(o, p0, p1, sent);
    printf("RESULT mode=tail rate=%d written=%" PRIu64 " tailed=%" PRIu64
           " p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
           o->rate, sent, t.received, p50, p99, mx);
    int rc = errors || t.received != sent ? 1 : 0;
    ann_buf_release(&pack);
    ann_buf_release(&resp);
    free(t.lat.v);
    free(wlat.v);
    free((void *)t.sent_ns);
    free(text);
    free(log);
    ann_client_free(c);
    return rc;
}

/* ---- main --------------------------------------------------------------- */

static const char usage[] =
    "usage: annals-load ingest|query|tail [options]\n"
    "  --addr HOST:PORT   (ANNALS_ADDR, default 127.0.0.1:50051)\n"
    "  --token KEY        (ANNALS_TOKEN)\n"
    "  --server-pid PID   read the server's CPU time and peak RSS from /proc\n"
    "  --wait durable|sequenced|queryable|server   WriteLogEntriesRequest.wait (server)\n"
    "  ingest: --threads N (4) --batch N (1000) --entry-size B (200) --logs N (100)\n"
    "          --duration S (20) | --total N\n"
    "          --entry-rate N  entries/s over all threads (0: as fast as possible)\n"
    "          --tails N       follow the first N logs: write-to-tail per request (0)\n"
    "          --stop-pids P,P SIGSTOP these processes once the logs exist\n"
    "          --server-ids 1  send no insert_ids: the API server makes them (no --tails)\n"
    "  query:  --log-entries N (1000000) --queries N (1000) --page-size N (100)\n"
    "          --threads N (setup writers) --entry-size B\n"
    "  tail:   --rate N writes/s (200) --duration S (20) --entry-size B\n";

int main(int argc, char **argv)
{
    opts o = {.threads = 4,
              .batch = 1000,
              .entry_size = 200,
              .logs = 100,
              .duration = 20,
              .log_entries = 1000000,
              .queries = 1000,
              .page_size = 100,
              .rate = 200,
              .wait_name = "server"};
    const bench_opt table[] = {
        {"addr", BOPT_STR, &o.addr},
        {"token", BOPT_STR, &o.token},
        {"threads", BOPT_INT, &o.threads},
        {"batch", BOPT_INT, &o.batch},
        {"entry-size", BOPT_INT, &o.entry_size},
        {"logs", BOPT_INT, &o.logs},
        {"duration", BOPT_DBL, &o.duration},
        {"total", BOPT_U64, &o.total},
        {"server-pid", BOPT_INT, &o.server_pid},
        {"log-entries", BOPT_U64, &o.log_entries},
        {"queries", BOPT_INT, &o.queries},
        {"page-size", BOPT_INT, &o.page_size},
        {"rate", BOPT_INT, &o.rate},
        {"wait", BOPT_STR, &o.wait_name},
        {"entry-rate", BOPT_DBL, &o.entry_rate},
        {"tails", BOPT_INT, &o.tails},
        {"stop-pids", BOPT_STR, &o.stop_pids},
        {"server-ids", BOPT_INT, &o.server_ids},
        {NULL, 0, NULL},
    };
    static const char *const waits[] = {"server", "durable", "sequenced", "queryable"};

    if (argc < 2 || argv[1][0] == '-') {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    o.mode = argv[1];
    o.addr = getenv("ANNALS_ADDR");
    o.token = getenv("ANNALS_TOKEN");
    bench_args(argc, argv, 2, table, usage);
    o.wait = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(o.wait_name, waits[i]))
            o.wait = i;
    if (!o.addr || !*o.addr)
        o.addr = "127.0.0.1:50051";
    if (o.threads < 1 || o.threads > 100 || o.batch < 1 || o.batch > 10000 || o.entry_size < 1 ||
        o.entry_size > 200000 || o.logs < 1 || o.duration <= 0 || o.rate < 1 || o.queries < 1 ||
        o.page_size < 1 || o.page_size > 1000 || o.log_entries < 1000 || o.wait < 0 ||
        o.entry_rate < 0 || o.tails < 0) {
        fprintf(stderr, "annals-load: an option is out of range\n");
        fputs(usage, stderr);
        return 2;
    }
    if (o.server_pid && !proc_read(o.server_pid).ok)
        fprintf(stderr, "annals-load: cannot read /proc/%d; server figures omitted\n",
                o.server_pid);
    if (!strcmp(o.mode, "ingest"))
        return run_ingest(&o);
    if (!strcmp(o.mode, "query"))
        return run_query(&o);
    if (!strcmp(o.mode, "tail"))
        return run_tail(&o);
    fputs(usage, stderr);
    return 2;
}
