#include "api/server.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/status.h"
#include "common/buf.h"
#include "domain/limits.h"

#define ARMED_CALLS 16 /* grpc_server_request_call kept outstanding */
#define STOP_GRACE_SECONDS 30

typedef struct call call;
typedef struct ann_server ann_server;

/* A completion-queue tag: what to run when the operation completes. */
typedef struct tag {
    void (*fn)(call *c, int ok);
    call *c;
} tag;

typedef struct job {
    void (*fn)(call *c);
    call *c;
    struct job *next;
} job;

struct call {
    ann_server *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array req_md;
    int rpc;
    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *send_buf;
    grpc_slice status_details;
    int cancelled;
    bool sent_initial_md;
    bool have_status;
    tag t_new, t_recv, t_close, t_send, t_finish;

    pthread_mutex_t mu; /* guards refs and the tail state below */
    int refs;           /* outstanding batches + queued jobs + watch */

    /* Tails only. */
    ann_tail tail;
    ann_watch *watch;
    bool busy;         /* a pump job is queued or running, or a send is in flight */
    bool dirty;        /* the watch fired while busy */
    bool closed;       /* the client is gone or the server is stopping */
    bool done;         /* the status is being sent */
    call *prev, *next; /* in srv->tails */
};

struct ann_server {
    ann_service *svc;
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t *cq_threads;
    int n_cq;

    pthread_t *workers;
    int n_workers;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    job *head, *tail;
    bool pool_stop;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bool stopping;
    bool shutdown_done;
    long live_calls;
    call *tails;
    tag t_shutdown;
};

/* ---------- worker pool ---------- */

static void push_job(ann_server *s, void (*fn)(call *), call *c)
{
    job *j = ann_xmalloc(sizeof *j);
    j->fn = fn;
    j->c = c;
    j->next = NULL;
    pthread_mutex_lock(&s->pool_mu);
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
}

static void *worker_main(void *arg)
{
    ann_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->pool_mu);
        while (!s->head && !s->pool_stop)
            pthread_cond_wait(&s->pool_cv, &s->pool_mu);
        job *j = s->head;
        if (!j) {
            pthread_mutex_unlock(&s->pool_mu);
            return NULL;
        }
        s->head = j->next;
        if (!s->head)
            s->tail = NULL;
        pthread_mutex_unlock(&s->pool_mu);
        j->fn(j->c);
        free(j);
    }
}

/* ---------- call lifetime ---------- */

static void call_destroy(call *c)
{
    ann_server *s = c->srv;
    if (c->recv_buf)
        grpc_byte_buffer_destroy(c->recv_buf);
    if (c->send_buf)
        grpc_byte_buffer_destroy(c->send_buf);
    if (c->have_status)
        grpc_slice_unref(c->status_details);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->req_md);
    if (c->call)
        grpc_call_unref(c->call);
    pthread_mutex_destroy(&c->mu);
    free(c);
    pthread_mutex_lock(&s->mu);
    s->live_calls--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void ref(call *c)
{
    pthread_mutex_lock(&c->mu);
    c->refs++;
    pthread_mutex_unlock(&c->mu);
}

static void unref(call *c)
{
    pthread_mutex_lock(&c->mu);
    int left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left == 0)
        call_destroy(c);
}

static void job_for(call *c, void (*fn)(call *))
{
    ref(c);
    push_job(c->srv, fn, c);
}

static grpc_call_error start(call *c, const grpc_op *ops, size_t n, tag *t)
{
    ref(c);
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, t, NULL);
    if (e != GRPC_CALL_OK) {
        fprintf(stderr, "annalsd: grpc_call_start_batch: error %d\n", (int)e);
        unref(c);
    }
    return e;
}

/* Sends the final status (and the response message, if any). Ends every call. */
static void finish(call *c, grpc_status_code code, const char *msg, const ann_buf *resp)
{
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->sent_initial_md) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->sent_initial_md = true;
    }
    if (resp && code == GRPC_STATUS_OK) {
        grpc_slice sl = grpc_slice_from_copied_buffer((const char *)resp->data, resp->len);
        c->send_buf = grpc_raw_byte_buffer_create(&sl, 1);
        grpc_slice_unref(sl);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->send_buf;
    }
    c->status_details = grpc_slice_from_copied_string(msg ? msg : "");
    c->have_status = true;
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = &c->status_details;
    if (c->rpc != ANN_RPC_TAIL) { /* a tail already waits for the close */
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    }
    start(c, ops, n, &c->t_finish);
}

static void finish_err(call *c, const ann_err *err)
{
    finish(c, ann_status_from_code(err->code), err->msg, NULL);
}

static void on_finish(call *c, int ok)
{
    (void)ok;
    unref(c);
}

/* The request's bytes as one contiguous slice (caller unrefs). */
static grpc_slice request_bytes(call *c)
{
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, c->recv_buf))
        return grpc_empty_slice();
    grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    return sl;
}

static int authenticate(call *c, ann_tenant *t, ann_err *err)
{
    for (size_t i = 0; i < c->req_md.count; i++) {
        const grpc_metadata *m = &c->req_md.metadata[i];
        if (grpc_slice_str_cmp(m->key, "authorization") == 0)
            return ann_service_auth(c->srv->svc, (const char *)GRPC_SLICE_START_PTR(m->value),
                                    GRPC_SLICE_LENGTH(m->value), t, err);
    }
    return ann_service_auth(c->srv->svc, NULL, 0, t, err);
}

/* ---------- unary calls ---------- */

static void unary_job(call *c)
{
    ann_err err = {0};
    ann_tenant t;
    ann_buf resp = ANN_BUF_INIT;
    if (authenticate(c, &t, &err) != 0) {
        finish_err(c, &err);
    } else {
        grpc_slice req = request_bytes(c);
        int rc = ann_service_unary(c->srv->svc, (ann_rpc)c->rpc, &t, GRPC_SLICE_START_PTR(req),
                                   GRPC_SLICE_LENGTH(req), &resp, &err);
        grpc_slice_unref(req);
        if (rc == 0)
            finish(c, GRPC_STATUS_OK, NULL, &resp);
        else
            finish_err(c, &err);
    }
    ann_buf_release(&resp);
    unref(c); /* the job's */
}

/* ---------- tails ---------- */

static void tail_pump(call *c);

static void tail_end(call *c, grpc_status_code code, const char *msg)
{
    ann_server *s = c->srv;
    pthread_mutex_lock(&c->mu);
    bool already = c->done;
    c->done = true;
    ann_watch *w = c->watch;
    c->watch = NULL;
    pthread_mutex_unlock(&c->mu);
    if (already)
        return;
    if (w) {
        ann_store_unwatch(s->svc->store, w);
        unref(c); /* the watch's */
    }
    pthread_mutex_lock(&s->mu);
    if (c->prev || c->next || s->tails == c) {
        if (c->prev)
            c->prev->next = c->next;
        else
            s->tails = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->prev = c->next = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    finish(c, code, msg, NULL);
}

/* Schedules a pump unless one is already on its way. Caller holds c->mu. */
static void kick_locked(call *c)
{
    if (c->done)
        return;
    if (c->busy) {
        c->dirty = true;
        return;
    }
    c->busy = true;
    c->refs++; /* the job's */
    push_job(c->srv, tail_pump, c);
}

static void on_watch(void *ud)
{
    call *c = ud;
    pthread_mutex_lock(&c->mu);
    kick_locked(c);
    pthread_mutex_unlock(&c->mu);
}

static void on_send(call *c, int ok)
{
    grpc_byte_buffer_destroy(c->send_buf);
    c->send_buf = NULL;
    if (!ok) {
        pthread_mutex_lock(&c->mu);
        c->closed = true;
        pthread_mutex_unlock(&c->mu);
    }
    job_for(c, tail_pump); /* still busy: the send's turn passes to the pump */
    unref(c);
}

static void tail_pump(call *c)
{
    ann_err err = {0};
    ann_buf resp = ANN_BUF_INIT;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        bool closed = c->closed;
        c->dirty = false;
        pthread_mutex_unlock(&c->mu);
        if (closed) {
            bool stopping;
            pthread_mutex_lock(&c->srv->mu);
            stopping = c->srv->stopping;
            pthread_mutex_unlock(&c->srv->mu);
            tail_end(c, stopping ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_CANCELLED,
                     stopping ? "server is shutting down; resume with after_entry_id"
                              : "cancelled");
            break;
        }
        size_t n = 0;
        if (ann_tail_next(&c->tail, &resp, &n, &err) != 0) {
            tail_end(c, ann_status_from_code(err.code), err.msg);
            break;
        }
        if (n > 0) {
            grpc_op ops[2];
            size_t k = 0;
            memset(ops, 0, sizeof ops);
            if (!c->sent_initial_md) {
                ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
                c->sent_initial_md = true;
            }
            grpc_slice sl = grpc_slice_from_copied_buffer((const char *)resp.data, resp.len);
            c->send_buf = grpc_raw_byte_buffer_create(&sl, 1);
            grpc_slice_unref(sl);
            ops[k].op = GRPC_OP_SEND_MESSAGE;
            ops[k++].data.send_message.send_message = c->send_buf;
            if (start(c, ops, k, &c->t_send) != GRPC_CALL_OK)
                tail_end(c, GRPC_STATUS_INTERNAL, "send failed");
            break; /* busy until on_send */
        }
        pthread_mutex_lock(&c->mu);
        bool again = c->dirty;
        if (!again)
            c->busy = false;
        pthread_mutex_unlock(&c->mu);
        if (!again)
            break;
    }
    ann_buf_release(&resp);
    unref(c); /* the job's */
}

static void on_close(call *c, int ok)
{
    (void)ok;
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    kick_locked(c);
    pthread_mutex_unlock(&c->mu);
    unref(c);
}

static void tail_open_job(call *c)
{
    ann_err err = {0};
    ann_tenant t;
    ann_server *s = c->srv;
    if (authenticate(c, &t, &err) != 0) {
        tail_end(c, ann_status_from_code(err.code), err.msg);
        goto done;
    }
    grpc_slice req = request_bytes(c);
    int rc = ann_tail_open(s->svc, &t, GRPC_SLICE_START_PTR(req), GRPC_SLICE_LENGTH(req), &c->tail,
                           &err);
    grpc_slice_unref(req);
    if (rc != 0) {
        tail_end(c, ann_status_from_code(err.code), err.msg);
        goto done;
    }
    pthread_mutex_lock(&s->mu);
    pthread_mutex_lock(&c->mu);
    bool stopping = s->stopping, ended = c->done;
    if (!stopping && !ended) {
        c->next = s->tails;
        if (s->tails)
            s->tails->prev = c;
        s->tails = c;
    }
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&s->mu);
    if (ended) /* cancelled meanwhile: a pump already ended it */
        goto done;
    if (stopping) {
        tail_end(c, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
        goto done;
    }
    ref(c); /* the watch's, released by tail_end after unwatch */
    ann_watch *w = NULL;
    if (ann_store_watch(s->svc->store, t.id, c->tail.log_id, on_watch, c, &w, &err) != 0) {
        unref(c);
        tail_end(c, ann_status_from_code(err.code), err.msg);
        goto done;
    }
    pthread_mutex_lock(&c->mu);
    if (c->done) { /* ended while we registered: the watch is ours to drop */
        pthread_mutex_unlock(&c->mu);
        ann_store_unwatch(s->svc->store, w);
        unref(c);
        goto done;
    }
    c->watch = w;
    kick_locked(c); /* the first read: the backlog after after_entry_id */
    pthread_mutex_unlock(&c->mu);
done:
    unref(c); /* the job's */
}

/* ---------- call arrival ---------- */

static void arm(ann_server *s);

static void on_recv(call *c, int ok)
{
    if (!ok || !c->recv_buf) {
        if (c->rpc == ANN_RPC_TAIL)
            tail_end(c, GRPC_STATUS_INVALID_ARGUMENT, "request: missing message");
        else
            finish(c, GRPC_STATUS_INVALID_ARGUMENT, "request: missing message", NULL);
    } else {
        job_for(c, c->rpc == ANN_RPC_TAIL ? tail_open_job : unary_job);
    }
    unref(c);
}

static void on_new(call *c, int ok)
{
    ann_server *s = c->srv;
    if (!ok) { /* the server is shutting down: this armed slot is over */
        c->refs = 0;
        call_destroy(c);
        return;
    }
    arm(s);
    ref(c); /* held while this function touches c: a batch may complete at once */
    c->rpc = ann_rpc_from_path((const char *)GRPC_SLICE_START_PTR(c->details.method),
                               GRPC_SLICE_LENGTH(c->details.method));
    if (c->rpc < 0) {
        finish(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method", NULL);
    } else {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &c->recv_buf;
        start(c, &op, 1, &c->t_recv);
        if (c->rpc == ANN_RPC_TAIL) {
            memset(&op, 0, sizeof op);
            op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
            op.data.recv_close_on_server.cancelled = &c->cancelled;
            start(c, &op, 1, &c->t_close);
        }
    }
    unref(c);
}

static void arm(ann_server *s)
{
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    if (!stopping)
        s->live_calls++;
    pthread_mutex_unlock(&s->mu);
    if (stopping)
        return;
    call *c = ann_xcalloc(1, sizeof *c);
    c->srv = s;
    c->rpc = -1;
    pthread_mutex_init(&c->mu, NULL);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->req_md);
    c->t_new = (tag){on_new, c};
    c->t_recv = (tag){on_recv, c};
    c->t_close = (tag){on_close, c};
    c->t_send = (tag){on_send, c};
    c->t_finish = (tag){on_finish, c};
    grpc_call_error e = grpc_server_request_call(s->server, &c->call, &c->details, &c->req_md,
                                                 s->cq, s->cq, &c->t_new);
    if (e != GRPC_CALL_OK) {
        fprintf(stderr, "annalsd: grpc_server_request_call: error %d\n", (int)e);
        call_destroy(c);
    }
}

/* ---------- completion-queue threads ---------- */

static void on_shutdown(call *c, int ok)
{
    (void)ok;
    ann_server *s = (ann_server *)c; /* the shutdown tag carries the server */
    pthread_mutex_lock(&s->mu);
    s->shutdown_done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void *cq_main(void *arg)
{
    ann_server *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return NULL;
        if (ev.type == GRPC_OP_COMPLETE) {
            tag *t = ev.tag;
            t->fn(t->c, ev.success);
        }
    }
}

/* ---------- start and stop ---------- */

static char *read_file(const char *path, ann_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ann_err_set(err, ANN_EINVAL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    ann_buf b = ANN_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ann_buf_add(&b, chunk, n);
    fclose(f);
    ann_buf_add_byte(&b, 0);
    return (char *)b.data;
}

int ann_server_start(ann_service *svc, const ann_server_opts *opts, ann_server **out, ann_err *err)
{
    grpc_server_credentials *creds = NULL;
    char *cert = NULL, *key = NULL;
    ann_server *s = ann_xcalloc(1, sizeof *s);
    s->svc = svc;
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->t_shutdown = (tag){on_shutdown, (call *)s};

    if ((opts->tls_cert_file != NULL) != (opts->tls_key_file != NULL)) {
        ann_err_set(err, ANN_EINVAL, "--tls-cert and --tls-key go together");
        goto fail;
    }
    if (opts->tls_cert_file) {
        if (!(cert = read_file(opts->tls_cert_file, err)) ||
            !(key = read_file(opts->tls_key_file, err)))
            goto fail;
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        creds = grpc_ssl_server_credentials_create(NULL, &pair, 1, 0, NULL);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }

    grpc_arg args[1];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = ANN_MAX_REQUEST_BYTES;
    grpc_channel_args chargs = {.num_args = 1, .args = args};
    s->server = grpc_server_create(&chargs, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    if (!grpc_server_add_http2_port(s->server, opts->listen, creds)) {
        ann_err_set(err, ANN_EINVAL, "--listen %s: cannot listen there", opts->listen);
        grpc_server_credentials_release(creds);
        creds = NULL;
        grpc_server_destroy(s->server);
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(s->cq);
        goto fail;
    }
    grpc_server_credentials_release(creds);
    free(cert);
    free(key);
    grpc_server_start(s->server);

    s->n_workers = opts->workers > 0 ? opts->workers : 32;
    s->workers = ann_xcalloc((size_t)s->n_workers, sizeof *s->workers);
    for (int i = 0; i < s->n_workers; i++)
        pthread_create(&s->workers[i], NULL, worker_main, s);
    s->n_cq = opts->cq_threads > 0 ? opts->cq_threads : 2;
    s->cq_threads = ann_xcalloc((size_t)s->n_cq, sizeof *s->cq_threads);
    for (int i = 0; i < s->n_cq; i++)
        pthread_create(&s->cq_threads[i], NULL, cq_main, s);
    for (int i = 0; i < ARMED_CALLS; i++)
        arm(s);
    *out = s;
    return 0;
fail:
    free(cert);
    free(key);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->pool_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return -1;
}

void ann_server_stop(ann_server *s)
{
    /* 1. No new calls; in-flight ones go on. */
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->mu);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->t_shutdown);

    /* 2. Tails never end by themselves: end them. */
    pthread_mutex_lock(&s->mu);
    for (call *c = s->tails; c; c = c->next) {
        pthread_mutex_lock(&c->mu);
        c->closed = true;
        kick_locked(c);
        pthread_mutex_unlock(&c->mu);
    }
    /* 3. Wait for the calls to complete; past the grace period, cancel the rest. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += STOP_GRACE_SECONDS;
    while (!s->shutdown_done) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&s->mu);
            grpc_server_cancel_all_calls(s->server);
            pthread_mutex_lock(&s->mu);
            deadline.tv_sec += 3600;
        }
    }
    while (s->live_calls > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);

    /* 4. Workers, then the queue. */
    pthread_mutex_lock(&s->pool_mu);
    s->pool_stop = true;
    pthread_cond_broadcast(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
    for (int i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i], NULL);
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    for (int i = 0; i < s->n_cq; i++)
        pthread_join(s->cq_threads[i], NULL);
    grpc_completion_queue_destroy(s->cq);

    free(s->workers);
    free(s->cq_threads);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->pool_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
