/*
 * The distributed backend (distributed.h): commands out to Kafka, answers back from the
 * acks topic and from the read model's NOTIFY, reads from PostgreSQL.
 *
 * A command's life: registered under its request id (d->mu), produced to
 * <ns>.pending; then
 *   - the delivery report (poller thread) fails it, or finishes a DURABLE write after
 *     the deletion check;
 *   - its Ack (ack thread) fails it, or finishes a SEQUENCED write after the deletion
 *     check, or puts it on its log's waiter list with the visibility it needs;
 *   - a log_state change (listener thread, fallback poller, or the check made when it
 *     was put on the list) finishes it once the read model shows it.
 * No thread waits per command: each step runs on one of the backend's few threads, and
 * the blocking checks (Cassandra, PostgreSQL) on a two-thread job pool.
 */
#include "store/distributed/distributed.h"

#include <inttypes.h>
#include <limits.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "annals/events/v1/events.pb-c.h"
#include "archive/archive_cassandra.h"
#include "common/fault.h"
#include "common/metrics.h"
#include "common/random.h"
#include "domain/event.h"
#include "domain/integrity.h"
#include "domain/merkle.h"
#include "domain/rules.h"
#include "store/distributed/catalog.h"
#include "store/distributed/internal.h"

/* ---------- small helpers ---------- */

static int64_t dist_wall_ns(void);

static uint32_t hash_str(const char *s)
{
    return ann_fnv1a32(s, strlen(s));
}

static int not_found(ann_err *err, const char *log_id)
{
    return ann_err_set(err, ANN_ENOTFOUND, "log %.64s not found", log_id);
}

/* ---------- logs known to exist ----------
 *
 * A write or a revocation needs the log to exist before its command goes out (NOT_FOUND
 * is answered synchronously). Once this server has seen a log in the catalog it remembers
 * it and sends further commands without reading the catalog again. Remembering too long
 * is safe: a log deleted meanwhile (on any server) is refused by the sequencer, which
 * holds the deleted head, so the command is answered NOT_FOUND anyway; and the checks
 * that guard an acknowledgement after a DeleteLog (job_check_then_finish, the read model's
 * deleted flag) still read the engines. Forgotten on a NOT_FOUND from anywhere, on this
 * server's DeleteLog and on the read model's notification of a deletion. */

static size_t known_slot(const char *key)
{
    return (size_t)(ann_fnv1a32(key, strlen(key)) % DIST_LOG_SLOTS);
}

static bool log_known(dist *d, const char *key)
{
    pthread_mutex_lock(&d->kmu);
    bool hit = strcmp(d->known[known_slot(key)], key) == 0;
    pthread_mutex_unlock(&d->kmu);
    return hit;
}

static void log_remember(dist *d, const char *key)
{
    pthread_mutex_lock(&d->kmu);
    snprintf(d->known[known_slot(key)], sizeof d->known[0], "%s", key);
    pthread_mutex_unlock(&d->kmu);
}

static void log_forget(dist *d, const char *key)
{
    pthread_mutex_lock(&d->kmu);
    char *slot = d->known[known_slot(key)];
    if (strcmp(slot, key) == 0)
        slot[0] = '\0';
    pthread_mutex_unlock(&d->kmu);
}

/* ---------- the job pool ---------- */

struct job {
    void (*fn)(dist *d, dop *op);
    dop *op;
    struct job *next;
};
typedef struct job job;

static void *job_thread(void *p)
{
    dist *d = p;
    pthread_mutex_lock(&d->jmu);
    for (;;) {
        while (!d->jhead && !d->jstop)
            pthread_cond_wait(&d->jcv, &d->jmu);
        if (!d->jhead)
            break;
        job *j = d->jhead;
        d->jhead = j->next;
        if (!d->jhead)
            d->jtail = NULL;
        pthread_mutex_unlock(&d->jmu);
        j->fn(d, j->op);
        free(j);
        pthread_mutex_lock(&d->jmu);
    }
    pthread_mutex_unlock(&d->jmu);
    return NULL;
}

/* Runs fn(d, op) on the pool; the job owns one reference of op. */
static void job_submit(dist *d, void (*fn)(dist *, dop *), dop *op)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->fn = fn;
    j->op = op;
    pthread_mutex_lock(&d->jmu);
    if (d->jtail)
        d->jtail->next = j;
    else
        d->jhead = j;
    d->jtail = j;
    pthread_cond_signal(&d->jcv);
    pthread_mutex_unlock(&d->jmu);
}

/* ---------- operations: the request table and waiter lists ---------- */

static void op_unref(dist *d, dop *op)
{
    pthread_mutex_lock(&d->mu);
    int left = --op->refs;
    pthread_mutex_unlock(&d->mu);
    if (left == 0)
        free(op);
}

static dop *op_find_locked(dist *d, const char *request_id)
{
    for (dop *o = d->ops[hash_str(request_id) % DIST_BUCKETS]; o; o = o->hnext)
        if (strcmp(o->request_id, request_id) == 0)
            return o;
    return NULL;
}

static wlog *wlog_find_locked(dist *d, const char *key, bool create)
{
    uint32_t b = hash_str(key) % DIST_BUCKETS;
    for (wlog *w = d->logs[b]; w; w = w->next)
        if (strcmp(w->key, key) == 0)
            return w;
    if (!create)
        return NULL;
    wlog *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    snprintf(w->key, sizeof w->key, "%s", key);
    w->next = d->logs[b];
    d->logs[b] = w;
    return w;
}

static void wlog_gc_locked(dist *d, wlog *w)
{
    if (w->waiters || w->watchers || w->nlag)
        return;
    wlog **pp = &d->logs[hash_str(w->key) % DIST_BUCKETS];
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp)
        *pp = w->next;
    free(w);
}

static void unlink_locked(dist *d, dop *op)
{
    dop **pp = &d->ops[hash_str(op->request_id) % DIST_BUCKETS];
    while (*pp && *pp != op)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = op->hnext;
    if (op->waiting) {
        wlog *w = wlog_find_locked(d, op->key, false);
        if (w) {
            dop **wp = &w->waiters;
            while (*wp && *wp != op)
                wp = &(*wp)->wnext;
            if (*wp)
                *wp = op->wnext;
            wlog_gc_locked(d, w);
        }
        op->waiting = false;
    }
}

/* Completes op once: calls its done outside the lock, then drops the table's reference
 * (every caller holds one of its own). */
static void finish(dist *d, dop *op, int rc, const ann_err *err)
{
    pthread_mutex_lock(&d->mu);
    if (op->finished) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    op->finished = true;
    unlink_locked(d, op);
    d->inflight--;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    ann_err none = {0};
    op->done(op->ud, rc, rc == 0 ? &none : err);
    op_unref(d, op);
}

static void finish_ok(dist *d, dop *op)
{
    finish(d, op, 0, NULL);
}

static void finish_err(dist *d, dop *op, ann_code code, const char *msg)
{
    ann_err e = {0};
    ann_err_set(&e, code, "%s", msg);
    finish(d, op, -1, &e);
}

/* Job: the log must still exist for a write to be acknowledged (docs/distributed.md,
 * "Delete"). */
static void job_check_then_finish(dist *d, dop *op)
{
    ann_err e = {0};
    int r = ann_catalog_log_get(d->cat, op->tenant, op->log, NULL, &e);
    if (r == 1)
        finish_ok(d, op);
    else if (r == 0)
        log_forget(d, op->key), not_found(&e, op->log), finish(d, op, -1, &e);
    else
        finish_err(d, op, ANN_EIO, "read model check failed; the write may have been stored");
    op_unref(d, op);
}

/* Decides, under d->mu, whether the log's state satisfies op; 1 ok, -1 gone, 0 not yet. */
static int satisfied(const dop *op, const dist_log_state *st)
{
    if (st->deleted || !st->exists)
        return op->kind == OP_DELETE ? 1 : (st->deleted ? -1 : 0);
    if (op->want_op && st->applied_op >= op->want_op)
        return 1;
    if (op->want_visible && st->visible_count >= op->want_visible)
        return 1;
    return 0;
}

/* A log's read-model state changed (or was read): finish what it satisfies, wake
 * watchers. */
void dist_on_state(dist *d, const char *key, const dist_log_state *st)
{
    dop *ready = NULL;
    if (st->deleted)
        log_forget(d, key);
    pthread_mutex_lock(&d->mu);
    wlog *w = wlog_find_locked(d, key, false);
    if (!w) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    dist_lag_seen_locked(d, w, st);
    for (dop **pp = &w->waiters; *pp;) {
        dop *op = *pp;
        int s = satisfied(op, st);
        if (s == 0) {
            pp = &op->wnext;
            continue;
        }
        *pp = op->wnext;
        op->waiting = false;
        op->outcome = s;
        op->refs++;
        op->wnext = ready;
        ready = op;
    }
    for (ann_watch *x = w->watchers; x; x = x->next)
        x->fn(x->ud);
    wlog_gc_locked(d, w);
    pthread_mutex_unlock(&d->mu);
    while (ready) {
        dop *op = ready;
        ready = op->wnext;
        if (op->outcome > 0) {
            finish_ok(d, op);
        } else {
            ann_err e = {0};
            not_found(&e, op->log);
            finish(d, op, -1, &e);
        }
        op_unref(d, op);
    }
}

/* Job: read the log's state once (covers a NOTIFY that came before the wait began). */
static void job_check_state(dist *d, dop *op)
{
    dist_log_state st;
    ann_err e = {0};
    if (dist_rm_state(d, op->tenant, op->log, &st, &e) == 0)
        dist_on_state(d, op->key, &st);
    op_unref(d, op);
}

/* Puts op on its log's waiter list (it has its targets set) and checks once. */
static void wait_visible(dist *d, dop *op)
{
    pthread_mutex_lock(&d->mu);
    if (op->finished) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    wlog *w = wlog_find_locked(d, op->key, true);
    op->wnext = w->waiters;
    w->waiters = op;
    op->waiting = true;
    op->refs++;
    pthread_mutex_unlock(&d->mu);
    job_submit(d, job_check_state, op);
}

/* ---------- the Kafka side: produce, deliveries, acks ---------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    dist *d = opaque;
    dop *op = m->_private;
    if (!op)
        return;
    if (m->err) {
        fprintf(stderr, "annalsd: kafka: delivery of a command failed: %s\n",
                rd_kafka_err2str(m->err));
        finish_err(d, op, ANN_EIO, "the command may not have been stored");
        op_unref(d, op);
        return;
    }
    if (op->kind == OP_WRITE && op->wait == ANN_WAIT_DURABLE) {
        job_submit(d, job_check_then_finish, op); /* passes the delivery's reference on */
        return;
    }
    op_unref(d, op);
}

static void *poll_thread(void *p)
{
    dist *d = p;
    while (!d->stop)
        rd_kafka_poll(d->prod, 100);
    return NULL;
}

/* A write's new entries are sequenced: counted as read-model lag until visible (lag.c),
 * whatever the request waits for and whether or not it is still in flight. */
static void note_sequenced(dist *d, const Annals__Events__V1__Ack *a)
{
    if (a->code != 0 || a->n_new == 0 || a->n_new > a->entry_count || !a->tenant_id || !a->log_id ||
        !*a->tenant_id || !*a->log_id)
        return;
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(a->tenant_id, a->log_id, key);
    pthread_mutex_lock(&d->mu);
    wlog *w = wlog_find_locked(d, key, true);
    dist_lag_add_locked(d, w, a->entry_count - a->n_new, a->entry_count, dist_wall_ns());
    wlog_gc_locked(d, w);
    pthread_mutex_unlock(&d->mu);
}

static void handle_ack(dist *d, const Annals__Events__V1__Ack *a)
{
    note_sequenced(d, a);
    pthread_mutex_lock(&d->mu);
    dop *op = op_find_locked(d, a->request_id);
    if (op)
        op->refs++;
    pthread_mutex_unlock(&d->mu);
    if (!op)
        return; /* another incarnation's, or already answered */
    if (a->code != 0) {
        if (a->code == ANN_ENOTFOUND)
            log_forget(d, op->key);
        ann_err e = {0};
        ann_code code = a->code > 0 && a->code <= ANN_EUNIMPL ? (ann_code)a->code : ANN_EINTERNAL;
        ann_err_set(&e, code, "%s", a->message ? a->message : "");
        finish(d, op, -1, &e);
        op_unref(d, op);
        return;
    }
    switch (op->kind) {
    case OP_WRITE: {
        ann_append *ap = op->ap;
        uint64_t max = 0;
        bool skip = false, bad = false;
        /* ap belongs to the caller until done: touch it only while op is unfinished,
         * under d->mu (finish() marks it finished under the same lock before done). */
        pthread_mutex_lock(&d->mu);
        if (op->finished || op->wait == ANN_WAIT_DURABLE) {
            skip = true; /* DURABLE answers without ids, from the delivery report */
        } else if (a->n_entry_ids != ap->n) {
            bad = true;
        } else {
            for (size_t i = 0; i < ap->n; i++) {
                ap->ids_out[i] = a->entry_ids[i];
                if (a->entry_ids[i] > max)
                    max = a->entry_ids[i];
            }
            ap->n_new_out = (size_t)a->n_new;
            ap->ids_known = true;
        }
        pthread_mutex_unlock(&d->mu);
        if (skip)
            break;
        if (bad) {
            finish_err(d, op, ANN_EINTERNAL, "sequencer answered with the wrong id count");
            break;
        }
        if (op->wait == ANN_WAIT_SEQUENCED) {
            pthread_mutex_lock(&d->mu);
            op->refs++; /* the job's */
            pthread_mutex_unlock(&d->mu);
            job_submit(d, job_check_then_finish, op);
            break;
        }
        op->want_visible = max;
        wait_visible(d, op);
        break;
    }
    case OP_SEAL:
        pthread_mutex_lock(&d->mu);
        if (!op->finished && op->ckpt) {
            op->ckpt->len = 0;
            ann_buf_add(op->ckpt, a->checkpoint.data, a->checkpoint.len);
        }
        pthread_mutex_unlock(&d->mu);
        /* answered once the read model shows the seal, as the others below */
        /* fall through */
    case OP_CREATE:
    case OP_REVOKE:
    case OP_DELETE:
        op->want_op = a->op_seq;
        if (a->op_seq == 0) /* nothing changed: nothing to wait for */
            finish_ok(d, op);
        else
            wait_visible(d, op);
        break;
    }
    op_unref(d, op);
}

static void *ack_thread(void *p)
{
    dist *d = p;
    size_t olen = strlen(d->origin);
    while (!d->stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->acks, 100);
        if (!m)
            continue;
        if (!m->err && m->key_len == olen && memcmp(m->key, d->origin, olen) == 0) {
            Annals__Events__V1__Ack *a =
                annals__events__v1__ack__unpack(NULL, m->len, (const uint8_t *)m->payload);
            if (a) {
                handle_ack(d, a);
                annals__events__v1__ack__free_unpacked(a, NULL);
            } else {
                fprintf(stderr, "annalsd: an ack record did not decode; skipped\n");
            }
        } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "annalsd: kafka: acks: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* Fallback for lost notifications: every so often, re-read the logs someone waits on. */
static void *state_poll_thread(void *p)
{
    dist *d = p;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += DIST_STATE_POLL_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&d->cv_poll, &d->mu, &ts);
        if (d->stop)
            break;
        size_t n = 0, cap = 64;
        char(*keys)[ANN_EVENT_KEY_LEN + 1] = malloc(cap * sizeof *keys);
        for (int b = 0; b < DIST_BUCKETS && keys; b++)
            for (wlog *w = d->logs[b]; w; w = w->next) {
                /* a log with lag alone: every 8th round (keeps the lag gauge right when
                 * notifications were lost, without a read per lagging log per round) */
                if (!w->waiters && !w->watchers && ++w->polls % 8 != 0)
                    continue;
                if (n == cap) {
                    cap *= 2;
                    keys = realloc(keys, cap * sizeof *keys);
                    if (!keys)
                        abort();
                }
                memcpy(keys[n++], w->key, sizeof w->key);
            }
        pthread_mutex_unlock(&d->mu);
        for (size_t i = 0; i < n; i++) {
            char tenant[ANN_UUID_LEN + 1], log[ANN_UUID_LEN + 1];
            const char *slash = strchr(keys[i], '/');
            if (!slash)
                continue;
            snprintf(tenant, sizeof tenant, "%.*s", (int)(slash - keys[i]), keys[i]);
            snprintf(log, sizeof log, "%s", slash + 1);
            dist_log_state st;
            ann_err e = {0};
            if (dist_rm_state(d, tenant, log, &st, &e) == 0)
                dist_on_state(d, keys[i], &st);
        }
        free(keys);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---------- commands ---------- */

static dop *op_new(dist *d, int kind, const char *tenant_id, const char *log_id, ann_done_fn done,
                   void *ud)
{
    dop *op = calloc(1, sizeof *op);
    if (!op)
        abort();
    op->kind = kind;
    op->done = done;
    op->ud = ud;
    ann_uuid_v4_new(op->request_id);
    snprintf(op->tenant, sizeof op->tenant, "%s", tenant_id);
    snprintf(op->log, sizeof op->log, "%s", log_id);
    ann_event_key(tenant_id, log_id, op->key);
    (void)d;
    return op;
}

/* Registers op and produces its command (packed by the caller into buf, which this
 * takes). On failure op is finished with the error. */
static void send_command(dist *d, dop *op, uint8_t *buf, size_t len)
{
    pthread_mutex_lock(&d->mu);
    if (d->stop) {
        pthread_mutex_unlock(&d->mu);
        free(buf);
        ann_err e = {0};
        ann_err_set(&e, ANN_EUNAVAIL, "server is shutting down");
        op->done(op->ud, -1, &e);
        free(op);
        return;
    }
    uint32_t b = hash_str(op->request_id) % DIST_BUCKETS;
    op->hnext = d->ops[b];
    d->ops[b] = op;
    op->refs = 3; /* the table's (dropped by finish), the delivery's and ours */
    d->inflight++;
    pthread_mutex_unlock(&d->mu);

    int32_t part = ann_event_partition(op->key, strlen(op->key), d->kcfg.partitions);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        d->prod, RD_KAFKA_V_TOPIC(d->t_pending), RD_KAFKA_V_PARTITION(part),
        RD_KAFKA_V_KEY(op->key, strlen(op->key)), RD_KAFKA_V_VALUE(buf, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_OPAQUE(op), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        free(buf);
        ann_err err = {0};
        ann_kafka_fail(&err, "produce", e, NULL);
        err.code = ANN_EUNAVAIL; /* never reached Kafka: nothing was done */
        finish(d, op, -1, &err);
        op_unref(d, op); /* the delivery's: there will be none */
    }
    op_unref(d, op); /* the caller's: the op lives on through the table's path */
}

/* Fills the command's routing fields from op, packs it and sends it (send_command). */
static void send_op(dist *d, dop *op, Annals__Events__V1__Command *c)
{
    c->request_id = op->request_id;
    c->origin = d->origin;
    c->tenant_id = op->tenant;
    c->log_id = op->log;
    size_t len = annals__events__v1__command__get_packed_size(c);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        abort();
    annals__events__v1__command__pack(c, buf);
    send_command(d, op, buf, len);
}

/* 0 when the log exists (and is not deleted) or is known to (log_known); otherwise fails
 * done() and returns -1. */
static int log_exists_or_fail(dist *d, const char *tenant_id, const char *log_id, ann_done_fn done,
                              void *ud)
{
    ann_err err = {0};
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(tenant_id, log_id, key);
    if (log_known(d, key))
        return 0;
    int r = ann_catalog_log_get(d->cat, tenant_id, log_id, NULL, &err);
    if (r == 1) {
        log_remember(d, key);
        return 0;
    }
    if (r == 0)
        not_found(&err, log_id);
    done(ud, -1, &err);
    return -1;
}

static void draw_salts(void *p, size_t n)
{
    if (n > INT_MAX || RAND_bytes(p, (int)n) != 1)
        ann_random_bytes(p, n);
}

static void d_append_async(ann_store *st, ann_append *req, ann_done_fn done, void *ud)
{
    dist *d = (dist *)st;
    ann_err err = {0};
    if (log_exists_or_fail(d, req->tenant_id, req->log_id, done, ud) != 0)
        return;
    if (req->n > ANN_ARCHIVE_MAX_APPEND) {
        ann_err_set(&err, ANN_ERANGE, "entries: at most %d per request", ANN_ARCHIVE_MAX_APPEND);
        done(ud, -1, &err);
        return;
    }
    dop *op = op_new(d, OP_WRITE, req->tenant_id, req->log_id, done, ud);
    op->ap = req;
    op->wait = req->wait == ANN_WAIT_DEFAULT ? d->default_wait : req->wait;
    req->ids_known = false;
    req->n_new_out = 0;

    Annals__Events__V1__Entry *es = calloc(req->n ? req->n : 1, sizeof *es);
    Annals__Events__V1__Entry **ep = calloc(req->n ? req->n : 1, sizeof *ep);
    /* Each body as stored: the request's body with its salt field appended (LogEntry
     * 43, domain/integrity.h), drawn here so a replayed command keeps it. */
    size_t total = 0;
    for (size_t i = 0; i < req->n; i++)
        total += req->entries[i].body_len + ANN_INTEGRITY_FIELD_LEN;
    uint8_t *bodies = malloc(total ? total : 1);
    uint8_t(*salts)[ANN_BODY_SALT_LEN] = malloc((req->n ? req->n : 1) * ANN_BODY_SALT_LEN);
    if (!es || !ep || !bodies || !salts)
        abort();
    draw_salts(salts, req->n * ANN_BODY_SALT_LEN);
    size_t at = 0;
    for (size_t i = 0; i < req->n; i++) {
        const ann_entry *in = &req->entries[i];
        uint8_t *body = bodies + at;
        if (in->body_len)
            memcpy(body, in->body, in->body_len);
        ann_integrity_field(ANN_INTEGRITY_SALT, salts[i], body + in->body_len);
        at += in->body_len + ANN_INTEGRITY_FIELD_LEN;
        annals__events__v1__entry__init(&es[i]);
        es[i].time_ns = in->time_ns;
        es[i].insert_time_ns = in->insert_time_ns;
        es[i].severity = in->severity;
        es[i].insert_id.data = (uint8_t *)in->insert_id;
        es[i].insert_id.len = in->insert_id_len;
        es[i].body.data = body;
        es[i].body.len = in->body_len + ANN_INTEGRITY_FIELD_LEN;
        es[i].insert_id_generated = (in->flags & ANN_ENTRY_GENERATED_ID) != 0;
        ep[i] = &es[i];
    }
    Annals__Events__V1__Write w = ANNALS__EVENTS__V1__WRITE__INIT;
    w.n_entries = req->n;
    w.entries = ep;
    Annals__Events__V1__Command c = ANNALS__EVENTS__V1__COMMAND__INIT;
    c.op_case = ANNALS__EVENTS__V1__COMMAND__OP_WRITE;
    c.write = &w;
    send_op(d, op, &c);
    free(ep);
    free(es);
    free(bodies);
    free(salts);
}

static void log_create(dist *d, const char *tenant_id, const char *log_id, const uint8_t *labels,
                       size_t labels_len, int64_t now_ns, int32_t retention_days, ann_done_fn done,
                       void *ud)
{
    ann_err err = {0};
    if (ann_catalog_log_create(d->cat, tenant_id, log_id, labels, labels_len, now_ns,
                               retention_days, &err) != 0) {
        done(ud, -1, &err);
        return;
    }
    dop *op = op_new(d, OP_CREATE, tenant_id, log_id, done, ud);
    Annals__Events__V1__CreateLog cl = ANNALS__EVENTS__V1__CREATE_LOG__INIT;
    cl.labels.data = (uint8_t *)labels;
    cl.labels.len = labels_len;
    cl.create_time_ns = now_ns;
    Annals__Events__V1__Command c = ANNALS__EVENTS__V1__COMMAND__INIT;
    c.op_case = ANNALS__EVENTS__V1__COMMAND__OP_CREATE_LOG;
    c.create_log = &cl;
    send_op(d, op, &c);
}

static void d_log_create_async(ann_store *st, const char *tenant_id, const char *log_id,
                               const uint8_t *labels, size_t labels_len, int64_t now_ns,
                               ann_done_fn done, void *ud)
{
    log_create((dist *)st, tenant_id, log_id, labels, labels_len, now_ns, 0, done, ud);
}

static void d_log_create_spec_async(ann_store *st, const ann_log_spec *spec, ann_done_fn done,
                                    void *ud)
{
    if (spec->retention_days < 0) {
        ann_err err;
        ann_err_set(&err, ANN_EINVAL, "retention_days: must not be negative");
        done(ud, -1, &err);
        return;
    }
    log_create((dist *)st, spec->tenant_id, spec->log_id, spec->labels, spec->labels_len,
               spec->now_ns, spec->retention_days, done, ud);
}

static void d_revoke_async(ann_store *st, const char *tenant_id, const char *log_id,
                           const uint64_t *ids, size_t n, const char *actor, const char *reason,
                           int64_t now_ns, ann_done_fn done, void *ud)
{
    dist *d = (dist *)st;
    if (log_exists_or_fail(d, tenant_id, log_id, done, ud) != 0)
        return;
    dop *op = op_new(d, OP_REVOKE, tenant_id, log_id, done, ud);
    Annals__Events__V1__Revoke rv = ANNALS__EVENTS__V1__REVOKE__INIT;
    rv.n_entry_ids = n;
    rv.entry_ids = (uint64_t *)ids;
    rv.actor = (char *)(actor ? actor : "");
    rv.reason = (char *)(reason ? reason : "");
    rv.time_ns = now_ns;
    Annals__Events__V1__Command c = ANNALS__EVENTS__V1__COMMAND__INIT;
    c.op_case = ANNALS__EVENTS__V1__COMMAND__OP_REVOKE;
    c.revoke = &rv;
    send_op(d, op, &c);
}

/* SealLog (docs/integrity.md): a command on the log's ordered path, so every entry
 * sequenced before it is in the final checkpoint and none after; answered once the read
 * model shows the seal (GetLog's `sealed`), with the checkpoint the sequencer signed. */
static int d_log_seal(ann_store *st, const char *tenant_id, const char *log_id, ann_buf *out,
                      ann_err *err)
{
    dist *d = (dist *)st;
    ann_store_waiter w;
    ann_store_waiter_init(&w);
    if (log_exists_or_fail(d, tenant_id, log_id, ann_store_waiter_done, &w) != 0)
        return ann_store_waiter_wait(&w, err);
    ann_buf ck = ANN_BUF_INIT;
    dop *op = op_new(d, OP_SEAL, tenant_id, log_id, ann_store_waiter_done, &w);
    op->ckpt = &ck;
    Annals__Events__V1__Seal sl = ANNALS__EVENTS__V1__SEAL__INIT;
    Annals__Events__V1__Command c = ANNALS__EVENTS__V1__COMMAND__INIT;
    c.op_case = ANNALS__EVENTS__V1__COMMAND__OP_SEAL;
    c.seal = &sl;
    send_op(d, op, &c);
    int rc = ann_store_waiter_wait(&w, err);
    if (rc == 0 && ck.len == 0)
        rc = ann_err_set(err, ANN_EINTERNAL, "log %s: the seal came without a checkpoint", log_id);
    if (rc == 0)
        ann_buf_add(out, ck.data, ck.len);
    ann_buf_release(&ck);
    return rc;
}

/* The DeleteLog command of a log already marked deleted in the catalog. */
static void send_delete(dist *d, const char *tenant_id, const char *log_id, ann_done_fn done,
                        void *ud)
{
    dop *op = op_new(d, OP_DELETE, tenant_id, log_id, done, ud);
    Annals__Events__V1__DeleteLog dl = ANNALS__EVENTS__V1__DELETE_LOG__INIT;
    Annals__Events__V1__Command c = ANNALS__EVENTS__V1__COMMAND__INIT;
    c.op_case = ANNALS__EVENTS__V1__COMMAND__OP_DELETE_LOG;
    c.delete_log = &dl;
    send_op(d, op, &c);
}

/* Marks the log deleted (with who and why when the server deletes it: actor and reason
 * NULL for DeleteLog's), then sends the command. */
static void delete_log(dist *d, const char *tenant_id, const char *log_id, int64_t now,
                       const char *actor, const char *reason, ann_done_fn done, void *ud)
{
    ann_err err = {0};
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(tenant_id, log_id, key);
    log_forget(d, key);
    int r = ann_catalog_log_get(d->cat, tenant_id, log_id, NULL, &err);
    if (r == 1)
        r = ann_catalog_log_mark_deleted(d->cat, tenant_id, log_id, now, actor, reason, &err) == 0
                ? 1
                : -1;
    if (r <= 0) {
        if (r == 0)
            not_found(&err, log_id);
        done(ud, -1, &err);
        return;
    }
    ANN_FAULT_POINT("dist.delete_marked");
    send_delete(d, tenant_id, log_id, done, ud);
}

static void d_log_delete_async(ann_store *st, const char *tenant_id, const char *log_id,
                               ann_done_fn done, void *ud)
{
    delete_log((dist *)st, tenant_id, log_id, dist_wall_ns(), NULL, NULL, done, ud);
}

/* ---------- catalog and reads ---------- */

static int d_secret(ann_store *st, uint8_t out[32], ann_err *err)
{
    return ann_catalog_secret(((dist *)st)->cat, out, err);
}

static int d_tenant_create(ann_store *st, const char *name, const uint8_t key_hash[32],
                           ann_tenant *out, ann_err *err)
{
    return ann_catalog_tenant_create(((dist *)st)->cat, name, key_hash, out, err);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t dist_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Every call authenticates: known keys are remembered for a few seconds (a key removed
 * from Cassandra stops working within DIST_KEY_TTL_NS on every server); unknown ones are
 * never remembered. */
static int d_tenant_by_key(ann_store *st, const uint8_t key_hash[32], ann_tenant *out, ann_err *err)
{
    dist *d = (dist *)st;
    size_t slot = ((size_t)key_hash[0] << 8 | key_hash[1]) % DIST_KEY_SLOTS;
    int64_t now = mono_ns();
    pthread_mutex_lock(&d->kmu);
    bool hit = d->keys[slot].until_ns > now && memcmp(d->keys[slot].hash, key_hash, 32) == 0;
    if (hit && out)
        *out = d->keys[slot].t;
    pthread_mutex_unlock(&d->kmu);
    if (hit)
        return 0;
    ann_tenant t;
    int64_t last_used = 0, wall = dist_wall_ns();
    if (ann_catalog_tenant_by_key(d->cat, key_hash, &t, &last_used, err) != 0)
        return -1;
    /* The last use, read with the key (every DIST_KEY_TTL_NS at most), is written again
     * once it is a minute old: a write per key and server a minute at most. */
    if (wall - last_used >= ANN_KEY_LAST_USE_EVERY_NS) {
        ann_err e;
        (void)ann_catalog_key_touch(d->cat, key_hash, wall, &e);
    }
    pthread_mutex_lock(&d->kmu);
    memcpy(d->keys[slot].hash, key_hash, 32);
    d->keys[slot].t = t;
    d->keys[slot].until_ns = now + DIST_KEY_TTL_NS;
    pthread_mutex_unlock(&d->kmu);
    if (out)
        *out = t;
    return 0;
}

static int d_key_create(ann_store *st, const ann_key_spec *spec, ann_key *out, ann_err *err)
{
    return ann_catalog_key_create(((dist *)st)->cat, spec, out, err);
}

static int d_key_list(ann_store *st, const char *tenant_name, ann_key_visit_fn visit, void *ud,
                      ann_err *err)
{
    return ann_catalog_key_list(((dist *)st)->cat, tenant_name, visit, ud, err);
}

/* This server forgets the key at once; the others within DIST_KEY_TTL_NS (their cache). */
static int d_key_revoke(ann_store *st, const char *key_id, int64_t now_ns, ann_key *out,
                        ann_err *err)
{
    dist *d = (dist *)st;
    uint8_t h[32];
    if (ann_catalog_key_revoke(d->cat, key_id, now_ns, out, h, err) != 0)
        return -1;
    size_t slot = ((size_t)h[0] << 8 | h[1]) % DIST_KEY_SLOTS;
    pthread_mutex_lock(&d->kmu);
    if (memcmp(d->keys[slot].hash, h, 32) == 0)
        d->keys[slot].until_ns = 0;
    pthread_mutex_unlock(&d->kmu);
    return 0;
}

static int d_log_get(ann_store *st, const char *tenant_id, const char *log_id, ann_log_meta *out,
                     ann_err *err)
{
    dist *d = (dist *)st;
    ann_log_meta m;
    int r = ann_catalog_log_get(d->cat, tenant_id, log_id, &m, err);
    if (r <= 0)
        return r == 0 ? not_found(err, log_id) : -1;
    bool exists = false, deleted = false;
    uint64_t count = 0;
    dist_log_state rs;
    if (ann_archive_log_count(d->arch, d->kcfg.partitions, tenant_id, log_id, &exists, &deleted,
                              &count, err) != 0 ||
        dist_rm_state(d, tenant_id, log_id, &rs, err) != 0) {
        ann_log_meta_release(&m);
        return -1;
    }
    if (deleted || rs.deleted) {
        ann_log_meta_release(&m);
        return not_found(err, log_id);
    }
    m.entry_count = count > rs.visible_count ? count : rs.visible_count;
    m.visible_count = rs.visible_count;
    m.sealed = rs.sealed;
    if (out)
        *out = m;
    else
        ann_log_meta_release(&m);
    return 0;
}

static int d_watch(ann_store *st, const char *tenant_id, const char *log_id, ann_watch_fn fn,
                   void *ud, ann_watch **out, ann_err *err)
{
    dist *d = (dist *)st;
    int r = ann_catalog_log_get(d->cat, tenant_id, log_id, NULL, err);
    if (r <= 0)
        return r == 0 ? not_found(err, log_id) : -1;
    ann_watch *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->fn = fn;
    w->ud = ud;
    ann_event_key(tenant_id, log_id, w->key);
    pthread_mutex_lock(&d->mu);
    wlog *l = wlog_find_locked(d, w->key, true);
    w->next = l->watchers;
    if (l->watchers)
        l->watchers->prev = w;
    l->watchers = w;
    pthread_mutex_unlock(&d->mu);
    *out = w;
    return 0;
}

static void d_unwatch(ann_store *st, ann_watch *w)
{
    dist *d = (dist *)st;
    if (!w)
        return;
    pthread_mutex_lock(&d->mu); /* watchers are called under d->mu: none is running now */
    wlog *l = wlog_find_locked(d, w->key, false);
    if (l) {
        if (w->prev)
            w->prev->next = w->next;
        else
            l->watchers = w->next;
        if (w->next)
            w->next->prev = w->prev;
        wlog_gc_locked(d, l);
    }
    pthread_mutex_unlock(&d->mu);
    free(w);
}

/* The read model calls this from its listener thread: NULL tenant means "re-check
 * everything" (after a reconnect), which the poller does on its next round. */
void dist_on_notify(void *ud, const char *tenant_id, const char *log_id, uint64_t visible,
                    uint64_t applied_op, bool deleted)
{
    dist *d = ud;
    if (!tenant_id) {
        pthread_mutex_lock(&d->mu);
        pthread_cond_signal(&d->cv_poll);
        pthread_mutex_unlock(&d->mu);
        return;
    }
    char key[ANN_EVENT_KEY_LEN + 1];
    ann_event_key(tenant_id, log_id, key);
    dist_log_state st = {
        .exists = true, .deleted = deleted, .visible_count = visible, .applied_op = applied_op};
    dist_on_state(d, key, &st);
}

/* ---------- open and close ---------- */

/* Fails every operation still registered (each is finished once: a late ack finds none). */
static void fail_pending(dist *d, ann_code code, const char *msg)
{
    for (;;) {
        dop *op = NULL;
        pthread_mutex_lock(&d->mu);
        for (int b = 0; b < DIST_BUCKETS && !op; b++)
            op = d->ops[b];
        if (op)
            op->refs++;
        pthread_mutex_unlock(&d->mu);
        if (!op)
            break;
        finish_err(d, op, code, msg);
        op_unref(d, op);
    }
}

static void d_close(ann_store *st)
{
    dist *d = (dist *)st;
    if (!d)
        return;
    if (d->metrics)
        ann_metrics_collector_remove(d->metrics, d);
    /* Let commands in flight finish for a while, then fail the rest. */
    pthread_mutex_lock(&d->mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    while (d->inflight > 0)
        if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) != 0)
            break;
    d->stop = 1;
    pthread_cond_broadcast(&d->cv_poll);
    pthread_mutex_unlock(&d->mu);
    dist_rm_listen_stop(d);
    if (d->threads_started) {
        pthread_join(d->t_ack, NULL);
        pthread_join(d->t_state, NULL);
    }
    /* what is left: failed (outcome unknown for writes) */
    fail_pending(d, ANN_EIO, "server stopped before the command completed");
    if (d->prod) {
        rd_kafka_flush(d->prod, 5000);
        if (d->threads_started)
            pthread_join(d->t_poll, NULL);
        rd_kafka_destroy(d->prod);
    }
    if (d->acks) {
        rd_kafka_consumer_close(d->acks);
        rd_kafka_destroy(d->acks);
    }
    pthread_mutex_lock(&d->jmu);
    d->jstop = true;
    pthread_cond_broadcast(&d->jcv);
    pthread_mutex_unlock(&d->jmu);
    for (int i = 0; i < d->n_jobs; i++)
        pthread_join(d->jobs[i], NULL);
    for (int b = 0; b < DIST_BUCKETS; b++)
        while (d->logs[b]) {
            wlog *w = d->logs[b];
            d->logs[b] = w->next;
            free(w);
        }
    dist_rm_close(d);
    ann_archive_close(d->arch);
    ann_catalog_close(d->cat);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->scan_mu);
    pthread_cond_destroy(&d->cv);
    pthread_cond_destroy(&d->cv_poll);
    pthread_mutex_destroy(&d->jmu);
    pthread_cond_destroy(&d->jcv);
    pthread_mutex_destroy(&d->kmu);
    free(d);
}

/* The server's grace period is over: what still waits (for an ack, the read model, or a
 * catalog read of an engine that is down) fails now, its outcome unknown, so that the
 * server's calls end and it stops. What the engines do with the commands later stands. */
static void d_abandon(ann_store *st)
{
    fail_pending((dist *)st, ANN_EUNAVAIL,
                 "the server stopped before the command was confirmed: its outcome is "
                 "unknown; retry it with the same insert_ids");
}

static int assign_acks(dist *d, ann_err *err)
{
    char topic[256];
    ann_kafka_topic(&d->kcfg, ANN_TOPIC_ACKS, topic, sizeof topic);
    int32_t n = 0;
    if (ann_kafka_partition_count(d->acks, topic, &n, err) != 0)
        return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int32_t p = 0; p < n; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e;
        /* A topic just created has no partition leader for a moment (seen: "Not leader for
         * partition" at a fresh namespace's first start): wait for one, up to ~10 s. */
        for (int tries = 0;; tries++) {
            e = rd_kafka_query_watermark_offsets(d->acks, topic, p, &lo, &hi, 10000);
            bool settling = e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                            e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                            e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
            if (!settling || tries == 50)
                break;
            nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_topic_partition_list_destroy(l);
            return ann_kafka_fail(err, "acks offsets", e, topic);
        }
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = hi;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(d->acks, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? ann_kafka_fail(err, "acks assign", e, topic) : 0;
}

/* ---------- retention and legal hold (docs/distributed.md) ---------- */

static int d_log_set_hold(ann_store *st, const char *tenant_id, const char *log_id, bool hold,
                          const char *actor, const char *reason, int64_t now_ns, ann_err *err)
{
    return ann_catalog_log_set_hold(((dist *)st)->cat, tenant_id, log_id, hold, actor, reason,
                                    now_ns, err);
}

static int d_tenant_set_retention(ann_store *st, const char *tenant_name, int32_t days,
                                  ann_err *err)
{
    if (days < 0)
        return ann_err_set(err, ANN_EINVAL, "days: must not be negative");
    return ann_catalog_tenant_set_retention(((dist *)st)->cat, tenant_name, days, err);
}

typedef struct scan_page {
    ann_catalog_log_row *rows;
    size_t n, cap;
} scan_page;

static int take_log_row(const ann_catalog_log_row *row, void *ud)
{
    scan_page *p = ud;
    if (p->n < p->cap)
        p->rows[p->n++] = *row;
    return p->n == p->cap;
}

static int period_cmp(const void *a, const void *b)
{
    return strcmp(((const ann_catalog_period *)a)->tenant_id,
                  ((const ann_catalog_period *)b)->tenant_id);
}

static int note_last_insert(const ann_entry *e, void *ud)
{
    int64_t *t = ud;
    if (e->insert_time_ns > *t)
        *t = e->insert_time_ns;
    return 0;
}

/* A deletion the read model shows: its audit row (a server-made one's; the same row if
 * written again), then the mark that it is done. */
static int deletion_done(dist *d, const char *tenant_id, const char *log_id, int64_t when_ns,
                         const char *actor, const char *reason, ann_err *err)
{
    if (reason && *reason &&
        ann_catalog_event_put(d->cat, tenant_id, log_id, when_ns, "retention",
                              actor && *actor ? actor : ANN_RETENTION_ACTOR, reason, err) != 0)
        return -1;
    return ann_catalog_log_delete_done(d->cat, tenant_id, log_id, err);
}

/* A deletion marked in the catalog and not known done: done if the read model shows it;
 * else, once the mark is older than DIST_DELETE_RESEND_NS (its server died before sending
 * the command, or the command is lost), the command is sent again (a second one for a
 * deleted log changes nothing). */
#define DIST_DELETE_RESEND_NS (60LL * 1000000000LL)
static int finish_deletion(dist *d, const ann_catalog_log_row *row, int64_t now_ns, int64_t day_ns,
                           ann_err *err)
{
    dist_log_state rs;
    if (dist_rm_state(d, row->tenant_id, row->log_id, &rs, err) != 0)
        return -1;
    int64_t marked = row->delete_ns ? row->delete_ns : row->create_ns;
    if (rs.exists && !rs.deleted) {
        /* a minute; a day when the hidden --retention-day-ms makes one shorter (tests) */
        if (now_ns - marked < (day_ns < DIST_DELETE_RESEND_NS ? day_ns : DIST_DELETE_RESEND_NS))
            return 0; /* likely in flight: next time */
        ann_store_waiter w;
        ann_store_waiter_init(&w);
        send_delete(d, row->tenant_id, row->log_id, ann_store_waiter_done, &w);
        ann_err e = {0};
        if (ann_store_waiter_wait(&w, &e) != 0 && e.code != ANN_ENOTFOUND) {
            *err = e;
            return -1;
        }
        fprintf(stderr, "annalsd: finished the interrupted deletion of log %s of tenant %s\n",
                row->log_id, row->tenant_id);
    }
    return deletion_done(d, row->tenant_id, row->log_id, marked, row->delete_actor,
                         row->delete_reason, err);
}

/* One log of a pass: 1 deleted, 0 kept, -1 error. The exact check reads the last entry from
 * the read model, and only when every sequenced entry is projected (else writes are in
 * flight: the log is not idle). The deletion is DeleteLog's (conditional mark in the
 * catalog, Command through Kafka, applied by the projector), then the audit row. */
static int retention_one(dist *d, const ann_catalog_log_row *row, int32_t days, bool own,
                         int64_t now_ns, int64_t day_ns, ann_err *err)
{
    int64_t cutoff = now_ns - (int64_t)days * day_ns;
    bool exists = false, deleted = false;
    uint64_t count = 0;
    dist_log_state rs;
    if (ann_archive_log_count(d->arch, d->kcfg.partitions, row->tenant_id, row->log_id, &exists,
                              &deleted, &count, err) != 0 ||
        dist_rm_state(d, row->tenant_id, row->log_id, &rs, err) != 0)
        return -1;
    /* Gone already; a creation still in flight (the read model does not have the log yet:
     * its CreateLog has not answered); writes in flight: not idle, not deleted. */
    if (deleted || rs.deleted || !rs.exists || rs.visible_count < count)
        return 0;
    int64_t last = row->create_ns;
    if (count > 0 && dist_rm_read_after(&d->base, row->tenant_id, row->log_id, count - 1, 1,
                                        note_last_insert, &last, err) != 0)
        return -1;
    if (last >= cutoff) {
        (void)ann_catalog_log_set_last_write(d->cat, row->tenant_id, row->log_id, last, err);
        return 0;
    }
    char reason[512];
    snprintf(reason, sizeof reason,
             "retention: last write at %" PRId64 " ns is older than the %s period of %d day%s "
             "(%" PRId64 " ns a day); deleted %" PRIu64 " entries",
             last, own ? "log's" : "tenant's", (int)days, days == 1 ? "" : "s", day_ns, count);
    /* Who and why go on the log's row with the mark itself: a server killed after it
     * leaves a deletion that a later pass finishes, audit row included (finish_deletion). */
    ann_err e = {0};
    ann_store_waiter w;
    ann_store_waiter_init(&w);
    delete_log(d, row->tenant_id, row->log_id, now_ns, ANN_RETENTION_ACTOR, reason,
               ann_store_waiter_done, &w);
    if (ann_store_waiter_wait(&w, &e) != 0) {
        if (e.code == ANN_EPRECOND || e.code == ANN_ENOTFOUND)
            return 0; /* held or deleted meanwhile */
        *err = e;
        return -1;
    }
    if (deletion_done(d, row->tenant_id, row->log_id, now_ns, ANN_RETENTION_ACTOR, reason, err) !=
        0)
        fprintf(stderr, "annalsd: retention: audit row of log %s: %s\n", row->log_id, err->msg);
    fprintf(stderr, "annalsd: retention: deleted log %s of tenant %s (%s period of %d day%s)\n",
            row->log_id, row->tenant_id, own ? "its" : "the tenant's", (int)days,
            days == 1 ? "" : "s");
    return 1;
}

static int d_retention_pass(ann_store *st, int64_t now_ns, int64_t day_ns, size_t max_logs,
                            ann_retention_stats *out, ann_err *err)
{
    dist *d = (dist *)st;
    memset(out, 0, sizeof *out);
    if (day_ns <= 0 || max_logs == 0)
        return ann_err_set(err, ANN_EINVAL, "retention: bad day or bound");
    ann_catalog_period *periods = NULL;
    size_t np = 0;
    if (ann_catalog_tenant_periods(d->cat, &periods, &np, err) != 0)
        return -1;
    qsort(periods, np, sizeof *periods, period_cmp);
    scan_page page = {.rows = calloc(max_logs, sizeof *page.rows), .cap = max_logs};
    if (!page.rows)
        abort();
    pthread_mutex_lock(&d->scan_mu);
    int rc = ann_catalog_log_scan(d->cat, &d->scan, max_logs, take_log_row, &page, err);
    out->more = d->scan.state_len > 0;
    pthread_mutex_unlock(&d->scan_mu);
    for (size_t i = 0; rc == 0 && i < page.n; i++) {
        const ann_catalog_log_row *row = &page.rows[i];
        int32_t days = row->days;
        bool own = days > 0;
        if (!own) {
            ann_catalog_period key;
            snprintf(key.tenant_id, sizeof key.tenant_id, "%s", row->tenant_id);
            const ann_catalog_period *p = bsearch(&key, periods, np, sizeof *periods, period_cmp);
            days = p ? p->days : 0;
        }
        if (row->deleted && !row->delete_done) {
            if (finish_deletion(d, row, now_ns, day_ns, err) != 0)
                rc = -1;
            continue;
        }
        if (row->deleted || row->held || days <= 0 || days > INT64_MAX / day_ns)
            continue;
        int64_t hint = row->last_write_ns > row->create_ns ? row->last_write_ns : row->create_ns;
        if (hint >= now_ns - (int64_t)days * day_ns)
            continue; /* written (or created) within the period, as far as we know */
        out->examined++;
        int r = retention_one(d, row, days, own, now_ns, day_ns, err);
        if (r < 0)
            rc = -1;
        else if (r == 1)
            out->deleted++;
    }
    free(page.rows);
    free(periods);
    return rc;
}

static const ann_store_ops dist_ops = {
    .version = 4,
    .name = "distributed",
    .close = d_close,
    .secret = d_secret,
    .tenant_create = d_tenant_create,
    .tenant_by_key = d_tenant_by_key,
    .log_get = d_log_get,
    .list = dist_rm_list,
    .logs_list = dist_rm_logs_list,
    .search = dist_rm_search,
    .read_after = dist_rm_read_after,
    .checkpoint = dist_rm_checkpoint,
    .inclusion_proof = dist_rm_inclusion_proof,
    .consistency_proof = dist_rm_consistency_proof,
    .log_seal = d_log_seal,
    .watch = d_watch,
    .unwatch = d_unwatch,
    .append_async = d_append_async,
    .revoke_async = d_revoke_async,
    .log_delete_async = d_log_delete_async,
    .log_create_async = d_log_create_async,
    .key_create = d_key_create,
    .key_list = d_key_list,
    .key_revoke = d_key_revoke,
    .log_set_hold = d_log_set_hold,
    .tenant_set_retention = d_tenant_set_retention,
    .retention_pass = d_retention_pass,
    .log_create_spec_async = d_log_create_spec_async,
    .abandon = d_abandon,
};

int ann_store_distributed_open(const ann_store_distributed_opts *o, ann_store **out, ann_err *err)
{
    *out = NULL;
    dist *d = calloc(1, sizeof *d);
    if (!d)
        return ann_err_set(err, ANN_EINTERNAL, "out of memory");
    d->base.ops = &dist_ops;
    d->kcfg = o->kafka;
    ann_kafka_config_defaults(&d->kcfg);
    d->default_wait = ANN_WAIT_QUERYABLE;
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->scan_mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    pthread_cond_init(&d->cv_poll, NULL);
    pthread_mutex_init(&d->jmu, NULL);
    pthread_cond_init(&d->jcv, NULL);
    pthread_mutex_init(&d->kmu, NULL);
    if (o->instance)
        snprintf(d->origin, sizeof d->origin, "%.40s-", o->instance);
    ann_uuid_v4_new(d->origin + strlen(d->origin)); /* unique per process: stale acks never match */
    ann_kafka_topic(&d->kcfg, ANN_TOPIC_PENDING, d->t_pending, sizeof d->t_pending);

    ann_catalog_config cc = {.cql = &o->cql, .keyspace = d->kcfg.ns, .replication = o->replication};
    ann_archive_config ac = {.cql = &o->cql, .keyspace = d->kcfg.ns, .replication = o->replication};
    if (ann_kafka_ensure_topics(&d->kcfg, err) != 0 || ann_catalog_open(&cc, &d->cat, err) != 0 ||
        ann_archive_open(&ac, &d->arch, err) != 0 ||
        dist_rm_open(d, o->conninfo, o->pg_pool > 0 ? o->pg_pool : 4, err) != 0)
        goto fail;
    d->prod = ann_kafka_producer(&d->kcfg, d->origin, NULL, on_delivery, d, err);
    if (!d->prod)
        goto fail;
    d->acks = ann_kafka_consumer(&d->kcfg, NULL, NULL, NULL, d, err);
    if (!d->acks || assign_acks(d, err) != 0)
        goto fail;
    if (dist_rm_listen_start(d, err) != 0)
        goto fail;
    d->n_jobs = 2;
    for (int i = 0; i < d->n_jobs; i++)
        pthread_create(&d->jobs[i], NULL, job_thread, d);
    pthread_create(&d->t_poll, NULL, poll_thread, d);
    pthread_create(&d->t_ack, NULL, ack_thread, d);
    pthread_create(&d->t_state, NULL, state_poll_thread, d);
    d->threads_started = true;
    d->metrics = o->metrics;
    if (d->metrics)
        ann_metrics_collector(d->metrics, dist_lag_collect, d);
    *out = &d->base;
    return 0;
fail:
    d_close(&d->base);
    return -1;
}
