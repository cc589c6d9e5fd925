/*
 * The storage port's version 2: the wrappers adapt both ways between synchronous and
 * asynchronous commands, and the API layer works over a backend whose commands complete
 * on another thread (WriteLogEntriesRequest.wait, ids not yet known, visible_count below
 * entry_count). Two tiny fakes wrap the memory double:
 *  - v1: a version-1 table with the synchronous commands only (and no visible_count);
 *  - async: a version-2 table whose commands are asynchronous only, each completed by a
 *    thread of its own (joined at close); DURABLE appends answer without ids.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "api/service.h"
#include "memstore.h"
#include "wire.pb-c.h"

#define MAX_THREADS 256

typedef struct fake {
    ann_store base;
    ann_store *inner;
    uint64_t hidden; /* log_get reports visible_count = entry_count - hidden */
    pthread_mutex_t mu;
    pthread_t th[MAX_THREADS];
    size_t nth;
    int async_calls; /* async ops started */
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
    if (rc == 0)
        out->visible_count = out->entry_count > f->hidden ? out->entry_count - f->hidden : 0;
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
    switch (j->kind) {
    case J_APPEND:
        if (j->req->wait == ANN_WAIT_DURABLE) {
            /* Durable before sequencing: stored, but answered without ids. */
            uint64_t *ids = calloc(j->req->n ? j->req->n : 1, sizeof *ids);
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
    assert_true(f->nth < MAX_THREADS);
    pthread_create(&f->th[f->nth++], NULL, job_main, j);
    pthread_mutex_unlock(&f->mu);
}

static void fa_append(ann_store *s, ann_append *req, ann_done_fn done, void *ud)
{
    job *j = calloc(1, sizeof *j);
    *j = (job){.kind = J_APPEND, .done = done, .ud = ud, .req = req};
    start_job((fake *)s, j);
}

static void fa_revoke(ann_store *s, const char *t, const char *l, const uint64_t *ids, size_t n,
                      const char *actor, const char *reason, int64_t now, ann_done_fn done,
                      void *ud)
{
    job *j = calloc(1, sizeof *j);
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
    job *j = calloc(1, sizeof *j);
    *j = (job){.kind = J_DELETE, .done = done, .ud = ud, .tenant = t, .log = l};
    start_job((fake *)s, j);
}

static void fa_create(ann_store *s, const char *t, const char *l, const uint8_t *labels, size_t n,
                      int64_t now, ann_done_fn done, void *ud)
{
    job *j = calloc(1, sizeof *j);
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

static fake *fake_new(const ann_store_ops *ops)
{
    fake *f = calloc(1, sizeof *f);
    f->base.ops = ops;
    f->inner = ann_memstore_new();
    pthread_mutex_init(&f->mu, NULL);
    return f;
}

/* ---- fixtures ---- */

typedef struct fx {
    fake *f;
    ann_store *s;
    ann_tenant t;
} fx;

static int setup_with(void **state, const ann_store_ops *ops)
{
    fx *x = calloc(1, sizeof *x);
    uint8_t h[32];
    ann_err err;
    x->f = fake_new(ops);
    x->s = &x->f->base;
    SHA256((const unsigned char *)"key", 3, h);
    assert_int_equal(ann_store_tenant_create(x->s, "t", h, &x->t, &err), 0);
    *state = x;
    return 0;
}

static int setup_v1(void **state)
{
    return setup_with(state, &v1_ops);
}

static int setup_async(void **state)
{
    return setup_with(state, &async_ops);
}

static int teardown(void **state)
{
    fx *x = *state;
    ann_store_close(x->s);
    free(x);
    return 0;
}

#define LOG1 "00000000-0000-4000-8000-000000000001"
#define LOG2 "00000000-0000-4000-8000-000000000002"

/* A completion that records its outcome, waitable from the test's thread. */
typedef struct outcome {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    int rc;
    ann_err err;
} outcome;

static void outcome_init(outcome *o)
{
    memset(o, 0, sizeof *o);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
}

static void on_done(void *ud, int rc, const ann_err *err)
{
    outcome *o = ud;
    pthread_mutex_lock(&o->mu);
    o->calls++;
    o->rc = rc;
    if (rc != 0)
        o->err = *err;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void outcome_wait(outcome *o)
{
    pthread_mutex_lock(&o->mu);
    while (o->calls == 0)
        pthread_cond_wait(&o->cv, &o->mu);
    pthread_mutex_unlock(&o->mu);
}

static void outcome_destroy(outcome *o)
{
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
}

static void entries3(ann_entry e[3])
{
    static const char *iid[3] = {"a", "b", "c"};
    memset(e, 0, 3 * sizeof *e);
    for (int i = 0; i < 3; i++) {
        e[i].time_ns = 1000 + i;
        e[i].insert_time_ns = 1000 + i;
        e[i].insert_id = iid[i];
        e[i].insert_id_len = 1;
    }
}

/* ---- async wrappers over a version-1 (synchronous) backend ---- */

static void v1_async_runs_sync_inline(void **state)
{
    fx *x = *state;
    outcome o;
    outcome_init(&o);
    ann_store_log_create_async(x->s, x->t.id, LOG1, NULL, 0, 1, on_done, &o);
    assert_int_equal(o.calls, 1); /* before the wrapper returned */
    assert_int_equal(o.rc, 0);

    ann_entry e[3];
    uint64_t ids[3] = {0};
    entries3(e);
    ann_append a = {.tenant_id = x->t.id,
                    .log_id = LOG1,
                    .entries = e,
                    .n = 3,
                    .wait = ANN_WAIT_DURABLE,
                    .ids_out = ids};
    ann_store_append_async(x->s, &a, on_done, &o);
    assert_int_equal(o.calls, 2);
    assert_int_equal(o.rc, 0);
    assert_true(a.ids_known);
    assert_int_equal(a.n_new_out, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[2], 3);

    /* visible_count: filled by the wrapper for a version-1 backend */
    ann_log_meta m = {0};
    ann_err err;
    assert_int_equal(ann_store_log_get(x->s, x->t.id, LOG1, &m, &err), 0);
    assert_int_equal(m.entry_count, 3);
    assert_int_equal(m.visible_count, 3);
    ann_log_meta_release(&m);

    uint64_t rid = 2;
    ann_store_revoke_async(x->s, x->t.id, LOG1, &rid, 1, "me", "why", 5, on_done, &o);
    assert_int_equal(o.calls, 3);
    assert_int_equal(o.rc, 0);
    rid = 9; /* above entry_count: the error travels through done */
    ann_store_revoke_async(x->s, x->t.id, LOG1, &rid, 1, "me", "why", 5, on_done, &o);
    assert_int_equal(o.calls, 4);
    assert_int_equal(o.rc, -1);
    assert_int_equal(o.err.code, ANN_ENOTFOUND);

    ann_store_log_delete_async(x->s, x->t.id, LOG1, on_done, &o);
    assert_int_equal(o.calls, 5);
    assert_int_equal(o.rc, 0);
    ann_store_append_async(x->s, &a, on_done, &o);
    assert_int_equal(o.calls, 6);
    assert_int_equal(o.rc, -1);
    assert_int_equal(o.err.code, ANN_ENOTFOUND);
    assert_false(a.ids_known);
    outcome_destroy(&o);
}

/* ---- sync wrappers over an async-only backend ---- */

static void async_sync_wrappers_wait(void **state)
{
    fx *x = *state;
    ann_err err = {0};
    assert_int_equal(ann_store_log_create(x->s, x->t.id, LOG1, NULL, 0, 1, &err), 0);
    assert_int_equal(x->f->async_calls, 1);

    ann_entry e[3];
    uint64_t ids[3] = {0};
    entries3(e);
    ann_append a = {.tenant_id = x->t.id, .log_id = LOG1, .entries = e, .n = 3, .ids_out = ids};
    assert_int_equal(ann_store_append(x->s, &a, &err), 0);
    assert_true(a.ids_known);
    assert_int_equal(a.n_new_out, 3);
    assert_int_equal(ids[1], 2);

    /* DURABLE on this backend: no ids, ids_out untouched. */
    uint64_t ids2[3] = {7, 7, 7};
    e[0].insert_id = "d";
    e[1].insert_id = "e";
    e[2].insert_id = "f";
    ann_append d = {.tenant_id = x->t.id,
                    .log_id = LOG1,
                    .entries = e,
                    .n = 3,
                    .wait = ANN_WAIT_DURABLE,
                    .ids_out = ids2};
    assert_int_equal(ann_store_append(x->s, &d, &err), 0);
    assert_false(d.ids_known);
    assert_int_equal(d.n_new_out, 0);
    assert_int_equal(ids2[0], 7);

    uint64_t rid = 99;
    assert_int_equal(ann_store_revoke(x->s, x->t.id, LOG1, &rid, 1, "me", "why", 5, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "99"));
    rid = 1;
    assert_int_equal(ann_store_revoke(x->s, x->t.id, LOG1, &rid, 1, "me", "why", 5, &err), 0);

    assert_int_equal(ann_store_log_delete(x->s, x->t.id, LOG1, &err), 0);
    assert_int_equal(ann_store_log_delete(x->s, x->t.id, LOG1, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    assert_int_equal(x->f->async_calls, 7);
}

static void async_wrappers_pass_through(void **state)
{
    fx *x = *state;
    outcome o;
    outcome_init(&o);
    ann_store_log_create_async(x->s, x->t.id, LOG2, NULL, 0, 1, on_done, &o);
    outcome_wait(&o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(x->f->async_calls, 1);
    outcome_destroy(&o);
}

/* ---- the API over the async backend ---- */

#define BINZ(s) ((ProtobufCBinaryData){strlen(s), (uint8_t *)(s)})

static int unary(ann_service *svc, const ann_tenant *t, ann_rpc rpc, const ProtobufCMessage *m,
                 ann_buf *resp, ann_err *err)
{
    ann_buf req = ANN_BUF_INIT;
    ann_buf_reserve(&req, protobuf_c_message_get_packed_size(m));
    req.len = protobuf_c_message_pack(m, req.data);
    resp->len = 0;
    int rc = ann_service_unary(svc, rpc, t, req.data, req.len, resp, err);
    ann_buf_release(&req);
    return rc;
}

static size_t write_n(ann_service *svc, const ann_tenant *t, const char *log, int32_t wait,
                      size_t n, int *rc, ann_err *err)
{
    Annals__Wire__V1__LogEntry e[4], *ep[4];
    for (size_t i = 0; i < n; i++) {
        annals__wire__v1__log_entry__init(&e[i]);
        e[i].payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
        e[i].text_payload = BINZ("hello");
        ep[i] = &e[i];
    }
    Annals__Wire__V1__WriteLogEntriesRequest w = ANNALS__WIRE__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    w.log_id = BINZ((char *)log);
    w.n_entries = n;
    w.entries = ep;
    w.wait = wait;
    ann_buf resp = ANN_BUF_INIT;
    *rc = unary(svc, t, ANN_RPC_WRITE, &w.base, &resp, err);
    size_t ids = 0;
    if (*rc == 0) {
        Annals__Wire__V1__WriteLogEntriesResponse *r =
            annals__wire__v1__write_log_entries_response__unpack(NULL, resp.len, resp.data);
        assert_non_null(r);
        ids = r->n_entry_ids;
        annals__wire__v1__write_log_entries_response__free_unpacked(r, NULL);
    }
    ann_buf_release(&resp);
    return ids;
}

static size_t list_count(ann_service *svc, const ann_tenant *t, const char *log)
{
    Annals__Wire__V1__ListLogEntriesRequest l = ANNALS__WIRE__V1__LIST_LOG_ENTRIES_REQUEST__INIT;
    l.log_id = BINZ((char *)log);
    ann_buf resp = ANN_BUF_INIT;
    ann_err err;
    assert_int_equal(unary(svc, t, ANN_RPC_LIST, &l.base, &resp, &err), 0);
    Annals__Wire__V1__ListLogEntriesResponse *r =
        annals__wire__v1__list_log_entries_response__unpack(NULL, resp.len, resp.data);
    assert_non_null(r);
    size_t n = r->n_entries;
    annals__wire__v1__list_log_entries_response__free_unpacked(r, NULL);
    ann_buf_release(&resp);
    return n;
}

static size_t read_count(ann_service *svc, const ann_tenant *t, const char *log)
{
    Annals__Wire__V1__ReadLogEntriesRequest l = ANNALS__WIRE__V1__READ_LOG_ENTRIES_REQUEST__INIT;
    l.log_id = BINZ((char *)log);
    ann_buf resp = ANN_BUF_INIT;
    ann_err err;
    assert_int_equal(unary(svc, t, ANN_RPC_READ, &l.base, &resp, &err), 0);
    Annals__Wire__V1__ReadLogEntriesResponse *r =
        annals__wire__v1__read_log_entries_response__unpack(NULL, resp.len, resp.data);
    assert_non_null(r);
    size_t n = r->n_entries;
    annals__wire__v1__read_log_entries_response__free_unpacked(r, NULL);
    ann_buf_release(&resp);
    return n;
}

static void service_over_async_backend(void **state)
{
    fx *x = *state;
    ann_service svc;
    ann_err err = {0};
    assert_int_equal(ann_service_init(&svc, x->s, &err), 0);
    assert_int_equal(svc.default_wait, ANN_WAIT_QUERYABLE);

    Annals__Wire__V1__CreateLogRequest c = ANNALS__WIRE__V1__CREATE_LOG_REQUEST__INIT;
    ann_buf resp = ANN_BUF_INIT;
    assert_int_equal(unary(&svc, &x->t, ANN_RPC_CREATE_LOG, &c.base, &resp, &err), 0);
    Annals__Wire__V1__CreateLogResponse *cr =
        annals__wire__v1__create_log_response__unpack(NULL, resp.len, resp.data);
    assert_non_null(cr);
    char log[ANN_UUID_LEN + 1];
    memcpy(log, cr->log->id.data, ANN_UUID_LEN);
    log[ANN_UUID_LEN] = '\0';
    annals__wire__v1__create_log_response__free_unpacked(cr, NULL);

    int rc;
    assert_int_equal(write_n(&svc, &x->t, log, 0, 2, &rc, &err), 2); /* default: queryable */
    assert_int_equal(rc, 0);
    assert_int_equal(write_n(&svc, &x->t, log, 2, 1, &rc, &err), 1); /* sequenced */
    assert_int_equal(write_n(&svc, &x->t, log, 1, 1, &rc, &err), 0); /* durable: no ids */
    assert_int_equal(rc, 0);
    svc.default_wait = ANN_WAIT_DURABLE; /* UNSPECIFIED follows the server's default */
    assert_int_equal(write_n(&svc, &x->t, log, 0, 1, &rc, &err), 0);
    assert_int_equal(rc, 0);
    svc.default_wait = ANN_WAIT_QUERYABLE;

    /* An unknown wait: INVALID_ARGUMENT naming it, and nothing stored. */
    int before = x->f->async_calls;
    assert_int_equal(write_n(&svc, &x->t, log, 7, 1, &rc, &err), 0);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "wait"));
    assert_int_equal(x->f->async_calls, before);
    write_n(&svc, &x->t, log, -1, 1, &rc, &err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err.msg, "wait"));

    /* Reads stop at visible_count; GetLog reports entry_count. */
    assert_int_equal(list_count(&svc, &x->t, log), 5);
    assert_int_equal(read_count(&svc, &x->t, log), 5);
    x->f->hidden = 2;
    assert_int_equal(list_count(&svc, &x->t, log), 3);
    assert_int_equal(read_count(&svc, &x->t, log), 3);
    Annals__Wire__V1__GetLogRequest g = ANNALS__WIRE__V1__GET_LOG_REQUEST__INIT;
    g.log_id = BINZ(log);
    assert_int_equal(unary(&svc, &x->t, ANN_RPC_GET_LOG, &g.base, &resp, &err), 0);
    Annals__Wire__V1__GetLogResponse *gr =
        annals__wire__v1__get_log_response__unpack(NULL, resp.len, resp.data);
    assert_non_null(gr);
    assert_int_equal(gr->log->entry_count, 5);
    annals__wire__v1__get_log_response__free_unpacked(gr, NULL);
    x->f->hidden = 0;

    /* Revoke and delete complete through the async ops too; errors come back. */
    Annals__Wire__V1__RevokeLogEntriesRequest rv =
        ANNALS__WIRE__V1__REVOKE_LOG_ENTRIES_REQUEST__INIT;
    ProtobufCBinaryData rid = BINZ("9");
    rv.log_id = BINZ(log);
    rv.n_entry_ids = 1;
    rv.entry_ids = &rid;
    assert_int_equal(unary(&svc, &x->t, ANN_RPC_REVOKE, &rv.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    rid = BINZ("1");
    assert_int_equal(unary(&svc, &x->t, ANN_RPC_REVOKE, &rv.base, &resp, &err), 0);
    Annals__Wire__V1__DeleteLogRequest dl = ANNALS__WIRE__V1__DELETE_LOG_REQUEST__INIT;
    dl.log_id = BINZ(log);
    assert_int_equal(unary(&svc, &x->t, ANN_RPC_DELETE_LOG, &dl.base, &resp, &err), 0);
    assert_int_equal(unary(&svc, &x->t, ANN_RPC_DELETE_LOG, &dl.base, &resp, &err), -1);
    assert_int_equal(err.code, ANN_ENOTFOUND);
    ann_buf_release(&resp);
}

/* ann_service_unary_async: a command's completion may come from another thread. */
typedef struct svc_outcome {
    outcome o;
    ann_buf resp;
} svc_outcome;

static void on_unary(void *ud, int rc, ann_buf *resp, const ann_err *err)
{
    svc_outcome *s = ud;
    if (rc == 0) { /* take the response's memory */
        s->resp = *resp;
        *resp = (ann_buf)ANN_BUF_INIT;
    }
    on_done(&s->o, rc, err);
}

static void service_async_completion(void **state)
{
    fx *x = *state;
    ann_service svc;
    ann_err err = {0};
    assert_int_equal(ann_service_init(&svc, x->s, &err), 0);
    Annals__Wire__V1__CreateLogRequest c = ANNALS__WIRE__V1__CREATE_LOG_REQUEST__INIT;
    uint8_t req[16];
    size_t len = annals__wire__v1__create_log_request__pack(&c, req);
    svc_outcome so;
    outcome_init(&so.o);
    so.resp = (ann_buf)ANN_BUF_INIT;
    ann_service_unary_async(&svc, ANN_RPC_CREATE_LOG, &x->t, req, len, on_unary, &so);
    outcome_wait(&so.o);
    assert_int_equal(so.o.rc, 0);
    assert_int_equal(so.o.calls, 1);
    assert_true(so.resp.len > ANN_UUID_LEN);
    ann_buf_release(&so.resp);
    outcome_destroy(&so.o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(v1_async_runs_sync_inline, setup_v1, teardown),
        cmocka_unit_test_setup_teardown(async_sync_wrappers_wait, setup_async, teardown),
        cmocka_unit_test_setup_teardown(async_wrappers_pass_through, setup_async, teardown),
        cmocka_unit_test_setup_teardown(service_over_async_backend, setup_async, teardown),
        cmocka_unit_test_setup_teardown(service_async_completion, setup_async, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
