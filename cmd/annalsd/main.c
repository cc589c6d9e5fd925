/*
 * annalsd: the annals server.
 *
 *   annalsd serve --data DIR [--listen HOST:PORT] [--tls-cert F --tls-key F]
 *                 [--http HOST:PORT] [--workers N] [--durability fsync|none] [--blocks on|off]
 *                 [--seal-idle-ms N] [--default-wait durable|sequenced|queryable]
 *                 [--retention-every-ms N] [--retention-per-pass N]
 *   annalsd tenant create NAME --data DIR     (prints the new API key as the last line)
 *   annalsd tenant set-retention NAME --days N --data DIR   (0: keep forever)
 *   annalsd audit TENANT [--log LOG] --data DIR             (the lifecycle audit trail)
 *
 * Distributed mode (cmd/annalsd/roles.c, docs/distributed.md):
 *   annalsd serve|sequence|project|all --distributed [--kafka BROKERS]
 *           [--cassandra HOST:PORT[,...]] [--postgres CONNINFO] [--namespace NS]
 *           [--partitions N] [--replication N] [--instance NAME] [server flags]
 *   annalsd tenant create NAME --distributed [engine flags]
 *
 * Keys (docs/cli.md, "Keys"), embedded (--data DIR) or distributed (--distributed ...):
 *   annalsd key create TENANT --role R [--role R]... [--name N] [--expires T]
 *   annalsd key list TENANT
 *   annalsd key revoke KEY_ID
 */
#include <errno.h>
#include <grpc/grpc.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>

#include "api/health.h"
#include "api/server.h"
#include "api/service.h"
#include "cli/timefmt.h"
#include "common/metrics.h"
#include "common/random.h"
#include "http/http.h"
#include "domain/limits.h"
#include "domain/rules.h"
#include "domain/note.h"
#include "domain/text.h"
#include "roles.h"
#include "store/embedded/embedded.h"
#include "store/retention.h"

static int usage(void)
{
    fprintf(
        stderr,
        "usage: annalsd serve --data DIR [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE]\n"
        "                     [--http HOST:PORT] [--workers N] [--durability fsync|none] [--blocks "
        "on|off]\n"
        "                     [--seal-idle-ms N] [--default-wait durable|sequenced|queryable]\n"
        "                     [--retention-every-ms N] [--retention-per-pass N]\n"
        "                     [--signing-key FILE] [--key-name NAME]\n"
        "       annalsd tenant create NAME --data DIR\n"
        "       annalsd tenant set-retention NAME --days N --data DIR   (0: keep forever)\n"
        "       annalsd audit TENANT [--log LOG] --data DIR   (holds, releases, retention)\n"
        "       annalsd verifier-key --data DIR [--signing-key FILE] [--key-name NAME]\n"
        "       annalsd verifier-key --distributed [ENGINE FLAGS] [--signing-key FILE]"
        " [--key-name NAME]\n"
        "distributed mode (every engine flag defaults to `make services-up`'s engines):\n"
        "       annalsd serve|sequence|project|all --distributed [--kafka BROKERS]\n"
        "                     [--cassandra HOST:PORT[,...]] [--postgres CONNINFO]\n"
        "                     [--namespace NS] [--partitions N] [--replication N]\n"
        "                     [--instance NAME] [--listen HOST:PORT] [--http HOST:PORT]\n"
        "                     [--workers N]\n"
        "                     [--tls-cert FILE --tls-key FILE] [--default-wait W]\n"
        "                     [--purge-interval-ms N] [--kafka-segment-ms N]\n"
        "                     [--kafka-delete-delay-ms N]\n"
        "                     [--retention-every-ms N] [--retention-per-pass N]\n"
        "       annalsd project --rebuild [engine flags]   (read model from Cassandra)\n"
        "       annalsd tenant create NAME --distributed [engine flags]\n"
        "       annalsd tenant set-retention NAME --days N --distributed [engine flags]\n"
        "       annalsd audit TENANT [--log LOG] --distributed [engine flags]\n"
        "keys (with --data DIR, or --distributed [engine flags]):\n"
        "       annalsd key create TENANT --role writer|reader|redactor|admin [--role R]...\n"
        "                          [--name NAME] [--expires 30d|12h|15m|90s|RFC3339]\n"
        "       annalsd key list TENANT\n"
        "       annalsd key revoke KEY_ID\n");
    return 2;
}

static const char *opt_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "annalsd: %s needs a value\n", argv[*i]);
        exit(usage());
    }
    return argv[++*i];
}

static int cmd_tenant_create(int argc, char **argv)
{
    const char *name = NULL, *data = NULL;
    ann_roles_opts ro = {0};
    for (int i = 0; i < argc; i++) {
        int r = 0;
        if (strcmp(argv[i], "--data") == 0)
            data = opt_value(argc, argv, &i);
        else if ((r = ann_roles_flag(&ro, argc, argv, &i)) != 0) {
            if (r < 0)
                return usage();
        } else if (argv[i][0] == '-')
            return usage();
        else if (!name)
            name = argv[i];
        else
            return usage();
    }
    if (!name || (!data) == (!ro.distributed)) /* exactly one of the two modes */
        return usage();
    if (!ann_tenant_name_valid(name, strlen(name))) {
        fprintf(stderr, "annalsd: tenant name must be 1..%d bytes of UTF-8\n", ANN_TENANT_NAME_MAX);
        return 2;
    }
    /* The key: 256 random bits; only its SHA-256 is stored. */
    uint8_t raw[32], hash[32];
    char key[ANN_KEY_LEN + 1];
    ann_random_bytes(raw, sizeof raw);
    ann_key_format(raw, key);
    ann_key_hash(key, strlen(key), hash);

    ann_err err = {0};
    ann_store *store = NULL;
    ann_store_embedded_opts o = {.durability = ANN_DURABILITY_FSYNC, .admin_only = true};
    ann_tenant t;
    if (ro.distributed) {
        if (ann_roles_tenant_create(&ro, name, hash, &t, &err) != 0) {
            fprintf(stderr, "annalsd: tenant create: %s\n", err.msg);
            return 1;
        }
    } else if (ann_store_embedded_open(data, &o, &store, &err) != 0 ||
               ann_store_tenant_create(store, name, hash, &t, &err) != 0) {
        fprintf(stderr, "annalsd: tenant create: %s\n", err.msg);
        ann_store_close(store);
        return 1;
    }
    if (store)
        ann_store_close(store);
    printf("tenant %s created with id %s; its admin key (named %s, id %s; shown once, stored "
           "only hashed):\n%s\n",
           t.name, t.id, t.key_name, t.key_id, key);
    return 0;
}

/* annalsd tenant set-retention NAME --days N (--data DIR | --distributed ...). */
static int cmd_tenant_set_retention(int argc, char **argv)
{
    const char *name = NULL, *data = NULL, *days_text = NULL;
    ann_roles_opts ro = {0};
    for (int i = 0; i < argc; i++) {
        int r = 0;
        if (strcmp(argv[i], "--data") == 0)
            data = opt_value(argc, argv, &i);
        else if (strcmp(argv[i], "--days") == 0)
            days_text = opt_value(argc, argv, &i);
        else if ((r = ann_roles_flag(&ro, argc, argv, &i)) != 0) {
            if (r < 0)
                return usage();
        } else if (argv[i][0] == '-')
            return usage();
        else if (!name)
            name = argv[i];
        else
            return usage();
    }
    if (!name || !days_text || (!data) == (!ro.distributed))
        return usage();
    char *end = NULL;
    errno = 0;
    long days = strtol(days_text, &end, 10);
    if (errno || !end || *end || end == days_text || days < 0 || days > ANN_MAX_RETENTION_DAYS) {
        fprintf(stderr, "annalsd: --days %s: a whole number of days, 0 (keep forever) to %d\n",
                days_text, ANN_MAX_RETENTION_DAYS);
        return 2;
    }
    ann_err err = {0};
    ann_store *store = NULL;
    int rc = 1;
    if (ro.distributed) {
        if (ann_roles_tenant_set_retention(&ro, name, (int32_t)days, &err) != 0)
            goto fail;
    } else {
        ann_store_embedded_opts o = {.durability = ANN_DURABILITY_FSYNC, .admin_only = true};
        if (ann_store_embedded_open(data, &o, &store, &err) != 0 ||
            ann_store_tenant_set_retention(store, name, (int32_t)days, &err) != 0)
            goto fail;
    }
    if (days == 0)
        printf("tenant %s: logs created without a period of their own are kept forever\n", name);
    else
        printf("tenant %s: logs created without a period of their own are deleted %ld day%s "
               "after their last write\n",
               name, days, days == 1 ? "" : "s");
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "annalsd: tenant set-retention: %s\n", err.msg);
done:
    ann_store_close(store);
    return rc;
}

/* annalsd audit TENANT [--log LOG] --data DIR: the lifecycle audit trail (holds,
 * releases, retention's deletions), one tab-separated line each, oldest first. */
static int audit_print(const ann_log_event *ev, void *ud)
{
    (void)ud;
    char b[ANN_CLI_TIME_BUF];
    int64_t sec = ev->time_ns / 1000000000LL;
    int32_t nsec = (int32_t)(ev->time_ns % 1000000000LL);
    if (nsec < 0)
        sec--, nsec += 1000000000;
    printf("%s\t%s\t%s\t%s\t", ann_cli_time_format(sec, nsec, b), ev->log_id, ev->kind, ev->actor);
    for (const char *p = ev->reason; *p; p++) /* one line per record */
        putchar(*p == '\n' || *p == '\t' || *p == '\r' ? ' ' : *p);
    putchar('\n');
    return 0;
}

static int cmd_audit(int argc, char **argv)
{
    const char *tenant = NULL, *data = NULL, *log = NULL;
    ann_roles_opts ro = {0};
    for (int i = 0; i < argc; i++) {
        int r = 0;
        if (strcmp(argv[i], "--data") == 0)
            data = opt_value(argc, argv, &i);
        else if (strcmp(argv[i], "--log") == 0)
            log = opt_value(argc, argv, &i);
        else if ((r = ann_roles_flag(&ro, argc, argv, &i)) != 0) {
            if (r < 0)
                return usage();
        } else if (argv[i][0] == '-' || tenant)
            return usage();
        else
            tenant = argv[i];
    }
    if (!tenant || (!data) == (!ro.distributed))
        return usage();
    ann_err err = {0};
    ann_store *store = NULL;
    ann_store_embedded_opts o = {.durability = ANN_DURABILITY_FSYNC, .admin_only = true};
    char canon[ANN_UUID_LEN + 1];
    uint8_t u[16];
    if (log) {
        if (ann_uuid_parse(log, strlen(log), u) != 0) {
            fprintf(stderr, "annalsd: audit: --log: not a UUID\n");
            return 2;
        }
        ann_uuid_format(u, canon);
        log = canon;
    }
    int rc = 0;
    if (ro.distributed) {
        if (ann_roles_audit(&ro, tenant, log, audit_print, NULL, &err) != 0) {
            fprintf(stderr, "annalsd: audit: %s\n", err.msg);
            rc = 1;
        }
        return rc;
    }
    if (ann_store_embedded_open(data, &o, &store, &err) != 0) {
        fprintf(stderr, "annalsd: audit: %s\n", err.msg);
        return 1;
    }
    if (ann_store_embedded_audit(store, tenant, log, audit_print, NULL, &err) != 0) {
        fprintf(stderr, "annalsd: audit: %s\n", err.msg);
        rc = 1;
    }
    ann_store_close(store);
    return rc;
}

/* ---------- keys ---------- */

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --expires: a duration from now (30d, 12h, 15m, 90s) or a time (RFC 3339, a date, @unix);
 * in the future. */
static int parse_expires(const char *v, int64_t now, int64_t *out)
{
    char *end = NULL;
    if (v[0] >= '0' && v[0] <= '9') {
        long long n = strtoll(v, &end, 10);
        int64_t unit = 0;
        if (end && end[0] && !end[1])
            unit = end[0] == 's'   ? 1
                   : end[0] == 'm' ? 60
                   : end[0] == 'h' ? 3600
                   : end[0] == 'd' ? 86400
                                   : 0;
        if (unit && n > 0 && n <= 100LL * 365 * 86400 / unit) {
            *out = now + (int64_t)n * unit * 1000000000LL;
            return 0;
        }
        if (unit || !strchr(v, '-')) {
            fprintf(stderr,
                    "annalsd: --expires %s: a duration is N followed by s, m, h or d "
                    "(at most 100 years)\n",
                    v);
            return -1;
        }
    }
    int64_t sec;
    int32_t nsec;
    ann_err err;
    if (ann_cli_time_parse(v, now / 1000000000LL, (int32_t)(now % 1000000000LL), &sec, &nsec,
                           &err) != 0) {
        fprintf(stderr, "annalsd: --expires %s: %s\n", v, err.msg);
        return -1;
    }
    if (ann_time_to_ns(sec, nsec, out) != 0 || *out <= now) {
        fprintf(stderr, "annalsd: --expires %s: must be in the future\n", v);
        return -1;
    }
    return 0;
}

static const char *time_text(int64_t ns, const char *none, char buf[ANN_CLI_TIME_BUF])
{
    if (ns == 0)
        return none;
    int64_t sec = ns / 1000000000LL;
    int32_t nsec = (int32_t)(ns % 1000000000LL);
    if (nsec < 0)
        sec--, nsec += 1000000000;
    return ann_cli_time_format(sec, nsec, buf);
}

/* Where the key commands find the store: --data DIR (embedded) or --distributed. */
typedef struct key_where {
    const char *data;
    ann_roles_opts ro;
    ann_store *store; /* embedded, admin-only */
} key_where;

static int key_where_open(key_where *w, ann_err *err)
{
    if (w->ro.distributed)
        return 0;
    ann_store_embedded_opts o = {.durability = ANN_DURABILITY_FSYNC, .admin_only = true};
    return ann_store_embedded_open(w->data, &o, &w->store, err);
}

typedef struct key_listing {
    int64_t now;
    bool header; /* printed: only once the tenant is known */
} key_listing;

static void key_header(key_listing *l)
{
    if (!l->header)
        printf("id\tname\troles\tcreated\texpires\tlast_used\tstate\n");
    l->header = true;
}

static int key_print(const ann_key *k, void *ud)
{
    key_listing *l = ud;
    int64_t now = l->now;
    key_header(l);
    char roles[ANN_ROLES_TEXT_MAX], b1[ANN_CLI_TIME_BUF], b2[ANN_CLI_TIME_BUF],
        b3[ANN_CLI_TIME_BUF];
    ann_roles_format(k->roles, roles);
    for (char *p = strstr(roles, ", "); p; p = strstr(p, ", ")) /* one token: "writer,reader" */
        memmove(p + 1, p + 2, strlen(p + 2) + 1);
    const char *state = k->revoke_ns                          ? "revoked"
                        : k->expire_ns && now >= k->expire_ns ? "expired"
                                                              : "active";
    printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k->id, k->name, roles, time_text(k->create_ns, "-", b1),
           time_text(k->expire_ns, "never", b2), time_text(k->last_used_ns, "never", b3), state);
    return 0;
}

static int cmd_key(int argc, char **argv)
{
    if (argc < 1)
        return usage();
    const char *verb = argv[0], *arg = NULL, *name = NULL, *expires = NULL;
    uint32_t roles = 0;
    key_where w = {0};
    for (int i = 1; i < argc; i++) {
        int r = 0;
        if (strcmp(argv[i], "--data") == 0)
            w.data = opt_value(argc, argv, &i);
        else if (strcmp(verb, "create") == 0 && strcmp(argv[i], "--role") == 0) {
            const char *v = opt_value(argc, argv, &i);
            uint32_t bit = ann_role_parse(v);
            if (!bit) {
                fprintf(stderr, "annalsd: --role %s: not writer, reader, redactor or admin\n", v);
                return 2;
            }
            roles |= bit;
        } else if (strcmp(verb, "create") == 0 && strcmp(argv[i], "--name") == 0)
            name = opt_value(argc, argv, &i);
        else if (strcmp(verb, "create") == 0 && strcmp(argv[i], "--expires") == 0)
            expires = opt_value(argc, argv, &i);
        else if ((r = ann_roles_flag(&w.ro, argc, argv, &i)) != 0) {
            if (r < 0)
                return usage();
        } else if (argv[i][0] == '-' || arg)
            return usage();
        else
            arg = argv[i];
    }
    if (!arg || (!w.data) == (!w.ro.distributed)) /* exactly one of the two modes */
        return usage();
    int64_t now = wall_ns();
    ann_err err = {0};
    int rc = 1;
    if (strcmp(verb, "create") == 0) {
        ann_key_spec spec = {.tenant_name = arg, .name = name, .roles = roles, .now_ns = now};
        if (!roles) {
            fprintf(stderr, "annalsd: key create: at least one --role "
                            "(writer, reader, redactor, admin)\n");
            return 2;
        }
        if (name && !ann_key_name_valid(name, strlen(name))) {
            fprintf(stderr, "annalsd: --name: 1 to %d of [A-Za-z0-9._-]\n", ANN_KEY_NAME_MAX);
            return 2;
        }
        if (expires && parse_expires(expires, now, &spec.expire_ns) != 0)
            return 2;
        /* The key: 256 random bits; only its SHA-256 is stored. */
        uint8_t raw[32];
        char key[ANN_KEY_LEN + 1];
        ann_random_bytes(raw, sizeof raw);
        ann_key_format(raw, key);
        ann_key_hash(key, strlen(key), spec.key_hash);
        ann_key k;
        if (w.ro.distributed ? ann_roles_key_create(&w.ro, &spec, &k, &err)
                             : (key_where_open(&w, &err) != 0 ||
                                ann_store_key_create(w.store, &spec, &k, &err) != 0)) {
            fprintf(stderr, "annalsd: key create: %s\n", err.msg);
            goto done;
        }
        char rt[ANN_ROLES_TEXT_MAX], b[ANN_CLI_TIME_BUF];
        printf("key %s named %s of tenant %s created with roles %s, expires %s; the key (shown "
               "once, stored only hashed):\n%s\n",
               k.id, k.name, arg, ann_roles_format(k.roles, rt), time_text(k.expire_ns, "never", b),
               key);
        rc = 0;
    } else if (strcmp(verb, "list") == 0) {
        key_listing l = {.now = now};
        if (w.ro.distributed ? ann_roles_key_list(&w.ro, arg, key_print, &l, &err)
                             : (key_where_open(&w, &err) != 0 ||
                                ann_store_key_list(w.store, arg, key_print, &l, &err) != 0)) {
            fprintf(stderr, "annalsd: key list: %s\n", err.msg);
            goto done;
        }
        key_header(&l);
        rc = 0;
    } else if (strcmp(verb, "revoke") == 0) {
        ann_key k;
        if (w.ro.distributed ? ann_roles_key_revoke(&w.ro, arg, now, &k, &err)
                             : (key_where_open(&w, &err) != 0 ||
                                ann_store_key_revoke(w.store, arg, now, &k, &err) != 0)) {
            fprintf(stderr, "annalsd: key revoke: %s\n", err.msg);
            goto done;
        }
        printf("key %s named %s revoked; %s\n", k.id, k.name,
               w.ro.distributed ? "every API server refuses it within 5 seconds (its key cache)"
                                : "the server refuses it from now on");
        rc = 0;
    } else {
        return usage();
    }
done:
    ann_store_close(w.store);
    return rc;
}

static int cmd_serve(const char *role, int argc, char **argv)
{
    const char *data = NULL;
    ann_roles_opts ro = {0};
    int r = 0;
    ann_server_opts so = {.listen = "127.0.0.1:50051"};
    ann_store_embedded_opts o = {.durability = ANN_DURABILITY_FSYNC};
    ann_wait default_wait = ANN_WAIT_QUERYABLE;
    ann_retention_opts reto = {0};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0) {
            data = opt_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--retention-every-ms") == 0) {
            int v = atoi(opt_value(argc, argv, &i));
            if (v <= 0)
                return usage();
            reto.every_ms = (unsigned)v;
        } else if (strcmp(argv[i], "--retention-per-pass") == 0) {
            int v = atoi(opt_value(argc, argv, &i));
            if (v <= 0)
                return usage();
            reto.max_per_pass = (size_t)v;
        } else if (strcmp(argv[i], "--retention-day-ms") == 0) {
            /* Hidden, for tests only: the length of a retention "day" (docs/storage.md). */
            long long v = atoll(opt_value(argc, argv, &i));
            if (v <= 0)
                return usage();
            reto.day_ns = (int64_t)v * 1000000LL;
        } else if (strcmp(argv[i], "--signing-key") == 0) {
            o.signing_key = opt_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--key-name") == 0) {
            o.key_name = opt_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--listen") == 0) {
            so.listen = opt_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--http") == 0) {
            ro.http = opt_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--tls-cert") == 0) {
            so.tls_cert_file = opt_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--tls-key") == 0) {
            so.tls_key_file = opt_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--workers") == 0) {
            so.workers = atoi(opt_value(argc, argv, &i));
        } else if (strcmp(argv[i], "--blocks") == 0) {
            const char *b = opt_value(argc, argv, &i);
            if (strcmp(b, "on") == 0)
                o.no_blocks = false;
            else if (strcmp(b, "off") == 0)
                o.no_blocks = true;
            else
                return usage();
        } else if (strcmp(argv[i], "--seal-idle-ms") == 0) {
            int v = atoi(opt_value(argc, argv, &i));
            if (v <= 0)
                return usage();
            o.seal_idle_ms = (unsigned)v;
        } else if (strcmp(argv[i], "--default-wait") == 0) {
            const char *w = opt_value(argc, argv, &i);
            if (strcmp(w, "durable") == 0)
                default_wait = ANN_WAIT_DURABLE;
            else if (strcmp(w, "sequenced") == 0)
                default_wait = ANN_WAIT_SEQUENCED;
            else if (strcmp(w, "queryable") == 0)
                default_wait = ANN_WAIT_QUERYABLE;
            else {
                fprintf(stderr,
                        "annalsd: --default-wait: %s is not durable, sequenced or queryable\n", w);
                return usage();
            }
        } else if (strcmp(argv[i], "--durability") == 0) {
            const char *d = opt_value(argc, argv, &i);
            if (strcmp(d, "fsync") == 0)
                o.durability = ANN_DURABILITY_FSYNC;
            else if (strcmp(d, "none") == 0)
                o.durability = ANN_DURABILITY_NONE;
            else
                return usage();
        } else if ((r = ann_roles_flag(&ro, argc, argv, &i)) != 0) {
            if (r < 0)
                return usage();
        } else {
            return usage();
        }
    }
    if (strcmp(role, "serve") != 0)
        ro.distributed = true; /* sequence, project and all exist only there */
    if (ro.distributed) {
        ro.retention = reto;            /* run by every API server (serve, all) */
        ro.signing_key = o.signing_key; /* the sequencers' (sequence, all) */
        ro.key_name = o.key_name;
        if (data) {
            fprintf(stderr, "annalsd: --data is the embedded mode; the distributed mode keeps "
                            "its data in the engines\n");
            return usage();
        }
        return ann_roles_run(role, &ro, &so, default_wait);
    }
    if (!data)
        return usage();

    /* Signals are taken synchronously by this thread; every other thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Buffers of 1 MiB and more (large requests, frames) are mmap'd and go back to the
     * system when freed; left alone, glibc raises its threshold after the first such free
     * and keeps them in the heap, so one burst of big requests would keep RSS high. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);

    int rc = 1;
    ann_err err = {0};
    ann_store *store = NULL;
    ann_service svc;
    ann_server *srv = NULL;
    ann_http *http = NULL;
    ann_retention *retention = NULL;
    /* The operator's view (docs/operations.md): one registry and one readiness, owned here
     * and lent to the store, the gRPC server and the HTTP port. Metrics are kept only when
     * something can read them (--http). */
    ann_metrics *metrics = ro.http ? ann_metrics_new() : NULL;
    ann_health *health = ann_health_new(metrics);
    o.metrics = metrics;
    so.metrics = metrics;
    so.health = health;
    grpc_init();
    if (ann_store_embedded_open(data, &o, &store, &err) != 0 ||
        ann_service_init(&svc, store, &err) != 0) {
        fprintf(stderr, "annalsd: %s\n", err.msg);
        goto done;
    }
    svc.default_wait = default_wait;
    if (ann_server_start(&svc, &so, &srv, &err) != 0) {
        fprintf(stderr, "annalsd: %s\n", err.msg);
        goto done;
    }
    if (ann_retention_start(store, &reto, &retention, &err) != 0) {
        fprintf(stderr, "annalsd: %s\n", err.msg);
        ann_server_stop(srv);
        goto done;
    }
    if (ro.http) {
        ann_http_opts ho = {.listen = ro.http,
                            .tls_cert_file = so.tls_cert_file,
                            .tls_key_file = so.tls_key_file,
                            .metrics = metrics,
                            .health = health,
                            .svc = &svc,
                            .role = "serve"};
        if (ann_http_start(&ho, &http, &err) != 0) {
            fprintf(stderr, "annalsd: %s\n", err.msg);
            ann_server_stop(srv);
            goto done;
        }
    }
    fprintf(stderr, "annalsd: serving %s on %s%s (durability %s)\n", data, so.listen,
            so.tls_cert_file ? " with TLS" : "",
            o.durability == ANN_DURABILITY_FSYNC ? "fsync" : "none");
    if (ro.http)
        fprintf(stderr, "annalsd: http on %s://%s (/healthz /readyz /metrics)\n",
                so.tls_cert_file ? "https" : "http", ro.http);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "annalsd: signal %d: finishing in-flight calls\n", sig);
    ann_server_stop(srv); /* not ready from its first step: /readyz answers 503 meanwhile */
    rc = 0;
done:
    ann_retention_stop(retention);
    ann_http_stop(http);
    ann_store_close(store);
    ann_health_free(health);
    ann_metrics_free(metrics);
    grpc_shutdown();
    if (rc == 0)
        fprintf(stderr, "annalsd: stopped cleanly\n");
    return rc;
}

/* annalsd verifier-key: the note verifier key of the deployment's checkpoint signing key
 * (docs/integrity.md), made in DIR as a first start would when there is none. */
static int cmd_verifier_key(int argc, char **argv)
{
    const char *data = NULL, *key_file = NULL, *name = NULL;
    ann_roles_opts ro = {0};
    for (int i = 0; i < argc; i++) {
        int r;
        if (strcmp(argv[i], "--data") == 0)
            data = opt_value(argc, argv, &i);
        else if (strcmp(argv[i], "--signing-key") == 0)
            key_file = opt_value(argc, argv, &i);
        else if (strcmp(argv[i], "--key-name") == 0)
            name = opt_value(argc, argv, &i);
        else if ((r = ann_roles_flag(&ro, argc, argv, &i)) != 0) {
            if (r < 0)
                return usage();
        } else
            return usage();
    }
    if ((!data && !key_file && !ro.distributed) || (data && ro.distributed))
        return usage();
    ann_err err = {0};
    ann_note_signer k;
    if (data && mkdir(data, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "annalsd: %s: %s\n", data, strerror(errno));
        return 1;
    }
    ro.signing_key = key_file;
    ro.key_name = name;
    if (ro.distributed
            ? ann_roles_signer(&ro, &k, &err) != 0
            : ann_store_embedded_signer(data ? data : ".", key_file, name, &k, &err) != 0) {
        fprintf(stderr, "annalsd: %s\n", err.msg);
        return 1;
    }
    ann_note_verifier v;
    ann_note_verifier_of(&k, &v);
    ann_note_signer_release(&k);
    ann_buf out = ANN_BUF_INIT;
    ann_note_verifier_format(&v, &out);
    printf("%.*s\n", (int)out.len, (const char *)out.data);
    ann_buf_release(&out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "serve") == 0 || strcmp(argv[1], "sequence") == 0 ||
                      strcmp(argv[1], "project") == 0 || strcmp(argv[1], "all") == 0))
        return cmd_serve(argv[1], argc - 2, argv + 2);
    if (argc >= 3 && strcmp(argv[1], "tenant") == 0 && strcmp(argv[2], "create") == 0)
        return cmd_tenant_create(argc - 3, argv + 3);
    if (argc >= 3 && strcmp(argv[1], "tenant") == 0 && strcmp(argv[2], "set-retention") == 0)
        return cmd_tenant_set_retention(argc - 3, argv + 3);
    if (argc >= 3 && strcmp(argv[1], "audit") == 0)
        return cmd_audit(argc - 2, argv + 2);
    if (argc >= 3 && strcmp(argv[1], "key") == 0)
        return cmd_key(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "verifier-key") == 0)
        return cmd_verifier_key(argc - 2, argv + 2);
    return usage();
}
