#include "pgstore.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "domain/event.h"
#include "memstore.h"
#include "pg/pg.h"
#include "pg/readmodel.h"
#include "pg/schema.h"
#include "projector/projector.h"

#define NPART 4
/* The search projection trails the browse one by this many writes (and whatever came
 * after the oldest of them), so a search sees indexed docs and the not-yet-indexed rest
 * of the logs written last, both at once. */
#define SEARCH_LAG 3
#define SEARCH_QUEUE 64

typedef Annals__Events__V1__Committed committed;

typedef struct pgstore {
    ann_store base;
    ann_store *mem;
    ann_projector *p;
    ann_projector *sp; /* the search projection, SEARCH_LAG records behind */
    ann_readmodel *rm;
    char *conninfo;
    char ns[ANN_PG_NS_MAX + 1];
    pthread_mutex_t mu; /* one writer at a time: the records of a log stay in order */
    int64_t next[NPART];
    int64_t snext[NPART];
    struct {
        uint8_t *data;
        size_t len;
        int32_t part;
        bool write;
    } lag[SEARCH_QUEUE];
    size_t n_lag, n_writes;
} pgstore;

/* Applies the oldest queued record to the search projection. */
static int search_one(pgstore *s, ann_err *err)
{
    committed *o = annals__events__v1__committed__unpack(NULL, s->lag[0].len, s->lag[0].data);
    int32_t op = s->lag[0].part;
    s->n_writes -= s->lag[0].write;
    free(s->lag[0].data);
    memmove(&s->lag[0], &s->lag[1], (s->n_lag - 1) * sizeof s->lag[0]);
    s->n_lag--;
    if (!o)
        return ann_err_set(err, ANN_EINTERNAL, "pgstore: cannot decode a queued record");
    ann_projector_record r = {op, s->snext[op], o};
    int rc = ann_projector_apply(s->sp, &r, 1, err);
    annals__events__v1__committed__free_unpacked(o, NULL);
    if (rc == ANN_PROJECTOR_FENCED)
        return ann_err_set(err, ANN_EUNAVAIL, "pgstore: search fenced");
    if (rc == 0)
        s->snext[op]++;
    return rc;
}

/* Queues a copy of the record for the search projection and applies the oldest ones
 * while more than SEARCH_LAG writes wait. */
static int project_search(pgstore *s, const committed *c, int32_t part, ann_err *err)
{
    if (s->n_lag == SEARCH_QUEUE && search_one(s, err) != 0)
        return -1;
    size_t len = annals__events__v1__committed__get_packed_size(c);
    uint8_t *data = ann_xmalloc(len ? len : 1);
    annals__events__v1__committed__pack(c, data);
    bool w = c->op_case == ANNALS__EVENTS__V1__COMMITTED__OP_WRITE;
    s->lag[s->n_lag].data = data;
    s->lag[s->n_lag].len = len;
    s->lag[s->n_lag].part = part;
    s->lag[s->n_lag].write = w;
    s->n_lag++;
    s->n_writes += w;
    while (s->n_writes > SEARCH_LAG)
        if (search_one(s, err) != 0)
            return -1;
    return 0;
}

static int project(pgstore *s, committed *c, ann_err *err)
{
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(c->tenant_id, c->log_id, key);
    int32_t part = ann_event_partition(key, strlen(key), NPART);
    ann_projector_record r = {part, s->next[part], c};
    int rc = ann_projector_apply(s->p, &r, 1, err);
    if (rc == ANN_PROJECTOR_FENCED)
        return ann_err_set(err, ANN_EUNAVAIL, "pgstore: fenced");
    if (rc == 0)
        s->next[part]++;
    if (rc == 0)
        rc = project_search(s, c, part, err);
    return rc;
}

/* The next op number and the count of a log, from the read model. */
static int log_ops(pgstore *s, const char *t, const char *l, uint64_t *op, uint64_t *count,
                   ann_err *err)
{
    ann_rm_log_state st;
    if (ann_readmodel_log_state(s->rm, t, l, &st, err) != 0)
        return -1;
    *op = st.applied_op + 1;
    *count = st.visible_count;
    ann_readmodel_log_state_release(&st);
    return 0;
}

static void ps_close(ann_store *b)
{
    pgstore *s = (pgstore *)b;
    ann_err err;
    ann_readmodel_close(s->rm);
    ann_projector_close(s->p);
    ann_projector_close(s->sp);
    for (size_t i = 0; i < s->n_lag; i++)
        free(s->lag[i].data);
    const char *keep = getenv("ANN_PG_KEEP"); /* debugging: leave the schema behind */
    PGconn *c = keep && *keep ? NULL : ann_pg_connect(s->conninfo, &err);
    if (c)
        ann_pg_schema_drop(c, s->ns, &err);
    PQfinish(c);
    ann_store_close(s->mem);
    pthread_mutex_destroy(&s->mu);
    free(s->conninfo);
    free(s);
}

static int ps_secret(ann_store *b, uint8_t out[32], ann_err *err)
{
    return ann_store_secret(((pgstore *)b)->mem, out, err);
}

static int ps_tenant_create(ann_store *b, const char *name, const uint8_t h[32], ann_tenant *out,
                            ann_err *err)
{
    return ann_store_tenant_create(((pgstore *)b)->mem, name, h, out, err);
}

static int ps_tenant_by_key(ann_store *b, const uint8_t h[32], ann_tenant *out, ann_err *err)
{
    return ann_store_tenant_by_key(((pgstore *)b)->mem, h, out, err);
}

static int ps_log_create(ann_store *b, const char *t, const char *l, const uint8_t *labels,
                         size_t len, int64_t now, ann_err *err)
{
    pgstore *s = (pgstore *)b;
    pthread_mutex_lock(&s->mu);
    int rc = ann_store_log_create(s->mem, t, l, labels, len, now, err);
    if (rc == 0) {
        committed c = ANNALS__EVENTS__V1__COMMITTED__INIT;
        Annals__Events__V1__CreateLog cl = ANNALS__EVENTS__V1__CREATE_LOG__INIT;
        cl.labels.data = (uint8_t *)labels;
        cl.labels.len = len;
        cl.create_time_ns = now;
        c.tenant_id = (char *)t, c.log_id = (char *)l, c.op_seq = 1;
        c.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_CREATE_LOG;
        c.create_log = &cl;
        rc = project(s, &c, err);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int ps_log_get(ann_store *b, const char *t, const char *l, ann_log_meta *out, ann_err *err)
{
    pgstore *s = (pgstore *)b;
    ann_rm_log_state st;
    if (ann_readmodel_log_state(s->rm, t, l, &st, err) != 0)
        return -1;
    if (!st.exists || st.deleted) {
        ann_readmodel_log_state_release(&st);
        return ann_err_set(err, ANN_ENOTFOUND, "log %s not found", l);
    }
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", l);
    out->create_time_ns = st.create_time_ns;
    out->entry_count = st.visible_count;
    out->labels = st.labels ? st.labels : ann_xmalloc(1);
    out->labels_len = st.labels_len;
    return 0;
}

static int ps_log_delete(ann_store *b, const char *t, const char *l, ann_err *err)
{
    pgstore *s = (pgstore *)b;
    pthread_mutex_lock(&s->mu);
    uint64_t op, count;
    int rc = log_ops(s, t, l, &op, &count, err);
    if (rc == 0)
        rc = ann_store_log_delete(s->mem, t, l, err);
    if (rc == 0) {
        committed c = ANNALS__EVENTS__V1__COMMITTED__INIT;
        Annals__Events__V1__DeleteLog d = ANNALS__EVENTS__V1__DELETE_LOG__INIT;
        c.tenant_id = (char *)t, c.log_id = (char *)l, c.op_seq = op, c.entry_count = count;
        c.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_DELETE_LOG;
        c.delete_log = &d;
        rc = project(s, &c, err);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int ps_append(ann_store *b, ann_append *req, ann_err *err)
{
    pgstore *s = (pgstore *)b;
    pthread_mutex_lock(&s->mu);
    uint64_t op, before;
    int rc = log_ops(s, req->tenant_id, req->log_id, &op, &before, err);
    if (rc == 0)
        rc = ann_store_append(s->mem, req, err);
    if (rc == 0 && req->n_new_out > 0) {
        Annals__Events__V1__Entry *ev = ann_xcalloc(req->n + 1, sizeof *ev);
        Annals__Events__V1__Entry **pv = ann_xcalloc(req->n + 1, sizeof *pv);
        size_t n = 0;
        uint64_t count = before;
        for (size_t i = 0; i < req->n; i++) {
            if (req->ids_out[i] <= count)
                continue; /* existing, or a repeat within this append */
            const ann_entry *e = &req->entries[i];
            Annals__Events__V1__Entry x = ANNALS__EVENTS__V1__ENTRY__INIT;
            x.entry_id = req->ids_out[i];
            x.time_ns = e->time_ns;
            x.insert_time_ns = e->insert_time_ns;
            x.severity = e->severity;
            x.insert_id.data = (uint8_t *)e->insert_id;
            x.insert_id.len = e->insert_id_len;
            x.body.data = (uint8_t *)e->body;
            x.body.len = e->body_len;
            ev[n] = x;
            pv[n] = &ev[n];
            n++;
            count = req->ids_out[i];
        }
        committed c = ANNALS__EVENTS__V1__COMMITTED__INIT;
        Annals__Events__V1__Write w = ANNALS__EVENTS__V1__WRITE__INIT;
        w.n_entries = n;
        w.entries = pv;
        c.tenant_id = (char *)req->tenant_id, c.log_id = (char *)req->log_id;
        c.op_seq = op, c.entry_count = count;
        c.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_WRITE;
        c.write = &w;
        rc = project(s, &c, err);
        free(ev);
        free(pv);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int ps_revoke(ann_store *b, const char *t, const char *l, const uint64_t *ids, size_t n,
                     const char *actor, const char *reason, int64_t now, ann_err *err)
{
    pgstore *s = (pgstore *)b;
    pthread_mutex_lock(&s->mu);
    uint64_t op, count;
    int rc = log_ops(s, t, l, &op, &count, err);
    if (rc == 0)
        rc = ann_store_revoke(s->mem, t, l, ids, n, actor, reason, now, err);
    if (rc == 0) {
        committed c = ANNALS__EVENTS__V1__COMMITTED__INIT;
        Annals__Events__V1__Revoke r = ANNALS__EVENTS__V1__REVOKE__INIT;
        r.n_entry_ids = n;
        r.entry_ids = (uint64_t *)ids;
        r.actor = (char *)(actor ? actor : "");
        r.reason = (char *)(reason ? reason : "");
        r.time_ns = now;
        c.tenant_id = (char *)t, c.log_id = (char *)l, c.op_seq = op, c.entry_count = count;
        c.op_case = ANNALS__EVENTS__V1__COMMITTED__OP_REVOKE;
        c.revoke = &r;
        rc = project(s, &c, err);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int ps_list(ann_store *b, const char *t, const char *l, const ann_list_query *q,
                   ann_entry_visit_fn visit, void *ud, ann_list_result *res, ann_err *err)
{
    return ann_readmodel_list(((pgstore *)b)->rm, t, l, q, visit, ud, res, err);
}

static int ps_logs_list(ann_store *b, const char *t, const ann_logs_query *q,
                        ann_log_visit_fn visit, void *ud, ann_err *err)
{
    return ann_readmodel_logs_list(((pgstore *)b)->rm, t, q, visit, ud, err);
}

static int ps_search(ann_store *b, const char *t, const ann_search_query *q, ann_hit_visit_fn visit,
                     void *ud, ann_search_result *res, ann_err *err)
{
    return ann_readmodel_search(((pgstore *)b)->rm, t, q, visit, ud, res, err);
}

static int ps_read_after(ann_store *b, const char *t, const char *l, uint64_t after, size_t limit,
                         ann_entry_visit_fn visit, void *ud, ann_err *err)
{
    return ann_readmodel_read_after(((pgstore *)b)->rm, t, l, after, limit, visit, ud, err);
}

static int ps_watch(ann_store *b, const char *t, const char *l, ann_watch_fn fn, void *ud,
                    ann_watch **out, ann_err *err)
{
    return ann_store_watch(((pgstore *)b)->mem, t, l, fn, ud, out, err);
}

static void ps_unwatch(ann_store *b, ann_watch *w)
{
    ann_store_unwatch(((pgstore *)b)->mem, w);
}

static const ann_store_ops pgstore_ops = {
    .version = 1,
    .name = "postgres read model (tests only)",
    .close = ps_close,
    .secret = ps_secret,
    .tenant_create = ps_tenant_create,
    .tenant_by_key = ps_tenant_by_key,
    .log_create = ps_log_create,
    .log_get = ps_log_get,
    .log_delete = ps_log_delete,
    .append = ps_append,
    .revoke = ps_revoke,
    .list = ps_list,
    .logs_list = ps_logs_list,
    .search = ps_search,
    .read_after = ps_read_after,
    .watch = ps_watch,
    .unwatch = ps_unwatch,
};

ann_store *ann_pgstore_new(const char *conninfo, const char *ns, ann_err *err)
{
    pgstore *s = ann_xcalloc(1, sizeof *s);
    s->base.ops = &pgstore_ops;
    pthread_mutex_init(&s->mu, NULL);
    s->conninfo = strdup(conninfo);
    snprintf(s->ns, sizeof s->ns, "%s", ns);
    s->mem = ann_memstore_new();
    if (ann_projector_open(conninfo, ns, &s->p, err) != 0 ||
        ann_projector_open_kind(conninfo, ns, ANN_PROJECTOR_SEARCH, &s->sp, err) != 0 ||
        ann_readmodel_open(conninfo, ns, 4, &s->rm, err) != 0) {
        ps_close(&s->base);
        return NULL;
    }
    for (int32_t k = 0; k < NPART; k++)
        if (ann_projector_claim(s->p, k, &s->next[k], err) != 0 ||
            ann_projector_claim(s->sp, k, &s->snext[k], err) != 0) {
            ps_close(&s->base);
            return NULL;
        }
    return &s->base;
}
