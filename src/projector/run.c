/* The projector role: <ns>.committed -> ann_projector_apply (docs/distributed.md), for
 * either projection (browse: group <ns>.projector; search: group <ns>.search). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/fault.h"
#include "domain/event.h"
#include "projector.h"

#define BATCH_MAX 5000
#define BATCH_MS 20
#define FENCED_WAIT_MS 12000 /* > session.timeout.ms (kafka.c) */

typedef struct assigned {
    int32_t partition;
    int64_t next; /* the next offset we expect (older ones are stale) */
} assigned;

typedef struct runner {
    ann_projector *p;
    const char *name; /* "projector" or "search projector", for the log */
    bool faults;      /* the fault points are the browse projection's */
    rd_kafka_t *rk;
    char topic[256];
    assigned *parts;
    size_t n_parts;
    bool need_claim;  /* claims failed or were fenced: claim again before applying */
    int64_t claim_at; /* not before this time (ms, monotonic) */
    bool failed;      /* a fatal error in a callback */
    ann_err err;
    ann_counter *m_txns, *m_aborted, *m_records;
    ann_histogram *m_delay;
} runner;

static void proj_collect(void *ud, ann_metrics_out *out)
{
    runner *r = ud;
    ann_kafka_lag_collect(r->rk, "annals_projector_consumer_lag",
                          "Committed records not yet in the read model, per partition (a record "
                          "is one command: a write of any number of entries)",
                          out);
}

static void proj_metrics(runner *r, ann_metrics *m)
{
    static const uint64_t delay_ms[] = {1,   2,    5,    10,   25,    50,    100,   250,
                                        500, 1000, 2500, 5000, 10000, 30000, 60000, 300000};
    r->m_txns = ann_metrics_counter(m, "annals_projector_transactions_committed_total",
                                    "Read-model transactions committed (one per batch)", "");
    r->m_aborted = ann_metrics_counter(m, "annals_projector_transactions_aborted_total",
                                       "Batches not committed (fenced or failed; replayed)", "");
    r->m_records = ann_metrics_counter(m, "annals_projector_records_applied_total",
                                       "Committed records applied to the read model", "");
    r->m_delay = ann_metrics_histogram(
        m, "annals_projector_delay_seconds",
        "Read-model lag: from a record's commit in Kafka to its apply in PostgreSQL", "", delay_ms,
        sizeof delay_ms / sizeof delay_ms[0], 1e-3);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_err(const runner *r, const char *what, const ann_err *e)
{
    fprintf(stderr, "annals %s: %s: %s (%s)\n", r->name, what, e->msg, ann_code_name(e->code));
}

/* Claims every assigned partition and (re)assigns the consumer at the stored offsets. */
static int claim_all(runner *r)
{
    ann_projector_forget(r->p);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)r->n_parts + 1);
    for (size_t i = 0; i < r->n_parts; i++) {
        int64_t next = 0;
        if (ann_projector_claim(r->p, r->parts[i].partition, &next, &r->err) != 0) {
            rd_kafka_topic_partition_list_destroy(l);
            ann_projector_forget(r->p);
            r->need_claim = true;
            return -1;
        }
        r->parts[i].next = next;
        rd_kafka_topic_partition_list_add(l, r->topic, r->parts[i].partition)->offset = next;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        ann_kafka_fail(&r->err, "assign", e, rd_kafka_err2str(e));
        r->need_claim = true;
        return -1;
    }
    r->need_claim = false;
    return 0;
}

static void rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t code,
                      rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    runner *r = opaque;
    free(r->parts);
    r->parts = NULL;
    r->n_parts = 0;
    ann_projector_forget(r->p);
    if (code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        r->claim_at = 0;
        r->parts = ann_xcalloc((size_t)parts->cnt + 1, sizeof *r->parts);
        for (int i = 0; i < parts->cnt; i++)
            if (strcmp(parts->elems[i].topic, r->topic) == 0)
                r->parts[r->n_parts++] = (assigned){parts->elems[i].partition, 0};
        if (r->faults)
            ANN_FAULT_POINT("proj.assigned");
        if (claim_all(r) != 0) {
            log_err(r, "claim", &r->err);
            rd_kafka_assign(rk, NULL); /* nothing to read until the claims succeed */
        }
        if (r->faults)
            ANN_FAULT_POINT("proj.claimed");
    } else {
        rd_kafka_assign(rk, NULL);
        r->need_claim = false;
    }
}

static assigned *find_part(runner *r, int32_t partition)
{
    for (size_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].partition == partition)
            return &r->parts[i];
    return NULL;
}

int ann_projector_run(const ann_projector_config *cfg, volatile int *stop, ann_err *err)
{
    ann_kafka_config kc = cfg->kafka;
    ann_kafka_config_defaults(&kc);
    bool search = cfg->kind == ANN_PROJECTOR_SEARCH;
    runner r = {.name = search ? "search projector" : "projector", .faults = !search};
    if (ann_projector_open_kind(cfg->conninfo, kc.ns, cfg->kind, &r.p, err) != 0)
        return -1;
    ann_kafka_topic(&kc, ANN_TOPIC_COMMITTED, r.topic, sizeof r.topic);
    char group[256];
    snprintf(group, sizeof group, "%s.%s", kc.ns, search ? "search" : "projector");
    r.rk = ann_kafka_consumer(&kc, group, cfg->instance, rebalance, &r, err);
    if (!r.rk) {
        ann_projector_close(r.p);
        return -1;
    }
    int rc = 0;
    proj_metrics(&r, cfg->metrics);
    ann_metrics_collector(cfg->metrics, proj_collect, &r);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, r.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(r.rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (se) {
        rc = ann_kafka_fail(err, "subscribe", se, rd_kafka_err2str(se));
        goto out;
    }

    rd_kafka_message_t **msgs = ann_xcalloc(BATCH_MAX, sizeof *msgs);
    ann_projector_record *recs = ann_xcalloc(BATCH_MAX, sizeof *recs);
    bool fatal = false;
    while (!*stop && !fatal) {
        /* After a refusal, claim again only if the group still gives us the partitions
         * once a session has passed: a zombie learns it lost them (a rebalance, or
         * assignment_lost) instead of fencing the new owner in turn. */
        if (r.need_claim && r.n_parts && now_ms() >= r.claim_at &&
            !rd_kafka_assignment_lost(r.rk)) {
            if (claim_all(&r) != 0) {
                log_err(&r, "claim", &r.err);
                r.claim_at = now_ms() + 500;
            }
        }
        size_t n = 0;
        int64_t deadline = 0;
        while (n < BATCH_MAX && !*stop && !fatal) {
            int wait = 100;
            if (n) {
                int64_t left = deadline - now_ms();
                if (left <= 0)
                    break;
                wait = (int)left;
            }
            rd_kafka_message_t *m = rd_kafka_consumer_poll(r.rk, wait);
            if (!m) {
                if (n == 0)
                    break; /* idle: check stop, claims */
                continue;
            }
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                    fprintf(stderr, "annals %s: consume: %s\n", r.name, rd_kafka_message_errstr(m));
                    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                        rc = ann_kafka_fail(err, "consume", m->err, rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        fatal = true; /* the caller may start over with a new consumer */
                        break;
                    }
                }
                rd_kafka_message_destroy(m);
                continue;
            }
            assigned *a = find_part(&r, m->partition);
            if (!a || m->offset < a->next || r.need_claim) {
                rd_kafka_message_destroy(m); /* stale: fetched before a reassignment */
                continue;
            }
            a->next = m->offset + 1;
            if (n == 0)
                deadline = now_ms() + BATCH_MS;
            msgs[n] = m;
            recs[n] = (ann_projector_record){
                .partition = m->partition,
                .offset = m->offset,
                .rec = annals__events__v1__committed__unpack(NULL, m->len, m->payload)};
            if (!recs[n].rec)
                fprintf(stderr, "annals %s: partition %d offset %lld: undecodable record\n", r.name,
                        (int)m->partition, (long long)m->offset);
            n++;
        }
        if (n) {
            ann_err e;
            int a = ann_projector_apply(r.p, recs, n, &e);
            ann_counter_add(a == 0 ? r.m_txns : r.m_aborted, 1);
            if (a == 0 && cfg->metrics) {
                ann_counter_add(r.m_records, n);
                struct timespec ts; /* Kafka timestamps are wall-clock milliseconds */
                clock_gettime(CLOCK_REALTIME, &ts);
                int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
                for (size_t i = 0; i < n; i++) {
                    int64_t t = rd_kafka_message_timestamp(msgs[i], NULL);
                    if (t > 0)
                        ann_histogram_observe(r.m_delay, now > t ? (uint64_t)(now - t) : 0);
                }
            }
            if (a == ANN_PROJECTOR_FENCED) {
                fprintf(stderr, "annals %s: fenced; claiming again after a session\n", r.name);
                ann_projector_forget(r.p);
                r.need_claim = true;
                r.claim_at = now_ms() + FENCED_WAIT_MS;
            } else if (a != 0) {
                log_err(&r, "apply", &e);
                r.need_claim = true; /* rewind to the stored offsets */
                r.claim_at = now_ms() + 200;
            }
        }
        for (size_t i = 0; i < n; i++) {
            annals__events__v1__committed__free_unpacked(
                (Annals__Events__V1__Committed *)recs[i].rec, NULL);
            rd_kafka_message_destroy(msgs[i]);
        }
    }
    free(msgs);
    free(recs);
out:
    ann_metrics_collector_remove(cfg->metrics, &r);
    rd_kafka_consumer_close(r.rk);
    rd_kafka_destroy(r.rk);
    free(r.parts);
    ann_projector_close(r.p);
    return rc;
}
