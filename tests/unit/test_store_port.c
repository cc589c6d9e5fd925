/*
 * The storage port's version 2: the wrappers adapt both ways between synchronous and
 * asynchronous commands, and the API layer works over a backend whose commands complete
 * on another thread (WriteLogEntriesRequest.wait, ids not yet known, visible_count below
 * entry_count). Two tiny fakes (tests/support/asyncstore.c) wrap the memory double:
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
#include "asyncstore.h"
#include "memstore.h"
#include "wire.pb-c.h"

/* ---- fixtures ---- */

typedef struct fx {
    ann_store *s;
    ann_tenant t;
} fx;

static int setup_with(void **state, bool v1)
{
    fx *x = calloc(1, sizeof *x);
    uint8_t h[32];
    ann_err err;
    x->s = ann_asyncstore_new(ann_memstore_new(), v1, 0);
    SHA256((const unsigned char *)"key", 3, h);
    assert_int_equal(ann_store_tenant_create(x->s, "t", h, &x->t, &err), 0);
    *state = x;
    return 0;
}

static int setup_v1(void **state)
{
    return setup_with(state, true);
}

static int setup_async(void **state)
{
    return setup_with(state, false);
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
    assert_int_equal(ann_asyncstore_calls(x->s), 1);

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
    assert_int_equal(ann_asyncstore_calls(x->s), 7);
}

static void async_wrappers_pass_through(void **state)
{
    fx *x = *state;
    outcome o;
    outcome_init(&o);
    ann_store_log_create_async(x->s, x->t.id, LOG2, NULL, 0, 1, on_done, &o);
    outcome_wait(&o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(ann_asyncstore_calls(x->s), 1);
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
    int before = ann_asyncstore_calls(x->s);
    assert_int_equal(write_n(&svc, &x->t, log, 7, 1, &rc, &err), 0);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_non_null(strstr(err.msg, "wait"));
    assert_int_equal(ann_asyncstore_calls(x->s), before);
    write_n(&svc, &x->t, log, -1, 1, &rc, &err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err.msg, "wait"));

    /* Reads stop at visible_count; GetLog reports entry_count. */
    assert_int_equal(list_count(&svc, &x->t, log), 5);
    assert_int_equal(read_count(&svc, &x->t, log), 5);
    ann_asyncstore_set_hidden(x->s, 2);
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
    ann_asyncstore_set_hidden(x->s, 0);

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
