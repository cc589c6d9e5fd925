/* annals share LOG [--from ID] [--to ID] [--ttl D] [--url BASE]: a viewer link that reads
 * that log (and id range) and nothing else, until it expires (docs/viewer.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/text.h"
#include "client/rpc.h"

#define DEFAULT_WEB_URL "http://127.0.0.1:8080"

/* "90s", "15m", "12h", "7d" (or plain seconds) -> seconds; -1 when not one. */
static int64_t parse_ttl(const char *s)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || n <= 0 || n > 1000000000LL)
        return -1;
    int64_t unit = 1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        unit = 60, end++;
    else if (*end == 'h')
        unit = 3600, end++;
    else if (*end == 'd')
        unit = 86400, end++;
    return *end ? -1 : (int64_t)n * unit;
}

/* Only what a URL may carry unescaped goes out as is (ids and tokens are like that). */
static int url_safe(const char *s)
{
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~", *s))
            return 0;
    return 1;
}

int ann_cmd_share(ann_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"ttl", required_argument, NULL, 'l'},
        {"url", required_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    Annals__V1__CreateShareLinkRequest req = ANNALS__V1__CREATE_SHARE_LINK_REQUEST__INIT;
    Annals__Wire__V1__CreateShareLinkResponse *resp = NULL;
    ann_rpc_status st;
    const char *web = getenv("ANNALS_WEB_URL");
    int c, rc;

    if (!web || !*web)
        web = DEFAULT_WEB_URL;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            req.first_entry_id = optarg;
            break;
        case 't':
            req.last_entry_id = optarg;
            break;
        case 'l':
            if ((req.ttl_seconds = parse_ttl(optarg)) < 0)
                return ann_cli_fail(cli, ANN_EXIT_USAGE,
                                    "--ttl: expected a duration such as 90s, 15m, 12h or 7d");
            break;
        case 'u':
            web = optarg;
            break;
        default:
            return ann_cli_bad_option(cli, argv, c);
        }
    }
    if (argc - optind != 1)
        return ann_cli_fail(cli, ANN_EXIT_USAGE,
                            "usage: annals share LOG [--from ID] [--to ID] [--ttl 7d] [--url URL]");
    req.log_id = argv[optind];
    if ((rc = ann_cli_connect(cli)))
        return rc;
    if (ann_rpc_call(cli->client, ANN_METHOD_CREATE_SHARE_LINK, &req.base,
                     &annals__wire__v1__create_share_link_response__descriptor, cli->timeout_ms,
                     (ProtobufCMessage **)&resp, &st) < 0)
        return ann_cli_fail_rpc(cli, NULL, &st);
    char *tok = strndup((const char *)resp->token.data, resp->token.len);
    if (!tok || !url_safe(tok) || !url_safe(req.log_id)) {
        rc = ann_cli_fail(cli, ANN_EXIT_FAILED, "the server returned an unusable link");
        goto done;
    }
    size_t wl = strlen(web);
    while (wl && web[wl - 1] == '/')
        wl--;
    fprintf(cli->out, "%.*s/logs/%s?share=%s", (int)wl, web, req.log_id, tok);
    if (req.first_entry_id && *req.first_entry_id && url_safe(req.first_entry_id))
        fprintf(cli->out, "#L%s", req.first_entry_id);
    fputc('\n', cli->out);
    if (resp->expire_time) {
        time_t t = (time_t)resp->expire_time->seconds;
        struct tm tm;
        char when[64];
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(cli->err, "annals share: read-only link, expires %s\n", when);
    }
    rc = ANN_EXIT_OK;
done:
    free(tok);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}
