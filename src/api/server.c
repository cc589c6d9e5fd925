#include "api/server.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/compression.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "api/reflection.h"
#include "api/sched.h"
#include "api/status.h"
#include "common/buf.h"
#include "domain/limits.h"
#include "domain/text.h"
#include "grpc/health/v1/health.pb-c.h"

#define ARMED_CALLS 16 /* grpc_server_request_call kept outstanding */
#define STOP_GRACE_SECONDS 30
#define ANN_TRIM_AFTER_BYTES (1 << 20) /* malloc_trim after a request this large */

typedef struct call call;
typedef struct ann_server ann_server;

/* The operator's rpcs, numbered after annals' own (ann_rpc: 0 .. ANN_NRPC - 1). */
enum {
    RPC_HEALTH_CHECK = ANN_NRPC,
    RPC_HEALTH_WATCH,
    RPC_REFLECTION_V1,
    RPC_REFLECTION_V1ALPHA,
    NMETHODS,
};

static const char *const ops_paths[] = {
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
};
_Static_assert(sizeof ops_paths / sizeof ops_paths[0] == NMETHODS - ANN_NRPC, "ops_paths");

#define NCODES 17 /* grpc_status_code OK .. UNAUTHENTICATED */
static const char *const code_names[NCODES] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

/* One method's series (docs/operations.md); handled[] is filled on first use. */
typedef struct rpc_metrics {
    char labels[192];
    ann_counter *started;
    ann_histogram *seconds;
    _Atomic(ann_counter *) handled[NCODES];
} rpc_metrics;

#define OPS_MAX_REQUEST (64 * 1024) /* health and reflection requests are small */

/* A completion-queue tag: what to run when the operation completes. */
typedef struct tag {
    void (*fn)(call *c, int ok);
    call *c;
} tag;

struct call {
    ann_server *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array req_md;
    int rpc;
    ann_tenant tenant; /* set by admit_job before the message is read */
    grpc_byte_buffer *recv_buf;
    ann_buf req; /* unary: the request's bytes, until the rpc completes */
    grpc_byte_buffer *send_buf;
    grpc_slice status_details;
    grpc_metadata trailer; /* annals-retriable, when the error is */
    int cancelled;
    bool sent_initial_md;
    bool have_status;
    bool close_armed; /* RECV_CLOSE_ON_SERVER started at arrival (streams) */
    uint64_t t0;      /* arrival, for grpc_server_handling_seconds */
    tag t_new, t_recv, t_close, t_send, t_finish;

    pthread_mutex_t mu; /* guards refs and the tail state below */
    int refs;           /* outstanding batches + queued jobs + pending rpc + watch */

    /* Streams (tails and health watches). */
    void (*pump)(void *); /* what a wake-up runs: tail_pump or watch_pump */
    ann_class pump_class;
    ann_tail tail;
    ann_watch *watch;
    ann_health_sub *sub; /* health watches: the subscription */
    bool known;          /* health watches: the service is one we answer for */
    int last_sent;       /* health watches: the status last sent (-1: none yet) */
    bool busy;           /* a pump job is queued or running, or a send is in flight */
    bool dirty;          /* the watch fired while busy */
    bool closed;         /* the client is gone or the server is stopping */
    bool gone;           /* the client is gone (nothing more can be sent) */
    bool done;           /* the status is being sent */
    call *prev, *next;   /* in srv->tails */
};

struct ann_server {
    ann_service *svc;
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t *cq_threads;
    int n_cq;

    ann_sched *sched;
    ann_health *health;   /* borrowed; NULL: ready until stopped */
    ann_reflection *refl; /* immutable */
    ann_metrics *metrics; /* borrowed; NULL: no metrics */
    rpc_metrics rm[NMETHODS];
    ann_gauge *live_tails;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bool stopping;
    bool shutdown_done;
    long live_calls;
    call *tails;
    tag t_shutdown;
    pthread_t ticker; /* kicks every tail each ANN_TAIL_KEY_RECHECK_MS: its key is checked */
    bool ticker_started;
};

/* ---------- call lifetime ---------- */

static void call_destroy(call *c)
{
    ann_server *s = c->srv;
    if (c->recv_buf)
        grpc_byte_buffer_destroy(c->recv_buf);
    if (c->send_buf)
        grpc_byte_buffer_destroy(c->send_buf);
    ann_buf_release(&c->req);
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

/* The class of work an rpc's handler is: commands wait for group commit, reads use CPU. */
static ann_class rpc_class(int rpc)
{
    switch (rpc) {
    case ANN_RPC_LIST:
    case ANN_RPC_TAIL:
    case ANN_RPC_LIST_LOGS:
    case ANN_RPC_READ:
    case ANN_RPC_SEARCH:
    case ANN_RPC_CHECKPOINT:
    case ANN_RPC_INCLUSION:
    case ANN_RPC_CONSISTENCY:
    case ANN_RPC_SHARE:
        return ANN_CLASS_READ;
    default:
        return ANN_CLASS_WRITE;
    }
}

/* Queues fn(c) on the scheduler, under the call's tenant ("" before authentication). */
static void job_for(call *c, ann_class cls, void (*fn)(void *))
{
    ref(c);
    ann_sched_submit(c->srv->sched, cls, c->tenant.id, fn, c);
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
/* Counts a finished call: grpc_server_handled_total and grpc_server_handling_seconds. */
static void count_finish(call *c, grpc_status_code code)
{
    ann_server *s = c->srv;
    if (!s->metrics || c->rpc < 0 || c->rpc >= NMETHODS)
        return;
    rpc_metrics *m = &s->rm[c->rpc];
    int k = code >= 0 && code < NCODES ? (int)code : GRPC_STATUS_UNKNOWN;
    ann_counter *h = atomic_load_explicit(&m->handled[k], memory_order_acquire);
    if (!h) { /* first of its code: registration takes the registry's lock, once */
        char labels[256];
        snprintf(labels, sizeof labels, "%s,grpc_code=\"%s\"", m->labels, code_names[k]);
        h = ann_metrics_counter(s->metrics, "grpc_server_handled_total",
                                "RPCs completed on the server, by status code", labels);
        atomic_store_explicit(&m->handled[k], h, memory_order_release);
    }
    ann_counter_add(h, 1);
    ann_histogram_observe(m->seconds, ann_metrics_now_ns() - c->t0);
}

static void finish_md(call *c, grpc_status_code code, const char *msg, const ann_buf *resp,
                      bool retriable)
{
    count_finish(c, code);
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
    ops[n].data.send_status_from_server.status_details = &c->status_details;
    if (retriable) {
        c->trailer.key = grpc_slice_from_static_string(ANN_RETRIABLE_MD);
        c->trailer.value = grpc_slice_from_static_string("true");
        ops[n].data.send_status_from_server.trailing_metadata_count = 1;
        ops[n].data.send_status_from_server.trailing_metadata = &c->trailer;
    }
    n++;
    if (!c->close_armed) { /* a stream already waits for the close */
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    }
    start(c, ops, n, &c->t_finish);
}

static void finish(call *c, grpc_status_code code, const char *msg, const ann_buf *resp)
{
    finish_md(c, code, msg, resp, false);
}

/* The rpc's name for the operator's log. */
static void method_name(call *c, char *out, size_t cap)
{
    snprintf(out, cap, "%.*s", (int)GRPC_SLICE_LENGTH(c->details.method),
             (const char *)GRPC_SLICE_START_PTR(c->details.method));
}

static void finish_err(call *c, const ann_err *err)
{
    char what[128];
    ann_status st;
    method_name(c, what, sizeof what);
    ann_status_from_err(err, what, &st);
    finish_md(c, st.code, st.msg, NULL, st.retriable);
}

static void on_finish(call *c, int ok)
{
    (void)ok;
    unref(c);
}

/* The request's bytes in `out`. The transport hands compressed messages over as they
 * came (per-message decompression is off, see ann_server_start): they are inflated here,
 * after authentication, and never past ANN_MAX_REQUEST_BYTES, so a small compressed
 * request cannot make the server allocate more than the limit. */
static int request_bytes(call *c, ann_buf *out, ann_err *err)
{
    grpc_byte_buffer *bb = c->recv_buf;
    if (bb->type != GRPC_BB_RAW)
        return ann_err_set(err, ANN_EINVAL, "request: unsupported message buffer");
    grpc_slice_buffer *sb = &bb->data.raw.slice_buffer;
    grpc_compression_algorithm alg = bb->data.raw.compression;
    if (alg == GRPC_COMPRESS_NONE) {
        ann_buf_reserve(out, sb->length);
        for (size_t i = 0; i < sb->count; i++)
            ann_buf_add(out, GRPC_SLICE_START_PTR(sb->slices[i]), GRPC_SLICE_LENGTH(sb->slices[i]));
        return 0;
    }
    if (alg != GRPC_COMPRESS_DEFLATE && alg != GRPC_COMPRESS_GZIP)
        return ann_err_set(err, ANN_EINVAL, "request: unsupported grpc-encoding");
    z_stream z;
    memset(&z, 0, sizeof z);
    /* deflate is the zlib format, gzip the gzip format: 15 + 32 detects either. */
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return ann_err_set(err, ANN_EINTERNAL, "inflateInit2 failed");
    int rc = 0, zr = Z_OK;
    for (size_t i = 0; i < sb->count && zr != Z_STREAM_END && rc == 0; i++) {
        z.next_in = GRPC_SLICE_START_PTR(sb->slices[i]);
        z.avail_in = (uInt)GRPC_SLICE_LENGTH(sb->slices[i]);
        while (z.avail_in > 0 && zr != Z_STREAM_END) {
            if (out->len == out->cap) {
                size_t grow = out->cap ? out->cap : 64 * 1024;
                if (out->cap >= ANN_MAX_REQUEST_BYTES) {
                    rc = ann_err_set(err, ANN_ERANGE,
                                     "request: larger than %d bytes once decompressed",
                                     ANN_MAX_REQUEST_BYTES);
                    break;
                }
                if (out->cap + grow > ANN_MAX_REQUEST_BYTES)
                    grow = ANN_MAX_REQUEST_BYTES - out->cap;
                ann_buf_reserve(out, grow);
            }
            z.next_out = out->data + out->len;
            z.avail_out = (uInt)(out->cap - out->len);
            zr = inflate(&z, Z_NO_FLUSH);
            out->len = out->cap - z.avail_out;
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
                rc = ann_err_set(err, ANN_EINVAL, "request: corrupt %s message",
                                 alg == GRPC_COMPRESS_GZIP ? "gzip" : "deflate");
                break;
            }
        }
    }
    if (rc == 0 && zr != Z_STREAM_END)
        rc = ann_err_set(err, ANN_EINVAL, "request: truncated compressed message");
    inflateEnd(&z);
    return rc;
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

/* Drops the received message, and gives large buffers back to the system at once (a
 * burst of big requests must not leave the server's RSS high). */
static void drop_request(call *c, ann_buf *req)
{
    size_t big = req->cap;
    if (c->recv_buf) {
        big += grpc_byte_buffer_length(c->recv_buf);
        grpc_byte_buffer_destroy(c->recv_buf);
        c->recv_buf = NULL;
    }
    ann_buf_release(req);
    if (big >= ANN_TRIM_AFTER_BYTES)
        malloc_trim(0);
}

/* The rpc's completion, on any thread (the worker itself when the store answered at once,
 * else the store's): sends the reply and drops the reference the job handed over. Nothing
 * else touches the call meanwhile (a unary call has no other batch in flight). */
static void unary_done(void *ud, int rc, ann_buf *resp, const ann_err *err)
{
    call *c = ud;
    drop_request(c, &c->req);
    if (rc == 0)
        finish(c, GRPC_STATUS_OK, NULL, resp);
    else
        finish_err(c, err);
    unref(c); /* the job's, carried by the pending rpc */
}

/* Starts the rpc and returns at once: the worker is not held while the store completes
 * (a backend with asynchronous commands finishes the call from its own threads). The
 * job's reference passes to the pending rpc; c must not be touched after the call. */
static void unary_job(void *p)
{
    call *c = p;
    ann_err err = {0};
    if (request_bytes(c, &c->req, &err) != 0) {
        unary_done(c, -1, NULL, &err);
        return;
    }
    ann_service_unary_async(c->srv->svc, (ann_rpc)c->rpc, &c->tenant, c->req.data, c->req.len,
                            unary_done, c);
}

/* ---------- tails ---------- */

static void tail_pump(void *p);

static void tail_end_md(call *c, grpc_status_code code, const char *msg, bool retriable)
{
    ann_server *s = c->srv;
    pthread_mutex_lock(&c->mu);
    bool already = c->done;
    c->done = true;
    ann_watch *w = c->watch;
    c->watch = NULL;
    ann_health_sub *sub = c->sub;
    c->sub = NULL;
    pthread_mutex_unlock(&c->mu);
    if (already)
        return;
    if (w) {
        ann_store_unwatch(s->svc->store, w);
        unref(c); /* the watch's */
    }
    if (sub) {
        ann_health_unsubscribe(s->health, sub);
        unref(c); /* the subscription's */
    }
    pthread_mutex_lock(&s->mu);
    if (c->prev || c->next || s->tails == c) {
        if (c->rpc == ANN_RPC_TAIL)
            ann_gauge_add(s->live_tails, -1);
        if (c->prev)
            c->prev->next = c->next;
        else
            s->tails = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->prev = c->next = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    finish_md(c, code, msg, NULL, retriable);
}

static void tail_end(call *c, grpc_status_code code, const char *msg)
{
    tail_end_md(c, code, msg, code == GRPC_STATUS_UNAVAILABLE);
}

static void tail_end_err(call *c, const ann_err *err)
{
    ann_status st;
    ann_status_from_err(err, "TailLogEntries", &st);
    tail_end_md(c, st.code, st.msg, st.retriable);
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
    ann_sched_submit(c->srv->sched, c->pump_class, c->tenant.id, c->pump, c);
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
        c->closed = c->gone = true;
        pthread_mutex_unlock(&c->mu);
    }
    job_for(c, c->pump_class, c->pump); /* still busy: the send's turn passes to the pump */
    unref(c);
}

static void tail_pump(void *p)
{
    call *c = p;
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
            tail_end_err(c, &err);
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
    c->closed = c->gone = true;
    kick_locked(c);
    pthread_mutex_unlock(&c->mu);
    unref(c);
}

static void tail_open_job(void *p)
{
    call *c = p;
    ann_err err = {0};
    ann_server *s = c->srv;
    ann_buf req = ANN_BUF_INIT;
    int rc = request_bytes(c, &req, &err);
    if (rc == 0)
        rc = ann_tail_open(s->svc, &c->tenant, req.data, req.len, &c->tail, &err);
    drop_request(c, &req);
    if (rc != 0) {
        tail_end_err(c, &err);
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
        ann_gauge_add(s->live_tails, 1);
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
    if (ann_store_watch(s->svc->store, c->tenant.id, c->tail.log_id, on_watch, c, &w, &err) != 0) {
        unref(c);
        tail_end_err(c, &err);
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

/* ---------- health and reflection ---------- */

static int watch_status(call *c)
{
    ann_server *s = c->srv;
    if (!c->known)
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return !stopping && ann_health_ready(s->health, NULL, 0)
               ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static void health_response(int status, ann_buf *out)
{
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    size_t n = grpc__health__v1__health_check_response__get_packed_size(&r);
    ann_buf_reserve(out, n);
    out->len += grpc__health__v1__health_check_response__pack(&r, out->data + out->len);
}

/* The HealthCheckRequest's service, or -1 with err. */
static int health_request(call *c, ann_buf *req, char **service, ann_err *err)
{
    if (request_bytes(c, req, err) != 0)
        return -1;
    if (req->len > OPS_MAX_REQUEST)
        return ann_err_set(err, ANN_EINVAL, "HealthCheckRequest: larger than %d bytes",
                           OPS_MAX_REQUEST);
    Grpc__Health__V1__HealthCheckRequest *r =
        grpc__health__v1__health_check_request__unpack(NULL, req->len, req->data);
    if (!r)
        return ann_err_set(err, ANN_EINVAL, "HealthCheckRequest: not a valid message");
    size_t n = strlen(r->service);
    if (!ann_utf8_valid(r->service, n)) {
        grpc__health__v1__health_check_request__free_unpacked(r, NULL);
        return ann_err_set(err, ANN_EINVAL, "service: not UTF-8");
    }
    *service = ann_xmalloc(n + 1);
    memcpy(*service, r->service, n + 1);
    grpc__health__v1__health_check_request__free_unpacked(r, NULL);
    return 0;
}

/* Sends the status if it changed since the last message; ends the stream once closed. */
static void watch_pump(void *p)
{
    call *c = p;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        bool closed = c->closed, gone = c->gone;
        c->dirty = false;
        pthread_mutex_unlock(&c->mu);
        int st = watch_status(c);
        if (!gone && st != c->last_sent) { /* draining included: NOT_SERVING before the end */
            ann_buf b = ANN_BUF_INIT;
            health_response(st, &b);
            grpc_op ops[2];
            size_t k = 0;
            memset(ops, 0, sizeof ops);
            if (!c->sent_initial_md) {
                ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
                c->sent_initial_md = true;
            }
            grpc_slice sl = grpc_slice_from_copied_buffer((const char *)b.data, b.len);
            ann_buf_release(&b);
            c->send_buf = grpc_raw_byte_buffer_create(&sl, 1);
            grpc_slice_unref(sl);
            ops[k].op = GRPC_OP_SEND_MESSAGE;
            ops[k++].data.send_message.send_message = c->send_buf;
            c->last_sent = st;
            if (start(c, ops, k, &c->t_send) != GRPC_CALL_OK)
                tail_end(c, GRPC_STATUS_INTERNAL, "send failed");
            break; /* busy until on_send */
        }
        if (closed) {
            pthread_mutex_lock(&c->srv->mu);
            bool stopping = c->srv->stopping;
            pthread_mutex_unlock(&c->srv->mu);
            tail_end(c, stopping ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_CANCELLED,
                     stopping ? "server is shutting down" : "cancelled");
            break;
        }
        pthread_mutex_lock(&c->mu);
        bool again = c->dirty;
        if (!again)
            c->busy = false;
        pthread_mutex_unlock(&c->mu);
        if (!again)
            break;
    }
    unref(c); /* the job's */
}

static void watch_open(call *c)
{
    ann_server *s = c->srv;
    ann_err err = {0};
    ann_buf req = ANN_BUF_INIT;
    char *service = NULL;
    int rc = health_request(c, &req, &service, &err);
    drop_request(c, &req);
    if (rc != 0) {
        tail_end_err(c, &err);
        return;
    }
    c->known = ann_health_service_known(service, strlen(service));
    free(service);
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    if (!stopping) {
        c->next = s->tails;
        if (s->tails)
            s->tails->prev = c;
        s->tails = c;
    }
    pthread_mutex_unlock(&s->mu);
    if (stopping) {
        tail_end(c, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
        return;
    }
    if (s->health && c->known) {
        ref(c); /* the subscription's, released by tail_end after unsubscribe */
        ann_health_sub *sub = ann_health_subscribe(s->health, on_watch, c);
        pthread_mutex_lock(&c->mu);
        if (c->done) {
            pthread_mutex_unlock(&c->mu);
            ann_health_unsubscribe(s->health, sub);
            unref(c);
            return;
        }
        c->sub = sub;
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_lock(&c->mu);
    kick_locked(c); /* the first message: the status now */
    pthread_mutex_unlock(&c->mu);
}

static void reflection_recv(call *c);

static void reflection_on_send(call *c, int ok)
{
    grpc_byte_buffer_destroy(c->send_buf);
    c->send_buf = NULL;
    if (ok)
        reflection_recv(c);
    else
        finish(c, GRPC_STATUS_CANCELLED, "cancelled", NULL);
    unref(c);
}

/* One request of the reflection stream in: its answer out, then the next request. The
 * client's half-close ends the stream with OK. */
static void reflection_on_message(call *c)
{
    ann_err err = {0};
    ann_buf req = ANN_BUF_INIT, resp = ANN_BUF_INIT;
    if (!c->recv_buf) {
        finish(c, GRPC_STATUS_OK, NULL, NULL);
        return;
    }
    if (request_bytes(c, &req, &err) != 0 ||
        ann_reflection_answer(c->srv->refl, req.data, req.len, &resp, &err) != 0) {
        drop_request(c, &req);
        finish_err(c, &err);
        return;
    }
    drop_request(c, &req);
    grpc_op ops[2];
    size_t k = 0;
    memset(ops, 0, sizeof ops);
    if (!c->sent_initial_md) {
        ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->sent_initial_md = true;
    }
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)resp.data, resp.len);
    ann_buf_release(&resp);
    c->send_buf = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    ops[k].op = GRPC_OP_SEND_MESSAGE;
    ops[k++].data.send_message.send_message = c->send_buf;
    c->t_send = (tag){reflection_on_send, c};
    start(c, ops, k, &c->t_send);
}

static void ops_on_recv(call *c, int ok)
{
    (void)ok;
    if (c->rpc == RPC_HEALTH_CHECK) {
        ann_err err = {0};
        ann_buf req = ANN_BUF_INIT, resp = ANN_BUF_INIT;
        char *service = NULL;
        if (!c->recv_buf) {
            ann_err_set(&err, ANN_EINVAL, "request: missing message");
            finish_err(c, &err);
        } else if (health_request(c, &req, &service, &err) != 0) {
            finish_err(c, &err);
        } else if (!ann_health_service_known(service, strlen(service))) {
            char msg[300];
            snprintf(msg, sizeof msg, "service: unknown service \"%.200s\"", service);
            finish(c, GRPC_STATUS_NOT_FOUND, msg, NULL);
        } else {
            c->known = true;
            health_response(watch_status(c), &resp);
            finish(c, GRPC_STATUS_OK, NULL, &resp);
        }
        free(service);
        drop_request(c, &req);
        ann_buf_release(&resp);
    } else if (c->rpc == RPC_HEALTH_WATCH) {
        if (!c->recv_buf) {
            ann_err err;
            ann_err_set(&err, ANN_EINVAL, "request: missing message");
            tail_end_err(c, &err);
        } else {
            watch_open(c);
        }
    } else {
        reflection_on_message(c);
    }
    unref(c);
}

static void reflection_recv(call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    start(c, &op, 1, &c->t_recv);
}

static void on_close_plain(call *c, int ok)
{
    (void)ok;
    unref(c);
}

/* An operator's call arrived (no authentication: they reveal only what the proto file
 * does, and whether the server is ready). */
static void ops_start(call *c)
{
    c->t_recv = (tag){ops_on_recv, c};
    if (c->rpc != RPC_HEALTH_CHECK) {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        op.data.recv_close_on_server.cancelled = &c->cancelled;
        c->close_armed = true;
        if (c->rpc == RPC_HEALTH_WATCH) {
            c->pump = watch_pump;
            c->pump_class = ANN_CLASS_ADMIT;
            c->last_sent = -1;
        } else {
            c->t_close = (tag){on_close_plain, c};
        }
        start(c, &op, 1, &c->t_close);
    }
    reflection_recv(c); /* the first message, for every kind */
}

/* An idle tail makes no pump of its own: this kicks every open tail now and then, so a
 * revoked or expired key ends its tails (ann_tail_next checks the key) within
 * ANN_TAIL_KEY_RECHECK_MS plus the store's revocation bound. */
static void *ticker_main(void *arg)
{
    ann_server *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct timespec at;
        clock_gettime(CLOCK_REALTIME, &at);
        at.tv_nsec += (long)ANN_TAIL_KEY_RECHECK_MS * 1000000L;
        at.tv_sec += at.tv_nsec / 1000000000L;
        at.tv_nsec %= 1000000000L;
        while (!s->stopping && pthread_cond_timedwait(&s->cv, &s->mu, &at) != ETIMEDOUT)
            ;
        if (s->stopping)
            break;
        for (call *c = s->tails; c; c = c->next) {
            pthread_mutex_lock(&c->mu);
            kick_locked(c);
            pthread_mutex_unlock(&c->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---------- call arrival ---------- */

static void arm(ann_server *s);

static void end_call(call *c, const ann_err *err)
{
    if (c->rpc == ANN_RPC_TAIL)
        tail_end_err(c, err);
    else
        finish_err(c, err);
}

static void on_recv(call *c, int ok)
{
    if (!ok || !c->recv_buf) {
        ann_err err;
        ann_err_set(&err, ANN_EINVAL, "request: missing message");
        end_call(c, &err);
    } else {
        job_for(c, rpc_class(c->rpc), c->rpc == ANN_RPC_TAIL ? tail_open_job : unary_job);
    }
    unref(c);
}

/* Admission: the key is checked on the call's initial metadata, before a byte of the
 * message is read; a call without a valid key is refused unread (the transport's flow
 * control then bounds what it buffers), and only then is the message received. */
static void admit_job(void *p)
{
    call *c = p;
    ann_err err = {0};
    if (authenticate(c, &c->tenant, &err) != 0) {
        c->tenant.id[0] = '\0';
        end_call(c, &err);
    } else {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &c->recv_buf;
        start(c, &op, 1, &c->t_recv);
    }
    unref(c); /* the job's */
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
    c->t0 = ann_metrics_now_ns();
    const char *path = (const char *)GRPC_SLICE_START_PTR(c->details.method);
    size_t plen = GRPC_SLICE_LENGTH(c->details.method);
    c->rpc = ann_rpc_from_path(path, plen);
    for (int i = 0; c->rpc < 0 && i < NMETHODS - ANN_NRPC; i++)
        if (strlen(ops_paths[i]) == plen && memcmp(ops_paths[i], path, plen) == 0)
            c->rpc = ANN_NRPC + i;
    if (c->rpc >= 0)
        ann_counter_add(s->rm[c->rpc].started, 1);
    if (c->rpc < 0) {
        finish(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method", NULL);
    } else if (c->rpc >= ANN_NRPC) {
        ops_start(c);
    } else {
        if (c->rpc == ANN_RPC_TAIL) {
            grpc_op op;
            memset(&op, 0, sizeof op);
            op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
            op.data.recv_close_on_server.cancelled = &c->cancelled;
            c->close_armed = true;
            c->pump = tail_pump;
            c->pump_class = ANN_CLASS_READ;
            start(c, &op, 1, &c->t_close);
        }
        job_for(c, ANN_CLASS_ADMIT, admit_job);
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

/* Every method's series exist from the start (a scrape before the first call shows 0). */
static void register_metrics(ann_server *s)
{
    if (!s->metrics)
        return;
    for (int i = 0; i < NMETHODS; i++) {
        const char *path = i < ANN_NRPC ? ann_rpc_path((ann_rpc)i) : ops_paths[i - ANN_NRPC];
        const char *slash = strrchr(path, '/');
        const char *type = i == ANN_RPC_TAIL || i == RPC_HEALTH_WATCH ? "server_stream"
                           : i >= RPC_REFLECTION_V1                   ? "bidi_stream"
                                                                      : "unary";
        rpc_metrics *m = &s->rm[i];
        snprintf(m->labels, sizeof m->labels,
                 "grpc_service=\"%.*s\",grpc_method=\"%s\",grpc_type=\"%s\"",
                 (int)(slash - path - 1), path + 1, slash + 1, type);
        m->started = ann_metrics_counter(s->metrics, "grpc_server_started_total",
                                         "RPCs started on the server", m->labels);
        m->seconds = ann_metrics_histogram(
            s->metrics, "grpc_server_handling_seconds",
            "Time from a call's arrival to its final status (streams: their whole life)", m->labels,
            ann_metrics_latency_bounds_ns, ann_metrics_latency_bounds_n, 1e-9);
        char labels[256];
        snprintf(labels, sizeof labels, "%s,grpc_code=\"OK\"", m->labels);
        atomic_store(&m->handled[0],
                     ann_metrics_counter(s->metrics, "grpc_server_handled_total",
                                         "RPCs completed on the server, by status code", labels));
    }
    s->live_tails =
        ann_metrics_gauge(s->metrics, "annals_live_tails", "TailLogEntries streams open now", "");
}

int ann_server_start(ann_service *svc, const ann_server_opts *opts, ann_server **out, ann_err *err)
{
    grpc_server_credentials *creds = NULL;
    char *cert = NULL, *key = NULL;
    ann_server *s = ann_xcalloc(1, sizeof *s);
    s->svc = svc;
    s->health = opts->health;
    s->metrics = opts->metrics;
    if (!(s->refl = ann_reflection_new(err))) {
        free(s);
        return -1;
    }
    register_metrics(s);
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

    /* The transport checks the message's size as it arrives on the wire; compressed
     * messages reach request_bytes() as they are, to be inflated within the same bound. */
    grpc_arg args[2];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = ANN_MAX_REQUEST_BYTES;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION;
    args[1].value.integer = 0;
    grpc_channel_args chargs = {.num_args = 2, .args = args};
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

    ann_sched_opts so;
    ann_sched_opts_default(&so, opts->workers > 0 ? opts->workers : 32);
    s->sched = ann_sched_create(&so);
    s->n_cq = opts->cq_threads > 0 ? opts->cq_threads : 2;
    s->cq_threads = ann_xcalloc((size_t)s->n_cq, sizeof *s->cq_threads);
    for (int i = 0; i < s->n_cq; i++)
        pthread_create(&s->cq_threads[i], NULL, cq_main, s);
    for (int i = 0; i < ARMED_CALLS; i++)
        arm(s);
    if (pthread_create(&s->ticker, NULL, ticker_main, s) != 0)
        fprintf(stderr, "annalsd: no tail ticker thread: revoked keys end idle tails only at "
                        "their next entry\n");
    else
        s->ticker_started = true;
    *out = s;
    return 0;
fail:
    free(cert);
    free(key);
    ann_reflection_free(s->refl);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return -1;
}

void ann_server_stop(ann_server *s)
{
    /* 1. Not ready any more (health watchers hear it); no new calls; in-flight ones go on. */
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->mu);
    ann_health_set_draining(s->health);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->t_shutdown);

    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv); /* the ticker sees stopping */
    pthread_mutex_unlock(&s->mu);
    if (s->ticker_started)
        pthread_join(s->ticker, NULL);

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
            /* Calls waiting on the store (an engine that is down, a sequencer that does not
             * answer) end too: the store fails what it still waits for. */
            ann_store_abandon(s->svc->store);
            pthread_mutex_lock(&s->mu);
            deadline.tv_sec += 3600;
        }
    }
    while (s->live_calls > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);

    /* 4. Workers, then the queue. */
    ann_sched_destroy(s->sched);
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    for (int i = 0; i < s->n_cq; i++)
        pthread_join(s->cq_threads[i], NULL);
    grpc_completion_queue_destroy(s->cq);

    free(s->cq_threads);
    ann_reflection_free(s->refl);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
