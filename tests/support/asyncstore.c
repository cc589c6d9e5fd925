#include "asyncstore.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"

#define MAX_THREADS 256

typedef struct fake {
    ann_store base;
    ann_store *inner;
    unsigned delay_ms;
    uint64_t hidden; /* log_get reports visible_count = entry_count - hidden */
    pthread_mutex_t mu;
    pthread_t th[MAX_THREADS];
    size_t nth;
    int async_calls; /* async ops started */
    bool held;       /* completions wait until released (ann_asyncstore_hold) */
    pthread_cond_t cv;
} fake;

static ann_store *in(ann_store *s)
{
    return ((fake *)s)->inner;
}

/* ---- delegation of the ops both fakes share ---- */

static void f_close(ann_store *s)
{
    fake *f = (fake *)s;
    for (size_t i = 0; i < f->nth; i++)
        pthread_join(f->th[i], NULL);
    ann_store_close(f->inner);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

static int f_secret(ann_store *s, uint8_t out[32], ann_err *err)
{
    return ann_store_secret(in(s), out, err);
}

static int f_tenant_create(ann_store *s, const char *name, const uint8_t h[32], ann_tenant *out,
                           ann_err *err)
{
    return ann_store_tenant_create(in(s), name, h, out, err);
}

static int f_tenant_by_key(ann_store *s, const uint8_t h[32], ann_tenant *out, ann_err *err)
{
    return ann_store_tenant_by_key(in(s), h, out, err);
}

static int f_log_get(ann_store *s, const char *t, const char *l, ann_log_meta *out, ann_err *err)
{
    fake *f = (fake *)s;
    int rc = ann_store_log_get(f->inner, t, l, out, err);
    pthread_mutex_lock(&f->mu);
    uint64_t hidden = f->hidden;
    pthread_mutex_unlock(&f->mu);
    if (rc == 0)
        out->visible_count = out->entry_count > hidden ? out->entry_count - hidden : 0;
    return rc;
}

static int f_log_get_v1(ann_store *s, const char *t, const char *l, ann_log_meta *out, ann_err *err)
{
    int rc = ann_store_log_get(in(s), t, l, out, err);
    if (rc == 0)
        out->visible_count = 0; /* a version-1 backend knows nothing of it */
    return rc;
}

static int f_list(ann_store *s, const char *t, const char *l, const ann_list_query *q,
                  ann_entry_visit_fn v, void *ud, ann_list_result *res, ann_err *err)
{
    return ann_store_list(in(s), t, l, q, v, ud, res, err);
}

static int f_logs_list(ann_store *s, const char *t, const ann_logs_query *q, ann_log_visit_fn v,
                       void *ud, ann_err *err)
{
    return ann_store_logs_list(in(s), t, q, v, ud, err);
}

static int f_search(ann_store *s, const char *t, const ann_search_query *q, ann_hit_visit_fn v,
                    void *ud, ann_search_result *res, ann_err *err)
{
    return ann_store_search(in(s), t, q, v, ud, res, err);
}

static int f_read_after(ann_store *s, const char *t, const char *l, uint64_t after, size_t limit,
                        ann_entry_visit_fn v, void *ud, ann_err *err)
{
    return ann_store_read_after(in(s), t, l, after, limit, v, ud, err);
}

static int f_watch(ann_store *s, const char *t, const char *l, ann_watch_fn fn, void *ud,
                   ann_watch **out, ann_err *err)
{
    return ann_store_watch(in(s), t, l, fn, ud, out, err);
}

static void f_unwatch(ann_store *s, ann_watch *w)
{
    ann_store_unwatch(in(s), w);
}

/* ---- the v1 fake: synchronous commands ---- */

static int f_log_create(ann_store *s, const char *t, const char *l, const uint8_t *labels, size_t n,
                        int64_t now, ann_err *err)
{
    return ann_store_log_create(in(s), t, l, labels, n, now, err);
}

static int f_log_delete(ann_store *s, const char *t, const char *l, ann_err *err)
{
    return ann_store_log_delete(in(s), t, l, err);
}

static int f_append(ann_store *s, ann_append *req, ann_err *err)
{
    return ann_store_append(in(s), req, err);
}

static int f_revoke(ann_store *s, const char *t, const char *l, const uint64_t *ids, size_t n,
                    const char *actor, const char *reason, int64_t now, ann_err *err)
{
    return ann_store_revoke(in(s), t, l, ids, n, actor, reason, now, err);
}

static const ann_store_ops v1_ops = {
    .version = 1,
    .name = "fake-v1",
    .close = f_close,
    .secret = f_secret,
    .tenant_create = f_tenant_create,
    .tenant_by_key = f_tenant_by_key,
    .log_create = f_log_create,
    .log_get = f_log_get_v1,
    .log_delete = f_log_delete,
    .append = f_append,
    .revoke = f_revoke,
    .list = f_list,
    .logs_list = f_logs_list,
    .search = f_search,
    .read_after = f_read_after,
    .watch = f_watch,
    .unwatch = f_unwatch,
    /* What a version-1 table cannot have: the wrappers must not look at it. */
    .append_async = (void (*)(ann_store *, ann_append *, ann_done_fn, void *))abort,
};

/* ---- the async fake: each command completes on a thread of its own ---- */

typedef enum { J_APPEND, J_REVOKE, J_DELETE, J_CREATE } job_kind;

typedef struct job {
    fake *f;
    job_kind kind;
    ann_done_fn done;
    void *ud;
    ann_append *req;
    const char *tenant, *log;
    const uint64_t *ids;
    size_t n;
    const char *actor, *reason;
    const uint8_t *labels;
    int64_t now;
} job;

static void *job_main(void *p)
{
    job *j = p;
    ann_err err = {0};
    int rc = -1;
    if (j->f->delay_ms) {
        struct timespec ts = {j->f->delay_ms / 1000, (long)(j->f->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&j->f->mu);
    while (j->f->held)
        pthread_cond_wait(&j->f->cv, &j->f->mu);
    pthread_mutex_unlock(&j->f->mu);
    switch (j->kind) {
    case J_APPEND:
        if (j->req->wait == ANN_WAIT_DURABLE) {
            /* Durable before sequencing: stored, but answered without ids. */
            uint64_t *ids = ann_xcalloc(j->req->n ? j->req->n : 1, sizeof *ids);
            ann_append a = *j->req;
            a.ids_out = ids;
            rc = ann_store_append(j->f->inner, &a, &err);
            free(ids);
            j->req->n_new_out = 0;
            j->req->ids_known = false;
        } else {
            rc = ann_store_append(j->f->inner, j->req, &err);
            j->req->ids_known = rc == 0;
        }
        break;
    case J_REVOKE:
        rc = ann_store_revoke(j->f->inner, j->tenant, j->log, j->ids, j->n, j->actor, j->reason,
                              j->now, &err);
        break;
    case J_DELETE:
        rc = ann_store_log_delete(j->f->inner, j->tenant, j->log, &err);
        break;
    case J_CREATE:
        rc = ann_store_log_create(j->f->inner, j->tenant, j->log, j->labels, j->n, j->now, &err);
        break;
    }
    ann_done_fn done = j->done;
    void *ud = j->ud;
    free(j);
    done(ud, rc, rc == 0 ? NULL : &err);
    return NULL;
}

static void start_job(fake *f, job *j)
{
    j->f = f;
    pthread_mutex_lock(&f->mu);
    f->async_calls++;
    if (f->nth == MAX_THREADS) { /* join the oldest half: they are done or nearly */
        for (size_t i = 0; i < MAX_THREADS / 2; i++)
            pthread_join(f->th[i], NULL);
        memmove(f->th, f->th + MAX_THREADS / 2, (MAX_THREADS / 2) * sizeof *f->th);
        f->nth = MAX_THREADS / 2;
    }
    pthread_create(&f->th[f->nth++], NULL, job_main, j);
    pthread_mutex_unlock(&f->mu);
}

static void fa_append(ann_store *s, ann_append *req, ann_done_fn done, void *ud)
{
    job *j = ann_xcalloc(1, sizeof *j);
    *j = (job){.kind = J_APPEND, .done = done, .ud = ud, .req = req};
    start_job((fake *)s, j);
}

static void fa_revoke(ann_store *s, const char *t, const char *l, const uint64_t *ids, size_t n,
                      const char *actor, const char *reason, int64_t now, ann_done_fn done,
                      void *ud)
{
    job *j = ann_xcalloc(1, sizeof *j);
    *j = (job){.kind = J_REVOKE,
               .done = done,
               .ud = ud,
               .tenant = t,
               .log = l,
               .ids = ids,
               .n = n,
               .actor = actor,
               .reason = reason,
               .now = now};
    start_job((fake *)s, j);
}

static void fa_delete(ann_store *s, const char *t, const char *l, ann_done_fn done, void *ud)
{
    job *j = ann_xcalloc(1, sizeof *j);
    *j = (job){.kind = J_DELETE, .done = done, .ud = ud, .tenant = t, .log = l};
    start_job((fake *)s, j);
}

static void fa_create(ann_store *s, const char *t, const char *l, const uint8_t *labels, size_t n,
                      int64_t now, ann_done_fn done, void *ud)
{
    job *j = ann_xcalloc(1, sizeof *j);
    *j = (job){.kind = J_CREATE,
               .done = done,
               .ud = ud,
               .tenant = t,
               .log = l,
               .labels = labels,
               .n = n,
               .now = now};
    start_job((fake *)s, j);
}

static const ann_store_ops async_ops = {
    .version = 2,
    .name = "fake-async",
    .close = f_close,
    .secret = f_secret,
    .tenant_create = f_tenant_create,
    .tenant_by_key = f_tenant_by_key,
    .log_get = f_log_get,
    .list = f_list,
    .logs_list = f_logs_list,
    .search = f_search,
    .read_after = f_read_after,
    .watch = f_watch,
    .unwatch = f_unwatch,
    .append_async = fa_append,
    .revoke_async = fa_revoke,
    .log_delete_async = fa_delete,
    .log_create_async = fa_create,
};

ann_store *ann_asyncstore_new(ann_store *inner, bool v1, unsigned delay_ms)
{
    fake *f = ann_xcalloc(1, sizeof *f);
    f->base.ops = v1 ? &v1_ops : &async_ops;
    f->inner = inner;
    f->delay_ms = delay_ms;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    return &f->base;
}

int ann_asyncstore_calls(ann_store *s)
{
    fake *f = (fake *)s;
    pthread_mutex_lock(&f->mu);
    int n = f->async_calls;
    pthread_mutex_unlock(&f->mu);
    return n;
}

void ann_asyncstore_set_hidden(ann_store *s, uint64_t hidden)
{
    fake *f = (fake *)s;
    pthread_mutex_lock(&f->mu);
    f->hidden = hidden;
    pthread_mutex_unlock(&f->mu);
}

void ann_asyncstore_hold(ann_store *s, bool held)
{
    fake *f = (fake *)s;
    pthread_mutex_lock(&f->mu);
    f->held = held;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}
