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
 * batch can be retried on UNAVAILABLE without duplicates. A line too long for
 * one entry (the service takes at most ANN_MAX_ENTRY_BYTES per serialized
 * entry) is split at character boundaries into entries "<source>:<n>.1",
 * "<source>:<n>.2", ... in order; the split points depend only on the input,
 * the labels and the source, so a re-run splits the same way.
 *
 * The API carries text as UTF-8 and the server rejects anything else, so each
 * invalid UTF-8 sequence is replaced with U+FFFD and reported on stderr.
 * Everything else, NUL bytes included, goes out exactly: the request is
 * built with the wire view of the messages (bytes, not C strings).
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
#include "domain/limits.h"

#define BATCH_LINES 1000
#define BATCH_BYTES (1024 * 1024)
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
    Annals__Wire__V1__Label **labels;
    size_t n_labels;

    /* The batch being filled; entries own their insert_id and text. */
    Annals__Wire__V1__LogEntry entries[BATCH_LINES];
    Annals__Wire__V1__LogEntry *ptrs[BATCH_LINES];
    Annals__Wire__V1__Timestamp times[BATCH_LINES];
    size_t n, bytes;
    int64_t first_ms; /* when the batch's first line was read */

    /* The line being read (possibly across reads), raw bytes. */
    ann_buf line;
    uint64_t lineno;   /* of the line being read */
    unsigned part;     /* chunks of it already emitted */
    size_t line_bad;   /* invalid UTF-8 sequences replaced in it so far */
    size_t text_limit; /* most text bytes one entry can carry */
    char *text;        /* scratch of text_limit + 1 bytes */

    /* Totals for the summary. */
    uint64_t lines, entries_sent, requests, bad_lines;
    char first_id[32], last_id[32];
} writer;

static void batch_clear(writer *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->entries[i].insert_id.data);
        free(w->entries[i].text_payload.data);
    }
    w->n = 0;
    w->bytes = 0;
}

/* Keeps an entry id from the server for the summary (escaped when shown). */
static void copy_id(char dst[32], ProtobufCBinaryData id)
{
    size_t n = id.len < 31 ? id.len : 31;
    if (n)
        memcpy(dst, id.data, n);
    dst[n] = '\0';
}

/* Sends the batch, retrying what is safe to retry. Returns 0 or an exit code. */
static int flush(writer *w)
{
    Annals__Wire__V1__WriteLogEntriesRequest req =
        ANNALS__WIRE__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    Annals__Wire__V1__WriteLogEntriesResponse *resp = NULL;
    ann_rpc_status st;
    int64_t backoff = BACKOFF_FIRST_MS;

    if (w->n == 0)
        return 0;
    req.log_id.data = (uint8_t *)w->log_id;
    req.log_id.len = strlen(w->log_id);
    req.n_entries = w->n;
    req.entries = w->ptrs;
    for (int attempt = 1;; attempt++) {
        if (ann_rpc_write_log_entries(w->cli->client, &req, w->cli->timeout_ms, &resp, &st) == 0)
            break;
        if (!ann_cli_retryable(&st) || attempt >= MAX_ATTEMPTS) {
            int rc = ann_cli_fail_rpc(w->cli, "WriteLogEntries", &st);
            fprintf(w->cli->err,
                    "annals write: %" PRIu64 " entries were acknowledged before this failure; "
                    "run again with --source ",
                    w->entries_sent);
            ann_cli_put_term_str(w->cli->err, w->source);
            fputs(" to resume without duplicates\n", w->cli->err);
            return rc;
        }
        fprintf(w->cli->err, "annals write: %s: ", ann_rpc_code_name(st.code));
        ann_cli_put_term_str(w->cli->err, st.msg);
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

/* Adds a repaired text (copied) as one entry; part 0 means the whole line. */
static int add_entry(writer *w, const char *text, size_t len, unsigned part)
{
    char id[MAX_SOURCE + 48];
    int rc;

    if (part)
        snprintf(id, sizeof id, "%s:%" PRIu64 ".%u", w->source, w->lineno, part);
    else
        snprintf(id, sizeof id, "%s:%" PRIu64, w->source, w->lineno);
    if (w->n > 0 && w->bytes + len > BATCH_BYTES && (rc = flush(w)))
        return rc;
    Annals__Wire__V1__LogEntry *e = &w->entries[w->n];
    annals__wire__v1__log_entry__init(e);
    size_t id_len = strlen(id);
    e->insert_id.data = malloc(id_len);
    e->text_payload.data = malloc(len ? len : 1);
    if (!e->insert_id.data || !e->text_payload.data) {
        free(e->insert_id.data);
        free(e->text_payload.data);
        return ann_cli_fail(w->cli, ANN_EXIT_FAILED, "out of memory");
    }
    memcpy(e->insert_id.data, id, id_len);
    e->insert_id.len = id_len;
    memcpy(e->text_payload.data, text, len);
    e->text_payload.len = len;
    e->payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    e->severity = w->severity;
    e->n_labels = w->n_labels;
    e->labels = w->labels;
    annals__wire__v1__timestamp__init(&w->times[w->n]);
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
    w->bytes += len + id_len + 32;
    if (w->n == BATCH_LINES || w->bytes >= BATCH_BYTES)
        return flush(w);
    return 0;
}

/* Repairs and emits the start of the line as one entry (part > 0, or 0 when
 * `final` and the whole rest fits); drops the bytes it used. */
static int emit_prefix(writer *w, int final)
{
    size_t len, n_invalid = 0;
    size_t used = ann_cli_utf8_repair_prefix((const char *)w->line.data, w->line.len, w->text_limit,
                                             final, w->text, &len, &n_invalid);
    w->line_bad += n_invalid;
    unsigned part = final && w->part == 0 && used == w->line.len ? 0 : ++w->part;
    int rc = add_entry(w, w->text, len, part);
    memmove(w->line.data, w->line.data + used, w->line.len - used);
    w->line.len -= used;
    return rc;
}

static int line_append(writer *w, const uint8_t *p, size_t n)
{
    ann_buf_add(&w->line, p, n);
    return 0;
}

/* The current line is complete. */
static int end_line(writer *w)
{
    int rc;
    do {
        if ((rc = emit_prefix(w, 1)))
            return rc;
    } while (w->line.len > 0);
    if (w->line_bad) {
        w->bad_lines++;
        if (w->bad_lines <= MAX_WARNINGS)
            fprintf(w->cli->err,
                    "annals write: line %" PRIu64 ": %zu invalid UTF-8 sequence%s replaced with "
                    "U+FFFD\n",
                    w->lineno, w->line_bad, w->line_bad == 1 ? "" : "s");
    }
    w->lines++;
    w->lineno++;
    w->part = 0;
    w->line_bad = 0;
    return 0;
}

static int feed(writer *w, const uint8_t *p, size_t n)
{
    int rc;
    while (n > 0) {
        const uint8_t *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if ((rc = line_append(w, p, take)))
            return rc;
        /* A long line goes out in pieces rather than piling up in memory. */
        while (w->line.len > w->text_limit + 4)
            if ((rc = emit_prefix(w, 0)))
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

/* How many text bytes fit in one entry next to its insert_id, time, severity
 * and labels; 0 when the labels alone are too big. */
static size_t text_limit(const writer *w)
{
    Annals__Wire__V1__LogEntry e = ANNALS__WIRE__V1__LOG_ENTRY__INIT;
    Annals__Wire__V1__Timestamp t = ANNALS__WIRE__V1__TIMESTAMP__INIT;
    char id[MAX_SOURCE + 48];
    snprintf(id, sizeof id, "%s:%" PRIu64 ".%u", w->source, UINT64_MAX, UINT32_MAX);
    t.seconds = INT64_MAX;
    t.nanos = 999999999;
    e.insert_id.data = (uint8_t *)id;
    e.insert_id.len = strlen(id);
    e.time = &t;
    e.severity = 900;
    e.n_labels = w->n_labels;
    e.labels = w->labels;
    e.payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    /* + up to 3 more bytes for the text's length as the text grows */
    size_t overhead = annals__wire__v1__log_entry__get_packed_size(&e) + 3;
    if (overhead + 1024 > ANN_MAX_ENTRY_BYTES)
        return 0;
    return ANN_MAX_ENTRY_BYTES - overhead;
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
    Annals__Wire__V1__Label *labels = calloc((size_t)argc, sizeof *labels);
    Annals__Wire__V1__Label **lptrs = calloc((size_t)argc, sizeof *lptrs);
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
                !ann_cli_utf8_valid(optarg, strlen(optarg))) {
                rc = ann_cli_fail(cli, ANN_EXIT_USAGE, "--source: 1 to %d bytes of UTF-8 expected",
                                  MAX_SOURCE);
                goto done;
            }
            w->source = optarg;
            break;
        case 'v':
            w->severity = ann_cli_severity_parse(optarg);
            if (w->severity < 0) {
                rc = ann_cli_fail(cli, ANN_EXIT_USAGE,
                                  "--severity: expected TRACE, DEBUG, INFO, NOTICE, WARNING, "
                                  "ERROR, CRITICAL, ALERT or EMERGENCY");
                goto done;
            }
            break;
        case 'l': {
            Annals__Wire__V1__Label *e = &labels[w->n_labels];
            char *k, *v;
            annals__wire__v1__label__init(e);
            if (ann_cli_split_label(optarg, &k, &v) < 0) {
                rc = ann_cli_fail(cli, ANN_EXIT_USAGE, "--label: expected key=value");
                goto done;
            }
            e->key.data = (uint8_t *)k;
            e->key.len = strlen(k);
            e->value.data = (uint8_t *)v;
            e->value.len = strlen(v);
            lptrs[w->n_labels++] = e;
            break;
        }
        default:
            rc = ann_cli_bad_option(cli, argv, c);
            goto done;
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
    w->text_limit = text_limit(w);
    if (!w->text_limit) {
        rc = ann_cli_fail(cli, ANN_EXIT_USAGE, "--label: the labels leave no room for text");
        goto done;
    }
    w->text = malloc(w->text_limit + 1);
    if (!w->text) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "out of memory");
        goto done;
    }
    if ((rc = ann_cli_connect(cli)))
        goto done;
    rc = read_input(w, 0);
    if (rc == 0) {
        fprintf(cli->err,
                "annals write: %" PRIu64 " line%s, %" PRIu64 " entr%s in %" PRIu64
                " request%s (source ",
                w->lines, w->lines == 1 ? "" : "s", w->entries_sent,
                w->entries_sent == 1 ? "y" : "ies", w->requests, w->requests == 1 ? "" : "s");
        ann_cli_put_term_str(cli->err, w->source);
        if (w->first_id[0]) {
            fputs("; entry ids ", cli->err);
            ann_cli_put_term_str(cli->err, w->first_id);
            fputs("..", cli->err);
            ann_cli_put_term_str(cli->err, w->last_id);
        }
        fputs(")\n", cli->err);
        if (w->bad_lines)
            fprintf(cli->err,
                    "annals write: %" PRIu64 " line%s had invalid UTF-8, "
                    "replaced with U+FFFD\n",
                    w->bad_lines, w->bad_lines == 1 ? "" : "s");
    }
done:
    if (w) {
        batch_clear(w);
        ann_buf_release(&w->line);
        free(w->text);
    }
    free(w);
    free(lptrs);
    free(labels);
    return rc;
}
