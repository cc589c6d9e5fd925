/*
 * The read side of the distributed backend: the port's reads over the PostgreSQL read
 * model (src/pg/readmodel.h), and its notifications fed to the waiters (distributed.c).
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "pg/readmodel.h"
#include "store/distributed/internal.h"

int dist_rm_open(dist *d, const char *conninfo, int pool, ann_err *err)
{
    return ann_readmodel_open(conninfo, d->kcfg.ns, (size_t)pool, &d->rm, err);
}

void dist_rm_close(dist *d)
{
    if (d->rm)
        ann_readmodel_close(d->rm);
    d->rm = NULL;
}

int dist_rm_listen_start(dist *d, ann_err *err)
{
    return ann_readmodel_listen_start(d->rm, dist_on_notify, d, err);
}

void dist_rm_listen_stop(dist *d)
{
    if (d->rm)
        ann_readmodel_listen_stop(d->rm);
}

int dist_rm_state(dist *d, const char *tenant_id, const char *log_id, dist_log_state *out,
                  ann_err *err)
{
    ann_rm_log_state st;
    if (ann_readmodel_log_state(d->rm, tenant_id, log_id, &st, err) != 0)
        return -1;
    out->exists = st.exists;
    out->deleted = st.deleted;
    out->visible_count = st.visible_count;
    out->applied_op = st.applied_op;
    ann_readmodel_log_state_release(&st);
    return 0;
}

int dist_rm_list(ann_store *s, const char *tenant_id, const char *log_id, const ann_list_query *q,
                 ann_entry_visit_fn visit, void *ud, ann_list_result *res, ann_err *err)
{
    return ann_readmodel_list(((dist *)s)->rm, tenant_id, log_id, q, visit, ud, res, err);
}

/* A page of ListLogs: the read model's rows (copied: its labels live in the query's
 * result), then their holds and periods from the catalog, which alone keeps them (holds
 * change there, never through the pipeline), then the caller's visitor. */
typedef struct page {
    ann_log_meta *m;
    size_t n, cap;
} page;

static int page_add(const ann_log_meta *m, void *ud)
{
    page *p = ud;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->m = ann_xrealloc(p->m, p->cap * sizeof *p->m);
    }
    ann_log_meta *c = &p->m[p->n++];
    *c = *m;
    c->has_hold_change = false;
    c->last_hold_change.reason = NULL;
    c->labels = ann_xcalloc(m->labels_len ? m->labels_len : 1, 1);
    if (m->labels_len)
        memcpy(c->labels, m->labels, m->labels_len);
    return 0;
}

int dist_rm_logs_list(ann_store *s, const char *tenant_id, const ann_logs_query *q,
                      ann_log_visit_fn visit, void *ud, ann_err *err)
{
    dist *d = (dist *)s;
    ann_logs_query qq = *q;
    size_t want = q->limit;
    int rc = 0, stop = 0;
    /* A log the catalog marks deleted whose deletion the read model does not show yet is
     * left out (GetLog says NOT_FOUND for it already); the page is filled from further on. */
    while (rc == 0 && !stop && want > 0) {
        page p = {0};
        qq.limit = want;
        rc = ann_readmodel_logs_list(d->rm, tenant_id, &qq, page_add, &p, err);
        bool *gone = ann_xcalloc(p.n + 1, sizeof *gone);
        if (rc == 0)
            rc = ann_catalog_logs_flags(d->cat, tenant_id, p.m, p.n, gone, err);
        size_t shown = 0;
        for (size_t i = 0; rc == 0 && !stop && i < p.n; i++)
            if (!gone[i]) {
                shown++;
                stop = visit(&p.m[i], ud);
            }
        bool full = p.n == want;
        if (p.n > 0) {
            qq.has_cursor = true;
            qq.cursor_create_ns = p.m[p.n - 1].create_time_ns;
            snprintf(qq.cursor_id, sizeof qq.cursor_id, "%s", p.m[p.n - 1].id);
        }
        for (size_t i = 0; i < p.n; i++)
            ann_log_meta_release(&p.m[i]);
        free(p.m);
        free(gone);
        if (!full)
            break;
        want -= shown;
    }
    return rc;
}

int dist_rm_search(ann_store *s, const char *tenant_id, const ann_search_query *q,
                   ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err)
{
    return ann_readmodel_search(((dist *)s)->rm, tenant_id, q, visit, ud, res, err);
}

int dist_rm_read_after(ann_store *s, const char *tenant_id, const char *log_id, uint64_t after_id,
                       size_t limit, ann_entry_visit_fn visit, void *ud, ann_err *err)
{
    return ann_readmodel_read_after(((dist *)s)->rm, tenant_id, log_id, after_id, limit, visit, ud,
                                    err);
}
