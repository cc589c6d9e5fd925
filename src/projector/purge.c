/*
 * The purger (docs/distributed.md, "Revocation in the engines"): a periodic task of the
 * projector role that makes consumed records, revoked bytes among them, leave the
 * engines' files.
 *
 *   Kafka       DeleteRecords below every consumer's position: on <ns>.committed the
 *               projections' next offsets (PostgreSQL's projector_offsets and
 *               search_offsets, the lower of the two), on <ns>.pending
 *               the sequencer group's committed offsets. A segment's file goes once the
 *               segment is no longer the active one (segment.ms, kafka.c): for partitions
 *               that saw traffic lately the purger appends a Tick to pending, which the
 *               sequencer echoes into committed, so the active segment rolls.
 *   PostgreSQL  VACUUM FULL of every entries and search_docs partition in purge_pending
 *               (marked by each projection in the transaction of a revocation or a delete):
 *               the old row versions, their TOAST and their index entries (the trigram
 *               GIN's too) leave with the partition's old files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "annals/events/v1/events.pb-c.h"
#include "common/buf.h"
#include "domain/event.h"
#include "pg/pg.h"
#include "projector.h"

typedef struct purger {
    ann_kafka_config kc;
    const ann_purge_config *cfg;
    rd_kafka_t *prod;  /* ticks, watermarks, DeleteRecords */
    rd_kafka_t *group; /* reads the sequencer group's committed offsets (never joins) */
    PGconn *pg;
    char pending[256], committed[256];
    int64_t *last_data_ms; /* by pending partition: when its end moved without us */
    int64_t *expect_end;   /* by pending partition: its end after our last tick */
} purger;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* DeleteRecords of the partitions in `l` (offsets set) of one topic. */
static int delete_records(purger *p, rd_kafka_topic_partition_list_t *l, ann_err *err)
{
    if (l->cnt == 0)
        return 0;
    char errstr[256];
    rd_kafka_DeleteRecords_t *dr = rd_kafka_DeleteRecords_new(l);
    rd_kafka_queue_t *q = rd_kafka_queue_new(p->prod);
    rd_kafka_AdminOptions_t *opt =
        rd_kafka_AdminOptions_new(p->prod, RD_KAFKA_ADMIN_OP_DELETERECORDS);
    rd_kafka_AdminOptions_set_operation_timeout(opt, 15000, errstr, sizeof errstr);
    rd_kafka_DeleteRecords(p->prod, &dr, 1, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = 0;
    if (!ev)
        rc = ann_err_set(err, ANN_EUNAVAIL, "kafka delete records: no answer");
    else if (rd_kafka_event_error(ev))
        rc = ann_kafka_fail(err, "delete records", rd_kafka_event_error(ev),
                            rd_kafka_event_error_string(ev));
    else {
        const rd_kafka_topic_partition_list_t *res =
            rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
        for (int i = 0; res && i < res->cnt; i++)
            if (res->elems[i].err)
                fprintf(stderr, "annals purger: delete records %s[%d]: %s\n", res->elems[i].topic,
                        (int)res->elems[i].partition, rd_kafka_err2str(res->elems[i].err));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteRecords_destroy(dr);
    return rc;
}

/* Adds (topic, partition, offset) when offset is past the partition's start. */
static void add_if_ahead(purger *p, rd_kafka_topic_partition_list_t *l, const char *topic,
                         int32_t part, int64_t offset)
{
    int64_t lo = 0, hi = 0;
    if (offset <= 0 || rd_kafka_query_watermark_offsets(p->prod, topic, part, &lo, &hi, 5000) != 0)
        return;
    if (offset > hi)
        offset = hi;
    if (offset > lo)
        rd_kafka_topic_partition_list_add(l, topic, part)->offset = offset;
}

static int purge_kafka(purger *p, ann_err *err)
{
    int32_t np = p->kc.partitions;
    /* committed: below what both projections applied (their next offsets, stored with the
     * read model); a partition the search projection never claimed is left alone */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT o.partition, LEAST(o.next_offset, coalesce(s.next_offset, 0))"
             " FROM \"%1$s\".projector_offsets o LEFT JOIN \"%1$s\".search_offsets s"
             " ON s.partition = o.partition",
             p->kc.ns);
    PGresult *r = ann_pg_exec(p->pg, "projector offsets", sql, NULL, true, err);
    if (!r)
        return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < PQntuples(r); i++)
        add_if_ahead(p, l, p->committed, ann_pg_get_i32(r, i, 0), ann_pg_get_i64(r, i, 1));
    PQclear(r);
    int rc = delete_records(p, l, err);
    rd_kafka_topic_partition_list_destroy(l);
    if (rc != 0)
        return -1;

    /* pending: the sequencer group's committed offsets */
    rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_new(np);
    for (int32_t i = 0; i < np; i++)
        rd_kafka_topic_partition_list_add(c, p->pending, i);
    rd_kafka_resp_err_t e = rd_kafka_committed(p->group, c, 10000);
    if (e) {
        rd_kafka_topic_partition_list_destroy(c);
        return ann_kafka_fail(err, "committed offsets", e, p->pending);
    }
    l = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < c->cnt; i++)
        if (!c->elems[i].err && c->elems[i].offset >= 0)
            add_if_ahead(p, l, p->pending, c->elems[i].partition, c->elems[i].offset);
    rd_kafka_topic_partition_list_destroy(c);
    rc = delete_records(p, l, err);
    rd_kafka_topic_partition_list_destroy(l);
    if (rc != 0)
        return -1;

    /* ticks: a partition that saw traffic within a segment's life gets one per pass */
    Annals__Events__V1__Command cmd = ANNALS__EVENTS__V1__COMMAND__INIT;
    Annals__Events__V1__Tick t = ANNALS__EVENTS__V1__TICK__INIT;
    cmd.op_case = ANNALS__EVENTS__V1__COMMAND__OP_TICK;
    cmd.tick = &t;
    uint8_t buf[64];
    size_t n = annals__events__v1__command__pack(&cmd, buf);
    int64_t now = now_ms(), window = p->kc.segment_ms + 2 * (int64_t)p->cfg->interval_ms;
    int sent = 0;
    for (int32_t i = 0; i < np; i++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(p->prod, p->pending, i, &lo, &hi, 5000) != 0)
            continue;
        if (hi != p->expect_end[i])
            p->last_data_ms[i] = now;
        p->expect_end[i] = hi;
        if (now - p->last_data_ms[i] > window)
            continue;
        if (rd_kafka_producev(p->prod, RD_KAFKA_V_TOPIC(p->pending), RD_KAFKA_V_PARTITION(i),
                              RD_KAFKA_V_VALUE(buf, n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_END) == 0) {
            p->expect_end[i] = hi + 1;
            sent++;
        }
    }
    if (sent)
        rd_kafka_flush(p->prod, 10000);
    return 0;
}

static int purge_pg(purger *p, ann_err *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT rel, gen FROM \"%s\".purge_pending", p->kc.ns);
    PGresult *r = ann_pg_exec(p->pg, "purge pending", sql, NULL, false, err);
    if (!r)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        const char *rel = PQgetvalue(r, i, 0), *gen = PQgetvalue(r, i, 1);
        /* format('%I.%I') of an entries partition: only these characters. */
        if (strspn(rel, "abcdefghijklmnopqrstuvwxyz0123456789_.\"") != strlen(rel) ||
            strlen(rel) > 200)
            continue;
        char vac[256];
        snprintf(vac, sizeof vac, "VACUUM (FULL) %s", rel);
        PGresult *v = PQexec(p->pg, vac);
        ExecStatusType st = PQresultStatus(v);
        const char *state = PQresultErrorField(v, PG_DIAG_SQLSTATE);
        bool gone = st == PGRES_FATAL_ERROR && state && strcmp(state, "42P01") == 0;
        if (st != PGRES_COMMAND_OK && !gone)
            rc = ann_pg_fail(err, p->pg, v, "vacuum full");
        PQclear(v);
        if (rc != 0)
            break;
        ann_pg_params pr = {0};
        ann_pg_param_text(&pr, rel);
        ann_pg_param_raw(&pr, gen);
        snprintf(sql, sizeof sql,
                 "DELETE FROM \"%s\".purge_pending WHERE rel = $1 AND gen = $2::bigint", p->kc.ns);
        rc = ann_pg_run(p->pg, "purge done", sql, &pr, err);
    }
    PQclear(r);
    return rc;
}

int ann_purge_pass(ann_purger *p, ann_err *err)
{
    if (!p->pg || PQstatus(p->pg) != CONNECTION_OK) {
        PQfinish(p->pg);
        p->pg = ann_pg_connect(p->cfg->conninfo, err);
        if (!p->pg)
            return -1;
    }
    int rc = purge_pg(p, err);
    if (purge_kafka(p, rc == 0 ? err : &(ann_err){0}) != 0)
        rc = -1;
    return rc;
}

int ann_purger_open(const ann_purge_config *cfg, ann_purger **out, ann_err *err)
{
    purger *p = ann_xcalloc(1, sizeof *p);
    p->cfg = cfg;
    p->kc = cfg->kafka;
    ann_kafka_config_defaults(&p->kc);
    ann_kafka_topic(&p->kc, ANN_TOPIC_PENDING, p->pending, sizeof p->pending);
    ann_kafka_topic(&p->kc, ANN_TOPIC_COMMITTED, p->committed, sizeof p->committed);
    char group[256];
    snprintf(group, sizeof group, "%s.sequencer", p->kc.ns);
    p->last_data_ms = ann_xcalloc((size_t)p->kc.partitions, sizeof *p->last_data_ms);
    p->expect_end = ann_xcalloc((size_t)p->kc.partitions, sizeof *p->expect_end);
    int64_t now = now_ms();
    for (int32_t i = 0; i < p->kc.partitions; i++) {
        p->last_data_ms[i] = now; /* after a start, anything may sit in an active segment */
        p->expect_end[i] = -1;
    }
    p->prod = ann_kafka_producer(&p->kc, "annals-purger", NULL, NULL, NULL, err);
    if (p->prod)
        p->group = ann_kafka_consumer(&p->kc, group, NULL, NULL, NULL, err);
    if (!p->prod || !p->group) {
        ann_purger_close(p);
        return -1;
    }
    *out = p;
    return 0;
}

void ann_purger_close(ann_purger *p)
{
    if (!p)
        return;
    if (p->group)
        rd_kafka_destroy(p->group);
    if (p->prod) {
        rd_kafka_flush(p->prod, 5000);
        rd_kafka_destroy(p->prod);
    }
    PQfinish(p->pg);
    free(p->last_data_ms);
    free(p->expect_end);
    free(p);
}

int ann_purge_run(const ann_purge_config *cfg, volatile int *stop, ann_err *err)
{
    ann_purger *p = NULL;
    if (ann_purger_open(cfg, &p, err) != 0)
        return -1;
    int64_t next = now_ms() + cfg->interval_ms;
    while (!*stop) {
        if (now_ms() < next) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        ann_err e = {0};
        if (ann_purge_pass(p, &e) != 0)
            fprintf(stderr, "annals purger: %s (%s); again next pass\n", e.msg,
                    ann_code_name(e.code));
        next = now_ms() + cfg->interval_ms;
    }
    ann_purger_close(p);
    return 0;
}
