/*
 * The client against a scripted server on loopback (label `unit`): the
 * answers a healthy Cassandra node cannot be made to give on demand
 * (write/read timeouts, overloaded, is_bootstrapping, an AUTH_CHALLENGE
 * round, silence, a dropped connection, garbage, events, 100 answers held
 * back and sent in reverse), so the retry policy and the stream table are
 * checked exactly. The query text tells the server what to do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cql/cql.h"
#include "frames.h"

#define MAXQ 64

typedef struct fake {
    int lfd, port;
    pthread_t th;
    pthread_mutex_t mu;
    bool stop, auth;
    int accepted;
    int auth_rounds;
    struct {
        char text[64];
        int count;
    } seen[MAXQ];
    int nseen;
} fake;

static int seen_bump(fake *f, const char *q)
{
    pthread_mutex_lock(&f->mu);
    int c = 0;
    for (int i = 0; i < f->nseen; i++)
        if (strcmp(f->seen[i].text, q) == 0) {
            c = ++f->seen[i].count;
            goto done;
        }
    if (f->nseen < MAXQ) {
        snprintf(f->seen[f->nseen].text, sizeof f->seen[0].text, "%s", q);
        f->seen[f->nseen++].count = c = 1;
    }
done:
    pthread_mutex_unlock(&f->mu);
    return c;
}

static int seen_count(fake *f, const char *q)
{
    int c = 0;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->nseen; i++)
        if (strcmp(f->seen[i].text, q) == 0)
            c = f->seen[i].count;
    pthread_mutex_unlock(&f->mu);
    return c;
}

/* For requests that get no answer: waits (up to 10 s) until the server has
 * read `want` of them, and returns how many it has. */
static int seen_wait(fake *f, const char *q, int want)
{
    int c = 0;
    for (int i = 0; i < 1000 && (c = seen_count(f, q)) < want; i++)
        usleep(10000);
    return c;
}

static int rd_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void send_buf(int fd, ann_cql_buf *b, int16_t stream)
{
    b->p[2] = (uint8_t)((uint16_t)stream >> 8);
    b->p[3] = (uint8_t)stream;
    (void)!write(fd, b->p, b->len);
}

static void reply_void(int fd, int16_t stream)
{
    ann_cql_buf b = {0};
    fb_begin(&b, ANN_CQL_OP_RESULT, 0, stream);
    ann_cql_buf_i32(&b, ANN_CQL_RESULT_VOID);
    fb_end(&b);
    send_buf(fd, &b, stream);
    ann_cql_buf_release(&b);
}

static void reply_text(int fd, int16_t stream, const char *text)
{
    ann_cql_buf b = {0};
    fb_begin(&b, ANN_CQL_OP_RESULT, 0, stream);
    ann_cql_buf_i32(&b, ANN_CQL_RESULT_SET_KEYSPACE);
    ann_cql_buf_string(&b, text, strlen(text));
    fb_end(&b);
    send_buf(fd, &b, stream);
    ann_cql_buf_release(&b);
}

static void reply_frame(int fd, int16_t stream, frame_fn fn)
{
    ann_cql_buf b = {0};
    fn(&b);
    send_buf(fd, &b, stream);
    ann_cql_buf_release(&b);
}

typedef struct held {
    int16_t stream;
    char text[64];
} held;

/* Serves one connection until it closes. */
static void serve(fake *f, int fd)
{
    held hold[128];
    int nhold = 0;
    for (;;) {
        uint8_t h[9];
        if (rd_all(fd, h, 9) < 0)
            break;
        uint32_t len = (uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8];
        if (h[0] != 0x04 || len > (1u << 20))
            break;
        uint8_t *body = malloc(len + 1);
        if (!body || rd_all(fd, body, len) < 0) {
            free(body);
            break;
        }
        int16_t stream = (int16_t)(uint16_t)((uint16_t)h[2] << 8 | h[3]);
        uint8_t op = h[4];
        bool close_now = false;
        if (op == ANN_CQL_OP_STARTUP) {
            reply_frame(fd, stream, f->auth ? frame_authenticate : frame_ready);
        } else if (op == ANN_CQL_OP_AUTH_RESPONSE) {
            /* SASL PLAIN token: NUL user NUL password */
            bool good = len == 4 + 9 && memcmp(body + 4, "\0user\0pw1", 9) == 0;
            pthread_mutex_lock(&f->mu);
            int round = ++f->auth_rounds;
            pthread_mutex_unlock(&f->mu);
            if (!good) {
                ann_cql_buf b = {0};
                fb_begin(&b, ANN_CQL_OP_ERROR, 0, stream);
                ann_cql_buf_i32(&b, ANN_CQL_E_AUTH);
                ann_cql_buf_string(&b, "bad credentials", 15);
                fb_end(&b);
                send_buf(fd, &b, stream);
                ann_cql_buf_release(&b);
            } else {
                reply_frame(fd, stream,
                            round == 1 ? frame_auth_challenge : frame_auth_success_null);
            }
        } else if (op == ANN_CQL_OP_OPTIONS) {
            reply_frame(fd, stream, frame_supported);
        } else if (op == ANN_CQL_OP_QUERY && len >= 4) {
            uint32_t ql = (uint32_t)body[0] << 24 | (uint32_t)body[1] << 16 |
                          (uint32_t)body[2] << 8 | body[3];
            char q[64] = {0};
            memcpy(q, body + 4, ql < 63 && ql <= len - 4 ? ql : 0);
            int n = seen_bump(f, q);
            if (strcmp(q, "ok") == 0)
                reply_void(fd, stream);
            else if (strcmp(q, "write_timeout") == 0)
                reply_frame(fd, stream, frame_err_write_timeout);
            else if (strcmp(q, "read_timeout") == 0)
                reply_frame(fd, stream, frame_err_read_timeout);
            else if (strcmp(q, "unavailable") == 0)
                reply_frame(fd, stream, frame_err_unavailable);
            else if (strcmp(q, "syntax") == 0)
                reply_frame(fd, stream, frame_err_syntax);
            else if (strncmp(q, "flaky_overloaded", 16) == 0) {
                if (n <= 2)
                    reply_frame(fd, stream, frame_err_overloaded);
                else
                    reply_void(fd, stream);
            } else if (strncmp(q, "flaky_bootstrapping", 19) == 0) {
                if (n <= 1) {
                    ann_cql_buf b = {0};
                    fb_begin(&b, ANN_CQL_OP_ERROR, 0, stream);
                    ann_cql_buf_i32(&b, ANN_CQL_E_IS_BOOTSTRAPPING);
                    ann_cql_buf_string(&b, "bootstrapping", 13);
                    fb_end(&b);
                    send_buf(fd, &b, stream);
                    ann_cql_buf_release(&b);
                } else {
                    reply_void(fd, stream);
                }
            } else if (strncmp(q, "silent", 6) == 0) {
                /* never answered */
            } else if (strncmp(q, "drop_once", 9) == 0) {
                if (n == 1)
                    close_now = true;
                else
                    reply_void(fd, stream);
            } else if (strncmp(q, "drop", 4) == 0) {
                close_now = true;
            } else if (strcmp(q, "garbage") == 0) {
                (void)!write(fd, "\x03\x00\x00\x00\x08\x00\x00\x00\x00", 9);
            } else if (strcmp(q, "event") == 0) {
                reply_frame(fd, -1, frame_event_status);
                reply_void(fd, stream);
            } else if (strncmp(q, "hold:", 5) == 0) {
                hold[nhold].stream = stream;
                snprintf(hold[nhold].text, sizeof hold[0].text, "%s", q);
                if (++nhold == 100) {
                    for (int i = nhold - 1; i >= 0; i--)
                        reply_text(fd, hold[i].stream, hold[i].text);
                    nhold = 0;
                }
            } else {
                reply_frame(fd, stream, frame_err_syntax);
            }
        } else {
            reply_frame(fd, stream, frame_err_syntax);
        }
        free(body);
        if (close_now)
            break;
    }
    close(fd);
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        bool stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        struct pollfd p = {f->lfd, POLLIN, 0};
        if (poll(&p, 1, 50) != 1)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&f->mu);
        f->accepted++;
        pthread_mutex_unlock(&f->mu);
        serve(f, fd);
    }
    return NULL;
}

static fake *fake_start(bool auth)
{
    fake *f = calloc(1, sizeof *f);
    assert_non_null(f);
    pthread_mutex_init(&f->mu, NULL);
    f->auth = auth;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    socklen_t sl = sizeof a;
    getsockname(f->lfd, (struct sockaddr *)&a, &sl);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(fake *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->th, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static ann_cql_conn *connect_to(fake *f, int timeout_ms, const char *user, const char *pw)
{
    char cp[64];
    snprintf(cp, sizeof cp, "127.0.0.1:%d", f->port);
    ann_cql_config cfg = {.contact_points = cp,
                          .username = user,
                          .password = pw,
                          .request_timeout_ms = timeout_ms,
                          .retry_backoff_ms = 1};
    ann_cql_conn *c = NULL;
    ann_err err;
    if (ann_cql_conn_new(&cfg, &c, &err) < 0)
        fail_msg("connect: %s", err.msg);
    return c;
}

static int run_t(ann_cql_conn *c, const char *q, bool idempotent, int timeout_ms, ann_cql_result *r,
                 ann_err *err)
{
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.idempotent = idempotent;
    p.timeout_ms = timeout_ms;
    return ann_cql_query(c, q, &p, r, err);
}

static int run(ann_cql_conn *c, const char *q, bool idempotent, ann_cql_result *r, ann_err *err)
{
    return run_t(c, q, idempotent, 0, r, err);
}

static void test_auth_challenge(void **state)
{
    (void)state;
    fake *f = fake_start(true);
    ann_cql_conn *c = connect_to(f, 20000, "user", "pw1");
    ann_cql_result r;
    ann_err err;
    assert_int_equal(f->auth_rounds, 2); /* AUTH_RESPONSE, AUTH_CHALLENGE, AUTH_RESPONSE */
    assert_int_equal(run(c, "ok", false, &r, &err), 0);
    ann_cql_result_release(&r);
    ann_cql_conn_free(c);

    char cp[64];
    snprintf(cp, sizeof cp, "127.0.0.1:%d", f->port);
    ann_cql_config cfg = {.contact_points = cp, .username = "user", .password = "wrong"};
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), -1);
    assert_int_equal(err.code, ANN_EUNAUTH);
    assert_non_null(strstr(err.msg, "bad credentials"));
    fake_stop(f);
}

static void test_typed_errors_and_retry_policy(void **state)
{
    (void)state;
    fake *f = fake_start(false);
    ann_cql_conn *c = connect_to(f, 20000, NULL, NULL);
    ann_cql_result r;
    ann_err err;

    /* write timeout, not idempotent: one try, typed details */
    assert_int_equal(run(c, "write_timeout", false, &r, &err), -1);
    assert_int_equal(err.code, ANN_EUNAVAIL);
    assert_int_equal(r.error.code, ANN_CQL_E_WRITE_TIMEOUT);
    assert_int_equal(r.error.write_type, ANN_CQL_WT_BATCH_LOG);
    assert_int_equal(r.error.received, 1);
    assert_int_equal(r.error.blockfor, 2);
    ann_cql_result_release(&r);
    assert_int_equal(seen_count(f, "write_timeout"), 1);
    /* idempotent: 1 + max_retries (3) tries, then the last error */
    assert_int_equal(run(c, "write_timeout", true, &r, &err), -1);
    assert_int_equal(r.error.code, ANN_CQL_E_WRITE_TIMEOUT);
    ann_cql_result_release(&r);
    assert_int_equal(seen_count(f, "write_timeout"), 1 + 4);

    assert_int_equal(run(c, "read_timeout", true, &r, &err), -1);
    assert_int_equal(r.error.code, ANN_CQL_E_READ_TIMEOUT);
    assert_true(r.error.data_present);
    ann_cql_result_release(&r);
    assert_int_equal(seen_count(f, "read_timeout"), 4);

    assert_int_equal(run(c, "unavailable", false, &r, &err), -1);
    assert_int_equal(r.error.code, ANN_CQL_E_UNAVAILABLE);
    ann_cql_result_release(&r);
    assert_int_equal(seen_count(f, "unavailable"), 1);

    /* a syntax error is never retried */
    assert_int_equal(run(c, "syntax", true, &r, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    ann_cql_result_release(&r);
    assert_int_equal(seen_count(f, "syntax"), 1);

    /* overloaded twice then fine: idempotent succeeds on the third try */
    assert_int_equal(run(c, "flaky_overloaded_a", true, &r, &err), 0);
    ann_cql_result_release(&r);
    assert_int_equal(seen_count(f, "flaky_overloaded_a"), 3);
    /* not idempotent: the first overloaded is the answer */
    assert_int_equal(run(c, "flaky_overloaded_b", false, &r, &err), -1);
    assert_int_equal(r.error.code, ANN_CQL_E_OVERLOADED);
    ann_cql_result_release(&r);
    assert_int_equal(seen_count(f, "flaky_overloaded_b"), 1);

    assert_int_equal(run(c, "flaky_bootstrapping", true, &r, &err), 0);
    ann_cql_result_release(&r);
    assert_int_equal(seen_count(f, "flaky_bootstrapping"), 2);
    assert_int_equal(run(c, "flaky_bootstrapping_b", false, &r, &err), -1);
    assert_int_equal(r.error.code, ANN_CQL_E_IS_BOOTSTRAPPING);
    ann_cql_result_release(&r);

    ann_cql_stats st;
    ann_cql_conn_stats(c, &st);
    assert_int_equal(st.retries, 3 + 3 + 2 + 1);
    ann_cql_conn_free(c);
    fake_stop(f);
}

static void test_timeouts(void **state)
{
    (void)state;
    fake *f = fake_start(false);
    ann_cql_conn *c = connect_to(f, 20000, NULL, NULL);
    ann_cql_result r;
    ann_err err;
    /* a per-request timeout; the server never answers these */
    assert_int_equal(run_t(c, "silent_a", false, 150, &r, &err), -1);
    assert_int_equal(err.code, ANN_EUNAVAIL);
    assert_non_null(strstr(err.msg, "timed out after 150 ms"));
    assert_int_equal(seen_wait(f, "silent_a", 1), 1);
    assert_int_equal(run_t(c, "silent_b", true, 150, &r, &err), -1);
    assert_int_equal(seen_wait(f, "silent_b", 4), 4);
    /* a connection that delivered nothing for a whole timeout is taken for
     * dead (half-open): each timeout above dropped it, every retry connected
     * again, and the next request does too */
    assert_int_equal(run(c, "ok", false, &r, &err), 0);
    ann_cql_result_release(&r);
    ann_cql_stats st;
    ann_cql_conn_stats(c, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.connects, 6);
    /* while the socket delivers other answers, a timed-out request keeps its
     * stream reserved (a late answer cannot be taken for another) and the
     * connection stays */
    ann_cql_future *slow = ann_cql_query_async(c, "silent_c", NULL, &err);
    assert_non_null(slow);
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.timeout_ms = 1500;
    ann_cql_future *late = ann_cql_query_async(c, "silent_d", &p, &err);
    assert_non_null(late);
    for (int i = 0; i < 100; i++) { /* traffic all the while silent_d waits */
        assert_int_equal(run(c, "ok", false, &r, &err), 0);
        ann_cql_result_release(&r);
        usleep(20000);
    }
    assert_int_equal(ann_cql_future_wait(late, &r, &err), -1);
    assert_non_null(strstr(err.msg, "timed out"));
    ann_cql_conn_stats(c, &st);
    assert_int_equal(st.connects, 6);
    assert_int_equal(st.in_flight, 2); /* silent_c waiting, silent_d abandoned */
    ann_cql_conn_break(c);
    assert_int_equal(ann_cql_future_wait(slow, &r, &err), -1); /* lost, not idempotent */
    assert_non_null(strstr(err.msg, "connection lost"));
    ann_cql_conn_free(c);
    fake_stop(f);
}

static void test_connection_loss(void **state)
{
    (void)state;
    fake *f = fake_start(false);
    ann_cql_conn *c = connect_to(f, 20000, NULL, NULL);
    ann_cql_result r;
    ann_err err;
    /* lost in flight, not idempotent: the caller is told */
    assert_int_equal(run(c, "drop", false, &r, &err), -1);
    assert_int_equal(err.code, ANN_EUNAVAIL);
    assert_non_null(strstr(err.msg, "connection lost"));
    assert_int_equal(seen_count(f, "drop"), 1);
    /* the next request reconnects */
    assert_int_equal(run(c, "ok", false, &r, &err), 0);
    ann_cql_result_release(&r);
    /* lost in flight, idempotent: resent on a new connection */
    assert_int_equal(run(c, "drop_once", true, &r, &err), 0);
    ann_cql_result_release(&r);
    assert_int_equal(seen_count(f, "drop_once"), 2);
    ann_cql_stats st;
    ann_cql_conn_stats(c, &st);
    assert_int_equal(st.connects, 3);
    /* a frame from another protocol version: the connection is dropped */
    assert_int_equal(run(c, "garbage", false, &r, &err), -1);
    assert_non_null(strstr(err.msg, "protocol"));
    /* an EVENT (stream -1) before the answer is ignored */
    assert_int_equal(run(c, "event", false, &r, &err), 0);
    assert_int_equal(r.kind, ANN_CQL_RESULT_VOID);
    ann_cql_result_release(&r);
    /* OPTIONS/SUPPORTED */
    assert_int_equal(ann_cql_options(c, &r, &err), 0);
    assert_int_equal(r.nopts, 3);
    ann_cql_result_release(&r);
    ann_cql_conn_free(c);
    fake_stop(f);
}

/* 100 requests on one connection; the server answers none until it holds
 * all 100, then answers in reverse order. */
static void test_100_in_flight_reverse(void **state)
{
    (void)state;
    fake *f = fake_start(false);
    ann_cql_conn *c = connect_to(f, 20000, NULL, NULL);
    ann_cql_future *fut[100];
    char q[100][32];
    ann_err err;
    for (int i = 0; i < 100; i++) {
        snprintf(q[i], sizeof q[i], "hold:%d", i);
        fut[i] = ann_cql_query_async(c, q[i], NULL, &err);
        assert_non_null(fut[i]);
    }
    for (int i = 0; i < 100; i++) {
        ann_cql_result r;
        assert_int_equal(ann_cql_future_wait(fut[i], &r, &err), 0);
        assert_int_equal(r.kind, ANN_CQL_RESULT_SET_KEYSPACE);
        assert_int_equal(r.keyspace.len, (int32_t)strlen(q[i]));
        assert_memory_equal(r.keyspace.p, q[i], strlen(q[i]));
        ann_cql_result_release(&r);
    }
    ann_cql_stats st;
    ann_cql_conn_stats(c, &st);
    assert_int_equal(st.max_in_flight, 100);
    assert_int_equal(st.in_flight, 0);
    ann_cql_conn_free(c);
    fake_stop(f);
}

/* More requests than streams: submitters wait for a free stream. */
static void test_stream_backpressure(void **state)
{
    (void)state;
    fake *f = fake_start(false);
    char cp[64];
    snprintf(cp, sizeof cp, "127.0.0.1:%d", f->port);
    ann_cql_config cfg = {.contact_points = cp, .max_streams = 4, .request_timeout_ms = 20000};
    ann_cql_conn *c;
    ann_err err;
    assert_int_equal(ann_cql_conn_new(&cfg, &c, &err), 0);
    ann_cql_future *fut[40];
    for (int i = 0; i < 40; i++) {
        fut[i] = ann_cql_query_async(c, "ok", NULL, &err);
        assert_non_null(fut[i]);
        if (i % 4 == 3) /* keep at most 4 unwaited */
            for (int j = i - 3; j <= i; j++) {
                ann_cql_result r;
                assert_int_equal(ann_cql_future_wait(fut[j], &r, &err), 0);
                ann_cql_result_release(&r);
            }
    }
    ann_cql_stats st;
    ann_cql_conn_stats(c, &st);
    assert_true(st.max_in_flight <= 4);
    ann_cql_conn_free(c);
    fake_stop(f);
}

/* Many threads submitting blocking requests on one connection at once. */
typedef struct worker {
    ann_cql_conn *c;
    int id, ok;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 200; i++) {
        char q[32];
        snprintf(q, sizeof q, "hold_no:%d", i); /* unknown: answered with a syntax error */
        ann_cql_result r;
        ann_err err;
        const char *text = (i % 2) ? "ok" : q;
        int rc = ann_cql_query(w->c, text, NULL, &r, &err);
        if ((i % 2) ? rc == 0 && r.kind == ANN_CQL_RESULT_VOID
                    : rc == -1 && r.error.code == ANN_CQL_E_SYNTAX)
            w->ok++;
        ann_cql_result_release(&r);
    }
    return NULL;
}

static void test_threads_one_connection(void **state)
{
    (void)state;
    fake *f = fake_start(false);
    ann_cql_conn *c = connect_to(f, 20000, NULL, NULL);
    worker w[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){.c = c, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].ok, 200);
    }
    ann_cql_stats st;
    ann_cql_conn_stats(c, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.in_flight, 0);
    ann_cql_conn_free(c);
    fake_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_challenge),
        cmocka_unit_test(test_typed_errors_and_retry_policy),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_connection_loss),
        cmocka_unit_test(test_100_in_flight_reverse),
        cmocka_unit_test(test_stream_backpressure),
        cmocka_unit_test(test_threads_one_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
