/*
 * The open-log table: every log in use (or idle but kept) has one elog, found
 * by (tenant, log) under s->mu, reference-counted, and put on an LRU when
 * idle so that a busy log keeps its fd and index. Loading a log (the first
 * acquire) scans its data file (or reads its index snapshot and scans what
 * follows), cuts a torn tail and finishes pending revocations of its
 * records; the committer reloads a log the same way after a failed write.
 */
#include "store/embedded/internal.h"
#include "common/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "store/embedded/logfile.h"

/* ---- table and LRU (s->mu) ----------------------------------------------- */

static elog *table_find(emb *s, uint64_t hash, const char *tenant, const char *log)
{
    if (!s->tcap)
        return NULL;
    for (elog *h = s->table[hash & (s->tcap - 1)]; h; h = h->hnext)
        if (h->hash == hash && !strcmp(h->tenant, tenant) && !strcmp(h->log, log))
            return h;
    return NULL;
}

static void table_insert(emb *s, elog *h)
{
    if ((s->tcount + 1) * 2 > s->tcap) {
        size_t ncap = s->tcap ? s->tcap * 2 : 64;
        elog **nt = ann_xcalloc(ncap, sizeof *nt);
        for (size_t i = 0; i < s->tcap; i++) {
            for (elog *e = s->table[i], *next; e; e = next) {
                next = e->hnext;
                e->hnext = nt[e->hash & (ncap - 1)];
                nt[e->hash & (ncap - 1)] = e;
            }
        }
        free(s->table);
        s->table = nt;
        s->tcap = ncap;
    }
    elog **slot = &s->table[h->hash & (s->tcap - 1)];
    h->hnext = *slot;
    *slot = h;
    h->in_table = true;
    s->tcount++;
}

static void table_remove(emb *s, elog *h)
{
    if (!h->in_table)
        return;
    for (elog **pp = &s->table[h->hash & (s->tcap - 1)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == h) {
            *pp = h->hnext;
            break;
        }
    }
    h->in_table = false;
    s->tcount--;
}

static void lru_unlink(emb *s, elog *h)
{
    if (!h->in_lru)
        return;
    h->lru_prev->lru_next = h->lru_next;
    h->lru_next->lru_prev = h->lru_prev;
    h->in_lru = false;
    s->lru_count--;
    s->lru_bytes -= h->lru_bytes;
}

static void lru_push(emb *s, elog *h)
{
    h->lru_next = s->lru.lru_next;
    h->lru_prev = &s->lru;
    s->lru.lru_next->lru_prev = h;
    s->lru.lru_next = h;
    h->in_lru = true;
    h->idle_since = emb_mono_ms();
    h->lru_bytes = h->idx.bytes;
    s->lru_count++;
    s->lru_bytes += h->lru_bytes;
}

/* An evicted or closing log leaves SQLite its exact entry count (one row update), so a
 * listing need not load it again. A failure only leaves the count dirty. */
static void count_store(emb *s, elog *h)
{
    ann_err e;
    if (h->fd >= 0 && h->load_rc == 0 && !h->broken && !h->deleted && !h->count_clean &&
        ann_meta_log_count_set(s->meta, h->tenant, h->log, h->visible, false, &e) != 0)
        fprintf(stderr, "annals store: %s: entry count not recorded: %s\n", h->log, e.msg);
}

static void elog_free(emb *s, elog *h)
{
    if (!h)
        return;
    count_store(s, h);
    if (h->fd >= 0) {
        /* Give back the preallocated zeros of an idle log (no sync needed:
         * a zero tail that survives a crash is harmless). */
        if (h->load_rc == 0 && !h->broken && !h->deleted && h->alloc_end > h->end &&
            ftruncate(h->fd, (off_t)h->end) != 0)
            fprintf(stderr, "annals store: %s: trim: %s\n", h->path, strerror(errno));
        close(h->fd);
    }
    ann_idx_release(&h->idx);
    emb_blocks_release(h);
    pthread_mutex_destroy(&h->vc_mu);
    free(h->blk_path);
    emb_revmap_release(&h->revs);
    pthread_rwlock_destroy(&h->lk);
    pthread_mutex_destroy(&h->purge_mu);
    emb_tree_save(h);
    emb_tree_release(&h->tree);
    emb_leaves_release(h);
    free(h->labels);
    free(h->pend);
    free(h->path);
    free(h->idx_path);
    free(h);
}

/* Unlinks idle logs beyond the budgets; returns them as a list (via hnext)
 * for the caller to free outside s->mu. */
/* Has h entries the sealer has yet to seal? Those logs stay open until it has (only the
 * sealer seals, and only open logs): closing one would leave its tail uncompressed until
 * it is opened again. s->mu held (h->lk nests inside it). */
static bool unsealed(emb *s, elog *h)
{
    if (s->opts.no_blocks || s->opts.admin_only)
        return false;
    pthread_rwlock_rdlock(&h->lk);
    bool u = h->load_rc == 0 && !h->deleted && !h->broken && h->sealed < h->visible;
    pthread_rwlock_unlock(&h->lk);
    return u;
}

static elog *lru_evict(emb *s)
{
    elog *victims = NULL;
    double now = emb_mono_ms();
    elog *h = s->lru.lru_prev; /* the longest idle */
    while (h != &s->lru) {
        elog *prev = h->lru_prev;
        /* Reopening a log rescans its file, so memory pressure alone closes
         * only logs idle for a while: a busy log is never thrashed. */
        if (s->lru_count <= s->opts.max_open_logs &&
            !(s->lru_bytes > s->opts.cache_bytes && now - h->idle_since >= s->opts.idle_evict_ms))
            break;
        /* A log waiting for the sealer is passed over, up to twice the open-log bound. */
        if (s->lru_count <= 2 * s->opts.max_open_logs && unsealed(s, h)) {
            h = prev;
            continue;
        }
        lru_unlink(s, h);
        table_remove(s, h);
        h->hnext = victims;
        victims = h;
        h = prev;
    }
    return victims;
}

static void free_list(emb *s, elog *l)
{
    while (l) {
        elog *next = l->hnext;
        elog_free(s, l);
        l = next;
    }
}

void emb_log_release(emb *s, elog *h)
{
    elog *victims = NULL;
    pthread_mutex_lock(&s->mu);
    if (--h->refs == 0) {
        if (!h->in_table) {
            h->hnext = victims;
            victims = h;
        } else {
            lru_push(s, h);
            elog *v = lru_evict(s);
            while (v) {
                elog *next = v->hnext;
                v->hnext = victims;
                victims = v;
                v = next;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    free_list(s, victims);
}

/* ---- loading a log ------------------------------------------------------ */

typedef struct load_ctx {
    emb *s;
    elog *h;
    uint64_t *redact;
    size_t nredact, redact_cap;
} load_ctx;

static void push_redact(load_ctx *c, uint64_t off)
{
    if (c->nredact == c->redact_cap) {
        c->redact_cap = c->redact_cap ? c->redact_cap * 2 : 16;
        c->redact = ann_xrealloc(c->redact, c->redact_cap * sizeof *c->redact);
    }
    c->redact[c->nredact++] = off;
}

static int load_visit(const ann_entry *e, uint64_t off, uint32_t rec_len, bool needs_redact,
                      void *ud, ann_err *err)
{
    load_ctx *c = ud;
    (void)rec_len;
    if (ann_idx_add(&c->h->idx, e->time_ns, off, emb_iid_tag(c->s, e->insert_id, e->insert_id_len)))
        return ann_err_set(err, ANN_EINTERNAL, "%s: more than %llu entries", c->h->path,
                           (unsigned long long)ANN_IDX_MAX_ENTRIES);
    if (needs_redact)
        push_redact(c, off);
    return 0;
}

/* Rewrites the record at `off` as redacted (no-op if it already is). The
 * caller excludes readers (h->lk held for writing, or during load). */
int emb_redact_at(elog *h, uint64_t off, ann_err *err)
{
    uint8_t hdr[ANN_LF_REC_HDR];
    uint8_t *rec = NULL;
    int rc = -1;
    if (ann_lf_pread_full(h->fd, hdr, sizeof hdr, off) != 0)
        return emb_sys_fail(err, "read", h->path);
    uint32_t rec_len = ann_le32_get(hdr + 4);
    if (rec_len < ANN_LF_REC_HDR + (uint32_t)ann_le16_get(hdr + 40) || rec_len > h->end - off)
        return ann_err_set(err, ANN_ECORRUPT, "%s: bad record length at offset %llu", h->path,
                           (unsigned long long)off);
    rec = ann_xmalloc(rec_len);
    if (ann_lf_pread_full(h->fd, rec, rec_len, off) != 0) {
        emb_sys_fail(err, "read", h->path);
        goto done;
    }
    ann_lf_rec_redact(rec, rec_len);
    if (emb_write_full(h->fd, rec, rec_len, off) != 0) {
        emb_sys_fail(err, "write", h->path);
        goto done;
    }
    rc = 0;
done:
    free(rec);
    return rc;
}

/* 1 if [from, to) of the file is all zeros, 0 if not, -1 on error. */
static int zero_tail(int fd, uint64_t from, uint64_t to)
{
    uint8_t buf[1 << 16];
    while (from < to) {
        size_t len = to - from < sizeof buf ? (size_t)(to - from) : sizeof buf;
        if (ann_lf_pread_full(fd, buf, len, from) != 0)
            return -1;
        for (size_t i = 0; i < len; i++)
            if (buf[i])
                return 0;
        from += len;
    }
    return 1;
}

/* Builds h's index from its file, cutting a torn tail and finishing pending
 * revocations. Called with h->lk held for writing. */
static int log_load(emb *s, elog *h, ann_err *err)
{
    load_ctx c = {.s = s, .h = h};
    uint64_t *pending = NULL;
    size_t npending = 0;
    uint64_t valid_end = 0, last_id = 0;
    struct stat st;
    int rc = -1;

    if (ann_meta_revoke_pending(s->meta, h->tenant, h->log, &pending, &npending, err) != 0)
        goto done;
    h->fd = open(h->path, O_RDWR | O_CLOEXEC);
    if (h->fd < 0) {
        if (errno == ENOENT) {
            ann_err_set(err, ANN_ECORRUPT, "%s: data file of an existing log is missing", h->path);
            fprintf(stderr, "annals store: %s\n", err->msg);
        } else {
            emb_sys_fail(err, "open", h->path);
        }
        goto done;
    }
    if (fstat(h->fd, &st) != 0) {
        emb_sys_fail(err, "stat", h->path);
        goto done;
    }
    /* Index snapshots of earlier releases: the sealed blocks took their place. */
    if (h->idx_path)
        (void)unlink(h->idx_path);
    /* The sealed blocks first (they redo their part of pending revocations), then the
     * unsealed frames after them; the frames they replaced are wiped again, in case a
     * crash came between a block's sync and that wipe. */
    if (emb_blocks_load(s, h, pending, npending, err) != 0)
        goto done;
    if (h->dat_start > (uint64_t)st.st_size) {
        ann_err_set(err, ANN_ECORRUPT, "%s: shorter than its sealed blocks say", h->path);
        fprintf(stderr, "annals store: CORRUPTION: %s\n", err->msg);
        goto done;
    }
    if (h->dat_start && emb_wipe(s, h->fd, h->path, 0, h->dat_start, err) != 0)
        goto done;
    if (ann_lf_scan(h->fd, h->path, h->dat_start, h->idx.n + 1, pending, npending, load_visit, &c,
                    &valid_end, &last_id, err) != 0) {
        if (err && err->code == ANN_ECORRUPT)
            fprintf(stderr, "annals store: CORRUPTION: %s\n", err->msg);
        goto done;
    }
    if (fstat(h->fd, &st) != 0) {
        emb_sys_fail(err, "stat", h->path);
        goto done;
    }
    h->alloc_end = valid_end;
    if ((uint64_t)st.st_size > valid_end) {
        int z = zero_tail(h->fd, valid_end, (uint64_t)st.st_size);
        if (z < 0) {
            emb_sys_fail(err, "read", h->path);
            goto done;
        }
        if (z == 1) {
            h->alloc_end = (uint64_t)st.st_size; /* preallocated space */
            goto tail_done;
        }
        fprintf(stderr,
                "annals store: %s: cutting a torn tail of %llu bytes at offset %llu "
                "(an unacknowledged group commit)\n",
                h->path, (unsigned long long)((uint64_t)st.st_size - valid_end),
                (unsigned long long)valid_end);
        if (ftruncate(h->fd, (off_t)valid_end) != 0 || fdatasync(h->fd) != 0) {
            emb_sys_fail(err, "truncate", h->path);
            goto done;
        }
    }
tail_done:
    h->end = valid_end;
    for (size_t i = 0; i < c.nredact; i++) {
        if (emb_redact_at(h, c.redact[i], err) != 0)
            goto done;
        ANN_FAULT_POINT("load.redact"); /* per record finished by recovery */
    }
    /* What the scan read may be a killed process's writes that were never synced
     * (frames, revocation rewrites: the page cache outlives it). They become visible,
     * answer retries and mark revocations applied: durable first. */
    if (s->durable && fdatasync(h->fd) != 0) {
        emb_sys_fail(err, "sync", h->path);
        goto done;
    }
    if (npending) {
        ANN_FAULT_POINT("load.redact_synced");
        if (ann_meta_revoke_applied_log(s->meta, h->tenant, h->log, err) != 0)
            goto done;
    }
    h->visible = h->idx.n;
    if (emb_revmap_load(s, h, err) != 0)
        goto done;
    /* The count SQLite keeps for listings: fixed here if a crash left it behind. */
    uint64_t count = 0;
    bool dirty = true;
    if (ann_meta_log_count_get(s->meta, h->tenant, h->log, &count, &dirty, err) < 0)
        goto done;
    h->count_clean = !dirty && count == h->visible;
    if (!h->count_clean &&
        ann_meta_log_count_set(s->meta, h->tenant, h->log, h->visible, false, err) == 0)
        h->count_clean = true;
    ann_err_clear(err);
    rc = 0;
done:
    free(pending);
    free(c.redact);
    return rc;
}

/* ---- acquire, reload, unpublish ------------------------------------------ */

/* A new elog for the table: nothing read yet (the loader fills it). */
static elog *elog_new(emb *s, uint64_t hash, const char *tenant, const char *log)
{
    size_t plen = strlen(s->dir) + strlen(tenant) + strlen(log) + 16;
    elog *h = ann_xcalloc(1, sizeof *h);
    h->path = ann_xmalloc(plen);
    h->idx_path = ann_xmalloc(plen);
    snprintf(h->path, plen, "%s/logs/%s/%s.dat", s->dir, tenant, log);
    snprintf(h->idx_path, plen, "%s/logs/%s/%s.idx", s->dir, tenant, log);
    h->blk_path = ann_xmalloc(plen);
    snprintf(h->blk_path, plen, "%s/logs/%s/%s.blk", s->dir, tenant, log);
    h->bfd = -1;
    pthread_mutex_init(&h->vc_mu, NULL);
    snprintf(h->tenant, sizeof h->tenant, "%s", tenant);
    snprintf(h->log, sizeof h->log, "%s", log);
    h->hash = hash;
    h->fd = -1;
    ann_idx_init(&h->idx);
    pthread_rwlock_init(&h->lk, NULL);
    pthread_mutex_init(&h->purge_mu, NULL);
    emb_tree_init(&h->tree);
    return h;
}

/*
 * The loader's part of acquire, with no store lock held: looks the log up in
 * SQLite and loads its file, then publishes the outcome (loading = false)
 * under s->mu. A log that failed to load leaves the table at once, so the
 * next acquire tries afresh; its holders keep answering the failure.
 */
static void log_open(emb *s, elog *h)
{
    int state = 0;
    int64_t create_ns = 0;
    uint8_t *labels = NULL;
    size_t labels_len = 0;
    ann_err e;
    int r = ann_meta_log_lookup(s->meta, h->tenant, h->log, &state, &create_ns, &labels,
                                &labels_len, &e);
    bool sealed = false;
    if (r > 0 && ann_meta_log_sealed(s->meta, h->tenant, h->log, &sealed, &e) < 0)
        r = -1;
    /* Uncontended: everyone else waits for loading to clear before looking. */
    pthread_rwlock_wrlock(&h->lk);
    ann_err_clear(&h->load_err);
    if (r < 0) {
        h->load_rc = -1;
        h->load_err = e;
    } else if (r == 0 || state != ANN_META_LOG_LIVE) {
        free(labels);
        h->absent = true;
        h->load_rc = emb_not_found(&h->load_err, h->log);
    } else {
        h->create_ns = create_ns;
        h->labels = labels;
        h->labels_len = labels_len;
        h->log_sealed = sealed;
        h->load_rc = log_load(s, h, &h->load_err);
        /* The checkpointer follows writes: a log loaded to be read is not hashed for it.
         * New entries' leaves come from the commit path (integrity.c); only the entries
         * before them are read back, at the tree's first use. */
        h->ckp_hint = h->visible;
        h->lb_ok = true;
        h->lb_first = h->visible + 1;
    }
    bool failed = h->load_rc != 0;
    pthread_rwlock_unlock(&h->lk);

    pthread_mutex_lock(&s->mu);
    if (failed)
        table_remove(s, h);
    h->loading = false;
    pthread_cond_broadcast(&s->load_cv);
    pthread_mutex_unlock(&s->mu);
}

/*
 * Finds (or opens) the log and takes a reference. Fails with the one
 * not-found message for a missing, deleted, foreign or malformed log.
 *
 * The first acquire of a log puts an elog in the table marked `loading`
 * (s->mu is held only for that), then looks the log up and loads it with no
 * store lock held; later acquires wait for it on s->load_cv. Delete marks the
 * log deleting in SQLite before it takes the elog out of the table, so an
 * acquire that misses the table afterwards finds the log deleting in its own
 * lookup; one that found the elog before shares it and then sees `deleted`.
 */
int emb_log_acquire(emb *s, const char *tenant, const char *log, elog **out, ann_err *err)
{
    *out = NULL;
    if (s->opts.admin_only)
        return ann_err_set(err, ANN_EINVAL, "store opened admin-only");
    if (!emb_valid_id(tenant) || !emb_valid_id(log))
        return emb_not_found(err, log);
    uint64_t hash = emb_log_hash(s, tenant, log);

    for (int attempt = 0;; attempt++) {
        bool loader = false;
        pthread_mutex_lock(&s->mu);
        elog *h = table_find(s, hash, tenant, log);
        if (h) {
            h->refs++;
            lru_unlink(s, h);
            while (h->loading)
                pthread_cond_wait(&s->load_cv, &s->mu);
        } else {
            h = elog_new(s, hash, tenant, log);
            h->loading = true;
            h->refs = 1;
            table_insert(s, h);
            loader = true;
        }
        pthread_mutex_unlock(&s->mu);
        if (loader)
            log_open(s, h);

        pthread_rwlock_rdlock(&h->lk);
        int rc = emb_log_state(h, err);
        bool absent = h->absent;
        pthread_rwlock_unlock(&h->lk);
        if (rc == 0) {
            *out = h;
            return 0;
        }
        emb_log_release(s, h);
        /* Another caller's lookup may predate this call (and a log_create
         * that returned before it): look once more, ourselves. The elog left
         * the table before its waiters woke, so this finds a newer one. */
        if (!(absent && !loader && attempt == 0))
            return rc;
    }
}

/*
 * Rebuilds a broken log (a failed write or fdatasync) from its file, in
 * place, so that watchers and other holders keep their handle. h->lk is held
 * for writing. On failure the log answers the error until a reload works.
 */
int emb_log_reload(emb *s, elog *h, ann_err *err)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    ann_idx_release(&h->idx);
    ann_idx_init(&h->idx);
    emb_blocks_release(h);
    h->visible = h->end = h->alloc_end = 0;
    h->revoke_gen++;
    ann_err_clear(&h->load_err);
    h->load_rc = log_load(s, h, &h->load_err);
    if (h->load_rc != 0) {
        if (err)
            *err = h->load_err;
        return -1;
    }
    h->broken = false;
    return 0;
}

void emb_log_unpublish(emb *s, elog *h)
{
    pthread_mutex_lock(&s->mu);
    table_remove(s, h);
    pthread_mutex_unlock(&s->mu);
}

void emb_cache_free_all(emb *s)
{
    for (size_t i = 0; i < s->tcap; i++)
        free_list(s, s->table[i]);
    free(s->table);
    s->table = NULL;
    s->tcap = s->tcount = 0;
}

int emb_log_count(emb *s, const char *tenant, const char *log, uint64_t sqlite_count,
                  bool sqlite_dirty, uint64_t *out, ann_err *err)
{
    elog *h = NULL;
    if (!emb_valid_id(tenant) || !emb_valid_id(log))
        return emb_not_found(err, log);
    h = emb_log_peek(s, tenant, log);
    if (!h && !sqlite_dirty) {
        *out = sqlite_count; /* exact: recorded at the log's last clean close */
        return 0;
    }
    if (!h && emb_log_acquire(s, tenant, log, &h, err) != 0)
        return -1;
    pthread_rwlock_rdlock(&h->lk);
    int rc = emb_log_state(h, err);
    *out = h->visible;
    pthread_rwlock_unlock(&h->lk);
    emb_log_release(s, h);
    return rc;
}

void emb_loaded_logs(emb *s, bool (*want)(elog *h), elog ***out, size_t *n)
{
    elog **v = NULL;
    size_t k = 0, cap = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->tcap; i++)
        for (elog *h = s->table[i]; h; h = h->hnext) {
            if (h->loading || !h->in_table || !want(h))
                continue;
            if (k == cap) {
                cap = cap ? cap * 2 : 64;
                v = ann_xrealloc(v, cap * sizeof *v);
            }
            h->refs++;
            lru_unlink(s, h);
            v[k++] = h;
        }
    pthread_mutex_unlock(&s->mu);
    *out = v;
    *n = k;
}

void emb_open_logs(emb *s, elog ***out, size_t *n)
{
    elog **v = NULL;
    size_t k = 0, cap = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->tcap; i++)
        for (elog *h = s->table[i]; h; h = h->hnext) {
            if (h->loading || !h->in_table)
                continue;
            if (k == cap) {
                cap = cap ? cap * 2 : 64;
                v = ann_xrealloc(v, cap * sizeof *v);
            }
            h->refs++;
            lru_unlink(s, h);
            v[k++] = h;
        }
    pthread_mutex_unlock(&s->mu);
    /* Those with nothing to seal go back at once. */
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        elog *h = v[i];
        pthread_rwlock_rdlock(&h->lk);
        bool some = h->load_rc == 0 && !h->deleted && h->sealed < h->visible;
        pthread_rwlock_unlock(&h->lk);
        if (some)
            v[w++] = h;
        else
            emb_log_release(s, h);
    }
    *out = v;
    *n = w;
}

elog *emb_log_peek(emb *s, const char *tenant, const char *log)
{
    if (!emb_valid_id(tenant) || !emb_valid_id(log))
        return NULL;
    uint64_t hash = emb_log_hash(s, tenant, log);
    pthread_mutex_lock(&s->mu);
    elog *h = table_find(s, hash, tenant, log);
    if (h && !h->loading) {
        h->refs++;
        lru_unlink(s, h);
    } else {
        h = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (h) {
        pthread_rwlock_rdlock(&h->lk);
        bool ok = h->load_rc == 0 && !h->deleted;
        pthread_rwlock_unlock(&h->lk);
        if (!ok) {
            emb_log_release(s, h);
            h = NULL;
        }
    }
    return h;
}
