/*
 * The sequencer against the running engines (label `engines`): Kafka on
 * ANN_KAFKA_BROKERS (default 127.0.0.1:9092), Cassandra on ANN_CQL_CONTACT
 * (default 127.0.0.1:9042, cassandra/cassandra). Each run has a namespace of
 * its own, t_seq_<hex>: the topic prefix (4 partitions) and the keyspace,
 * both removed at the end. Commands are produced with a plain producer, the
 * sequencer runs in a thread, acks and committed records are read with
 * read_committed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "annals/events/v1/events.pb-c.h"
#include "archive/archive_cassandra.h"
#include "domain/event.h"
#include "kafka/kafka.h"
#include "sequencer/sequencer.h"

typedef Annals__Events__V1__Command Command;
typedef Annals__Events__V1__Committed Committed;
typedef Annals__Events__V1__Ack Ack;
typedef Annals__Events__V1__Entry Entry;

#define NPART 4
#define TENANT "tenant-a"

static const char *env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

typedef struct world {
    char ns[32], origin[48];
    ann_kafka_config kc;
    ann_cql_config cql;
    ann_sequencer_config sc;
    ann_sequencer_stats st;
    volatile int stop;
    pthread_t th;
    int run_rc;
    ann_err run_err;
    rd_kafka_t *prod, *acks, *committed;
    char t_pending[96], t_acks[96], t_committed[96];
    ann_archive *ar;
    unsigned next_rid;
    Ack **ack;
    size_t nack, capack;
    Committed **com;
    size_t ncom, capcom;
} world;

static world W;

static void *seq_main(void *arg)
{
    world *w = arg;
    w->run_rc = ann_sequencer_run(&w->sc, &w->stop, &w->run_err);
    if (w->run_rc < 0)
        fprintf(stderr, "sequencer: %s\n", w->run_err.msg);
    return NULL;
}

static rd_kafka_t *reader(const char *topic)
{
    ann_err err;
    rd_kafka_t *rk = ann_kafka_consumer(&W.kc, NULL, NULL, NULL, NULL, &err);
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPART);
    for (int32_t p = 0; p < NPART; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

static int setup(void **state)
{
    (void)state;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(W.ns, sizeof W.ns, "t_seq_%08x", (unsigned)rand());
    snprintf(W.origin, sizeof W.origin, "api-%s", W.ns);
    W.kc = (ann_kafka_config){
        .brokers = env("ANN_KAFKA_BROKERS", "127.0.0.1:9092"), .ns = W.ns, .partitions = NPART};
    ann_kafka_config_defaults(&W.kc);
    W.cql = (ann_cql_config){.contact_points = env("ANN_CQL_CONTACT", "127.0.0.1:9042"),
                             .username = env("ANN_CQL_USER", "cassandra"),
                             .password = env("ANN_CQL_PASSWORD", "cassandra"),
                             .request_timeout_ms = 20000};
    ann_err err;
    if (ann_kafka_ensure_topics(&W.kc, &err) < 0) {
        fprintf(stderr, "topics: %s\n", err.msg);
        return -1;
    }
    ann_kafka_topic(&W.kc, ANN_TOPIC_PENDING, W.t_pending, sizeof W.t_pending);
    ann_kafka_topic(&W.kc, ANN_TOPIC_ACKS, W.t_acks, sizeof W.t_acks);
    ann_kafka_topic(&W.kc, ANN_TOPIC_COMMITTED, W.t_committed, sizeof W.t_committed);
    W.sc = (ann_sequencer_config){
        .kafka = W.kc,
        .archive = {.cql = &W.cql, .keyspace = W.ns, .replication_factor = 1},
        .instance = "seq-1",
        .stats = &W.st};
    /* the keyspace first, so that the test can read it at once */
    if (ann_archive_open(&W.sc.archive, &W.ar, &err) < 0) {
        fprintf(stderr, "archive: %s\n", err.msg);
        return -1;
    }
    if (pthread_create(&W.th, NULL, seq_main, &W) != 0)
        return -1;
    W.prod = ann_kafka_producer(&W.kc, "test-api", NULL, NULL, NULL, &err);
    W.acks = reader(W.t_acks);
    W.committed = reader(W.t_committed);
    printf("namespace %s\n", W.ns);
    return W.prod ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    W.stop = 1;
    pthread_join(W.th, NULL);
    for (size_t i = 0; i < W.nack; i++)
        annals__events__v1__ack__free_unpacked(W.ack[i], NULL);
    for (size_t i = 0; i < W.ncom; i++)
        annals__events__v1__committed__free_unpacked(W.com[i], NULL);
    free(W.ack);
    free(W.com);
    rd_kafka_consumer_close(W.acks);
    rd_kafka_destroy(W.acks);
    rd_kafka_consumer_close(W.committed);
    rd_kafka_destroy(W.committed);
    /* the namespace goes: topics and keyspace */
    const char *names[3] = {W.t_pending, W.t_acks, W.t_committed};
    rd_kafka_DeleteTopic_t *dt[3];
    for (int i = 0; i < 3; i++)
        dt[i] = rd_kafka_DeleteTopic_new(names[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(W.prod);
    rd_kafka_DeleteTopics(W.prod, dt, 3, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy_array(dt, 3);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(W.prod);
    char cq[96];
    snprintf(cq, sizeof cq, "DROP KEYSPACE IF EXISTS %s", W.ns);
    ann_cql_result r;
    ann_err err;
    (void)ann_cql_query(ann_archive_conn(W.ar), cq, NULL, &r, &err);
    ann_cql_result_release(&r);
    ann_archive_close(W.ar);
    return W.run_rc;
}

/* ---- sending ---- */

static void send_cmd(Command *c, char *rid, size_t cap)
{
    snprintf(rid, cap, "r-%u", ++W.next_rid);
    c->request_id = rid;
    c->origin = W.origin;
    size_t n = annals__events__v1__command__get_packed_size(c);
    void *buf = malloc(n);
    assert_non_null(buf);
    annals__events__v1__command__pack(c, buf);
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(c->tenant_id, c->log_id, key);
    int32_t p = ann_event_partition(key, strlen(key), NPART);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(W.prod, RD_KAFKA_V_TOPIC(W.t_pending), RD_KAFKA_V_PARTITION(p),
                                  RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, n),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(W.prod, 10);
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_poll(W.prod, 0);
}

typedef struct rid {
    char s[24];
} rid;

static rid create_log(const char *log)
{
    rid r;
    Command c = ANNALS__EVENTS__V1__COMMAND__INIT;
    Annals__Events__V1__CreateLog cl = ANNALS__EVENTS__V1__CREATE_LOG__INIT;
    cl.create_time_ns = 42;
    c.tenant_id = TENANT;
    c.log_id = (char *)log;
    c.op_case = ANNALS__EVENTS__V1__COMMAND__OP_CREATE_LOG;
    c.create_log = &cl;
    send_cmd(&c, r.s, sizeof r.s);
    return r;
}

/* Entries with insert_ids "<prefix>-<i>" and bodies "body-<prefix>-<i>"
 * (padded to `size` bytes); iids, if given, names each entry's insert_id. */
/* When set, write_n marks its insert_ids as made up by an API server. */
static bool generated_ids;

static rid write_n(const char *log, const char *prefix, size_t n, size_t size,
                   const char *const *iids)
{
    rid r;
    Entry *e = calloc(n, sizeof *e);
    Entry **ep = calloc(n, sizeof *ep);
    char **bufs = calloc(2 * n, sizeof *bufs);
    assert_true(e && ep && bufs);
    for (size_t i = 0; i < n; i++) {
        annals__events__v1__entry__init(&e[i]);
        bufs[2 * i] = malloc(64);
        /* server-made ids look like the API server's: "<36-byte request key>/<index>";
         * with iids, a NULL one is server-made */
        bool gen = iids ? iids[i] == NULL : generated_ids;
        snprintf(bufs[2 * i], 64, gen ? "%s/%zu" : "%s-%zu", prefix, i);
        const char *iid = iids && iids[i] ? iids[i] : bufs[2 * i];
        size_t bl = size > 64 ? size : 64;
        bufs[2 * i + 1] = calloc(1, bl + 1);
        snprintf(bufs[2 * i + 1], bl, "body-%s", iid);
        size_t used = size > strlen(bufs[2 * i + 1]) ? size : strlen(bufs[2 * i + 1]);
        memset(bufs[2 * i + 1] + strlen(bufs[2 * i + 1]), '.', used - strlen(bufs[2 * i + 1]));
        e[i].insert_id = (ProtobufCBinaryData){strlen(iid), (uint8_t *)iid};
        e[i].insert_id_generated = gen;
        e[i].body = (ProtobufCBinaryData){used, (uint8_t *)bufs[2 * i + 1]};
        e[i].time_ns = 1000 + (int64_t)i;
        e[i].insert_time_ns = 2000;
        e[i].severity = 9;
        ep[i] = &e[i];
    }
    Annals__Events__V1__Write w = ANNALS__EVENTS__V1__WRITE__INIT;
    w.n_entries = n;
    w.entries = ep;
    Command c = ANNALS__EVENTS__V1__COMMAND__INIT;
    c.tenant_id = TENANT;
    c.log_id = (char *)log;
    c.op_case = ANNALS__EVENTS__V1__COMMAND__OP_WRITE;
    c.write = &w;
    send_cmd(&c, r.s, sizeof r.s);
    for (size_t i = 0; i < 2 * n; i++)
        free(bufs[i]);
    free(bufs);
    free(ep);
    free(e);
    return r;
}

static rid revoke_ids(const char *log, uint64_t *ids, size_t n, const char *actor)
{
    rid r;
    Annals__Events__V1__Revoke rv = ANNALS__EVENTS__V1__REVOKE__INIT;
    rv.n_entry_ids = n;
    rv.entry_ids = ids;
    rv.actor = (char *)actor;
    rv.reason = "test";
    rv.time_ns = 77;
    Command c = ANNALS__EVENTS__V1__COMMAND__INIT;
    c.tenant_id = TENANT;
    c.log_id = (char *)log;
    c.op_case = ANNALS__EVENTS__V1__COMMAND__OP_REVOKE;
    c.revoke = &rv;
    send_cmd(&c, r.s, sizeof r.s);
    return r;
}

static rid delete_log(const char *log)
{
    rid r;
    Annals__Events__V1__DeleteLog d = ANNALS__EVENTS__V1__DELETE_LOG__INIT;
    Command c = ANNALS__EVENTS__V1__COMMAND__INIT;
    c.tenant_id = TENANT;
    c.log_id = (char *)log;
    c.op_case = ANNALS__EVENTS__V1__COMMAND__OP_DELETE_LOG;
    c.delete_log = &d;
    send_cmd(&c, r.s, sizeof r.s);
    return r;
}

/* ---- reading ---- */

static void drain(rd_kafka_t *rk, int timeout_ms, bool acks)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, timeout_ms);
    while (m) {
        if (!m->err) {
            if (acks) {
                Ack *a = annals__events__v1__ack__unpack(NULL, m->len, m->payload);
                assert_non_null(a);
                if (strcmp(a->origin, W.origin) != 0) {
                    annals__events__v1__ack__free_unpacked(a, NULL);
                } else {
                    if (W.nack == W.capack) {
                        W.capack = W.capack ? W.capack * 2 : 256;
                        W.ack = realloc(W.ack, W.capack * sizeof *W.ack);
                    }
                    W.ack[W.nack++] = a;
                }
            } else {
                Committed *c = annals__events__v1__committed__unpack(NULL, m->len, m->payload);
                assert_non_null(c);
                if (W.ncom == W.capcom) {
                    W.capcom = W.capcom ? W.capcom * 2 : 256;
                    W.com = realloc(W.com, W.capcom * sizeof *W.com);
                }
                W.com[W.ncom++] = c;
            }
        }
        rd_kafka_message_destroy(m);
        m = rd_kafka_consumer_poll(rk, 0);
    }
}

static const Ack *find_ack(const rid *r)
{
    for (size_t i = 0; i < W.nack; i++)
        if (strcmp(W.ack[i]->request_id, r->s) == 0)
            return W.ack[i];
    return NULL;
}

static const Ack *wait_ack(rid r)
{
    rd_kafka_flush(W.prod, 10000);
    for (int i = 0; i < 600; i++) {
        const Ack *a = find_ack(&r);
        if (a)
            return a;
        drain(W.acks, 100, true);
    }
    fail_msg("no ack for %s (sequencer stats: %llu batches, %llu aborted)", r.s,
             (unsigned long long)W.st.batches, (unsigned long long)W.st.aborted);
    return NULL;
}

/* The committed records of a log in their order, once `want` are in. */
static size_t committed_of(const char *log, size_t want, const Committed **out, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < 300; i++) {
        n = 0;
        for (size_t k = 0; k < W.ncom; k++)
            if (strcmp(W.com[k]->log_id, log) == 0 && n < cap)
                out[n++] = W.com[k];
        if (n >= want)
            break;
        drain(W.committed, 100, false);
    }
    return n;
}

static void assert_ids(const Ack *a, const uint64_t *want, size_t n)
{
    assert_int_equal(a->n_entry_ids, n);
    for (size_t i = 0; i < n; i++)
        if (a->entry_ids[i] != want[i])
            fail_msg("ids[%zu] = %llu, want %llu", i, (unsigned long long)a->entry_ids[i],
                     (unsigned long long)want[i]);
}

typedef struct seen {
    size_t n;
    uint64_t id[64];
    char body[64][48];
    uint32_t flags[64];
} seen;

static int collect(const ann_entry *e, void *ud)
{
    seen *s = ud;
    if (s->n >= 64)
        return 1;
    s->id[s->n] = e->entry_id;
    snprintf(s->body[s->n], sizeof s->body[0], "%.*s", (int)e->body_len, (const char *)e->body);
    s->flags[s->n] = e->flags;
    s->n++;
    return 0;
}

/* ---- tests ---- */

static void test_create_write_dedup(void **state)
{
    (void)state;
    const char *L = "log-dedup";
    const Ack *a = wait_ack(create_log(L));
    assert_int_equal(a->code, 0);
    assert_int_equal(a->op_seq, 1);
    a = wait_ack(write_n(L, "a", 5, 0, NULL));
    assert_int_equal(a->code, 0);
    assert_ids(a, (uint64_t[]){1, 2, 3, 4, 5}, 5);
    assert_int_equal(a->n_new, 5);
    assert_int_equal(a->op_seq, 2);
    assert_int_equal(a->entry_count, 5);
    /* the same request again (a client's retry): same ids, nothing new */
    a = wait_ack(write_n(L, "a", 5, 0, NULL));
    assert_ids(a, (uint64_t[]){1, 2, 3, 4, 5}, 5);
    assert_int_equal(a->n_new, 0);
    assert_int_equal(a->op_seq, 0);
    assert_int_equal(a->entry_count, 5);
    /* an old one, two new ones, a duplicate within the request */
    const char *iids[] = {"a-1", "b-0", "b-0", "b-1"};
    a = wait_ack(write_n(L, "x", 4, 0, iids));
    assert_ids(a, (uint64_t[]){2, 6, 6, 7}, 4);
    assert_int_equal(a->n_new, 2);
    assert_int_equal(a->op_seq, 3);
    assert_int_equal(a->entry_count, 7);
    /* the create again (a replay): announced again as op 1 */
    a = wait_ack(create_log(L));
    assert_int_equal(a->code, 0);
    assert_int_equal(a->op_seq, 1);
    assert_int_equal(a->entry_count, 7);

    const Committed *c[8];
    size_t n = committed_of(L, 5, c, 8);
    assert_int_equal(n, 5);
    assert_int_equal(c[0]->op_case, ANNALS__EVENTS__V1__COMMITTED__OP_CREATE_LOG);
    assert_int_equal(c[0]->op_seq, 1);
    assert_int_equal(c[0]->create_log->create_time_ns, 42);
    assert_int_equal(c[1]->op_case, ANNALS__EVENTS__V1__COMMITTED__OP_WRITE);
    assert_int_equal(c[1]->op_seq, 2);
    assert_int_equal(c[1]->write->n_entries, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(c[1]->write->entries[i]->entry_id, i + 1);
    /* the retry is announced again, as stored, with no op number: a projector that missed
     * the first announcement (an aborted transaction) still gets the entries */
    assert_int_equal(c[2]->op_case, ANNALS__EVENTS__V1__COMMITTED__OP_WRITE);
    assert_int_equal(c[2]->op_seq, 0);
    assert_int_equal(c[2]->entry_count, 5);
    assert_int_equal(c[2]->write->n_entries, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(c[2]->write->entries[i]->entry_id, i + 1);
    /* the fourth carries every entry of its command: the old one as stored */
    assert_int_equal(c[3]->op_seq, 3);
    assert_int_equal(c[3]->entry_count, 7);
    assert_int_equal(c[3]->write->n_entries, 3);
    assert_int_equal(c[3]->write->entries[0]->entry_id, 2);
    assert_memory_equal(c[3]->write->entries[0]->body.data, "body-a-1", 8);
    assert_int_equal(c[3]->write->entries[1]->entry_id, 6);
    assert_int_equal(c[3]->write->entries[2]->entry_id, 7);
    assert_int_equal(c[4]->op_case, ANNALS__EVENTS__V1__COMMITTED__OP_CREATE_LOG);
    assert_int_equal(c[4]->op_seq, 1);
    /* Cassandra agrees */
    bool exists = false, deleted = true;
    uint64_t count = 0;
    ann_err err;
    assert_int_equal(ann_archive_log_count(W.ar, NPART, TENANT, L, &exists, &deleted, &count, &err),
                     0);
    assert_true(exists);
    assert_false(deleted);
    assert_int_equal(count, 7);
}

static void test_not_found(void **state)
{
    (void)state;
    const Ack *a = wait_ack(write_n("log-missing", "m", 2, 0, NULL));
    assert_int_equal(a->code, ANN_ENOTFOUND);
    assert_string_equal(a->message, "log log-missing not found");
    assert_int_equal(a->op_seq, 0);
    assert_int_equal(a->n_entry_ids, 0);
    const char *L = "log-nf";
    wait_ack(create_log(L));
    a = wait_ack(write_n(L, "n", 3, 0, NULL));
    assert_int_equal(a->entry_count, 3);
    a = wait_ack(revoke_ids(L, (uint64_t[]){1, 4}, 2, "eve"));
    assert_int_equal(a->code, ANN_ENOTFOUND);
    assert_string_equal(a->message, "entry 4 not found in log log-nf");
    a = wait_ack(revoke_ids(L, (uint64_t[]){0}, 1, "eve"));
    assert_int_equal(a->code, ANN_ENOTFOUND);
    assert_string_equal(a->message, "entry 0 not found in log log-nf");
    a = wait_ack(revoke_ids("log-missing", (uint64_t[]){1}, 1, "eve"));
    assert_int_equal(a->code, ANN_ENOTFOUND);
    a = wait_ack(delete_log("log-missing"));
    assert_int_equal(a->code, ANN_ENOTFOUND);
    /* nothing of that was committed: entry 1 is intact */
    seen s = {0};
    ann_err err;
    assert_int_equal(ann_archive_read(W.ar, NPART, TENANT, L, 1, 10, collect, &s, &err), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.flags[0], 0);
    const Committed *c[8];
    assert_int_equal(committed_of(L, 2, c, 8), 2);
}

static void test_revoke_delete(void **state)
{
    (void)state;
    const char *L = "log-rd";
    wait_ack(create_log(L));
    wait_ack(write_n(L, "s", 3, 0, NULL));
    const Ack *a = wait_ack(revoke_ids(L, (uint64_t[]){2}, 1, "alice"));
    assert_int_equal(a->code, 0);
    assert_int_equal(a->op_seq, 3);
    assert_int_equal(a->entry_count, 3);
    seen s = {0};
    ann_err err;
    assert_int_equal(ann_archive_read(W.ar, NPART, TENANT, L, 1, 10, collect, &s, &err), 0);
    assert_int_equal(s.n, 3);
    assert_true(s.flags[1] & ANN_ENTRY_REDACTED);
    assert_string_equal(s.body[1], "");
    assert_string_equal(s.body[0], "body-s-0");
    /* again: harmless, still committed; the first revocation is kept */
    a = wait_ack(revoke_ids(L, (uint64_t[]){2}, 1, "bob"));
    assert_int_equal(a->code, 0);
    assert_int_equal(a->op_seq, 4);
    bool found = false;
    char actor[16];
    assert_int_equal(ann_archive_revocation(W.ar, TENANT, L, 2, &found, actor, sizeof actor, NULL,
                                            0, NULL, &err),
                     0);
    assert_true(found);
    assert_string_equal(actor, "alice");
    /* a write that resends the revoked entry carries it redacted */
    const char *iids[] = {"s-1", "s-new"};
    a = wait_ack(write_n(L, "z", 2, 0, iids));
    assert_ids(a, (uint64_t[]){2, 4}, 2);
    assert_int_equal(a->op_seq, 5);

    a = wait_ack(delete_log(L));
    assert_int_equal(a->code, 0);
    assert_int_equal(a->op_seq, 6);
    bool exists = false, deleted = false;
    uint64_t count = 0;
    assert_int_equal(ann_archive_log_count(W.ar, NPART, TENANT, L, &exists, &deleted, &count, &err),
                     0);
    assert_true(deleted);
    a = wait_ack(write_n(L, "late", 1, 0, NULL));
    assert_int_equal(a->code, ANN_ENOTFOUND);
    assert_string_equal(a->message, "log log-rd not found");
    a = wait_ack(revoke_ids(L, (uint64_t[]){1}, 1, "x"));
    assert_int_equal(a->code, ANN_ENOTFOUND);
    /* a replayed delete is announced again */
    a = wait_ack(delete_log(L));
    assert_int_equal(a->code, 0);
    assert_int_equal(a->op_seq, 6);

    const Committed *c[16];
    size_t n = committed_of(L, 7, c, 16);
    assert_int_equal(n, 7);
    uint64_t ops[] = {1, 2, 3, 4, 5, 6, 6};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c[i]->op_seq, ops[i]);
    assert_int_equal(c[2]->op_case, ANNALS__EVENTS__V1__COMMITTED__OP_REVOKE);
    assert_string_equal(c[2]->revoke->actor, "alice");
    assert_int_equal(c[4]->write->n_entries, 2);
    assert_int_equal(c[4]->write->entries[0]->entry_id, 2);
    assert_int_equal(c[4]->write->entries[0]->body.len, 0);
    assert_int_equal(c[5]->op_case, ANNALS__EVENTS__V1__COMMITTED__OP_DELETE_LOG);
    assert_int_equal(c[6]->op_case, ANNALS__EVENTS__V1__COMMITTED__OP_DELETE_LOG);
    /* the rows are gone */
    s.n = 0;
    assert_int_equal(ann_archive_read_at(W.ar, TENANT, L, 5, 1, 10, collect, &s, &err), 0);
    assert_int_equal(s.n, 0);
}

/* Many requests over several logs, sent interleaved without waiting: ids
 * dense and in send order per log, op_seq dense per log. */
static void test_ordering(void **state)
{
    (void)state;
    enum { LOGS = 6, REQS = 40, PER = 10 };
    char logs[LOGS][16];
    rid r[LOGS][REQS];
    for (int l = 0; l < LOGS; l++) {
        snprintf(logs[l], sizeof logs[l], "log-ord-%d", l);
        create_log(logs[l]);
    }
    for (int k = 0; k < REQS; k++)
        for (int l = 0; l < LOGS; l++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "o%d-%d", l, k);
            r[l][k] = write_n(logs[l], prefix, PER, 0, NULL);
        }
    for (int l = 0; l < LOGS; l++)
        for (int k = 0; k < REQS; k++) {
            const Ack *a = wait_ack(r[l][k]);
            assert_int_equal(a->code, 0);
            assert_int_equal(a->n_new, PER);
            for (int i = 0; i < PER; i++)
                assert_int_equal(a->entry_ids[i], (uint64_t)(k * PER + i + 1));
            assert_int_equal(a->op_seq, (uint64_t)k + 2);
        }
    for (int l = 0; l < LOGS; l++) {
        const Committed *c[REQS + 1];
        size_t n = committed_of(logs[l], REQS + 1, c, REQS + 1);
        assert_int_equal(n, REQS + 1);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(c[i]->op_seq, i + 1);
    }
}

/* Throughput: batches of 1,000 entries of ~200 bytes, one log per partition. */
static void test_throughput(void **state)
{
    (void)state;
    enum { LOGS = 4, REQS = 20, PER = 1000 };
    char logs[LOGS][16];
    for (int l = 0; l < LOGS; l++) {
        snprintf(logs[l], sizeof logs[l], "log-tp-%d", l);
        wait_ack(create_log(logs[l]));
    }
    static rid r[LOGS][REQS];
    struct timespec t0, t1;
    generated_ids = true; /* as API servers send them when clients give none */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < REQS; k++)
        for (int l = 0; l < LOGS; l++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "t%d-%d", l, k);
            r[l][k] = write_n(logs[l], prefix, PER, 200, NULL);
        }
    for (int l = 0; l < LOGS; l++)
        for (int k = 0; k < REQS; k++) {
            const Ack *a = wait_ack(r[l][k]);
            assert_int_equal(a->n_new, PER);
            assert_int_equal(a->entry_ids[0], (uint64_t)k * PER + 1);
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    generated_ids = false;
    printf("throughput: %d entries in %.2f s: %.0f entries/s (%d requests of %d)\n",
           LOGS * REQS * PER, sec, LOGS * REQS * PER / sec, LOGS * REQS, PER);
}

/* Another instance claims the partition: the old owner's head commit is
 * refused and its rows stay invisible; the sequencer (now the old owner
 * itself) is fenced too, claims again and goes on without a gap. */
static void test_fencing(void **state)
{
    (void)state;
    const char *L = "log-fence";
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(TENANT, L, key);
    int32_t part = ann_event_partition(key, strlen(key), NPART);
    wait_ack(create_log(L));
    const Ack *a = wait_ack(write_n(L, "f", 2, 0, NULL));
    assert_int_equal(a->entry_count, 2);
    ann_err err;
    uint64_t e0 = 0, e1 = 0;
    assert_int_equal(ann_archive_partition_epoch(W.ar, part, &e0, &err), 0);
    assert_true(e0 > 0);
    assert_int_equal(ann_archive_claim_partition(W.ar, part, &e1, &err), 0);
    assert_int_equal(e1, e0 + 1);
    /* a zombie of epoch e0 writes id 3 and 4, and is refused at its commit */
    ann_entry z[2] = {{.entry_id = 3,
                       .insert_id = "zombie-0",
                       .insert_id_len = 8,
                       .body = (const uint8_t *)"zombie",
                       .body_len = 6},
                      {.entry_id = 4,
                       .insert_id = "zombie-1",
                       .insert_id_len = 8,
                       .body = (const uint8_t *)"zombie",
                       .body_len = 6}};
    assert_int_equal(ann_archive_write_entries(W.ar, TENANT, L, e0, z, 2, &err), 0);
    ann_archive_head_update u = {.tenant_id = TENANT, .log_id = L, .next_id = 5, .next_op = 4};
    uint64_t cur = 0;
    assert_int_equal(ann_archive_commit_heads(W.ar, part, e0, &u, 1, &cur, &err),
                     ANN_ARCHIVE_FENCED);
    assert_int_equal(cur, e1);
    seen s = {0};
    assert_int_equal(ann_archive_read(W.ar, NPART, TENANT, L, 1, 10, collect, &s, &err), 0);
    assert_int_equal(s.n, 2);

    /* the sequencer still holds e0: its commit is refused, it claims again */
    uint64_t fenced0 = __atomic_load_n(&W.st.fenced, __ATOMIC_RELAXED);
    a = wait_ack(write_n(L, "real", 2, 0, NULL));
    assert_int_equal(a->code, 0);
    assert_ids(a, (uint64_t[]){3, 4}, 2);
    assert_int_equal(a->op_seq, 3);
    assert_true(__atomic_load_n(&W.st.fenced, __ATOMIC_RELAXED) > fenced0);
    uint64_t e2 = 0;
    assert_int_equal(ann_archive_partition_epoch(W.ar, part, &e2, &err), 0);
    assert_true(e2 > e1);
    memset(&s, 0, sizeof s);
    assert_int_equal(ann_archive_read(W.ar, NPART, TENANT, L, 1, 10, collect, &s, &err), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.body[2], "body-real-0");
    assert_string_equal(s.body[3], "body-real-1");
    /* the zombie's insert_ids are no duplicates */
    a = wait_ack(write_n(L, "zombie", 1, 0, NULL));
    assert_ids(a, (uint64_t[]){5}, 1);
    assert_int_equal(a->n_new, 1);
    /* and the committed stream has no gap */
    const Committed *c[8];
    size_t n = committed_of(L, 4, c, 8); /* create, f, real, zombie */
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c[i]->op_seq, i + 1);
}

/* Insert_ids an API server made up are probed once per command: a replay of the same
 * command still finds its ids, a new command is all new, and a client that later sends
 * such an insert_id itself finds the stored entry. */
static void test_generated_ids(void **state)
{
    (void)state;
    const char *L = "log-gen";
    /* request keys as the API server makes them (a UUID, 36 bytes) */
    const char *G = "0f9a7c1e-0000-4000-8000-00000000000a";
    const char *H = "0f9a7c1e-0000-4000-8000-00000000000b";
    const char *M = "0f9a7c1e-0000-4000-8000-00000000000c";
    wait_ack(create_log(L));
    generated_ids = true;
    const Ack *a = wait_ack(write_n(L, G, 3, 0, NULL));
    assert_ids(a, (uint64_t[]){1, 2, 3}, 3);
    assert_int_equal(a->n_new, 3);
    a = wait_ack(write_n(L, G, 3, 0, NULL)); /* the same command again */
    assert_ids(a, (uint64_t[]){1, 2, 3}, 3);
    assert_int_equal(a->n_new, 0);
    a = wait_ack(write_n(L, H, 2, 0, NULL));
    assert_ids(a, (uint64_t[]){4, 5}, 2);
    assert_int_equal(a->n_new, 2);
    generated_ids = false;
    /* a client that sends a server-made id it read back: the same entry */
    char g1[64];
    snprintf(g1, sizeof g1, "%s/1", G);
    const char *iids[] = {g1, "new-1"};
    a = wait_ack(write_n(L, "x", 2, 0, iids));
    assert_ids(a, (uint64_t[]){2, 6}, 2);
    assert_int_equal(a->n_new, 1);
    /* a command mixing client ids and server-made ones, then its replay: the same ids */
    const char *mixed[] = {"mixed-a", NULL, "g-dup", NULL, NULL};
    a = wait_ack(write_n(L, M, 5, 0, mixed));
    assert_ids(a, (uint64_t[]){7, 8, 9, 10, 11}, 5);
    assert_int_equal(a->n_new, 5);
    a = wait_ack(write_n(L, M, 5, 0, mixed));
    assert_ids(a, (uint64_t[]){7, 8, 9, 10, 11}, 5);
    assert_int_equal(a->n_new, 0);
    char m3[64];
    snprintf(m3, sizeof m3, "%s/3", M);
    const char *back[] = {m3, "mixed-a", "fresh"};
    a = wait_ack(write_n(L, "y", 3, 0, back));
    assert_ids(a, (uint64_t[]){10, 7, 12}, 3);
    assert_int_equal(a->n_new, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_write_dedup), cmocka_unit_test(test_generated_ids),
        cmocka_unit_test(test_not_found),          cmocka_unit_test(test_revoke_delete),
        cmocka_unit_test(test_ordering),           cmocka_unit_test(test_fencing),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
