/*
 * The `annals` command: a thin shell over the client library.
 *
 * Configuration comes from the environment: ANNALS_ADDR (default
 * 127.0.0.1:50051), ANNALS_TOKEN (the API key), and for TLS ANNALS_TLS=1
 * (system roots) or ANNALS_CA_FILE=<PEM file>. docs/cli.md is the manual.
 *
 * The exit codes below are stable and documented in docs/cli.md.
 */
#ifndef ANN_CLI_CLI_H
#define ANN_CLI_CLI_H

#include <signal.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "client/client.h"
#include "client/rpc.h"

enum {
    ANN_EXIT_OK = 0,
    ANN_EXIT_FAILED = 1,      /* any other error: INTERNAL, UNKNOWN, DATA_LOSS, ... */
    ANN_EXIT_USAGE = 2,       /* bad command line or environment */
    ANN_EXIT_NOT_FOUND = 3,   /* NOT_FOUND */
    ANN_EXIT_AUTH = 4,        /* UNAUTHENTICATED, PERMISSION_DENIED */
    ANN_EXIT_INVALID = 5,     /* INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE,
                                 ALREADY_EXISTS */
    ANN_EXIT_UNAVAILABLE = 6, /* UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, CANCELLED
                                 (after the retries) */
    ANN_EXIT_EXHAUSTED = 7,   /* RESOURCE_EXHAUSTED */
    ANN_EXIT_IO = 8,          /* reading stdin or writing stdout failed */
};

/* Per-invocation state. `stop` is set by SIGINT/SIGTERM handlers (tail). */
typedef struct ann_cli {
    const char *cmd;    /* "write", "log create", ... for messages */
    ann_client *client; /* connected lazily by ann_cli_connect() */
    const char *addr;
    const char *token;
    int tls;
    char *roots_pem;    /* owned; NULL for system roots */
    int64_t timeout_ms; /* deadline of each unary call */
    FILE *out, *err;
    volatile sig_atomic_t *stop;
} ann_cli;

/* Runs the command line argv[0..argc) (argv[0] is the program). Returns the
 * process exit code. */
int ann_cli_main(int argc, char **argv, volatile sig_atomic_t *stop);

/* Exit code for a gRPC status code (table above). */
int ann_cli_exit_code(int rpc_code);

/* Makes the client if not yet made. Returns 0, or an exit code > 0 after
 * printing why. */
int ann_cli_connect(ann_cli *cli);

/* Prints "annals <cmd>: <CODE>: <message>" (escaped) and returns the exit
 * code for st. */
int ann_cli_fail_rpc(ann_cli *cli, const char *what, const ann_rpc_status *st);

/* Prints "annals <cmd>: <message>" and returns `code`. */
int ann_cli_fail(ann_cli *cli, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 for failures worth retrying: UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, and any
 * status the server flagged retriable (a full disk: RESOURCE_EXHAUSTED). */
int ann_cli_retryable(const ann_rpc_status *st);

/* Sleeps for ms milliseconds, waking early when *cli->stop is set. */
void ann_cli_sleep_ms(ann_cli *cli, int64_t ms);

/* Monotonic and real clocks. */
int64_t ann_cli_mono_ms(void);
void ann_cli_now(int64_t *sec, int32_t *nsec);

/* Splits "k=v" (k non-empty); the strings point into `arg`, which is
 * modified. Returns 0 or -1. */
int ann_cli_split_label(char *arg, char **k, char **v);

/* Reports a getopt_long() failure (opterr = 0, optstring starting with ':')
 * and returns ANN_EXIT_USAGE. */
int ann_cli_bad_option(ann_cli *cli, char **argv, int c);

/* A NUL-terminated string as a protobuf-c `bytes` value (not copied; the
 * string must outlive the message). */
#define ANN_CLI_BYTES(s) ((ProtobufCBinaryData){strlen(s), (uint8_t *)(s)})

/* Attempts of a query (it changes nothing, so retrying is always safe) and
 * the backoff between them. */
#define ANN_CLI_QUERY_ATTEMPTS 8
#define ANN_CLI_BACKOFF_FIRST_MS 100
#define ANN_CLI_BACKOFF_MAX_MS 2000

/* Calls `method` with `req` and unpacks the answer as a `desc` message into
 * *resp, retrying ann_cli_retryable() failures (ANN_CLI_QUERY_ATTEMPTS in all,
 * with backoff; not after a stop signal). Returns 0, or an exit code after
 * printing the status (prefixed by `what` unless NULL). Only for calls that
 * are safe to repeat: queries, and revocations (a revoked entry stays revoked
 * and keeps its first reason). */
int ann_cli_call(ann_cli *cli, const char *what, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp);

/* One page of a walk: prints or collects what `resp` holds and sets *next to
 * its next page token (empty on the last page). Returns 0 or an exit code. */
typedef int (*ann_cli_page_fn)(ann_cli *cli, const ProtobufCMessage *resp, void *ud,
                               ProtobufCBinaryData *next);

/* Walks every page of a paged query: calls `method` with `req` (ann_cli_call(),
 * so with retries), hands each response (a `desc` message) to fn, and asks
 * again with *req_token (a field of req) set to the page token fn found, until
 * it is empty. stdout is flushed after each page. Refuses a token with a NUL
 * byte or the same token twice in a row (a server that would make the walk
 * loop forever). Returns 0 or an exit code. */
int ann_cli_walk_pages(ann_cli *cli, const char *method, const ProtobufCMessage *req,
                       ProtobufCBinaryData *req_token, const ProtobufCMessageDescriptor *desc,
                       ann_cli_page_fn fn, void *ud);

/* The options of list, logs and search that narrow what is shown: --label k=v
 * (repeatable), --since T, --until T, and --json. */
typedef struct ann_cli_filter {
    Annals__Wire__V1__Label **labels; /* each its own allocation, strings in argv */
    size_t n_labels;
    Annals__Wire__V1__Timestamp since, until;
    int has_since, has_until, json;
} ann_cli_filter;

void ann_cli_filter_init(ann_cli_filter *f);
void ann_cli_filter_free(ann_cli_filter *f);

/* Handles getopt's c ('l', 's', 'u' or 'j' as above) with its value arg.
 * Returns 0 when handled, an exit code when the value is bad (after printing
 * why), -1 when c is none of them. */
int ann_cli_filter_opt(ann_cli *cli, ann_cli_filter *f, int c, char *arg);

/* &f->since, &f->until, or NULL when not given. */
#define ANN_CLI_SINCE(f) ((f)->has_since ? &(f)->since : NULL)
#define ANN_CLI_UNTIL(f) ((f)->has_until ? &(f)->until : NULL)

/* Parses a time option's value (see timefmt.h) relative to now. Returns 0, or
 * ANN_EXIT_USAGE after printing why (naming `opt`). */
int ann_cli_time_opt(ann_cli *cli, const char *opt, const char *arg, int64_t *sec, int32_t *nsec);

/* Flushes stdout; when the output went nowhere (closed pipe, full disk)
 * prints why and returns ANN_EXIT_IO, else 0. */
int ann_cli_check_output(ann_cli *cli);

/* Parses a decimal entry id ("0", "1", ...; no sign, no spaces). Returns 0 or
 * -1. The _bytes form takes an id the server sent (untrusted bytes). */
int ann_cli_parse_id(const char *s, uint64_t *v);
int ann_cli_parse_id_bytes(ProtobufCBinaryData b, uint64_t *v);

/* 1 when a line typed at a confirmation prompt says yes ("y" or "yes", any
 * case, blanks around it ignored), else 0. */
int ann_cli_answer_is_yes(const char *line);

/* The commands; argv[0] is the command word. Each returns an exit code. */
int ann_cmd_log_create(ann_cli *cli, int argc, char **argv);
int ann_cmd_log_get(ann_cli *cli, int argc, char **argv);
int ann_cmd_delete(ann_cli *cli, int argc, char **argv);
int ann_cmd_share(ann_cli *cli, int argc, char **argv);
int ann_cmd_revoke(ann_cli *cli, int argc, char **argv);
/* hold: true for `annals hold`, false for `annals release`. */
int ann_cmd_hold(ann_cli *cli, int argc, char **argv, bool hold);
int ann_cmd_write(ann_cli *cli, int argc, char **argv);
int ann_cmd_list(ann_cli *cli, int argc, char **argv);
int ann_cmd_tail(ann_cli *cli, int argc, char **argv);
int ann_cmd_logs(ann_cli *cli, int argc, char **argv);
int ann_cmd_read(ann_cli *cli, int argc, char **argv);
int ann_cmd_search(ann_cli *cli, int argc, char **argv);
/* cmd_verify.c: annals verify (docs/integrity.md), and what prove shares with it: a
 * --key argument (the verifier key itself, or a file holding it), and a query answered as
 * raw bytes (retried like ann_cli_call; 0 or an exit code after printing). */
int ann_cmd_verify(ann_cli *cli, int argc, char **argv);
struct ann_note_verifier;
int ann_cli_verifier_key(ann_cli *cli, const char *arg, struct ann_note_verifier *v);
int ann_cli_unary_raw(ann_cli *cli, const char *method, const ProtobufCMessage *req, ann_buf *resp);
/* cmd_prove.c: annals prove, annals verify-proof (docs/integrity.md) */
int ann_cmd_prove(ann_cli *cli, int argc, char **argv);
int ann_cmd_verify_proof(ann_cli *cli, int argc, char **argv);

#endif
