#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- sync over async: a waiter on the caller's stack (store.h) ---------- */

void ann_store_waiter_init(ann_store_waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

void ann_store_waiter_done(void *ud, int rc, const ann_err *err)
{
    ann_store_waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    if (rc != 0) {
        if (err)
            w->err = *err;
        else
            ann_err_set(&w->err, ANN_EINTERNAL, "store: failed without an error");
    }
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu); /* the waiter may be gone once this returns */
}

int ann_store_waiter_wait(ann_store_waiter *w, ann_err *err)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    if (w->rc != 0) {
        if (err)
            *err = w->err;
        return -1;
    }
    return 0;
}

/* The backend's op `f` when its table is version 2 or later (else NULL). */
#define V2_OP(s, f) ((s)->ops->version >= 2 ? (s)->ops->f : NULL)

static void done_sync(ann_done_fn done, void *ud, int rc, const ann_err *err)
{
    done(ud, rc, rc == 0 ? NULL : err);
}

void ann_log_meta_release(ann_log_meta *m)
{
    if (m) {
        free(m->labels);
        m->labels = NULL;
        m->labels_len = 0;
        free(m->last_hold_change.reason);
        m->last_hold_change.reason = NULL;
    }
}

void ann_store_close(ann_store *s)
{
    if (s)
        s->ops->close(s);
}

void ann_store_abandon(ann_store *s)
{
    if (s && s->ops->abandon)
        s->ops->abandon(s);
}

int ann_store_secret(ann_store *s, uint8_t out[32], ann_err *err)
{
    return s->ops->secret(s, out, err);
}

/* A backend before v3 has one key per tenant, which may do everything. */
static void one_admin_key(ann_store *s, ann_tenant *t)
{
    if (s->ops->version >= 3)
        return;
    t->key_id[0] = '\0';
    snprintf(t->key_name, sizeof t->key_name, "%s", ANN_ADMIN_KEY_NAME);
    t->roles = ANN_ROLE_ADMIN;
    t->expire_ns = 0;
}

int ann_store_tenant_create(ann_store *s, const char *name, const uint8_t key_hash[32],
                            ann_tenant *out, ann_err *err)
{
    ann_tenant t;
    memset(&t, 0, sizeof t);
    int rc = s->ops->tenant_create(s, name, key_hash, &t, err);
    if (rc == 0) {
        one_admin_key(s, &t);
        memcpy(t.key_hash, key_hash, 32);
        if (out)
            *out = t;
    }
    return rc;
}

int ann_store_tenant_by_key(ann_store *s, const uint8_t key_hash[32], ann_tenant *out, ann_err *err)
{
    ann_tenant t;
    memset(&t, 0, sizeof t);
    int rc = s->ops->tenant_by_key(s, key_hash, &t, err);
    if (rc == 0) {
        one_admin_key(s, &t);
        memcpy(t.key_hash, key_hash, 32);
        if (out)
            *out = t;
    }
    return rc;
}

/* The backend's op `f` when its table is version 3 or later (else NULL). */
#define V3_OP(s, f) ((s)->ops->version >= 3 ? (s)->ops->f : NULL)

int ann_store_key_create(ann_store *s, const ann_key_spec *spec, ann_key *out, ann_err *err)
{
    if (!V3_OP(s, key_create))
        return ann_err_set(err, ANN_EINVAL, "the %s store has one key per tenant", s->ops->name);
    if (spec->roles == 0 || (spec->roles & ~ANN_ROLES_ALL))
        return ann_err_set(err, ANN_EINVAL,
                           "roles: at least one of writer, reader, redactor, "
                           "admin");
    if (spec->name && !ann_key_name_valid(spec->name, strlen(spec->name)))
        return ann_err_set(err, ANN_EINVAL, "name: 1 to %d of [A-Za-z0-9._-]", ANN_KEY_NAME_MAX);
    if (spec->expire_ns < 0)
        return ann_err_set(err, ANN_EINVAL, "expires: before 1970");
    return s->ops->key_create(s, spec, out, err);
}

int ann_store_key_list(ann_store *s, const char *tenant_name, ann_key_visit_fn visit, void *ud,
                       ann_err *err)
{
    if (!V3_OP(s, key_list))
        return ann_err_set(err, ANN_EINVAL, "the %s store has one key per tenant", s->ops->name);
    return s->ops->key_list(s, tenant_name, visit, ud, err);
}

int ann_store_key_revoke(ann_store *s, const char *key_id, int64_t now_ns, ann_key *out,
                         ann_err *err)
{
    if (!V3_OP(s, key_revoke))
        return ann_err_set(err, ANN_EINVAL, "the %s store has one key per tenant", s->ops->name);
    return s->ops->key_revoke(s, key_id, now_ns, out, err);
}

int ann_store_log_create(ann_store *s, const char *tenant_id, const char *log_id,
                         const uint8_t *labels, size_t labels_len, int64_t now_ns, ann_err *err)
{
    if (s->ops->log_create || !V2_OP(s, log_create_async))
        return s->ops->log_create(s, tenant_id, log_id, labels, labels_len, now_ns, err);
    ann_store_waiter w;
    ann_store_waiter_init(&w);
    s->ops->log_create_async(s, tenant_id, log_id, labels, labels_len, now_ns,
                             ann_store_waiter_done, &w);
    return ann_store_waiter_wait(&w, err);
}

int ann_store_log_get(ann_store *s, const char *tenant_id, const char *log_id, ann_log_meta *out,
                      ann_err *err)
{
    int rc = s->ops->log_get(s, tenant_id, log_id, out, err);
    if (rc == 0 && s->ops->version < 2)
        out->visible_count = out->entry_count; /* a version-1 append returns visible */
    return rc;
}

int ann_store_log_delete(ann_store *s, const char *tenant_id, const char *log_id, ann_err *err)
{
    if (s->ops->log_delete || !V2_OP(s, log_delete_async))
        return s->ops->log_delete(s, tenant_id, log_id, err);
    ann_store_waiter w;
    ann_store_waiter_init(&w);
    s->ops->log_delete_async(s, tenant_id, log_id, ann_store_waiter_done, &w);
    return ann_store_waiter_wait(&w, err);
}

int ann_store_append(ann_store *s, ann_append *req, ann_err *err)
{
    if (s->ops->append || !V2_OP(s, append_async)) {
        req->ids_known = false;
        int rc = s->ops->append(s, req, err);
        req->ids_known = rc == 0; /* a synchronous append always fills the ids */
        return rc;
    }
    ann_store_waiter w;
    ann_store_waiter_init(&w);
    req->ids_known = false;
    s->ops->append_async(s, req, ann_store_waiter_done, &w);
    return ann_store_waiter_wait(&w, err);
}

int ann_store_revoke(ann_store *s, const char *tenant_id, const char *log_id, const uint64_t *ids,
                     size_t n, const char *actor, const char *reason, int64_t now_ns, ann_err *err)
{
    if (s->ops->revoke || !V2_OP(s, revoke_async))
        return s->ops->revoke(s, tenant_id, log_id, ids, n, actor, reason, now_ns, err);
    ann_store_waiter w;
    ann_store_waiter_init(&w);
    s->ops->revoke_async(s, tenant_id, log_id, ids, n, actor, reason, now_ns, ann_store_waiter_done,
                         &w);
    return ann_store_waiter_wait(&w, err);
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

/* ---------- version 2: the asynchronous commands ---------- */

void ann_store_append_async(ann_store *s, ann_append *req, ann_done_fn done, void *ud)
{
    req->ids_known = false;
    if (V2_OP(s, append_async)) {
        s->ops->append_async(s, req, done, ud);
        return;
    }
    ann_err err = {0};
    int rc = s->ops->append(s, req, &err);
    req->ids_known = rc == 0;
    done_sync(done, ud, rc, &err);
}

void ann_store_revoke_async(ann_store *s, const char *tenant_id, const char *log_id,
                            const uint64_t *ids, size_t n, const char *actor, const char *reason,
                            int64_t now_ns, ann_done_fn done, void *ud)
{
    if (V2_OP(s, revoke_async)) {
        s->ops->revoke_async(s, tenant_id, log_id, ids, n, actor, reason, now_ns, done, ud);
        return;
    }
    ann_err err = {0};
    int rc = s->ops->revoke(s, tenant_id, log_id, ids, n, actor, reason, now_ns, &err);
    done_sync(done, ud, rc, &err);
}

void ann_store_log_delete_async(ann_store *s, const char *tenant_id, const char *log_id,
                                ann_done_fn done, void *ud)
{
    if (V2_OP(s, log_delete_async)) {
        s->ops->log_delete_async(s, tenant_id, log_id, done, ud);
        return;
    }
    ann_err err = {0};
    int rc = s->ops->log_delete(s, tenant_id, log_id, &err);
    done_sync(done, ud, rc, &err);
}

void ann_store_log_create_async(ann_store *s, const char *tenant_id, const char *log_id,
                                const uint8_t *labels, size_t labels_len, int64_t now_ns,
                                ann_done_fn done, void *ud)
{
    if (V2_OP(s, log_create_async)) {
        s->ops->log_create_async(s, tenant_id, log_id, labels, labels_len, now_ns, done, ud);
        return;
    }
    ann_err err = {0};
    int rc = s->ops->log_create(s, tenant_id, log_id, labels, labels_len, now_ns, &err);
    done_sync(done, ud, rc, &err);
}

/* ---------- version 4: retention and legal hold ---------- */

#define V4_OP(s, f) ((s)->ops->version >= 4 ? (s)->ops->f : NULL)

void ann_store_log_create_spec_async(ann_store *s, const ann_log_spec *spec, ann_done_fn done,
                                     void *ud)
{
    ann_err err = {0};
    if (V4_OP(s, log_create_spec_async)) {
        s->ops->log_create_spec_async(s, spec, done, ud);
        return;
    }
    if (V4_OP(s, log_create_spec)) {
        int rc = s->ops->log_create_spec(s, spec, &err);
        done_sync(done, ud, rc, &err);
        return;
    }
    if (spec->retention_days != 0) {
        ann_err_set(&err, ANN_EPRECOND,
                    "retention_days: the %s store keeps logs forever (retention is not "
                    "available on it yet)",
                    s->ops->name);
        done_sync(done, ud, -1, &err);
        return;
    }
    ann_store_log_create_async(s, spec->tenant_id, spec->log_id, spec->labels, spec->labels_len,
                               spec->now_ns, done, ud);
}

int ann_store_log_set_hold(ann_store *s, const char *tenant_id, const char *log_id, bool hold,
                           const char *actor, const char *reason, int64_t now_ns, ann_err *err)
{
    if (!V4_OP(s, log_set_hold))
        return ann_err_set(err, ANN_EPRECOND, "legal holds are not available on the %s store yet",
                           s->ops->name);
    return s->ops->log_set_hold(s, tenant_id, log_id, hold, actor, reason, now_ns, err);
}

int ann_store_tenant_set_retention(ann_store *s, const char *tenant_name, int32_t days,
                                   ann_err *err)
{
    if (!V4_OP(s, tenant_set_retention))
        return ann_err_set(err, ANN_EPRECOND, "retention is not available on the %s store yet",
                           s->ops->name);
    return s->ops->tenant_set_retention(s, tenant_name, days, err);
}

int ann_store_retention_pass(ann_store *s, int64_t now_ns, int64_t day_ns, size_t max_logs,
                             ann_retention_stats *out, ann_err *err)
{
    memset(out, 0, sizeof *out);
    if (!V4_OP(s, retention_pass))
        return 0; /* a backend without retention keeps every log: nothing to do */
    return s->ops->retention_pass(s, now_ns, day_ns, max_logs, out, err);
}

/* ---- integrity: optional in any version ---- */

static int no_integrity(ann_store *s, ann_err *err)
{
    return ann_err_set(err, ANN_EUNIMPL,
                       "the %s store keeps no Merkle tree yet (docs/integrity.md)", s->ops->name);
}

int ann_store_checkpoint(ann_store *s, const char *tenant_id, const char *log_id, ann_buf *out,
                         ann_err *err)
{
    if (!s->ops->checkpoint)
        return no_integrity(s, err);
    return s->ops->checkpoint(s, tenant_id, log_id, out, err);
}

int ann_store_inclusion_proof(ann_store *s, const char *tenant_id, const char *log_id,
                              uint64_t entry_id, uint64_t tree_size, uint8_t (*out)[32], size_t *n,
                              ann_err *err)
{
    *n = 0;
    if (!s->ops->inclusion_proof)
        return no_integrity(s, err);
    return s->ops->inclusion_proof(s, tenant_id, log_id, entry_id, tree_size, out, n, err);
}

int ann_store_consistency_proof(ann_store *s, const char *tenant_id, const char *log_id,
                                uint64_t first, uint64_t second, uint8_t (*out)[32], size_t *n,
                                ann_err *err)
{
    *n = 0;
    if (!s->ops->consistency_proof)
        return no_integrity(s, err);
    return s->ops->consistency_proof(s, tenant_id, log_id, first, second, out, n, err);
}

int ann_store_log_seal(ann_store *s, const char *tenant_id, const char *log_id, ann_buf *out,
                       ann_err *err)
{
    if (!s->ops->log_seal)
        return no_integrity(s, err);
    return s->ops->log_seal(s, tenant_id, log_id, out, err);
}
