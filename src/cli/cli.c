#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/text.h"
#include "cli/timefmt.h"

#define DEFAULT_ADDR "127.0.0.1:50051"
#define DEFAULT_TIMEOUT_MS 30000
#define MAX_CA_FILE (1 << 20)

static const char usage_text[] =
    "usage: annals <command> [options]\n"
    "\n"
    "  log create [--label k=v]... [--retention-days N]\n"
    "                                       create a log; prints its id\n"
    "  log get LOG [--json]                 show a log's metadata\n"
    "  write LOG [--source NAME] [--severity S] [--label k=v]...\n"
    "                                       one entry per stdin line\n"
    "  list LOG [--since T] [--until T] [--page-size N] [--contains S]\n"
    "           [--min-severity S] [--json] every entry in a time window\n"
    "  tail LOG [--after ID] [--json]       follow new entries until interrupted\n"
    "  revoke LOG ID... --reason R          redact entries\n"
    "  hold LOG --reason R                  put a log on legal hold (admin)\n"
    "  release LOG --reason R               release a log's legal hold (admin)\n"
    "  logs [--label k=v]... [--since T] [--until T] [--json]\n"
    "                                       the logs, newest first\n"
    "  read LOG [--from ID] [--count N] [--json]\n"
    "                                       entries in id order\n"
    "  search QUERY [--label k=v]... [--log LOG]... [--since T] [--until T]\n"
    "         [--ignore-case] [--json]     every entry containing QUERY, in any log\n"
    "  search QUERY ... --revoke --reason R [--yes]\n"
    "                                       revoke every hit (asks first without --yes)\n"
    "  delete LOG                           delete a log and all its entries\n"
    "  verify LOG --key VERIFIER_KEY [--checkpoint FILE] [--save FILE]\n"
    "                                       check the log against its signed checkpoint\n"
    "  prove LOG ID --key VERIFIER_KEY      an offline proof bundle (JSON) for one entry\n"
    "  verify-proof BUNDLE --key VERIFIER_KEY\n"
    "                                       check a bundle, offline\n"
    "  share LOG [--from ID] [--to ID] [--ttl 7d] [--url URL]\n"
    "                                       a read-only viewer link to LOG (or a range)\n"
    "\n"
    "environment: ANNALS_ADDR (default " DEFAULT_ADDR "), ANNALS_TOKEN,\n"
    "             ANNALS_TLS=1, ANNALS_CA_FILE=<pem>, ANNALS_WEB_URL (share links;\n"
    "             default http://127.0.0.1:8080)\n"
    "times T: RFC 3339 (2026-01-02T15:04:05Z), a date, -<n><s|m|h|d>, now, @<unix>\n"
    "exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 unauthenticated,\n"
    "            5 invalid argument, 6 unavailable, 7 resource exhausted, 8 i/o\n";

int ann_cli_exit_code(int code)
{
    switch (code) {
    case ANN_RPC_OK:
        return ANN_EXIT_OK;
    case ANN_RPC_NOT_FOUND:
        return ANN_EXIT_NOT_FOUND;
    case ANN_RPC_UNAUTHENTICATED:
    case ANN_RPC_PERMISSION_DENIED:
        return ANN_EXIT_AUTH;
    case ANN_RPC_INVALID_ARGUMENT:
    case ANN_RPC_FAILED_PRECONDITION:
    case ANN_RPC_OUT_OF_RANGE:
    case ANN_RPC_ALREADY_EXISTS:
        return ANN_EXIT_INVALID;
    case ANN_RPC_UNAVAILABLE:
    case ANN_RPC_DEADLINE_EXCEEDED:
    case ANN_RPC_ABORTED:
    case ANN_RPC_CANCELLED:
        return ANN_EXIT_UNAVAILABLE;
    case ANN_RPC_RESOURCE_EXHAUSTED:
        return ANN_EXIT_EXHAUSTED;
    default:
        return ANN_EXIT_FAILED;
    }
}

int ann_cli_retryable(const ann_rpc_status *st)
{
    return st->code == ANN_RPC_UNAVAILABLE || st->code == ANN_RPC_DEADLINE_EXCEEDED ||
           st->code == ANN_RPC_ABORTED || (st->code != ANN_RPC_OK && st->retriable);
}

int ann_cli_fail_rpc(ann_cli *cli, const char *what, const ann_rpc_status *st)
{
    fprintf(cli->err, "annals %s: %s%s%s: ", cli->cmd, what ? what : "", what ? ": " : "",
            ann_rpc_code_name(st->code));
    ann_cli_put_term_str(cli->err, st->msg);
    if (st->code == ANN_RPC_UNAUTHENTICATED && !cli->token)
        fputs(" (ANNALS_TOKEN is not set)", cli->err);
    fputc('\n', cli->err);
    return ann_cli_exit_code(st->code);
}

int ann_cli_fail(ann_cli *cli, int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(cli->err, "annals %s: ", cli->cmd);
    va_start(ap, fmt);
    vfprintf(cli->err, fmt, ap);
    va_end(ap);
    fputc('\n', cli->err);
    return code;
}

int64_t ann_cli_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ann_cli_now(int64_t *sec, int32_t *nsec)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = ts.tv_sec;
    *nsec = (int32_t)ts.tv_nsec;
}

void ann_cli_sleep_ms(ann_cli *cli, int64_t ms)
{
    int64_t end = ann_cli_mono_ms() + ms;
    while (!(cli->stop && *cli->stop)) {
        int64_t left = end - ann_cli_mono_ms();
        if (left <= 0)
            break;
        if (left > 50)
            left = 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int ann_cli_split_label(char *arg, char **k, char **v)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return -1;
    *eq = '\0';
    *k = arg;
    *v = eq + 1;
    return 0;
}

int ann_cli_bad_option(ann_cli *cli, char **argv, int c)
{
    const char *arg = argv[optind - 1];
    fprintf(cli->err, "annals %s: ", cli->cmd);
    if (c == ':')
        fputs("option needs a value: ", cli->err);
    else
        fputs("unknown option: ", cli->err);
    ann_cli_put_term_str(cli->err, arg);
    fputs("\n(see annals --help)\n", cli->err);
    return ANN_EXIT_USAGE;
}

int ann_cli_call(ann_cli *cli, const char *what, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp)
{
    ann_rpc_status st;
    int64_t backoff = ANN_CLI_BACKOFF_FIRST_MS;
    for (int attempt = 1;; attempt++) {
        if (ann_rpc_call(cli->client, method, req, desc, cli->timeout_ms, resp, &st) == 0)
            return 0;
        if (!ann_cli_retryable(&st) || attempt >= ANN_CLI_QUERY_ATTEMPTS ||
            (cli->stop && *cli->stop))
            return ann_cli_fail_rpc(cli, what, &st);
        ann_cli_sleep_ms(cli, backoff);
        backoff = backoff * 2 > ANN_CLI_BACKOFF_MAX_MS ? ANN_CLI_BACKOFF_MAX_MS : backoff * 2;
    }
}

/* Keeps the page token `next` in *token (a NUL-terminated copy); *more = 0
 * when it is empty. Returns 0 or an exit code. */
static int next_token(ann_cli *cli, ProtobufCBinaryData next, ProtobufCBinaryData *token, int *more)
{
    *more = next.len > 0;
    if (!*more)
        return 0;
    if (token->data && token->len == next.len && !memcmp(token->data, next.data, next.len))
        return ann_cli_fail(cli, ANN_EXIT_FAILED, "the server repeated a page token");
    if (memchr(next.data, 0, next.len))
        return ann_cli_fail(cli, ANN_EXIT_FAILED, "the server sent a malformed page token");
    free(token->data);
    token->data = ann_xmalloc(next.len + 1);
    memcpy(token->data, next.data, next.len);
    token->data[next.len] = '\0';
    token->len = next.len;
    return 0;
}

int ann_cli_walk_pages(ann_cli *cli, const char *method, const ProtobufCMessage *req,
                       ProtobufCBinaryData *req_token, const ProtobufCMessageDescriptor *desc,
                       ann_cli_page_fn fn, void *ud)
{
    ProtobufCBinaryData token = {0, NULL};
    int rc = 0, more = 1;
    while (more) {
        ProtobufCMessage *resp = NULL;
        ProtobufCBinaryData next = {0, NULL};
        if ((rc = ann_cli_call(cli, NULL, method, req, desc, &resp)))
            break;
        rc = fn(cli, resp, ud, &next);
        if (!rc)
            rc = ann_cli_check_output(cli);
        if (!rc)
            rc = next_token(cli, next, &token, &more);
        protobuf_c_message_free_unpacked(resp, NULL);
        if (rc)
            break;
        *req_token = token;
    }
    free(token.data);
    return rc;
}

int ann_cli_time_opt(ann_cli *cli, const char *opt, const char *arg, int64_t *sec, int32_t *nsec)
{
    int64_t now_s;
    int32_t now_ns;
    ann_err err;
    ann_cli_now(&now_s, &now_ns);
    if (ann_cli_time_parse(arg, now_s, now_ns, sec, nsec, &err) < 0)
        return ann_cli_fail(cli, ANN_EXIT_USAGE, "%s: %s", opt, err.msg);
    return 0;
}

void ann_cli_filter_init(ann_cli_filter *f)
{
    memset(f, 0, sizeof *f);
    annals__wire__v1__timestamp__init(&f->since);
    annals__wire__v1__timestamp__init(&f->until);
}

void ann_cli_filter_free(ann_cli_filter *f)
{
    for (size_t i = 0; i < f->n_labels; i++)
        free(f->labels[i]);
    free(f->labels);
    f->labels = NULL;
    f->n_labels = 0;
}

int ann_cli_filter_opt(ann_cli *cli, ann_cli_filter *f, int c, char *arg)
{
    char *k, *v;
    switch (c) {
    case 'l': {
        if (ann_cli_split_label(arg, &k, &v) < 0)
            return ann_cli_fail(cli, ANN_EXIT_USAGE, "--label: expected key=value");
        Annals__Wire__V1__Label *l = ann_xmalloc(sizeof *l);
        annals__wire__v1__label__init(l);
        l->key = ANN_CLI_BYTES(k);
        l->value = ANN_CLI_BYTES(v);
        f->labels = ann_xrealloc(f->labels, (f->n_labels + 1) * sizeof *f->labels);
        f->labels[f->n_labels++] = l;
        return 0;
    }
    case 's':
        f->has_since = 1;
        return ann_cli_time_opt(cli, "--since", arg, &f->since.seconds, &f->since.nanos);
    case 'u':
        f->has_until = 1;
        return ann_cli_time_opt(cli, "--until", arg, &f->until.seconds, &f->until.nanos);
    case 'j':
        f->json = 1;
        return 0;
    default:
        return -1;
    }
}

int ann_cli_check_output(ann_cli *cli)
{
    if (fflush(cli->out) != 0 || ferror(cli->out))
        return ann_cli_fail(cli, ANN_EXIT_IO, "writing output: %s", strerror(errno));
    return 0;
}

int ann_cli_parse_id(const char *s, uint64_t *v)
{
    if (!*s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end || errno)
        return -1;
    *v = x;
    return 0;
}

int ann_cli_parse_id_bytes(ProtobufCBinaryData b, uint64_t *v)
{
    char buf[24];
    if (b.len == 0 || b.len >= sizeof buf || memchr(b.data, 0, b.len))
        return -1;
    memcpy(buf, b.data, b.len);
    buf[b.len] = '\0';
    return ann_cli_parse_id(buf, v);
}

int ann_cli_answer_is_yes(const char *line)
{
    size_t n;
    while (*line == ' ' || *line == '\t')
        line++;
    n = strlen(line);
    while (n && strchr(" \t\r\n", line[n - 1]))
        n--;
    return (n == 1 && (line[0] == 'y' || line[0] == 'Y')) ||
           (n == 3 && !strncasecmp(line, "yes", 3));
}

/* Reads a PEM file for ANNALS_CA_FILE. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;
    if (!f)
        return NULL;
    buf = malloc(MAX_CA_FILE + 1);
    if (buf) {
        n = fread(buf, 1, MAX_CA_FILE, f);
        if (ferror(f) || n == MAX_CA_FILE) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
    }
    fclose(f);
    return buf;
}

int ann_cli_connect(ann_cli *cli)
{
    ann_rpc_status st;
    if (cli->client)
        return 0;
    ann_client_opts o = {
        .addr = cli->addr,
        .token = cli->token,
        .tls = cli->tls,
        .tls_roots_pem = cli->roots_pem,
    };
    if (ann_client_new(&o, &cli->client, &st) < 0) {
        ann_cli_fail_rpc(cli, "connect", &st);
        return ANN_EXIT_USAGE;
    }
    return 0;
}

static int usage(ann_cli *cli, int code)
{
    fputs(usage_text, code ? cli->err : cli->out);
    return code;
}

static int setup_env(ann_cli *cli)
{
    const char *addr = getenv("ANNALS_ADDR");
    const char *token = getenv("ANNALS_TOKEN");
    const char *tls = getenv("ANNALS_TLS");
    const char *ca = getenv("ANNALS_CA_FILE");

    cli->addr = addr && *addr ? addr : DEFAULT_ADDR;
    cli->token = token && *token ? token : NULL;
    cli->tls = tls && *tls && strcmp(tls, "0") != 0;
    if (ca && *ca) {
        cli->tls = 1;
        cli->roots_pem = read_file(ca);
        if (!cli->roots_pem)
            return ann_cli_fail(cli, ANN_EXIT_USAGE, "ANNALS_CA_FILE %s: cannot read: %s", ca,
                                errno ? strerror(errno) : "too large");
    }
    return 0;
}

int ann_cli_main(int argc, char **argv, volatile sig_atomic_t *stop)
{
    ann_cli cli = {
        .cmd = "",
        .timeout_ms = DEFAULT_TIMEOUT_MS,
        .out = stdout,
        .err = stderr,
        .stop = stop,
    };
    int rc;

    if (argc < 2)
        return usage(&cli, ANN_EXIT_USAGE);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help"))
        return usage(&cli, ANN_EXIT_OK);
    cli.cmd = cmd;
    rc = setup_env(&cli);
    if (rc)
        goto done;

    if (!strcmp(cmd, "log")) {
        if (argc < 3) {
            rc = usage(&cli, ANN_EXIT_USAGE);
        } else if (!strcmp(argv[2], "create")) {
            cli.cmd = "log create";
            rc = ann_cmd_log_create(&cli, argc - 2, argv + 2);
        } else if (!strcmp(argv[2], "get")) {
            cli.cmd = "log get";
            rc = ann_cmd_log_get(&cli, argc - 2, argv + 2);
        } else if (!strcmp(argv[2], "delete")) {
            cli.cmd = "log delete";
            rc = ann_cmd_delete(&cli, argc - 2, argv + 2);
        } else {
            rc = ann_cli_fail(&cli, ANN_EXIT_USAGE,
                              "unknown subcommand (expected create, get or delete)");
        }
    } else if (!strcmp(cmd, "write")) {
        rc = ann_cmd_write(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "list")) {
        rc = ann_cmd_list(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "tail")) {
        rc = ann_cmd_tail(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "revoke")) {
        rc = ann_cmd_revoke(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "hold")) {
        rc = ann_cmd_hold(&cli, argc - 1, argv + 1, true);
    } else if (!strcmp(cmd, "release")) {
        rc = ann_cmd_hold(&cli, argc - 1, argv + 1, false);
    } else if (!strcmp(cmd, "logs")) {
        rc = ann_cmd_logs(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "read")) {
        rc = ann_cmd_read(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "search")) {
        rc = ann_cmd_search(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "delete")) {
        rc = ann_cmd_delete(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "verify")) {
        rc = ann_cmd_verify(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "prove")) {
        rc = ann_cmd_prove(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "verify-proof")) {
        rc = ann_cmd_verify_proof(&cli, argc - 1, argv + 1);
    } else if (!strcmp(cmd, "share")) {
        rc = ann_cmd_share(&cli, argc - 1, argv + 1);
    } else {
        fprintf(stderr, "annals: unknown command \"");
        ann_cli_put_term_str(stderr, cmd);
        fprintf(stderr, "\"\n");
        rc = usage(&cli, ANN_EXIT_USAGE);
    }
done:
    if (fflush(cli.out) != 0 && rc == 0)
        rc = ann_cli_fail(&cli, ANN_EXIT_IO, "writing output: %s", strerror(errno));
    ann_client_free(cli.client);
    free(cli.roots_pem);
    return rc;
}
