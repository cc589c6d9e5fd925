/*
 * annals write LOG: one entry per line of stdin.
 *
 * A line is the bytes up to a newline; the newline is dropped and every
 * other byte kept (a CR before it stays in the entry). A last line without a
 * newline is an entry too. Empty lines are entries. Lines go out in batches
 * of up to BATCH_LINES lines or BATCH_BYTES bytes, and a batch waits at most
 * FLUSH_MS for more lines, so a slow pipe still shows up promptly.
 *
 * Each entry's insert_id is "<source>:<line number>" (1-based), so running
 * the same command again with the same --source and the same input stores
 * nothing twice: the server deduplicates by insert_id. For the same reason a
 * batch can be retried on UNAVAILABLE without duplicates. A line longer than
 * CHUNK_BYTES is split into entries "<source>:<n>.1", "<source>:<n>.2", ...
 *
 * The API carries text as UTF-8 and the server rejects anything else, so an
 * invalid UTF-8 sequence (and a NUL byte, which protobuf strings here cannot
 * hold) is replaced with U+FFFD and reported on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/render.h"
#include "cli/text.h"
#include "client/rpc.h"

#define BATCH_LINES 1000
#define BATCH_BYTES (1024 * 1024)
#define CHUNK_BYTES (256 * 1024)
#define FLUSH_MS 200
#define READ_BYTES (64 * 1024)
#define MAX_SOURCE 128
#define MAX_ATTEMPTS 10
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define MAX_WARNINGS 10

typedef struct writer {
    ann_cli *cli;
    const char *log_id;
    const char *source;
    int severity;
    Annals__V1__LogEntry__LabelsEntry **labels;
    size_t n_labels;

    /* The batch being filled. */
    Annals__V1__LogEntry entries[BATCH_LINES];
    Annals__V1__LogEntry *ptrs[BATCH_LINES];
    Google__Protobuf__Timestamp times[BATCH_LINES];
    size_t n, bytes;
    int64_t first_ms; /* when the batch's first line was read */

    /* The line being read (possibly across reads). */
    ann_buf line;
    uint64_t lineno; /* of the line being read */
    unsigned part;   /* chunks of it already emitted */

    /* Totals for the summary. */
    uint64_t lines, entries_sent, requests, bad_lines, warnings;
    char first_id[32], last_id[32];
} writer;

static void batch_clear(writer *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->entries[i].insert_id);
        free(w->entries[i].text_payload);
    }
    w->n = 0;
    w->bytes = 0;
}

static void copy_id(char dst[32], const char *src)
{
    snprintf(dst, 32, "%s", src);
}

/* Sends the batch, retrying what is safe to retry. Returns 0 or an exit code. */
static int flush(writer *w)
{
    Annals__V1__WriteLogEntriesRequest req = ANNALS__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    Annals__V1__WriteLogEntriesResponse *resp = NULL;
    ann_rpc_status st;
    int64_t backoff = BACKOFF_FIRST_MS;

    if (w->n == 0)
        return 0;
    req.log_id = (char *)w->log_id;
    req.n_entries = w->n;
    req.entries = w->ptrs;
    for (int attempt = 1;; attempt++) {
        if (ann_rpc_write_log_entries(w->cli->client, &req, w->cli->timeout_ms, &resp, &st) == 0)
            break;
        if (!ann_cli_retryable(st.code) || attempt >= MAX_ATTEMPTS) {
            int rc = ann_cli_fail_rpc(w->cli, "WriteLogEntries", &st);
            fprintf(w->cli->err,
                    "annals write: %" PRIu64 " entries were acknowledged before this failure; "
                    "run again with --source ",
                    w->entries_sent);
            ann_put_term_str(w->cli->err, w->source);
            fputs(" to resume without duplicates\n", w->cli->err);
            return rc;
        }
        fprintf(w->cli->err, "annals write: %s: ", ann_rpc_code_name(st.code));
        ann_put_term_str(w->cli->err, st.msg);
        fprintf(w->cli->err, "; retrying in %" PRId64 " ms\n", backoff);
        ann_cli_sleep_ms(w->cli, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    if (resp->n_entry_ids == w->n && w->n > 0) {
        if (!w->first_id[0])
            copy_id(w->first_id, resp->entry_ids[0]);
        copy_id(w->last_id, resp->entry_ids[w->n - 1]);
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    w->entries_sent += w->n;
    w->requests++;
    batch_clear(w);
    return 0;
}

/* Adds raw bytes s[0..n) as one entry with the given insert_id suffix. */
static int add_entry(writer *w, const char *s, size_t n, unsigned part)
{
    char *text = NULL, id[MAX_SOURCE + 48];
    size_t len, n_invalid, n_nul;
    int rc;

    if (ann_utf8_repair(s, n, &text, &len, &n_invalid, &n_nul) < 0)
        return ann_cli_fail(w->cli, ANN_EXIT_FAILED, "out of memory");
    if (n_invalid || n_nul) {
        if (part <= 1)
            w->bad_lines++;
        if (w->warnings++ < MAX_WARNINGS)
            fprintf(w->cli->err,
                    "annals write: line %" PRIu64 ": %zu invalid UTF-8 sequence(s) and %zu NUL "
                    "byte(s) replaced with U+FFFD\n",
                    w->lineno, n_invalid, n_nul);
    }
    if (part)
        snprintf(id, sizeof id, "%s:%" PRIu64 ".%u", w->source, w->lineno, part);
    else
        snprintf(id, sizeof id, "%s:%" PRIu64, w->source, w->lineno);

    if (w->n > 0 && w->bytes + len > BATCH_BYTES && (rc = flush(w))) {
        free(text);
        return rc;
    }
    Annals__V1__LogEntry *e = &w->entries[w->n];
    annals__v1__log_entry__init(e);
    e->insert_id = strdup(id);
    if (!e->insert_id) {
        free(text);
        return ann_cli_fail(w->cli, ANN_EXIT_FAILED, "out of memory");
    }
    e->payload_case = ANNALS__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    e->text_payload = text;
    e->severity = (Annals__V1__LogEntry__Severity)w->severity;
    e->n_labels = w->n_labels;
    e->labels = w->labels;
    google__protobuf__timestamp__init(&w->times[w->n]);
    {
        int64_t sec;
        int32_t nsec;
        ann_cli_now(&sec, &nsec);
        w->times[w->n].seconds = sec;
        w->times[w->n].nanos = nsec;
    }
    e->time = &w->times[w->n];
    w->ptrs[w->n] = e;
    if (w->n == 0)
        w->first_ms = ann_cli_mono_ms();
    w->n++;
    w->bytes += len + strlen(id) + 32;
    if (w->n == BATCH_LINES || w->bytes >= BATCH_BYTES)
        return flush(w);
    return 0;
}

/* The line being read got long: emit its first CHUNK_BYTES (cut before a
 * UTF-8 lead byte where possible) as a part entry and keep the rest. */
static int emit_chunk(writer *w)
{
    size_t cut = CHUNK_BYTES;
    for (size_t back = 0; back < 4 && cut > back; back++) {
        if ((w->line.data[cut - back] & 0xC0) != 0x80) {
            cut -= back;
            break;
        }
    }
    int rc = add_entry(w, (const char *)w->line.data, cut, ++w->part);
    if (rc)
        return rc;
    memmove(w->line.data, w->line.data + cut, w->line.len - cut);
    w->line.len -= cut;
    return 0;
}

static int line_append(writer *w, const uint8_t *p, size_t n)
{
    if (w->line.len + n > w->line.cap) {
        size_t cap = w->line.cap ? w->line.cap : 4096;
        while (cap < w->line.len + n)
            cap *= 2;
        uint8_t *q = realloc(w->line.data, cap);
        if (!q)
            return ann_cli_fail(w->cli, ANN_EXIT_FAILED, "out of memory");
        w->line.data = q;
        w->line.cap = cap;
    }
    memcpy(w->line.data + w->line.len, p, n);
    w->line.len += n;
    return 0;
}

/* The current line is complete. */
static int end_line(writer *w)
{
    int rc = add_entry(w, (const char *)w->line.data, w->line.len, w->part ? w->part + 1 : 0);
    w->lines++;
    w->lineno++;
    w->part = 0;
    w->line.len = 0;
    return rc;
}

static int feed(writer *w, const uint8_t *p, size_t n)
{
    int rc;
    while (n > 0) {
        const uint8_t *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if ((rc = line_append(w, p, take)))
            return rc;
        while (w->line.len > CHUNK_BYTES)
            if ((rc = emit_chunk(w)))
                return rc;
        if (!nl)
            break;
        if ((rc = end_line(w)))
            return rc;
        p += take + 1;
        n -= take + 1;
    }
    return 0;
}

static int read_input(writer *w, int fd)
{
    uint8_t *buf = malloc(READ_BYTES);
    int rc = 0;
    if (!buf)
        return ann_cli_fail(w->cli, ANN_EXIT_FAILED, "out of memory");
    for (;;) {
        if (w->n > 0) {
            /* Something is waiting: do not hold it longer than FLUSH_MS. */
            int64_t left = w->first_ms + FLUSH_MS - ann_cli_mono_ms();
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;
            if (pr < 0 && errno != EINTR) {
                rc = ann_cli_fail(w->cli, ANN_EXIT_IO, "reading stdin: %s", strerror(errno));
                break;
            }
            if (pr == 0) {
                if ((rc = flush(w)))
                    break;
                continue;
            }
        }
        ssize_t got = read(fd, buf, READ_BYTES);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            rc = ann_cli_fail(w->cli, ANN_EXIT_IO, "reading stdin: %s", strerror(errno));
            break;
        }
        if (got == 0) {
            if (w->line.len > 0 || w->part > 0)
                rc = end_line(w);
            if (!rc)
                rc = flush(w);
            break;
        }
        if ((rc = feed(w, buf, (size_t)got)))
            break;
    }
    free(buf);
    return rc;
}

int ann_cmd_write(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"source", required_argument, NULL, 's'},
        {"severity", required_argument, NULL, 'v'},
        {"label", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    writer *w = calloc(1, sizeof *w);
    Annals__V1__LogEntry__LabelsEntry *labels = calloc((size_t)argc, sizeof *labels);
    Annals__V1__LogEntry__LabelsEntry **lptrs = calloc((size_t)argc, sizeof *lptrs);
    char random_source[24];
    int c, rc = ANN_EXIT_USAGE;

    if (!w || !labels || !lptrs) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "out of memory");
        goto done;
    }
    w->cli = cli;
    w->labels = lptrs;
    w->lineno = 1;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (!optarg[0] || strlen(optarg) > MAX_SOURCE ||
                !ann_utf8_valid(optarg, strlen(optarg))) {
                rc = ann_cli_fail(cli, ANN_EXIT_USAGE,
                                  "--source: 1 to %d bytes of UTF-8 expected", MAX_SOURCE);
                goto done;
            }
            w->source = optarg;
            break;
        case 'v':
            w->severity = ann_severity_parse(optarg);
            if (w->severity < 0) {
                rc = ann_cli_fail(cli, ANN_EXIT_USAGE,
                                  "--severity: expected TRACE, DEBUG, INFO, NOTICE, WARNING, "
                                  "ERROR, CRITICAL, ALERT or EMERGENCY");
                goto done;
            }
            break;
        case 'l': {
            Annals__V1__LogEntry__LabelsEntry *e = &labels[w->n_labels];
            annals__v1__log_entry__labels_entry__init(e);
            if (ann_cli_split_label(optarg, &e->key, &e->value) < 0) {
                rc = ann_cli_fail(cli, ANN_EXIT_USAGE, "--label: expected key=value");
                goto done;
            }
            lptrs[w->n_labels++] = e;
            break;
        }
        default: rc = ann_cli_bad_option(cli, argv, c); goto done;
        }
    }
    if (argc - optind != 1) {
        rc = ann_cli_fail(cli, ANN_EXIT_USAGE,
                          "usage: annals write LOG [--source NAME] [--severity S] "
                          "[--label k=v]...");
        goto done;
    }
    w->log_id = argv[optind];
    if (!w->source) {
        uint8_t rnd[8];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "getrandom: %s", strerror(errno));
            goto done;
        }
        for (size_t i = 0; i < sizeof rnd; i++)
            snprintf(random_source + 2 * i, 3, "%02x", rnd[i]);
        w->source = random_source;
        fprintf(cli->err, "annals write: source %s (pass --source %s to resume after a failure)\n",
                w->source, w->source);
    }
    if ((rc = ann_cli_connect(cli)))
        goto done;
    rc = read_input(w, 0);
    if (rc == 0) {
        fprintf(cli->err, "annals write: %" PRIu64 " line%s, %" PRIu64 " entr%s in %" PRIu64
                          " request%s (source ",
                w->lines, w->lines == 1 ? "" : "s", w->entries_sent,
                w->entries_sent == 1 ? "y" : "ies", w->requests, w->requests == 1 ? "" : "s");
        ann_put_term_str(cli->err, w->source);
        if (w->first_id[0]) {
            fputs("; entry ids ", cli->err);
            ann_put_term_str(cli->err, w->first_id);
            fputs("..", cli->err);
            ann_put_term_str(cli->err, w->last_id);
        }
        fputs(")\n", cli->err);
        if (w->bad_lines)
            fprintf(cli->err,
                    "annals write: %" PRIu64 " line%s had invalid UTF-8 or NUL bytes, "
                    "replaced with U+FFFD\n",
                    w->bad_lines, w->bad_lines == 1 ? "" : "s");
    }
done:
    if (w) {
        batch_clear(w);
        ann_buf_release(&w->line);
    }
    free(w);
    free(lptrs);
    free(labels);
    return rc;
}
