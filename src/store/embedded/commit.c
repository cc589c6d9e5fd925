/*
 * append(): validation, then a job queued for the one committer thread,
 * which runs group-commit rounds (docs/storage.md, "Append: group commit"):
 * sequence every queued job into its log's pending frame, write one frame per
 * log, fdatasync the touched files in parallel (EMB_NSYNC helper threads plus
 * the committer), publish, wake watchers, answer.
 */
#include "store/embedded/internal.h"
#include "common/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/random.h"
#include "domain/integrity.h"
#include "store/embedded/logfile.h"

#include <openssl/rand.h>

#define MAX_BODY (64u << 20)
#define MAX_REQUEST (256u << 20)   /* encoded; keeps every frame far below 1 GiB */
#define FRAME_SOFT_CAP (64u << 20) /* a log's frame in one round stops growing here */
#define PREALLOC_MIN (256u << 10)  /* logs smaller than this are not preallocated */
#define PREALLOC_MAX (4u << 20)
#define PREALLOC_ROUND (8u << 20) /* zeros written per group commit, all logs */

typedef struct confirm_ctx {
    elog *h;
    const char *iid;
    size_t len;
} confirm_ctx;

/* Is entry `id` the one with this insert_id? Reads the pending frame or the
 * file. */
static bool confirm_iid(uint64_t id, void *ud)
{
    confirm_ctx *c = ud;
    elog *h = c->h;
    if (id <= h->sealed) { /* in a block: copy the record out */
        const emb_block *b = emb_block_of(h, id);
        uint8_t *buf = NULL;
        size_t cap = 0, len = 0;
        ann_err err;
        bool same = b && emb_block_take(h, b, id, &buf, &cap, &len, &err) == 0 &&
                    ann_le16_get(buf + 40) == c->len &&
                    !memcmp(buf + ANN_LF_REC_HDR, c->iid, c->len);
        free(buf);
        return same;
    }
    uint64_t off = ann_idx_off(&h->idx, id);
    uint8_t buf[ANN_LF_REC_HDR + 512];
    uint8_t *heap = NULL;
    const uint8_t *p;
    bool same;
    if (off >= h->end) {
        p = h->pend + (off - h->end);
    } else {
        size_t want = ANN_LF_REC_HDR + c->len;
        uint8_t *dst = buf;
        if (want > sizeof buf)
            dst = heap = ann_xmalloc(want);
        if (ann_lf_pread_full(h->fd, dst, want, off) != 0) {
            free(heap);
            return false;
        }
        p = dst;
    }
    same = ann_le16_get(p + 40) == c->len && !memcmp(p + ANN_LF_REC_HDR, c->iid, c->len);
    free(heap);
    return same;
}

/* Sequences one job into h's pending frame. h->lk is held for writing. */
static void stage_job(emb *s, elog *h, job *j)
{
    ann_append *req = j->req;
    size_t need = 0;
    for (size_t i = 0; i < req->n; i++)
        need += ann_lf_rec_size(req->entries[i].insert_id_len,
                                req->entries[i].body_len + EMB_SALT_FIELD_LEN);
    if (h->idx.n + req->n > ANN_IDX_MAX_ENTRIES) {
        j->rc = ann_err_set(&j->err, ANN_ERANGE, "log %s: entry limit reached", h->log);
        return;
    }
    if (h->log_sealed) {
        /* A sealed log takes nothing new; a retry of stored entries still gets their ids. */
        for (size_t i = 0; i < req->n; i++) {
            const ann_entry *e = &req->entries[i];
            confirm_ctx cc = {h, e->insert_id, e->insert_id_len};
            uint64_t id = ann_idx_find(&h->idx, emb_iid_tag(s, e->insert_id, e->insert_id_len),
                                       confirm_iid, &cc);
            if (!id) {
                j->rc = ann_err_set(&j->err, ANN_EPRECOND,
                                    "log %s is sealed: it takes no more entries", h->log);
                return;
            }
            req->ids_out[i] = id;
        }
        req->n_new_out = 0;
        req->ids_known = true;
        j->rc = 0;
        return;
    }
    emb_grow(&h->pend, &h->pend_cap, h->pend_len + need);
    size_t n_new = 0;
    for (size_t i = 0; i < req->n; i++) {
        const ann_entry *e = &req->entries[i];
        uint32_t tag = emb_iid_tag(s, e->insert_id, e->insert_id_len);
        confirm_ctx cc = {h, e->insert_id, e->insert_id_len};
        uint64_t id = ann_idx_find(&h->idx, tag, confirm_iid, &cc);
        if (!id) {
            id = h->idx.n + 1;
            uint8_t field[ANN_INTEGRITY_FIELD_LEN];
            ann_integrity_field(ANN_INTEGRITY_SALT, j->salts[i], field);
            ann_lf_rec_encode_tail(h->pend + h->pend_len, id, e, field, EMB_SALT_FIELD_LEN);
            /* Cannot fail: the entry limit was checked above. */
            (void)ann_idx_add(&h->idx, e->time_ns, h->end + h->pend_len, tag);
            h->pend_len += ann_lf_rec_size(e->insert_id_len, e->body_len + EMB_SALT_FIELD_LEN);
            h->pend_count++;
            n_new++;
        }
        req->ids_out[i] = id;
    }
    req->n_new_out = n_new;
    req->ids_known = true; /* durable, sequenced and queryable at once */
    j->rc = 0;
}

static int prealloc_write(elog *h);

/* The body salts of a request: OpenSSL's per-thread DRBG, seeded from the kernel, costs a
 * tenth of getrandom per salt (5.7 against 58 ns here: docs/integrity.md), and ingest draws
 * one for every entry. The kernel's generator stays the fallback. */
static void draw_salts(void *p, size_t n)
{
#ifdef ANN_BENCH_NO_TREE
    memset(p, 0, n); /* no salts: the field is not stored */
#else
    if (n > INT_MAX || RAND_bytes(p, (int)n) != 1)
        ann_random_bytes(p, n);
#endif
}

/* The sync step of one log (a sync helper or the committer). The frame is
 * written: a failure now leaves its fate unknown. The zeros written ahead are
 * only an optimisation: when they fail (a full disk), the frame is synced
 * anyway and the next round plans them again. */
static void sync_one(elog *h)
{
#ifndef ANN_BENCH_NO_TREE
    emb_frame_leaves(h); /* hashes for the integrity tree while this helper has the frame */
#endif
    if (h->zero_to > h->zero_from)
        (void)prealloc_write(h);
    if (fdatasync(h->fd) != 0) {
        h->failed = true;
        h->sync_failed = true;
        h->sys_errno = errno;
    }
}

static void *sync_main(void *arg)
{
    emb *s = arg;
    unsigned seen = 0;
    pthread_mutex_lock(&s->sync_mu);
    for (;;) {
        while (s->sync_gen == seen && !s->sync_stop)
            pthread_cond_wait(&s->sync_go, &s->sync_mu);
        if (s->sync_stop)
            break;
        seen = s->sync_gen;
        while (s->sync_next < s->sync_n) {
            elog *h = s->sync_items[s->sync_next++];
            pthread_mutex_unlock(&s->sync_mu);
            sync_one(h);
            pthread_mutex_lock(&s->sync_mu);
            if (++s->sync_finished == s->sync_n)
                pthread_cond_signal(&s->sync_done);
        }
    }
    pthread_mutex_unlock(&s->sync_mu);
    return NULL;
}

/* fdatasyncs the n logs' files in parallel (helpers + this thread). */
static void sync_all(emb *s, elog **items, size_t n)
{
    if (n == 1 || s->nsync_started == 0) {
        for (size_t i = 0; i < n; i++)
            sync_one(items[i]);
        return;
    }
    pthread_mutex_lock(&s->sync_mu);
    s->sync_items = items;
    s->sync_n = n;
    s->sync_next = 0;
    s->sync_finished = 0;
    s->sync_gen++;
    pthread_cond_broadcast(&s->sync_go);
    while (s->sync_next < s->sync_n) {
        elog *h = s->sync_items[s->sync_next++];
        pthread_mutex_unlock(&s->sync_mu);
        sync_one(h);
        pthread_mutex_lock(&s->sync_mu);
        s->sync_finished++;
    }
    while (s->sync_finished < s->sync_n)
        pthread_cond_wait(&s->sync_done, &s->sync_mu);
    s->sync_items = NULL;
    s->sync_n = 0;
    pthread_mutex_unlock(&s->sync_mu);
}

/*
 * Keeps zeros written ahead of a busy log's end: fdatasync of a write inside
 * the file's size and allocated blocks needs no journal commit, which on
 * ext4 makes a group commit several times cheaper (docs/storage.md). The
 * zeros are made durable by this round's fdatasync.
 */
static void prealloc_plan(elog *h, uint64_t *budget)
{
    uint64_t used = h->end + h->pend_len;
    uint64_t chunk = used / 4;
    chunk = chunk < PREALLOC_MIN ? PREALLOC_MIN : chunk > PREALLOC_MAX ? PREALLOC_MAX : chunk;
    if (used > h->alloc_end)
        h->alloc_end = used;
    h->zero_from = h->zero_to = 0;
    /* Extend when less than half a chunk is left, within this round's
     * budget, so that one group commit never carries many megabytes of
     * zeros (a latency spike). */
    if (used < PREALLOC_MIN || h->alloc_end - used >= chunk / 2 || *budget < chunk)
        return;
    *budget -= chunk;
    h->zero_from = h->alloc_end;
    h->zero_to = h->alloc_end + chunk;
}

/* Writes the planned zeros (in a sync helper, in parallel with other logs). */
static int prealloc_write(elog *h)
{
    static const uint8_t zeros[1 << 16];
    for (uint64_t off = h->zero_from; off < h->zero_to;) {
        size_t len = h->zero_to - off < sizeof zeros ? (size_t)(h->zero_to - off) : sizeof zeros;
        if (emb_write_full(h->fd, zeros, len, off) != 0)
            return -1;
        off += len;
    }
    h->alloc_end = h->zero_to > h->alloc_end ? h->zero_to : h->alloc_end;
    return 0;
}

/* One group commit over arr[0..n): sequence every job, write one frame per
 * log, fdatasync them all, publish, wake watchers, answer. Jobs that would
 * grow a log's frame past FRAME_SOFT_CAP are returned (linked) for the next
 * round. */
static job *commit_round(emb *s, job **arr, size_t n)
{
    elog *logs = NULL;
    size_t nlogs = 0;
    job *deferred = NULL, **dtail = &deferred;

    double t0 = s->trace ? emb_mono_ms() : 0, t1 = 0, t2 = 0, t3 = 0;
    for (size_t i = 0; i < n; i++) {
        job *j = arr[i];
        elog *h = j->h;
        j->next = NULL;
        pthread_rwlock_wrlock(&h->lk);
        if (h->in_round && h->pend_len > FRAME_SOFT_CAP) {
            pthread_rwlock_unlock(&h->lk);
            *dtail = j; /* keeps one frame bounded; order within the log kept */
            dtail = &j->next;
            arr[i] = NULL;
            continue;
        }
        j->rc = -1;
        if (h->deleted) {
            emb_not_found(&j->err, h->log);
        } else if (h->broken && !h->in_round && emb_log_reload(s, h, &j->err) != 0) {
            /* still broken: j->err says why */
        } else if (h->broken) {
            ann_err_set(&j->err, ANN_EUNAVAIL, "log %s: storage failed; retry", h->log);
        } else {
            if (!h->in_round) {
                h->in_round = true;
                h->failed = false;
                h->sync_failed = false;
                h->sys_errno = 0;
                h->pend_len = ANN_LF_FRAME_HDR;
                h->pend_count = 0;
                h->pend_first = h->idx.n + 1;
                h->pl_ok = false;
                emb_grow(&h->pend, &h->pend_cap, ANN_LF_FRAME_HDR);
                h->cnext = logs;
                logs = h;
                nlogs++;
            }
            stage_job(s, h, j);
        }
        pthread_rwlock_unlock(&h->lk);
    }

    /* Write each log's frame, then make them all durable together. */
    elog *stack[64];
    elog **syncs = nlogs <= 64 ? stack : ann_xmalloc(nlogs * sizeof *syncs);
    size_t nsync = 0;
    uint64_t zero_budget = PREALLOC_ROUND, bytes = 0;
    if (s->trace)
        t1 = emb_mono_ms();
    for (elog *h = logs; h; h = h->cnext) {
        if (h->failed || h->pend_count == 0)
            continue;
        ann_lf_frame_encode(h->pend, h->pend_first, h->pend_count, h->pend_len);
        if (emb_write_full(h->fd, h->pend, h->pend_len, h->end) != 0) {
            h->failed = true;
            h->sys_errno = errno;
            continue;
        }
        ANN_FAULT_POINT("commit.written"); /* per frame: written, not yet synced */
        h->zero_from = h->zero_to = 0;
        if (s->durable && s->opts.prealloc)
            prealloc_plan(h, &zero_budget);
        bytes += h->pend_len;
        if (s->durable)
            syncs[nsync++] = h;
    }
    if (s->trace)
        t2 = emb_mono_ms();
    if (nsync) {
        uint64_t ts = s->m_fsync ? ann_metrics_now_ns() : 0;
        sync_all(s, syncs, nsync);
        if (s->m_fsync)
            ann_histogram_observe(s->m_fsync, ann_metrics_now_ns() - ts);
        ANN_FAULT_POINT("commit.synced"); /* durable, not yet visible or answered */
    }
    if (s->trace) {
        t3 = emb_mono_ms();
        if (t3 - t0 >= s->trace)
            fprintf(stderr,
                    "annals store trace: round %zu jobs %zu logs %.1f MB + %.1f MB zeros: "
                    "stage %.1f ms write %.1f ms sync %.1f ms\n",
                    n, nlogs, (double)bytes / 1e6, (double)(PREALLOC_ROUND - zero_budget) / 1e6,
                    t1 - t0, t2 - t1, t3 - t2);
    }
    if (syncs != stack)
        free(syncs);

    /* Publish: the entries become visible only now. */
    size_t nw = 0;
    uint64_t m_entries = 0, m_bytes = 0;
    for (elog *h = logs; h; h = h->cnext) {
        pthread_rwlock_wrlock(&h->lk);
        if (!h->failed) {
            if (h->pend_count) {
                m_entries += h->pend_count;
                m_bytes += h->pend_len;
                h->end += h->pend_len;
                h->last_write_ms = emb_mono_ms(); /* the sealer waits for idle logs */
                emb_leaves_publish(h);
            }
            h->visible = h->idx.n;
        } else {
            /* Nothing of this round is acknowledged; cut what may have been
             * written and rebuild the log from its file on next use. */
            h->broken = true;
            h->alloc_end = h->end;
            if (ftruncate(h->fd, (off_t)h->end) != 0)
                fprintf(stderr, "annals store: %s: truncate after failure: %s\n", h->path,
                        strerror(errno));
        }
        pthread_rwlock_unlock(&h->lk);
    }
    ANN_FAULT_POINT("commit.published"); /* visible, not yet answered */
    ann_counter_add(s->m_entries, m_entries);
    ann_counter_add(s->m_bytes, m_bytes);
    ann_counter_add(s->m_rounds, 1);
    ann_histogram_observe(s->m_batch_requests, n);
    ann_histogram_observe(s->m_batch_entries, m_entries);
    /* Wake the watchers of every log that got entries. */
    for (elog *h = logs; h; h = h->cnext)
        if (!h->failed && h->pend_count)
            emb_watch_gather(s, h, &s->notify, &s->notify_cap, &nw, false);
    if (nw)
        emb_watch_call(s, s->notify, nw);

    /* Answer. After a job is signalled its thread may release the log, so
     * the round's per-log state is reset first. */
    for (size_t i = 0; i < n; i++) {
        job *j = arr[i];
        if (j && j->rc == 0 && j->h->failed) {
            /* A frame that failed to write is torn (cut above, or at the next
             * load): nothing stored. One that was written but not synced
             * may yet be on disk after a crash: outcome unknown. */
            errno = j->h->sys_errno ? j->h->sys_errno : EIO;
            if (j->h->sync_failed)
                j->rc = emb_sys_unknown(&j->err, "sync", j->h->path);
            else
                j->rc = emb_sys_fail(&j->err, "write", j->h->path);
        }
    }
    for (elog *h = logs, *next; h; h = next) {
        next = h->cnext;
        h->cnext = NULL;
        h->in_round = false;
        h->pend_count = 0;
        h->pend_len = 0;
        if (h->pend_cap > (1u << 20)) { /* idle logs keep at most 1 MiB of buffer */
            free(h->pend);
            h->pend = NULL;
            h->pend_cap = 0;
        }
    }
    pthread_mutex_lock(&s->q_mu);
    for (size_t i = 0; i < n; i++) {
        job *j = arr[i];
        if (!j)
            continue;
        j->done = true;
        pthread_cond_signal(&j->cv);
    }
    pthread_mutex_unlock(&s->q_mu);
    return deferred;
}

static void *committer_main(void *arg)
{
    emb *s = arg;
    job **arr = NULL;
    size_t arr_cap = 0;
    job *carry = NULL;

    for (;;) {
        pthread_mutex_lock(&s->q_mu);
        while (!s->q_head && !carry && !s->stopping)
            pthread_cond_wait(&s->q_cv, &s->q_mu);
        if (!s->q_head && !carry) {
            pthread_mutex_unlock(&s->q_mu);
            break; /* stopping and drained */
        }
        /* Deferred jobs go first: they were queued earlier. */
        job *list = s->q_head;
        if (carry) {
            job *t = carry;
            while (t->next)
                t = t->next;
            t->next = s->q_head;
            list = carry;
        }
        s->q_head = s->q_tail = NULL;
        pthread_mutex_unlock(&s->q_mu);

        size_t n = 0;
        for (job *j = list; j; j = j->next) {
            if (n == arr_cap) {
                arr_cap = arr_cap ? arr_cap * 2 : 64;
                arr = ann_xrealloc(arr, arr_cap * sizeof *arr);
            }
            arr[n++] = j;
        }
        carry = commit_round(s, arr, n);
    }
    free(arr);
    return NULL;
}

static void *committer_thread(void *arg)
{
    return committer_main(arg);
}

static int validate_append(const ann_append *req, ann_err *err)
{
    if (!req)
        return ann_err_set(err, ANN_EINVAL, "append: missing request");
    if (req->n && (!req->entries || !req->ids_out))
        return ann_err_set(err, ANN_EINVAL, "entries: missing");
    uint64_t total = 0;
    for (size_t i = 0; i < req->n; i++) {
        const ann_entry *e = &req->entries[i];
        total += ann_lf_rec_size(e->insert_id_len, e->body_len + EMB_SALT_FIELD_LEN);
        if (total > MAX_REQUEST)
            return ann_err_set(err, ANN_EINVAL, "entries: request larger than %u MiB",
                               MAX_REQUEST >> 20);
        if (!e->insert_id || e->insert_id_len == 0 || e->insert_id_len > 65535)
            return ann_err_set(err, ANN_EINVAL, "entries[%zu].insert_id: must be 1 to 65535 bytes",
                               i);
        if (e->body_len > MAX_BODY || (e->body_len && !e->body))
            return ann_err_set(err, ANN_EINVAL, "entries[%zu]: body too large or missing", i);
    }
    return 0;
}

int emb_append(ann_store *st, ann_append *req, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    if (validate_append(req, err) != 0)
        return -1;
    req->n_new_out = 0;
    if (emb_log_acquire(s, req->tenant_id, req->log_id, &h, err) != 0)
        return -1;
    if (req->n == 0) {
        emb_log_release(s, h);
        req->ids_known = true;
        return 0;
    }
    /* The first append since SQLite recorded this log's count marks that count dirty
     * there first: a crash after the append then cannot leave a stale count that a
     * listing would believe. Once per load of the log. */
    pthread_rwlock_rdlock(&h->lk);
    bool clean = h->count_clean;
    uint64_t visible = h->visible;
    pthread_rwlock_unlock(&h->lk);
    if (clean) {
        if (ann_meta_log_count_set(s->meta, h->tenant, h->log, visible, true, err) != 0) {
            emb_log_release(s, h);
            return -1; /* nothing was appended */
        }
        pthread_rwlock_wrlock(&h->lk);
        h->count_clean = false;
        pthread_rwlock_unlock(&h->lk);
    }
    /* Each entry's body_salt (docs/integrity.md), drawn here rather than in the committer. */
    job j = {.req = req, .h = h, .rc = -1, .salts = ann_xmalloc(req->n * sizeof *j.salts)};
    draw_salts(j.salts, req->n * sizeof *j.salts);
    ann_err_clear(&j.err);
    pthread_cond_init(&j.cv, NULL);
    pthread_mutex_lock(&s->q_mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->q_mu);
        pthread_cond_destroy(&j.cv);
        free(j.salts);
        emb_log_release(s, h);
        return ann_err_set(err, ANN_EUNAVAIL, "store is closing");
    }
    if (s->q_tail)
        s->q_tail->next = &j;
    else
        s->q_head = &j;
    s->q_tail = &j;
    pthread_cond_signal(&s->q_cv);
    while (!j.done)
        pthread_cond_wait(&j.cv, &s->q_mu);
    pthread_mutex_unlock(&s->q_mu);
    pthread_cond_destroy(&j.cv);
    free(j.salts);
    emb_log_release(s, h);
    if (j.rc != 0 && err)
        *err = j.err;
    return j.rc;
}

int emb_committer_start(emb *s, ann_err *err)
{
    if (pthread_create(&s->committer, NULL, committer_thread, s) != 0)
        return ann_err_set(err, ANN_EUNAVAIL, "cannot start the committer thread");
    s->committer_started = true;
    if (s->durable) {
        /* Fewer helpers only make syncs less parallel; none is needed. */
        for (int i = 0; i < EMB_NSYNC; i++) {
            if (pthread_create(&s->sync_th[i], NULL, sync_main, s) != 0)
                break;
            s->nsync_started++;
        }
    }
    return 0;
}

void emb_committer_stop(emb *s)
{
    if (s->committer_started) {
        pthread_mutex_lock(&s->q_mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->q_cv);
        pthread_mutex_unlock(&s->q_mu);
        pthread_join(s->committer, NULL);
        s->committer_started = false;
    }
    if (s->nsync_started) {
        pthread_mutex_lock(&s->sync_mu);
        s->sync_stop = true;
        pthread_cond_broadcast(&s->sync_go);
        pthread_mutex_unlock(&s->sync_mu);
        for (int i = 0; i < s->nsync_started; i++)
            pthread_join(s->sync_th[i], NULL);
        s->nsync_started = 0;
    }
}
