/*
 * Sealed blocks: older entries of a log, compressed, with search filters (block.h), in the
 * log's .blk file; the .dat file keeps only the unsealed tail (docs/storage.md, "Sealed
 * blocks").
 *
 * Sealing (the sealer thread, with the log's purge_mu held so no revocation or deletion
 * runs meanwhile; appends go on): whole frames from dat_start are read, encoded as one
 * block and appended to the .blk file, which is synced; then, under h->lk, the block is
 * published (ids up to `sealed` now read from it) and dat_start moves past the frames;
 * last, those frames are punched out of the .dat file (zeroed where punching is not
 * supported) and the .dat is synced. A crash after the block is durable leaves the frames
 * in place: the next load starts the scan at the last block's dat_end and punches again.
 *
 * Revoking sealed entries rewrites their blocks: a new version (gen + 1) with the entries
 * redacted and the filter rebuilt without them is appended and synced, then the old version
 * is killed (sections and filter zeroed, DEAD header) and synced, then punched. A load that
 * finds two versions keeps the newest and kills the others; one that finds a pending
 * revocation not yet in its block redoes the rewrite.
 *
 * Reads copy a sealed entry out of a decoded block, kept in a small cache per log
 * (EMB_VCACHE views, h->vc_mu, a leaf lock), as a data-file record: the readers above do
 * not tell sealed entries from others.
 */
#include "common/fault.h"
#include "store/embedded/internal.h"
#include "domain/integrity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/buf.h"
#include "store/embedded/logfile.h"

#define SEAL_ENTRIES 2048       /* a block's entries ... */
#define SEAL_BYTES (512u << 10) /* ... or frame bytes, whichever comes first */
#define SEAL_LEVEL 5            /* zstd level: the sealer is background work (see below) */
#define SEALER_NICE 10          /* the sealer yields the CPU to ingest and reads */
#define SEALER_TICK_MS 500

/* ---- finding and reading blocks --------------------------------------------- */

const emb_block *emb_block_of(const elog *h, uint64_t id)
{
    size_t lo = 0, hi = h->nblocks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->blocks[mid].last < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < h->nblocks && h->blocks[lo].first <= id ? &h->blocks[lo] : NULL;
}

/* Reads bytes [from, to) of block b. */
static int block_read(const elog *h, const emb_block *b, uint64_t from, uint64_t to, uint8_t **out,
                      ann_err *err)
{
    *out = ann_xmalloc(to > from ? (size_t)(to - from) : 1);
    if (to > from && ann_lf_pread_full(h->bfd, *out, (size_t)(to - from), b->off + from) != 0) {
        free(*out);
        *out = NULL;
        return emb_sys_fail(err, "read", h->blk_path);
    }
    return 0;
}

/* Decodes block b whole (h->lk held). */
static int block_view(const elog *h, const emb_block *b, ann_blk_view *v, ann_err *err)
{
    uint8_t *bytes;
    if (block_read(h, b, 0, ann_blk_body_end(&b->hdr), &bytes, err) != 0)
        return -1;
    int rc = ann_blk_view_open(bytes, (size_t)ann_blk_body_end(&b->hdr), &b->hdr, v, err);
    free(bytes);
    if (rc != 0)
        fprintf(stderr, "annals store: CORRUPTION: %s: block at %llu: %s\n", h->blk_path,
                (unsigned long long)b->off, err ? err->msg : "");
    return rc;
}

static void put_record(const ann_entry *e, uint64_t id, uint8_t **buf, size_t *cap, size_t *len)
{
    size_t need = ann_lf_rec_size(e->insert_id_len, e->body_len);
    emb_grow(buf, cap, *len + need);
    ann_lf_rec_encode(*buf + *len, id, e);
    *len += need;
}

int emb_block_take(elog *h, const emb_block *b, uint64_t id, uint8_t **buf, size_t *cap,
                   size_t *len, ann_err *err)
{
    pthread_mutex_lock(&h->vc_mu);
    emb_vslot *hit = NULL, *victim = &h->vc[0];
    for (int i = 0; i < EMB_VCACHE; i++) {
        emb_vslot *v = &h->vc[i];
        if (v->first == b->first && v->gen == b->hdr.gen)
            hit = v;
        if (v->tick < victim->tick)
            victim = v;
    }
    if (!hit) {
        /* Decoded under vc_mu: readers of this log's other blocks wait a moment, which
         * keeps two readers from decoding the same block twice. */
        ann_blk_view view;
        if (block_view(h, b, &view, err) != 0) {
            pthread_mutex_unlock(&h->vc_mu);
            return -1;
        }
        if (victim->first)
            ann_blk_view_release(&victim->view);
        victim->first = b->first;
        victim->gen = b->hdr.gen;
        victim->view = view;
        hit = victim;
    }
    hit->tick = ++h->vc_tick;
    put_record(&hit->view.e[id - b->first], id, buf, cap, len);
    pthread_mutex_unlock(&h->vc_mu);
    return 0;
}

static void vcache_drop(elog *h)
{
    pthread_mutex_lock(&h->vc_mu);
    for (int i = 0; i < EMB_VCACHE; i++)
        if (h->vc[i].first) {
            ann_blk_view_release(&h->vc[i].view);
            memset(&h->vc[i], 0, sizeof h->vc[i]);
        }
    pthread_mutex_unlock(&h->vc_mu);
}

void emb_blocks_release(elog *h)
{
    for (size_t i = 0; i < h->nblocks; i++)
        free(h->blocks[i].filter);
    free(h->blocks);
    h->blocks = NULL;
    h->nblocks = h->blocks_cap = 0;
    h->sealed = h->blk_end = h->dat_start = 0;
    vcache_drop(h);
    if (h->bfd >= 0)
        close(h->bfd);
    h->bfd = -1;
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The quantiles of n times (sorted in place). */
static void quantiles(int64_t *t, size_t n, int64_t q[EMB_NQ + 1])
{
    qsort(t, n, sizeof *t, i64_cmp);
    for (int j = 0; j <= EMB_NQ; j++)
        q[j] = t[(n - 1) * (size_t)j / EMB_NQ];
}

static emb_block *blocks_push(elog *h)
{
    if (h->nblocks == h->blocks_cap) {
        h->blocks_cap = h->blocks_cap ? h->blocks_cap * 2 : 16;
        h->blocks = ann_xrealloc(h->blocks, h->blocks_cap * sizeof *h->blocks);
    }
    emb_block *b = &h->blocks[h->nblocks++];
    memset(b, 0, sizeof *b);
    return b;
}

/* Fills b's quantiles and filter from an encoded block in memory. */
static void block_summary(emb_block *b, const uint8_t *bytes, const int64_t *times_in)
{
    size_t n = b->hdr.count;
    int64_t *t = ann_xmalloc(n * sizeof *t);
    memcpy(t, times_in, n * sizeof *t);
    quantiles(t, n, b->q);
    free(t);
    free(b->filter);
    b->filter = NULL;
    if (b->hdr.filter_len) {
        b->filter = ann_xmalloc(b->hdr.filter_len);
        memcpy(b->filter, bytes + ann_blk_filter_off(&b->hdr), b->hdr.filter_len);
    }
}

/* ---- writing blocks ---------------------------------------------------------- */

static int blk_open(emb *s, elog *h, ann_err *err)
{
    if (h->bfd >= 0)
        return 0;
    h->bfd = open(h->blk_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (h->bfd < 0)
        return emb_sys_fail(err, "open", h->blk_path);
    if (s->durable) {
        char *dir = emb_path_join(s->dir, "logs", h->tenant, "");
        int r = emb_fsync_dir(dir);
        free(dir);
        if (r != 0)
            return emb_sys_fail(err, "sync", h->blk_path);
    }
    return 0;
}

/* Appends encoded block bytes at the end of the .blk file and syncs it; *off is where.
 * `held`: the caller holds h->lk for writing (a load). */
static int blk_append(emb *s, elog *h, const ann_buf *b, bool held, uint64_t *off, ann_err *err)
{
    if (!held)
        pthread_rwlock_wrlock(&h->lk);
    int rc = blk_open(s, h, err);
    *off = h->blk_end;
    if (rc == 0)
        h->blk_end += b->len; /* reserved: only purge_mu holders (and loads) append */
    if (!held)
        pthread_rwlock_unlock(&h->lk);
    if (rc != 0)
        return -1;
    if (emb_write_full(h->bfd, b->data, b->len, *off) != 0)
        return emb_sys_fail(err, "write", h->blk_path);
    if (s->durable && fdatasync(h->bfd) != 0)
        return emb_sys_unknown(err, "sync", h->blk_path);
    return 0;
}

/* Frees the bytes [from, to) of a file: a hole where the file system can punch one, zeros
 * where it cannot (either way no byte of them is left). Then syncs. */
int emb_wipe(emb *s, int fd, const char *path, uint64_t from, uint64_t to, ann_err *err)
{
    if (to <= from)
        return 0;
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from,
                  (off_t)(to - from)) != 0) {
        static const uint8_t zeros[64 * 1024];
        for (uint64_t o = from; o < to;) {
            size_t n = to - o < sizeof zeros ? (size_t)(to - o) : sizeof zeros;
            if (emb_write_full(fd, zeros, n, o) != 0)
                return emb_sys_fail(err, "write", path);
            o += n;
        }
    }
    if (s->durable && fdatasync(fd) != 0)
        return emb_sys_unknown(err, "sync", path);
    return 0;
}

/* Kills the block version at off (total_len bytes): sections and filter zeroed, the header
 * made DEAD, synced, then the space punched. */
static int blk_kill(emb *s, elog *h, uint64_t off, ann_blk_header hdr, ann_err *err)
{
    uint8_t dead[ANN_BLK_HDR_LEN];
    uint64_t from = off + ANN_BLK_HDR_LEN, to = off + hdr.total_len;
    static const uint8_t zeros[64 * 1024];
    for (uint64_t o = from; o < to;) {
        size_t n = to - o < sizeof zeros ? (size_t)(to - o) : sizeof zeros;
        if (emb_write_full(h->bfd, zeros, n, o) != 0)
            return emb_sys_fail(err, "write", h->blk_path);
        o += n;
    }
    ann_blk_make_dead(&hdr, dead);
    if (emb_write_full(h->bfd, dead, sizeof dead, off) != 0)
        return emb_sys_fail(err, "write", h->blk_path);
    if (s->durable && fdatasync(h->bfd) != 0)
        return emb_sys_unknown(err, "sync", h->blk_path);
    ANN_FAULT_POINT("block.killed");
    /* The zeros already hold nothing; punching only gives the space back. */
    (void)fallocate(h->bfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from,
                    (off_t)(to - from));
    return 0;
}

/* ---- sealing ----------------------------------------------------------------- */

typedef struct gather {
    ann_entry *e;
    uint8_t **copies;
    int64_t *times;
    size_t n, cap;
    uint64_t first;
} gather;

static int gather_entry(const ann_entry *e, void *ud)
{
    gather *g = ud;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 1024;
        g->e = ann_xrealloc(g->e, g->cap * sizeof *g->e);
        g->copies = ann_xrealloc(g->copies, g->cap * sizeof *g->copies);
        g->times = ann_xrealloc(g->times, g->cap * sizeof *g->times);
    }
    /* The entry's bytes live in the reader's buffer only during the visit: copy them. */
    uint8_t *c = ann_xmalloc(e->insert_id_len + e->body_len + 1);
    memcpy(c, e->insert_id, e->insert_id_len);
    if (e->body_len)
        memcpy(c + e->insert_id_len, e->body, e->body_len);
    g->copies[g->n] = c;
    g->e[g->n] = *e;
    g->e[g->n].insert_id = (const char *)c;
    g->e[g->n].body = c + e->insert_id_len;
    g->times[g->n] = e->time_ns;
    g->n++;
    return 0;
}

static void gather_free(gather *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->copies[i]);
    free(g->e);
    free(g->copies);
    free(g->times);
}

/* Seals the next block of h if a block's worth of frames is there (or any, with `all`).
 * h->purge_mu is held. Returns 1 if it sealed one, 0 if there was nothing to seal. */
static int seal_one(emb *s, elog *h, bool all, ann_err *err)
{
    gather g = {0};
    ann_buf blk = ANN_BUF_INIT;
    int rc = -1;

    /* Which frames: whole ones from dat_start, up to a block's worth. */
    pthread_rwlock_rdlock(&h->lk);
    if (h->load_rc != 0 || h->deleted || h->broken || h->sealed >= h->visible) {
        pthread_rwlock_unlock(&h->lk);
        return 0;
    }
    uint64_t first = h->sealed + 1, visible = h->visible, from = h->dat_start, off = from;
    uint64_t last = h->sealed, end = h->end;
    while (off < end && last < visible) {
        uint8_t fh[ANN_LF_FRAME_HDR];
        uint64_t fid, flen;
        uint32_t fcount;
        if (ann_lf_pread_full(h->fd, fh, sizeof fh, off) != 0 ||
            !ann_lf_frame_decode(fh, &fid, &fcount, &flen) || fid != last + 1 || flen > end - off) {
            pthread_rwlock_unlock(&h->lk);
            return ann_err_set(err, ANN_ECORRUPT, "%s: no frame at offset %llu", h->path,
                               (unsigned long long)off);
        }
        if (fid + fcount - 1 > visible)
            break; /* not published yet */
        last += fcount;
        off += flen;
        if (last - first + 1 >= SEAL_ENTRIES || off - from >= SEAL_BYTES)
            break;
    }
    pthread_rwlock_unlock(&h->lk);
    if (last < first || (!all && last - first + 1 < SEAL_ENTRIES && off - from < SEAL_BYTES))
        return 0;

    g.first = first;
    if (emb_read_range(s, h, first, last, gather_entry, &g, err) != 0)
        goto done;
    if (g.n != last - first + 1) {
        ann_err_set(err, ANN_EUNAVAIL, "%s: entries %llu..%llu changed while sealing", h->path,
                    (unsigned long long)first, (unsigned long long)last);
        goto done;
    }
    if (ann_blk_encode(g.e, g.n, first, 0, off, SEAL_LEVEL, &blk, err) != 0)
        goto done;
    uint64_t boff;
    if (blk_append(s, h, &blk, false, &boff, err) != 0)
        goto done;
    ANN_FAULT_POINT("seal.block_synced");

    pthread_rwlock_wrlock(&h->lk);
    if (h->sealed != first - 1 || h->dat_start != from || h->deleted || h->load_rc != 0) {
        /* A reload read the block itself meanwhile (or the log went away). */
        pthread_rwlock_unlock(&h->lk);
        rc = 0;
        goto done;
    }
    emb_block *b = blocks_push(h);
    b->first = first;
    b->last = last;
    b->off = boff;
    ann_err herr;
    (void)ann_blk_header_decode(blk.data, blk.len, &b->hdr, &herr);
    block_summary(b, blk.data, g.times);
    h->sealed = last;
    h->dat_start = off;
    h->revoke_gen++; /* readers drop their windows on the .dat file */
    int fd = h->fd;
    pthread_rwlock_unlock(&h->lk);

    /* The frames are now read from the block: take their bytes out of the .dat file. The
     * fd is stable: only the committer's reload replaces it, and not while purge_mu is
     * held by us... except a broken log's reload, which re-punches at load. */
    pthread_rwlock_rdlock(&h->lk);
    if (h->fd == fd)
        rc = emb_wipe(s, fd, h->path, from, off, err);
    else
        rc = 0;
    pthread_rwlock_unlock(&h->lk);
    if (rc != 0)
        goto done;
    ANN_FAULT_POINT("seal.dat_punched");
    rc = 1;
done:
    gather_free(&g);
    ann_buf_release(&blk);
    return rc;
}

/* ---- revoking sealed entries ------------------------------------------------- */

/* Rewrites block index bi with ids[0..n) (all in it) redacted. purge_mu held, or (`held`)
 * h->lk held for writing by a load. */
static int block_rewrite(emb *s, elog *h, size_t bi, const uint64_t *ids, size_t n, bool held,
                         ann_err *err)
{
    ann_blk_view v;
    ann_buf blk = ANN_BUF_INIT;
    int rc = -1;
    if (!held)
        pthread_rwlock_rdlock(&h->lk);
    emb_block old = h->blocks[bi];
    int r = block_view(h, &old, &v, err);
    if (!held)
        pthread_rwlock_unlock(&h->lk);
    if (r != 0)
        return -1;
    int64_t *times = ann_xmalloc(v.n * sizeof *times);
    for (size_t i = 0; i < v.n; i++)
        times[i] = v.e[i].time_ns;
    /* A redacted entry keeps its body_hash (domain/integrity.h): computed from its salt and
     * body before they go, or kept when it is redacted already. */
    uint8_t(*hf)[ANN_INTEGRITY_FIELD_LEN] = ann_xmalloc((n ? n : 1) * sizeof *hf);
    for (size_t k = 0; k < n; k++) {
        ann_entry *e = &v.e[ids[k] - old.first];
        uint8_t hash[32];
        bool have = ann_integrity_body_hash(e->body, e->body_len, hash, NULL) == 0;
        e->flags |= ANN_ENTRY_REDACTED;
        e->body_len = 0;
        if (have) {
            ann_integrity_field(ANN_INTEGRITY_HASH, hash, hf[k]);
            e->body = hf[k];
            e->body_len = ANN_INTEGRITY_FIELD_LEN;
        }
    }
    if (ann_blk_encode(v.e, v.n, old.first, old.hdr.gen + 1, old.hdr.dat_end, SEAL_LEVEL, &blk,
                       err) != 0)
        goto done;
    uint64_t boff;
    if (blk_append(s, h, &blk, held, &boff, err) != 0)
        goto done;
    ANN_FAULT_POINT("revoke.block_written");
    if (!held)
        pthread_rwlock_wrlock(&h->lk);
    emb_block *b = &h->blocks[bi];
    b->off = boff;
    ann_err herr;
    (void)ann_blk_header_decode(blk.data, blk.len, &b->hdr, &herr);
    block_summary(b, blk.data, times);
    h->revoke_gen++;
    if (!held)
        pthread_rwlock_unlock(&h->lk);
    rc = blk_kill(s, h, old.off, old.hdr, err);
done:
    free(hf);
    free(times);
    ann_blk_view_release(&v);
    ann_buf_release(&blk);
    return rc;
}

int emb_blocks_revoke(emb *s, elog *h, const uint64_t *ids, size_t n, ann_err *err)
{
    for (size_t i = 0; i < n;) {
        pthread_rwlock_rdlock(&h->lk);
        const emb_block *b = emb_block_of(h, ids[i]);
        size_t bi = b ? (size_t)(b - h->blocks) : 0;
        uint64_t last = b ? b->last : 0;
        pthread_rwlock_unlock(&h->lk);
        if (!b)
            return ann_err_set(err, ANN_EINTERNAL, "%s: entry %llu is in no block", h->blk_path,
                               (unsigned long long)ids[i]);
        size_t j = i;
        while (j < n && ids[j] <= last)
            j++;
        if (block_rewrite(s, h, bi, ids + i, j - i, false, err) != 0)
            return -1;
        i = j;
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------------ */

typedef struct found {
    uint64_t off;
    ann_blk_header hdr;
} found;

static int found_cmp(const void *a, const void *b)
{
    const found *x = a, *y = b;
    if (x->hdr.first_id != y->hdr.first_id)
        return x->hdr.first_id < y->hdr.first_id ? -1 : 1;
    return x->hdr.gen < y->hdr.gen ? -1 : x->hdr.gen > y->hdr.gen;
}

/* Is there a well-formed block header at any 8-byte boundary in [from, size)? Then damage
 * before it is not a torn tail. */
static bool header_after(int fd, uint64_t from, uint64_t size)
{
    uint8_t hb[ANN_BLK_HDR_LEN];
    for (uint64_t o = (from + 8) & ~(uint64_t)7; o + ANN_BLK_HDR_LEN <= size; o += 8) {
        ann_blk_header h;
        if (ann_lf_pread_full(fd, hb, sizeof hb, o) == 0 && ann_le32_get(hb) == ANN_BLK_MAGIC &&
            ann_blk_header_decode(hb, sizeof hb, &h, NULL) == 0)
            return true;
    }
    return false;
}

static bool any_pending_in(const uint64_t *p, size_t n, uint64_t first, uint64_t last)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p[mid] < first)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && p[lo] <= last;
}

int emb_blocks_load(emb *s, elog *h, const uint64_t *pending, size_t npending, ann_err *err)
{
    found *v = NULL;
    size_t nv = 0, cap = 0;
    struct stat st;
    int rc = -1;
    h->bfd = open(h->blk_path, O_RDWR | O_CLOEXEC);
    if (h->bfd < 0) {
        if (errno == ENOENT)
            return 0; /* nothing sealed yet */
        return emb_sys_fail(err, "open", h->blk_path);
    }
    if (fstat(h->bfd, &st) != 0)
        return emb_sys_fail(err, "stat", h->blk_path);
    uint64_t size = (uint64_t)st.st_size, off = 0;
    while (off < size) {
        uint8_t hb[ANN_BLK_HDR_LEN];
        ann_blk_header hd;
        bool ok =
            off + ANN_BLK_HDR_LEN <= size && ann_lf_pread_full(h->bfd, hb, sizeof hb, off) == 0 &&
            ann_blk_header_decode(hb, sizeof hb, &hd, NULL) == 0 && off + hd.total_len <= size;
        if (!ok) {
            if (header_after(h->bfd, off, size)) {
                ann_err_set(err, ANN_ECORRUPT, "%s: damaged block at offset %llu", h->blk_path,
                            (unsigned long long)off);
                fprintf(stderr, "annals store: CORRUPTION: %s\n", err->msg);
                goto done;
            }
            fprintf(stderr,
                    "annals store: %s: cutting a torn block of %llu bytes at offset %llu "
                    "(an unfinished seal or rewrite)\n",
                    h->blk_path, (unsigned long long)(size - off), (unsigned long long)off);
            if (ftruncate(h->bfd, (off_t)off) != 0 || (s->durable && fdatasync(h->bfd) != 0)) {
                emb_sys_fail(err, "truncate", h->blk_path);
                goto done;
            }
            break;
        }
        if (!(hd.flags & ANN_BLK_DEAD)) {
            if (nv == cap) {
                cap = cap ? cap * 2 : 64;
                v = ann_xrealloc(v, cap * sizeof *v);
            }
            v[nv++] = (found){off, hd};
        }
        off += hd.total_len;
    }
    h->blk_end = off;
    if (nv)
        qsort(v, nv, sizeof *v, found_cmp);

    /* One version per first id, the newest; the older ones die (a rewrite cut short). */
    size_t w = 0;
    for (size_t i = 0; i < nv; i++) {
        if (i + 1 < nv && v[i + 1].hdr.first_id == v[i].hdr.first_id) {
            if (blk_kill(s, h, v[i].off, v[i].hdr, err) != 0)
                goto done;
            continue;
        }
        v[w++] = v[i];
    }
    nv = w;

    ann_buf iids = ANN_BUF_INIT;
    for (size_t i = 0; i < nv; i++) {
        ann_blk_header *hd = &v[i].hdr;
        if (hd->first_id != h->idx.n + 1) {
            ann_err_set(err, ANN_ECORRUPT, "%s: block at %llu starts at entry %llu, not %llu",
                        h->blk_path, (unsigned long long)v[i].off, (unsigned long long)hd->first_id,
                        (unsigned long long)h->idx.n + 1);
            fprintf(stderr, "annals store: CORRUPTION: %s\n", err->msg);
            ann_buf_release(&iids);
            goto done;
        }
        emb_block *b = blocks_push(h);
        b->first = hd->first_id;
        b->last = hd->first_id + hd->count - 1;
        b->off = v[i].off;
        b->hdr = *hd;
        /* The index needs times and insert_ids only: read up to the iid section. */
        uint8_t *bytes = NULL, *fbytes = NULL;
        size_t n = hd->count;
        int64_t *times = ann_xmalloc(n * sizeof *times), *its = ann_xmalloc(n * sizeof *its);
        int32_t *sev = ann_xmalloc(n * sizeof *sev);
        uint32_t *flags = ann_xmalloc(n * sizeof *flags);
        const char **iid = ann_xmalloc(n * sizeof *iid);
        size_t *iid_len = ann_xmalloc(n * sizeof *iid_len);
        int r = block_read(h, b, 0, ann_blk_index_end(hd), &bytes, err);
        if (r == 0)
            r = ann_blk_decode_meta(bytes, (size_t)ann_blk_index_end(hd), hd, times, its, sev,
                                    flags, err);
        if (r == 0)
            r = ann_blk_decode_iids(bytes, (size_t)ann_blk_index_end(hd), hd, &iids, iid, iid_len,
                                    err);
        if (r == 0 && hd->filter_len) {
            r = block_read(h, b, ann_blk_filter_off(hd), ann_blk_filter_off(hd) + hd->filter_len,
                           &fbytes, err);
            if (r == 0)
                r = ann_blk_filter_check(fbytes, hd, err);
        }
        bool redo = false;
        if (r == 0) {
            for (size_t k = 0; k < n; k++)
                (void)ann_idx_add(&h->idx, times[k], 0, emb_iid_tag(s, iid[k], iid_len[k]));
            b->filter = fbytes;
            fbytes = NULL;
            int64_t *t = times; /* sorted in place: done with the order */
            quantiles(t, n, b->q);
            /* A pending revocation whose entries the block still holds: redo it. */
            if (any_pending_in(pending, npending, b->first, b->last))
                for (size_t k = 0; k < n && !redo; k++)
                    redo = !(flags[k] & ANN_ENTRY_REDACTED) &&
                           any_pending_in(pending, npending, b->first + k, b->first + k);
        } else if (err && err->code == ANN_ECORRUPT) {
            fprintf(stderr, "annals store: CORRUPTION: %s: block at %llu: %s\n", h->blk_path,
                    (unsigned long long)b->off, err->msg);
        }
        free(bytes), free(fbytes), free(times), free(its), free(sev), free(flags), free(iid),
            free(iid_len);
        if (r != 0) {
            ann_buf_release(&iids);
            goto done;
        }
        h->sealed = b->last;
        h->dat_start = hd->dat_end;
        if (redo)
            b->hdr.flags |= 0x80000000u; /* marked: rewritten once every block is loaded */
    }
    ann_buf_release(&iids);
    h->visible = h->idx.n; /* the rewrites below read through the published blocks */
    for (size_t i = 0; i < h->nblocks; i++) {
        emb_block *b = &h->blocks[i];
        if (!(b->hdr.flags & 0x80000000u))
            continue;
        b->hdr.flags &= ~0x80000000u;
        /* The pending ids of this block. */
        size_t lo = 0;
        while (lo < npending && pending[lo] < b->first)
            lo++;
        size_t hi = lo;
        while (hi < npending && pending[hi] <= b->last)
            hi++;
        if (block_rewrite(s, h, i, pending + lo, hi - lo, true, err) != 0)
            goto done;
        ANN_FAULT_POINT("load.block_rewritten");
    }
    rc = 0;
done:
    free(v);
    return rc;
}

/* ---- the sealer thread ---------------------------------------------------------- */

static void *sealer_main(void *arg)
{
    emb *s = arg;
    /* Sealing is deferred work: on a busy machine it waits for spare CPU, so appends and
     * reads keep their latency; the unsealed tail is searched and read as well meanwhile. */
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, tid);
    if (errno == 0)
        (void)setpriority(PRIO_PROCESS, tid, prio + SEALER_NICE);
    pthread_mutex_lock(&s->seal_mu);
    while (!s->seal_stop) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += SEALER_TICK_MS * 1000000L;
        dl.tv_sec += dl.tv_nsec / 1000000000L;
        dl.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->seal_cv, &s->seal_mu, &dl);
        bool stop = s->seal_stop;
        pthread_mutex_unlock(&s->seal_mu);
        if (stop)
            break;

        /* The open logs with something to seal, referenced. */
        elog **todo = NULL;
        size_t n = 0;
        emb_open_logs(s, &todo, &n);
        double now = emb_mono_ms();
        for (size_t i = 0; i < n; i++) {
            elog *h = todo[i];
            pthread_rwlock_rdlock(&h->lk);
            bool idle = now - h->last_write_ms >= s->opts.seal_idle_ms;
            pthread_rwlock_unlock(&h->lk);
            pthread_mutex_lock(&h->purge_mu);
            ann_err err;
            int r;
            while ((r = seal_one(s, h, idle, &err)) == 1) {
                pthread_mutex_lock(&s->seal_mu);
                bool stopping = s->seal_stop;
                pthread_mutex_unlock(&s->seal_mu);
                if (stopping)
                    break;
            }
            pthread_mutex_unlock(&h->purge_mu);
            if (r < 0)
                fprintf(stderr, "annals store: %s: sealing: %s\n", h->log, err.msg);
            emb_log_release(s, h);
        }
        free(todo);
        pthread_mutex_lock(&s->seal_mu);
    }
    pthread_mutex_unlock(&s->seal_mu);
    return NULL;
}

void emb_seal_all(emb *s)
{
    elog **todo = NULL;
    size_t n = 0;
    emb_open_logs(s, &todo, &n);
    for (size_t i = 0; i < n; i++) {
        elog *h = todo[i];
        ann_err err;
        int r;
        pthread_mutex_lock(&h->purge_mu);
        while ((r = seal_one(s, h, true, &err)) == 1)
            ;
        pthread_mutex_unlock(&h->purge_mu);
        if (r < 0)
            fprintf(stderr, "annals store: %s: sealing at close: %s\n", h->log, err.msg);
        emb_log_release(s, h);
    }
    free(todo);
}

int emb_sealer_start(emb *s, ann_err *err)
{
    if (s->opts.no_blocks)
        return 0;
    if (pthread_create(&s->sealer, NULL, sealer_main, s) != 0)
        return ann_err_set(err, ANN_EUNAVAIL, "cannot start the sealer thread");
    s->sealer_started = true;
    return 0;
}

void emb_sealer_stop(emb *s)
{
    if (!s->sealer_started)
        return;
    pthread_mutex_lock(&s->seal_mu);
    s->seal_stop = true;
    pthread_cond_broadcast(&s->seal_cv);
    pthread_mutex_unlock(&s->seal_mu);
    pthread_join(s->sealer, NULL);
    s->sealer_started = false;
}
