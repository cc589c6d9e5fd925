/*
 * Retention and legal hold (store.h, version 4): a log's own period, the tenant's period,
 * holds with their audit records, and the bounded retention pass. The state lives in
 * meta.db (logs.retention_days, logs.legal_hold, logs.last_write_ns, tenants.retention_days,
 * log_events), so it survives a restart; the deletion itself is purge.c's, the one path
 * DeleteLog takes too.
 */
#include <stdlib.h>
#include <string.h>

#include "store/embedded/internal.h"

int emb_log_create_spec(ann_store *st, const ann_log_spec *spec, ann_err *err)
{
    if (spec->retention_days < 0)
        return ann_err_set(err, ANN_EINVAL, "retention_days: must not be negative");
    return emb_log_create_days(st, spec->tenant_id, spec->log_id, spec->labels, spec->labels_len,
                               spec->now_ns, spec->retention_days, err);
}

int emb_log_set_hold(ann_store *st, const char *tenant_id, const char *log_id, bool hold,
                     const char *actor, const char *reason, int64_t now_ns, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    if (emb_log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    /* purge_mu: a hold and a deletion of one log are decided one after the other (SQLite
     * decides between processes: the deletion's update needs legal_hold = 0). */
    pthread_mutex_lock(&h->purge_mu);
    pthread_rwlock_rdlock(&h->lk);
    int rc = emb_log_state(h, err);
    pthread_rwlock_unlock(&h->lk);
    if (rc == 0)
        rc = ann_meta_log_set_hold(s->meta, tenant_id, log_id, hold, actor, reason, now_ns, err);
    pthread_mutex_unlock(&h->purge_mu);
    emb_log_release(s, h);
    return rc;
}

int emb_tenant_set_retention(ann_store *st, const char *tenant_name, int32_t days, ann_err *err)
{
    emb *s = (emb *)st;
    if (days < 0)
        return ann_err_set(err, ANN_EINVAL, "days: must not be negative");
    return ann_meta_tenant_set_retention(s->meta, tenant_name, days, err);
}

int emb_retention_pass(ann_store *st, int64_t now_ns, int64_t day_ns, size_t max_logs,
                       ann_retention_stats *out, ann_err *err)
{
    emb *s = (emb *)st;
    ann_meta_candidate *c = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    if (day_ns <= 0)
        return ann_err_set(err, ANN_EINVAL, "retention: a day must last at least 1 ns");
    if (ann_meta_retention_candidates(s->meta, now_ns, day_ns, max_logs, &c, &n, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].days <= 0 || c[i].days > INT64_MAX / day_ns)
            continue; /* forever, in practice */
        emb_expiry exp = {.now_ns = now_ns,
                          .cutoff_ns = now_ns - (int64_t)c[i].days * day_ns,
                          .day_ns = day_ns,
                          .days = c[i].days,
                          .own_period = c[i].own_period};
        ann_err e2 = {0};
        bool deleted = false;
        out->examined++;
        if (emb_log_delete_if(s, c[i].tenant, c[i].log, &exp, &deleted, &e2) != 0) {
            if (e2.code == ANN_ENOTFOUND)
                continue; /* deleted meanwhile */
            if (err)
                *err = e2;
            rc = -1;
            break;
        }
        if (deleted) {
            out->deleted++;
            fprintf(stderr,
                    "annalsd: retention: deleted log %s of tenant %s (%s period of %d day%s)\n",
                    c[i].log, c[i].tenant, exp.own_period ? "its" : "the tenant's", (int)c[i].days,
                    c[i].days == 1 ? "" : "s");
        }
    }
    out->more = n == max_logs;
    free(c);
    return rc;
}

typedef struct audit_walk {
    ann_log_event_visit_fn fn;
    void *ud;
} audit_walk;

static int audit_one(const ann_meta_event *ev, void *ud)
{
    audit_walk *w = ud;
    ann_log_event e = {.log_id = ev->log_id,
                       .time_ns = ev->time_ns,
                       .kind = ev->kind,
                       .actor = ev->actor,
                       .reason = ev->reason};
    return w->fn(&e, w->ud);
}

int ann_store_embedded_audit(ann_store *st, const char *tenant_name, const char *log_id,
                             ann_log_event_visit_fn fn, void *ud, ann_err *err)
{
    emb *s = (emb *)st;
    audit_walk w = {.fn = fn, .ud = ud};
    return ann_meta_log_events(s->meta, tenant_name, log_id, audit_one, &w, err);
}
