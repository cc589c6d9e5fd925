/* annals list | tail */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/render.h"
#include "cli/text.h"
#include "cli/timefmt.h"
#include "client/rpc.h"

#define BACKOFF_FIRST_MS ANN_CLI_BACKOFF_FIRST_MS
#define BACKOFF_MAX_MS ANN_CLI_BACKOFF_MAX_MS

static void print_entry(ann_cli *cli, const Annals__Wire__V1__LogEntry *e, int json)
{
    if (json)
        ann_cli_print_entry_json(cli->out, e);
    else
        ann_cli_print_entry_text(cli->out, e);
}

static int list_page(ann_cli *cli, const ProtobufCMessage *m, void *ud, ProtobufCBinaryData *next)
{
    const Annals__Wire__V1__ListLogEntriesResponse *resp = (const void *)m;
    for (size_t i = 0; i < resp->n_entries; i++)
        print_entry(cli, resp->entries[i], *(const int *)ud);
    *next = resp->next_page_token;
    return 0;
}

int ann_cmd_list(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},
        {"page-size", required_argument, NULL, 'p'},
        {"contains", required_argument, NULL, 'c'},
        {"min-severity", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    Annals__Wire__V1__ListLogEntriesRequest req = ANNALS__WIRE__V1__LIST_LOG_ENTRIES_REQUEST__INIT;
    ann_cli_filter f; /* no --label here, so it owns nothing to free */
    int c, rc;

    ann_cli_filter_init(&f);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'p': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 1000)
                return ann_cli_fail(cli, ANN_EXIT_USAGE, "--page-size: expected 1..1000");
            req.page_size = (int32_t)v;
            break;
        }
        case 'c':
            if (!ann_cli_utf8_valid(optarg, strlen(optarg)))
                return ann_cli_fail(cli, ANN_EXIT_USAGE, "--contains: not valid UTF-8");
            req.text_contains = ANN_CLI_BYTES(optarg);
            break;
        case 'm': {
            int sev = ann_cli_severity_parse(optarg);
            if (sev < 0)
                return ann_cli_fail(cli, ANN_EXIT_USAGE,
                                    "--min-severity: expected a severity name (INFO, ...)");
            req.min_severity = sev;
            break;
        }
        default:
            if ((rc = ann_cli_filter_opt(cli, &f, c, optarg)) < 0)
                return ann_cli_bad_option(cli, argv, c);
            if (rc)
                return rc;
        }
    }
    if (argc - optind != 1)
        return ann_cli_fail(cli, ANN_EXIT_USAGE,
                            "usage: annals list LOG [--since T] [--until T] [--json] "
                            "[--page-size N]");
    req.log_id = ANN_CLI_BYTES(argv[optind]);
    req.start_time = ANN_CLI_SINCE(&f);
    req.end_time = ANN_CLI_UNTIL(&f);
    if ((rc = ann_cli_connect(cli)))
        return rc;
    return ann_cli_walk_pages(cli, ANN_METHOD_LIST_LOG_ENTRIES, &req.base, &req.page_token,
                              &annals__wire__v1__list_log_entries_response__descriptor, list_page,
                              &f.json);
}

/* Where the tail starts when no --after is given: after the log's current last
 * entry. Asking for it explicitly (instead of sending "") means a reconnect
 * before the first entry still resumes at the right place. */
static int tail_start_point(ann_cli *cli, const char *log_id, uint64_t *after)
{
    Annals__V1__GetLogRequest req = ANNALS__V1__GET_LOG_REQUEST__INIT;
    Annals__Wire__V1__GetLogResponse *resp = NULL;
    ann_rpc_status st;
    int64_t backoff = BACKOFF_FIRST_MS;

    req.log_id = (char *)log_id;
    while (ann_rpc_get_log(cli->client, &req, cli->timeout_ms, &resp, &st) < 0) {
        if (!ann_cli_retryable(&st) || (cli->stop && *cli->stop))
            return ann_cli_fail_rpc(cli, NULL, &st);
        ann_cli_sleep_ms(cli, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    int64_t n = resp->log ? resp->log->entry_count : 0;
    *after = n > 0 ? (uint64_t)n : 0;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return 0;
}

int ann_cmd_tail(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"after", required_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    Annals__V1__TailLogEntriesRequest req = ANNALS__V1__TAIL_LOG_ENTRIES_REQUEST__INIT;
    ann_client_stream *stream = NULL;
    ann_rpc_status st;
    const char *after_arg = NULL;
    uint64_t last = 0;
    char after[32];
    int c, json = 0, rc, warned = 0;
    int64_t backoff = BACKOFF_FIRST_MS;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            after_arg = optarg;
            break;
        case 'j':
            json = 1;
            break;
        default:
            return ann_cli_bad_option(cli, argv, c);
        }
    }
    if (argc - optind != 1)
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "usage: annals tail LOG [--after ID] [--json]");
    req.log_id = argv[optind];
    if (after_arg && ann_cli_parse_id(after_arg, &last) < 0)
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "--after: expected an entry id (0 for the start)");
    if ((rc = ann_cli_connect(cli)))
        return rc;
    if (!after_arg && (rc = tail_start_point(cli, req.log_id, &last)))
        return rc;

    while (!(cli->stop && *cli->stop)) {
        snprintf(after, sizeof after, "%" PRIu64, last);
        req.after_entry_id = after;
        if (ann_rpc_tail_start(cli->client, &req, &stream, &st) < 0)
            return ann_cli_fail_rpc(cli, NULL, &st);
        for (;;) {
            Annals__Wire__V1__TailLogEntriesResponse *resp = NULL;
            int r = ann_rpc_tail_next(stream, 200, &resp, &st);
            if (cli->stop && *cli->stop) {
                if (resp)
                    protobuf_c_message_free_unpacked(&resp->base, NULL);
                break;
            }
            if (r == ANN_STREAM_TIMEOUT)
                continue;
            if (r == ANN_STREAM_END)
                break;
            for (size_t i = 0; i < resp->n_entries; i++) {
                const Annals__Wire__V1__LogEntry *e = resp->entries[i];
                uint64_t id;
                /* Each entry once: skip what a resumed stream repeats. */
                if (ann_cli_parse_id_bytes(e->entry_id, &id) == 0) {
                    if (id <= last)
                        continue;
                    last = id;
                }
                print_entry(cli, e, json);
            }
            protobuf_c_message_free_unpacked(&resp->base, NULL);
            if ((rc = ann_cli_check_output(cli))) {
                ann_client_stream_free(stream);
                return rc;
            }
            backoff = BACKOFF_FIRST_MS;
            warned = 0;
        }
        ann_client_stream_free(stream);
        stream = NULL;
        if (cli->stop && *cli->stop)
            break;
        /* The stream ended. A server going away (or ending the stream) is not
         * the end of a tail: resume after the last id seen. */
        if (st.code != ANN_RPC_OK && st.code != ANN_RPC_CANCELLED && !ann_cli_retryable(&st))
            return ann_cli_fail_rpc(cli, NULL, &st);
        if (!warned) {
            fprintf(cli->err, "annals tail: %s: ", ann_rpc_code_name(st.code));
            ann_cli_put_term_str(cli->err, st.msg);
            fprintf(cli->err, "; reconnecting after entry %" PRIu64 "\n", last);
            warned = 1;
        }
        ann_cli_sleep_ms(cli, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return ANN_EXIT_OK;
}
