/*
 * annalsd's distributed roles (docs/distributed.md):
 *
 *   annalsd serve|sequence|project|all [--distributed] [--kafka BROKERS]
 *           [--cassandra HOST:PORT[,...]] [--postgres CONNINFO] [--namespace NS]
 *           [--partitions N] [--replication N] [--instance NAME]
 *           [--listen HOST:PORT] [--http HOST:PORT] [--tls-cert F --tls-key F] [--workers N]
 *           [--default-wait durable|sequenced|queryable]
 *           [--purge-interval-ms N] [--kafka-segment-ms N] [--kafka-delete-delay-ms N]
 *   annalsd project --rebuild [engine flags]   (the read model from Cassandra; then exits)
 *   annalsd tenant create NAME --distributed [engine flags]
 *
 * Every engine flag defaults to what `make services-up` starts: Kafka 127.0.0.1:9092,
 * Cassandra 127.0.0.1:9042 with ANNALS_CASSANDRA_USER / ANNALS_CASSANDRA_PASSWORD
 * (default cassandra/cassandra), PostgreSQL by libpq's usual means when PGHOST,
 * PGSERVICE or PGDATABASE is set, else the dev database on 127.0.0.1:5432.
 */
#include "roles.h"

#include <grpc/grpc.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/health.h"
#include "api/server.h"
#include "api/service.h"
#include "common/metrics.h"
#include "domain/note.h"
#include "http/http.h"
#include "projector/projector.h"
#include "sequencer/sequencer.h"
#include "store/distributed/catalog.h"
#include "store/distributed/distributed.h"
#include "store/distributed/probe.h"
#include "store/embedded/embedded.h"

#define DEV_CONNINFO "host=127.0.0.1 port=5432 user=annals password=annals dbname=annals"

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* Parses one distributed flag at argv[*i]; 1 when taken, 0 when not ours, -1 on error. */
int ann_roles_flag(ann_roles_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    static const char *const with_value[] = {"--kafka",
                                             "--cassandra",
                                             "--postgres",
                                             "--namespace",
                                             "--partitions",
                                             "--replication",
                                             "--instance",
                                             "--purge-interval-ms",
                                             "--kafka-segment-ms",
                                             "--kafka-delete-delay-ms",
                                             NULL};
    if (strcmp(a, "--distributed") == 0) {
        o->distributed = true;
        return 1;
    }
    if (strcmp(a, "--rebuild") == 0) {
        o->distributed = true;
        o->rebuild = true;
        return 1;
    }
    int k = -1;
    for (int j = 0; with_value[j]; j++)
        if (strcmp(a, with_value[j]) == 0)
            k = j;
    if (k < 0)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "annalsd: %s needs a value\n", a);
        return -1;
    }
    const char *v = argv[++*i];
    o->distributed = true;
    switch (k) {
    case 0:
        o->kafka = v;
        break;
    case 1:
        o->cassandra = v;
        break;
    case 2:
        o->postgres = v;
        break;
    case 3:
        o->ns = v;
        break;
    case 4:
        o->partitions = atoi(v);
        if (o->partitions <= 0 || o->partitions > 10000) {
            fprintf(stderr, "annalsd: --partitions: 1 to 10000\n");
            return -1;
        }
        break;
    case 5:
        o->replication = atoi(v);
        if (o->replication <= 0 || o->replication > 9) {
            fprintf(stderr, "annalsd: --replication: 1 to 9\n");
            return -1;
        }
        break;
    case 6:
        o->instance = v;
        break;
    case 7:
    case 8:
    case 9: {
        long long n = atoll(v);
        if (n <= 0 || n > 7LL * 24 * 3600 * 1000) {
            fprintf(stderr, "annalsd: %s: milliseconds, 1 to a week\n", a);
            return -1;
        }
        if (k == 7)
            o->purge_interval_ms = (int)n;
        else if (k == 8)
            o->kafka_segment_ms = n;
        else
            o->kafka_delete_delay_ms = n;
        break;
    }
    }
    return 1;
}

typedef struct engines {
    ann_kafka_config kafka;
    ann_cql_config cql;
    char replication[160];
    const char *conninfo;
    int purge_interval_ms;
} engines;

static void engines_from(const ann_roles_opts *o, engines *e)
{
    memset(e, 0, sizeof *e);
    e->kafka.brokers = o->kafka;
    e->kafka.ns = o->ns;
    e->kafka.partitions = o->partitions;
    e->kafka.replication = o->replication;
    e->kafka.segment_ms = o->kafka_segment_ms;
    e->kafka.delete_delay_ms = o->kafka_delete_delay_ms;
    e->purge_interval_ms = o->purge_interval_ms > 0 ? o->purge_interval_ms : ANN_PURGE_INTERVAL_MS;
    ann_kafka_config_defaults(&e->kafka);
    e->cql.contact_points = o->cassandra ? o->cassandra : "127.0.0.1:9042";
    e->cql.username = env_or("ANNALS_CASSANDRA_USER", "cassandra");
    e->cql.password = env_or("ANNALS_CASSANDRA_PASSWORD", "cassandra");
    snprintf(e->replication, sizeof e->replication,
             "{'class': 'SimpleStrategy', 'replication_factor': %d}", e->kafka.replication);
    if (o->postgres)
        e->conninfo = o->postgres;
    else if (getenv("PGHOST") || getenv("PGSERVICE") || getenv("PGDATABASE"))
        e->conninfo = "";
    else
        e->conninfo = DEV_CONNINFO;
}

int ann_roles_open_store(const ann_roles_opts *o, ann_metrics *metrics, ann_store **out,
                         ann_err *err)
{
    engines e;
    engines_from(o, &e);
    ann_store_distributed_opts so = {.kafka = e.kafka,
                                     .cql = e.cql,
                                     .replication = e.replication,
                                     .conninfo = e.conninfo,
                                     .instance = o->instance,
                                     .metrics = metrics};
    return ann_store_distributed_open(&so, out, err);
}

int ann_roles_tenant_create(const ann_roles_opts *o, const char *name, const uint8_t key_hash[32],
                            ann_tenant *out, ann_err *err)
{
    engines e;
    engines_from(o, &e);
    ann_catalog_config cc = {.cql = &e.cql, .keyspace = e.kafka.ns, .replication = e.replication};
    ann_catalog *c = NULL;
    if (ann_catalog_open(&cc, &c, err) != 0)
        return -1;
    int rc = ann_catalog_tenant_create(c, name, key_hash, out, err);
    ann_catalog_close(c);
    return rc;
}

/* ---------- readiness: the engines each role needs ---------- */

typedef struct engine_probe {
    const char *what;   /* "kafka", "cassandra", "postgresql" */
    const char *target; /* host:port list, or the conninfo */
} engine_probe;

static int probe_engine(void *ud, ann_err *err)
{
    const engine_probe *p = ud;
    if (strcmp(p->what, "postgresql") == 0)
        return ann_probe_pg(p->target, err);
    return ann_probe_tcp(p->what, p->target, 500, err);
}

/* Scrape time: the sequencer's own counters (ann_sequencer_stats, atomics). */
static void seq_stats_collect(void *ud, ann_metrics_out *out)
{
    const ann_sequencer_stats *st = ud;
    static const struct {
        const char *name, *help;
        size_t off;
    } fields[] = {
        {"annals_sequencer_transactions_committed_total",
         "Kafka transactions committed (one per batch)", offsetof(ann_sequencer_stats, batches)},
        {"annals_sequencer_transactions_aborted_total",
         "Batches abandoned (Kafka abort, unknown outcome, Cassandra failure; replayed)",
         offsetof(ann_sequencer_stats, aborted)},
        {"annals_sequencer_commands_total", "Commands acknowledged",
         offsetof(ann_sequencer_stats, commands)},
        {"annals_sequencer_entries_total", "New entries sequenced",
         offsetof(ann_sequencer_stats, entries)},
        {"annals_sequencer_fenced_total", "Head commits refused (another owner claimed)",
         offsetof(ann_sequencer_stats, fenced)},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const uint64_t *v = (const uint64_t *)((const char *)st + fields[i].off);
        ann_metrics_out_family(out, fields[i].name, "counter", fields[i].help);
        ann_metrics_out_sample(out, fields[i].name, "",
                               (double)__atomic_load_n(v, __ATOMIC_RELAXED));
    }
}

static int with_catalog(const ann_roles_opts *o, ann_catalog **c, ann_err *err)
{
    engines e;
    engines_from(o, &e);
    ann_catalog_config cc = {.cql = &e.cql, .keyspace = e.kafka.ns, .replication = e.replication};
    return ann_catalog_open(&cc, c, err);
}

int ann_roles_key_create(const ann_roles_opts *o, const ann_key_spec *spec, ann_key *out,
                         ann_err *err)
{
    ann_catalog *c = NULL;
    if (with_catalog(o, &c, err) != 0)
        return -1;
    int rc = ann_catalog_key_create(c, spec, out, err);
    ann_catalog_close(c);
    return rc;
}

int ann_roles_key_list(const ann_roles_opts *o, const char *tenant_name, ann_key_visit_fn visit,
                       void *ud, ann_err *err)
{
    ann_catalog *c = NULL;
    if (with_catalog(o, &c, err) != 0)
        return -1;
    int rc = ann_catalog_key_list(c, tenant_name, visit, ud, err);
    ann_catalog_close(c);
    return rc;
}

int ann_roles_key_revoke(const ann_roles_opts *o, const char *key_id, int64_t now_ns, ann_key *out,
                         ann_err *err)
{
    ann_catalog *c = NULL;
    uint8_t h[32];
    if (with_catalog(o, &c, err) != 0)
        return -1;
    int rc = ann_catalog_key_revoke(c, key_id, now_ns, out, h, err);
    ann_catalog_close(c);
    return rc;
}

int ann_roles_tenant_set_retention(const ann_roles_opts *o, const char *name, int32_t days,
                                   ann_err *err)
{
    ann_catalog *c = NULL;
    if (with_catalog(o, &c, err) != 0)
        return -1;
    int rc = ann_catalog_tenant_set_retention(c, name, days, err);
    ann_catalog_close(c);
    return rc;
}

int ann_roles_audit(const ann_roles_opts *o, const char *tenant_name, const char *log_id,
                    ann_log_event_visit_fn visit, void *ud, ann_err *err)
{
    ann_catalog *c = NULL;
    if (with_catalog(o, &c, err) != 0)
        return -1;
    int rc = ann_catalog_log_events(c, tenant_name, log_id, visit, ud, err);
    ann_catalog_close(c);
    return rc;
}

int ann_roles_signer(const ann_roles_opts *o, ann_note_signer *out, ann_err *err)
{
    if (o->signing_key && *o->signing_key)
        return ann_store_embedded_signer(".", o->signing_key, o->key_name, out, err);
    ann_catalog *c = NULL;
    if (with_catalog(o, &c, err) != 0)
        return -1;
    uint8_t seed[32];
    int rc = ann_catalog_signing_seed(c, seed, err);
    ann_catalog_close(c);
    if (rc == 0)
        rc = ann_note_signer_init(
            out, o->key_name && *o->key_name ? o->key_name : ANN_NOTE_NAME_DEFAULT, seed, err);
    memset(seed, 0, sizeof seed);
    return rc;
}

/* ---------- the role threads ---------- */

typedef struct role_thread {
    const char *name;
    engines *e;
    const char *instance;
    bool dynamic; /* the instance name is made up at start: no static membership */
    volatile int *stop;
    int (*run)(struct role_thread *rt, ann_err *err);
    pthread_t t;
    int rc;
    ann_err err;
    volatile int *failed;       /* set when the role exits with an error */
    ann_metrics *metrics;       /* NULL without --http */
    ann_sequencer_stats *stats; /* the sequencer's counters, across its restarts */
    const ann_roles_opts *opts;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
} role_thread;

static int run_sequencer(role_thread *rt, ann_err *err)
{
    /* The signing key at each (re)start: from the catalog it needs Cassandra, which may be
     * slow to answer a first lightweight transaction (a timeout starts the role over). */
    ann_note_signer signer;
    if (ann_roles_signer(rt->opts, &signer, err) != 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        ann_err_set(err, err->code, "checkpoint signing key: %s", msg);
        return -1;
    }
    ann_sequencer_config c = {.kafka = rt->e->kafka,
                              .archive = {.cql = &rt->e->cql,
                                          .keyspace = rt->e->kafka.ns,
                                          .replication = rt->e->replication},
                              .instance = rt->instance,
                              .dynamic = rt->dynamic,
                              .stats = rt->stats,
                              .metrics = rt->metrics,
                              .signer = &signer};
    int rc = ann_sequencer_run(&c, rt->stop, err);
    ann_note_signer_release(&signer);
    return rc;
}

static int run_projector(role_thread *rt, ann_err *err)
{
    ann_projector_config c = {.kafka = rt->e->kafka,
                              .conninfo = rt->e->conninfo,
                              .instance = rt->dynamic ? NULL : rt->instance,
                              .metrics = rt->metrics};
    return ann_projector_run(&c, rt->stop, err);
}

static int run_search_projector(role_thread *rt, ann_err *err)
{
    ann_projector_config c = {.kafka = rt->e->kafka,
                              .conninfo = rt->e->conninfo,
                              .instance = rt->dynamic ? NULL : rt->instance,
                              .kind = ANN_PROJECTOR_SEARCH};
    return ann_projector_run(&c, rt->stop, err);
}

static int run_purger(role_thread *rt, ann_err *err)
{
    ann_purge_config c = {.kafka = rt->e->kafka,
                          .conninfo = rt->e->conninfo,
                          .interval_ms = rt->e->purge_interval_ms};
    return ann_purge_run(&c, rt->stop, err);
}

static int run_rebuild(const engines *e)
{
    ann_rebuild_config c = {
        .kafka = e->kafka, .conninfo = e->conninfo, .cql = &e->cql, .replication = e->replication};
    ann_rebuild_stats st;
    ann_err err = {0};
    fprintf(stderr, "annalsd: rebuilding the read model of %s from Cassandra\n", e->kafka.ns);
    if (ann_rebuild(&c, &st, &err) != 0) {
        fprintf(stderr, "annalsd: rebuild: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr,
            "annalsd: rebuilt %s: %llu logs (%llu deleted), %llu entries, %llu revocations; "
            "projectors continue from the committed topic's ends taken before the rebuild\n",
            e->kafka.ns, (unsigned long long)st.logs, (unsigned long long)st.deleted_logs,
            (unsigned long long)st.entries, (unsigned long long)st.revocations);
    return 0;
}

/* A role that failed on its engines (EIO, EUNAVAIL: e.g. a Kafka consumer left fatally
 * fenced by a broker restart) starts over in the same process, with new clients, after a
 * second; a configuration error (EINVAL, ...) ends the process. */
static void *role_main(void *p)
{
    role_thread *rt = p;
    for (;;) {
        ann_err_clear(&rt->err);
        rt->rc = rt->run(rt, &rt->err);
        if (rt->rc == 0 || *rt->stop || (rt->err.code != ANN_EIO && rt->err.code != ANN_EUNAVAIL))
            break;
        fprintf(stderr, "annalsd: %s failed: %s; starting over in 1 s\n", rt->name, rt->err.msg);
        for (int i = 0; i < 10 && !*rt->stop; i++)
            nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
        if (*rt->stop) {
            rt->rc = 0;
            break;
        }
    }
    if (rt->rc != 0) {
        fprintf(stderr, "annalsd: %s stopped: %s\n", rt->name, rt->err.msg);
        pthread_mutex_lock(rt->mu);
        *rt->failed = 1;
        pthread_cond_broadcast(rt->cv);
        pthread_mutex_unlock(rt->mu);
    }
    return NULL;
}

int ann_roles_run(const char *role, const ann_roles_opts *o, const ann_server_opts *so,
                  ann_wait default_wait)
{
    bool serve = strcmp(role, "serve") == 0 || strcmp(role, "all") == 0;
    bool seq = strcmp(role, "sequence") == 0 || strcmp(role, "all") == 0;
    bool proj = strcmp(role, "project") == 0 || strcmp(role, "all") == 0;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* As in embedded mode: buffers of 1 MiB and more are mmap'd, so they go back when freed. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);

    engines e;
    engines_from(o, &e);
    char instance[128];
    if (o->instance)
        snprintf(instance, sizeof instance, "%s", o->instance);
    else
        snprintf(instance, sizeof instance, "annalsd-%ld-%lx", (long)getpid(), (long)time(NULL));

    int rc = 1;
    ann_err err = {0};
    /* Topics first: every role needs them, and their partition count is the deployment's. */
    if (ann_kafka_ensure_topics(&e.kafka, &err) != 0) {
        fprintf(stderr, "annalsd: %s\n", err.msg);
        return 1;
    }

    if (o->rebuild) {
        if (strcmp(role, "project") != 0) {
            fprintf(stderr, "annalsd: --rebuild goes with `annalsd project` only\n");
            return 2;
        }
        return run_rebuild(&e);
    }

    volatile int stop = 0, failed = 0;
    ann_sequencer_stats seq_stats = {0};
    /* Readiness (docs/operations.md): the engines this role needs answer, and no SIGTERM
     * yet. Metrics only with --http, which is how they are read. */
    ann_metrics *metrics = o->http ? ann_metrics_new() : NULL;
    ann_health *health = ann_health_new(metrics);
    if (seq)
        ann_metrics_collector(metrics, seq_stats_collect, &seq_stats);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    role_thread rts[4];
    int nrt = 0;
    if (seq)
        rts[nrt++] = (role_thread){.name = "sequencer", .run = run_sequencer};
    if (proj)
        rts[nrt++] = (role_thread){.name = "projector", .run = run_projector};
    if (proj) /* the search projection: its own consumer, never slowing the browse one */
        rts[nrt++] = (role_thread){.name = "search projector", .run = run_search_projector};
    if (proj) /* revoked bytes out of the engines' files (docs/distributed.md) */
        rts[nrt++] = (role_thread){.name = "purger", .run = run_purger};
    for (int i = 0; i < nrt; i++) {
        rts[i].e = &e;
        rts[i].instance = instance;
        rts[i].dynamic = o->instance == NULL;
        rts[i].stop = &stop;
        rts[i].failed = &failed;
        rts[i].mu = &mu;
        rts[i].cv = &cv;
        rts[i].metrics = metrics;
        rts[i].stats = &seq_stats;
        rts[i].opts = o;
        pthread_create(&rts[i].t, NULL, role_main, &rts[i]);
    }

    ann_store *store = NULL;
    ann_service svc;
    ann_server *srv = NULL;
    ann_http *http = NULL;
    ann_retention *retention = NULL;
    engine_probe probes[3] = {{"kafka", e.kafka.brokers},
                              {"cassandra", e.cql.contact_points},
                              {"postgresql", e.conninfo}};
    ann_health_add_probe(health, "kafka", probe_engine, &probes[0]);
    if (serve || seq)
        ann_health_add_probe(health, "cassandra", probe_engine, &probes[1]);
    if (serve || proj)
        ann_health_add_probe(health, "postgresql", probe_engine, &probes[2]);
    if (ann_health_start(health, 1000, &err) != 0) {
        fprintf(stderr, "annalsd: %s\n", err.msg);
        goto stop_roles;
    }
    ann_server_opts so2 = *so;
    so2.metrics = metrics;
    so2.health = health;
    if (serve) {
        grpc_init();
        if (ann_roles_open_store(o, metrics, &store, &err) != 0 ||
            ann_service_init(&svc, store, &err) != 0) {
            fprintf(stderr, "annalsd: %s\n", err.msg);
            goto stop_roles;
        }
        svc.default_wait = default_wait;
        if (ann_server_start(&svc, &so2, &srv, &err) != 0) {
            fprintf(stderr, "annalsd: %s\n", err.msg);
            goto stop_roles;
        }
        /* Every API server runs one: two deleting the same log race harmlessly (the
         * catalog's conditional mark lets one win; the other finds it deleted). */
        if (ann_retention_start(store, &o->retention, &retention, &err) != 0) {
            fprintf(stderr, "annalsd: %s\n", err.msg);
            goto stop_roles;
        }
    }
    if (o->http) {
        ann_http_opts ho = {.listen = o->http,
                            .tls_cert_file = so->tls_cert_file,
                            .tls_key_file = so->tls_key_file,
                            .metrics = metrics,
                            .health = health,
                            .svc = serve ? &svc : NULL,
                            .role = role};
        if (ann_http_start(&ho, &http, &err) != 0) {
            fprintf(stderr, "annalsd: %s\n", err.msg);
            goto stop_roles;
        }
        fprintf(stderr, "annalsd: http on %s://%s (/healthz /readyz /metrics)\n",
                so->tls_cert_file ? "https" : "http", o->http);
    }
    fprintf(stderr, "annalsd: %s (distributed, namespace %s, %d partitions)%s%s\n", role,
            e.kafka.ns, (int)e.kafka.partitions, serve ? " serving on " : "",
            serve ? so->listen : "");

    /* Wait for a signal, or for a role to fail (then exit nonzero: a supervisor restarts). */
    {
        int sig = 0;
        struct timespec zero = {0, 0};
        for (;;) {
            siginfo_t si;
            sig = sigtimedwait(&set, &si, &zero);
            if (sig > 0)
                break;
            pthread_mutex_lock(&mu);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            if (!failed)
                pthread_cond_timedwait(&cv, &mu, &ts);
            int f = failed;
            pthread_mutex_unlock(&mu);
            if (f)
                break;
            /* Large records are freed on the client library's threads, whose malloc arenas
             * glibc does not trim by itself: give the memory back a few times a second. */
            malloc_trim(0);
        }
        rc = failed ? 1 : 0;
        if (sig > 0)
            fprintf(stderr, "annalsd: signal %d: finishing in-flight calls\n", sig);
    }
    ann_health_set_draining(health); /* /readyz: 503 while the roles finish */
    ann_retention_stop(retention);
    retention = NULL;
    if (srv)
        ann_server_stop(srv);
    srv = NULL;
stop_roles:
    ann_retention_stop(retention);
    if (srv) /* a start that failed half way */
        ann_server_stop(srv);
    ann_http_stop(http);
    ann_store_close(store);
    stop = 1;
    for (int i = 0; i < nrt; i++)
        pthread_join(rts[i].t, NULL);
    ann_health_free(health);
    ann_metrics_free(metrics);
    if (serve)
        grpc_shutdown();
    if (rc == 0)
        fprintf(stderr, "annalsd: stopped cleanly\n");
    return rc;
}
