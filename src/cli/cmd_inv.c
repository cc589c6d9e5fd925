/*
 * The investigator's commands (docs/cli.md): annals logs | read | search.
 *
 * All three only read, except `search --revoke`, which first walks the whole
 * search (the walk is a snapshot), collecting every hit, and only then revokes
 * them log by log, in batches of at most ANN_MAX_REVOKE_IDS ids. Without --yes
 * it asks on the terminal first, and refuses when stdin is not one.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/hits.h"
#include "cli/render.h"
#include "cli/text.h"
#include "domain/limits.h"

/* ---------- annals logs ---------- */

static int logs_page(ann_cli *cli, const ProtobufCMessage *m, void *ud, ProtobufCBinaryData *next)
{
    const Annals__Wire__V1__ListLogsResponse *resp = (const void *)m;
    const ann_cli_filter *f = ud;
    for (size_t i = 0; i < resp->n_logs; i++)
        (f->json ? ann_cli_print_log_json : ann_cli_print_log_line)(cli->out, resp->logs[i]);
    *next = resp->next_page_token;
    return 0;
}

int ann_cmd_logs(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"label", required_argument, NULL, 'l'},
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    Annals__Wire__V1__ListLogsRequest req = ANNALS__WIRE__V1__LIST_LOGS_REQUEST__INIT;
    ann_cli_filter f;
    int c, rc = 0;

    ann_cli_filter_init(&f);
    optind = 0;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1)
        if ((rc = ann_cli_filter_opt(cli, &f, c, optarg)) < 0)
            rc = ann_cli_bad_option(cli, argv, c);
    if (rc)
        goto done;
    if (optind != argc) {
        rc = ann_cli_fail(cli, ANN_EXIT_USAGE,
                          "usage: annals logs [--label k=v]... [--since T] [--until T] [--json]");
        goto done;
    }
    req.label_filter = f.labels;
    req.n_label_filter = f.n_labels;
    req.start_time = ANN_CLI_SINCE(&f);
    req.end_time = ANN_CLI_UNTIL(&f);
    if ((rc = ann_cli_connect(cli)))
        goto done;
    rc = ann_cli_walk_pages(cli, ANN_METHOD_LIST_LOGS, &req.base, &req.page_token,
                            &annals__wire__v1__list_logs_response__descriptor, logs_page, &f);
done:
    ann_cli_filter_free(&f);
    return rc;
}

/* ---------- annals read ---------- */

int ann_cmd_read(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    Annals__Wire__V1__ReadLogEntriesRequest req = ANNALS__WIRE__V1__READ_LOG_ENTRIES_REQUEST__INIT;
    uint64_t first = 1, count = 0, printed = 0;
    char first_buf[24];
    int c, json = 0, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (ann_cli_parse_id(optarg, &first) < 0 || first == 0)
                return ann_cli_fail(cli, ANN_EXIT_USAGE,
                                    "--from: expected an entry id (1, 2, ...)");
            break;
        case 'n':
            if (ann_cli_parse_id(optarg, &count) < 0 || count == 0)
                return ann_cli_fail(cli, ANN_EXIT_USAGE,
                                    "--count: expected a number of entries (1, 2, ...)");
            break;
        case 'j':
            json = 1;
            break;
        default:
            return ann_cli_bad_option(cli, argv, c);
        }
    }
    if (argc - optind != 1)
        return ann_cli_fail(cli, ANN_EXIT_USAGE,
                            "usage: annals read LOG [--from ID] [--count N] [--json]");
    req.log_id = ANN_CLI_BYTES(argv[optind]);
    if ((rc = ann_cli_connect(cli)))
        return rc;

    for (;;) {
        Annals__Wire__V1__ReadLogEntriesResponse *resp;
        ProtobufCMessage *m = NULL;
        uint64_t next;
        snprintf(first_buf, sizeof first_buf, "%" PRIu64, first);
        req.first_entry_id = ANN_CLI_BYTES(first_buf);
        /* Ask for no more than is left to print. */
        req.page_size =
            count && count - printed < ANN_DEFAULT_PAGE_SIZE ? (int32_t)(count - printed) : 0;
        if ((rc = ann_cli_call(cli, NULL, ANN_METHOD_READ_LOG_ENTRIES, &req.base,
                               &annals__wire__v1__read_log_entries_response__descriptor, &m)))
            return rc;
        resp = (Annals__Wire__V1__ReadLogEntriesResponse *)m;
        for (size_t i = 0; i < resp->n_entries && !(count && printed == count); i++, printed++)
            (json ? ann_cli_print_entry_json : ann_cli_print_entry_text)(cli->out,
                                                                         resp->entries[i]);
        int done = (count && printed == count) || resp->next_entry_id.len == 0;
        /* The next id must move forward, or the walk would never end. */
        int bad =
            !done && (ann_cli_parse_id_bytes(resp->next_entry_id, &next) < 0 || next <= first);
        protobuf_c_message_free_unpacked(m, NULL);
        if ((rc = ann_cli_check_output(cli)))
            return rc;
        if (bad)
            return ann_cli_fail(cli, ANN_EXIT_FAILED, "the server sent a bad next_entry_id");
        if (done)
            return ANN_EXIT_OK;
        first = next;
    }
}

/* ---------- annals search ---------- */

typedef struct search_walk {
    ann_cli *cli;
    int json;
    ann_cli_hits *collect; /* --revoke: hits go here instead of stdout */
} search_walk;

static int search_page(ann_cli *cli, const ProtobufCMessage *m, void *ud, ProtobufCBinaryData *next)
{
    const Annals__Wire__V1__SearchLogEntriesResponse *resp = (const void *)m;
    search_walk *w = ud;
    for (size_t i = 0; i < resp->n_entries; i++) {
        const Annals__Wire__V1__LogEntry *e = resp->entries[i];
        if (!w->collect)
            (w->json ? ann_cli_print_entry_json : ann_cli_print_hit_text)(cli->out, e);
        else if (ann_cli_hits_add(w->collect, e->log_id, e->entry_id) < 0)
            return ann_cli_fail(cli, ANN_EXIT_FAILED,
                                "the server sent a hit with a malformed log or entry id");
    }
    *next = resp->next_page_token;
    return 0;
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* Prints the entries of one log revoked so far, hits v[0..n). */
static void print_revoked(ann_cli *cli, int json, const ann_cli_hit *v, size_t n)
{
    if (json) {
        fputs("{\"log_id\":", cli->out);
        ann_cli_put_json_cstr(cli->out, v[0].log_id);
        fputs(",\"revoked\":[", cli->out);
        for (size_t i = 0; i < n; i++)
            fprintf(cli->out, "%s\"%" PRIu64 "\"", i ? "," : "", v[i].entry_id);
        fputs("]}\n", cli->out);
    } else {
        ann_cli_put_term_str(cli->out, v[0].log_id);
        fputs(" revoked:", cli->out);
        for (size_t i = 0; i < n; i++)
            fprintf(cli->out, " %" PRIu64, v[i].entry_id);
        fputc('\n', cli->out);
    }
}

static void print_total(ann_cli *cli, int json, size_t entries, size_t logs)
{
    if (json)
        fprintf(cli->out, "{\"revoked\":%zu,\"logs\":%zu}\n", entries, logs);
    else
        fprintf(cli->out, "total: %zu %s revoked in %zu %s\n", entries,
                plural(entries, "entry", "entries"), logs, plural(logs, "log", "logs"));
}

/* Asks on the terminal. Returns 0 when the answer is yes, else an exit code. */
static int confirm(ann_cli *cli, size_t entries, size_t logs)
{
    char line[64];
    fprintf(cli->err,
            "annals search: %zu %s in %zu %s; revoke %s (payloads and labels are purged for "
            "good)? [y/N] ",
            entries, plural(entries, "hit", "hits"), logs, plural(logs, "log", "logs"),
            plural(entries, "it", "them all"));
    fflush(cli->err);
    if (!fgets(line, sizeof line, stdin) || !ann_cli_answer_is_yes(line))
        return ann_cli_fail(cli, ANN_EXIT_FAILED, "not confirmed; nothing was revoked");
    return 0;
}

/* Revokes every hit, log by log, in batches. Returns 0 or an exit code. */
static int revoke_hits(ann_cli *cli, int json, const ann_cli_hits *h, size_t logs,
                       const char *reason)
{
    Annals__V1__RevokeLogEntriesRequest req = ANNALS__V1__REVOKE_LOG_ENTRIES_REQUEST__INIT;
    size_t batch_max = h->n < ANN_MAX_REVOKE_IDS ? h->n : ANN_MAX_REVOKE_IDS;
    char(*ids)[24] = ann_xcalloc(batch_max ? batch_max : 1, sizeof *ids);
    char **ptrs = ann_xcalloc(batch_max ? batch_max : 1, sizeof *ptrs);
    size_t done = 0;
    int rc = 0;

    req.reason = (char *)reason;
    req.entry_ids = ptrs;
    for (size_t start = 0; start < h->n && !rc;) {
        size_t end = ann_cli_hits_log_end(h, start);
        req.log_id = (char *)h->v[start].log_id;
        for (size_t b = start; b < end; b += req.n_entry_ids) {
            ProtobufCMessage *m = NULL;
            req.n_entry_ids = end - b < batch_max ? end - b : batch_max;
            for (size_t i = 0; i < req.n_entry_ids; i++) {
                snprintf(ids[i], sizeof ids[i], "%" PRIu64, h->v[b + i].entry_id);
                ptrs[i] = ids[i];
            }
            if ((rc = ann_cli_call(
                     cli, "RevokeLogEntries", ANN_METHOD_REVOKE_LOG_ENTRIES, &req.base,
                     &annals__wire__v1__revoke_log_entries_response__descriptor, &m))) {
                if (b > start) /* what this log already had revoked */
                    print_revoked(cli, json, &h->v[start], b - start);
                done += b - start;
                break;
            }
            protobuf_c_message_free_unpacked(m, NULL);
        }
        if (!rc) {
            print_revoked(cli, json, &h->v[start], end - start);
            done += end - start;
            rc = ann_cli_check_output(cli);
        }
        start = end;
    }
    if (rc)
        fprintf(cli->err,
                "annals search: %zu of %zu entries were revoked before this failure; run the "
                "same command again to revoke the rest\n",
                done, h->n);
    else
        print_total(cli, json, h->n, logs);
    free(ptrs);
    free(ids);
    return rc;
}

int ann_cmd_search(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"label", required_argument, NULL, 'l'}, {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'}, {"json", no_argument, NULL, 'j'},
        {"log", required_argument, NULL, 'L'},   {"ignore-case", no_argument, NULL, 'i'},
        {"revoke", no_argument, NULL, 'R'},      {"reason", required_argument, NULL, 'r'},
        {"yes", no_argument, NULL, 'y'},         {NULL, 0, NULL, 0},
    };
    Annals__Wire__V1__SearchLogEntriesRequest req =
        ANNALS__WIRE__V1__SEARCH_LOG_ENTRIES_REQUEST__INIT;
    ProtobufCBinaryData *log_ids = ann_xcalloc((size_t)argc, sizeof *log_ids);
    ann_cli_hits hits = {0};
    search_walk w = {.cli = cli};
    const char *reason = NULL;
    ann_cli_filter f;
    int c, rc = 0, revoke = 0, yes = 0;

    ann_cli_filter_init(&f);
    optind = 0;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'L':
            log_ids[req.n_log_ids++] = ANN_CLI_BYTES(optarg);
            break;
        case 'i':
            req.ignore_case = 1;
            break;
        case 'R':
            revoke = 1;
            break;
        case 'r':
            reason = optarg;
            break;
        case 'y':
            yes = 1;
            break;
        default:
            if ((rc = ann_cli_filter_opt(cli, &f, c, optarg)) < 0)
                rc = ann_cli_bad_option(cli, argv, c);
        }
    }
    if (rc)
        goto done;
    if (argc - optind != 1) {
        rc = ann_cli_fail(cli, ANN_EXIT_USAGE,
                          "usage: annals search QUERY [--label k=v]... [--log LOG]... "
                          "[--since T] [--until T] [--ignore-case] [--json] "
                          "[--revoke --reason R [--yes]]");
        goto done;
    }
    const char *query = argv[optind];
    if (!*query || !ann_cli_utf8_valid(query, strlen(query))) {
        rc = ann_cli_fail(cli, ANN_EXIT_USAGE, "QUERY: expected a non-empty UTF-8 string");
        goto done;
    }
    if (revoke && !reason) {
        rc = ann_cli_fail(cli, ANN_EXIT_USAGE,
                          "--revoke needs --reason R (kept in the audit record; may be empty)");
        goto done;
    }
    if (!revoke && (reason || yes)) {
        rc = ann_cli_fail(cli, ANN_EXIT_USAGE, "--reason and --yes go with --revoke");
        goto done;
    }
    if (reason && !ann_cli_utf8_valid(reason, strlen(reason))) {
        rc = ann_cli_fail(cli, ANN_EXIT_USAGE, "--reason: not valid UTF-8");
        goto done;
    }
    if (revoke && !yes && !isatty(STDIN_FILENO)) {
        rc = ann_cli_fail(cli, ANN_EXIT_USAGE,
                          "--revoke asks for confirmation on a terminal, and standard input is "
                          "not one; add --yes to revoke without asking. Nothing was revoked.");
        goto done;
    }
    req.query = ANN_CLI_BYTES(query);
    req.log_ids = log_ids;
    req.label_filter = f.labels;
    req.n_label_filter = f.n_labels;
    req.start_time = ANN_CLI_SINCE(&f);
    req.end_time = ANN_CLI_UNTIL(&f);
    w.json = f.json;
    w.collect = revoke ? &hits : NULL;
    if ((rc = ann_cli_connect(cli)))
        goto done;
    rc = ann_cli_walk_pages(cli, ANN_METHOD_SEARCH_LOG_ENTRIES, &req.base, &req.page_token,
                            &annals__wire__v1__search_log_entries_response__descriptor, search_page,
                            &w);
    if (rc || !revoke)
        goto done;

    /* The walk is complete: now revoke what it found. */
    size_t logs = ann_cli_hits_sort(&hits);
    if (hits.n == 0) {
        fputs("annals search: no hits; nothing to revoke\n", cli->err);
        print_total(cli, f.json, 0, 0);
        goto done;
    }
    if (!yes && (rc = confirm(cli, hits.n, logs)))
        goto done;
    fprintf(cli->err, "annals search: revoking %zu %s in %zu %s\n", hits.n,
            plural(hits.n, "entry", "entries"), logs, plural(logs, "log", "logs"));
    rc = revoke_hits(cli, f.json, &hits, logs, reason);
done:
    ann_cli_hits_free(&hits);
    ann_cli_filter_free(&f);
    free(log_ids);
    return rc;
}
