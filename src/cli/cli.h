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
#include <stdio.h>

#include "client/client.h"

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

/* The commands; argv[0] is the command word. Each returns an exit code. */
int ann_cmd_log_create(ann_cli *cli, int argc, char **argv);
int ann_cmd_log_get(ann_cli *cli, int argc, char **argv);
int ann_cmd_delete(ann_cli *cli, int argc, char **argv);
int ann_cmd_revoke(ann_cli *cli, int argc, char **argv);
int ann_cmd_write(ann_cli *cli, int argc, char **argv);
int ann_cmd_list(ann_cli *cli, int argc, char **argv);
int ann_cmd_tail(ann_cli *cli, int argc, char **argv);

#endif
