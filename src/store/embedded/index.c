#include "store/embedded/index.h"

#include "common/buf.h"
#include "store/embedded/hash.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK 65536u

void ann_idx_init(ann_idx *x)
{
    memset(x, 0, sizeof *x);
}

void ann_idx_release(ann_idx *x)
{
    for (size_t i = 0; i < x->nchunks; i++) {
        free(x->time_chunks[i]);
        free(x->tag_chunks[i]);
        free(x->off_chunks[i].d32);
        free(x->off_chunks[i].o64);
    }
    free(x->time_chunks);
    free(x->tag_chunks);
    free(x->off_chunks);
    free(x->slots);
    for (size_t i = 0; i < x->nruns; i++) {
        free(x->runs[i].ids);
        free(x->runs[i].segs);
    }
    free(x->runs);
    memset(x, 0, sizeof *x);
}

static int key_cmp(ann_idx_key a, ann_idx_key b)
{
    if (a.time != b.time)
        return a.time < b.time ? -1 : 1;
    if (a.id != b.id)
        return a.id < b.id ? -1 : 1;
    return 0;
}

static ann_idx_key key_of(const ann_idx *x, uint64_t id)
{
    ann_idx_key k = {ann_idx_time(x, id), id};
    return k;
}

static uint64_t run_at(const ann_idx_run *r, size_t i)
{
    if (r->ids)
        return r->ids[i];
    if (r->segs) {
        size_t lo = 0, hi = r->nseg; /* the first segment ending after i */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (r->segs[2 * mid + 1] <= i)
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t start = lo ? r->segs[2 * lo - 1] : 0;
        return r->segs[2 * lo] + (i - start);
    }
    return r->lo + i;
}

static size_t run_bytes(const ann_idx_run *r)
{
    return r->ids ? r->n * sizeof(uint32_t) : r->segs ? r->nseg * 2 * sizeof(uint32_t) : 0;
}

/* A sequential walk over a run (no search per step). */
typedef struct run_cur {
    const ann_idx_run *r;
    size_t pos, seg;
} run_cur;

static uint64_t cur_id(const run_cur *c)
{
    const ann_idx_run *r = c->r;
    if (r->ids)
        return r->ids[c->pos];
    if (r->segs) {
        size_t start = c->seg ? r->segs[2 * c->seg - 1] : 0;
        return r->segs[2 * c->seg] + (c->pos - start);
    }
    return r->lo + c->pos;
}

static void cur_next(run_cur *c)
{
    c->pos++;
    if (c->r->segs && c->seg < c->r->nseg && c->pos >= c->r->segs[2 * c->seg + 1])
        c->seg++;
}

/* ---- dedup table ------------------------------------------------------- */

static uint32_t tag_of(const ann_idx *x, uint64_t id)
{
    return x->tag_chunks[(id - 1) >> 16][(id - 1) & 0xffff];
}

static void slots_grow(ann_idx *x)
{
    uint64_t ncap = x->slots ? (x->mask + 1) * 2 : 1024;
    uint32_t *ns = ann_xcalloc(ncap, sizeof *ns);
    uint64_t nmask = ncap - 1;
    if (x->slots) {
        for (uint64_t i = 0; i <= x->mask; i++) {
            uint32_t id = x->slots[i];
            if (!id)
                continue;
            uint64_t j = tag_of(x, id) & nmask;
            while (ns[j])
                j = (j + 1) & nmask;
            ns[j] = id;
        }
        x->bytes -= (x->mask + 1) * sizeof(uint32_t);
    }
    free(x->slots);
    x->slots = ns;
    x->mask = nmask;
    x->bytes += ncap * sizeof(uint32_t);
}

uint64_t ann_idx_find(const ann_idx *x, uint32_t tag, bool (*confirm)(uint64_t id, void *ud),
                      void *ud)
{
    if (!x->slots)
        return 0;
    for (uint64_t j = tag & x->mask;; j = (j + 1) & x->mask) {
        uint32_t id = x->slots[j];
        if (!id)
            return 0;
        if (tag_of(x, id) == tag && confirm(id, ud))
            return id;
    }
}

/* ---- runs -------------------------------------------------------------- */

/* The next id of the merge of a and b, in (time, id) order. */
static uint64_t merge_next(const ann_idx *x, run_cur *a, run_cur *b)
{
    bool from_a;
    if (a->pos >= a->r->n)
        from_a = false;
    else if (b->pos >= b->r->n)
        from_a = true;
    else
        from_a = key_cmp(key_of(x, cur_id(a)), key_of(x, cur_id(b))) < 0;
    run_cur *c = from_a ? a : b;
    uint64_t id = cur_id(c);
    cur_next(c);
    return id;
}

static void merge_top(ann_idx *x)
{
    ann_idx_run *a = &x->runs[x->nruns - 2], *b = &x->runs[x->nruns - 1];
    /* Two ranges that continue each other in time stay one range. */
    if (!a->ids && !a->segs && !b->ids && !b->segs && a->hi + 1 == b->lo &&
        ann_idx_time(x, b->lo) >= ann_idx_time(x, a->hi)) {
        a->hi = b->hi;
        a->n += b->n;
        x->nruns--;
        return;
    }
    size_t n = a->n + b->n;
    /* Pass 1 counts the segments of consecutive ids in the merged order, so
     * that the smaller form is built directly (no transient id array). */
    size_t nseg = 0;
    uint64_t prev = 0;
    run_cur ca = {a, 0, 0}, cb = {b, 0, 0};
    for (size_t k = 0; k < n; k++) {
        uint64_t id = merge_next(x, &ca, &cb);
        if (k == 0 || id != prev + 1)
            nseg++;
        prev = id;
    }
    bool seg = nseg * 2 < n;
    uint32_t *m = ann_xmalloc((seg ? nseg * 2 : n) * sizeof *m);
    ca = (run_cur){a, 0, 0};
    cb = (run_cur){b, 0, 0};
    size_t w = 0;
    for (size_t k = 0; k < n; k++) {
        uint64_t id = merge_next(x, &ca, &cb);
        if (!seg) {
            m[k] = (uint32_t)id;
        } else {
            if (k == 0 || id != prev + 1) {
                m[2 * w] = (uint32_t)id;
                w++;
            }
            m[2 * w - 1] = (uint32_t)(k + 1);
        }
        prev = id;
    }
    x->bytes -= run_bytes(a) + run_bytes(b);
    free(a->ids);
    free(a->segs);
    free(b->ids);
    free(b->segs);
    *a = (ann_idx_run){.n = n};
    if (seg) {
        a->segs = m;
        a->nseg = nseg;
    } else {
        a->ids = m;
    }
    x->bytes += run_bytes(a);
    x->nruns--;
}

static void runs_add(ann_idx *x, uint64_t id, int64_t time)
{
    if (x->nruns) {
        ann_idx_run *top = &x->runs[x->nruns - 1];
        if (!top->ids && !top->segs && top->hi == id - 1 && time >= ann_idx_time(x, id - 1)) {
            top->hi = id;
            top->n++;
            goto compact;
        }
    }
    if (x->nruns == x->runs_cap) {
        size_t ncap = x->runs_cap ? x->runs_cap * 2 : 8;
        x->runs = ann_xrealloc(x->runs, ncap * sizeof *x->runs);
        x->runs_cap = ncap;
    }
    x->runs[x->nruns++] = (ann_idx_run){.lo = id, .hi = id, .n = 1};
compact:
    /* Binary-counter merging: a run that reaches half of the run below it is
     * merged into it. */
    while (x->nruns >= 2 && x->runs[x->nruns - 1].n * 2 >= x->runs[x->nruns - 2].n)
        merge_top(x);
}

int ann_idx_add(ann_idx *x, int64_t time, uint64_t off, uint32_t tag)
{
    uint64_t id = x->n + 1;
    if (id > ANN_IDX_MAX_ENTRIES)
        return -1;
    size_t chunk = (size_t)((id - 1) >> 16);
    if (chunk == x->nchunks) {
        if (x->nchunks == x->chunks_cap) {
            size_t ncap = x->chunks_cap ? x->chunks_cap * 2 : 4;
            x->time_chunks = ann_xrealloc(x->time_chunks, ncap * sizeof *x->time_chunks);
            x->tag_chunks = ann_xrealloc(x->tag_chunks, ncap * sizeof *x->tag_chunks);
            x->off_chunks = ann_xrealloc(x->off_chunks, ncap * sizeof *x->off_chunks);
            x->chunks_cap = ncap;
        }
        int64_t *t = ann_xmalloc(CHUNK * sizeof *t);
        uint32_t *o = ann_xmalloc(CHUNK * sizeof *o);
        uint32_t *g = ann_xmalloc(CHUNK * sizeof *g);
        x->time_chunks[x->nchunks] = t;
        x->tag_chunks[x->nchunks] = g;
        x->off_chunks[x->nchunks] = (ann_idx_offs){.base = off, .d32 = o, .o64 = NULL};
        x->nchunks++;
        x->bytes += CHUNK * (sizeof *t + sizeof *o + sizeof *g);
    }
    ann_idx_offs *oc = &x->off_chunks[chunk];
    if (!oc->o64 && off - oc->base > UINT32_MAX) {
        /* A chunk spanning more than 4 GiB: widen it. */
        uint64_t *w = ann_xmalloc(CHUNK * sizeof *w);
        for (size_t i = 0; i < (size_t)((id - 1) & 0xffff); i++)
            w[i] = oc->base + oc->d32[i];
        free(oc->d32);
        oc->d32 = NULL;
        oc->o64 = w;
        x->bytes += CHUNK * (sizeof *w - sizeof(uint32_t));
    }
    if ((x->used + 1) * 4 > (x->slots ? (x->mask + 1) * 3 : 0))
        slots_grow(x);
    x->time_chunks[chunk][(id - 1) & 0xffff] = time;
    x->tag_chunks[chunk][(id - 1) & 0xffff] = tag;
    if (oc->o64)
        oc->o64[(id - 1) & 0xffff] = off;
    else
        oc->d32[(id - 1) & 0xffff] = (uint32_t)(off - oc->base);
    runs_add(x, id, time);
    uint64_t j = tag & x->mask;
    while (x->slots[j])
        j = (j + 1) & x->mask;
    x->slots[j] = (uint32_t)id;
    x->used++;
    x->n = id;
    return 0;
}

/* ---- listing ----------------------------------------------------------- */

/* First position in run r whose key is strictly greater than k. */
static size_t run_upper(const ann_idx *x, const ann_idx_run *r, ann_idx_key k)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(key_of(x, run_at(r, mid)), k) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t ann_idx_list(const ann_idx *x, ann_idx_key *after, int64_t end, uint64_t max_id,
                    uint64_t *out, size_t cap)
{
    enum { MAXR = 128 };
    size_t pos[MAXR];
    size_t nr = x->nruns < MAXR ? x->nruns : MAXR; /* O(log n) runs: never near MAXR */
    size_t got = 0;
    for (size_t r = 0; r < nr; r++)
        pos[r] = run_upper(x, &x->runs[r], *after);
    while (got < cap) {
        size_t best = MAXR;
        ann_idx_key bk = {0, 0};
        for (size_t r = 0; r < nr; r++) {
            if (pos[r] >= x->runs[r].n)
                continue;
            ann_idx_key k = key_of(x, run_at(&x->runs[r], pos[r]));
            if (best == MAXR || key_cmp(k, bk) < 0) {
                best = r;
                bk = k;
            }
        }
        if (best == MAXR || bk.time >= end)
            break;
        pos[best]++;
        *after = bk;
        if (bk.id <= max_id && bk.id <= x->n)
            out[got++] = bk.id;
    }
    return got;
}

/* ---- snapshots --------------------------------------------------------- */

#define SNAP_MAGIC 0x32494E41u /* "ANI2" */

typedef struct snap_io {
    FILE *f;
    uint32_t crc;
    bool bad;
    uint64_t size; /* of the file being read */
} snap_io;

static void snap_put(snap_io *io, const void *p, size_t len)
{
    if (len && fwrite(p, 1, len, io->f) != len)
        io->bad = true;
    io->crc = ann_crc32c(io->crc, p, len);
}

static void snap_get(snap_io *io, void *p, size_t len)
{
    if (len && fread(p, 1, len, io->f) != len) {
        io->bad = true;
        memset(p, 0, len);
    }
    io->crc = ann_crc32c(io->crc, p, len);
}

static void put64(snap_io *io, uint64_t v)
{
    uint8_t b[8];
    ann_le64_put(b, v);
    snap_put(io, b, 8);
}

static uint64_t get64(snap_io *io)
{
    uint8_t b[8];
    snap_get(io, b, 8);
    return ann_le64_get(b);
}

/* Arrays are written in host order: a snapshot is a cache for this machine;
 * the header's byte-order mark makes a foreign one unusable, not wrong. */
int ann_idx_save(const ann_idx *x, const char *path, uint64_t data_end)
{
    size_t plen = strlen(path) + 8;
    char *tmp = ann_xmalloc(plen);
    int rc = -1;
    snprintf(tmp, plen, "%s.tmp", path);
    int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    snap_io io = {.f = fd >= 0 ? fdopen(fd, "wb") : NULL};
    if (!io.f) {
        if (fd >= 0)
            close(fd);
        goto done;
    }
    setvbuf(io.f, NULL, _IOFBF, 1 << 20);
    put64(&io, SNAP_MAGIC);
    put64(&io, 0x0102030405060708ull); /* byte order */
    put64(&io, x->n);
    put64(&io, data_end);
    put64(&io, x->mask);
    put64(&io, x->used);
    put64(&io, x->nruns);
    for (size_t c = 0; c < x->nchunks; c++) {
        size_t k = c + 1 < x->nchunks ? 65536 : (size_t)(x->n - (uint64_t)c * 65536);
        const ann_idx_offs *o = &x->off_chunks[c];
        snap_put(&io, x->time_chunks[c], k * sizeof(int64_t));
        snap_put(&io, x->tag_chunks[c], k * sizeof(uint32_t));
        put64(&io, o->base);
        put64(&io, o->o64 != NULL);
        if (o->o64)
            snap_put(&io, o->o64, k * sizeof(uint64_t));
        else
            snap_put(&io, o->d32, k * sizeof(uint32_t));
    }
    if (x->slots)
        snap_put(&io, x->slots, (x->mask + 1) * sizeof(uint32_t));
    for (size_t r = 0; r < x->nruns; r++) {
        const ann_idx_run *run = &x->runs[r];
        put64(&io, run->lo);
        put64(&io, run->hi);
        put64(&io, run->n);
        put64(&io, run->ids ? 1 : run->segs ? 2 : 0);
        if (run->ids)
            snap_put(&io, run->ids, run->n * sizeof(uint32_t));
        if (run->segs) {
            put64(&io, run->nseg);
            snap_put(&io, run->segs, run->nseg * 2 * sizeof(uint32_t));
        }
    }
    uint32_t crc = io.crc;
    put64(&io, crc);
    if (fclose(io.f) != 0)
        io.bad = true;
    if (io.bad || rename(tmp, path) != 0) {
        remove(tmp);
        goto done;
    }
    rc = 0;
done:
    free(tmp);
    return rc;
}

/* Can `bytes` more be read? A damaged length field must not make us allocate
 * more than the file holds (allocation failure aborts). */
static bool snap_fits(snap_io *io, uint64_t bytes)
{
    long pos = ftell(io->f);
    if (pos < 0 || (uint64_t)pos > io->size || bytes > io->size - (uint64_t)pos)
        io->bad = true;
    return !io->bad;
}

int ann_idx_load(ann_idx *x, const char *path, uint64_t *data_end)
{
    snap_io io = {.f = fopen(path, "rb")};
    struct stat st;
    int rc = 0;
    if (!io.f)
        return 0;
    if (fstat(fileno(io.f), &st) != 0)
        goto done;
    io.size = (uint64_t)st.st_size;
    setvbuf(io.f, NULL, _IOFBF, 1 << 20);
    if (get64(&io) != SNAP_MAGIC || get64(&io) != 0x0102030405060708ull)
        goto done;
    uint64_t n = get64(&io), end = get64(&io), mask = get64(&io), used = get64(&io),
             nruns = get64(&io);
    if (io.bad || n > ANN_IDX_MAX_ENTRIES || used != n || nruns > 128 || (mask & (mask + 1)) != 0 ||
        (n && (mask + 1) * 3 < n * 4) || mask > (1ull << 34) ||
        !snap_fits(&io, n * 16 + (n ? (mask + 1) * 4 : 0)))
        goto done;
    size_t nchunks = (size_t)((n + 65535) / 65536);
    x->time_chunks = ann_xcalloc(nchunks ? nchunks : 1, sizeof *x->time_chunks);
    x->tag_chunks = ann_xcalloc(nchunks ? nchunks : 1, sizeof *x->tag_chunks);
    x->off_chunks = ann_xcalloc(nchunks ? nchunks : 1, sizeof *x->off_chunks);
    x->chunks_cap = nchunks ? nchunks : 1;
    for (size_t c = 0; c < nchunks; c++) {
        size_t k = c + 1 < nchunks ? 65536 : (size_t)(n - (uint64_t)c * 65536);
        ann_idx_offs *o = &x->off_chunks[c];
        x->time_chunks[c] = ann_xmalloc(65536 * sizeof(int64_t));
        x->tag_chunks[c] = ann_xmalloc(65536 * sizeof(uint32_t));
        x->nchunks = c + 1;
        x->bytes += 65536 * (sizeof(int64_t) + sizeof(uint32_t));
        snap_get(&io, x->time_chunks[c], k * sizeof(int64_t));
        snap_get(&io, x->tag_chunks[c], k * sizeof(uint32_t));
        o->base = get64(&io);
        if (get64(&io)) {
            o->o64 = ann_xmalloc(65536 * sizeof(uint64_t));
            x->bytes += 65536 * sizeof(uint64_t);
            snap_get(&io, o->o64, k * sizeof(uint64_t));
        } else {
            o->d32 = ann_xmalloc(65536 * sizeof(uint32_t));
            x->bytes += 65536 * sizeof(uint32_t);
            snap_get(&io, o->d32, k * sizeof(uint32_t));
        }
        if (io.bad)
            goto bad;
    }
    if (n) {
        if (!snap_fits(&io, (mask + 1) * sizeof(uint32_t)))
            goto bad;
        x->slots = ann_xmalloc((mask + 1) * sizeof(uint32_t));
        x->mask = mask;
        x->bytes += (mask + 1) * sizeof(uint32_t);
        snap_get(&io, x->slots, (mask + 1) * sizeof(uint32_t));
    }
    x->used = used;
    if (nruns) {
        x->runs = ann_xcalloc(nruns, sizeof *x->runs);
        x->runs_cap = nruns;
    }
    uint64_t total = 0;
    for (size_t r = 0; r < nruns; r++) {
        ann_idx_run *run = &x->runs[r];
        run->lo = get64(&io);
        run->hi = get64(&io);
        run->n = get64(&io);
        uint64_t kind = get64(&io);
        if (io.bad || run->n == 0 || run->n > n || kind > 2)
            goto bad;
        x->nruns = r + 1;
        if (kind == 1) {
            if (!snap_fits(&io, run->n * sizeof(uint32_t)))
                goto bad;
            run->ids = ann_xmalloc(run->n * sizeof(uint32_t));
            x->bytes += run->n * sizeof(uint32_t);
            snap_get(&io, run->ids, run->n * sizeof(uint32_t));
        } else if (kind == 2) {
            uint64_t nseg = get64(&io);
            if (io.bad || nseg == 0 || nseg > run->n ||
                !snap_fits(&io, nseg * 2 * sizeof(uint32_t)))
                goto bad;
            run->segs = ann_xmalloc(nseg * 2 * sizeof(uint32_t));
            run->nseg = nseg;
            x->bytes += nseg * 2 * sizeof(uint32_t);
            snap_get(&io, run->segs, nseg * 2 * sizeof(uint32_t));
            if (!io.bad && run->segs[2 * nseg - 1] != run->n)
                goto bad;
        } else if (run->lo == 0 || run->hi < run->lo || run->hi > n ||
                   run->hi - run->lo + 1 != run->n) {
            goto bad;
        }
        total += run->n;
    }
    uint32_t crc = io.crc;
    if (io.bad || total != n || get64(&io) != crc || io.bad)
        goto bad;
    x->n = n;
    *data_end = end;
    rc = 1;
    goto done;
bad:
    ann_idx_release(x);
done:
    fclose(io.f);
    return rc;
}
