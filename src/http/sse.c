/*
 * Server-Sent Events tails: GET /v1/logs/{log}/entries:tail (docs/http-api.md).
 *
 * No thread per stream. A stream's connection is suspended (libmicrohttpd's
 * MHD_suspend_connection) whenever it has nothing to send; one pump thread per hub reads
 * what the store has after the stream's position (ann_tail_next, the gRPC tail's own
 * reader: key recheck, isolation, ids in order with no gap) when the store's watch fires,
 * at least every ANN_TAIL_KEY_RECHECK_MS (so a revoked key ends the stream as it ends a
 * gRPC tail), and resumes the connection. A stream's pending output is bounded: the pump
 * reads more only once what it has is mostly sent (a slow client holds its own position,
 * not the server's memory).
 *
 * Lock: hub->mu guards the list and every field of every stream below it. It is never held
 * while the store is called (ann_tail_next, ann_store_unwatch), because the store's watch
 * callback takes it.
 *
 * Lifetime: a stream is on the hub's list from ann_sse_open until the pump frees it, which
 * it does only once libmicrohttpd released the response (free_cb sets `released`): the
 * response's content reader and the pump thus never see freed memory.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "domain/pbread.h"
#include "http/internal.h"
#include "http/pbjson.h"
#include "annals/v1/annals.pb-c.h"

/* Read more only while less than this is waiting to be sent. */
#define SSE_LOW_WATER (64 * 1024)
#define SSE_BLOCK (16 * 1024)
#define SSE_SHUTDOWN_WAIT_MS 2000

typedef struct stream {
    ann_sse_hub *hub;
    struct MHD_Connection *conn; /* NULL once released */
    ann_tail tail;               /* the pump's alone */
    ann_watch *watch;
    ann_buf out; /* bytes to send: out.data[off .. len) */
    size_t off;
    bool dirty;     /* read again: the watch fired, or the last read filled a message */
    bool ended;     /* no more reads: once `out` is sent, the stream ends */
    bool suspended; /* the connection waits for a resume */
    bool released;  /* libmicrohttpd is done with the response: the pump frees it */
    bool reading;   /* the pump is reading for it (outside the lock) */
    uint64_t next_check_ms, last_sent_ms;
    struct stream *next;
} stream;

struct ann_sse_hub {
    ann_service *svc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    stream *streams;
    size_t open; /* streams not released */
    bool stopping, quit, kicked;
    pthread_t pump;
    bool pump_started;
    ann_gauge *live;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void kick_locked(ann_sse_hub *hub)
{
    hub->kicked = true;
    pthread_cond_signal(&hub->cv);
}

static void resume_locked(stream *s)
{
    if (s->suspended && s->conn) {
        s->suspended = false;
        MHD_resume_connection(s->conn);
    }
}

/* An `end` event: why the stream ends, as the JSON API's errors. */
static void add_end_event(ann_buf *out, const ann_err *err)
{
    ann_buf body = ANN_BUF_INIT;
    bool retriable;
    ann_jsonapi_error(err, "TailLogEntries", &body, &retriable);
    static const char ev[] = "event: end\ndata: ";
    ann_buf_add(out, ev, sizeof ev - 1);
    ann_buf_add(out, body.data, body.len);
    ann_buf_add(out, "\n\n", 2);
    ann_buf_release(&body);
}

/* ---------- libmicrohttpd's side ---------- */

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream *s = cls;
    ann_sse_hub *hub = s->hub;
    ssize_t n;
    pthread_mutex_lock(&hub->mu);
    if (s->off < s->out.len) {
        size_t k = s->out.len - s->off;
        if (k > max)
            k = max;
        memcpy(buf, s->out.data + s->off, k);
        s->off += k;
        if (s->off == s->out.len)
            s->off = s->out.len = 0;
        s->last_sent_ms = now_ms();
        if (!s->ended && s->out.len - s->off < SSE_LOW_WATER)
            kick_locked(hub);
        n = (ssize_t)k;
    } else if (s->ended) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to send: wait, holding no thread, until the pump has something. */
        s->suspended = true;
        MHD_suspend_connection(s->conn);
        n = 0;
    }
    pthread_mutex_unlock(&hub->mu);
    return n;
}

static void free_cb(void *cls)
{
    stream *s = cls;
    ann_sse_hub *hub = s->hub;
    pthread_mutex_lock(&hub->mu);
    s->released = true;
    s->conn = NULL;
    s->suspended = false;
    hub->open--;
    kick_locked(hub);
    pthread_cond_broadcast(&hub->cv);
    pthread_mutex_unlock(&hub->mu);
}

static void on_watch(void *ud)
{
    stream *s = ud;
    pthread_mutex_lock(&s->hub->mu);
    s->dirty = true;
    kick_locked(s->hub);
    pthread_mutex_unlock(&s->hub->mu);
}

/* ---------- the pump ---------- */

/* The entries of one TailLogEntriesResponse as events: `id: <entry id>`, the entry as JSON. */
static int add_events(ann_buf *out, const ann_buf *resp, ann_err *err)
{
    size_t pos = 0;
    ann_pb_field f;
    while (pos < resp->len) {
        if (!ann_pb_next(resp->data, resp->len, &pos, &f))
            return ann_err_set(err, ANN_EINTERNAL, "malformed tail reply");
        if (f.num != 1 || f.wt != 2)
            continue;
        size_t p2 = 0;
        ann_pb_field g;
        const uint8_t *id = NULL;
        size_t idn = 0;
        while (p2 < f.n && ann_pb_next(f.p, f.n, &p2, &g))
            if (g.num == 20 && g.wt == 2)
                id = g.p, idn = g.n;
        if (id) {
            ann_buf_add(out, "id: ", 4);
            ann_buf_add(out, id, idn);
            ann_buf_add_byte(out, '\n');
        }
        ann_buf_add(out, "data: ", 6);
        if (ann_pbjson_to_json(&annals__v1__log_entry__descriptor, f.p, f.n, out, err) != 0)
            return -1;
        ann_buf_add(out, "\n\n", 2);
    }
    return 0;
}

static void free_stream(ann_sse_hub *hub, stream *s)
{
    if (s->watch)
        ann_store_unwatch(hub->svc->store, s->watch);
    ann_gauge_add(hub->live, -1);
    ann_buf_release(&s->out);
    free(s);
}

static void *pump_main(void *p)
{
    ann_sse_hub *hub = p;
    ann_buf resp = ANN_BUF_INIT, ev = ANN_BUF_INIT;
    pthread_mutex_lock(&hub->mu);
    while (!hub->quit) {
        uint64_t now = now_ms();
        stream *work = NULL;
        /* Free what libmicrohttpd released; pick one stream with something to do. */
        for (stream **pp = &hub->streams; *pp;) {
            stream *s = *pp;
            if (s->released && !s->reading) {
                *pp = s->next;
                pthread_mutex_unlock(&hub->mu);
                free_stream(hub, s);
                pthread_mutex_lock(&hub->mu);
                pp = &hub->streams; /* the list may have changed meanwhile */
                continue;
            }
            if (!s->released && !s->ended) {
                if (now - s->last_sent_ms >= ANN_SSE_HEARTBEAT_MS && s->out.len == s->off) {
                    ann_buf_add(&s->out, ": keep-alive\n\n", 14);
                    s->last_sent_ms = now;
                    resume_locked(s);
                }
                if (!work && (s->dirty || now >= s->next_check_ms) &&
                    s->out.len - s->off < SSE_LOW_WATER)
                    work = s;
            }
            pp = &s->next;
        }
        if (!work) {
            if (!hub->kicked) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 250 * 1000000L;
                if (ts.tv_nsec >= 1000000000L)
                    ts.tv_sec++, ts.tv_nsec -= 1000000000L;
                pthread_cond_timedwait(&hub->cv, &hub->mu, &ts);
            }
            hub->kicked = false;
            continue;
        }
        /* Round robin: the stream goes to the end of the list, so a busy log cannot keep
         * the pump from the others. */
        if (work->next) {
            stream **pp = &hub->streams;
            while (*pp != work)
                pp = &(*pp)->next;
            *pp = work->next;
            while (*pp)
                pp = &(*pp)->next;
            *pp = work;
            work->next = NULL;
        }
        work->dirty = false;
        work->reading = true;
        work->next_check_ms = now + ANN_TAIL_KEY_RECHECK_MS;
        pthread_mutex_unlock(&hub->mu);

        ann_err err = {0};
        size_t n = 0;
        resp.len = ev.len = 0;
        int rc = ann_tail_next(&work->tail, &resp, &n, &err);
        if (rc == 0 && n > 0)
            rc = add_events(&ev, &resp, &err);
        if (rc != 0)
            add_end_event(&ev, &err);

        pthread_mutex_lock(&hub->mu);
        work->reading = false;
        if (!work->released && !work->ended) {
            if (ev.len) {
                ann_buf_add(&work->out, ev.data, ev.len);
                resume_locked(work);
            }
            if (rc != 0) {
                work->ended = true;
                resume_locked(work);
            } else if (n > 0) {
                work->dirty = true; /* a full message may leave more behind */
            }
        }
    }
    pthread_mutex_unlock(&hub->mu);
    ann_buf_release(&resp);
    ann_buf_release(&ev);
    return NULL;
}

/* ---------- the hub ---------- */

ann_sse_hub *ann_sse_hub_new(ann_service *svc, ann_metrics *metrics, ann_err *err)
{
    ann_sse_hub *hub = ann_xcalloc(1, sizeof *hub);
    hub->svc = svc;
    pthread_mutex_init(&hub->mu, NULL);
    pthread_cond_init(&hub->cv, NULL);
    hub->live = ann_metrics_gauge(metrics, "annals_http_live_tails",
                                  "Server-Sent Events tails open now on the HTTP port", "");
    if (pthread_create(&hub->pump, NULL, pump_main, hub) != 0) {
        ann_err_set(err, ANN_EINTERNAL, "http: cannot start the tail pump");
        pthread_mutex_destroy(&hub->mu);
        pthread_cond_destroy(&hub->cv);
        free(hub);
        return NULL;
    }
    hub->pump_started = true;
    return hub;
}

void ann_sse_hub_shutdown(ann_sse_hub *hub)
{
    if (!hub)
        return;
    ann_err why;
    ann_err_set(&why, ANN_EUNAVAIL, "the server is shutting down");
    pthread_mutex_lock(&hub->mu);
    hub->stopping = true;
    for (stream *s = hub->streams; s; s = s->next) {
        if (s->released || s->ended)
            continue;
        add_end_event(&s->out, &why);
        s->ended = true;
        resume_locked(s);
    }
    /* Give libmicrohttpd a moment to send the ends: the clients learn why at once. */
    uint64_t deadline = now_ms() + SSE_SHUTDOWN_WAIT_MS;
    while (hub->open > 0 && now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&hub->cv, &hub->mu, &ts);
    }
    hub->quit = true;
    pthread_cond_broadcast(&hub->cv);
    pthread_mutex_unlock(&hub->mu);
    if (hub->pump_started)
        pthread_join(hub->pump, NULL);
    hub->pump_started = false;
}

void ann_sse_hub_free(ann_sse_hub *hub)
{
    if (!hub)
        return;
    ann_sse_hub_shutdown(hub); /* idempotent */
    stream *s = hub->streams;
    while (s) {
        stream *next = s->next;
        free_stream(hub, s); /* libmicrohttpd has stopped: nothing else holds it */
        s = next;
    }
    pthread_mutex_destroy(&hub->mu);
    pthread_cond_destroy(&hub->cv);
    free(hub);
}

int ann_sse_open(ann_sse_hub *hub, struct MHD_Connection *conn, const ann_tenant *tenant,
                 const uint8_t *req, size_t len, struct MHD_Response **out, ann_err *err)
{
    pthread_mutex_lock(&hub->mu);
    bool stopping = hub->stopping, full = hub->open >= ANN_SSE_MAX_STREAMS;
    if (!stopping && !full)
        hub->open++; /* the place is ours */
    pthread_mutex_unlock(&hub->mu);
    if (stopping)
        return ann_err_set(err, ANN_EUNAVAIL, "the server is shutting down");
    if (full)
        return ann_err_set(err, ANN_ERANGE,
                           "too many tails open on this server's HTTP port (at most %d); use "
                           "the gRPC TailLogEntries or retry later",
                           ANN_SSE_MAX_STREAMS);
    stream *s = ann_xcalloc(1, sizeof *s);
    s->hub = hub;
    s->conn = conn;
    if (ann_tail_open(hub->svc, tenant, req, len, &s->tail, err) != 0 ||
        ann_store_watch(hub->svc->store, tenant->id, s->tail.log_id, on_watch, s, &s->watch, err) !=
            0) {
        free(s);
        pthread_mutex_lock(&hub->mu);
        hub->open--;
        pthread_cond_broadcast(&hub->cv);
        pthread_mutex_unlock(&hub->mu);
        return -1;
    }
    /* The first bytes: how soon to reconnect, and a comment so the headers leave now. */
    static const char hello[] = "retry: 1000\n: tail open\n\n";
    ann_buf_add(&s->out, hello, sizeof hello - 1);
    s->dirty = true; /* the first read: the backlog after the position */
    s->last_sent_ms = now_ms();
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK, reader, s, free_cb);
    if (!r) {
        ann_store_unwatch(hub->svc->store, s->watch);
        ann_buf_release(&s->out);
        free(s);
        pthread_mutex_lock(&hub->mu);
        hub->open--;
        pthread_mutex_unlock(&hub->mu);
        return ann_err_set(err, ANN_EINTERNAL, "http: cannot make a response");
    }
    ann_gauge_add(hub->live, 1);
    pthread_mutex_lock(&hub->mu);
    s->next = hub->streams;
    hub->streams = s;
    kick_locked(hub);
    pthread_mutex_unlock(&hub->mu);
    *out = r;
    return 0;
}
