/* annals log create | log get | delete | revoke | hold | release */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/render.h"
#include "cli/text.h"
#include "client/rpc.h"

int ann_cmd_log_create(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"label", required_argument, NULL, 'l'},
        {"retention-days", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    Annals__V1__CreateLogRequest req = ANNALS__V1__CREATE_LOG_REQUEST__INIT;
    Annals__Wire__V1__CreateLogResponse *resp = NULL;
    Annals__V1__CreateLogRequest__LabelsEntry *labels = NULL, **ptrs = NULL;
    ann_rpc_status st;
    int c, rc = ANN_EXIT_USAGE;

    labels = calloc((size_t)argc, sizeof *labels);
    ptrs = calloc((size_t)argc, sizeof *ptrs);
    if (!labels || !ptrs) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "out of memory");
        goto done;
    }
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'r') {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 0 || v > 36500) {
                rc = ann_cli_fail(cli, ANN_EXIT_USAGE,
                                  "--retention-days: a whole number of days, 0 to 36500");
                goto done;
            }
            req.retention_days = (int32_t)v;
            continue;
        }
        if (c != 'l') {
            rc = ann_cli_bad_option(cli, argv, c);
            goto done;
        }
        Annals__V1__CreateLogRequest__LabelsEntry *e = &labels[req.n_labels];
        annals__v1__create_log_request__labels_entry__init(e);
        if (ann_cli_split_label(optarg, &e->key, &e->value) < 0) {
            rc = ann_cli_fail(cli, ANN_EXIT_USAGE, "--label: expected key=value");
            goto done;
        }
        ptrs[req.n_labels++] = e;
    }
    if (optind != argc) {
        rc = ann_cli_fail(cli, ANN_EXIT_USAGE,
                          "unexpected argument (usage: annals log create "
                          "[--label k=v]... [--retention-days N])");
        goto done;
    }
    req.labels = ptrs;
    if ((rc = ann_cli_connect(cli)))
        goto done;
    if (ann_rpc_create_log(cli->client, &req, cli->timeout_ms, &resp, &st) < 0) {
        rc = ann_cli_fail_rpc(cli, NULL, &st);
        goto done;
    }
    if (!resp->log || !resp->log->id.len) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "the server returned no log id");
        goto done;
    }
    ANN_CLI_PUT_TERM_BYTES(cli->out, resp->log->id);
    fputc('\n', cli->out);
    rc = ANN_EXIT_OK;
done:
    if (resp)
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    free(ptrs);
    free(labels);
    return rc;
}

int ann_cmd_log_get(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    Annals__V1__GetLogRequest req = ANNALS__V1__GET_LOG_REQUEST__INIT;
    Annals__Wire__V1__GetLogResponse *resp = NULL;
    ann_rpc_status st;
    int c, json = 0, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c != 'j')
            return ann_cli_bad_option(cli, argv, c);
        json = 1;
    }
    if (argc - optind != 1)
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "usage: annals log get LOG [--json]");
    req.log_id = argv[optind];
    if ((rc = ann_cli_connect(cli)))
        return rc;
    if (ann_rpc_get_log(cli->client, &req, cli->timeout_ms, &resp, &st) < 0)
        return ann_cli_fail_rpc(cli, NULL, &st);
    if (!resp->log) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "the server returned no log");
    } else {
        if (json)
            ann_cli_print_log_json_full(cli->out, resp->log);
        else
            ann_cli_print_log_text(cli->out, resp->log);
        rc = ANN_EXIT_OK;
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

int ann_cmd_delete(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {{NULL, 0, NULL, 0}};
    Annals__V1__DeleteLogRequest req = ANNALS__V1__DELETE_LOG_REQUEST__INIT;
    Annals__Wire__V1__DeleteLogResponse *resp = NULL;
    ann_rpc_status st;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1)
        return ann_cli_bad_option(cli, argv, c);
    if (argc - optind != 1)
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "usage: annals delete LOG");
    req.log_id = argv[optind];
    if ((rc = ann_cli_connect(cli)))
        return rc;
    if (ann_rpc_delete_log(cli->client, &req, cli->timeout_ms, &resp, &st) < 0)
        return ann_cli_fail_rpc(cli, NULL, &st);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    fputs("annals delete: deleted log ", cli->err);
    ann_cli_put_term_str(cli->err, req.log_id);
    fputc('\n', cli->err);
    return ANN_EXIT_OK;
}

int ann_cmd_revoke(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"reason", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    Annals__V1__RevokeLogEntriesRequest req = ANNALS__V1__REVOKE_LOG_ENTRIES_REQUEST__INIT;
    Annals__Wire__V1__RevokeLogEntriesResponse *resp = NULL;
    const char *reason = NULL;
    ann_rpc_status st;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c != 'r')
            return ann_cli_bad_option(cli, argv, c);
        reason = optarg;
    }
    if (argc - optind < 2 || !reason)
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "usage: annals revoke LOG ID... --reason R");
    if (!ann_cli_utf8_valid(reason, strlen(reason)))
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "--reason: not valid UTF-8");
    req.log_id = argv[optind];
    req.entry_ids = argv + optind + 1;
    req.n_entry_ids = (size_t)(argc - optind - 1);
    req.reason = (char *)reason;
    if ((rc = ann_cli_connect(cli)))
        return rc;
    if (ann_rpc_revoke_log_entries(cli->client, &req, cli->timeout_ms, &resp, &st) < 0)
        return ann_cli_fail_rpc(cli, NULL, &st);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    fprintf(cli->err, "annals revoke: revoked %zu entr%s\n", req.n_entry_ids,
            req.n_entry_ids == 1 ? "y" : "ies");
    return ANN_EXIT_OK;
}

/* annals hold LOG --reason R | annals release LOG --reason R */
int ann_cmd_hold(ann_cli *cli, int argc, char **argv, bool hold)
{
    static const struct option opts[] = {
        {"reason", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    Annals__V1__SetLegalHoldRequest req = ANNALS__V1__SET_LEGAL_HOLD_REQUEST__INIT;
    Annals__Wire__V1__SetLegalHoldResponse *resp = NULL;
    const char *reason = NULL;
    ann_rpc_status st;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c != 'r')
            return ann_cli_bad_option(cli, argv, c);
        reason = optarg;
    }
    if (argc - optind != 1 || !reason)
        return ann_cli_fail(cli, ANN_EXIT_USAGE,
                            hold ? "usage: annals hold LOG --reason R"
                                 : "usage: annals release LOG --reason R");
    if (!ann_cli_utf8_valid(reason, strlen(reason)))
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "--reason: not valid UTF-8");
    req.log_id = argv[optind];
    req.hold = hold;
    req.reason = (char *)reason;
    if ((rc = ann_cli_connect(cli)))
        return rc;
    if (ann_rpc_set_legal_hold(cli->client, &req, cli->timeout_ms, &resp, &st) < 0)
        return ann_cli_fail_rpc(cli, NULL, &st);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    fprintf(cli->err, "annals %s: log ", hold ? "hold" : "release");
    ann_cli_put_term_str(cli->err, req.log_id);
    fputs(hold ? " is on legal hold\n" : " is released from legal hold\n", cli->err);
    return ANN_EXIT_OK;
}
