/*
 * The I/O half of ann_cql: sockets, the handshake, stream ids, the reader
 * thread, futures and the retry policy. See cql.h for the model.
 *
 * Locks, always taken in this order: connect_mu -> wmu -> mu.
 *  - connect_mu serialises (re)connection;
 *  - wmu serialises writes to the socket and guards fd/gen changes;
 *  - mu guards the stream table, attempts' state, the state and counters.
 * The reader thread takes only mu.
 */
#include "cql/cql.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_DOWN = 0, ST_UP, ST_CLOSING };

/* One send of a request on one stream. Owned by its waiter, or, once
 * abandoned (the waiter timed out), by the stream table. */
typedef struct attempt {
    pthread_cond_t cond;
    bool done, abandoned, written;
    int16_t stream;
    uint64_t gen;
    struct timespec deadline; /* the request's timeout runs from its submission */
    int rc;
    ann_err err;
    ann_cql_result res;
} attempt;

struct ann_cql_prepared {
    char *query;
    uint8_t id[64];
    uint16_t id_len;
    int32_t nbind;
    uint16_t *bind_types;
    struct ann_cql_prepared *next;
};

struct ann_cql_future {
    ann_cql_conn *c;
    ann_cql_buf frame;
    size_t *id_off; /* offsets of prepared ids in the frame */
    size_t nid;
    bool idempotent;
    int timeout_ms;
    attempt *cur;
    int submit_rc;
    ann_err submit_err;
};

typedef struct contact {
    char host[256];
    char port[8];
} contact;

struct ann_cql_conn {
    /* configuration (immutable) */
    contact *cps;
    size_t ncps;
    char *username, *password, *keyspace;
    int connect_timeout_ms, request_timeout_ms, max_retries, backoff_ms, max_streams;
    uint32_t max_frame;

    pthread_mutex_t connect_mu, wmu, mu;
    pthread_cond_t stream_cond;

    /* guarded by wmu (written also under mu) */
    int fd;
    uint64_t gen;
    size_t next_cp;

    /* guarded by mu */
    int state;
    int64_t last_rx_ms; /* when the current socket last delivered a frame */
    bool reader_running;
    pthread_t reader;
    attempt **slots;
    int16_t *free_streams;
    int nfree;
    ann_cql_stats stats;
    ann_cql_prepared *prepared;
};

/* ------------------------------------------------------------------ */
/* time and sockets                                                     */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static struct timespec deadline_ts(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Buffered input for one socket. */
typedef struct inbuf {
    int fd;
    uint8_t b[65536];
    size_t start, end;
} inbuf;

static int read_exact(inbuf *in, uint8_t *dst, size_t n)
{
    while (n) {
        if (in->start == in->end) {
            if (n >= sizeof in->b) { /* large body: read straight into place */
                ssize_t k = recv(in->fd, dst, n, 0);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k <= 0)
                    return -1;
                dst += k;
                n -= (size_t)k;
                continue;
            }
            ssize_t k = recv(in->fd, in->b, sizeof in->b, 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return -1;
            in->start = 0;
            in->end = (size_t)k;
        }
        size_t m = in->end - in->start;
        if (m > n)
            m = n;
        memcpy(dst, in->b + in->start, m);
        in->start += m;
        dst += m;
        n -= m;
    }
    return 0;
}

/* Reads and decodes one frame. On success `out` owns the body. */
static int read_frame(inbuf *in, uint32_t max_frame, ann_cql_result *out, ann_err *err)
{
    uint8_t h[ANN_CQL_HEADER_LEN];
    ann_cql_header hd;
    memset(out, 0, sizeof *out);
    if (read_exact(in, h, sizeof h) < 0)
        return ann_err_set(err, ANN_EUNAVAIL, "cql: connection lost: %s",
                           errno ? strerror(errno) : "closed by peer");
    if (ann_cql_header_decode(h, max_frame, &hd, err) < 0)
        return -2;
    uint8_t *body = hd.length ? malloc(hd.length) : NULL;
    if (hd.length && !body)
        return ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
    if (hd.length && read_exact(in, body, hd.length) < 0) {
        free(body);
        return ann_err_set(err, ANN_EUNAVAIL, "cql: connection lost mid-frame");
    }
    if (ann_cql_response_decode(&hd, body, hd.length, out, err) < 0) {
        free(body);
        out->stream = hd.stream; /* the frame itself was well delimited */
        return -3;
    }
    out->buf = body;
    return 0;
}

static int set_timeouts(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        return -1;
    return 0;
}

static int tcp_connect(const contact *cp, int timeout_ms, ann_err *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(cp->host, cp->port, &hints, &res);
    if (g != 0)
        return ann_err_set(err, ANN_EUNAVAIL, "cql: %s:%s: %s", cp->host, cp->port,
                           gai_strerror(g));
    int fd = -1;
    int saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            rc = poll(&pfd, 1, timeout_ms);
            if (rc == 1) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                if (soerr == 0)
                    rc = 0;
                else {
                    errno = soerr;
                    rc = -1;
                }
            } else {
                if (rc == 0)
                    errno = ETIMEDOUT;
                rc = -1;
            }
        }
        if (rc == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return ann_err_set(err, ANN_EUNAVAIL, "cql: connect %s:%s: %s", cp->host, cp->port,
                           strerror(saved));
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int server_error(const ann_cql_result *r, ann_err *err)
{
    return ann_err_set(err, ann_cql_errcode_to_ann(r->error.code), "cql: %s: %s",
                       ann_cql_errcode_name(r->error.code), r->error.message);
}

/* One synchronous exchange on a socket without reader thread (handshake). */
static int sync_exchange(int fd, inbuf *in, uint32_t max_frame, ann_cql_buf *frame,
                         ann_cql_result *out, ann_err *err)
{
    if (write_all(fd, frame->p, frame->len) < 0)
        return ann_err_set(err, ANN_EUNAVAIL, "cql: handshake write: %s", strerror(errno));
    int rc = read_frame(in, max_frame, out, err);
    if (rc < 0)
        return -1;
    return 0;
}

/* STARTUP, authentication, USE. */
static int handshake(ann_cql_conn *c, int fd, ann_err *err)
{
    int ret = -1;
    ann_cql_buf b = {0};
    ann_cql_result r = {0};
    uint8_t *token = NULL;
    inbuf *in = calloc(1, sizeof *in);
    if (!in)
        return ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
    in->fd = fd;

    if (ann_cql_encode_startup(&b, err) < 0)
        goto done;
    if (sync_exchange(fd, in, c->max_frame, &b, &r, err) < 0)
        goto done;
    if (r.opcode == ANN_CQL_OP_AUTHENTICATE) {
        if (!c->username) {
            ann_err_set(err, ANN_EUNAUTH, "cql: server requires authentication (%.*s)",
                        r.authenticator.len, (const char *)r.authenticator.p);
            goto done;
        }
        /* SASL PLAIN: authzid NUL authcid NUL password */
        size_t ul = strlen(c->username), pl = strlen(c->password ? c->password : "");
        size_t tl = ul + pl + 2;
        token = malloc(tl);
        if (!token) {
            ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
            goto done;
        }
        token[0] = 0;
        memcpy(token + 1, c->username, ul);
        token[1 + ul] = 0;
        memcpy(token + 2 + ul, c->password ? c->password : "", pl);
        for (int round = 0;; round++) {
            if (round >= 8) {
                ann_err_set(err, ANN_EUNAUTH, "cql: authentication did not finish");
                goto done;
            }
            ann_cql_result_release(&r);
            if (ann_cql_encode_auth_response(&b, token, (int32_t)tl, err) < 0)
                goto done;
            if (sync_exchange(fd, in, c->max_frame, &b, &r, err) < 0)
                goto done;
            if (r.opcode == ANN_CQL_OP_AUTH_SUCCESS)
                break;
            if (r.opcode == ANN_CQL_OP_AUTH_CHALLENGE)
                continue;
            break;
        }
        if (r.opcode == ANN_CQL_OP_AUTH_SUCCESS) {
            ann_cql_result_release(&r);
            r.opcode = ANN_CQL_OP_READY;
        }
    }
    if (r.opcode == ANN_CQL_OP_ERROR) {
        server_error(&r, err);
        goto done;
    }
    if (r.opcode != ANN_CQL_OP_READY) {
        ann_err_set(err, ANN_EIO, "cql: protocol: %s during handshake",
                    ann_cql_opcode_name(r.opcode));
        goto done;
    }
    if (c->keyspace) {
        char q[300];
        snprintf(q, sizeof q, "USE \"%s\"", c->keyspace);
        ann_cql_params p;
        ann_cql_params_init(&p);
        ann_cql_result_release(&r);
        if (ann_cql_encode_query(&b, q, &p, err) < 0)
            goto done;
        if (sync_exchange(fd, in, c->max_frame, &b, &r, err) < 0)
            goto done;
        if (r.opcode == ANN_CQL_OP_ERROR) {
            server_error(&r, err);
            goto done;
        }
    }
    ret = 0;
done:
    free(token);
    free(in);
    ann_cql_result_release(&r);
    ann_cql_buf_release(&b);
    return ret;
}

/* ------------------------------------------------------------------ */
/* stream table                                                         */

static void attempt_free(attempt *a)
{
    if (!a)
        return;
    pthread_cond_destroy(&a->cond);
    ann_cql_result_release(&a->res);
    free(a);
}

/* Completes `a` (mu held). */
static void attempt_finish(ann_cql_conn *c, attempt *a)
{
    c->slots[a->stream] = NULL;
    c->free_streams[c->nfree++] = a->stream;
    c->stats.in_flight--;
    pthread_cond_signal(&c->stream_cond);
    if (a->abandoned) {
        attempt_free(a);
        return;
    }
    a->done = true;
    pthread_cond_signal(&a->cond);
}

/* Fails every attempt in flight (mu held): the connection is gone. */
static void fail_all(ann_cql_conn *c, const char *why)
{
    for (int s = 0; s < c->max_streams; s++) {
        attempt *a = c->slots[s];
        if (!a)
            continue;
        a->rc = ann_err_set(&a->err, ANN_EUNAVAIL, "cql: connection lost: %s", why);
        attempt_finish(c, a);
    }
    pthread_cond_broadcast(&c->stream_cond);
}

static void *reader_main(void *arg)
{
    ann_cql_conn *c = arg;
    pthread_mutex_lock(&c->wmu);
    int fd = c->fd;
    uint64_t gen = c->gen; /* this reader's socket: it answers only attempts sent on it */
    pthread_mutex_unlock(&c->wmu);
    inbuf *in = calloc(1, sizeof *in);
    ann_err err;
    ann_err_clear(&err);
    if (!in) {
        ann_err_set(&err, ANN_EINTERNAL, "out of memory");
        goto dead;
    }
    in->fd = fd;
    for (;;) {
        ann_cql_result r;
        int rc = read_frame(in, c->max_frame, &r, &err);
        if (rc == -1 || rc == -2)
            break; /* lost, or framing can no longer be trusted */
        pthread_mutex_lock(&c->mu);
        c->last_rx_ms = now_ms();
        if (r.stream < 0) { /* EVENT: not registered for, ignored */
            pthread_mutex_unlock(&c->mu);
            ann_cql_result_release(&r);
            continue;
        }
        attempt *a = r.stream < c->max_streams ? c->slots[r.stream] : NULL;
        if (!a || a->gen != gen) { /* an attempt of another socket never takes this answer */
            pthread_mutex_unlock(&c->mu);
            ann_cql_result_release(&r);
            continue;
        }
        if (rc == -3) {
            a->rc = -1;
            a->err = err;
        } else {
            a->rc = 0;
            a->res = r;
        }
        attempt_finish(c, a);
        pthread_mutex_unlock(&c->mu);
    }
dead:
    free(in);
    pthread_mutex_lock(&c->mu);
    if (c->state == ST_UP)
        c->state = ST_DOWN;
    fail_all(c, err.msg[0] ? err.msg : "closed");
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Makes the connection usable (connect_mu taken here). */
static int ensure_up(ann_cql_conn *c, ann_err *err)
{
    int ret = -1;
    pthread_mutex_lock(&c->connect_mu);
    pthread_mutex_lock(&c->mu);
    int state = c->state;
    bool joinable = c->reader_running;
    pthread_mutex_unlock(&c->mu);
    if (state == ST_UP) {
        ret = 0;
        goto done;
    }
    if (state == ST_CLOSING) {
        ann_err_set(err, ANN_EUNAVAIL, "cql: connection closed");
        goto done;
    }
    /* The reader of the old socket has failed everything and is exiting. */
    if (joinable) {
        pthread_mutex_lock(&c->wmu);
        if (c->fd >= 0)
            shutdown(c->fd, SHUT_RDWR);
        pthread_mutex_unlock(&c->wmu);
        pthread_join(c->reader, NULL);
        pthread_mutex_lock(&c->mu);
        c->reader_running = false;
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_lock(&c->wmu);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    ann_err last;
    ann_err_set(&last, ANN_EUNAVAIL, "cql: no contact points");
    for (size_t k = 0; k < c->ncps; k++) {
        const contact *cp = &c->cps[(c->next_cp + k) % c->ncps];
        int fd = tcp_connect(cp, c->connect_timeout_ms, &last);
        if (fd < 0)
            continue;
        if (set_timeouts(fd, c->connect_timeout_ms) < 0 || handshake(c, fd, &last) < 0 ||
            set_timeouts(fd, 0) < 0) {
            close(fd);
            if (last.code == ANN_EUNAUTH || last.code == ANN_EINVAL)
                break; /* not transient */
            continue;
        }
        c->next_cp = (c->next_cp + k) % c->ncps;
        pthread_mutex_lock(&c->mu);
        c->fd = fd;
        c->gen++;
        c->state = ST_UP;
        c->last_rx_ms = now_ms();
        c->stats.connects++;
        pthread_mutex_unlock(&c->mu);
        break;
    }
    if (c->fd < 0) {
        c->next_cp = (c->next_cp + 1) % c->ncps;
        pthread_mutex_unlock(&c->wmu);
        if (err)
            *err = last;
        goto done;
    }
    pthread_mutex_unlock(&c->wmu);
    if (pthread_create(&c->reader, NULL, reader_main, c) != 0) {
        /* Requests may already be on the new socket: no reader will answer them. */
        pthread_mutex_lock(&c->wmu);
        shutdown(c->fd, SHUT_RDWR);
        pthread_mutex_lock(&c->mu);
        c->state = ST_DOWN;
        fail_all(c, "cannot start the reader thread");
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_unlock(&c->wmu);
        ann_err_set(err, ANN_EINTERNAL, "cql: cannot start the reader thread");
        goto done;
    }
    pthread_mutex_lock(&c->mu);
    c->reader_running = true;
    pthread_mutex_unlock(&c->mu);
    ret = 0;
done:
    pthread_mutex_unlock(&c->connect_mu);
    return ret;
}

/* Sends f's frame as a new attempt. On failure to send, f->cur is a finished
 * attempt carrying the error (written == false), so the wait decides. */
static int attempt_send(ann_cql_future *f, ann_err *err)
{
    ann_cql_conn *c = f->c;
    attempt *a = calloc(1, sizeof *a);
    if (!a)
        return ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
    pthread_cond_init(&a->cond, NULL);
    f->cur = a;

    pthread_mutex_lock(&c->mu);
    bool up = c->state == ST_UP;
    pthread_mutex_unlock(&c->mu);
    if (!up && ensure_up(c, &a->err) < 0) { /* connect_mu only off the fast path */
        a->rc = -1;
        a->done = true;
        return 0;
    }
    int timeout = f->timeout_ms;
    struct timespec dl = deadline_ts(timeout);
    a->deadline = dl;
    pthread_mutex_lock(&c->mu);
    while (c->state == ST_UP && c->nfree == 0) {
        if (pthread_cond_timedwait(&c->stream_cond, &c->mu, &dl) == ETIMEDOUT)
            break;
    }
    if (c->state != ST_UP || c->nfree == 0) {
        a->rc = ann_err_set(&a->err, ANN_EUNAVAIL,
                            c->state != ST_UP ? "cql: connection lost"
                                              : "cql: no free stream within %d ms",
                            timeout);
        a->done = true;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    a->stream = c->free_streams[--c->nfree];
    a->gen = c->gen;
    c->slots[a->stream] = a;
    if (++c->stats.in_flight > c->stats.max_in_flight)
        c->stats.max_in_flight = c->stats.in_flight;
    pthread_mutex_unlock(&c->mu);

    ann_cql_frame_set_stream(f->frame.p, a->stream);
    pthread_mutex_lock(&c->wmu);
    pthread_mutex_lock(&c->mu);
    bool same = c->gen == a->gen && c->state == ST_UP && !a->done;
    if (same)
        a->written = true;
    int fd = c->fd;
    pthread_mutex_unlock(&c->mu);
    if (same && write_all(fd, f->frame.p, f->frame.len) < 0) {
        /* The reader sees the shutdown and fails every attempt, this one too. */
        shutdown(fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&c->wmu);
    /* If the generation changed before the write, fail_all() already finished
     * `a` with written == false. */
    return 0;
}

static ann_cql_future *future_new(ann_cql_conn *c, bool idempotent, int timeout_ms)
{
    ann_cql_future *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->c = c;
    f->idempotent = idempotent;
    f->timeout_ms = timeout_ms > 0 ? timeout_ms : c->request_timeout_ms;
    return f;
}

static void future_free(ann_cql_future *f)
{
    if (!f)
        return;
    ann_cql_buf_release(&f->frame);
    free(f->id_off);
    free(f);
}

/* Waits for f->cur. Returns with mu released; on timeout the attempt is
 * abandoned to the stream table and f->cur is a fresh finished attempt.
 * A timeout during which the socket delivered nothing at all means the peer
 * is gone without closing (a half-open connection): the socket is shut down,
 * so everything in flight fails over and the next request reconnects. */
static void attempt_wait(ann_cql_future *f)
{
    ann_cql_conn *c = f->c;
    attempt *a = f->cur;
    /* From submission, not from this call: a future waited on late has had its time. */
    struct timespec dl = a->deadline;
    pthread_mutex_lock(&c->mu);
    while (!a->done) {
        if (pthread_cond_timedwait(&a->cond, &c->mu, &dl) == ETIMEDOUT && !a->done) {
            a->abandoned = true;
            uint64_t gen = a->gen;
            bool silent =
                c->state == ST_UP && c->gen == gen && now_ms() - c->last_rx_ms >= f->timeout_ms;
            if (silent)
                c->state = ST_DOWN; /* the next submit reconnects */
            pthread_mutex_unlock(&c->mu);
            if (silent) {
                pthread_mutex_lock(&c->wmu);
                if (c->gen == gen && c->fd >= 0)
                    shutdown(c->fd, SHUT_RDWR);
                pthread_mutex_unlock(&c->wmu);
            }
            attempt *t = calloc(1, sizeof *t);
            if (!t)
                abort(); /* no way to report: the old attempt is no longer ours */
            pthread_cond_init(&t->cond, NULL);
            t->done = true;
            t->written = true;
            t->rc = ann_err_set(&t->err, ANN_EUNAVAIL, "cql: request timed out after %d ms",
                                f->timeout_ms);
            f->cur = t;
            return;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

static ann_cql_prepared *find_prepared_by_id(ann_cql_conn *c, const uint8_t *id, uint16_t n)
{
    ann_cql_prepared *found = NULL;
    pthread_mutex_lock(&c->mu);
    for (ann_cql_prepared *p = c->prepared; p; p = p->next)
        if (p->id_len == n && memcmp(p->id, id, n) == 0) {
            found = p;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    return found;
}

static int do_prepare(ann_cql_conn *c, const char *cql, ann_cql_result *out, ann_err *err);

/* UNPREPARED: prepares the statement again and patches the frame. */
static int reprepare(ann_cql_future *f, const ann_cql_error *e, ann_err *err)
{
    ann_cql_conn *c = f->c;
    ann_cql_prepared *ps = find_prepared_by_id(c, e->unprepared_id, e->unprepared_id_len);
    if (!ps)
        return ann_err_set(err, ANN_EINTERNAL, "cql: unprepared: unknown statement id");
    ann_cql_result r;
    if (do_prepare(c, ps->query, &r, err) < 0) {
        ann_cql_result_release(&r);
        return -1;
    }
    int ret = 0;
    uint8_t old[64];
    uint16_t old_len = e->unprepared_id_len;
    memcpy(old, e->unprepared_id, old_len);
    if ((uint16_t)r.prepared_id.len != old_len) {
        ret = ann_err_set(err, ANN_EINTERNAL, "cql: re-prepared id changed length");
        goto done;
    }
    pthread_mutex_lock(&c->mu);
    memcpy(ps->id, r.prepared_id.p, old_len);
    c->stats.reprepares++;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < f->nid; i++)
        if (f->id_off[i] && memcmp(f->frame.p + f->id_off[i], old, old_len) == 0)
            memcpy(f->frame.p + f->id_off[i], r.prepared_id.p, old_len);
done:
    ann_cql_result_release(&r);
    return ret;
}

static bool retryable_server_error(int32_t code)
{
    switch (code) {
    case ANN_CQL_E_UNAVAILABLE:
    case ANN_CQL_E_OVERLOADED:
    case ANN_CQL_E_IS_BOOTSTRAPPING:
    case ANN_CQL_E_READ_TIMEOUT:
    case ANN_CQL_E_WRITE_TIMEOUT:
        return true;
    }
    return false;
}

int ann_cql_future_wait(ann_cql_future *f, ann_cql_result *out, ann_err *err)
{
    int ret = -1;
    memset(out, 0, sizeof *out);
    if (!f)
        return ann_err_set(err, ANN_EINVAL, "cql: no future");
    ann_cql_conn *c = f->c;
    int retries = 0, reprepares = 0;
    for (;;) {
        attempt_wait(f);
        attempt *a = f->cur;
        bool retry = false;
        if (a->rc < 0) {
            /* Transport failure: resend if it never left, or if idempotent. */
            retry = a->err.code == ANN_EUNAVAIL && (!a->written || f->idempotent) &&
                    retries < c->max_retries;
            if (!retry) {
                if (err)
                    *err = a->err;
                goto done;
            }
        } else if (a->res.opcode == ANN_CQL_OP_ERROR) {
            const ann_cql_error *e = &a->res.error;
            if (e->code == ANN_CQL_E_UNPREPARED && reprepares < 3) {
                reprepares++;
                if (reprepare(f, e, err) < 0)
                    goto done;
                attempt_free(a);
                f->cur = NULL;
                if (attempt_send(f, err) < 0)
                    goto done;
                continue;
            }
            retry = f->idempotent && retryable_server_error(e->code) && retries < c->max_retries;
            if (!retry) {
                server_error(&a->res, err);
                *out = a->res;
                memset(&a->res, 0, sizeof a->res);
                goto done;
            }
        } else {
            *out = a->res;
            memset(&a->res, 0, sizeof a->res);
            ret = 0;
            goto done;
        }
        /* retry */
        retries++;
        pthread_mutex_lock(&c->mu);
        c->stats.retries++;
        pthread_mutex_unlock(&c->mu);
        long backoff = (long)c->backoff_ms << (retries - 1);
        sleep_ms(backoff > 2000 ? 2000 : (int)backoff);
        attempt_free(a);
        f->cur = NULL;
        if (attempt_send(f, err) < 0)
            goto done;
    }
done:
    attempt_free(f->cur);
    future_free(f);
    return ret;
}

/* ------------------------------------------------------------------ */
/* public calls                                                         */

static ann_cql_future *submit(ann_cql_future *f, ann_err *err)
{
    if (attempt_send(f, err) < 0) {
        attempt_free(f->cur);
        future_free(f);
        return NULL;
    }
    return f;
}

ann_cql_future *ann_cql_query_async(ann_cql_conn *c, const char *cql, const ann_cql_params *p,
                                    ann_err *err)
{
    ann_cql_params def;
    if (!p) {
        ann_cql_params_init(&def);
        p = &def;
    }
    ann_cql_future *f = future_new(c, p->idempotent, p->timeout_ms);
    if (!f) {
        ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
        return NULL;
    }
    if (ann_cql_encode_query(&f->frame, cql, p, err) < 0) {
        future_free(f);
        return NULL;
    }
    return submit(f, err);
}

ann_cql_future *ann_cql_execute_async(ann_cql_conn *c, ann_cql_prepared *ps,
                                      const ann_cql_params *p, ann_err *err)
{
    ann_cql_params def;
    if (!p) {
        ann_cql_params_init(&def);
        p = &def;
    }
    ann_cql_future *f = future_new(c, p->idempotent, p->timeout_ms);
    if (!f) {
        ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
        return NULL;
    }
    f->id_off = malloc(sizeof *f->id_off);
    if (!f->id_off) {
        future_free(f);
        ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
        return NULL;
    }
    uint8_t id[64];
    pthread_mutex_lock(&c->mu);
    uint16_t id_len = ps->id_len;
    memcpy(id, ps->id, id_len);
    pthread_mutex_unlock(&c->mu);
    if (ann_cql_encode_execute(&f->frame, id, id_len, p, err) < 0) {
        future_free(f);
        return NULL;
    }
    f->id_off[0] = ANN_CQL_HEADER_LEN + 2;
    f->nid = 1;
    return submit(f, err);
}

ann_cql_future *ann_cql_batch_async(ann_cql_conn *c, const ann_cql_batch *b, ann_err *err)
{
    ann_cql_future *f = future_new(c, b->idempotent, b->timeout_ms);
    ann_cql_batch_stmt *st = calloc(b->n ? b->n : 1, sizeof *st);
    uint8_t(*ids)[64] = calloc(b->n ? b->n : 1, sizeof *ids);
    if (f)
        f->id_off = calloc(b->n ? b->n : 1, sizeof *f->id_off);
    if (!f || !st || !ids || !f->id_off) {
        ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
        goto fail;
    }
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < b->n; i++) {
        const ann_cql_batch_item *it = &b->items[i];
        st[i].query = it->query;
        st[i].values = it->values;
        st[i].nvalues = it->nvalues;
        if (it->ps) {
            memcpy(ids[i], it->ps->id, it->ps->id_len);
            st[i].id = ids[i];
            st[i].id_len = it->ps->id_len;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (ann_cql_encode_batch(&f->frame, b->type, st, b->n, b->consistency, b->serial_consistency,
                             b->has_timestamp, b->timestamp_us, f->id_off, err) < 0)
        goto fail;
    f->nid = b->n;
    free(st);
    free(ids);
    return submit(f, err);
fail:
    free(st);
    free(ids);
    future_free(f);
    return NULL;
}

int ann_cql_query(ann_cql_conn *c, const char *cql, const ann_cql_params *p, ann_cql_result *out,
                  ann_err *err)
{
    memset(out, 0, sizeof *out);
    ann_cql_future *f = ann_cql_query_async(c, cql, p, err);
    return f ? ann_cql_future_wait(f, out, err) : -1;
}

int ann_cql_execute(ann_cql_conn *c, ann_cql_prepared *ps, const ann_cql_params *p,
                    ann_cql_result *out, ann_err *err)
{
    memset(out, 0, sizeof *out);
    ann_cql_future *f = ann_cql_execute_async(c, ps, p, err);
    return f ? ann_cql_future_wait(f, out, err) : -1;
}

int ann_cql_batch_run(ann_cql_conn *c, const ann_cql_batch *b, ann_cql_result *out, ann_err *err)
{
    memset(out, 0, sizeof *out);
    ann_cql_future *f = ann_cql_batch_async(c, b, err);
    return f ? ann_cql_future_wait(f, out, err) : -1;
}

int ann_cql_options(ann_cql_conn *c, ann_cql_result *out, ann_err *err)
{
    memset(out, 0, sizeof *out);
    ann_cql_future *f = future_new(c, true, 0);
    if (!f)
        return ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
    if (ann_cql_encode_options(&f->frame, err) < 0) {
        future_free(f);
        return -1;
    }
    f = submit(f, err);
    if (!f)
        return -1;
    if (ann_cql_future_wait(f, out, err) < 0)
        return -1;
    if (out->opcode != ANN_CQL_OP_SUPPORTED)
        return ann_err_set(err, ANN_EIO, "cql: protocol: %s in answer to OPTIONS",
                           ann_cql_opcode_name(out->opcode));
    return 0;
}

static int do_prepare(ann_cql_conn *c, const char *cql, ann_cql_result *out, ann_err *err)
{
    memset(out, 0, sizeof *out);
    ann_cql_future *f = future_new(c, true, 0);
    if (!f)
        return ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
    if (ann_cql_encode_prepare(&f->frame, cql, err) < 0) {
        future_free(f);
        return -1;
    }
    f = submit(f, err);
    if (!f)
        return -1;
    if (ann_cql_future_wait(f, out, err) < 0)
        return -1;
    if (out->opcode != ANN_CQL_OP_RESULT || out->kind != ANN_CQL_RESULT_PREPARED)
        return ann_err_set(err, ANN_EIO, "cql: protocol: PREPARE answered by %s/%d",
                           ann_cql_opcode_name(out->opcode), out->kind);
    if ((size_t)out->prepared_id.len > sizeof((ann_cql_prepared *)0)->id)
        return ann_err_set(err, ANN_EIO, "cql: protocol: prepared id of %d bytes",
                           out->prepared_id.len);
    return 0;
}

int ann_cql_prepare(ann_cql_conn *c, const char *cql, ann_cql_prepared **out, ann_err *err)
{
    int ret = -1;
    ann_cql_result r = {0};
    ann_cql_prepared *ps = NULL;
    pthread_mutex_lock(&c->mu);
    for (ann_cql_prepared *p = c->prepared; p; p = p->next)
        if (strcmp(p->query, cql) == 0) {
            *out = p;
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
    pthread_mutex_unlock(&c->mu);
    if (do_prepare(c, cql, &r, err) < 0)
        goto done;
    ps = calloc(1, sizeof *ps);
    if (!ps || !(ps->query = strdup(cql))) {
        ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
        goto done;
    }
    ps->id_len = (uint16_t)r.prepared_id.len;
    memcpy(ps->id, r.prepared_id.p, ps->id_len);
    ps->nbind = r.nbind;
    if (r.nbind > 0) {
        ps->bind_types = calloc((size_t)r.nbind, sizeof *ps->bind_types);
        if (!ps->bind_types) {
            ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
            goto done;
        }
        for (int32_t i = 0; i < r.nbind; i++)
            ps->bind_types[i] = r.bind[i].type;
    }
    pthread_mutex_lock(&c->mu);
    /* Another thread may have prepared the same text meanwhile. */
    ann_cql_prepared *dup = NULL;
    for (ann_cql_prepared *p = c->prepared; p; p = p->next)
        if (strcmp(p->query, cql) == 0)
            dup = p;
    if (dup) {
        *out = dup;
    } else {
        ps->next = c->prepared;
        c->prepared = ps;
        *out = ps;
        ps = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    ret = 0;
done:
    if (ps) {
        free(ps->query);
        free(ps->bind_types);
        free(ps);
    }
    ann_cql_result_release(&r);
    return ret;
}

int32_t ann_cql_prepared_nbind(const ann_cql_prepared *ps)
{
    return ps->nbind;
}

uint16_t ann_cql_prepared_bind_type(const ann_cql_prepared *ps, int32_t i)
{
    return i >= 0 && i < ps->nbind ? ps->bind_types[i] : 0xffff;
}

/* ------------------------------------------------------------------ */
/* lifecycle                                                            */

static int parse_contacts(ann_cql_conn *c, const char *spec, ann_err *err)
{
    if (!spec || !*spec)
        return ann_err_set(err, ANN_EINVAL, "cql: contact_points: empty");
    size_t n = 1;
    for (const char *s = spec; *s; s++)
        if (*s == ',')
            n++;
    c->cps = calloc(n, sizeof *c->cps);
    if (!c->cps)
        return ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
    const char *s = spec;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        while (len && *s == ' ') {
            s++;
            len--;
        }
        if (len) {
            char tmp[300];
            if (len >= sizeof tmp)
                return ann_err_set(err, ANN_EINVAL, "cql: contact_points: entry too long");
            memcpy(tmp, s, len);
            tmp[len] = 0;
            contact *cp = &c->cps[c->ncps];
            char *host = tmp, *port = NULL;
            if (tmp[0] == '[') { /* [v6]:port */
                char *rb = strchr(tmp, ']');
                if (!rb)
                    return ann_err_set(err, ANN_EINVAL, "cql: contact_points: %s", tmp);
                *rb = 0;
                host = tmp + 1;
                if (rb[1] == ':')
                    port = rb + 2;
            } else {
                char *colon = strrchr(tmp, ':');
                if (colon && strchr(tmp, ':') == colon) {
                    *colon = 0;
                    port = colon + 1;
                }
            }
            if (!*host || strlen(host) >= sizeof cp->host ||
                (port && (!*port || strlen(port) >= sizeof cp->port)))
                return ann_err_set(err, ANN_EINVAL, "cql: contact_points: bad entry");
            strcpy(cp->host, host);
            strcpy(cp->port, port ? port : "9042");
            c->ncps++;
        }
        if (!e)
            break;
        s = e + 1;
    }
    if (!c->ncps)
        return ann_err_set(err, ANN_EINVAL, "cql: contact_points: empty");
    return 0;
}

int ann_cql_conn_new(const ann_cql_config *cfg, ann_cql_conn **out, ann_err *err)
{
    *out = NULL;
    ann_cql_conn *c = calloc(1, sizeof *c);
    if (!c)
        return ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
    c->fd = -1;
    pthread_mutex_init(&c->connect_mu, NULL);
    pthread_mutex_init(&c->wmu, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->stream_cond, NULL);
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 5000;
    c->request_timeout_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 12000;
    c->max_retries = cfg->max_retries > 0 ? cfg->max_retries : (cfg->max_retries < 0 ? 0 : 3);
    c->backoff_ms = cfg->retry_backoff_ms > 0 ? cfg->retry_backoff_ms : 50;
    c->max_streams = cfg->max_streams > 0 ? cfg->max_streams : 1024;
    if (c->max_streams > 32768)
        c->max_streams = 32768;
    c->max_frame = cfg->max_frame_len ? cfg->max_frame_len : ANN_CQL_MAX_BODY;
    if (parse_contacts(c, cfg->contact_points, err) < 0)
        goto fail;
    if ((cfg->username && !(c->username = strdup(cfg->username))) ||
        (cfg->password && !(c->password = strdup(cfg->password))) ||
        (cfg->keyspace && !(c->keyspace = strdup(cfg->keyspace)))) {
        ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
        goto fail;
    }
    if (c->keyspace && (strlen(c->keyspace) > 48 || strchr(c->keyspace, '"'))) {
        ann_err_set(err, ANN_EINVAL, "cql: keyspace: bad name");
        goto fail;
    }
    c->slots = calloc((size_t)c->max_streams, sizeof *c->slots);
    c->free_streams = calloc((size_t)c->max_streams, sizeof *c->free_streams);
    if (!c->slots || !c->free_streams) {
        ann_err_set(err, ANN_EINTERNAL, "cql: out of memory");
        goto fail;
    }
    for (int s = c->max_streams - 1; s >= 0; s--)
        c->free_streams[c->nfree++] = (int16_t)s;
    if (ensure_up(c, err) < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    ann_cql_conn_free(c);
    return -1;
}

void ann_cql_conn_break(ann_cql_conn *c)
{
    pthread_mutex_lock(&c->wmu);
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&c->wmu);
}

void ann_cql_conn_stats(ann_cql_conn *c, ann_cql_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}

void ann_cql_conn_free(ann_cql_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->connect_mu);
    pthread_mutex_lock(&c->wmu);
    pthread_mutex_lock(&c->mu);
    c->state = ST_CLOSING;
    bool joinable = c->reader_running;
    pthread_mutex_unlock(&c->mu);
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&c->wmu);
    if (joinable)
        pthread_join(c->reader, NULL);
    pthread_mutex_unlock(&c->connect_mu);
    if (c->fd >= 0)
        close(c->fd);
    if (c->slots)
        for (int s = 0; s < c->max_streams; s++)
            attempt_free(c->slots[s]);
    for (ann_cql_prepared *p = c->prepared, *n; p; p = n) {
        n = p->next;
        free(p->query);
        free(p->bind_types);
        free(p);
    }
    free(c->slots);
    free(c->free_streams);
    free(c->cps);
    free(c->username);
    free(c->password);
    free(c->keyspace);
    pthread_cond_destroy(&c->stream_cond);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->wmu);
    pthread_mutex_destroy(&c->connect_mu);
    free(c);
}

int ann_cql_add_columns(ann_cql_conn *c, const char *ks, const char *table, const char *probe,
                        const char *columns, ann_err *err)
{
    char q[768];
    for (int attempt = 0;; attempt++) {
        snprintf(q, sizeof q,
                 "SELECT column_name FROM system_schema.columns WHERE keyspace_name = '%s' "
                 "AND table_name = '%s' AND column_name = '%s'",
                 ks, table, probe);
        ann_cql_result r;
        int rc = ann_cql_query(c, q, NULL, &r, err);
        bool have = rc == 0 && r.nrows > 0;
        ann_cql_result_release(&r);
        if (rc < 0)
            return -1;
        if (have)
            return 0;
        snprintf(q, sizeof q, "ALTER TABLE %s.%s ADD (%s)", ks, table, columns);
        ann_err e;
        rc = ann_cql_query(c, q, NULL, &r, &e);
        ann_cql_result_release(&r);
        if (rc == 0)
            return 0;
        if (attempt == 1) {
            *err = e;
            return -1;
        }
    }
}
