/*
 * bench_block: the sealed-block codec (store/embedded/block.h) on generated CI logs.
 *
 *   bench_block [-n entries_per_block] [-b blocks] [-z zstd_level] [-s line_bytes] [-q queries]
 *
 * Defaults: blocks of 65,536 entries, 4 blocks per insert_id style, level 3, 200-byte lines,
 * 20,000 filter queries per block. Each entry is what `annals write` sends: a text payload
 * of one line (build output, test output, Java stack traces, with timestamps, hashes, paths
 * and numbers) and one label (job=...), times 1 ms apart, insert times per batch of 1,000.
 * Two insert_id styles: the CLI's `NAME:LINE` (job-42:17) and random UUIDs.
 *
 * "raw" bytes are those of the entries' data-file records (logfile.h: 48-byte header,
 * insert_id, body): what sealing reads and replaces. Encode and decode are timed in CPU
 * time of this process (the machine is shared; wall time is printed too). The filter's
 * false-positive rate is measured on random 8-byte tokens ([a-z0-9] and hex) that no entry
 * of the block holds (a token passing the filter is checked against every entry).
 * Figures are printed, never asserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/embedded/block.h"
#include "store/embedded/hash.h"
#include "store/embedded/logfile.h"

static uint64_t rng = 0x2545F4914F6CDD1Du;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *pick(const char *const *v, size_t n)
{
    return v[rnd() % n];
}
#define PICK(v) pick(v, sizeof v / sizeof *v)

static const char *const mods[] = {"store",  "api",  "domain",  "common", "cli",   "cql", "archive",
                                   "ingest", "auth", "billing", "search", "index", "net", "util"};
static const char *const files[] = {
    "account",  "address",     "allocate",   "archive",  "assert",   "attempt",   "backend",
    "balance",  "batch",       "binary",     "branch",   "bucket",   "buffer",    "build",
    "cache",    "callback",    "channel",    "checksum", "chunk",    "client",    "cluster",
    "column",   "commit",      "compile",    "config",   "connect",  "consumer",  "context",
    "counter",  "cursor",      "database",   "deadline", "decode",   "default",   "delete",
    "deploy",   "digest",      "directory",  "dispatch", "driver",   "encode",    "endpoint",
    "entry",    "event",       "expire",     "export",   "factory",  "failure",   "feature",
    "fetch",    "filter",      "format",     "gateway",  "handler",  "header",    "import",
    "index",    "instance",    "invoice",    "iterator", "journal",  "kernel",    "latency",
    "layout",   "ledger",      "lease",      "limit",    "linker",   "listener",  "loader",
    "lock",     "manifest",    "mapper",     "matrix",   "member",   "memory",    "merge",
    "message",  "metric",      "module",     "monitor",  "mutex",    "network",   "node",
    "offset",   "operator",    "order",      "package",  "parser",   "partition", "payload",
    "payment",  "pipeline",    "platform",   "policy",   "pool",     "prefix",    "process",
    "producer", "profile",     "protocol",   "provider", "proxy",    "query",     "queue",
    "quota",    "record",      "region",     "registry", "replica",  "report",    "request",
    "resolver", "resource",    "response",   "retry",    "revision", "router",    "runtime",
    "sample",   "scanner",     "schedule",   "schema",   "scope",    "segment",   "selector",
    "sequence", "server",      "session",    "shard",    "signal",   "snapshot",  "socket",
    "source",   "stream",      "subscriber", "summary",  "supplier", "table",     "target",
    "task",     "tenant",      "thread",     "ticket",   "timeout",  "token",     "topic",
    "trace",    "transaction", "transport",  "trigger",  "upload",   "user",      "validator",
    "vector",   "version",     "volume",     "window",   "worker",   "writer"};
static const char *const cls[] = {
    "OrderService", "PaymentGateway", "UserRepository", "KafkaConsumer",   "HttpClient",
    "RetryPolicy",  "SchemaRegistry", "ConnectionPool", "EventDispatcher", "TokenValidator"};
static const char *const pkgs[] = {"com.acme.billing",      "org.apache.kafka.clients",
                                   "io.netty.channel",      "org.springframework.web",
                                   "com.acme.search.index", "java.util.concurrent"};
static const char *const verbs[] = {"process", "handle",   "flush",    "commit", "retry",
                                    "connect", "validate", "dispatch", "decode", "lookup"};
static const char *const excs[] = {"IllegalStateException", "NullPointerException",
                                   "TimeoutException",      "IOException",
                                   "SocketException",       "IllegalArgumentException"};
static const char *const results[] = {"PASSED", "PASSED",  "PASSED", "PASSED",
                                      "FAILED", "SKIPPED", "XFAIL"};

/* One CI line of exactly len bytes (len >= 64). */
static size_t ci_line(char *out, size_t len, uint64_t line_no)
{
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "2026-11-26T10:%02u:%02u.%03uZ ",
                                (unsigned)(line_no / 60000 % 60), (unsigned)(line_no / 1000 % 60),
                                (unsigned)(line_no % 1000));
    while (n < len) {
        const char *m = PICK(mods), *f = PICK(files), *c = PICK(cls), *p = PICK(pkgs),
                   *v = PICK(verbs);
        unsigned a = (unsigned)(rnd() % 500), b = (unsigned)(rnd() % 2000);
        int w;
        switch (rnd() % 10) {
        case 0:
            w = snprintf(buf + n, sizeof buf - n,
                         "[%u/%u] Building C object src/%s/CMakeFiles/ann_%s.dir/%s.c.o ", a, a + b,
                         m, m, f);
            break;
        case 1:
            w = snprintf(buf + n, sizeof buf - n,
                         "/usr/bin/cc -I/work/src -O2 -g -DNDEBUG -Wall -Wextra -Werror -c "
                         "src/%s/%s.c -o build/%s/%s.c.o ",
                         m, f, m, f);
            break;
        case 2:
            w = snprintf(buf + n, sizeof buf - n,
                         "src/%s/%s.c:%u:%u: warning: unused variable 'tmp_%s' "
                         "[-Wunused-variable] ",
                         m, f, b, a % 80, v);
            break;
        case 3:
            w = snprintf(buf + n, sizeof buf - n,
                         "tests/%s/test_%s.py::Test%s::test_%s_%s %s [%3u%%] ", m, f, c, v, f,
                         PICK(results), a % 101);
            break;
        case 4:
            w = snprintf(buf + n, sizeof buf - n, "[       OK ] %sTest.%s_%s (%u ms) ", c, v, f,
                         b % 300);
            break;
        case 5:
            w = snprintf(buf + n, sizeof buf - n, "\tat %s.%s.%s(%s.java:%u) ", p, c, v, c, b);
            break;
        case 6:
            w = snprintf(buf + n, sizeof buf - n,
                         "Caused by: java.lang.%s: failed to %s %s after %u attempts ", PICK(excs),
                         v, f, a % 10);
            break;
        case 7:
            w = snprintf(buf + n, sizeof buf - n, "HEAD is now at %07llx %s %s: %s the %s path ",
                         (unsigned long long)(rnd() & 0xFFFFFFF), m, f, v, f);
            break;
        case 8:
            w = snprintf(buf + n, sizeof buf - n,
                         "Downloaded https://repo.maven.apache.org/maven2/%s/%u.%u.%u/%s-%u.jar "
                         "(%u kB at %u.%u MB/s) ",
                         p, a % 5, a % 20, b % 30, f, a % 9, b, a % 50, a % 10);
            break;
        default:
            w = snprintf(buf + n, sizeof buf - n,
                         "%s ERROR [pool-%u-thread-%u] %s - %s %s_%s: request %016llx took %u ms ",
                         f, a % 8, b % 64, c, v, PICK(files), PICK(files),
                         (unsigned long long)rnd(), b);
            break;
        }
        n += (size_t)w;
        if (n >= sizeof buf - 256)
            break;
    }
    memcpy(out, buf, len);
    return len;
}

/* Bodies as the API stores them: a label (field 23) and the text payload (field 30). */
typedef struct gen {
    ann_entry *e;
    ann_buf bodies; /* all bodies, back to back */
    char *iids;     /* 48 bytes per entry */
    uint64_t raw;   /* data-file record bytes */
} gen;

static void gen_block(gen *g, size_t n, size_t line, bool uuid, uint64_t first, int64_t t0)
{
    size_t *off = malloc(n * sizeof *off);
    char text[4096];
    ann_buf lab = ANN_BUF_INIT;
    ann_buf_add_len_field(&lab, 1, "job", 3);
    ann_buf_add_len_field(&lab, 2, "build-1234", 10);
    g->bodies.len = 0;
    g->raw = 0;
    for (size_t i = 0; i < n; i++) {
        off[i] = g->bodies.len;
        ann_buf_add_len_field(&g->bodies, 23, lab.data, lab.len);
        ci_line(text, line, first + i);
        ann_buf_add_len_field(&g->bodies, 30, text, line);
        char *iid = g->iids + i * 48;
        if (uuid)
            snprintf(iid, 48, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)rnd(),
                     (unsigned)(rnd() & 0xFFFF), (unsigned)(rnd() & 0xFFF),
                     (unsigned)(0x8000 | (rnd() & 0x3FFF)),
                     (unsigned long long)(rnd() & 0xFFFFFFFFFFFFull));
        else
            snprintf(iid, 48, "job-42:%llu", (unsigned long long)(first + i));
        g->e[i] = (ann_entry){.time_ns = t0 + (int64_t)i * 1000000 + (int64_t)(rnd() % 1000),
                              .insert_time_ns = t0 + (int64_t)(i / 1000 + 1) * 1000000000,
                              .severity = rnd() % 20 == 0 ? 500 : 0,
                              .insert_id = iid,
                              .insert_id_len = strlen(iid)};
    }
    for (size_t i = 0; i < n; i++) {
        g->e[i].body = g->bodies.data + off[i];
        g->e[i].body_len = (i + 1 < n ? off[i + 1] : g->bodies.len) - off[i];
        g->raw += ann_lf_rec_size(g->e[i].insert_id_len, g->e[i].body_len);
    }
    ann_buf_release(&lab);
    free(off);
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct totals {
    uint64_t entries, raw, disk, meta, iid, body, filter, trigrams;
    double enc_cpu, enc_wall, dec_cpu, dec_wall, idx_cpu;
    uint64_t q[2], fp[2], present[2];
} totals;

/* Every searchable string of the block, each followed by a newline (no token holds one). */
static int add_string(ann_body_kind kind, const uint8_t *p, size_t n, void *ud)
{
    (void)kind;
    ann_buf_add(ud, p, n);
    ann_buf_add_byte(ud, '\n');
    return 0;
}

static int run(size_t n, int blocks, int level, size_t line, int queries, bool uuid)
{
    gen g = {calloc(n, sizeof *g.e), ANN_BUF_INIT, malloc(n * 48), 0};
    totals t = {0};
    ann_buf out = ANN_BUF_INIT;
    ann_err err;
    int64_t *tm = malloc(n * 8), *itm = malloc(n * 8);
    int32_t *sev = malloc(n * 4);
    uint32_t *fl = malloc(n * 4);
    const char **iid = malloc(n * sizeof *iid);
    size_t *iid_len = malloc(n * sizeof *iid_len);
    ann_buf iraw = ANN_BUF_INIT, hay = ANN_BUF_INIT;
    for (int b = 0; b < blocks; b++) {
        uint64_t first = 1 + (uint64_t)b * n;
        gen_block(&g, n, line, uuid, first, 1795000000000000000 + (int64_t)first * 1000000);
        out.len = 0;
        double c0 = cpu_s(), w0 = wall_s();
        if (ann_blk_encode(g.e, n, first, 0, 0, level, &out, &err) != 0) {
            fprintf(stderr, "encode: %s\n", err.msg);
            return 1;
        }
        t.enc_cpu += cpu_s() - c0, t.enc_wall += wall_s() - w0;
        ann_blk_header h;
        ann_blk_view v;
        c0 = cpu_s(), w0 = wall_s();
        if (ann_blk_header_decode(out.data, out.len, &h, &err) != 0 ||
            ann_blk_check(out.data, out.len, &h, &err) != 0 ||
            ann_blk_view_open(out.data, out.len, &h, &v, &err) != 0) {
            fprintf(stderr, "decode: %s\n", err.msg);
            return 1;
        }
        t.dec_cpu += cpu_s() - c0, t.dec_wall += wall_s() - w0;
        ann_blk_view_release(&v);
        c0 = cpu_s();
        if (ann_blk_decode_meta(out.data, out.len, &h, tm, itm, sev, fl, &err) != 0 ||
            ann_blk_decode_iids(out.data, out.len, &h, &iraw, iid, iid_len, &err) != 0) {
            fprintf(stderr, "index decode: %s\n", err.msg);
            return 1;
        }
        t.idx_cpu += cpu_s() - c0;
        t.entries += n, t.raw += g.raw, t.disk += out.len;
        t.meta += h.meta_zlen, t.iid += h.iid_zlen, t.body += h.body_zlen;
        t.filter += h.filter_len;
        const uint8_t *f = out.data + ann_blk_filter_off(&h);
        hay.len = 0;
        for (size_t i = 0; i < n; i++)
            ann_body_strings(g.e[i].body, g.e[i].body_len, add_string, &hay);
        t.trigrams += ann_le32_get(f + 4);
        static const char *const alpha[2] = {"abcdefghijklmnopqrstuvwxyz0123456789",
                                             "0123456789abcdef"};
        int checks[2] = {0, 0};
        for (int a = 0; a < 2; a++) {
            size_t na = strlen(alpha[a]);
            for (int k = 0; k < queries; k++) {
                uint8_t tok[8];
                for (int j = 0; j < 8; j++)
                    tok[j] = (uint8_t)alpha[a][rnd() % na];
                ann_matcher m;
                ann_matcher_init(&m, tok, 8, false);
                if (ann_blk_filter_may_match(f, h.filter_len, &m)) {
                    /* A token that passes is looked for in the block (the first 200 per
                     * block and alphabet: each look scans the block's text); a present one
                     * is not a query for the rate. */
                    if (checks[a] < 200) {
                        checks[a]++;
                        if (memmem(hay.data, hay.len, tok, 8)) {
                            t.present[a]++;
                            continue;
                        }
                    }
                    t.fp[a]++;
                }
                t.q[a]++;
            }
        }
    }
    double mb = (double)t.raw / 1e6, e = (double)t.entries;
    printf("insert_ids %-22s %d blocks x %zu entries, %zu-byte lines, zstd %d\n",
           uuid ? "random UUIDs:" : "CLI style (job-42:17):", blocks, n, line, level);
    printf("  raw (data-file records) %.1f B/entry -> on disk %.1f B/entry (%.2fx): meta %.2f, "
           "iid %.2f, body %.1f, filter %.2f, header %.4f\n",
           (double)t.raw / e, (double)t.disk / e, (double)t.raw / (double)t.disk,
           (double)t.meta / e, (double)t.iid / e, (double)t.body / e, (double)t.filter / e,
           (double)ANN_BLK_HDR_LEN * blocks / e);
    printf("  encode %.0f MB/s of raw (CPU; %.0f wall); decode (view) %.0f MB/s (CPU; %.0f wall); "
           "index decode (meta+iid) %.1f M entries/s\n",
           mb / t.enc_cpu, mb / t.enc_wall, mb / t.dec_cpu, mb / t.dec_wall, e / t.idx_cpu / 1e6);
    printf("  filter: %.0f distinct trigrams per block, %.2f B/entry; false positives on absent "
           "8-byte tokens: [a-z0-9] %.3f%% (%llu/%llu), hex %.3f%% (%llu/%llu); tokens found "
           "present: %llu, %llu\n",
           (double)t.trigrams / blocks, (double)t.filter / e,
           100.0 * (double)t.fp[0] / (double)t.q[0], (unsigned long long)t.fp[0],
           (unsigned long long)t.q[0], 100.0 * (double)t.fp[1] / (double)t.q[1],
           (unsigned long long)t.fp[1], (unsigned long long)t.q[1],
           (unsigned long long)t.present[0], (unsigned long long)t.present[1]);
    free(tm), free(itm), free(sev), free(fl), free(iid), free(iid_len);
    ann_buf_release(&iraw);
    ann_buf_release(&hay);
    ann_buf_release(&out);
    ann_buf_release(&g.bodies);
    free(g.e);
    free(g.iids);
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = 65536, line = 200;
    int blocks = 4, level = 3, queries = 20000, opt;
    while ((opt = getopt(argc, argv, "n:b:z:s:q:")) != -1) {
        switch (opt) {
        case 'n':
            n = (size_t)atol(optarg);
            break;
        case 'b':
            blocks = atoi(optarg);
            break;
        case 'z':
            level = atoi(optarg);
            break;
        case 's':
            line = (size_t)atol(optarg);
            break;
        case 'q':
            queries = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: bench_block [-n entries] [-b blocks] [-z level] [-s line] "
                            "[-q queries]\n");
            return 2;
        }
    }
    if (n < 1 || n > ANN_BLK_MAX_COUNT || line < 64 || line > 2048 || blocks < 1) {
        fprintf(stderr, "bench_block: -n 1..%u, -s 64..2048, -b >= 1\n", ANN_BLK_MAX_COUNT);
        return 2;
    }
    return run(n, blocks, level, line, queries, false) ||
           run(n, blocks, level, line, queries, true);
}
