/*
 * The embedded store: metadata in SQLite (meta.c), entries in one data file
 * per log (logfile.c) indexed in memory (index.c), appends group-committed by
 * one committer thread. See embedded.h and docs/storage.md.
 *
 * Locks, in the order they may nest:
 *   s->create_mu  >  s->mu (open-log table, LRU)  >  meta's own mutex
 *   h->revoke_mu  >  h->lk (index, visible count, flags)
 *   s->q_mu (append queue) and s->watch_mu (watchers) are leaves.
 * Watcher callbacks and visitors run with no store lock held.
 */
#include "store/embedded/embedded.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/embedded/hash.h"
#include "store/embedded/index.h"
#include "store/embedded/logfile.h"
#include "store/embedded/meta.h"

#define MAX_ID_LEN ANN_UUID_LEN
#define MAX_BODY (64u << 20)
#define MAX_REQUEST (256u << 20)   /* encoded; keeps every frame far below 1 GiB */
#define FRAME_SOFT_CAP (64u << 20) /* a log's frame in one round stops growing here */
#define NSYNC 15                   /* fdatasync helper threads */
#define READ_CHUNK 256             /* entries copied per lock hold when reading */
#define READ_BYTES (4u << 20)      /* ... or this many bytes */
#define WINDOW (256u << 10)        /* read-ahead window */
#define PREALLOC_MIN (256u << 10)  /* logs smaller than this are not preallocated */
#define PREALLOC_MAX (4u << 20)
#define PREALLOC_ROUND (8u << 20) /* zeros written per group commit, all logs */

typedef struct elog elog;

struct ann_watch {
    elog *h;
    ann_watch_fn fn;
    void *ud;
    int busy;    /* calls in progress (s->watch_mu) */
    bool linked; /* on h->watchers */
    ann_watch *prev, *next;
    ann_watch *all_prev, *all_next; /* s->watches, for close */
};

/* One open log. `refs` and the table/LRU links are under s->mu. */
struct elog {
    char tenant[MAX_ID_LEN + 1], log[MAX_ID_LEN + 1];
    char *path;
    char *idx_path;    /* the index snapshot */
    uint64_t snap_n;   /* entries in the snapshot on disk (0: none known) */
    uint64_t snap_min; /* write a snapshot at close from this many entries */
    uint64_t hash;
    elog *hnext;
    elog *lru_prev, *lru_next;
    bool in_lru, in_table, drop; /* drop: free when the last ref goes */
    size_t lru_bytes;
    double idle_since; /* when it went idle (ms, monotonic) */
    int refs;

    pthread_rwlock_t lk;
    pthread_mutex_t revoke_mu;
    int load_rc; /* set by the loader before it releases lk (and by reloads) */
    ann_err load_err;
    int fd;
    bool deleted, broken;
    unsigned revoke_gen; /* bumped when records are rewritten: readers drop caches */
    ann_idx idx;
    uint64_t visible;            /* entries published: ids 1..visible */
    uint64_t end;                /* end of the durable frames in the file */
    uint64_t alloc_end;          /* file size: zeros from end to here (preallocated) */
    uint64_t zero_from, zero_to; /* zeros to write this round (committer plans) */
    int64_t create_ns;
    uint8_t *labels;
    size_t labels_len;

    /* Committer-only state for the current round. */
    uint8_t *pend;
    size_t pend_len, pend_cap;
    uint64_t pend_first;
    uint32_t pend_count;
    bool in_round, failed;
    int sys_errno;
    elog *cnext;

    /* s->watch_mu */
    ann_watch *watchers;
    bool watch_gone;
};

typedef struct job {
    ann_append *req;
    elog *h;
    int rc;
    ann_err err;
    bool done;
    pthread_cond_t cv;
    struct job *next;
} job;

typedef struct emb {
    ann_store base;
    char *dir;
    ann_store_embedded_opts opts;
    bool durable;
    ann_meta *meta;
    int lock_fd;
    uint8_t hkey[16];

    pthread_mutex_t create_mu;
    pthread_mutex_t mu;
    elog **table;
    size_t tcap, tcount;
    elog lru; /* sentinel: lru.lru_next is the most recent */
    size_t lru_count, lru_bytes;

    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    job *q_head, *q_tail;
    bool stopping;
    pthread_t committer;
    bool committer_started;
    ann_watch **notify; /* committer scratch */
    size_t notify_cap;

    pthread_mutex_t sync_mu;
    pthread_cond_t sync_go, sync_done;
    pthread_t sync_th[NSYNC];
    int nsync_started;
    elog **sync_items;
    size_t sync_n, sync_next, sync_finished;
    unsigned sync_gen;
    bool sync_stop;

    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cv;
    ann_watch *watches; /* every live watch (watch_mu) */
    double trace;       /* ANN_STORE_TRACE=<ms>: report rounds slower than this */
} emb;

static const ann_store_ops embedded_ops;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- small helpers ----------------------------------------------------- */

static bool valid_id(const char *s)
{
    if (!s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= MAX_ID_LEN || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                                 (c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
            return false;
    }
    return n > 0;
}

/* The one message for a missing, deleted or foreign log. */
static int not_found(ann_err *err, const char *log)
{
    return ann_err_set(err, ANN_ENOTFOUND, "log %.64s not found", log ? log : "");
}

/* What an operation on h answers besides success (h->lk held). */
static int log_state(const elog *h, ann_err *err)
{
    if (h->deleted)
        return not_found(err, h->log);
    if (h->load_rc != 0) {
        if (err)
            *err = h->load_err;
        return -1;
    }
    return 0;
}

static int sys_fail(ann_err *err, const char *what, const char *path)
{
    /* A full disk may pass: say "try again later" rather than "broken". */
    ann_code c = errno == ENOSPC || errno == EDQUOT ? ANN_ENOSPC : ANN_EIO;
    return ann_err_set(err, c, "%s %.180s: %s", what, path, strerror(errno));
}

static int write_full(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static char *path_join(const char *a, const char *b, const char *c, const char *suffix)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + strlen(suffix) + 3;
    char *p = malloc(n);
    if (p) {
        if (c)
            snprintf(p, n, "%s/%s/%s%s", a, b, c, suffix);
        else
            snprintf(p, n, "%s/%s%s", a, b, suffix);
    }
    return p;
}

static uint64_t log_hash(const emb *s, const char *tenant, const char *log)
{
    char key[2 * MAX_ID_LEN + 2];
    int n = snprintf(key, sizeof key, "%s/%s", tenant, log);
    return ann_siphash24(s->hkey, key, (size_t)n);
}

static uint32_t iid_tag(const emb *s, const char *iid, size_t len)
{
    return (uint32_t)ann_siphash24(s->hkey, iid, len);
}

/* ---- open-log table and LRU (s->mu) ------------------------------------ */

static elog *table_find(emb *s, uint64_t hash, const char *tenant, const char *log)
{
    if (!s->tcap)
        return NULL;
    for (elog *h = s->table[hash & (s->tcap - 1)]; h; h = h->hnext)
        if (h->hash == hash && !strcmp(h->tenant, tenant) && !strcmp(h->log, log))
            return h;
    return NULL;
}

static int table_insert(emb *s, elog *h)
{
    if ((s->tcount + 1) * 2 > s->tcap) {
        size_t ncap = s->tcap ? s->tcap * 2 : 64;
        elog **nt = calloc(ncap, sizeof *nt);
        if (!nt)
            return -1;
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
    return 0;
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
    h->idle_since = mono_ms();
    h->lru_bytes = h->idx.bytes;
    s->lru_count++;
    s->lru_bytes += h->lru_bytes;
}

static void elog_free(elog *h)
{
    if (!h)
        return;
    if (h->fd >= 0 && h->load_rc == 0 && !h->broken && !h->deleted && h->idx_path &&
        h->idx.n >= h->snap_min && h->idx.n != h->snap_n &&
        ann_idx_save(&h->idx, h->idx_path, h->end) != 0)
        fprintf(stderr, "annals store: %s: index snapshot not written\n", h->idx_path);
    if (h->fd >= 0) {
        /* Give back the preallocated zeros of an idle log (no sync needed:
         * a zero tail that survives a crash is harmless). */
        if (h->load_rc == 0 && !h->broken && !h->deleted && h->alloc_end > h->end &&
            ftruncate(h->fd, (off_t)h->end) != 0)
            fprintf(stderr, "annals store: %s: trim: %s\n", h->path, strerror(errno));
        close(h->fd);
    }
    ann_idx_release(&h->idx);
    pthread_rwlock_destroy(&h->lk);
    pthread_mutex_destroy(&h->revoke_mu);
    free(h->labels);
    free(h->pend);
    free(h->path);
    free(h->idx_path);
    free(h);
}

/* Unlinks idle logs beyond the budgets; returns them as a list (via hnext)
 * for the caller to free outside s->mu. */
static elog *lru_evict(emb *s)
{
    elog *victims = NULL;
    double now = mono_ms();
    while (s->lru_count) {
        elog *h = s->lru.lru_prev; /* the longest idle */
        /* Reopening a log rescans its file, so memory pressure alone closes
         * only logs idle for a while: a busy log is never thrashed. */
        if (s->lru_count <= s->opts.max_open_logs &&
            !(s->lru_bytes > s->opts.cache_bytes && now - h->idle_since >= s->opts.idle_evict_ms))
            break;
        lru_unlink(s, h);
        table_remove(s, h);
        h->hnext = victims;
        victims = h;
    }
    return victims;
}

static void free_list(elog *l)
{
    while (l) {
        elog *next = l->hnext;
        elog_free(l);
        l = next;
    }
}

static void log_release(emb *s, elog *h)
{
    elog *victims = NULL;
    pthread_mutex_lock(&s->mu);
    if (--h->refs == 0) {
        if (!h->in_table || h->drop) {
            table_remove(s, h);
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
    free_list(victims);
}

/* ---- loading a log ----------------------------------------------------- */

typedef struct load_ctx {
    emb *s;
    elog *h;
    uint64_t *redact;
    size_t nredact, redact_cap;
} load_ctx;

static int push_redact(load_ctx *c, uint64_t off, ann_err *err)
{
    if (c->nredact == c->redact_cap) {
        size_t ncap = c->redact_cap ? c->redact_cap * 2 : 16;
        uint64_t *n = realloc(c->redact, ncap * sizeof *n);
        if (!n)
            return ann_err_set(err, ANN_EIO, "out of memory");
        c->redact = n;
        c->redact_cap = ncap;
    }
    c->redact[c->nredact++] = off;
    return 0;
}

/* Does the snapshot belong to this file? Its last entry must be where it
 * says, and its data_end must be a frame boundary inside the file. */
static bool snapshot_matches(elog *h, uint64_t snap_end, uint64_t size)
{
    if (snap_end > size || (h->idx.n == 0) != (snap_end == 0))
        return false;
    if (h->idx.n == 0)
        return true;
    uint64_t off = ann_idx_off(&h->idx, h->idx.n);
    uint8_t hdr[ANN_LF_REC_HDR];
    if (off + ANN_LF_REC_HDR > snap_end || ann_lf_pread_full(h->fd, hdr, sizeof hdr, off) != 0)
        return false;
    return ann_le64_get(hdr + 8) == h->idx.n && off + ann_le32_get(hdr + 4) == snap_end;
}

static int load_visit(const ann_entry *e, uint64_t off, uint32_t rec_len, bool needs_redact,
                      void *ud, ann_err *err)
{
    load_ctx *c = ud;
    (void)rec_len;
    if (ann_idx_add(&c->h->idx, e->time_ns, off, iid_tag(c->s, e->insert_id, e->insert_id_len)))
        return ann_err_set(err, ANN_EIO, "%s: out of memory indexing entry %llu", c->h->path,
                           (unsigned long long)e->entry_id);
    return needs_redact ? push_redact(c, off, err) : 0;
}

/* Rewrites the record at `off` as redacted (no-op if it already is). The
 * caller excludes readers (h->lk held for writing, or during load). */
static int redact_at(elog *h, uint64_t off, ann_err *err)
{
    uint8_t hdr[ANN_LF_REC_HDR];
    uint8_t *rec = NULL;
    int rc = -1;
    if (ann_lf_pread_full(h->fd, hdr, sizeof hdr, off) != 0)
        return sys_fail(err, "read", h->path);
    uint32_t rec_len = ann_le32_get(hdr + 4);
    if (rec_len < ANN_LF_REC_HDR + (uint32_t)ann_le16_get(hdr + 40) || rec_len > h->end - off)
        return ann_err_set(err, ANN_ECORRUPT, "%s: bad record length at offset %llu", h->path,
                           (unsigned long long)off);
    rec = malloc(rec_len);
    if (!rec)
        return ann_err_set(err, ANN_EIO, "out of memory");
    if (ann_lf_pread_full(h->fd, rec, rec_len, off) != 0) {
        sys_fail(err, "read", h->path);
        goto done;
    }
    ann_lf_rec_redact(rec, rec_len);
    if (write_full(h->fd, rec, rec_len, off) != 0) {
        sys_fail(err, "write", h->path);
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
            sys_fail(err, "open", h->path);
        }
        goto done;
    }
    if (fstat(h->fd, &st) != 0) {
        sys_fail(err, "stat", h->path);
        goto done;
    }
    /* A snapshot spares the scan of everything before its data_end. */
    uint64_t snap_end = 0;
    int sr = h->idx_path ? ann_idx_load(&h->idx, h->idx_path, &snap_end) : 0;
    if (sr < 0) {
        ann_err_set(err, ANN_EIO, "%s: out of memory loading the index", h->path);
        goto done;
    }
    if (sr == 1 && !snapshot_matches(h, snap_end, (uint64_t)st.st_size)) {
        ann_idx_release(&h->idx);
        ann_idx_init(&h->idx);
        sr = 0;
    }
    h->snap_n = sr == 1 ? h->idx.n : 0;
    if (sr == 1) {
        /* Pending revocations of entries the scan will not visit. */
        for (size_t i = 0; i < npending && pending[i] <= h->idx.n; i++)
            if (push_redact(&c, ann_idx_off(&h->idx, pending[i]), err) != 0)
                goto done;
    }
    if (ann_lf_scan(h->fd, h->path, sr == 1 ? snap_end : 0, h->idx.n + 1, pending, npending,
                    load_visit, &c, &valid_end, &last_id, err) != 0) {
        if (err && err->code == ANN_ECORRUPT)
            fprintf(stderr, "annals store: CORRUPTION: %s\n", err->msg);
        goto done;
    }
    if (fstat(h->fd, &st) != 0) {
        sys_fail(err, "stat", h->path);
        goto done;
    }
    h->alloc_end = valid_end;
    if ((uint64_t)st.st_size > valid_end) {
        int z = zero_tail(h->fd, valid_end, (uint64_t)st.st_size);
        if (z < 0) {
            sys_fail(err, "read", h->path);
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
            sys_fail(err, "truncate", h->path);
            goto done;
        }
    }
tail_done:
    h->end = valid_end;
    for (size_t i = 0; i < c.nredact; i++)
        if (redact_at(h, c.redact[i], err) != 0)
            goto done;
    /* What the scan read may be a killed process's writes that were never
     * synced (frames, revocation rewrites: the page cache outlives it). They
     * become visible, answer retries and mark revocations applied: durable
     * first. */
    if (s->durable && fdatasync(h->fd) != 0) {
        sys_fail(err, "sync", h->path);
        goto done;
    }
    if (npending && ann_meta_revoke_applied_log(s->meta, h->tenant, h->log, err) != 0)
        goto done;
    h->visible = h->idx.n;
    rc = 0;
done:
    free(pending);
    free(c.redact);
    return rc;
}

/*
 * Finds (or opens) the log and takes a reference. Fails with the one
 * not-found message for a missing, deleted, foreign or malformed log.
 */
static int log_acquire(emb *s, const char *tenant, const char *log, elog **out, ann_err *err)
{
    elog *h = NULL;
    bool loader = false;
    *out = NULL;
    if (s->opts.admin_only)
        return ann_err_set(err, ANN_EINVAL, "store opened admin-only");
    if (!valid_id(tenant) || !valid_id(log))
        return not_found(err, log);
    uint64_t hash = log_hash(s, tenant, log);

    pthread_mutex_lock(&s->mu);
    h = table_find(s, hash, tenant, log);
    if (h) {
        h->refs++;
        lru_unlink(s, h);
    } else {
        int state = 0;
        int64_t create_ns = 0;
        uint8_t *labels = NULL;
        size_t labels_len = 0;
        int r = ann_meta_log_lookup(s->meta, tenant, log, &state, &create_ns, &labels, &labels_len,
                                    err);
        if (r <= 0 || state != ANN_META_LOG_LIVE) {
            pthread_mutex_unlock(&s->mu);
            free(labels);
            return r < 0 ? -1 : not_found(err, log);
        }
        size_t plen = strlen(s->dir) + strlen(tenant) + strlen(log) + 16;
        h = calloc(1, sizeof *h);
        if (h) {
            h->path = malloc(plen);
            h->idx_path = malloc(plen);
        }
        if (!h || !h->path || !h->idx_path) {
            pthread_mutex_unlock(&s->mu);
            free(labels);
            if (h) {
                free(h->path);
                free(h->idx_path);
            }
            free(h);
            return ann_err_set(err, ANN_EIO, "out of memory");
        }
        snprintf(h->path, plen, "%s/logs/%s/%s.dat", s->dir, tenant, log);
        snprintf(h->idx_path, plen, "%s/logs/%s/%s.idx", s->dir, tenant, log);
        h->snap_min = s->opts.snapshot_min;
        snprintf(h->tenant, sizeof h->tenant, "%s", tenant);
        snprintf(h->log, sizeof h->log, "%s", log);
        h->hash = hash;
        h->fd = -1;
        h->create_ns = create_ns;
        h->labels = labels;
        h->labels_len = labels_len;
        ann_idx_init(&h->idx);
        pthread_rwlock_init(&h->lk, NULL);
        pthread_mutex_init(&h->revoke_mu, NULL);
        pthread_rwlock_wrlock(&h->lk);
        if (table_insert(s, h) != 0) {
            pthread_rwlock_unlock(&h->lk);
            pthread_mutex_unlock(&s->mu);
            elog_free(h);
            return ann_err_set(err, ANN_EIO, "out of memory");
        }
        h->refs = 1;
        loader = true;
    }
    pthread_mutex_unlock(&s->mu);

    if (loader) {
        ann_err_clear(&h->load_err);
        int load_rc = h->load_rc = log_load(s, h, &h->load_err);
        pthread_rwlock_unlock(&h->lk);
        if (load_rc != 0) {
            pthread_mutex_lock(&s->mu);
            h->drop = true; /* the next acquire loads afresh */
            pthread_mutex_unlock(&s->mu);
        }
    }
    pthread_rwlock_rdlock(&h->lk);
    int rc = log_state(h, err);
    pthread_rwlock_unlock(&h->lk);
    if (rc != 0) {
        log_release(s, h);
        return rc;
    }
    *out = h;
    return 0;
}

/* ---- watchers ---------------------------------------------------------- */

/* Calls the watchers gathered in ws[0..n) (busy already raised) and lowers
 * busy again. No store lock is held. */
static void watch_call(emb *s, ann_watch **ws, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ws[i]->fn(ws[i]->ud);
    pthread_mutex_lock(&s->watch_mu);
    for (size_t i = 0; i < n; i++)
        ws[i]->busy--;
    pthread_cond_broadcast(&s->watch_cv);
    pthread_mutex_unlock(&s->watch_mu);
}

/* Appends h's watchers to (*ws)[*n..] (grown as needed), raising busy; with
 * `detach` they are also unlinked (the log is gone). */
static void watch_gather(emb *s, elog *h, ann_watch ***ws, size_t *cap, size_t *np, bool detach)
{
    size_t n = *np;
    pthread_mutex_lock(&s->watch_mu);
    if (detach)
        h->watch_gone = true;
    for (ann_watch *w = h->watchers; w; w = w->next) {
        if (n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 16;
            ann_watch **nw = realloc(*ws, ncap * sizeof *nw);
            if (!nw)
                break; /* out of memory: those watchers miss this wake-up */
            *ws = nw;
            *cap = ncap;
        }
        w->busy++;
        (*ws)[n++] = w;
    }
    if (detach) {
        for (ann_watch *w = h->watchers; w; w = w->next)
            w->linked = false;
        h->watchers = NULL;
    }
    pthread_mutex_unlock(&s->watch_mu);
    *np = n;
}

/*
 * Rebuilds a broken log (a failed write or fdatasync) from its file, in
 * place, so that watchers and other holders keep their handle. h->lk is held
 * for writing. On failure the log answers the error until a reload works.
 */
static int log_reload(emb *s, elog *h, ann_err *err)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    ann_idx_release(&h->idx);
    ann_idx_init(&h->idx);
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

/* ---- the committer ----------------------------------------------------- */

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
        if (want > sizeof buf && !(dst = heap = malloc(want)))
            return false; /* cannot happen in practice: ids are short */
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
        need += ann_lf_rec_size(req->entries[i].insert_id_len, req->entries[i].body_len);
    if (h->idx.n + req->n > ANN_IDX_MAX_ENTRIES) {
        j->rc = ann_err_set(&j->err, ANN_ERANGE, "log %s: entry limit reached", h->log);
        return;
    }
    if (h->pend_len + need > h->pend_cap) {
        size_t ncap = h->pend_cap ? h->pend_cap : 1 << 16;
        while (ncap < h->pend_len + need)
            ncap *= 2;
        uint8_t *np = realloc(h->pend, ncap);
        if (!np) {
            j->rc = ann_err_set(&j->err, ANN_EIO, "out of memory");
            return;
        }
        h->pend = np;
        h->pend_cap = ncap;
    }
    size_t n_new = 0;
    for (size_t i = 0; i < req->n; i++) {
        const ann_entry *e = &req->entries[i];
        uint32_t tag = iid_tag(s, e->insert_id, e->insert_id_len);
        confirm_ctx cc = {h, e->insert_id, e->insert_id_len};
        uint64_t id = ann_idx_find(&h->idx, tag, confirm_iid, &cc);
        if (!id) {
            id = h->idx.n + 1;
            ann_lf_rec_encode(h->pend + h->pend_len, id, e);
            if (ann_idx_add(&h->idx, e->time_ns, h->end + h->pend_len, tag) != 0) {
                /* The index now holds part of this job: write nothing for
                 * this log this round and rebuild it from the file. */
                h->failed = true;
                h->broken = true;
                j->rc = ann_err_set(&j->err, ANN_EIO, "out of memory indexing log %s", h->log);
                return;
            }
            h->pend_len += ann_lf_rec_size(e->insert_id_len, e->body_len);
            h->pend_count++;
            n_new++;
        }
        req->ids_out[i] = id;
    }
    req->n_new_out = n_new;
    j->rc = 0;
}

static int prealloc_write(elog *h);

static void sync_one(elog *h)
{
    if (h->zero_to > h->zero_from && prealloc_write(h) != 0) {
        h->failed = true;
        h->sys_errno = errno;
        return;
    }
    if (fdatasync(h->fd) != 0) {
        h->failed = true;
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
        if (write_full(h->fd, zeros, len, off) != 0)
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

    double t0 = s->trace ? mono_ms() : 0, t1 = 0, t2 = 0, t3 = 0;
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
            not_found(&j->err, h->log);
        } else if (h->broken && !h->in_round && log_reload(s, h, &j->err) != 0) {
            /* still broken: j->err says why */
        } else if (h->broken) {
            ann_err_set(&j->err, ANN_EIO, "log %s: storage failed; retry", h->log);
        } else {
            if (!h->in_round) {
                h->in_round = true;
                h->failed = false;
                h->sys_errno = 0;
                h->pend_len = ANN_LF_FRAME_HDR;
                h->pend_count = 0;
                h->pend_first = h->idx.n + 1;
                if (h->pend_cap < ANN_LF_FRAME_HDR) {
                    uint8_t *np = realloc(h->pend, 1 << 16);
                    if (np) {
                        h->pend = np;
                        h->pend_cap = 1 << 16;
                    } else {
                        h->failed = true;
                    }
                }
                h->cnext = logs;
                logs = h;
                nlogs++;
            }
            if (!h->failed)
                stage_job(s, h, j);
            else
                ann_err_set(&j->err, ANN_EIO, "out of memory");
        }
        pthread_rwlock_unlock(&h->lk);
    }

    /* Write each log's frame, then make them all durable together. */
    elog *stack[64];
    elog **syncs = nlogs <= 64 ? stack : malloc(nlogs * sizeof *syncs);
    size_t nsync = 0;
    uint64_t zero_budget = PREALLOC_ROUND, bytes = 0;
    if (s->trace)
        t1 = mono_ms();
    for (elog *h = logs; h; h = h->cnext) {
        if (h->failed || h->pend_count == 0)
            continue;
        ann_lf_frame_encode(h->pend, h->pend_first, h->pend_count, h->pend_len);
        if (write_full(h->fd, h->pend, h->pend_len, h->end) != 0) {
            h->failed = true;
            h->sys_errno = errno;
            continue;
        }
        h->zero_from = h->zero_to = 0;
        if (s->durable && s->opts.prealloc)
            prealloc_plan(h, &zero_budget);
        bytes += h->pend_len;
        if (s->durable) {
            if (syncs)
                syncs[nsync++] = h;
            else
                sync_one(h);
        }
    }
    if (s->trace)
        t2 = mono_ms();
    if (nsync)
        sync_all(s, syncs, nsync);
    if (s->trace) {
        t3 = mono_ms();
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
    for (elog *h = logs; h; h = h->cnext) {
        pthread_rwlock_wrlock(&h->lk);
        if (!h->failed) {
            if (h->pend_count)
                h->end += h->pend_len;
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
    /* Wake the watchers of every log that got entries. */
    for (elog *h = logs; h; h = h->cnext)
        if (!h->failed && h->pend_count)
            watch_gather(s, h, &s->notify, &s->notify_cap, &nw, false);
    if (nw)
        watch_call(s, s->notify, nw);

    /* Answer. After a job is signalled its thread may release the log, so
     * the round's per-log state is reset first. */
    for (size_t i = 0; i < n; i++) {
        job *j = arr[i];
        if (j && j->rc == 0 && j->h->failed) {
            errno = j->h->sys_errno ? j->h->sys_errno : EIO;
            j->rc = sys_fail(&j->err, "write", j->h->path);
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
        bool oom = false;
        for (job *j = list; j; j = j->next) {
            if (n == arr_cap) {
                size_t ncap = arr_cap ? arr_cap * 2 : 64;
                job **na = realloc(arr, ncap * sizeof *na);
                if (!na) {
                    oom = true;
                    break;
                }
                arr = na;
                arr_cap = ncap;
            }
            arr[n++] = j;
        }
        if (oom) {
            pthread_mutex_lock(&s->q_mu);
            for (job *k = list, *nx; k; k = nx) {
                nx = k->next;
                k->rc = ann_err_set(&k->err, ANN_EIO, "out of memory");
                k->done = true;
                pthread_cond_signal(&k->cv);
            }
            pthread_mutex_unlock(&s->q_mu);
            carry = NULL;
            continue;
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

/* ---- ops --------------------------------------------------------------- */

static void emb_close(ann_store *st);
static void emb_unwatch(ann_store *st, ann_watch *w);

static int emb_secret(ann_store *st, uint8_t out[32], ann_err *err)
{
    emb *s = (emb *)st;
    return ann_meta_secret(s->meta, out, err);
}

static int emb_tenant_create(ann_store *st, const char *name, const uint8_t key_hash[32],
                             ann_tenant *out, ann_err *err)
{
    emb *s = (emb *)st;
    uint8_t r[16];
    ann_tenant t;
    if (!name || !name[0] || strlen(name) > 128)
        return ann_err_set(err, ANN_EINVAL, "name: must be 1 to 128 bytes");
    if (!key_hash)
        return ann_err_set(err, ANN_EINVAL, "key_hash: missing");
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return ann_err_set(err, ANN_EIO, "getrandom failed");
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    memset(&t, 0, sizeof t);
    snprintf(t.id, sizeof t.id,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
    snprintf(t.name, sizeof t.name, "%s", name);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ann_meta_tenant_create(s->meta, t.id, name, key_hash,
                               (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, err) != 0)
        return -1;
    if (out)
        *out = t;
    return 0;
}

static int emb_tenant_by_key(ann_store *st, const uint8_t key_hash[32], ann_tenant *out,
                             ann_err *err)
{
    emb *s = (emb *)st;
    ann_tenant t;
    int r = ann_meta_tenant_by_key(s->meta, key_hash, &t, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return ann_err_set(err, ANN_EUNAUTH, "unknown API key");
    if (out)
        *out = t;
    return 0;
}

static int emb_log_create(ann_store *st, const char *tenant_id, const char *log_id,
                          const uint8_t *labels, size_t labels_len, int64_t now_ns, ann_err *err)
{
    emb *s = (emb *)st;
    char *tdir = NULL, *path = NULL;
    int fd = -1, rc = -1;
    if (s->opts.admin_only)
        return ann_err_set(err, ANN_EINVAL, "store opened admin-only");
    if (!valid_id(tenant_id))
        return ann_err_set(err, ANN_EINVAL, "tenant_id: 1 to 36 of [A-Za-z0-9_-]");
    if (!valid_id(log_id))
        return ann_err_set(err, ANN_EINVAL, "log_id: 1 to 36 of [A-Za-z0-9_-]");
    if (labels_len && !labels)
        return ann_err_set(err, ANN_EINVAL, "labels: missing");
    int r = ann_meta_tenant_exists(s->meta, tenant_id, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return ann_err_set(err, ANN_ENOTFOUND, "tenant %s not found", tenant_id);

    pthread_mutex_lock(&s->create_mu);
    int state;
    int64_t cns;
    r = ann_meta_log_lookup(s->meta, tenant_id, log_id, &state, &cns, NULL, NULL, err);
    if (r < 0)
        goto done;
    if (r > 0) {
        ann_err_set(err, ANN_EEXISTS, "log %.64s already exists", log_id);
        goto done;
    }
    tdir = path_join(s->dir, "logs", tenant_id, "");
    size_t plen = strlen(s->dir) + strlen(tenant_id) + strlen(log_id) + 16;
    path = malloc(plen);
    if (!tdir || !path) {
        ann_err_set(err, ANN_EIO, "out of memory");
        goto done;
    }
    snprintf(path, plen, "%s/logs/%s/%s.dat", s->dir, tenant_id, log_id);
    if (mkdir(tdir, 0700) == 0) {
        char *logs = path_join(s->dir, "logs", NULL, "");
        int fr = logs && s->durable ? fsync_dir(logs) : 0;
        free(logs);
        if (fr != 0) {
            sys_fail(err, "sync", s->dir);
            goto done;
        }
    } else if (errno != EEXIST) {
        sys_fail(err, "mkdir", tdir);
        goto done;
    }
    /* A snapshot left by a log of the same id that a crash half deleted. */
    snprintf(path, plen, "%s/logs/%s/%s.idx", s->dir, tenant_id, log_id);
    if (unlink(path) != 0 && errno != ENOENT) {
        sys_fail(err, "unlink", path);
        goto done;
    }
    snprintf(path, plen, "%s/logs/%s/%s.dat", s->dir, tenant_id, log_id);
    fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        sys_fail(err, "create", path);
        goto done;
    }
    if (s->durable && (fsync(fd) != 0 || fsync_dir(tdir) != 0)) {
        sys_fail(err, "sync", path);
        goto done;
    }
    if (ann_meta_log_insert(s->meta, tenant_id, log_id, labels, labels_len, now_ns, err) != 0)
        goto done;
    rc = 0;
done:
    pthread_mutex_unlock(&s->create_mu);
    if (fd >= 0)
        close(fd);
    free(tdir);
    free(path);
    return rc;
}

static int emb_log_get(ann_store *st, const char *tenant_id, const char *log_id, ann_log_meta *out,
                       ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    int rc = -1;
    if (log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&h->lk);
    if (log_state(h, err) != 0)
        goto done;
    snprintf(out->id, sizeof out->id, "%s", h->log);
    out->create_time_ns = h->create_ns;
    out->entry_count = h->visible;
    if (h->labels_len) {
        out->labels = malloc(h->labels_len);
        if (!out->labels) {
            ann_err_set(err, ANN_EIO, "out of memory");
            goto done;
        }
        memcpy(out->labels, h->labels, h->labels_len);
        out->labels_len = h->labels_len;
    }
    rc = 0;
done:
    pthread_rwlock_unlock(&h->lk);
    log_release(s, h);
    return rc;
}

static int unlink_log_file(emb *s, const char *tenant, const char *log, ann_err *err)
{
    size_t plen = strlen(s->dir) + strlen(tenant) + strlen(log) + 16;
    char *path = malloc(plen);
    char *tdir = path_join(s->dir, "logs", tenant, "");
    int rc = -1;
    if (!path || !tdir) {
        ann_err_set(err, ANN_EIO, "out of memory");
        goto done;
    }
    snprintf(path, plen, "%s/logs/%s/%s.idx", s->dir, tenant, log);
    if (unlink(path) != 0 && errno != ENOENT) {
        sys_fail(err, "unlink", path);
        goto done;
    }
    snprintf(path, plen, "%s/logs/%s/%s.dat", s->dir, tenant, log);
    if (unlink(path) != 0 && errno != ENOENT) {
        sys_fail(err, "unlink", path);
        goto done;
    }
    if (s->durable && fsync_dir(tdir) != 0 && errno != ENOENT) {
        sys_fail(err, "sync", tdir);
        goto done;
    }
    rc = 0;
done:
    free(path);
    free(tdir);
    return rc;
}

static int emb_log_delete(ann_store *st, const char *tenant_id, const char *log_id, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    ann_watch **ws = NULL;
    size_t cap = 0;
    if (log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    pthread_mutex_lock(&s->mu);
    if (!h->in_table) { /* a concurrent delete won */
        pthread_mutex_unlock(&s->mu);
        log_release(s, h);
        return not_found(err, log_id);
    }
    if (ann_meta_log_set_deleting(s->meta, tenant_id, log_id, err) != 0) {
        pthread_mutex_unlock(&s->mu);
        log_release(s, h);
        return -1;
    }
    table_remove(s, h);
    pthread_mutex_unlock(&s->mu);

    pthread_rwlock_wrlock(&h->lk);
    h->deleted = true;
    pthread_rwlock_unlock(&h->lk);
    size_t n = 0;
    watch_gather(s, h, &ws, &cap, &n, true);
    watch_call(s, ws, n);
    free(ws);

    /* The deletion is decided (durably); finishing it is idempotent and is
     * redone at the next open if we crash here. */
    int rc = unlink_log_file(s, tenant_id, log_id, err);
    if (rc == 0)
        rc = ann_meta_log_remove(s->meta, tenant_id, log_id, err);
    log_release(s, h);
    return rc;
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
        total += ann_lf_rec_size(e->insert_id_len, e->body_len);
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

static int emb_append(ann_store *st, ann_append *req, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    if (validate_append(req, err) != 0)
        return -1;
    req->n_new_out = 0;
    if (log_acquire(s, req->tenant_id, req->log_id, &h, err) != 0)
        return -1;
    if (req->n == 0) {
        log_release(s, h);
        return 0;
    }
    job j = {.req = req, .h = h, .rc = -1};
    ann_err_clear(&j.err);
    pthread_cond_init(&j.cv, NULL);
    pthread_mutex_lock(&s->q_mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->q_mu);
        pthread_cond_destroy(&j.cv);
        log_release(s, h);
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
    log_release(s, h);
    if (j.rc != 0 && err)
        *err = j.err;
    return j.rc;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int emb_revoke(ann_store *st, const char *tenant_id, const char *log_id, const uint64_t *ids,
                      size_t n, const char *actor, const char *reason, int64_t now_ns, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    uint64_t *sorted = NULL;
    int64_t rowid = 0;
    int rc = -1;
    if (n && !ids)
        return ann_err_set(err, ANN_EINVAL, "ids: missing");
    if (log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    pthread_rwlock_rdlock(&h->lk);
    int state_rc = log_state(h, err);
    if (state_rc == 0 && h->broken)
        state_rc = ann_err_set(err, ANN_EIO, "log %s: storage failed; retry", h->log);
    uint64_t visible = h->visible;
    pthread_rwlock_unlock(&h->lk);
    if (state_rc != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == 0 || ids[i] > visible) {
            ann_err_set(err, ANN_ENOTFOUND, "entry %llu not found in log %.64s",
                        (unsigned long long)ids[i], log_id);
            goto out;
        }
    }
    if (n == 0) {
        rc = 0;
        goto out;
    }
    sorted = malloc(n * sizeof *sorted);
    if (!sorted) {
        ann_err_set(err, ANN_EIO, "out of memory");
        goto out;
    }
    memcpy(sorted, ids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, u64_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || sorted[m - 1] != sorted[i])
            sorted[m++] = sorted[i];

    /* The audit record first (durable): if we crash during the overwrite,
     * the next open of the log finishes it. */
    if (ann_meta_revoke_insert(s->meta, tenant_id, log_id, sorted, m, actor, reason, now_ns, &rowid,
                               err) != 0)
        goto out;
    pthread_mutex_lock(&h->revoke_mu);
    for (size_t i = 0; i < m && rc != -2;) {
        pthread_rwlock_wrlock(&h->lk);
        if (log_state(h, err) != 0) {
            rc = -2;
        } else if (h->broken || h->visible < sorted[m - 1]) {
            ann_err_set(err, ANN_EIO, "log %s: storage failed; retry", h->log);
            rc = -2;
        }
        h->revoke_gen++;
        for (size_t k = 0; k < 64 && i < m && rc != -2; k++, i++) {
            if (redact_at(h, ann_idx_off(&h->idx, sorted[i]), err) != 0)
                rc = -2;
        }
        pthread_rwlock_unlock(&h->lk);
    }
    if (rc != -2 && s->durable) {
        pthread_rwlock_rdlock(&h->lk); /* keeps h->fd from a concurrent reload */
        if (fdatasync(h->fd) != 0) {
            sys_fail(err, "sync", h->path);
            rc = -2;
        }
        pthread_rwlock_unlock(&h->lk);
    }
    pthread_mutex_unlock(&h->revoke_mu);
    if (rc == -2) {
        rc = -1;
        goto out;
    }
    /* Not fatal if this fails: re-applying a revocation is harmless. */
    ann_err tmp;
    (void)ann_meta_revoke_applied(s->meta, rowid, &tmp);
    rc = 0;
out:
    free(sorted);
    log_release(s, h);
    return rc;
}

/* ---- reading ----------------------------------------------------------- */

typedef struct reader {
    elog *h;
    unsigned gen;
    uint8_t *win;
    uint64_t win_off;
    size_t win_len;
    uint8_t *big; /* a record larger than the window */
    /* The copied chunk. */
    uint8_t *buf;
    size_t buf_len, buf_cap;
    ann_entry ents[READ_CHUNK];
    size_t offs[READ_CHUNK];
    size_t n;
} reader;

static void reader_release(reader *r)
{
    free(r->win);
    free(r->big);
    free(r->buf);
}

/* Starts a chunk (h->lk held): forgets the window if records were rewritten
 * since it was read. */
static void reader_begin(reader *r)
{
    if (r->gen != r->h->revoke_gen) {
        r->gen = r->h->revoke_gen;
        r->win_len = 0;
    }
    r->n = 0;
    r->buf_len = 0;
}

/* Copies entry `id` into the chunk (h->lk held). */
static int reader_take(reader *r, uint64_t id, ann_err *err)
{
    elog *h = r->h;
    uint64_t off = ann_idx_off(&h->idx, id);
    const uint8_t *p;
    if (!r->win && !(r->win = malloc(WINDOW)))
        return ann_err_set(err, ANN_EIO, "out of memory");
    if (!(off >= r->win_off && off + ANN_LF_REC_HDR <= r->win_off + r->win_len)) {
        size_t len = h->end - off < WINDOW ? (size_t)(h->end - off) : WINDOW;
        if (ann_lf_pread_full(h->fd, r->win, len, off) != 0)
            return sys_fail(err, "read", h->path);
        r->win_off = off;
        r->win_len = len;
    }
    uint32_t rec_len = ann_le32_get(r->win + (off - r->win_off) + 4);
    if (rec_len < ANN_LF_REC_HDR || rec_len > h->end - off)
        goto corrupt;
    if (off + rec_len <= r->win_off + r->win_len) {
        p = r->win + (off - r->win_off);
    } else if (rec_len <= WINDOW) {
        if (ann_lf_pread_full(h->fd, r->win, rec_len, off) != 0)
            return sys_fail(err, "read", h->path);
        r->win_off = off;
        r->win_len = rec_len;
        p = r->win;
    } else {
        free(r->big);
        if (!(r->big = malloc(rec_len)))
            return ann_err_set(err, ANN_EIO, "out of memory");
        if (ann_lf_pread_full(h->fd, r->big, rec_len, off) != 0)
            return sys_fail(err, "read", h->path);
        p = r->big;
    }
    if (r->buf_len + rec_len > r->buf_cap) {
        size_t ncap = r->buf_cap ? r->buf_cap : 1 << 16;
        while (ncap < r->buf_len + rec_len)
            ncap *= 2;
        uint8_t *nb = realloc(r->buf, ncap);
        if (!nb)
            return ann_err_set(err, ANN_EIO, "out of memory");
        r->buf = nb;
        r->buf_cap = ncap;
    }
    memcpy(r->buf + r->buf_len, p, rec_len);
    ann_entry e;
    uint32_t rl;
    if (ann_lf_rec_decode(r->buf + r->buf_len, rec_len, &e, &rl) != 0 || e.entry_id != id)
        goto corrupt;
    r->offs[r->n] = r->buf_len;
    r->ents[r->n++] = e;
    r->buf_len += rec_len;
    return 0;
corrupt:
    ann_err_set(err, ANN_ECORRUPT, "%s: entry %llu at offset %llu fails its checksum", h->path,
                (unsigned long long)id, (unsigned long long)off);
    fprintf(stderr, "annals store: CORRUPTION: %s\n", err ? err->msg : "");
    return -1;
}

/* Re-points the chunk's entries into buf (it may have moved while growing). */
static void reader_fix(reader *r)
{
    for (size_t i = 0; i < r->n; i++) {
        ann_entry *e = &r->ents[i];
        uint8_t *p = r->buf + r->offs[i];
        e->insert_id = (const char *)p + ANN_LF_REC_HDR;
        e->body = p + ANN_LF_REC_HDR + e->insert_id_len;
        if (e->flags & ANN_ENTRY_REDACTED)
            e->body_len = 0;
    }
}

static int emb_list(ann_store *st, const char *tenant_id, const char *log_id,
                    const ann_list_query *q, ann_entry_visit_fn visit, void *ud, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    reader r = {0};
    uint64_t ids[READ_CHUNK];
    int rc = -1;
    if (!q || !visit)
        return ann_err_set(err, ANN_EINVAL, "list: missing query or visitor");
    if (log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    r.h = h;
    ann_idx_key after = {q->start_ns, 0};
    if (q->has_cursor && (q->cursor_time_ns > after.time ||
                          (q->cursor_time_ns == after.time && q->cursor_id > after.id))) {
        after.time = q->cursor_time_ns;
        after.id = q->cursor_id;
    }
    size_t limit = q->limit ? q->limit : SIZE_MAX, emitted = 0;
    uint64_t max_id = 0;
    bool stop = false;
    while (!stop) {
        pthread_rwlock_rdlock(&h->lk);
        if (log_state(h, err) != 0) {
            pthread_rwlock_unlock(&h->lk);
            goto done;
        }
        if (max_id == 0)
            max_id = q->max_id == 0 || q->max_id > h->visible ? h->visible : q->max_id;
        size_t k = ann_idx_list(&h->idx, &after, q->end_ns, max_id, ids, READ_CHUNK);
        reader_begin(&r);
        for (size_t i = 0; i < k; i++) {
            if (reader_take(&r, ids[i], err) != 0) {
                pthread_rwlock_unlock(&h->lk);
                goto done;
            }
            if (r.buf_len >= READ_BYTES && i + 1 < k) {
                /* Continue after the last entry copied. */
                after.time = ann_idx_time(&h->idx, ids[i]);
                after.id = ids[i];
                break;
            }
        }
        pthread_rwlock_unlock(&h->lk);
        if (k == 0)
            break;
        reader_fix(&r);
        for (size_t i = 0; i < r.n; i++) {
            if (q->filter && !q->filter(&r.ents[i], q->filter_ud))
                continue;
            if (visit(&r.ents[i], ud) != 0 || ++emitted >= limit) {
                stop = true;
                break;
            }
        }
        if (max_id == 0)
            break; /* empty log */
    }
    rc = 0;
done:
    reader_release(&r);
    log_release(s, h);
    return rc;
}

static int emb_read_after(ann_store *st, const char *tenant_id, const char *log_id,
                          uint64_t after_id, size_t limit, ann_entry_visit_fn visit, void *ud,
                          ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    reader r = {0};
    int rc = -1;
    if (!visit)
        return ann_err_set(err, ANN_EINVAL, "read_after: missing visitor");
    if (log_acquire(s, tenant_id, log_id, &h, err) != 0)
        return -1;
    r.h = h;
    size_t left = limit ? limit : SIZE_MAX;
    uint64_t next = 0, last = 0;
    bool have_last = false;
    while (left) {
        pthread_rwlock_rdlock(&h->lk);
        if (log_state(h, err) != 0) {
            pthread_rwlock_unlock(&h->lk);
            goto done;
        }
        if (!have_last) {
            last = h->visible;
            next = after_id < last ? after_id + 1 : last + 1; /* no overflow */
            have_last = true;
        }
        reader_begin(&r);
        while (next <= last && r.n < READ_CHUNK && r.n < left && r.buf_len < READ_BYTES) {
            if (reader_take(&r, next, err) != 0) {
                pthread_rwlock_unlock(&h->lk);
                goto done;
            }
            next++;
        }
        pthread_rwlock_unlock(&h->lk);
        if (r.n == 0)
            break;
        reader_fix(&r);
        for (size_t i = 0; i < r.n; i++) {
            left--;
            if (visit(&r.ents[i], ud) != 0) {
                left = 0;
                break;
            }
        }
    }
    rc = 0;
done:
    reader_release(&r);
    log_release(s, h);
    return rc;
}

static int emb_watch(ann_store *st, const char *tenant_id, const char *log_id, ann_watch_fn fn,
                     void *ud, ann_watch **out, ann_err *err)
{
    emb *s = (emb *)st;
    elog *h;
    if (!fn || !out)
        return ann_err_set(err, ANN_EINVAL, "watch: missing callback");
    *out = NULL;
    ann_watch *w = calloc(1, sizeof *w);
    if (!w)
        return ann_err_set(err, ANN_EIO, "out of memory");
    if (log_acquire(s, tenant_id, log_id, &h, err) != 0) {
        free(w);
        return -1;
    }
    w->h = h;
    w->fn = fn;
    w->ud = ud;
    pthread_mutex_lock(&s->watch_mu);
    if (h->watch_gone) {
        pthread_mutex_unlock(&s->watch_mu);
        free(w);
        log_release(s, h);
        return not_found(err, log_id);
    }
    w->next = h->watchers;
    if (h->watchers)
        h->watchers->prev = w;
    h->watchers = w;
    w->linked = true;
    w->all_next = s->watches;
    if (s->watches)
        s->watches->all_prev = w;
    s->watches = w;
    pthread_mutex_unlock(&s->watch_mu);
    *out = w; /* keeps its reference on h: a watched log stays open */
    return 0;
}

static void emb_unwatch(ann_store *st, ann_watch *w)
{
    emb *s = (emb *)st;
    elog *h = w->h;
    pthread_mutex_lock(&s->watch_mu);
    if (w->linked) {
        if (w->prev)
            w->prev->next = w->next;
        else
            h->watchers = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->linked = false;
    }
    while (w->busy)
        pthread_cond_wait(&s->watch_cv, &s->watch_mu);
    if (w->all_prev)
        w->all_prev->all_next = w->all_next;
    else
        s->watches = w->all_next;
    if (w->all_next)
        w->all_next->all_prev = w->all_prev;
    pthread_mutex_unlock(&s->watch_mu);
    free(w);
    log_release(s, h);
}

static const ann_store_ops embedded_ops = {
    .version = 1,
    .name = "embedded",
    .close = emb_close,
    .secret = emb_secret,
    .tenant_create = emb_tenant_create,
    .tenant_by_key = emb_tenant_by_key,
    .log_create = emb_log_create,
    .log_get = emb_log_get,
    .log_delete = emb_log_delete,
    .append = emb_append,
    .revoke = emb_revoke,
    .list = emb_list,
    .read_after = emb_read_after,
    .watch = emb_watch,
    .unwatch = emb_unwatch,
};

/* ---- open / close ------------------------------------------------------ */

void ann_store_embedded_opts_init(ann_store_embedded_opts *o)
{
    memset(o, 0, sizeof *o);
}

static void emb_close(ann_store *st)
{
    emb *s = (emb *)st;
    if (s->committer_started) {
        pthread_mutex_lock(&s->q_mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->q_cv);
        pthread_mutex_unlock(&s->q_mu);
        pthread_join(s->committer, NULL);
    }
    if (s->nsync_started) {
        pthread_mutex_lock(&s->sync_mu);
        s->sync_stop = true;
        pthread_cond_broadcast(&s->sync_go);
        pthread_mutex_unlock(&s->sync_mu);
        for (int i = 0; i < s->nsync_started; i++)
            pthread_join(s->sync_th[i], NULL);
    }
    /* Watches the caller did not remove (they should have): freed here. */
    while (s->watches)
        emb_unwatch(st, s->watches);
    for (size_t i = 0; i < s->tcap; i++)
        free_list(s->table[i]);
    free(s->table);
    free(s->notify);
    ann_meta_free(s->meta);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_mutex_destroy(&s->create_mu);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cv);
    pthread_mutex_destroy(&s->sync_mu);
    pthread_cond_destroy(&s->sync_go);
    pthread_cond_destroy(&s->sync_done);
    pthread_mutex_destroy(&s->watch_mu);
    pthread_cond_destroy(&s->watch_cv);
    free(s->dir);
    free(s);
}

/* Finishes deletions a crash interrupted and re-applies revocations whose
 * overwrite may not have completed. */
static int recover(emb *s, ann_err *err)
{
    char **v = NULL;
    size_t n = 0;
    if (ann_meta_logs_where(s->meta, false, ANN_META_LOG_DELETING, &v, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char *slash = strchr(v[i], '/');
        *slash = '\0';
        if (unlink_log_file(s, v[i], slash + 1, err) != 0 ||
            ann_meta_log_remove(s->meta, v[i], slash + 1, err) != 0) {
            ann_meta_strv_free(v, n);
            return -1;
        }
    }
    ann_meta_strv_free(v, n);
    if (ann_meta_logs_where(s->meta, true, 0, &v, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char *slash = strchr(v[i], '/');
        *slash = '\0';
        elog *h;
        ann_err e2;
        if (log_acquire(s, v[i], slash + 1, &h, &e2) == 0) {
            log_release(s, h);
        } else if (e2.code == ANN_ENOTFOUND) {
            (void)ann_meta_revoke_applied_log(s->meta, v[i], slash + 1, &e2);
        } else {
            fprintf(stderr, "annals store: pending revocation of log %s/%s not applied: %s\n", v[i],
                    slash + 1, e2.msg);
        }
    }
    ann_meta_strv_free(v, n);
    return 0;
}

int ann_store_embedded_open(const char *dir, const ann_store_embedded_opts *opts, ann_store **out,
                            ann_err *err)
{
    emb *s = NULL;
    char *p = NULL;
    int rc = -1;
    *out = NULL;
    if (!dir || !dir[0])
        return ann_err_set(err, ANN_EINVAL, "data directory: missing");
    s = calloc(1, sizeof *s);
    if (!s)
        return ann_err_set(err, ANN_EIO, "out of memory");
    s->base.ops = &embedded_ops;
    s->lock_fd = -1;
    if (opts)
        s->opts = *opts;
    if (!s->opts.max_open_logs)
        s->opts.max_open_logs = 512;
    if (!s->opts.idle_evict_ms)
        s->opts.idle_evict_ms = 5000;
    if (!s->opts.snapshot_min)
        s->opts.snapshot_min = 100000;
    if (!s->opts.cache_bytes)
        s->opts.cache_bytes = 64u << 20;
    s->durable = s->opts.durability != ANN_DURABILITY_NONE;
    const char *tr = getenv("ANN_STORE_TRACE");
    s->trace = tr ? atof(tr) : 0;
    s->lru.lru_next = s->lru.lru_prev = &s->lru;
    pthread_mutex_init(&s->create_mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pthread_mutex_init(&s->sync_mu, NULL);
    pthread_cond_init(&s->sync_go, NULL);
    pthread_cond_init(&s->sync_done, NULL);
    pthread_mutex_init(&s->watch_mu, NULL);
    pthread_cond_init(&s->watch_cv, NULL);
    s->dir = strdup(dir);
    if (!s->dir) {
        ann_err_set(err, ANN_EIO, "out of memory");
        goto done;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        sys_fail(err, "mkdir", dir);
        goto done;
    }
    p = path_join(dir, "logs", NULL, "");
    if (!p) {
        ann_err_set(err, ANN_EIO, "out of memory");
        goto done;
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        sys_fail(err, "mkdir", p);
        goto done;
    }
    /* A killed process may have made logs/ or a tenant's directory and died
     * before syncing the directory holding it: found again here (and by
     * log_create's mkdir, EEXIST), it would never be synced. */
    if (s->durable && (fsync_dir(dir) != 0 || fsync_dir(p) != 0)) {
        sys_fail(err, "sync", p);
        goto done;
    }
    free(p);
    p = NULL;
    if (!s->opts.admin_only) {
        p = path_join(dir, "LOCK", NULL, "");
        if (!p) {
            ann_err_set(err, ANN_EIO, "out of memory");
            goto done;
        }
        s->lock_fd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        if (s->lock_fd < 0) {
            sys_fail(err, "open", p);
            goto done;
        }
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            ann_err_set(err, ANN_EUNAVAIL, "data directory %.180s is in use by another server",
                        dir);
            goto done;
        }
        free(p);
        p = NULL;
    }
    p = path_join(dir, "meta.db", NULL, "");
    if (!p) {
        ann_err_set(err, ANN_EIO, "out of memory");
        goto done;
    }
    if (ann_meta_open(p, s->durable, &s->meta, err) != 0 ||
        ann_meta_hashkey(s->meta, s->hkey, err) != 0)
        goto done;
    if (!s->opts.admin_only) {
        if (recover(s, err) != 0)
            goto done;
        if (pthread_create(&s->committer, NULL, committer_thread, s) != 0) {
            ann_err_set(err, ANN_EIO, "cannot start the committer thread");
            goto done;
        }
        s->committer_started = true;
        if (s->durable) {
            for (int i = 0; i < NSYNC; i++) {
                if (pthread_create(&s->sync_th[i], NULL, sync_main, s) != 0)
                    break;
                s->nsync_started++;
            }
        }
    }
    rc = 0;
done:
    free(p);
    if (rc != 0) {
        emb_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}
