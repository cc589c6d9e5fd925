/*
 * annals-inv: the investigator benchmarks (docs/bench.md, "Investigator queries"; driven
 * by bench/investigator/run.sh). Figures are printed, never asserted.
 *
 *   annals-inv tokens                      the planted tokens and the common word
 *   annals-inv gen      ARCHIVE [--format jsonl|text|stats]
 *   annals-inv load     ARCHIVE [--threads N] [--batch N] [--server-pid PID]
 *   annals-inv deep     --entries N [--seed S] [--base-time T] [--threads N] [--server-pid PID]
 *   annals-inv mklogs   --count N [--jobs N] [--threads N]
 *   annals-inv search   --query Q [--ignore-case] [--first-page] [--page-size N] [--reps N]
 *                       [--expect N]
 *   annals-inv read     --log ID --entries N [--page-size N] [--reps N]
 *   annals-inv listlogs [--jobs N] [--page-size N] [--reps N]
 *   annals-inv touch    [--data-dir DIR [--batch-logs N] [--stable-s S]]
 *                       read the first entry of every log once, N logs at a time, waiting
 *                       after each batch until DIR's size has been stable for S seconds
 *   annals-inv vl-load  ARCHIVE --url 127.0.0.1:PORT [--threads N]
 *   annals-inv vl-query --url 127.0.0.1:PORT --query LOGSQL [--limit N] [--reps N] [--expect N]
 *   annals-inv vl-count --url 127.0.0.1:PORT
 *
 * ARCHIVE: --seed S (1) --base-time UNIX_S (required but for tokens) --logs N (1000)
 * --entries N (10000000) --span-hours H (36). The annals server is ANNALS_ADDR with the
 * key in ANNALS_TOKEN. Every mode prints "name value" lines and one "RESULT k=v ..." line.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ftw.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "benchkit.h"
#include "client/rpc.h"
#include "gen.h"
#include "http.h"

#define UUID_LEN 36
#define TIMEOUT_MS 120000

typedef struct opts {
    const char *mode, *addr, *token, *format, *query, *log, *url;
    inv_spec spec;
    int have_base;
    int threads, batch, reps, min_reps, page_size, jobs, ignore_case, first_page, server_pid;
    double max_seconds;
    int64_t start_s, end_s; /* search window, unix seconds; 0: unbounded */
    const char *data_dir;   /* touch: the server's data directory, to wait for sealing */
    int batch_logs;
    double stable_s;
    long long expect, limit;
    uint64_t count;
} opts;

/* ---- utilities ----------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const ann_rpc_status *st)
{
    fprintf(stderr, "annals-inv: %s: %s: %s\n", what, ann_rpc_code_name(st->code), st->msg);
    exit(1);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list va;
    va_start(va, fmt);
    fputs("annals-inv: ", stderr);
    vfprintf(stderr, fmt, va);
    fputc('\n', stderr);
    va_end(va);
    exit(1);
}

static ann_client *connect_client(const opts *o)
{
    ann_client *c;
    ann_rpc_status st;
    ann_client_opts co = {.addr = o->addr, .token = o->token, .own_connection = 1};
    if (ann_client_new(&co, &c, &st) < 0)
        die("connect", &st);
    return c;
}

typedef struct kv {
    const char *k, *v;
} kv;

/* Creates a log with labels; returns its id (heap). */
static char *create_log(ann_client *c, const kv *labels, size_t n)
{
    Annals__V1__CreateLogRequest req = ANNALS__V1__CREATE_LOG_REQUEST__INIT;
    Annals__V1__CreateLogRequest__LabelsEntry e[8], *ep[8];
    Annals__Wire__V1__CreateLogResponse *resp = NULL;
    ann_rpc_status st;
    for (size_t i = 0; i < n && i < 8; i++) {
        annals__v1__create_log_request__labels_entry__init(&e[i]);
        e[i].key = (char *)labels[i].k;
        e[i].value = (char *)labels[i].v;
        ep[i] = &e[i];
    }
    req.n_labels = n;
    req.labels = ep;
    for (int attempt = 0;; attempt++) {
        if (ann_rpc_create_log(c, &req, TIMEOUT_MS, &resp, &st) == 0)
            break;
        if (attempt == 5)
            die("CreateLog", &st);
        usleep(200000);
    }
    if (!resp->log || resp->log->id.len != UUID_LEN)
        fail("CreateLog returned no usable id");
    char *id = strndup((const char *)resp->log->id.data, UUID_LEN);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return id;
}

static void open_archive(const opts *o, inv_archive *a)
{
    if (!o->have_base)
        fail("--base-time is required (the same value for every mode of one run)");
    if (inv_archive_open(a, &o->spec) != 0)
        fail("archive spec out of range (entries >= logs, entries >= %d)", INV_PLANTS_MIN);
}

/* ---- tokens, gen ------------------------------------------------------------------------- */

static int run_tokens(void)
{
    for (int t = 0; t < INV_N_TOKENS; t++)
        printf("%s %s %u\n", inv_tokens[t].name, inv_tokens[t].text, inv_tokens[t].count);
    printf("common %s 0\n", INV_COMMON_WORD);
    return 0;
}

static size_t count_sub(const char *s, const char *w, int icase)
{
    size_t n = 0;
    for (const char *p = s; (p = icase ? strcasestr(p, w) : strstr(p, w)); p++)
        n++;
    return n;
}

static void json_str(ann_buf *b, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    ann_buf_add_byte(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            ann_buf_add_byte(b, '\\');
            ann_buf_add_byte(b, ch);
        } else if (ch == '\t') {
            ann_buf_add(b, "\\t", 2);
        } else if (ch < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hexd[ch >> 4], hexd[ch & 15]};
            ann_buf_add(b, e, 6);
        } else {
            ann_buf_add_byte(b, ch);
        }
    }
    ann_buf_add_byte(b, '"');
}

/* One VictoriaLogs JSON line: _time, _msg and the log's labels (its stream fields). */
static void json_line(ann_buf *b, const inv_log *l, const char *text, size_t n, int64_t t_ns)
{
    char ts[64];
    time_t s = (time_t)(t_ns / 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    int k = (int)strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, sizeof ts - (size_t)k, ".%09dZ", (int)(t_ns % 1000000000));
    ann_buf_add(b, "{\"_time\":\"", 10);
    ann_buf_add(b, ts, strlen(ts));
    ann_buf_add(b, "\",\"_msg\":", 9);
    json_str(b, text, n);
    const char *f[4][2] = {
        {"job", l->job}, {"env", l->env}, {"branch", l->branch}, {"run", l->run}};
    for (int i = 0; i < 4; i++) {
        ann_buf_add_byte(b, ',');
        json_str(b, f[i][0], strlen(f[i][0]));
        ann_buf_add_byte(b, ':');
        json_str(b, f[i][1], strlen(f[i][1]));
    }
    ann_buf_add(b, "}\n", 2);
}

static int run_gen(const opts *o)
{
    inv_archive a;
    open_archive(o, &a);
    const char *fmt = o->format ? o->format : "stats";
    int jsonl = !strcmp(fmt, "jsonl"), text = !strcmp(fmt, "text"), stats = !strcmp(fmt, "stats");
    if (!jsonl && !text && !stats)
        fail("--format jsonl|text|stats");
    char line[INV_LINE_MAX];
    ann_buf b = ANN_BUF_INIT;
    uint64_t lines = 0, bytes = 0, common = 0, digest = 1469598103934665603ULL;
    uint64_t tok[INV_N_TOKENS] = {0}, tok_i[INV_N_TOKENS] = {0};
    uint64_t *len_hist = calloc(INV_LINE_MAX + 1, sizeof *len_hist);
    int64_t tmin = INT64_MAX, tmax = INT64_MIN;
    uint64_t back = 0; /* times that went backwards within a log */
    for (uint32_t i = 0; i < a.spec.logs; i++) {
        inv_gen g;
        int64_t t, prev = INT64_MIN;
        inv_gen_open(&g, &a, i);
        for (uint64_t j = 0; j < a.logs[i].n; j++) {
            size_t n = inv_gen_next(&g, line, &t);
            if (jsonl) {
                b.len = 0;
                json_line(&b, &a.logs[i], line, n, t);
                fwrite(b.data, 1, b.len, stdout);
            } else if (text) {
                printf("%s\t%" PRIu64 "\t%" PRId64 "\t%s\n", a.logs[i].source, j + 1, t, line);
            } else {
                lines++;
                bytes += n;
                len_hist[n]++;
                common += strstr(line, INV_COMMON_WORD) != NULL;
                for (int k = 0; k < INV_N_TOKENS; k++) {
                    tok[k] += count_sub(line, inv_tokens[k].text, 0);
                    tok_i[k] += count_sub(line, inv_tokens[k].text, 1);
                }
                for (size_t k = 0; k < n; k++)
                    digest = (digest ^ (uint8_t)line[k]) * 1099511628211ULL;
                digest = (digest ^ (uint64_t)t) * 1099511628211ULL;
                back += t < prev;
                prev = t;
                tmin = t < tmin ? t : tmin;
                tmax = t > tmax ? t : tmax;
            }
        }
    }
    if (stats) {
        uint64_t acc = 0, p50 = 0, p99 = 0, mx = 0;
        for (size_t n = 0; n <= INV_LINE_MAX; n++) {
            acc += len_hist[n];
            if (!p50 && acc * 2 >= lines)
                p50 = n;
            if (!p99 && acc * 100 >= lines * 99)
                p99 = n;
            if (len_hist[n])
                mx = n;
        }
        uint64_t smin = UINT64_MAX, smax = 0;
        for (uint32_t i = 0; i < a.spec.logs; i++) {
            smin = a.logs[i].n < smin ? a.logs[i].n : smin;
            smax = a.logs[i].n > smax ? a.logs[i].n : smax;
        }
        printf("logs                    %u (entries per log: min %" PRIu64 ", max %" PRIu64 ")\n",
               a.spec.logs, smin, smax);
        printf("entries                 %" PRIu64 "\n", lines);
        printf("text_bytes              %" PRIu64 "\n", bytes);
        printf("entry_bytes_mean        %.1f\n", (double)bytes / (double)lines);
        printf("entry_bytes_p50_p99_max %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", p50, p99, mx);
        printf("time_span_hours         %.2f\n", (double)(tmax - tmin) / 3.6e12);
        printf("time_backwards_in_log   %" PRIu64 "\n", back);
        printf("common_word             %s in %.2f%% of entries\n", INV_COMMON_WORD,
               100.0 * (double)common / (double)lines);
        for (int k = 0; k < INV_N_TOKENS; k++)
            printf("token_%-17s %s: %" PRIu64 " (ignoring case %" PRIu64 ", planted %u)\n",
                   inv_tokens[k].name, inv_tokens[k].text, tok[k], tok_i[k], inv_tokens[k].count);
        printf("digest                  %016" PRIx64 "\n", digest);
        int ok = 1;
        for (int k = 0; k < INV_N_TOKENS; k++)
            ok &= tok[k] == inv_tokens[k].count && tok_i[k] == inv_tokens[k].count;
        ok &= back == 0 && lines == a.spec.entries;
        printf("RESULT mode=gen entries=%" PRIu64 " mean_bytes=%.1f common_pct=%.2f tokens_ok=%d "
               "digest=%016" PRIx64 "\n",
               lines, (double)bytes / (double)lines, 100.0 * (double)common / (double)lines, ok,
               digest);
        free(len_hist);
        ann_buf_release(&b);
        inv_archive_close(&a);
        return ok ? 0 : 1;
    }
    free(len_hist);
    ann_buf_release(&b);
    inv_archive_close(&a);
    return 0;
}

/* ---- writing entries ------------------------------------------------------------------- */

/* A batch of entries, packed as one WriteLogEntriesRequest. */
typedef struct batch {
    Annals__Wire__V1__LogEntry *e;
    Annals__Wire__V1__LogEntry **p;
    Annals__Wire__V1__Timestamp *ts;
    char *ids; /* 96 bytes each */
    char *text;
    size_t n, cap;
    uint64_t text_bytes;
} batch;

static void batch_init(batch *b, size_t cap)
{
    b->cap = cap;
    b->e = ann_xcalloc(cap, sizeof *b->e);
    b->p = ann_xcalloc(cap, sizeof *b->p);
    b->ts = ann_xcalloc(cap, sizeof *b->ts);
    b->ids = ann_xcalloc(cap, 96);
    b->text = ann_xmalloc(cap * INV_LINE_MAX);
    b->n = 0;
}

static void batch_free(batch *b)
{
    free(b->e);
    free(b->p);
    free(b->ts);
    free(b->ids);
    free(b->text);
}

/* Generates the next entry of g into the batch, with insert_id "<source>:<line>". */
static void batch_gen(batch *b, inv_gen *g)
{
    size_t i = b->n++;
    int64_t t;
    char *text = b->text + i * INV_LINE_MAX;
    uint64_t line = g->line + 1;
    size_t n = inv_gen_next(g, text, &t);
    Annals__Wire__V1__LogEntry *e = &b->e[i];
    annals__wire__v1__log_entry__init(e);
    annals__wire__v1__timestamp__init(&b->ts[i]);
    b->ts[i].seconds = t / 1000000000;
    b->ts[i].nanos = (int32_t)(t % 1000000000);
    int k = snprintf(b->ids + 96 * i, 96, "%s:%" PRIu64, g->log->source, line);
    e->insert_id.data = (uint8_t *)(b->ids + 96 * i);
    e->insert_id.len = (size_t)k;
    e->time = &b->ts[i];
    e->payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    e->text_payload.data = (uint8_t *)text;
    e->text_payload.len = n;
    b->p[i] = e;
    b->text_bytes += n;
}

static void batch_pack(batch *b, const char *log, ann_buf *out)
{
    Annals__Wire__V1__WriteLogEntriesRequest req =
        ANNALS__WIRE__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    req.log_id.data = (uint8_t *)log;
    req.log_id.len = UUID_LEN;
    req.n_entries = b->n;
    req.entries = b->p;
    out->len = 0;
    ann_buf_reserve(out, annals__wire__v1__write_log_entries_request__get_packed_size(&req));
    out->len = annals__wire__v1__write_log_entries_request__pack(&req, out->data);
}

/* Sends one packed write, retrying (insert_ids make that safe); 0 or -1. */
static int send_write(ann_client *c, const ann_buf *req, ann_buf *resp, lat *l, uint64_t *errors)
{
    ann_rpc_status st;
    for (int attempt = 0;; attempt++) {
        uint64_t t0 = now_ns();
        if (ann_client_unary(c, ANN_METHOD_WRITE_LOG_ENTRIES, req->data, req->len, TIMEOUT_MS, resp,
                             &st) == 0) {
            lat_add(l, (now_ns() - t0) / 1000);
            return 0;
        }
        if ((*errors)++ < 3)
            fprintf(stderr, "annals-inv: write: %s: %s (retrying)\n", ann_rpc_code_name(st.code),
                    st.msg);
        if (attempt == 5)
            return -1;
        usleep(200000);
    }
}

typedef struct loader {
    const opts *o;
    const inv_archive *a;
    char **ids;
    _Atomic uint32_t *next;
    lat lat;
    uint64_t entries, bytes, errors, requests;
    int failed;
} loader;

static void *loader_run(void *arg)
{
    loader *w = arg;
    ann_client *c = connect_client(w->o);
    batch b;
    ann_buf req = ANN_BUF_INIT, resp = ANN_BUF_INIT;
    batch_init(&b, (size_t)w->o->batch);
    for (;;) {
        uint32_t i = atomic_fetch_add(w->next, 1);
        if (i >= w->a->spec.logs)
            break;
        inv_gen g;
        inv_gen_open(&g, w->a, i);
        while (g.line < g.log->n) {
            b.n = 0;
            b.text_bytes = 0;
            while (b.n < b.cap && g.line < g.log->n)
                batch_gen(&b, &g);
            batch_pack(&b, w->ids[i], &req);
            if (send_write(c, &req, &resp, &w->lat, &w->errors) != 0) {
                w->failed = 1;
                goto out;
            }
            w->entries += b.n;
            w->bytes += b.text_bytes;
            w->requests++;
        }
    }
out:
    batch_free(&b);
    ann_buf_release(&req);
    ann_buf_release(&resp);
    ann_client_free(c);
    return NULL;
}

static void print_write_result(const char *mode, const opts *o, loader *ws, int nw, double secs,
                               double cpu0, proc_sample p0, proc_sample p1)
{
    lat all = {0};
    uint64_t entries = 0, bytes = 0, errors = 0, requests = 0;
    int failed = 0;
    for (int i = 0; i < nw; i++) {
        for (size_t k = 0; k < ws[i].lat.n; k++)
            lat_add(&all, ws[i].lat.v[k]);
        entries += ws[i].entries;
        bytes += ws[i].bytes;
        errors += ws[i].errors;
        requests += ws[i].requests;
        failed |= ws[i].failed;
    }
    double eps = (double)entries / secs, p50 = lat_pct_ms(&all, 0.5), p99 = lat_pct_ms(&all, 0.99);
    double scpu = p0.ok && p1.ok ? p1.cpu_s - p0.cpu_s : NAN;
    printf("mode                        %s\n", mode);
    printf("threads                     %d\n", o->threads);
    printf("entries                     %" PRIu64 "\n", entries);
    printf("text_bytes                  %" PRIu64 " (mean %.1f per entry)\n", bytes,
           entries ? (double)bytes / (double)entries : 0.0);
    printf("requests                    %" PRIu64 "\n", requests);
    printf("retried_requests            %" PRIu64 "\n", errors);
    printf("seconds                     %.2f\n", secs);
    printf("entries_per_s               %.0f\n", eps);
    printf("payload_mb_per_s            %.1f\n", (double)bytes / secs / 1e6);
    printf("write_latency_p50_ms        %.2f\n", p50);
    printf("write_latency_p99_ms        %.2f\n", p99);
    printf("client_cpu_s                %.2f (generating the text included)\n",
           self_cpu_s() - cpu0);
    printf("server_cpu_s_per_M          %.2f\n", scpu / ((double)entries / 1e6));
    printf("server_peak_rss_mib         %.1f\n", p1.ok ? p1.hwm_kib / 1024.0 : NAN);
    printf("RESULT mode=%s entries=%" PRIu64 " failed=%d retried=%" PRIu64
           " seconds=%.2f entries_per_s=%.0f payload_mb_per_s=%.1f p50_ms=%.2f p99_ms=%.2f"
           " server_cpu_s_per_M=%.2f server_peak_rss_mib=%.1f mean_bytes=%.1f",
           mode, entries, failed, errors, secs, eps, (double)bytes / secs / 1e6, p50, p99,
           scpu / ((double)entries / 1e6), p1.ok ? p1.hwm_kib / 1024.0 : NAN,
           entries ? (double)bytes / (double)entries : 0.0);
    free(all.v);
}

typedef struct creator {
    const opts *o;
    const inv_archive *a;
    char **ids;
    _Atomic uint32_t *next;
} creator;

/* Creates the archive's logs, with their labels, from a shared counter. */
static void *creator_run(void *arg)
{
    creator *w = arg;
    ann_client *c = connect_client(w->o);
    for (;;) {
        uint32_t i = atomic_fetch_add(w->next, 1);
        if (i >= w->a->spec.logs)
            break;
        const inv_log *l = &w->a->logs[i];
        kv labels[] = {{"job", l->job}, {"env", l->env}, {"branch", l->branch}, {"run", l->run}};
        w->ids[i] = create_log(c, labels, 4);
    }
    ann_client_free(c);
    return NULL;
}

#define CREATORS 16

static int run_load(const opts *o)
{
    inv_archive a;
    open_archive(o, &a);
    char **ids = ann_xcalloc(a.spec.logs, sizeof *ids);
    uint64_t c0 = now_ns();
    {
        _Atomic uint32_t next = 0;
        creator cs[CREATORS];
        pthread_t ct[CREATORS];
        for (int i = 0; i < CREATORS; i++) {
            cs[i] = (creator){.o = o, .a = &a, .ids = ids, .next = &next};
            pthread_create(&ct[i], NULL, creator_run, &cs[i]);
        }
        for (int i = 0; i < CREATORS; i++)
            pthread_join(ct[i], NULL);
    }
    double create_s = (double)(now_ns() - c0) / 1e9;
    fprintf(stderr, "annals-inv: %u logs created in %.2f s; writing %" PRIu64 " entries\n",
            a.spec.logs, create_s, a.spec.entries);
    _Atomic uint32_t next = 0;
    loader *ws = ann_xcalloc((size_t)o->threads, sizeof *ws);
    pthread_t *th = ann_xcalloc((size_t)o->threads, sizeof *th);
    double cpu0 = self_cpu_s();
    proc_sample p0 = proc_read(o->server_pid);
    uint64_t t0 = now_ns();
    for (int i = 0; i < o->threads; i++) {
        ws[i] = (loader){.o = o, .a = &a, .ids = ids, .next = &next};
        pthread_create(&th[i], NULL, loader_run, &ws[i]);
    }
    int failed = 0;
    for (int i = 0; i < o->threads; i++) {
        pthread_join(th[i], NULL);
        failed |= ws[i].failed;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    proc_sample p1 = proc_read(o->server_pid);
    printf("logs                        %u (created in %.2f s)\n", a.spec.logs, create_s);
    print_write_result("load", o, ws, o->threads, secs, cpu0, p0, p1);
    printf(" logs=%u\n", a.spec.logs);
    for (int i = 0; i < o->threads; i++)
        free(ws[i].lat.v);
    for (uint32_t i = 0; i < a.spec.logs; i++)
        free(ids[i]);
    free(ids);
    free(ws);
    free(th);
    inv_archive_close(&a);
    return failed ? 1 : 0;
}

/* ---- the deep log: one log, one generator, several senders ------------------------------- */

#define QUEUE_LEN 8

typedef struct deep_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ann_buf slot[QUEUE_LEN];
    uint64_t entries[QUEUE_LEN], bytes[QUEUE_LEN];
    size_t head, tail; /* produced, consumed */
    int done;
} deep_queue;

typedef struct deep_sender {
    loader w;
    deep_queue *q;
} deep_sender;

static void *deep_send_run(void *arg)
{
    deep_sender *s = arg;
    deep_queue *q = s->q;
    ann_client *c = connect_client(s->w.o);
    ann_buf req = ANN_BUF_INIT, resp = ANN_BUF_INIT;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (q->tail == q->head && !q->done)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->tail == q->head) {
            pthread_mutex_unlock(&q->mu);
            break;
        }
        size_t k = q->tail++ % QUEUE_LEN;
        ann_buf tmp = req;
        req = q->slot[k];
        q->slot[k] = tmp;
        uint64_t n = q->entries[k], bytes = q->bytes[k];
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        if (send_write(c, &req, &resp, &s->w.lat, &s->w.errors) != 0) {
            s->w.failed = 1;
            break;
        }
        s->w.entries += n;
        s->w.bytes += bytes;
        s->w.requests++;
    }
    ann_buf_release(&req);
    ann_buf_release(&resp);
    ann_client_free(c);
    return NULL;
}

static int run_deep(const opts *o)
{
    inv_spec spec = o->spec;
    spec.logs = 1;
    spec.entries = o->count ? o->count : o->spec.entries;
    spec.span_ns = 0;
    inv_archive a;
    opts o2 = *o;
    o2.spec = spec;
    open_archive(&o2, &a);
    ann_client *c = connect_client(o);
    kv labels[] = {{"job", "soak-integration-test"}, {"env", "staging"}, {"branch", "main"}};
    char *log = create_log(c, labels, 3);
    deep_queue q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int ns = o->threads > 1 ? o->threads - 1 : 1;
    deep_sender *ss = ann_xcalloc((size_t)ns, sizeof *ss);
    pthread_t *th = ann_xcalloc((size_t)ns, sizeof *th);
    double cpu0 = self_cpu_s();
    proc_sample p0 = proc_read(o->server_pid);
    uint64_t t0 = now_ns();
    for (int i = 0; i < ns; i++) {
        ss[i] = (deep_sender){.w = {.o = o, .a = &a}, .q = &q};
        pthread_create(&th[i], NULL, deep_send_run, &ss[i]);
    }
    inv_gen g;
    batch b;
    ann_buf packed = ANN_BUF_INIT;
    batch_init(&b, (size_t)o->batch);
    inv_gen_open(&g, &a, 0);
    while (g.line < g.log->n) {
        if (g.line / 1000000 != (g.line + b.cap) / 1000000 && g.line)
            fprintf(stderr, "annals-inv: deep log: %" PRIu64 " entries\n", g.line);
        b.n = 0;
        b.text_bytes = 0;
        while (b.n < b.cap && g.line < g.log->n)
            batch_gen(&b, &g);
        batch_pack(&b, log, &packed);
        pthread_mutex_lock(&q.mu);
        while (q.head - q.tail == QUEUE_LEN)
            pthread_cond_wait(&q.cv, &q.mu);
        size_t k = q.head++ % QUEUE_LEN;
        ann_buf tmp = q.slot[k];
        q.slot[k] = packed;
        packed = tmp;
        q.entries[k] = b.n;
        q.bytes[k] = b.text_bytes;
        pthread_cond_broadcast(&q.cv);
        pthread_mutex_unlock(&q.mu);
    }
    pthread_mutex_lock(&q.mu);
    q.done = 1;
    pthread_cond_broadcast(&q.cv);
    pthread_mutex_unlock(&q.mu);
    int failed = 0;
    loader *ws = ann_xcalloc((size_t)ns, sizeof *ws);
    for (int i = 0; i < ns; i++) {
        pthread_join(th[i], NULL);
        ws[i] = ss[i].w;
        failed |= ws[i].failed;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    proc_sample p1 = proc_read(o->server_pid);
    print_write_result("deep", o, ws, ns, secs, cpu0, p0, p1);
    printf(" log=%s\n", log);
    for (int i = 0; i < ns; i++)
        free(ws[i].lat.v);
    for (int i = 0; i < QUEUE_LEN; i++)
        ann_buf_release(&q.slot[i]);
    ann_buf_release(&packed);
    batch_free(&b);
    free(ws);
    free(ss);
    free(th);
    free(log);
    ann_client_free(c);
    inv_archive_close(&a);
    return failed ? 1 : 0;
}

/* ---- many logs --------------------------------------------------------------------------- */

typedef struct maker {
    const opts *o;
    _Atomic uint64_t *next;
} maker;

static void *maker_run(void *arg)
{
    maker *m = arg;
    ann_client *c = connect_client(m->o);
    static const char *const envs[] = {"ci", "staging", "prod"};
    static const char *const branches[] = {"main", "release/2026.11", "feature/PAY-1234-refunds",
                                           "feature/OPS-88-quota"};
    for (;;) {
        uint64_t i = atomic_fetch_add(m->next, 1);
        if (i >= m->o->count)
            break;
        char job[32], run[24];
        snprintf(job, sizeof job, "job-%03" PRIu64, i % (uint64_t)m->o->jobs);
        snprintf(run, sizeof run, "%" PRIu64, 500000 + i);
        kv labels[] = {{"job", job},
                       {"env", envs[(i / 7) % 3]},
                       {"branch", branches[(i / 13) % 4]},
                       {"run", run}};
        free(create_log(c, labels, 4));
        if ((i + 1) % 20000 == 0)
            fprintf(stderr, "annals-inv: %" PRIu64 " logs\n", i + 1);
    }
    ann_client_free(c);
    return NULL;
}

static int run_mklogs(const opts *o)
{
    _Atomic uint64_t next = 0;
    maker *ms = ann_xcalloc((size_t)o->threads, sizeof *ms);
    pthread_t *th = ann_xcalloc((size_t)o->threads, sizeof *th);
    uint64_t t0 = now_ns();
    for (int i = 0; i < o->threads; i++) {
        ms[i] = (maker){.o = o, .next = &next};
        pthread_create(&th[i], NULL, maker_run, &ms[i]);
    }
    for (int i = 0; i < o->threads; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("mode                        mklogs\n");
    printf("logs                        %" PRIu64 " (%d distinct job values)\n", o->count, o->jobs);
    printf("seconds                     %.2f\n", secs);
    printf("logs_per_s                  %.0f\n", (double)o->count / secs);
    printf("RESULT mode=mklogs logs=%" PRIu64 " jobs=%d seconds=%.2f logs_per_s=%.0f\n", o->count,
           o->jobs, secs, (double)o->count / secs);
    free(ms);
    free(th);
    return 0;
}

/* ---- measured queries -------------------------------------------------------------------- */

typedef struct qstat {
    lat lat;
    double first_ms;
    uint64_t calls, hits_min, hits_max, errors, bad;
    uint64_t start_ns;
} qstat;

/* Whether to make repetition `rep` (0 is the untimed first call): up to --reps timed ones,
 * fewer when --max-seconds has passed, but never fewer than --min-reps. */
static int qstat_more(qstat *s, const opts *o, int rep)
{
    if (rep == 0)
        s->start_ns = now_ns();
    if (rep > o->reps)
        return 0;
    if (o->max_seconds > 0 && rep > o->min_reps &&
        (double)(now_ns() - s->start_ns) / 1e9 > o->max_seconds)
        return 0;
    return 1;
}

static void qstat_print(const char *mode, const char *what, qstat *s, long long expect)
{
    int reps = (int)s->lat.n;
    double p50 = lat_pct_ms(&s->lat, 0.5), p99 = lat_pct_ms(&s->lat, 0.99);
    double mx = s->lat.n ? (double)s->lat.v[s->lat.n - 1] / 1000.0 : NAN;
    int ok = !s->errors && !s->bad &&
             (expect < 0 || (s->hits_min == (uint64_t)expect && s->hits_max == (uint64_t)expect));
    printf("mode                        %s\n", mode);
    printf("what                        %s\n", what);
    printf("reps                        %d timed, after one untimed first call\n", reps);
    printf("first_call_ms               %.2f\n", s->first_ms);
    printf("p50_ms                      %.2f\n", p50);
    printf("p99_ms                      %.2f\n", p99);
    printf("max_ms                      %.2f\n", mx);
    printf("results_per_rep             %" PRIu64 "..%" PRIu64 "%s\n", s->hits_min, s->hits_max,
           expect >= 0 ? (ok ? " (as expected)" : " (NOT as expected)") : "");
    printf("calls_per_rep               %.1f\n", reps ? (double)s->calls / (reps + 1) : 0.0);
    printf("failed                      %" PRIu64 " (wrong results: %" PRIu64 ")\n", s->errors,
           s->bad);
    printf("RESULT mode=%s reps=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f first_ms=%.2f "
           "hits=%" PRIu64 " hits_max=%" PRIu64 " calls_per_rep=%.1f ok=%d\n",
           mode, reps, p50, p99, mx, s->first_ms, s->hits_min, s->hits_max,
           reps ? (double)s->calls / (reps + 1) : 0.0, ok);
}

static void qstat_rep(qstat *s, int rep, uint64_t us, uint64_t hits)
{
    if (rep == 0) {
        s->first_ms = (double)us / 1000.0;
        s->hits_min = s->hits_max = hits;
    } else {
        lat_add(&s->lat, us);
    }
    s->hits_min = hits < s->hits_min ? hits : s->hits_min;
    s->hits_max = hits > s->hits_max ? hits : s->hits_max;
}

static int contains(const ProtobufCBinaryData *p, const char *q, int icase)
{
    char *s = strndup((const char *)p->data, p->len);
    int r = (icase ? strcasestr(s, q) : strstr(s, q)) != NULL;
    free(s);
    return r;
}

/* A walk that has not ended after this many calls or seconds counts as failed. */
#define WALK_MAX_CALLS 20000
#define WALK_MAX_S 120

static int run_search(const opts *o)
{
    if (!o->query)
        fail("search: --query is required");
    ann_client *c = connect_client(o);
    qstat s = {0};
    for (int rep = 0; qstat_more(&s, o, rep); rep++) {
        char *token = NULL;
        uint64_t hits = 0, t0 = now_ns(), calls = 0;
        int err = 0;
        do {
            if (++calls > WALK_MAX_CALLS || now_ns() - t0 > WALK_MAX_S * 1000000000ULL) {
                if (!s.errors++)
                    fprintf(stderr,
                            "annals-inv: the walk did not end (%" PRIu64 " calls, %" PRIu64
                            " hits, %.1f s)\n",
                            calls - 1, hits, (double)(now_ns() - t0) / 1e9);
                err = 1;
                break;
            }
            Annals__V1__SearchLogEntriesRequest req = ANNALS__V1__SEARCH_LOG_ENTRIES_REQUEST__INIT;
            Annals__Wire__V1__SearchLogEntriesResponse *resp;
            ann_rpc_status st;
            Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT,
                                        te = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
            req.query = (char *)o->query;
            req.ignore_case = o->ignore_case;
            if (o->start_s) {
                ts.seconds = o->start_s;
                req.start_time = &ts;
            }
            if (o->end_s) {
                te.seconds = o->end_s;
                req.end_time = &te;
            }
            req.page_size = o->page_size;
            if (token)
                req.page_token = token;
            s.calls++;
            if (ann_rpc_call(c, "/annals.v1.LoggingQueryService/SearchLogEntries", &req.base,
                             &annals__wire__v1__search_log_entries_response__descriptor, TIMEOUT_MS,
                             (ProtobufCMessage **)&resp, &st) != 0) {
                if (!s.errors++)
                    fprintf(stderr, "annals-inv: SearchLogEntries: %s: %s\n",
                            ann_rpc_code_name(st.code), st.msg);
                err = 1;
                break;
            }
            hits += resp->n_entries;
            if (getenv("ANNALS_INV_TRACE"))
                fprintf(stderr,
                        "annals-inv: call %" PRIu64 ": %zu entries, token %zu bytes, %.2f ms\n",
                        calls, resp->n_entries, resp->next_page_token.len,
                        (double)(now_ns() - t0) / 1e6);
            for (size_t i = 0; i < resp->n_entries; i++)
                if (!contains(&resp->entries[i]->text_payload, o->query, o->ignore_case))
                    s.bad++;
            free(token);
            token = resp->next_page_token.len ? strndup((const char *)resp->next_page_token.data,
                                                        resp->next_page_token.len)
                                              : NULL;
            protobuf_c_message_free_unpacked(&resp->base, NULL);
        } while (token && !o->first_page);
        free(token);
        if (err)
            break;
        qstat_rep(&s, rep, (now_ns() - t0) / 1000, hits);
    }
    char what[1200];
    snprintf(what, sizeof what, "SearchLogEntries query=\"%s\"%s page_size=%d%s, %s", o->query,
             o->ignore_case ? " ignore_case" : "", o->page_size,
             o->start_s || o->end_s ? " within --start-time/--end-time" : "",
             o->first_page ? "first page" : "every page (the complete walk)");
    qstat_print("search", what, &s, o->expect);
    free(s.lat.v);
    ann_client_free(c);
    return s.errors ? 1 : 0;
}

static int run_read(const opts *o)
{
    if (!o->log || !o->count)
        fail("read: --log and --entries are required");
    ann_client *c = connect_client(o);
    qstat s = {0};
    uint64_t rng = 0xD1B54A32D192ED03ULL ^ o->spec.seed;
    uint64_t ps = (uint64_t)(o->page_size ? o->page_size : 100);
    for (int rep = 0; qstat_more(&s, o, rep); rep++) {
        uint64_t first = 1 + rng_next(&rng) % (o->count - ps + 1);
        char fid[24];
        snprintf(fid, sizeof fid, "%" PRIu64, first);
        Annals__V1__ReadLogEntriesRequest req = ANNALS__V1__READ_LOG_ENTRIES_REQUEST__INIT;
        Annals__Wire__V1__ReadLogEntriesResponse *resp;
        ann_rpc_status st;
        req.log_id = (char *)o->log;
        req.first_entry_id = fid;
        req.page_size = o->page_size;
        uint64_t t0 = now_ns();
        s.calls++;
        if (ann_rpc_call(c, "/annals.v1.LoggingQueryService/ReadLogEntries", &req.base,
                         &annals__wire__v1__read_log_entries_response__descriptor, TIMEOUT_MS,
                         (ProtobufCMessage **)&resp, &st) != 0) {
            if (!s.errors++)
                fprintf(stderr, "annals-inv: ReadLogEntries: %s: %s\n", ann_rpc_code_name(st.code),
                        st.msg);
            continue;
        }
        uint64_t us = (now_ns() - t0) / 1000;
        if (resp->n_entries != ps || strncmp((const char *)resp->entries[0]->entry_id.data, fid,
                                             resp->entries[0]->entry_id.len) != 0)
            s.bad++;
        qstat_rep(&s, rep, us, resp->n_entries);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    char what[160];
    snprintf(what, sizeof what,
             "ReadLogEntries page_size=%" PRIu64 " from a random id in 1..%" PRIu64, ps,
             o->count - ps + 1);
    qstat_print("read", what, &s, (long long)ps);
    free(s.lat.v);
    ann_client_free(c);
    return s.errors ? 1 : 0;
}

static int run_listlogs(const opts *o)
{
    ann_client *c = connect_client(o);
    qstat s = {0};
    uint64_t rng = 0xA0761D6478BD642FULL ^ o->spec.seed;
    for (int rep = 0; qstat_more(&s, o, rep); rep++) {
        char job[32];
        snprintf(job, sizeof job, "job-%03" PRIu64, rng_next(&rng) % (uint64_t)o->jobs);
        Annals__V1__ListLogsRequest req = ANNALS__V1__LIST_LOGS_REQUEST__INIT;
        Annals__V1__ListLogsRequest__LabelFilterEntry f =
            ANNALS__V1__LIST_LOGS_REQUEST__LABEL_FILTER_ENTRY__INIT;
        Annals__V1__ListLogsRequest__LabelFilterEntry *fp = &f;
        Annals__Wire__V1__ListLogsResponse *resp;
        ann_rpc_status st;
        f.key = "job";
        f.value = job;
        req.n_label_filter = 1;
        req.label_filter = &fp;
        req.page_size = o->page_size;
        uint64_t t0 = now_ns();
        s.calls++;
        if (ann_rpc_call(c, "/annals.v1.LoggingQueryService/ListLogs", &req.base,
                         &annals__wire__v1__list_logs_response__descriptor, TIMEOUT_MS,
                         (ProtobufCMessage **)&resp, &st) != 0) {
            if (!s.errors++)
                fprintf(stderr, "annals-inv: ListLogs: %s: %s\n", ann_rpc_code_name(st.code),
                        st.msg);
            continue;
        }
        qstat_rep(&s, rep, (now_ns() - t0) / 1000, resp->n_logs);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    char what[160];
    snprintf(what, sizeof what,
             "ListLogs label_filter={job: job-NNN (random of %d)} page_size=%d, first page",
             o->jobs, o->page_size);
    qstat_print("listlogs", what, &s, o->expect);
    free(s.lat.v);
    ann_client_free(c);
    return s.errors ? 1 : 0;
}

/* du -s -B1: the bytes allocated to the files under a directory. */
static uint64_t du_total;
static int du_add(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)path, (void)flag, (void)ftw;
    du_total += (uint64_t)sb->st_blocks * 512u;
    return 0;
}

static uint64_t du_bytes(const char *dir)
{
    du_total = 0;
    nftw(dir, du_add, 64, FTW_PHYS);
    return du_total;
}

/* Waits until du of dir has not changed for `stable_s` seconds (polling every 0.5 s). */
static void wait_stable(const char *dir, double stable_s)
{
    uint64_t last = du_bytes(dir), since = now_ns();
    while ((double)(now_ns() - since) / 1e9 < stable_s) {
        usleep(500000);
        uint64_t b = du_bytes(dir);
        if (b != last) {
            last = b;
            since = now_ns();
        }
    }
}

/*
 * Opens every log of the tenant once (ReadLogEntries of its first entry, the logs from
 * ListLogs), `--batch-logs` at a time; with --data-dir, waits after each batch until the
 * directory's size has been stable for --stable-s seconds. The embedded store seals only
 * the logs it holds open, and holds a bounded number of them (512 by default).
 */
static int run_touch(const opts *o)
{
    ann_client *c = connect_client(o);
    char *token = NULL;
    uint64_t logs = 0, errors = 0, t0 = now_ns();
    char **ids = NULL;
    size_t n = 0, cap = 0;
    do {
        Annals__V1__ListLogsRequest req = ANNALS__V1__LIST_LOGS_REQUEST__INIT;
        Annals__Wire__V1__ListLogsResponse *resp;
        ann_rpc_status st;
        req.page_size = 1000;
        if (token)
            req.page_token = token;
        if (ann_rpc_call(c, "/annals.v1.LoggingQueryService/ListLogs", &req.base,
                         &annals__wire__v1__list_logs_response__descriptor, TIMEOUT_MS,
                         (ProtobufCMessage **)&resp, &st) != 0)
            die("ListLogs", &st);
        for (size_t i = 0; i < resp->n_logs; i++) {
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                ids = ann_xrealloc(ids, cap * sizeof *ids);
            }
            ids[n++] = strndup((const char *)resp->logs[i]->id.data, resp->logs[i]->id.len);
        }
        free(token);
        token = resp->next_page_token.len
                    ? strndup((const char *)resp->next_page_token.data, resp->next_page_token.len)
                    : NULL;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    } while (token);
    for (size_t i = 0; i < n; i++) {
        Annals__V1__ReadLogEntriesRequest rr = ANNALS__V1__READ_LOG_ENTRIES_REQUEST__INIT;
        Annals__Wire__V1__ReadLogEntriesResponse *rresp;
        ann_rpc_status st;
        rr.log_id = ids[i];
        rr.first_entry_id = "1";
        rr.page_size = 1;
        if (ann_rpc_call(c, "/annals.v1.LoggingQueryService/ReadLogEntries", &rr.base,
                         &annals__wire__v1__read_log_entries_response__descriptor, TIMEOUT_MS,
                         (ProtobufCMessage **)&rresp, &st) != 0) {
            if (!errors++)
                fprintf(stderr, "annals-inv: ReadLogEntries: %s: %s\n", ann_rpc_code_name(st.code),
                        st.msg);
        } else {
            protobuf_c_message_free_unpacked(&rresp->base, NULL);
        }
        logs++;
        if (o->data_dir && (logs % (uint64_t)o->batch_logs == 0 || i + 1 == n)) {
            wait_stable(o->data_dir, o->stable_s);
            fprintf(stderr,
                    "annals-inv: touched %" PRIu64 " logs; %" PRIu64 " bytes after %.1f s\n", logs,
                    du_bytes(o->data_dir), (double)(now_ns() - t0) / 1e9);
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("RESULT mode=touch logs=%" PRIu64 " failed=%" PRIu64 " seconds=%.2f\n", logs, errors,
           secs);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    ann_client_free(c);
    return errors ? 1 : 0;
}

/* ---- VictoriaLogs -------------------------------------------------------------------------- */

#define VL_INSERT                                                                                  \
    "/insert/jsonline?_stream_fields=job,env,branch,run&_time_field=_time&_msg_field=_msg"

typedef struct vl_loader {
    const opts *o;
    const inv_archive *a;
    int idx;
    uint64_t entries, bytes;
    int failed;
} vl_loader;

static int vl_post(http_conn *h, const ann_buf *body)
{
    ann_buf resp = ANN_BUF_INIT;
    char err[256];
    int status = 0;
    int rc = http_do(h, "POST", VL_INSERT, "application/stream+json", body->data, body->len,
                     &status, &resp, err, sizeof err);
    if (rc != 0 || status / 100 != 2) {
        fprintf(stderr, "annals-inv: VictoriaLogs insert: %s (status %d) %.*s\n", rc ? err : "",
                status, (int)(resp.len < 300 ? resp.len : 300), (const char *)resp.data);
        rc = -1;
    }
    ann_buf_release(&resp);
    return rc;
}

static void *vl_loader_run(void *arg)
{
    vl_loader *w = arg;
    http_conn h;
    char err[256], line[INV_LINE_MAX];
    ann_buf body = ANN_BUF_INIT;
    if (http_init(&h, w->o->url, err, sizeof err) != 0)
        fail("%s", err);
    for (uint32_t i = (uint32_t)w->idx; i < w->a->spec.logs; i += (uint32_t)w->o->threads) {
        inv_gen g;
        int64_t t;
        inv_gen_open(&g, w->a, i);
        while (g.line < g.log->n) {
            size_t n = inv_gen_next(&g, line, &t);
            json_line(&body, g.log, line, n, t);
            w->entries++;
            w->bytes += n;
            if (body.len >= 8u << 20) {
                if (vl_post(&h, &body) != 0) {
                    w->failed = 1;
                    goto out;
                }
                body.len = 0;
            }
        }
    }
    if (body.len && vl_post(&h, &body) != 0)
        w->failed = 1;
out:
    ann_buf_release(&body);
    http_close(&h);
    return NULL;
}

static int vl_get(http_conn *h, const char *path, const char *query, long long limit,
                  int64_t start_s, int64_t end_s, ann_buf *out, int *status, char *err, size_t errn)
{
    ann_buf target = ANN_BUF_INIT;
    ann_buf_add(&target, path, strlen(path));
    ann_buf_add(&target, "?query=", 7);
    http_urlencode(&target, query);
    if (limit > 0) {
        char l[32];
        snprintf(l, sizeof l, "&limit=%lld", limit);
        ann_buf_add(&target, l, strlen(l));
    }
    if (start_s || end_s) {
        char w[64];
        snprintf(w, sizeof w, "&start=%lld&end=%lld", (long long)start_s, (long long)end_s);
        ann_buf_add(&target, w, strlen(w));
    }
    ann_buf_add_byte(&target, '\0');
    int rc = http_do(h, "GET", (const char *)target.data, NULL, NULL, 0, status, out, err, errn);
    ann_buf_release(&target);
    return rc;
}

static int run_vl_load(const opts *o)
{
    if (!o->url)
        fail("--url is required");
    inv_archive a;
    open_archive(o, &a);
    vl_loader *ws = ann_xcalloc((size_t)o->threads, sizeof *ws);
    pthread_t *th = ann_xcalloc((size_t)o->threads, sizeof *th);
    double cpu0 = self_cpu_s();
    proc_sample p0 = proc_read(o->server_pid);
    uint64_t t0 = now_ns();
    for (int i = 0; i < o->threads; i++) {
        ws[i] = (vl_loader){.o = o, .a = &a, .idx = i};
        pthread_create(&th[i], NULL, vl_loader_run, &ws[i]);
    }
    uint64_t entries = 0, bytes = 0;
    int failed = 0;
    for (int i = 0; i < o->threads; i++) {
        pthread_join(th[i], NULL);
        entries += ws[i].entries;
        bytes += ws[i].bytes;
        failed |= ws[i].failed;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    proc_sample p1 = proc_read(o->server_pid);
    /* Make everything searchable now (VictoriaLogs' testing endpoint). */
    http_conn h;
    char err[256];
    ann_buf resp = ANN_BUF_INIT;
    int status = 0;
    if (http_init(&h, o->url, err, sizeof err) == 0 &&
        (http_do(&h, "GET", "/internal/force_flush", NULL, NULL, 0, &status, &resp, err,
                 sizeof err) != 0 ||
         status / 100 != 2))
        fprintf(stderr, "annals-inv: force_flush: status %d %s\n", status, err);
    http_close(&h);
    ann_buf_release(&resp);
    double scpu = p0.ok && p1.ok ? p1.cpu_s - p0.cpu_s : NAN;
    printf("mode                        vl-load\n");
    printf("entries                     %" PRIu64 " (mean %.1f text bytes)\n", entries,
           (double)bytes / (double)entries);
    printf("seconds                     %.2f\n", secs);
    printf("entries_per_s               %.0f (%d HTTP streams of ~8 MB JSON-line requests)\n",
           (double)entries / secs, o->threads);
    printf("client_cpu_s                %.2f\n", self_cpu_s() - cpu0);
    printf("server_cpu_s_per_M          %.2f\n", scpu / ((double)entries / 1e6));
    printf("server_peak_rss_mib         %.1f\n", p1.ok ? p1.hwm_kib / 1024.0 : NAN);
    printf("RESULT mode=vl-load entries=%" PRIu64 " failed=%d seconds=%.2f entries_per_s=%.0f "
           "server_cpu_s_per_M=%.2f server_peak_rss_mib=%.1f\n",
           entries, failed, secs, (double)entries / secs, scpu / ((double)entries / 1e6),
           p1.ok ? p1.hwm_kib / 1024.0 : NAN);
    free(ws);
    free(th);
    inv_archive_close(&a);
    return failed ? 1 : 0;
}

static uint64_t count_lines(const ann_buf *b)
{
    uint64_t n = 0;
    for (size_t i = 0; i < b->len; i++)
        n += b->data[i] == '\n';
    if (b->len && b->data[b->len - 1] != '\n')
        n++;
    return n;
}

static int run_vl_query(const opts *o)
{
    if (!o->url || !o->query)
        fail("vl-query: --url and --query are required");
    http_conn h;
    char err[256];
    if (http_init(&h, o->url, err, sizeof err) != 0)
        fail("%s", err);
    qstat s = {0};
    ann_buf resp = ANN_BUF_INIT;
    for (int rep = 0; qstat_more(&s, o, rep); rep++) {
        int status = 0;
        uint64_t t0 = now_ns();
        s.calls++;
        if (vl_get(&h, "/select/logsql/query", o->query, o->limit, o->start_s, o->end_s, &resp,
                   &status, err, sizeof err) != 0 ||
            status != 200) {
            if (!s.errors++)
                fprintf(stderr, "annals-inv: VictoriaLogs query: status %d %s %.*s\n", status, err,
                        (int)(resp.len < 300 ? resp.len : 300), (const char *)resp.data);
            continue;
        }
        qstat_rep(&s, rep, (now_ns() - t0) / 1000, count_lines(&resp));
    }
    char what[1200];
    snprintf(what, sizeof what, "VictoriaLogs /select/logsql/query query=%s %s%s", o->query,
             o->limit > 0 ? "with limit" : "(no limit)",
             o->start_s || o->end_s ? ", within start/end" : "");
    qstat_print("vl-query", what, &s, o->expect);
    free(s.lat.v);
    ann_buf_release(&resp);
    http_close(&h);
    return s.errors ? 1 : 0;
}

static int run_vl_count(const opts *o)
{
    if (!o->url)
        fail("vl-count: --url is required");
    http_conn h;
    char err[256];
    int status = 0;
    ann_buf resp = ANN_BUF_INIT;
    if (http_init(&h, o->url, err, sizeof err) != 0)
        fail("%s", err);
    if (vl_get(&h, "/select/logsql/query", "* | stats count() as n", 0, 0, 0, &resp, &status, err,
               sizeof err) != 0 ||
        status != 200)
        fail("VictoriaLogs count: status %d %s", status, err);
    ann_buf_add_byte(&resp, '\0');
    const char *p = strstr((const char *)resp.data, "\"n\":\"");
    printf("RESULT mode=vl-count entries=%s\n", p ? strndup(p + 5, strcspn(p + 5, "\"")) : "?");
    ann_buf_release(&resp);
    http_close(&h);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs(
        "usage: annals-inv tokens|gen|load|deep|mklogs|search|read|listlogs|touch|vl-load|vl-query|"
        "vl-count [options]\n"
        "  archive: --seed S (1) --base-time UNIX_S --logs N (1000) --entries N (10000000)\n"
        "           --span-hours H (36)\n"
        "  --addr HOST:PORT (ANNALS_ADDR)  --token KEY (ANNALS_TOKEN)  --server-pid PID\n"
        "  --threads N (4)  --batch N (1000)  --format jsonl|text|stats\n"
        "  --query Q  --ignore-case  --first-page  --page-size N (100)  --reps N (50)\n"
        "  --expect N (results per rep; -1: no check)  --log ID  --count N  --jobs N (100)\n"
        "  --max-seconds S (stop repeating after S seconds, but not before --min-reps N (3))\n"
        "  --start-time / --end-time UNIX_S (search, vl-query: the window; default unbounded)\n"
        "  --url 127.0.0.1:PORT (VictoriaLogs)  --limit N (VictoriaLogs limit=, 0: none)\n"
        "See the head of bench/investigator/inv.c and docs/bench.md.\n",
        f);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"addr", required_argument, NULL, 'A'},
        {"token", required_argument, NULL, 'T'},
        {"seed", required_argument, NULL, 'S'},
        {"base-time", required_argument, NULL, 'B'},
        {"logs", required_argument, NULL, 'L'},
        {"entries", required_argument, NULL, 'E'},
        {"span-hours", required_argument, NULL, 'H'},
        {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'},
        {"format", required_argument, NULL, 'f'},
        {"query", required_argument, NULL, 'q'},
        {"ignore-case", no_argument, NULL, 'i'},
        {"first-page", no_argument, NULL, '1'},
        {"page-size", required_argument, NULL, 'P'},
        {"reps", required_argument, NULL, 'r'},
        {"expect", required_argument, NULL, 'x'},
        {"log", required_argument, NULL, 'l'},
        {"count", required_argument, NULL, 'n'},
        {"jobs", required_argument, NULL, 'j'},
        {"url", required_argument, NULL, 'u'},
        {"limit", required_argument, NULL, 'm'},
        {"server-pid", required_argument, NULL, 'p'},
        {"max-seconds", required_argument, NULL, 'X'},
        {"min-reps", required_argument, NULL, 'M'},
        {"start-time", required_argument, NULL, 's'},
        {"data-dir", required_argument, NULL, 'D'},
        {"batch-logs", required_argument, NULL, 'K'},
        {"stable-s", required_argument, NULL, 'W'},
        {"end-time", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opts o = {
        .threads = 4,
        .batch = 1000,
        .reps = 50,
        .min_reps = 3,
        .page_size = 100,
        .jobs = 100,
        .expect = -1,
        .spec = {
            .seed = 1, .logs = 1000, .entries = 10000000, .span_ns = 36LL * 3600 * 1000000000}};
    int c;
    if (argc < 2 || argv[1][0] == '-') {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    o.mode = argv[1];
    o.addr = getenv("ANNALS_ADDR");
    o.token = getenv("ANNALS_TOKEN");
    optind = 2;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'A':
            o.addr = optarg;
            break;
        case 'T':
            o.token = optarg;
            break;
        case 'S':
            o.spec.seed = strtoull(optarg, NULL, 10);
            break;
        case 'B':
            o.spec.base_ns = strtoll(optarg, NULL, 10) * 1000000000LL;
            o.have_base = 1;
            break;
        case 'L':
            o.spec.logs = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'E':
            o.spec.entries = strtoull(optarg, NULL, 10);
            o.count = o.spec.entries;
            break;
        case 'H':
            o.spec.span_ns = (int64_t)(atof(optarg) * 3600e9);
            break;
        case 't':
            o.threads = atoi(optarg);
            break;
        case 'b':
            o.batch = atoi(optarg);
            break;
        case 'f':
            o.format = optarg;
            break;
        case 'q':
            o.query = optarg;
            break;
        case 'i':
            o.ignore_case = 1;
            break;
        case '1':
            o.first_page = 1;
            break;
        case 'P':
            o.page_size = atoi(optarg);
            break;
        case 'r':
            o.reps = atoi(optarg);
            break;
        case 'x':
            o.expect = atoll(optarg);
            break;
        case 'l':
            o.log = optarg;
            break;
        case 'n':
            o.count = strtoull(optarg, NULL, 10);
            break;
        case 'j':
            o.jobs = atoi(optarg);
            break;
        case 'u':
            o.url = optarg;
            break;
        case 'm':
            o.limit = atoll(optarg);
            break;
        case 'p':
            o.server_pid = atoi(optarg);
            break;
        case 'X':
            o.max_seconds = atof(optarg);
            break;
        case 'M':
            o.min_reps = atoi(optarg);
            break;
        case 's':
            o.start_s = strtoll(optarg, NULL, 10);
            break;
        case 'D':
            o.data_dir = optarg;
            break;
        case 'K':
            o.batch_logs = atoi(optarg);
            break;
        case 'W':
            o.stable_s = atof(optarg);
            break;
        case 'e':
            o.end_s = strtoll(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!o.addr || !*o.addr)
        o.addr = "127.0.0.1:50051";
    if (o.threads < 1 || o.threads > 64 || o.batch < 1 || o.batch > 10000 || o.reps < 0 ||
        o.page_size < 0 || o.page_size > 1000 || o.jobs < 1) {
        fprintf(stderr, "annals-inv: an option is out of range\n");
        usage(stderr);
        return 2;
    }
    if (!strcmp(o.mode, "tokens"))
        return run_tokens();
    if (!strcmp(o.mode, "gen"))
        return run_gen(&o);
    if (!strcmp(o.mode, "load"))
        return run_load(&o);
    if (!strcmp(o.mode, "deep"))
        return run_deep(&o);
    if (!strcmp(o.mode, "mklogs"))
        return run_mklogs(&o);
    if (!strcmp(o.mode, "search"))
        return run_search(&o);
    if (!strcmp(o.mode, "read"))
        return run_read(&o);
    if (!strcmp(o.mode, "listlogs"))
        return run_listlogs(&o);
    if (!strcmp(o.mode, "touch"))
        return run_touch(&o);
    if (!strcmp(o.mode, "vl-load"))
        return run_vl_load(&o);
    if (!strcmp(o.mode, "vl-query"))
        return run_vl_query(&o);
    if (!strcmp(o.mode, "vl-count"))
        return run_vl_count(&o);
    usage(stderr);
    return 2;
}
