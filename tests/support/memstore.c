#include "memstore.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

typedef struct mentry {
    ann_entry e;
    char *insert_id;
    uint8_t *body;
    ann_revocation rev; /* the first revocation, once redacted */
    char *actor, *reason;
} mentry;

struct ann_watch {
    ann_watch_fn fn;
    void *ud;
    struct mlog *log;
    struct ann_watch *next;
};

typedef struct mlog {
    char tenant[ANN_UUID_LEN + 1];
    char id[ANN_UUID_LEN + 1];
    int64_t create_time;
    uint8_t *labels;
    size_t labels_len;
    bool deleted;
    int32_t retention_days; /* v4 */
    bool hold;
    bool has_change;
    ann_hold_change change; /* reason malloc'd */
    mentry *v;
    size_t n, cap;
    struct ann_watch *watchers;
} mlog;

typedef struct memstore {
    ann_store base;
    pthread_mutex_t mu;
    pthread_mutex_t watch_mu; /* held while watchers run: unwatch waits on it */
    ann_tenant tenants[16];
    int32_t tenant_days[16]; /* v4: each tenant's retention period */
    size_t n_tenants;
    struct mkey {
        ann_key k;
        uint8_t hash[32];
    } keys[64];
    size_t n_keys;
    unsigned key_seq;
    mlog *logs[256];
    size_t n_logs;
} memstore;

static mlog *find(memstore *m, const char *tenant, const char *id, ann_err *err)
{
    for (size_t i = 0; i < m->n_logs; i++)
        if (!m->logs[i]->deleted && strcmp(m->logs[i]->id, id) == 0 &&
            strcmp(m->logs[i]->tenant, tenant) == 0)
            return m->logs[i];
    ann_err_set(err, ANN_ENOTFOUND, "log %s not found", id);
    return NULL;
}

static void ms_close(ann_store *s)
{
    memstore *m = (memstore *)s;
    for (size_t i = 0; i < m->n_logs; i++) {
        mlog *l = m->logs[i];
        for (size_t k = 0; k < l->n; k++) {
            free(l->v[k].insert_id);
            free(l->v[k].body);
            free(l->v[k].actor);
            free(l->v[k].reason);
        }
        free(l->v);
        free(l->labels);
        free(l->change.reason);
        free(l);
    }
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->watch_mu);
    free(m);
}

static int ms_secret(ann_store *s, uint8_t out[32], ann_err *err)
{
    (void)s, (void)err;
    memset(out, 7, 32);
    return 0;
}

/* Caller holds m->mu. */
static int key_add(memstore *m, const ann_tenant *t, const char *name, uint32_t roles,
                   int64_t create_ns, int64_t expire_ns, const uint8_t h[32], ann_key *out,
                   ann_err *err)
{
    if (m->n_keys == sizeof m->keys / sizeof m->keys[0])
        return ann_err_set(err, ANN_ERANGE, "too many keys");
    for (size_t i = 0; i < m->n_keys; i++) {
        if (memcmp(m->keys[i].hash, h, 32) == 0)
            return ann_err_set(err, ANN_EEXISTS, "key is already in use");
        if (name && strcmp(m->keys[i].k.tenant_id, t->id) == 0 &&
            strcmp(m->keys[i].k.name, name) == 0)
            return ann_err_set(err, ANN_EEXISTS, "name: tenant '%s' has a key named '%s' already",
                               t->name, name);
    }
    struct mkey *k = &m->keys[m->n_keys++];
    memset(k, 0, sizeof *k);
    snprintf(k->k.id, sizeof k->k.id, "00000000-0000-4000-9000-%012u", ++m->key_seq);
    memcpy(k->k.tenant_id, t->id, sizeof k->k.tenant_id);
    snprintf(k->k.name, sizeof k->k.name, "%s", name ? name : k->k.id);
    k->k.roles = roles;
    k->k.create_ns = create_ns;
    k->k.expire_ns = expire_ns;
    memcpy(k->hash, h, 32);
    if (out)
        *out = k->k;
    return 0;
}

static int ms_tenant_create(ann_store *s, const char *name, const uint8_t h[32], ann_tenant *out,
                            ann_err *err)
{
    memstore *m = (memstore *)s;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    if (m->n_tenants == 16) {
        ann_err_set(err, ANN_ERANGE, "too many tenants");
        goto done;
    }
    for (size_t i = 0; i < m->n_tenants; i++)
        if (strcmp(m->tenants[i].name, name) == 0) {
            ann_err_set(err, ANN_EEXISTS, "tenant name '%s' is already taken", name);
            goto done;
        }
    ann_tenant *t = &m->tenants[m->n_tenants];
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "00000000-0000-4000-8000-%012zu", m->n_tenants);
    snprintf(t->name, sizeof t->name, "%s", name);
    ann_key k;
    if (key_add(m, t, ANN_ADMIN_KEY_NAME, ANN_ROLE_ADMIN, 1, 0, h, &k, err) != 0)
        goto done;
    m->n_tenants++;
    *out = *t;
    memcpy(out->key_id, k.id, sizeof out->key_id);
    memcpy(out->key_name, k.name, sizeof out->key_name);
    out->roles = k.roles;
    rc = 0;
done:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int ms_tenant_by_key(ann_store *s, const uint8_t h[32], ann_tenant *out, ann_err *err)
{
    memstore *m = (memstore *)s;
    int rc = ann_err_set(err, ANN_EUNAUTH, "unknown key");
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_keys; i++) {
        struct mkey *k = &m->keys[i];
        if (memcmp(k->hash, h, 32) != 0 || k->k.revoke_ns)
            continue;
        for (size_t j = 0; j < m->n_tenants; j++)
            if (strcmp(m->tenants[j].id, k->k.tenant_id) == 0)
                *out = m->tenants[j];
        memcpy(out->key_id, k->k.id, sizeof out->key_id);
        memcpy(out->key_name, k->k.name, sizeof out->key_name);
        out->roles = k->k.roles;
        out->expire_ns = k->k.expire_ns;
        k->k.last_used_ns = 1; /* used (the memory store keeps no clock) */
        ann_err_clear(err);
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static const ann_tenant *tenant_named(memstore *m, const char *name, ann_err *err)
{
    for (size_t i = 0; i < m->n_tenants; i++)
        if (strcmp(m->tenants[i].name, name) == 0)
            return &m->tenants[i];
    ann_err_set(err, ANN_ENOTFOUND, "tenant '%s' not found", name);
    return NULL;
}

static int ms_key_create(ann_store *s, const ann_key_spec *spec, ann_key *out, ann_err *err)
{
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->mu);
    const ann_tenant *t = tenant_named(m, spec->tenant_name, err);
    int rc = t ? key_add(m, t, spec->name, spec->roles, spec->now_ns, spec->expire_ns,
                         spec->key_hash, out, err)
               : -1;
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int ms_key_list(ann_store *s, const char *tenant_name, ann_key_visit_fn visit, void *ud,
                       ann_err *err)
{
    memstore *m = (memstore *)s;
    ann_key v[64];
    size_t n = 0;
    pthread_mutex_lock(&m->mu);
    const ann_tenant *t = tenant_named(m, tenant_name, err);
    for (size_t i = 0; t && i < m->n_keys; i++)
        if (strcmp(m->keys[i].k.tenant_id, t->id) == 0)
            v[n++] = m->keys[i].k;
    pthread_mutex_unlock(&m->mu);
    if (!t)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (visit(&v[i], ud) != 0)
            break;
    return 0;
}

static int ms_key_revoke(ann_store *s, const char *key_id, int64_t now_ns, ann_key *out,
                         ann_err *err)
{
    memstore *m = (memstore *)s;
    int rc = ann_err_set(err, ANN_ENOTFOUND, "key %.64s not found", key_id);
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_keys; i++)
        if (strcmp(m->keys[i].k.id, key_id) == 0) {
            if (!m->keys[i].k.revoke_ns)
                m->keys[i].k.revoke_ns = now_ns > 0 ? now_ns : 1;
            if (out)
                *out = m->keys[i].k;
            ann_err_clear(err);
            rc = 0;
        }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int ms_log_create(ann_store *s, const char *tenant, const char *id, const uint8_t *labels,
                         size_t len, int64_t now, ann_err *err)
{
    memstore *m = (memstore *)s;
    if (m->n_logs == 256)
        return ann_err_set(err, ANN_ERANGE, "too many logs");
    mlog *l = ann_xcalloc(1, sizeof *l);
    snprintf(l->tenant, sizeof l->tenant, "%s", tenant);
    snprintf(l->id, sizeof l->id, "%s", id);
    l->create_time = now;
    l->labels = ann_xmalloc(len);
    if (len)
        memcpy(l->labels, labels, len);
    l->labels_len = len;
    pthread_mutex_lock(&m->mu);
    m->logs[m->n_logs++] = l;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int ms_log_get(ann_store *s, const char *tenant, const char *id, ann_log_meta *out,
                      ann_err *err)
{
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->mu);
    mlog *l = find(m, tenant, id, err);
    if (l) {
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%s", l->id);
        out->create_time_ns = l->create_time;
        out->entry_count = l->n;
        out->visible_count = l->n;
        out->labels = ann_xmalloc(l->labels_len);
        if (l->labels_len)
            memcpy(out->labels, l->labels, l->labels_len);
        out->labels_len = l->labels_len;
        out->legal_hold = l->hold;
        out->retention_days = l->retention_days;
        out->has_hold_change = l->has_change;
        if (l->has_change) {
            out->last_hold_change = l->change;
            out->last_hold_change.reason = l->change.reason ? strdup(l->change.reason) : NULL;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return l ? 0 : -1;
}

static void notify(memstore *m, mlog *l)
{
    pthread_mutex_lock(&m->watch_mu);
    for (struct ann_watch *w = l->watchers; w; w = w->next)
        w->fn(w->ud);
    pthread_mutex_unlock(&m->watch_mu);
}

static int ms_log_delete(ann_store *s, const char *tenant, const char *id, ann_err *err)
{
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->mu);
    mlog *l = find(m, tenant, id, err);
    if (l && l->hold) {
        ann_err_set(err, ANN_EPRECOND, "log_id: log %s is on legal hold", id);
        l = NULL;
    } else if (l)
        l->deleted = true;
    pthread_mutex_unlock(&m->mu);
    if (l)
        notify(m, l);
    return l ? 0 : -1;
}

/* ---- v4: retention and legal hold (the reference the contract suite compares with) ---- */

static int ms_log_create_spec(ann_store *s, const ann_log_spec *spec, ann_err *err)
{
    memstore *m = (memstore *)s;
    if (spec->retention_days < 0)
        return ann_err_set(err, ANN_EINVAL, "retention_days: must not be negative");
    if (ms_log_create(s, spec->tenant_id, spec->log_id, spec->labels, spec->labels_len,
                      spec->now_ns, err) != 0)
        return -1;
    pthread_mutex_lock(&m->mu);
    m->logs[m->n_logs - 1]->retention_days = spec->retention_days;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int ms_log_set_hold(ann_store *s, const char *tenant, const char *id, bool hold,
                           const char *actor, const char *reason, int64_t now_ns, ann_err *err)
{
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->mu);
    mlog *l = find(m, tenant, id, err);
    if (l) {
        l->hold = hold;
        l->has_change = true;
        free(l->change.reason);
        l->change.hold = hold;
        snprintf(l->change.actor, sizeof l->change.actor, "%s", actor);
        l->change.reason = reason && *reason ? strdup(reason) : NULL;
        l->change.time_ns = now_ns;
    }
    pthread_mutex_unlock(&m->mu);
    return l ? 0 : -1;
}

static int ms_tenant_set_retention(ann_store *s, const char *name, int32_t days, ann_err *err)
{
    memstore *m = (memstore *)s;
    if (days < 0)
        return ann_err_set(err, ANN_EINVAL, "days: must not be negative");
    pthread_mutex_lock(&m->mu);
    int rc = ann_err_set(err, ANN_ENOTFOUND, "tenant %s not found", name);
    for (size_t i = 0; i < m->n_tenants; i++)
        if (strcmp(m->tenants[i].name, name) == 0)
            m->tenant_days[i] = days, rc = 0;
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int ms_retention_pass(ann_store *s, int64_t now_ns, int64_t day_ns, size_t max_logs,
                             ann_retention_stats *out, ann_err *err)
{
    memstore *m = (memstore *)s;
    (void)err;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&m->mu);
    mlog *gone[256];
    size_t n_gone = 0;
    for (size_t i = 0; i < m->n_logs && out->examined < max_logs; i++) {
        mlog *l = m->logs[i];
        int32_t days = l->retention_days;
        for (size_t t = 0; days == 0 && t < m->n_tenants; t++)
            if (strcmp(m->tenants[t].id, l->tenant) == 0)
                days = m->tenant_days[t];
        if (l->deleted || l->hold || days <= 0)
            continue;
        int64_t last = l->create_time;
        if (l->n && l->v[l->n - 1].e.insert_time_ns > last)
            last = l->v[l->n - 1].e.insert_time_ns;
        if (last >= now_ns - (int64_t)days * day_ns)
            continue;
        out->examined++;
        l->deleted = true;
        gone[n_gone++] = l;
        out->deleted++;
    }
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < n_gone; i++)
        notify(m, gone[i]);
    return 0;
}

static int ms_append(ann_store *s, ann_append *req, ann_err *err)
{
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->mu);
    mlog *l = find(m, req->tenant_id, req->log_id, err);
    if (!l) {
        pthread_mutex_unlock(&m->mu);
        return -1;
    }
    req->n_new_out = 0;
    for (size_t i = 0; i < req->n; i++) {
        const ann_entry *in = &req->entries[i];
        uint64_t id = 0;
        for (size_t k = 0; k < l->n && !id; k++)
            if (l->v[k].e.insert_id_len == in->insert_id_len &&
                memcmp(l->v[k].insert_id, in->insert_id, in->insert_id_len) == 0)
                id = l->v[k].e.entry_id;
        if (!id) {
            if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 16;
                l->v = ann_xrealloc(l->v, l->cap * sizeof *l->v);
                for (size_t k = 0; k < l->n; k++) /* the records moved with the entries */
                    if (l->v[k].e.revocation)
                        l->v[k].e.revocation = &l->v[k].rev;
            }
            mentry *me = &l->v[l->n];
            me->actor = me->reason = NULL;
            me->e = *in;
            me->e.revocation = NULL;
            me->e.flags = 0;
            me->e.entry_id = id = ++l->n;
            me->insert_id = ann_xmalloc(in->insert_id_len + 1);
            memcpy(me->insert_id, in->insert_id, in->insert_id_len);
            me->e.insert_id = me->insert_id;
            me->body = ann_xmalloc(in->body_len);
            if (in->body_len)
                memcpy(me->body, in->body, in->body_len);
            me->e.body = me->body;
            req->n_new_out++;
        }
        req->ids_out[i] = id;
    }
    req->ids_known = true; /* every wait level at once */
    pthread_mutex_unlock(&m->mu);
    notify(m, l);
    return 0;
}

static int ms_revoke(ann_store *s, const char *tenant, const char *id, const uint64_t *ids,
                     size_t n, const char *actor, const char *reason, int64_t now, ann_err *err)
{
    memstore *m = (memstore *)s;
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    mlog *l = find(m, tenant, id, err);
    if (!l)
        goto done;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == 0 || ids[i] > l->n) {
            ann_err_set(err, ANN_ENOTFOUND, "entry_ids[%zu]: entry %llu not found", i,
                        (unsigned long long)ids[i]);
            goto done;
        }
    for (size_t i = 0; i < n; i++) {
        mentry *me = &l->v[ids[i] - 1];
        if (!(me->e.flags & ANN_ENTRY_REDACTED)) {
            me->actor = strdup(actor ? actor : "");
            me->reason = strdup(reason ? reason : "");
            me->rev = (ann_revocation){me->actor, me->reason, now};
            me->e.revocation = &me->rev;
        }
        me->e.flags |= ANN_ENTRY_REDACTED;
        me->e.body_len = 0;
    }
    rc = 0;
done:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int cmp_entry(const void *a, const void *b)
{
    const ann_entry *x = *(const ann_entry *const *)a, *y = *(const ann_entry *const *)b;
    if (x->time_ns != y->time_ns)
        return x->time_ns < y->time_ns ? -1 : 1;
    return x->entry_id < y->entry_id ? -1 : x->entry_id > y->entry_id;
}

static int ms_list(ann_store *s, const char *tenant, const char *id, const ann_list_query *q,
                   ann_entry_visit_fn visit, void *ud, ann_list_result *res, ann_err *err)
{
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->mu);
    mlog *l = find(m, tenant, id, err);
    if (!l) {
        pthread_mutex_unlock(&m->mu);
        return -1;
    }
    const ann_entry **v = ann_xcalloc(l->n, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++)
        v[k++] = &l->v[i].e;
    qsort(v, k, sizeof *v, cmp_entry);
    size_t listed = 0;
    uint64_t examined = 0;
    for (size_t i = 0; i < k && listed < q->limit; i++) {
        const ann_entry *e = v[i];
        if (e->time_ns < q->start_ns || e->time_ns >= q->end_ns)
            continue;
        if (q->max_id && e->entry_id > q->max_id)
            continue;
        if (q->has_cursor && (e->time_ns < q->cursor_time_ns ||
                              (e->time_ns == q->cursor_time_ns && e->entry_id <= q->cursor_id)))
            continue;
        if (q->budget && examined == q->budget) {
            res->budget_hit = true;
            break;
        }
        examined++;
        res->last_time_ns = e->time_ns;
        res->last_id = e->entry_id;
        if (q->filter && !q->filter(e, q->filter_ud))
            continue;
        listed++;
        if (visit(e, ud))
            break;
    }
    free(v);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int ms_read_after(ann_store *s, const char *tenant, const char *id, uint64_t after,
                         size_t limit, ann_entry_visit_fn visit, void *ud, ann_err *err)
{
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->mu);
    mlog *l = find(m, tenant, id, err);
    if (l)
        for (uint64_t i = after; i < l->n && (limit == 0 || i - after < limit); i++)
            if (visit(&l->v[i].e, ud))
                break;
    pthread_mutex_unlock(&m->mu);
    return l ? 0 : -1;
}

static int ms_watch(ann_store *s, const char *tenant, const char *id, ann_watch_fn fn, void *ud,
                    ann_watch **out, ann_err *err)
{
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->mu);
    mlog *l = find(m, tenant, id, err);
    pthread_mutex_unlock(&m->mu);
    if (!l)
        return -1;
    ann_watch *w = ann_xcalloc(1, sizeof *w);
    w->fn = fn, w->ud = ud, w->log = l;
    pthread_mutex_lock(&m->watch_mu);
    w->next = l->watchers;
    l->watchers = w;
    pthread_mutex_unlock(&m->watch_mu);
    *out = w;
    return 0;
}

static void ms_unwatch(ann_store *s, ann_watch *w)
{
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->watch_mu);
    for (ann_watch **p = &w->log->watchers; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&m->watch_mu);
    free(w);
}

static int log_cmp(const void *a, const void *b)
{
    const mlog *x = *(const mlog *const *)a, *y = *(const mlog *const *)b;
    if (x->create_time != y->create_time)
        return x->create_time > y->create_time ? -1 : 1; /* newest first */
    return strcmp(x->id, y->id);
}

static int ms_logs_list(ann_store *s, const char *tenant, const ann_logs_query *q,
                        ann_log_visit_fn visit, void *ud, ann_err *err)
{
    (void)err;
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->mu);
    mlog **v = ann_xcalloc(m->n_logs + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < m->n_logs; i++) {
        mlog *l = m->logs[i];
        if (l->deleted || strcmp(l->tenant, tenant) != 0 || l->create_time < q->start_ns ||
            l->create_time >= q->end_ns ||
            !ann_labels_match(l->labels, l->labels_len, 2, q->labels, q->n_labels))
            continue;
        if (q->has_cursor &&
            (l->create_time > q->cursor_create_ns ||
             (l->create_time == q->cursor_create_ns && strcmp(l->id, q->cursor_id) <= 0)))
            continue;
        v[k++] = l;
    }
    qsort(v, k, sizeof *v, log_cmp);
    for (size_t i = 0; i < k && i < q->limit; i++) {
        ann_log_meta meta = {.create_time_ns = v[i]->create_time,
                             .entry_count = v[i]->n,
                             .visible_count = v[i]->n,
                             .labels = v[i]->labels,
                             .labels_len = v[i]->labels_len};
        memcpy(meta.id, v[i]->id, sizeof meta.id);
        if (visit(&meta, ud))
            break;
    }
    free(v);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

typedef struct hit {
    const mlog *l;
    const ann_entry *e;
} hit;

static int pos_cmp(int64_t t1, const char *l1, uint64_t i1, int64_t t2, const char *l2, uint64_t i2)
{
    if (t1 != t2)
        return t1 < t2 ? -1 : 1;
    int c = strcmp(l1, l2);
    if (c)
        return c < 0 ? -1 : 1;
    return i1 < i2 ? -1 : i1 > i2;
}

static int hit_cmp(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    return pos_cmp(x->e->time_ns, x->l->id, x->e->entry_id, y->e->time_ns, y->l->id,
                   y->e->entry_id);
}

/* The reference search: every candidate entry in (time, log, id) order, each one examined
 * counting against the budget. */
static int ms_search(ann_store *s, const char *tenant, const ann_search_query *q,
                     ann_hit_visit_fn visit, void *ud, ann_search_result *res, ann_err *err)
{
    (void)err;
    memstore *m = (memstore *)s;
    pthread_mutex_lock(&m->mu);
    size_t total = 0;
    for (size_t i = 0; i < m->n_logs; i++)
        total += m->logs[i]->n;
    hit *v = ann_xcalloc(total + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < m->n_logs; i++) {
        mlog *l = m->logs[i];
        if (l->deleted || strcmp(l->tenant, tenant) != 0 ||
            !ann_labels_match(l->labels, l->labels_len, 2, q->labels, q->n_labels))
            continue;
        if (q->n_log_ids) {
            bool named = false;
            for (size_t j = 0; j < q->n_log_ids && !named; j++)
                named = strcmp(q->log_ids[j], l->id) == 0;
            if (!named)
                continue;
        }
        for (size_t j = 0; j < l->n; j++) {
            const ann_entry *e = &l->v[j].e;
            if (e->time_ns < q->start_ns || e->time_ns >= q->end_ns ||
                e->insert_time_ns > q->snapshot_ns)
                continue;
            if (q->has_cursor && pos_cmp(e->time_ns, l->id, e->entry_id, q->cursor.time_ns,
                                         q->cursor.log_id, q->cursor.entry_id) <= 0)
                continue;
            v[k++] = (hit){l, e};
        }
    }
    qsort(v, k, sizeof *v, hit_cmp);
    size_t found = 0;
    if (q->has_cursor)
        res->resume = q->cursor;
    else
        res->resume = (ann_search_pos){.time_ns = INT64_MIN};
    for (size_t i = 0; i < k; i++) {
        const ann_entry *e = v[i].e;
        if (res->examined == q->budget || found == q->limit) {
            res->more = true;
            break;
        }
        res->examined++;
        if (!(e->flags & ANN_ENTRY_REDACTED) && ann_body_matches(q->match, e->body, e->body_len)) {
            if (visit(v[i].l->id, e, ud)) {
                res->more = true;
                break;
            }
            found++;
        }
        res->resume.time_ns = e->time_ns;
        memcpy(res->resume.log_id, v[i].l->id, sizeof res->resume.log_id);
        res->resume.entry_id = e->entry_id;
    }
    free(v);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static const ann_store_ops memstore_ops = {
    .version = 4, /* the v2 fields (the commands stay synchronous), keys, retention, holds */
    .name = "memory (tests only)",
    .log_create_spec = ms_log_create_spec,
    .log_set_hold = ms_log_set_hold,
    .tenant_set_retention = ms_tenant_set_retention,
    .retention_pass = ms_retention_pass,
    .close = ms_close,
    .secret = ms_secret,
    .tenant_create = ms_tenant_create,
    .tenant_by_key = ms_tenant_by_key,
    .key_create = ms_key_create,
    .key_list = ms_key_list,
    .key_revoke = ms_key_revoke,
    .log_create = ms_log_create,
    .log_get = ms_log_get,
    .log_delete = ms_log_delete,
    .append = ms_append,
    .revoke = ms_revoke,
    .list = ms_list,
    .logs_list = ms_logs_list,
    .search = ms_search,
    .read_after = ms_read_after,
    .watch = ms_watch,
    .unwatch = ms_unwatch,
};

ann_store *ann_memstore_new(void)
{
    memstore *m = ann_xcalloc(1, sizeof *m);
    m->base.ops = &memstore_ops;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->watch_mu, NULL);
    return &m->base;
}
