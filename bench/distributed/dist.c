/*
 * annals-dist: the engine-side helpers of the distributed benchmark (bench/distributed/run.sh,
 * docs/bench.md "Distributed mode").
 *
 *   annals-dist raw   --ns NS [--threads 4] [--batch 1000] [--entry-size 200] [--logs 100]
 *                     [--duration 20]
 *       A raw librdkafka producer: the Command records annalsd serve would produce for the
 *       same requests (one record per request, same key, partition, size and producer
 *       settings: ann_kafka_producer, idempotent, acks=all, lz4, linger 2 ms), into
 *       <NS>.pending, a twin of a namespace's pending topic (ann_kafka_ensure_topics). Each
 *       thread keeps one record in flight, as a client waiting for a DURABLE reply does.
 *   annals-dist watch --ns NS [--interval 1] [--duration 0]
 *       One line a tick: entries sequenced (Cassandra seq_heads, sum of next_id - 1) and
 *       visible (PostgreSQL log_state, sum of visible_count), and their difference.
 *   annals-dist sizes --ns NS
 *       PostgreSQL bytes of the namespace's schema (pg_total_relation_size of each table), and
 *       of the entries partitions that hold rows (the empty month partitions, each with its
 *       indexes' meta pages, are a fixed cost), with the entry counts.
 *   annals-dist drop  --ns NS[,NS...]
 *       Deletes the namespaces' topics, Cassandra keyspaces and PostgreSQL schemas.
 *
 * Engines as annalsd's defaults: --kafka 127.0.0.1:9092, --cassandra 127.0.0.1:9042
 * (cassandra/cassandra), --postgres the dev database. Output: "RESULT key=value ..." lines.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "annals/events/v1/events.pb-c.h"
#include "benchkit.h"
#include "cql/cql.h"
#include "domain/event.h"
#include "kafka/kafka.h"
#include "pg/pg.h"
#include "pg/schema.h"

typedef struct opts {
    const char *ns, *kafka, *cassandra, *postgres;
    int threads, batch, entry_size, logs, partitions;
    double duration, interval;
} opts;

static void fail(const char *what, const ann_err *err)
{
    fprintf(stderr, "annals-dist: %s: %s\n", what, err->msg);
    exit(1);
}

static ann_kafka_config kafka_config(const opts *o)
{
    ann_kafka_config kc = {.brokers = o->kafka, .ns = o->ns, .partitions = o->partitions};
    ann_kafka_config_defaults(&kc);
    return kc;
}

/* ---- raw ------------------------------------------------------------------ */

typedef struct slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    rd_kafka_resp_err_t err;
} slot;

typedef struct raw_worker {
    const opts *o;
    rd_kafka_t *rk;
    const char *topic;
    int idx;
    uint64_t deadline;
    slot s;
    lat lat;
    uint64_t records, entries, errors, bytes;
} raw_worker;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    slot *s = m->_private;
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    s->err = m->err;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* A UUID-shaped string (36 characters) from a counter, as annals' ids look. */
static void fake_uuid(char out[37], uint64_t a, uint64_t b)
{
    snprintf(out, 37, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64 "-%012" PRIx64,
             a & 0xffffffffu, (a >> 32) & 0xffffu, b & 0xfffu, (b >> 12) & 0xfffu,
             (uint64_t)((b >> 24) & 0xffffffffffffULL));
}

static void *raw_run(void *p)
{
    raw_worker *w = p;
    const opts *o = w->o;
    size_t n = (size_t)o->batch, esz = (size_t)o->entry_size;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->idx + 1);
    /* The body as the API stores a text entry: LogEntry field 30 (text_payload). */
    size_t blen = 0;
    uint8_t *bodies = malloc(n * (esz + 16)), *b = bodies;
    char tenant[37], log[37], rid[37], origin[64], key[ANN_EVENT_KEY_LEN + 1];
    char(*ids)[32] = calloc(n, sizeof *ids);
    Annals__Events__V1__Entry *es = calloc(n, sizeof *es);
    Annals__Events__V1__Entry **ep = calloc(n, sizeof *ep);
    uint64_t seq = 0;
    struct timeval tv;

    fake_uuid(tenant, 1, 1);
    snprintf(origin, sizeof origin, "annals-dist-raw-%d", (int)getpid());
    for (size_t i = 0; i < n; i++) {
        b[0] = 0xF2, b[1] = 0x01; /* tag 30, wire type 2 */
        size_t h = 2, v = esz;
        while (v >= 0x80) {
            b[h++] = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        b[h++] = (uint8_t)v;
        for (size_t j = 0; j < esz; j++)
            b[h + j] =
                (uint8_t) "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .:=/-_"
                    [rng_next(&rng) % 68];
        blen = h + esz;
        annals__events__v1__entry__init(&es[i]);
        es[i].severity = 300;
        es[i].body.data = b;
        es[i].body.len = blen;
        es[i].insert_id.data = (uint8_t *)ids[i];
        ep[i] = &es[i];
        b += blen;
    }
    Annals__Events__V1__Write wr = ANNALS__EVENTS__V1__WRITE__INIT;
    wr.n_entries = n;
    wr.entries = ep;
    Annals__Events__V1__Command c = ANNALS__EVENTS__V1__COMMAND__INIT;
    c.request_id = rid;
    c.origin = origin;
    c.tenant_id = tenant;
    c.log_id = log;
    c.op_case = ANNALS__EVENTS__V1__COMMAND__OP_WRITE;
    c.write = &wr;

    for (uint64_t k = 0; bench_now_ns() < w->deadline; k++) {
        fake_uuid(log, 2, (uint64_t)(w->idx + (int)k * o->threads) % (uint64_t)o->logs);
        fake_uuid(rid, 3 + (uint64_t)w->idx, k);
        gettimeofday(&tv, NULL);
        int64_t now = (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
        for (size_t i = 0; i < n; i++) {
            es[i].insert_id.len =
                (size_t)snprintf(ids[i], sizeof ids[i], "w%02d-%012" PRIu64, w->idx % 100, seq++);
            es[i].time_ns = es[i].insert_time_ns = now;
        }
        size_t len = annals__events__v1__command__get_packed_size(&c);
        uint8_t *buf = malloc(len);
        annals__events__v1__command__pack(&c, buf);
        ann_event_key(tenant, log, key);
        int32_t part = ann_event_partition(key, strlen(key), o->partitions);
        uint64_t t0 = bench_now_ns();
        w->s.done = 0;
        rd_kafka_resp_err_t e = rd_kafka_producev(
            w->rk, RD_KAFKA_V_TOPIC(w->topic), RD_KAFKA_V_PARTITION(part),
            RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_OPAQUE(&w->s), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            free(buf);
            w->errors++;
            usleep(1000);
            continue;
        }
        pthread_mutex_lock(&w->s.mu);
        while (!w->s.done)
            pthread_cond_wait(&w->s.cv, &w->s.mu);
        pthread_mutex_unlock(&w->s.mu);
        if (w->s.err) {
            w->errors++;
            continue;
        }
        lat_add(&w->lat, (bench_now_ns() - t0) / 1000);
        w->records++;
        w->entries += n;
        w->bytes += len;
    }
    free(ep);
    free(es);
    free(ids);
    free(bodies);
    return NULL;
}

typedef struct poller {
    rd_kafka_t *rk;
    _Atomic int stop;
} poller;

static void *poll_run(void *p)
{
    poller *pl = p;
    while (!atomic_load(&pl->stop))
        rd_kafka_poll(pl->rk, 50);
    return NULL;
}

static int cmd_raw(const opts *o)
{
    ann_kafka_config kc = kafka_config(o);
    ann_err err = {0};
    char topic[256];
    if (ann_kafka_ensure_topics(&kc, &err) != 0)
        fail("topics", &err);
    ann_kafka_topic(&kc, ANN_TOPIC_PENDING, topic, sizeof topic);
    rd_kafka_t *rk = ann_kafka_producer(&kc, "annals-dist-raw", NULL, on_delivery, NULL, &err);
    if (!rk)
        fail("producer", &err);
    poller pl = {.rk = rk};
    pthread_t pth, *th = calloc((size_t)o->threads, sizeof *th);
    raw_worker *ws = calloc((size_t)o->threads, sizeof *ws);
    pthread_create(&pth, NULL, poll_run, &pl);
    double cpu0 = self_cpu_s();
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < o->threads; i++) {
        ws[i] = (raw_worker){.o = o,
                             .rk = rk,
                             .topic = topic,
                             .idx = i,
                             .deadline = t0 + (uint64_t)(o->duration * 1e9)};
        pthread_mutex_init(&ws[i].s.mu, NULL);
        pthread_cond_init(&ws[i].s.cv, NULL);
        pthread_create(&th[i], NULL, raw_run, &ws[i]);
    }
    lat all = {0};
    uint64_t records = 0, entries = 0, errors = 0, bytes = 0;
    for (int i = 0; i < o->threads; i++) {
        pthread_join(th[i], NULL);
        lat_merge(&all, &ws[i].lat);
        records += ws[i].records;
        entries += ws[i].entries;
        errors += ws[i].errors;
        bytes += ws[i].bytes;
        free(ws[i].lat.v);
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9, cpu = self_cpu_s() - cpu0;
    atomic_store(&pl.stop, 1);
    pthread_join(pth, NULL);
    rd_kafka_flush(rk, 10000);
    rd_kafka_destroy(rk);
    printf("RESULT mode=raw topic=%s threads=%d batch=%d entry_size=%d records=%" PRIu64
           " entries=%" PRIu64 " failed=%" PRIu64 " seconds=%.2f entries_per_s=%.0f"
           " record_bytes=%.0f p50_ms=%.2f p99_ms=%.2f client_cpu_s=%.2f\n",
           topic, o->threads, o->batch, o->entry_size, records, entries, errors, secs,
           (double)entries / secs, records ? (double)bytes / (double)records : 0.0,
           lat_pct_ms(&all, 0.5), lat_pct_ms(&all, 0.99), cpu);
    free(all.v);
    free(ws);
    free(th);
    return errors ? 1 : 0;
}

/* ---- watch, sizes, drop ---------------------------------------------------- */

static ann_cql_conn *cql_open(const opts *o)
{
    const char *u = getenv("ANNALS_CASSANDRA_USER"), *pw = getenv("ANNALS_CASSANDRA_PASSWORD");
    ann_cql_config cc = {.contact_points = o->cassandra,
                         .username = u && *u ? u : "cassandra",
                         .password = pw && *pw ? pw : "cassandra"};
    ann_cql_conn *c = NULL;
    ann_err err = {0};
    if (ann_cql_conn_new(&cc, &c, &err) != 0)
        fail("cassandra", &err);
    return c;
}

static PGconn *pg_open(const opts *o)
{
    ann_err err = {0};
    PGconn *c = ann_pg_connect(o->postgres, &err);
    if (!c)
        fail("postgres", &err);
    return c;
}

static int64_t sequenced(ann_cql_conn *c, const char *ns)
{
    char q[160];
    ann_cql_result r = {0};
    ann_err err = {0};
    int64_t sum = 0;
    snprintf(q, sizeof q, "SELECT next_id FROM %s.seq_heads", ns);
    if (ann_cql_query(c, q, NULL, &r, &err) != 0)
        return -1;
    for (int32_t i = 0; i < r.nrows; i++) {
        int64_t v = 0;
        if (r.cells[i].len > 0 && ann_cql_get_bigint(&r, i, 0, &v, &err) == 0 && v > 1)
            sum += v - 1;
    }
    ann_cql_result_release(&r);
    return sum;
}

static int64_t pg_scalar(PGconn *c, const char *sql, const char *ns)
{
    ann_pg_params p = {0};
    ann_err err = {0};
    ann_pg_param_text(&p, ns);
    PGresult *r = ann_pg_exec(c, "bench", sql, &p, false, &err);
    int64_t v = r && PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return v;
}

static int64_t visible(PGconn *c, const char *ns)
{
    char q[160];
    snprintf(q, sizeof q,
             "SELECT coalesce(sum(visible_count), 0)::bigint FROM \"%s\".log_state "
             "WHERE $1::text IS NOT NULL",
             ns);
    return pg_scalar(c, q, ns);
}

static int cmd_watch(const opts *o)
{
    ann_cql_conn *cq = cql_open(o);
    PGconn *pg = pg_open(o);
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t end = o->duration > 0 ? bench_now_ns() + (uint64_t)(o->duration * 1e9) : 0;
    do {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        int64_t s = sequenced(cq, o->ns), v = visible(pg, o->ns);
        printf("WATCH t=%.3f sequenced=%" PRId64 " visible=%" PRId64 " lag=%" PRId64 "\n",
               (double)tv.tv_sec + tv.tv_usec / 1e6, s, v, s - v);
        if (o->interval <= 0)
            break;
        usleep((useconds_t)(o->interval * 1e6));
    } while (!end || bench_now_ns() < end);
    PQfinish(pg);
    ann_cql_conn_free(cq);
    return 0;
}

static int cmd_sizes(const opts *o)
{
    PGconn *pg = pg_open(o);
    ann_cql_conn *cq = cql_open(o);
    int64_t all = pg_scalar(pg,
                            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint "
                            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
                            o->ns);
    int64_t ent =
        pg_scalar(pg,
                  "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint "
                  "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  "WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE 'entries%' "
                  "AND pg_relation_size(c.oid) > 0",
                  o->ns);
    printf("RESULT mode=sizes ns=%s pg_bytes=%" PRId64 " pg_entries_bytes=%" PRId64
           " visible=%" PRId64 " sequenced=%" PRId64 "\n",
           o->ns, all, ent, visible(pg, o->ns), sequenced(cq, o->ns));
    ann_cql_conn_free(cq);
    PQfinish(pg);
    return 0;
}

static int cmd_drop(const opts *o)
{
    char *list = strdup(o->ns), *save = NULL;
    ann_cql_conn *cq = cql_open(o);
    PGconn *pg = pg_open(o);
    opts one = *o;
    int rc = 0;
    for (char *ns = strtok_r(list, ",", &save); ns; ns = strtok_r(NULL, ",", &save)) {
        ann_err err = {0};
        ann_cql_result r = {0};
        char q[160];
        one.ns = ns;
        ann_kafka_config kc = kafka_config(&one);
        rd_kafka_t *rk = ann_kafka_producer(&kc, "annals-dist-drop", NULL, NULL, NULL, &err);
        if (rk) {
            static const char *const suffix[3] = {ANN_TOPIC_PENDING, ANN_TOPIC_COMMITTED,
                                                  ANN_TOPIC_ACKS};
            char names[3][256];
            rd_kafka_DeleteTopic_t *dt[3];
            for (int i = 0; i < 3; i++) {
                ann_kafka_topic(&kc, suffix[i], names[i], sizeof names[i]);
                dt[i] = rd_kafka_DeleteTopic_new(names[i]);
            }
            rd_kafka_queue_t *qu = rd_kafka_queue_new(rk);
            rd_kafka_DeleteTopics(rk, dt, 3, NULL, qu);
            rd_kafka_event_t *ev = rd_kafka_queue_poll(qu, 15000);
            if (ev)
                rd_kafka_event_destroy(ev);
            rd_kafka_DeleteTopic_destroy_array(dt, 3);
            rd_kafka_queue_destroy(qu);
            rd_kafka_destroy(rk);
        }
        snprintf(q, sizeof q, "DROP KEYSPACE IF EXISTS %s", ns);
        if (ann_cql_query(cq, q, NULL, &r, &err) != 0 || ann_pg_schema_drop(pg, ns, &err) != 0) {
            fprintf(stderr, "annals-dist: drop %s: %s\n", ns, err.msg);
            rc = 1;
        }
        ann_cql_result_release(&r);
    }
    PQfinish(pg);
    ann_cql_conn_free(cq);
    free(list);
    return rc;
}

static const char usage[] =
    "usage: annals-dist raw|watch|sizes|drop --ns NS [options]\n"
    "  --kafka BROKERS (127.0.0.1:9092) --cassandra HOST:PORT (127.0.0.1:9042)\n"
    "  --postgres CONNINFO (the dev database) --partitions N (12)\n"
    "  raw:   --threads N (4) --batch N (1000) --entry-size B (200) --logs N (100)\n"
    "         --duration S (20)\n"
    "  watch: --interval S (1; 0 = one line) --duration S (0 = until killed)\n"
    "  drop:  --ns NS[,NS...]\n";

int main(int argc, char **argv)
{
    opts o = {.kafka = "127.0.0.1:9092",
              .cassandra = "127.0.0.1:9042",
              .postgres = "host=127.0.0.1 port=5432 user=annals password=annals dbname=annals",
              .threads = 4,
              .batch = 1000,
              .entry_size = 200,
              .logs = 100,
              .partitions = ANN_PARTITIONS_DEFAULT,
              .duration = 20,
              .interval = 1};
    const bench_opt table[] = {
        {"ns", BOPT_STR, &o.ns},
        {"kafka", BOPT_STR, &o.kafka},
        {"cassandra", BOPT_STR, &o.cassandra},
        {"postgres", BOPT_STR, &o.postgres},
        {"partitions", BOPT_INT, &o.partitions},
        {"threads", BOPT_INT, &o.threads},
        {"batch", BOPT_INT, &o.batch},
        {"entry-size", BOPT_INT, &o.entry_size},
        {"logs", BOPT_INT, &o.logs},
        {"duration", BOPT_DBL, &o.duration},
        {"interval", BOPT_DBL, &o.interval},
        {NULL, 0, NULL},
    };
    if (argc < 2 || argv[1][0] == '-') {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    bench_args(argc, argv, 2, table, usage);
    if (!o.ns || o.threads < 1 || o.threads > 100 || o.batch < 1 || o.entry_size < 1 ||
        o.logs < 1 || o.partitions < 1) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "raw"))
        return cmd_raw(&o);
    if (!strcmp(argv[1], "watch"))
        return cmd_watch(&o);
    if (!strcmp(argv[1], "sizes"))
        return cmd_sizes(&o);
    if (!strcmp(argv[1], "drop"))
        return cmd_drop(&o);
    fputs(usage, stderr);
    return 2;
}
