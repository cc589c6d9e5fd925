/*
 * Search summaries: what a search needs of a log that is not open, read from its .blk file
 * alone: each live block's place, header (ids, time range) and search filter. Loading a
 * log whole (its index of every entry) to search it would make a tenant-wide search cost
 * the archive's size; a summary costs the filters (a few bytes per entry) and is read once,
 * then kept (a bounded LRU, s->sum_mu) while the .blk file does not change.
 *
 * A summary is valid for the .blk file's identity, size and mtime when it was read; any
 * seal, rewrite or repair changes them. A log whose .dat file holds frames after its last
 * block (an unsealed tail), or whose .blk file needs repair, has no summary: the search
 * opens the log instead.
 */
#include "store/embedded/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "store/embedded/logfile.h"

#define SUM_BUCKETS 4096

struct emb_summary {
    char tenant[EMB_MAX_ID_LEN + 1]; /* immutable */
    char log[EMB_MAX_ID_LEN + 1];    /* immutable */
    char *blk_path;                  /* immutable */
    dev_t dev;                       /* immutable: the .blk file it was read from */
    ino_t ino;
    off_t size;
    struct timespec mtime;
    emb_sumblk *b; /* immutable */
    size_t n;
    size_t bytes;                     /* immutable: memory held */
    int refs;                         /* s->sum_mu */
    bool stale;                       /* s->sum_mu: replaced; freed with the last ref */
    emb_summary *hnext;               /* s->sum_mu */
    emb_summary *lru_prev, *lru_next; /* s->sum_mu: s->sum_lru, most recent first */
};

static void summary_free(emb_summary *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->b[i].filter);
    free(m->b);
    free(m->blk_path);
    free(m);
}

static size_t bucket(const char *tenant, const char *log)
{
    uint32_t h = 2166136261u;
    for (const char *p = tenant; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (const char *p = log; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h % SUM_BUCKETS;
}

static void lru_unlink(emb *s, emb_summary *m)
{
    if (m->lru_prev)
        m->lru_prev->lru_next = m->lru_next;
    else if (s->sum_lru == m)
        s->sum_lru = m->lru_next;
    if (m->lru_next)
        m->lru_next->lru_prev = m->lru_prev;
    else if (s->sum_lru_tail == m)
        s->sum_lru_tail = m->lru_prev;
    m->lru_prev = m->lru_next = NULL;
}

static void lru_front(emb *s, emb_summary *m)
{
    m->lru_next = s->sum_lru;
    m->lru_prev = NULL;
    if (s->sum_lru)
        s->sum_lru->lru_prev = m;
    s->sum_lru = m;
    if (!s->sum_lru_tail)
        s->sum_lru_tail = m;
}

/* Takes m out of the table (s->sum_mu held); freed now if unused, else by its last user. */
static void table_drop(emb *s, emb_summary *m)
{
    emb_summary **pp = &s->sum_table[bucket(m->tenant, m->log)];
    while (*pp && *pp != m)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = m->hnext;
    lru_unlink(s, m);
    s->sum_bytes -= m->bytes;
    m->stale = true;
    if (m->refs == 0)
        summary_free(m);
}

static int found_cmp(const void *a, const void *b)
{
    const emb_sumblk *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return x->hdr.gen < y->hdr.gen ? -1 : x->hdr.gen > y->hdr.gen;
}

/* Reads the summary of a .blk file (already open, st its stat). 1: done; 0: the file needs
 * the log's own load (damage, a torn block, versions to settle); -1: error. */
static int summary_read(int fd, const struct stat *st, emb_summary *m, ann_err *err)
{
    uint64_t off = 0, size = (uint64_t)st->st_size;
    size_t cap = 0;
    while (off < size) {
        uint8_t hb[ANN_BLK_HDR_LEN];
        ann_blk_header hd;
        if (off + ANN_BLK_HDR_LEN > size || ann_lf_pread_full(fd, hb, sizeof hb, off) != 0 ||
            ann_blk_header_decode(hb, sizeof hb, &hd, NULL) != 0 || off + hd.total_len > size)
            return 0;
        if (!(hd.flags & ANN_BLK_DEAD)) {
            if (m->n == cap) {
                cap = cap ? cap * 2 : 16;
                m->b = ann_xrealloc(m->b, cap * sizeof *m->b);
            }
            emb_sumblk *b = &m->b[m->n++];
            memset(b, 0, sizeof *b);
            b->first = hd.first_id;
            b->last = hd.first_id + hd.count - 1;
            b->off = off;
            b->hdr = hd;
            if (hd.filter_len) {
                b->filter = ann_xmalloc(hd.filter_len);
                if (ann_lf_pread_full(fd, b->filter, hd.filter_len,
                                      off + ann_blk_filter_off(&hd)) != 0)
                    return ann_err_set(err, ANN_EUNAVAIL, "read: %s", strerror(errno));
                if (ann_blk_filter_check(b->filter, &hd, NULL) != 0)
                    return 0;
            }
            m->bytes += sizeof *b + hd.filter_len;
        }
        off += hd.total_len;
    }
    if (m->n)
        qsort(m->b, m->n, sizeof *m->b, found_cmp);
    for (size_t i = 0; i < m->n; i++)
        if (m->b[i].first != (i ? m->b[i - 1].last + 1 : 1))
            return 0; /* two versions, or a gap: the load settles it */
    return 1;
}

int emb_summary_get(emb *s, const char *tenant, const char *log, emb_summary **out,
                    const emb_sumblk **blocks, size_t *n, ann_err *err)
{
    *out = NULL;
    char *dat = emb_path_join(s->dir, "logs", tenant, "");
    size_t dl = strlen(dat) + strlen(log) + 8;
    char *blk = ann_xmalloc(dl), *datp = ann_xmalloc(dl);
    snprintf(blk, dl, "%s/%s.blk", dat, log);
    snprintf(datp, dl, "%s/%s.dat", dat, log);
    free(dat);
    struct stat bst, dst;
    int rc = 0;
    int fd = open(blk, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &bst) != 0 || stat(datp, &dst) != 0)
        goto done; /* no blocks yet, or gone: the log itself decides */

    pthread_mutex_lock(&s->sum_mu);
    size_t bi = bucket(tenant, log);
    emb_summary *m = s->sum_table[bi];
    while (m && (strcmp(m->tenant, tenant) != 0 || strcmp(m->log, log) != 0))
        m = m->hnext;
    if (m && m->dev == bst.st_dev && m->ino == bst.st_ino && m->size == bst.st_size &&
        m->mtime.tv_sec == bst.st_mtim.tv_sec && m->mtime.tv_nsec == bst.st_mtim.tv_nsec) {
        m->refs++;
        lru_unlink(s, m);
        lru_front(s, m);
        pthread_mutex_unlock(&s->sum_mu);
    } else {
        if (m)
            table_drop(s, m);
        pthread_mutex_unlock(&s->sum_mu);
        m = ann_xcalloc(1, sizeof *m);
        snprintf(m->tenant, sizeof m->tenant, "%s", tenant);
        snprintf(m->log, sizeof m->log, "%s", log);
        m->blk_path = blk;
        blk = NULL;
        m->dev = bst.st_dev;
        m->ino = bst.st_ino;
        m->size = bst.st_size;
        m->mtime = bst.st_mtim;
        m->bytes = sizeof *m;
        int r = summary_read(fd, &bst, m, err);
        if (r <= 0) {
            summary_free(m);
            rc = r;
            goto done;
        }
        pthread_mutex_lock(&s->sum_mu);
        m->refs = 1;
        m->hnext = s->sum_table[bi];
        s->sum_table[bi] = m;
        lru_front(s, m);
        s->sum_bytes += m->bytes;
        /* Over budget: forget the least recently used (those in use go when released). */
        while (s->sum_bytes > s->opts.summary_bytes && s->sum_lru_tail && s->sum_lru_tail != m)
            table_drop(s, s->sum_lru_tail);
        pthread_mutex_unlock(&s->sum_mu);
    }
    /* Frames after the last block: an unsealed tail only the loaded log can show. */
    uint64_t sealed_end = m->n ? m->b[m->n - 1].hdr.dat_end : 0;
    if ((uint64_t)dst.st_size > sealed_end) {
        emb_summary_release(s, m);
        goto done;
    }
    *out = m;
    *blocks = m->b;
    *n = m->n;
    rc = 1;
done:
    if (fd >= 0)
        close(fd);
    free(blk);
    free(datp);
    return rc;
}

const char *emb_summary_path(const emb_summary *m)
{
    return m->blk_path;
}

void emb_summary_release(emb *s, emb_summary *m)
{
    pthread_mutex_lock(&s->sum_mu);
    bool gone = --m->refs == 0 && m->stale;
    pthread_mutex_unlock(&s->sum_mu);
    if (gone)
        summary_free(m);
}

void emb_summaries_init(emb *s)
{
    pthread_mutex_init(&s->sum_mu, NULL);
    s->sum_table = ann_xcalloc(SUM_BUCKETS, sizeof *s->sum_table);
}

void emb_summaries_free(emb *s)
{
    if (!s->sum_table)
        return;
    for (size_t i = 0; i < SUM_BUCKETS; i++)
        while (s->sum_table[i]) {
            emb_summary *m = s->sum_table[i];
            s->sum_table[i] = m->hnext;
            summary_free(m);
        }
    free(s->sum_table);
    s->sum_table = NULL;
    pthread_mutex_destroy(&s->sum_mu);
}
