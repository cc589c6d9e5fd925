/*
 * The read side of the distributed backend: the port's reads over the PostgreSQL read
 * model (src/pg/readmodel.h), and its notifications fed to the waiters (distributed.c).
 */
#include <stdlib.h>

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

int dist_rm_logs_list(ann_store *s, const char *tenant_id, const ann_logs_query *q,
                      ann_log_visit_fn visit, void *ud, ann_err *err)
{
    return ann_readmodel_logs_list(((dist *)s)->rm, tenant_id, q, visit, ud, err);
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
