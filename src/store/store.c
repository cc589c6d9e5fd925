#include "store/store.h"

#include <string.h>

#include <stdlib.h>

void ann_log_meta_release(ann_log_meta *m)
{
    if (m) {
        free(m->labels);
        m->labels = NULL;
        m->labels_len = 0;
    }
}

void ann_store_close(ann_store *s)
{
    if (s)
        s->ops->close(s);
}

int ann_store_secret(ann_store *s, uint8_t out[32], ann_err *err)
{
    return s->ops->secret(s, out, err);
}

int ann_store_tenant_create(ann_store *s, const char *name, const uint8_t key_hash[32],
                            ann_tenant *out, ann_err *err)
{
    return s->ops->tenant_create(s, name, key_hash, out, err);
}

int ann_store_tenant_by_key(ann_store *s, const uint8_t key_hash[32], ann_tenant *out, ann_err *err)
{
    return s->ops->tenant_by_key(s, key_hash, out, err);
}

int ann_store_log_create(ann_store *s, const char *tenant_id, const char *log_id,
                         const uint8_t *labels, size_t labels_len, int64_t now_ns, ann_err *err)
{
    return s->ops->log_create(s, tenant_id, log_id, labels, labels_len, now_ns, err);
}

int ann_store_log_get(ann_store *s, const char *tenant_id, const char *log_id, ann_log_meta *out,
                      ann_err *err)
{
    return s->ops->log_get(s, tenant_id, log_id, out, err);
}

int ann_store_log_delete(ann_store *s, const char *tenant_id, const char *log_id, ann_err *err)
{
    return s->ops->log_delete(s, tenant_id, log_id, err);
}

int ann_store_append(ann_store *s, ann_append *req, ann_err *err)
{
    return s->ops->append(s, req, err);
}

int ann_store_revoke(ann_store *s, const char *tenant_id, const char *log_id, const uint64_t *ids,
                     size_t n, const char *actor, const char *reason, int64_t now_ns, ann_err *err)
{
    return s->ops->revoke(s, tenant_id, log_id, ids, n, actor, reason, now_ns, err);
}

int ann_store_list(ann_store *s, const char *tenant_id, const char *log_id, const ann_list_query *q,
                   ann_entry_visit_fn visit, void *ud, ann_list_result *res, ann_err *err)
{
    ann_list_result ignored;
    if (!res)
        res = &ignored;
    memset(res, 0, sizeof *res);
    return s->ops->list(s, tenant_id, log_id, q, visit, ud, res, err);
}

int ann_store_logs_list(ann_store *s, const char *tenant_id, const ann_logs_query *q,
                        ann_log_visit_fn visit, void *ud, ann_err *err)
{
    return s->ops->logs_list(s, tenant_id, q, visit, ud, err);
}

int ann_store_search(ann_store *s, const char *tenant_id, const ann_search_query *q,
                     ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err)
{
    memset(res, 0, sizeof *res);
    return s->ops->search(s, tenant_id, q, visit, ud, res, err);
}

int ann_store_read_after(ann_store *s, const char *tenant_id, const char *log_id, uint64_t after_id,
                         size_t limit, ann_entry_visit_fn visit, void *ud, ann_err *err)
{
    return s->ops->read_after(s, tenant_id, log_id, after_id, limit, visit, ud, err);
}

int ann_store_watch(ann_store *s, const char *tenant_id, const char *log_id, ann_watch_fn fn,
                    void *ud, ann_watch **out, ann_err *err)
{
    return s->ops->watch(s, tenant_id, log_id, fn, ud, out, err);
}

void ann_store_unwatch(ann_store *s, ann_watch *w)
{
    if (w)
        s->ops->unwatch(s, w);
}
