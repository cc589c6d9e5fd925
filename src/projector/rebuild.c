/*
 * `annalsd project --rebuild` (docs/distributed.md, "Rebuild"): the read model of a
 * namespace rebuilt from Cassandra, the archive that is kept forever (Kafka keeps only
 * what its consumers have not read yet: the purger deletes the rest).
 *
 *   1. The committed topic's end offsets, per partition, BEFORE Cassandra is read: the
 *      sequencer writes Cassandra before it commits a record to Kafka, so every record
 *      below these ends is already in what step 2 reads.
 *   2. Schema <ns>_rb, built through the projector's own apply (both projections: browse,
 *      then search, so search_docs and search_state are whole) from synthetic records per
 *      log of the catalog: CreateLog, one Revoke per revocation row, the entries as
 *      Cassandra stores them (revoked bodies are gone there; the insert marks an entry
 *      redacted when a revocation row names it), DeleteLog for a deleted log.
 *   3. One transaction: lock <ns>.projector_offsets (waits for an apply in flight; later
 *      ones wait, then fail and claim again), drop <ns>, rename <ns>_rb to <ns>, its
 *      projector_offsets and search_offsets at the ends of step 1 with every epoch above
 *      the old one (a projector that kept running is fenced and claims again).
 * Records at or past the ends are applied by the projectors afterwards; what they repeat
 * of step 2 is idempotent (ON CONFLICT DO NOTHING, revocations kept, deletes repeated).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_cassandra.h"
#include "common/buf.h"
#include "domain/event.h"
#include "domain/integrity.h"
#include "domain/merkle.h"
#include "pg/pg.h"
#include "pg/schema.h"
#include "projector.h"

typedef Annals__Events__V1__Committed committed;
typedef Annals__Events__V1__Entry entry;

#define FLUSH_ENTRIES 4000

typedef struct rb {
    ann_projector *p;
    ann_projector *sp; /* the search projection of the rebuild schema */
    ann_projector_record *v;
    committed **owned; /* records to free after the apply */
    size_t n, cap;
    size_t n_entries;
    int64_t offset; /* synthetic offsets in partition 0 of the rebuild schema */
    ann_rebuild_stats *st;
    bool discard; /* free the records without applying them */
} rb;

static int rb_flush(rb *r, ann_err *err)
{
    int rc = 0;
    if (r->n && !r->discard) {
        rc = ann_projector_apply(r->p, r->v, r->n, err);
        if (rc == 0) /* after the browse one: its revocations keep revoked bodies out */
            rc = ann_projector_apply(r->sp, r->v, r->n, err);
        if (rc == ANN_PROJECTOR_FENCED)
            rc = ann_err_set(err, ANN_EUNAVAIL, "rebuild: schema claimed by someone else");
    }
    for (size_t i = 0; i < r->n; i++) {
        committed *c = r->owned[i];
        if (c->op_case == ANNALS__EVENTS__V1__COMMITTED__OP_WRITE) {
            for (size_t k = 0; k < c->write->n_entries; k++) {
                free(c->write->entries[k]->insert_id.data);
                free(c->write->entries[k]->body.data);
                free(c->write->entries[k]);
            }
            free(c->write->entries);
            free(c->write);
        } else if (c->op_case == ANNALS__EVENTS__V1__COMMITTED__OP_REVOKE) {
            free(c->revoke->entry_ids);
            free(c->revoke->actor);
            free(c->revoke->reason);
            free(c->revoke);
        } else if (c->op_case == ANNALS__EVENTS__V1__COMMITTED__OP_CREATE_LOG) {
            free(c->create_log->labels.data);
            free(c->create_log);
        } else if (c->op_case == ANNALS__EVENTS__V1__COMMITTED__OP_DELETE_LOG) {
            free(c->delete_log);
        } else if (c->op_case == ANNALS__EVENTS__V1__COMMITTED__OP_SEAL) {
            free(c->seal);
        }
        if (c->checkpoint) {
            free(c->checkpoint->note.data);
            free(c->checkpoint);
        }
        free(c->tenant_id);
        free(c->log_id);
        free(c);
    }
    r->n = 0;
    r->n_entries = 0;
    return rc;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = ann_xcalloc(1, n + 1);
    memcpy(d, s, n);
    return d;
}

static void *xdup(const void *p, size_t n)
{
    void *d = ann_xcalloc(1, n ? n : 1);
    if (n)
        memcpy(d, p, n);
    return d;
}

/* A new record of log (t, l) with the log's final counts. */
static committed *rb_add(rb *r, const char *t, const char *l, const ann_archive_head *h)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = ann_xrealloc(r->v, r->cap * sizeof *r->v);
        r->owned = ann_xrealloc(r->owned, r->cap * sizeof *r->owned);
    }
    committed *c = ann_xcalloc(1, sizeof *c);
    annals__events__v1__committed__init(c);
    c->tenant_id = xstrndup(t, strlen(t));
    c->log_id = xstrndup(l, strlen(l));
    c->request_id = (char *)"";
    c->origin = (char *)"";
    c->op_seq = h->next_op > 1 ? h->next_op - 1 : 1;
    c->entry_count = h->next_id > 1 ? h->next_id - 1 : 0;
    r->owned[r->n] = c;
    r->v[r->n] = (ann_projector_record){.partition = 0, .offset = r->offset++, .rec = c};
    r->n++;
    return c;
}

typedef struct visit_ctx {
    rb *r;
    const char *t, *l;
    const ann_archive_head *h;
    committed *cur;
    size_t cap;
    ann_err *err;
    int rc;
} visit_ctx;

static int visit(const ann_entry *e, void *ud)
{
    visit_ctx *x = ud;
    if (!x->cur) {
        x->cur = rb_add(x->r, x->t, x->l, x->h);
        x->cur->op_case = ANNALS__EVENTS__V1__COMMITTED__OP_WRITE;
        x->cur->write = ann_xcalloc(1, sizeof *x->cur->write);
        annals__events__v1__write__init(x->cur->write);
        x->cap = 0;
    }
    Annals__Events__V1__Write *w = x->cur->write;
    if (w->n_entries == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 64;
        w->entries = ann_xrealloc(w->entries, x->cap * sizeof *w->entries);
    }
    entry *n = ann_xcalloc(1, sizeof *n);
    annals__events__v1__entry__init(n);
    n->entry_id = e->entry_id;
    n->time_ns = e->time_ns;
    n->insert_time_ns = e->insert_time_ns;
    n->severity = e->severity;
    n->insert_id.data = xdup(e->insert_id, e->insert_id_len);
    n->insert_id.len = e->insert_id_len;
    /* A redacted entry's body is gone in Cassandra but for its body_hash field; never copy
     * one that is more than that. */
    size_t bl =
        !(e->flags & ANN_ENTRY_REDACTED) || ann_integrity_is_hash_field(e->body, e->body_len)
            ? e->body_len
            : 0;
    n->body.data = xdup(e->body, bl);
    n->body.len = bl;
    w->entries[w->n_entries++] = n;
    x->r->n_entries++;
    x->r->st->entries++;
    if (x->r->n_entries >= FLUSH_ENTRIES) {
        x->cur = NULL;
        if (rb_flush(x->r, x->err) != 0) {
            x->rc = -1;
            return 1;
        }
    }
    return 0;
}

/* The revocations of one log, one Revoke record each (the first revocation's record). */
static int add_revocations(rb *r, ann_cql_conn *cc, const char *ks, const char *t, const char *l,
                           const ann_archive_head *h, ann_err *err)
{
    char q[256];
    snprintf(q, sizeof q,
             "SELECT entry_id, actor, reason, time_ns FROM %s.revocations WHERE tenant_id = ? "
             "AND log_id = ?",
             ks);
    ann_cql_value v[] = {ann_cql_vtext(t), ann_cql_vtext(l)};
    uint8_t *state = NULL;
    int32_t state_len = -1;
    for (;;) {
        ann_cql_params p;
        ann_cql_params_init(&p);
        p.consistency = ANN_CQL_LOCAL_QUORUM;
        p.values = v;
        p.nvalues = 2;
        p.page_size = 1000;
        p.paging_state = (ann_cql_bytes){state, state_len};
        p.idempotent = true;
        ann_cql_result res;
        int rc = ann_cql_query(cc, q, &p, &res, err);
        free(state);
        state = NULL;
        if (rc < 0) {
            ann_cql_result_release(&res);
            return -1;
        }
        for (int32_t i = 0; i < res.nrows && rc == 0; i++) {
            int64_t id = 0, tm = 0;
            const char *actor = "", *reason = "";
            size_t an = 0, rn = 0;
            if (ann_cql_get_bigint(&res, i, 0, &id, err) < 0 ||
                ann_cql_get_text(&res, i, 1, &actor, &an, err) < 0 ||
                ann_cql_get_text(&res, i, 2, &reason, &rn, err) < 0 ||
                ann_cql_get_bigint(&res, i, 3, &tm, err) < 0) {
                rc = -1;
                break;
            }
            committed *c = rb_add(r, t, l, h);
            c->op_case = ANNALS__EVENTS__V1__COMMITTED__OP_REVOKE;
            c->revoke = ann_xcalloc(1, sizeof *c->revoke);
            annals__events__v1__revoke__init(c->revoke);
            c->revoke->entry_ids = ann_xcalloc(1, sizeof *c->revoke->entry_ids);
            c->revoke->entry_ids[0] = (uint64_t)id;
            c->revoke->n_entry_ids = 1;
            c->revoke->actor = xstrndup(actor ? actor : "", actor ? an : 0);
            c->revoke->reason = xstrndup(reason ? reason : "", reason ? rn : 0);
            c->revoke->time_ns = tm;
            r->st->revocations++;
        }
        if (rc == 0 && res.paging_state.p && res.paging_state.len > 0) {
            state_len = res.paging_state.len;
            state = xdup(res.paging_state.p, (size_t)state_len);
        }
        ann_cql_result_release(&res);
        if (rc < 0)
            return -1;
        if (!state)
            return 0;
    }
}

static int rebuild_head(rb *r, ann_archive *a, const char *ks, const char *t, const char *l,
                        const uint8_t *labels, size_t labels_len, int64_t create,
                        const ann_archive_head *hp, ann_err *err);

static int rebuild_log(rb *r, ann_archive *a, const char *ks, int32_t np, const char *t,
                       const char *l, const uint8_t *labels, size_t labels_len, int64_t create,
                       ann_err *err)
{
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(t, l, key);
    int32_t part = ann_event_partition(key, strlen(key), np);
    ann_archive_head h;
    if (ann_archive_head_load(a, part, t, l, false, &h, err) != 0)
        return -1;
    int rc = rebuild_head(r, a, ks, t, l, labels, labels_len, create, &h, err);
    if (rc == 0 && h.exists && !h.deleted && h.sealed) {
        committed *c = rb_add(r, t, l, &h);
        c->op_case = ANNALS__EVENTS__V1__COMMITTED__OP_SEAL;
        c->seal = ann_xcalloc(1, sizeof *c->seal);
        annals__events__v1__seal__init(c->seal);
    }
    /* the latest checkpoint after the entries it covers (the tree's size: it is signed
     * whenever the tree grows) */
    ann_merkle_frontier f;
    if (rc == 0 && h.exists && !h.deleted && h.checkpoint &&
        ann_merkle_frontier_decode(h.tree, h.tree_len, &f, NULL) == 0) {
        committed *c = rb_add(r, t, l, &h); /* no op: the checkpoint alone */
        c->checkpoint = ann_xcalloc(1, sizeof *c->checkpoint);
        annals__events__v1__checkpoint__init(c->checkpoint);
        c->checkpoint->note.data = xdup(h.checkpoint, h.checkpoint_len);
        c->checkpoint->note.len = h.checkpoint_len;
        c->checkpoint->size = f.size;
    }
    ann_archive_head_release(&h);
    return rc;
}

static int rebuild_head(rb *r, ann_archive *a, const char *ks, const char *t, const char *l,
                        const uint8_t *labels, size_t labels_len, int64_t create,
                        const ann_archive_head *hp, ann_err *err)
{
    ann_archive_head h = *hp;
    if (!h.exists)
        return 0; /* never sequenced: its CreateLog, if any, is still ahead in Kafka */
    committed *c = rb_add(r, t, l, &h);
    c->op_case = ANNALS__EVENTS__V1__COMMITTED__OP_CREATE_LOG;
    c->create_log = ann_xcalloc(1, sizeof *c->create_log);
    annals__events__v1__create_log__init(c->create_log);
    c->create_log->labels.data = xdup(labels, labels_len);
    c->create_log->labels.len = labels_len;
    c->create_log->create_time_ns = create;
    r->st->logs++;
    if (h.deleted) {
        c = rb_add(r, t, l, &h);
        c->op_case = ANNALS__EVENTS__V1__COMMITTED__OP_DELETE_LOG;
        c->delete_log = ann_xcalloc(1, sizeof *c->delete_log);
        annals__events__v1__delete_log__init(c->delete_log);
        r->st->deleted_logs++;
        return 0;
    }
    /* Revocations before the entries: the insert redacts what a revocation row names. */
    if (add_revocations(r, ann_archive_conn(a), ks, t, l, &h, err) != 0)
        return -1;
    visit_ctx x = {.r = r, .t = t, .l = l, .h = &h, .err = err};
    if (h.next_id > 1 && ann_archive_read_at(a, t, l, h.next_id, 1, h.next_id, visit, &x, err) != 0)
        return -1;
    return x.rc;
}

/* The end offsets of <ns>.committed (read_committed: the last stable offsets). */
static int topic_ends(const ann_kafka_config *kc, int64_t *ends, ann_err *err)
{
    rd_kafka_t *rk = ann_kafka_consumer(kc, NULL, NULL, NULL, NULL, err);
    if (!rk)
        return -1;
    char topic[256];
    ann_kafka_topic(kc, ANN_TOPIC_COMMITTED, topic, sizeof topic);
    int rc = 0;
    for (int32_t i = 0; i < kc->partitions && rc == 0; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 10000);
        if (e)
            rc = ann_kafka_fail(err, "end offsets", e, topic);
        ends[i] = hi;
    }
    rd_kafka_destroy(rk);
    return rc;
}

static int swap_in(PGconn *c, const char *ns, const char *rbns, const int64_t *ends, int32_t np,
                   ann_err *err)
{
    ann_buf parts = ANN_BUF_INIT, offs = ANN_BUF_INIT;
    char num[32];
    ann_buf_add_byte(&parts, '{');
    ann_buf_add_byte(&offs, '{');
    for (int32_t i = 0; i < np; i++) {
        int k = snprintf(num, sizeof num, "%s%d", i ? "," : "", (int)i);
        ann_buf_add(&parts, num, (size_t)k);
        k = snprintf(num, sizeof num, "%s%lld", i ? "," : "", (long long)ends[i]);
        ann_buf_add(&offs, num, (size_t)k);
    }
    ann_buf_add(&parts, "}", 2);
    ann_buf_add(&offs, "}", 2);
    char sql[1024];
    int rc = ann_pg_run(c, "rebuild swap", "BEGIN", NULL, err);
    PGresult *r = NULL;
    bool old = false;
    if (rc == 0) {
        ann_pg_params pr = {0};
        ann_pg_param_text(&pr, ns);
        r = ann_pg_exec(c, "rebuild swap",
                        "SELECT 1 FROM pg_tables WHERE schemaname = $1 AND"
                        " tablename = 'projector_offsets'",
                        &pr, false, err);
        if (!r)
            rc = -1;
        else
            old = PQntuples(r) > 0;
        PQclear(r);
    }
    /* Both projections' offsets (the old schema has both: whoever opened it ensured it). */
    static const char *const tables[] = {"projector_offsets", "search_offsets"};
    for (int k = 0; k < 2 && rc == 0 && old; k++) {
        snprintf(sql, sizeof sql, "LOCK TABLE \"%s\".%s IN ACCESS EXCLUSIVE MODE", ns, tables[k]);
        rc = ann_pg_run(c, "rebuild swap", sql, NULL, err);
    }
    for (int k = 0; k < 2 && rc == 0; k++) {
        snprintf(sql, sizeof sql, "DELETE FROM \"%s\".%s", rbns, tables[k]);
        rc = ann_pg_run(c, "rebuild swap", sql, NULL, err);
        if (rc != 0)
            break;
        if (old)
            snprintf(sql, sizeof sql,
                     "INSERT INTO \"%1$s\".%3$s (partition, next_offset, epoch)"
                     " SELECT v.p, v.n, COALESCE((SELECT o.epoch FROM \"%2$s\".%3$s o"
                     " WHERE o.partition = v.p), 0) + 1 FROM unnest($1::int[], $2::bigint[])"
                     " v(p, n)",
                     rbns, ns, tables[k]);
        else
            snprintf(sql, sizeof sql,
                     "INSERT INTO \"%s\".%s (partition, next_offset, epoch)"
                     " SELECT v.p, v.n, 1 FROM unnest($1::int[], $2::bigint[]) v(p, n)",
                     rbns, tables[k]);
        ann_pg_params pr = {0};
        ann_pg_param_raw(&pr, (const char *)parts.data);
        ann_pg_param_raw(&pr, (const char *)offs.data);
        rc = ann_pg_run(c, "rebuild offsets", sql, &pr, err);
    }
    if (rc == 0) {
        snprintf(sql, sizeof sql,
                 "DROP SCHEMA IF EXISTS \"%s\" CASCADE; ALTER SCHEMA \"%s\" RENAME TO \"%s\"", ns,
                 rbns, ns);
        rc = ann_pg_run(c, "rebuild swap", sql, NULL, err);
    }
    if (rc == 0)
        rc = ann_pg_run(c, "rebuild swap", "COMMIT", NULL, err);
    if (rc != 0 && PQstatus(c) == CONNECTION_OK)
        PQclear(PQexec(c, "ROLLBACK"));
    ann_buf_release(&parts);
    ann_buf_release(&offs);
    return rc;
}

int ann_rebuild(const ann_rebuild_config *cfg, ann_rebuild_stats *st, ann_err *err)
{
    ann_kafka_config kc = cfg->kafka;
    ann_kafka_config_defaults(&kc);
    memset(st, 0, sizeof *st);
    char rbns[ANN_PG_NS_MAX + 8];
    snprintf(rbns, sizeof rbns, "%s_rb", kc.ns);
    if (!ann_namespace_valid(kc.ns) || !ann_namespace_valid(rbns))
        return ann_err_set(err, ANN_EINVAL, "rebuild: namespace must be at most %d characters",
                           ANN_PG_NS_MAX - 3);
    int64_t *ends = ann_xcalloc((size_t)kc.partitions, sizeof *ends);
    ann_archive *a = NULL;
    PGconn *c = NULL;
    rb r = {.st = st};
    int rc = -1;
    uint8_t *state = NULL;
    int32_t state_len = -1;
    /* 1. the ends, before anything of Cassandra is read */
    if (topic_ends(&kc, ends, err) != 0)
        goto out;
    ann_archive_config ac = {.cql = cfg->cql, .keyspace = kc.ns, .replication = cfg->replication};
    if (ann_archive_open(&ac, &a, err) != 0)
        goto out;
    c = ann_pg_connect(cfg->conninfo, err);
    if (!c || ann_pg_schema_drop(c, rbns, err) != 0)
        goto out;
    if (ann_projector_open(cfg->conninfo, rbns, &r.p, err) != 0 ||
        ann_projector_open_kind(cfg->conninfo, rbns, ANN_PROJECTOR_SEARCH, &r.sp, err) != 0)
        goto out;
    int64_t next0 = 0;
    if (ann_projector_claim(r.p, 0, &next0, err) != 0 ||
        ann_projector_claim(r.sp, 0, &next0, err) != 0)
        goto out;
    /* 2. every log of the catalog */
    char q[256];
    snprintf(q, sizeof q, "SELECT tenant_id, log_id, labels, create_time_ns FROM %s.logs", kc.ns);
    for (;;) {
        ann_cql_params p;
        ann_cql_params_init(&p);
        p.consistency = ANN_CQL_LOCAL_QUORUM;
        p.page_size = 500;
        p.paging_state = (ann_cql_bytes){state, state_len};
        p.idempotent = true;
        ann_cql_result res;
        int qrc = ann_cql_query(ann_archive_conn(a), q, &p, &res, err);
        free(state);
        state = NULL;
        for (int32_t i = 0; qrc == 0 && i < res.nrows; i++) {
            const char *t = NULL, *l = NULL;
            size_t tn = 0, ln = 0, lbn = 0;
            const uint8_t *lb = NULL;
            int64_t create = 0;
            if (ann_cql_get_text(&res, i, 0, &t, &tn, err) < 0 ||
                ann_cql_get_text(&res, i, 1, &l, &ln, err) < 0 ||
                ann_cql_get_blob(&res, i, 2, &lb, &lbn, err) < 0 ||
                ann_cql_get_bigint(&res, i, 3, &create, err) < 0) {
                qrc = -1;
                break;
            }
            char *ts = xstrndup(t ? t : "", t ? tn : 0), *ls = xstrndup(l ? l : "", l ? ln : 0);
            qrc = rebuild_log(&r, a, kc.ns, kc.partitions, ts, ls, lb, lb ? lbn : 0, create, err);
            if (qrc == 0 && r.n >= 256)
                qrc = rb_flush(&r, err);
            free(ts);
            free(ls);
        }
        if (qrc == 0 && res.paging_state.p && res.paging_state.len > 0) {
            state_len = res.paging_state.len;
            state = xdup(res.paging_state.p, (size_t)state_len);
        }
        ann_cql_result_release(&res);
        if (qrc != 0)
            goto out;
        if (!state)
            break;
    }
    if (rb_flush(&r, err) != 0)
        goto out;
    /* 3. swap it in (the old schema first gets whatever tables this version adds, e.g. a
     * schema from before the search projection its search_offsets) */
    if (ann_pg_schema_ensure(c, kc.ns, err) != 0)
        goto out;
    rc = swap_in(c, kc.ns, rbns, ends, kc.partitions, err);
out:
    r.discard = true;
    rb_flush(&r, &(ann_err){0});
    free(r.v);
    free(r.owned);
    free(state);
    ann_projector_close(r.p);
    ann_projector_close(r.sp);
    if (rc != 0 && c && PQstatus(c) == CONNECTION_OK)
        ann_pg_schema_drop(c, rbns, &(ann_err){0});
    PQfinish(c);
    ann_archive_close(a);
    free(ends);
    return rc;
}
