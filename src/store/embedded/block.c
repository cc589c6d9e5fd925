/* Sealed blocks: the format is described in block.h. */
#include "store/embedded/block.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "store/embedded/hash.h"
#include "domain/integrity.h"

#define FILTER_HDR 8u
#define FILTER_VERSION 1u
#define FILTER_K 2u

/* ---------- varints ---------- */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80)
        v >>= 7, n++;
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* A minimal-length LEB128 varint of at most 64 bits at p[*pos..len); false if there is none. */
static bool varint_get(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    uint64_t x = 0;
    size_t i = *pos;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (i >= len)
            return false;
        uint8_t c = p[i++];
        if (shift == 63 && c > 1)
            return false;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            if (c == 0 && shift > 0)
                return false; /* not minimal */
            *pos = i;
            *v = x;
            return true;
        }
    }
    return false;
}

static uint64_t zigzag(uint64_t v)
{
    return (v << 1) ^ (0 - (v >> 63));
}

static uint64_t unzigzag(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

/* ---------- header ---------- */

static void header_put(uint8_t *p, const ann_blk_header *h)
{
    memset(p, 0, ANN_BLK_HDR_LEN);
    ann_le32_put(p, ANN_BLK_MAGIC);
    ann_le32_put(p + 8, h->block_crc);
    ann_le32_put(p + 12, h->flags);
    ann_le64_put(p + 16, h->first_id);
    ann_le32_put(p + 24, h->count);
    ann_le32_put(p + 28, h->gen);
    ann_le64_put(p + 32, (uint64_t)h->min_time_ns);
    ann_le64_put(p + 40, (uint64_t)h->max_time_ns);
    ann_le64_put(p + 48, (uint64_t)h->min_insert_time_ns);
    ann_le64_put(p + 56, (uint64_t)h->max_insert_time_ns);
    ann_le64_put(p + 64, h->dat_end);
    const uint32_t u[14] = {h->meta_zlen, h->meta_raw,   h->iid_zlen,  h->iid_raw,  h->body_zlen,
                            h->body_raw,  h->filter_len, h->total_len, h->meta_crc, h->iid_crc,
                            h->body_crc,  h->filter_crc, h->salt_len,  h->salt_crc};
    for (int i = 0; i < 14; i++)
        ann_le32_put(p + 72 + 4 * i, u[i]);
    ann_le32_put(p + 4, ann_crc32c(0, p + 8, ANN_BLK_HDR_LEN - 8));
}

static int corrupt(ann_err *err, const char *what)
{
    return ann_err_set(err, ANN_ECORRUPT, "sealed block: %s", what);
}

/* A section's compressed length is within zstd's bound for its raw length. */
static bool zlen_ok(uint32_t zlen, uint32_t raw)
{
    return zlen > 0 && zlen <= ZSTD_COMPRESSBOUND((uint64_t)raw);
}

int ann_blk_header_decode(const uint8_t *p, size_t avail, ann_blk_header *h, ann_err *err)
{
    if (avail < ANN_BLK_HDR_LEN)
        return corrupt(err, "header truncated");
    if (ann_le32_get(p) != ANN_BLK_MAGIC)
        return corrupt(err, "bad magic");
    if (ann_le32_get(p + 4) != ann_crc32c(0, p + 8, ANN_BLK_HDR_LEN - 8))
        return corrupt(err, "header checksum mismatch");
    ann_blk_header x;
    x.block_crc = ann_le32_get(p + 8);
    x.flags = ann_le32_get(p + 12);
    x.first_id = ann_le64_get(p + 16);
    x.count = ann_le32_get(p + 24);
    x.gen = ann_le32_get(p + 28);
    x.min_time_ns = (int64_t)ann_le64_get(p + 32);
    x.max_time_ns = (int64_t)ann_le64_get(p + 40);
    x.min_insert_time_ns = (int64_t)ann_le64_get(p + 48);
    x.max_insert_time_ns = (int64_t)ann_le64_get(p + 56);
    x.dat_end = ann_le64_get(p + 64);
    uint32_t *u[14] = {&x.meta_zlen, &x.meta_raw,   &x.iid_zlen,  &x.iid_raw,  &x.body_zlen,
                       &x.body_raw,  &x.filter_len, &x.total_len, &x.meta_crc, &x.iid_crc,
                       &x.body_crc,  &x.filter_crc, &x.salt_len,  &x.salt_crc};
    for (int i = 0; i < 14; i++)
        *u[i] = ann_le32_get(p + 72 + 4 * i);

    if (x.flags & ~ANN_BLK_DEAD)
        return corrupt(err, "reserved bits set");
    if (x.count == 0 || x.count > ANN_BLK_MAX_COUNT)
        return corrupt(err, "entry count out of range");
    if (x.first_id == 0 || x.first_id > UINT64_MAX - (x.count - 1))
        return corrupt(err, "first id out of range");
    if (x.min_time_ns > x.max_time_ns || x.min_insert_time_ns > x.max_insert_time_ns)
        return corrupt(err, "time range inverted");
    uint64_t n = x.count;
    if (x.meta_raw < 4 * n || x.meta_raw > ANN_BLK_META_MAX_PER_ENTRY * n || x.iid_raw < 2 * n ||
        x.iid_raw > ANN_BLK_MAX_RAW || x.body_raw < n || x.body_raw > ANN_BLK_MAX_RAW)
        return corrupt(err, "section size out of range");
    if (!zlen_ok(x.meta_zlen, x.meta_raw) || !zlen_ok(x.iid_zlen, x.iid_raw) ||
        !zlen_ok(x.body_zlen, x.body_raw))
        return corrupt(err, "compressed size out of range");
    if (x.filter_len != 0 &&
        (x.filter_len < FILTER_HDR || x.filter_len > ANN_BLK_MAX_FILTER || x.filter_len % 8 != 0))
        return corrupt(err, "filter size out of range");
    uint64_t bm = (n + 7) / 8;
    if (x.salt_len != 0 &&
        (x.salt_len < bm || (x.salt_len - bm) % 32 != 0 || (x.salt_len - bm) / 32 > n))
        return corrupt(err, "salt section size out of range");
    if ((uint64_t)ANN_BLK_HDR_LEN + x.meta_zlen + x.iid_zlen + x.body_zlen + x.salt_len +
            x.filter_len !=
        x.total_len)
        return corrupt(err, "section sizes do not add up to the block's length");
    *h = x;
    return 0;
}

int ann_blk_check(const uint8_t *block, size_t len, const ann_blk_header *h, ann_err *err)
{
    if (len < h->total_len)
        return corrupt(err, "block truncated");
    if (ann_crc32c(0, block + ANN_BLK_HDR_LEN, h->total_len - ANN_BLK_HDR_LEN) != h->block_crc)
        return ann_err_set(err, ANN_ECORRUPT,
                           "sealed block %" PRIu64 "+%" PRIu32 ": checksum mismatch", h->first_id,
                           h->count);
    return 0;
}

/* ---------- sections ---------- */

typedef struct section {
    const char *name;
    uint64_t off;
    uint32_t zlen, raw, crc;
} section;

static section sec_meta(const ann_blk_header *h)
{
    return (section){"meta", ANN_BLK_HDR_LEN, h->meta_zlen, h->meta_raw, h->meta_crc};
}
static section sec_iid(const ann_blk_header *h)
{
    return (section){"iid", ANN_BLK_HDR_LEN + (uint64_t)h->meta_zlen, h->iid_zlen, h->iid_raw,
                     h->iid_crc};
}
static section sec_body(const ann_blk_header *h)
{
    return (section){"body", ann_blk_index_end(h), h->body_zlen, h->body_raw, h->body_crc};
}

static int sec_fail(ann_err *err, const ann_blk_header *h, const section *s, const char *what)
{
    return ann_err_set(err, ANN_ECORRUPT, "sealed block %" PRIu64 "+%" PRIu32 ": %s section: %s",
                       h->first_id, h->count, s->name, what);
}

/* One output column of a decoder: element i is at base + i * stride. */
typedef struct col {
    void *base;
    size_t stride;
} col;

static void col_put(col c, size_t i, const void *v, size_t size)
{
    memcpy((char *)c.base + i * c.stride, v, size);
}

static ZSTD_DCtx *dctx_new(void)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        abort(); /* allocation failure, as ann_xmalloc */
    ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, ANN_BLK_WINDOW_LOG);
    return d;
}

/*
 * Checks section s of the block (len bytes readable) and decompresses it into out (its
 * contents replaced). out grows only as the frame really produces output, never beyond
 * s->raw, so a header that lies about the raw size costs no large allocation.
 */
static int sec_unpack(ZSTD_DCtx *dctx, const uint8_t *block, size_t len, const ann_blk_header *h,
                      const section *s, ann_buf *out, ann_err *err)
{
    if (h->flags & ANN_BLK_DEAD)
        return ann_err_set(err, ANN_EINTERNAL,
                           "sealed block %" PRIu64 "+%" PRIu32 " is dead: nothing to decode",
                           h->first_id, h->count);
    if (len < s->off + s->zlen)
        return sec_fail(err, h, s, "truncated");
    const uint8_t *src = block + s->off;
    if (ann_crc32c(0, src, s->zlen) != s->crc)
        return sec_fail(err, h, s, "checksum mismatch");
    if (ZSTD_getFrameContentSize(src, s->zlen) != s->raw)
        return sec_fail(err, h, s, "zstd frame does not declare the raw size");

    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {src, s->zlen, 0};
    const char *why = NULL;
    out->len = 0;
    for (;;) {
        if (out->len == out->cap && out->cap < s->raw) {
            size_t cap = out->cap ? out->cap * 2 : (size_t)s->zlen * 4 + 4096;
            cap = cap < s->raw ? cap : s->raw;
            out->data = ann_xrealloc(out->data, cap);
            out->cap = cap;
        }
        ZSTD_outBuffer ob = {out->data, out->cap < s->raw ? out->cap : s->raw, out->len};
        size_t in0 = in.pos, out0 = ob.pos;
        size_t ret = ZSTD_decompressStream(dctx, &ob, &in);
        out->len = ob.pos;
        if (ZSTD_isError(ret)) {
            why = ZSTD_getErrorName(ret);
            break;
        }
        if (ret == 0) { /* the frame is complete */
            if (in.pos != in.size)
                why = "trailing bytes";
            else if (out->len != s->raw)
                why = "shorter than declared";
            break;
        }
        if (in.pos == in0 && ob.pos == out0) {
            why = ob.pos == s->raw ? "longer than declared" : "zstd frame truncated";
            break;
        }
    }
    return why ? sec_fail(err, h, s, why) : 0;
}

/* Parses a decompressed sec_meta into four columns (time, insert time, severity, flags). */
static int meta_parse(const ann_buf *raw, const ann_blk_header *h, const col k[4], ann_err *err)
{
    section s = sec_meta(h);
    size_t pos = 0, n = h->count;
    uint64_t v;
    for (int c = 0; c < 2; c++) { /* times: wrapping deltas, the first from 0 */
        uint64_t prev = 0;
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (size_t i = 0; i < n; i++) {
            if (!varint_get(raw->data, raw->len, &pos, &v))
                return sec_fail(err, h, &s, "bad time varint");
            prev += unzigzag(v);
            int64_t t = (int64_t)prev;
            col_put(k[c], i, &t, sizeof t);
            lo = t < lo ? t : lo;
            hi = t > hi ? t : hi;
        }
        if (c == 0 ? (lo != h->min_time_ns || hi != h->max_time_ns)
                   : (lo != h->min_insert_time_ns || hi != h->max_insert_time_ns))
            return sec_fail(err, h, &s, "times disagree with the header");
    }
    for (int c = 2; c < 4; c++) { /* severity (zigzag), flags: 32 bits each */
        for (size_t i = 0; i < n; i++) {
            if (!varint_get(raw->data, raw->len, &pos, &v) || v > UINT32_MAX)
                return sec_fail(err, h, &s, c == 2 ? "bad severity" : "bad flags");
            uint32_t u = (uint32_t)(c == 2 ? unzigzag(v) : v);
            col_put(k[c], i, &u, sizeof u);
        }
    }
    if (pos != raw->len)
        return sec_fail(err, h, &s, "trailing bytes");
    return 0;
}

/* Parses a decompressed section of count (varint length >= min, bytes) items into the
 * columns ptr (const uint8_t * into raw) and len (size_t). */
static int items_parse(const ann_buf *raw, const ann_blk_header *h, const section *s, size_t min,
                       col ptr, col len, ann_err *err)
{
    size_t pos = 0;
    uint64_t v;
    for (size_t i = 0; i < h->count; i++) {
        if (!varint_get(raw->data, raw->len, &pos, &v) || v < min || v > raw->len - pos)
            return sec_fail(err, h, s, "bad item length");
        const uint8_t *p = raw->data + pos;
        size_t n = (size_t)v;
        col_put(ptr, i, &p, sizeof p);
        col_put(len, i, &n, sizeof n);
        pos += n;
    }
    if (pos != raw->len)
        return sec_fail(err, h, s, "trailing bytes");
    return 0;
}

int ann_blk_decode_meta(const uint8_t *block, size_t len, const ann_blk_header *h, int64_t *time_ns,
                        int64_t *insert_time_ns, int32_t *severity, uint32_t *flags, ann_err *err)
{
    ann_buf raw = ANN_BUF_INIT;
    section s = sec_meta(h);
    const col k[4] = {{time_ns, sizeof *time_ns},
                      {insert_time_ns, sizeof *insert_time_ns},
                      {severity, sizeof *severity},
                      {flags, sizeof *flags}};
    ZSTD_DCtx *d = dctx_new();
    int rc = sec_unpack(d, block, len, h, &s, &raw, err);
    if (rc == 0)
        rc = meta_parse(&raw, h, k, err);
    ZSTD_freeDCtx(d);
    ann_buf_release(&raw);
    return rc;
}

int ann_blk_decode_iids(const uint8_t *block, size_t len, const ann_blk_header *h, ann_buf *raw,
                        const char **iid, size_t *iid_len, ann_err *err)
{
    section s = sec_iid(h);
    ZSTD_DCtx *d = dctx_new();
    int rc = sec_unpack(d, block, len, h, &s, raw, err);
    ZSTD_freeDCtx(d);
    if (rc != 0)
        return -1;
    return items_parse(raw, h, &s, 1, (col){iid, sizeof *iid}, (col){iid_len, sizeof *iid_len},
                       err);
}

void ann_blk_view_release(ann_blk_view *v)
{
    free(v->e);
    ann_buf_release(&v->iids);
    ann_buf_release(&v->bodies);
    ann_buf_release(&v->salted);
    memset(v, 0, sizeof *v);
}

/* sec_salt (h->salt_len > 0): checks it, then gives each entry marked in the bitmap its
 * salt field back, the bodies copied into v->salted. */
static int salts_put_back(const uint8_t *block, size_t len, const ann_blk_header *h,
                          ann_blk_view *v, ann_err *err)
{
    section s = {"salt", ann_blk_index_end(h) + h->body_zlen, h->salt_len, h->salt_len,
                 h->salt_crc};
    if (len < s.off + s.zlen)
        return sec_fail(err, h, &s, "truncated");
    const uint8_t *p = block + s.off;
    if (ann_crc32c(0, p, s.zlen) != s.crc)
        return sec_fail(err, h, &s, "checksum mismatch");
    size_t n = h->count, bm = (n + 7) / 8, k = 0;
    for (size_t i = 0; i < n; i++)
        k += (p[i >> 3] >> (i & 7)) & 1;
    if ((n & 7) && (p[bm - 1] >> (n & 7)) != 0)
        return sec_fail(err, h, &s, "bits set past the last entry");
    if (k * 32 != s.zlen - bm)
        return sec_fail(err, h, &s, "salt count disagrees with the bitmap");
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += v->e[i].body_len;
    ann_buf_reserve(&v->salted, total + k * ANN_INTEGRITY_FIELD_LEN + 1);
    const uint8_t *salt = p + bm;
    for (size_t i = 0; i < n; i++) {
        ann_entry *e = &v->e[i];
        bool has = (p[i >> 3] >> (i & 7)) & 1;
        if (has && (e->flags & ANN_ENTRY_REDACTED))
            return sec_fail(err, h, &s, "a redacted entry has a salt");
        uint8_t *dst = v->salted.data + v->salted.len;
        if (e->body_len)
            memcpy(dst, e->body, e->body_len);
        v->salted.len += e->body_len;
        if (has) {
            ann_integrity_field(ANN_INTEGRITY_SALT, salt, v->salted.data + v->salted.len);
            v->salted.len += ANN_INTEGRITY_FIELD_LEN;
            e->body_len += ANN_INTEGRITY_FIELD_LEN;
            salt += 32;
        }
        e->body = dst;
    }
    return 0;
}

int ann_blk_view_open(const uint8_t *block, size_t len, const ann_blk_header *h, ann_blk_view *v,
                      ann_err *err)
{
    memset(v, 0, sizeof *v);
    ann_buf meta = ANN_BUF_INIT;
    section sm = sec_meta(h), si = sec_iid(h), sb = sec_body(h);
    /* Every section is decompressed (and so backed by real data) before the count-sized
     * entry array is allocated. */
    ZSTD_DCtx *d = dctx_new();
    int rc = sec_unpack(d, block, len, h, &sm, &meta, err);
    if (rc == 0)
        rc = sec_unpack(d, block, len, h, &si, &v->iids, err);
    if (rc == 0)
        rc = sec_unpack(d, block, len, h, &sb, &v->bodies, err);
    ZSTD_freeDCtx(d);
    if (rc != 0)
        goto fail;
    size_t n = h->count, es = sizeof *v->e;
    v->e = ann_xcalloc(n, es);
    const col k[4] = {{&v->e->time_ns, es},
                      {&v->e->insert_time_ns, es},
                      {&v->e->severity, es},
                      {&v->e->flags, es}};
    if (meta_parse(&meta, h, k, err) != 0 ||
        items_parse(&v->iids, h, &si, 1, (col){&v->e->insert_id, es},
                    (col){&v->e->insert_id_len, es}, err) != 0 ||
        items_parse(&v->bodies, h, &sb, 0, (col){&v->e->body, es}, (col){&v->e->body_len, es},
                    err) != 0)
        goto fail;
    if (h->salt_len && salts_put_back(block, len, h, v, err) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        v->e[i].entry_id = h->first_id + i;
        if ((v->e[i].flags & ANN_ENTRY_REDACTED) && v->e[i].body_len &&
            !ann_integrity_is_hash_field(v->e[i].body, v->e[i].body_len)) {
            sec_fail(err, h, &sb, "a redacted entry has a body");
            goto fail;
        }
    }
    ann_buf_release(&meta);
    v->h = *h;
    v->n = n;
    return 0;
fail:
    ann_buf_release(&meta);
    ann_blk_view_release(v);
    return -1;
}

/* ---------- the filter ---------- */

static inline uint8_t fold(uint8_t c)
{
    return (uint8_t)((unsigned)(c - 'A') < 26u ? c + 32 : c);
}

static inline void tri_hash(uint32_t t, uint32_t *h1, uint32_t *h2)
{
    uint64_t x = (uint64_t)t * 0x9E3779B97F4A7C15u;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9u;
    x ^= x >> 29;
    *h1 = (uint32_t)x;
    *h2 = (uint32_t)(x >> 32);
}

/* Bit i of the k bits of a trigram in a filter of m bits (m < 2^32). */
static inline uint64_t tri_bit(uint32_t h1, uint32_t h2, unsigned i, uint64_t m)
{
    return ((uint64_t)(uint32_t)(h1 + i * h2) * m) >> 32;
}

/* Sets the k bits of trigram t in a filter of m bits. */
static void bloom_add(uint8_t *bits, uint64_t m, uint32_t t)
{
    uint32_t h1, h2;
    tri_hash(t, &h1, &h2);
    for (unsigned i = 0; i < FILTER_K; i++) {
        uint64_t b = tri_bit(h1, h2, i, m);
        bits[b >> 3] |= (uint8_t)(1u << (b & 7));
    }
}

/*
 * The distinct folded trigrams of a block: a 2^24-bit map for large inputs, an
 * open-addressing table of t + 1 (0: empty) at most half full for small ones (so a small
 * block does not pay for clearing 2 MiB).
 */
#define TRI_SMALL_INPUT (64u << 10) /* string bytes up to which the table is used */

typedef struct tri_set {
    uint64_t *bits;
    uint32_t *slots;
    unsigned shift; /* 32 - log2(slots) */
    size_t n;       /* distinct trigrams */
} tri_set;

static void tri_init(tri_set *ts, uint64_t input_bytes)
{
    memset(ts, 0, sizeof *ts);
    if (input_bytes > TRI_SMALL_INPUT) {
        ts->bits = ann_xcalloc((size_t)1 << 18, sizeof(uint64_t));
        return;
    }
    unsigned lg = 4;
    while (((uint64_t)1 << lg) < 2 * input_bytes)
        lg++;
    ts->slots = ann_xcalloc((size_t)1 << lg, sizeof(uint32_t));
    ts->shift = 32 - lg;
}

/* Adds t to the table (small inputs). */
static void tri_insert_slot(tri_set *ts, uint32_t t)
{
    size_t mask = ((size_t)1 << (32 - ts->shift)) - 1, i = (t * 0x9E3779B1u) >> ts->shift;
    while (ts->slots[i] && ts->slots[i] != t + 1)
        i = (i + 1) & mask;
    if (!ts->slots[i]) {
        ts->slots[i] = t + 1;
        ts->n++;
    }
}

/* Adds every member to a filter of m bits, and frees the set. */
static void tri_drain(tri_set *ts, uint8_t *bits, uint64_t m)
{
    if (ts->bits) {
        for (size_t w = 0; w < ((size_t)1 << 18); w++)
            for (uint64_t x = ts->bits[w]; x; x &= x - 1)
                bloom_add(bits, m, (uint32_t)(w << 6 | (unsigned)__builtin_ctzll(x)));
    } else {
        for (size_t i = 0; i < ((size_t)1 << (32 - ts->shift)); i++)
            if (ts->slots[i])
                bloom_add(bits, m, ts->slots[i] - 1);
    }
    free(ts->bits);
    free(ts->slots);
}

static int tri_add_string(ann_body_kind kind, const uint8_t *p, size_t n, void *ud)
{
    (void)kind;
    tri_set *ts = ud;
    if (n < 3)
        return 0;
    uint32_t t = (uint32_t)fold(p[0]) << 8 | fold(p[1]);
    if (!ts->bits) {
        for (size_t i = 2; i < n; i++) {
            t = (t << 8 | fold(p[i])) & 0xFFFFFFu;
            tri_insert_slot(ts, t);
        }
        return 0;
    }
    uint64_t *bits = ts->bits;
    size_t added = 0; /* counted here: ts->n would be reloaded after every store */
    for (size_t i = 2; i < n; i++) {
        t = (t << 8 | fold(p[i])) & 0xFFFFFFu;
        uint64_t bit = (uint64_t)1 << (t & 63), w = bits[t >> 6];
        added += !(w & bit);
        bits[t >> 6] = w | bit;
    }
    ts->n += added;
    return 0;
}

static bool entry_redacted(const ann_entry *e)
{
    return (e->flags & ANN_ENTRY_REDACTED) != 0;
}

/* Appends the filter of the n entries to out; returns its length. */
static uint32_t filter_build(const ann_entry *e, size_t n, ann_buf *out)
{
    uint64_t input = 0;
    for (size_t i = 0; i < n; i++)
        input += entry_redacted(&e[i]) ? 0 : e[i].body_len;
    tri_set ts;
    tri_init(&ts, input);
    for (size_t i = 0; i < n; i++)
        if (!entry_redacted(&e[i]))
            ann_body_strings(e[i].body, e[i].body_len, tri_add_string, &ts);
    uint64_t m = ((uint64_t)ts.n * ANN_BLK_FILTER_BITS + 63) / 64 * 64;
    size_t len = FILTER_HDR + (size_t)(m / 8);
    ann_buf_reserve(out, len);
    uint8_t *f = out->data + out->len;
    memset(f, 0, len);
    f[0] = FILTER_VERSION;
    f[1] = FILTER_K;
    ann_le32_put(f + 4, (uint32_t)ts.n);
    tri_drain(&ts, f + FILTER_HDR, m);
    out->len += len;
    return (uint32_t)len;
}

bool ann_blk_filter_may_match(const uint8_t *f, size_t len, const ann_matcher *q)
{
    if (q->n < 3 || len < FILTER_HDR || f[0] != FILTER_VERSION || f[1] == 0 || f[1] > 16)
        return true;
    uint64_t m = (uint64_t)(len - FILTER_HDR) * 8;
    if (m == 0)
        return ann_le32_get(f + 4) != 0; /* no trigram in the block: nothing of 3+ bytes */
    if (m > UINT32_MAX)
        return true; /* not a filter this codec writes */
    const uint8_t *bits = f + FILTER_HDR;
    uint32_t t = (uint32_t)fold(q->q[0]) << 8 | fold(q->q[1]);
    for (size_t i = 2; i < q->n; i++) {
        t = (t << 8 | fold(q->q[i])) & 0xFFFFFFu;
        uint32_t h1, h2;
        tri_hash(t, &h1, &h2);
        for (unsigned j = 0; j < f[1]; j++) {
            uint64_t b = tri_bit(h1, h2, j, m);
            if (!(bits[b >> 3] & (1u << (b & 7))))
                return false;
        }
    }
    return true;
}

int ann_blk_filter_check(const uint8_t *filter, const ann_blk_header *h, ann_err *err)
{
    if (ann_crc32c(0, filter, h->filter_len) != h->filter_crc)
        return ann_err_set(err, ANN_ECORRUPT,
                           "sealed block %" PRIu64 "+%" PRIu32 ": filter checksum mismatch",
                           h->first_id, h->count);
    return 0;
}

/* ---------- encoding ---------- */

/* A redacted entry keeps only its body_hash field (domain/integrity.h), when it has one. */
static size_t body_len_of(const ann_entry *e)
{
    if (entry_redacted(e))
        return ann_integrity_is_hash_field(e->body, e->body_len) ? e->body_len : 0;
    return e->body_len;
}

/* True when a live entry's body ends with its salt field, exactly as stores write it (the
 * decoder rebuilds that field from the salt alone). */
static bool salt_at_end(const ann_entry *e)
{
    if (entry_redacted(e) || e->body_len < ANN_INTEGRITY_FIELD_LEN)
        return false;
    const uint8_t *f = e->body + e->body_len - ANN_INTEGRITY_FIELD_LEN;
    uint8_t again[ANN_INTEGRITY_FIELD_LEN];
    ann_integrity_field(ANN_INTEGRITY_SALT, f + ANN_INTEGRITY_FIELD_LEN - 32, again);
    return memcmp(f, again, sizeof again) == 0;
}

/* Writes sec_meta's raw bytes to p (room for ANN_BLK_META_MAX_PER_ENTRY * n); returns the
 * length and sets the header's time ranges. */
static size_t meta_build(const ann_entry *e, size_t n, uint8_t *p, ann_blk_header *h)
{
    uint8_t *start = p;
    for (int c = 0; c < 2; c++) {
        uint64_t prev = 0;
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (size_t i = 0; i < n; i++) {
            int64_t t = c == 0 ? e[i].time_ns : e[i].insert_time_ns;
            p = varint_put(p, zigzag((uint64_t)t - prev));
            prev = (uint64_t)t;
            lo = t < lo ? t : lo;
            hi = t > hi ? t : hi;
        }
        if (c == 0)
            h->min_time_ns = lo, h->max_time_ns = hi;
        else
            h->min_insert_time_ns = lo, h->max_insert_time_ns = hi;
    }
    for (size_t i = 0; i < n; i++)
        p = varint_put(p, zigzag((uint64_t)(int64_t)e[i].severity) & UINT32_MAX);
    for (size_t i = 0; i < n; i++)
        p = varint_put(p, e[i].flags);
    return (size_t)(p - start);
}

/* Compresses src[0..n) as one zstd frame appended to out. */
static int sec_pack(ZSTD_CCtx *cctx, const uint8_t *src, size_t n, ann_buf *out, uint32_t *zlen,
                    uint32_t *raw, uint32_t *crc)
{
    size_t bound = ZSTD_compressBound(n);
    ann_buf_reserve(out, bound);
    size_t z = ZSTD_compress2(cctx, out->data + out->len, bound, src, n);
    if (ZSTD_isError(z))
        return -1;
    *crc = ann_crc32c(0, out->data + out->len, z);
    *zlen = (uint32_t)z;
    *raw = (uint32_t)n;
    out->len += z;
    return 0;
}

int ann_blk_encode(const ann_entry *e, size_t n, uint64_t first_id, uint32_t gen, uint64_t dat_end,
                   int zstd_level, ann_buf *out, ann_err *err)
{
    if (n == 0 || n > ANN_BLK_MAX_COUNT)
        return ann_err_set(err, ANN_EINVAL, "sealed block: %zu entries (1..%u)", n,
                           ANN_BLK_MAX_COUNT);
    if (first_id == 0 || first_id > UINT64_MAX - (n - 1))
        return ann_err_set(err, ANN_EINVAL, "sealed block: first id %" PRIu64 " out of range",
                           first_id);
    if (zstd_level == 0)
        zstd_level = 3;
    if (zstd_level < ZSTD_minCLevel() || zstd_level > ZSTD_maxCLevel())
        return ann_err_set(err, ANN_EINVAL, "sealed block: zstd level %d out of range", zstd_level);
    uint64_t iid_raw = 0, body_raw = 0, nsalt = 0;
    for (size_t i = 0; i < n; i++) {
        size_t bl = body_len_of(&e[i]);
        if (e[i].insert_id_len == 0 || !e[i].insert_id || (bl && !e[i].body))
            return ann_err_set(err, ANN_EINVAL, "sealed block: entry %zu: empty insert_id", i);
        iid_raw += varint_len(e[i].insert_id_len) + e[i].insert_id_len;
        if (salt_at_end(&e[i]))
            bl -= ANN_INTEGRITY_FIELD_LEN, nsalt++;
        body_raw += varint_len(bl) + bl;
    }
    if (iid_raw > ANN_BLK_MAX_RAW || body_raw > ANN_BLK_MAX_RAW)
        return ann_err_set(err, ANN_EINVAL,
                           "sealed block: %zu entries hold %" PRIu64 " bytes of insert ids and "
                           "%" PRIu64 " of bodies (at most %u each)",
                           n, iid_raw, body_raw, ANN_BLK_MAX_RAW);

    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (!cctx)
        abort();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, zstd_level);
    /* The window the decoders accept (zstd shrinks it to a smaller section's size). */
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, ANN_BLK_WINDOW_LOG);

    size_t meta_max = ANN_BLK_META_MAX_PER_ENTRY * n, smax = meta_max;
    smax = iid_raw > smax ? iid_raw : smax;
    smax = body_raw > smax ? body_raw : smax;
    uint8_t *scratch = ann_xmalloc(smax), *p;
    ann_blk_header h = {.first_id = first_id, .count = (uint32_t)n, .gen = gen, .dat_end = dat_end};
    size_t start = out->len;
    ann_buf_reserve(out, ANN_BLK_HDR_LEN);
    out->len += ANN_BLK_HDR_LEN;

    int rc = sec_pack(cctx, scratch, meta_build(e, n, scratch, &h), out, &h.meta_zlen, &h.meta_raw,
                      &h.meta_crc);
    p = scratch;
    for (size_t i = 0; i < n; i++) {
        p = varint_put(p, e[i].insert_id_len);
        memcpy(p, e[i].insert_id, e[i].insert_id_len);
        p += e[i].insert_id_len;
    }
    if (rc == 0)
        rc = sec_pack(cctx, scratch, (size_t)(p - scratch), out, &h.iid_zlen, &h.iid_raw,
                      &h.iid_crc);
    /* sec_salt: the bitmap, then the salts, straight into out after sec_body. */
    size_t bm = (n + 7) / 8, salt_len = nsalt ? bm + 32 * (size_t)nsalt : 0;
    uint8_t *salts = ann_xcalloc(salt_len ? salt_len : 1, 1), *sp = salts + bm;
    p = scratch;
    for (size_t i = 0; i < n; i++) {
        size_t bl = body_len_of(&e[i]);
        if (nsalt && salt_at_end(&e[i])) {
            bl -= ANN_INTEGRITY_FIELD_LEN;
            salts[i >> 3] |= (uint8_t)(1u << (i & 7));
            memcpy(sp, e[i].body + e[i].body_len - 32, 32);
            sp += 32;
        }
        p = varint_put(p, bl);
        if (bl)
            memcpy(p, e[i].body, bl);
        p += bl;
    }
    if (rc == 0)
        rc = sec_pack(cctx, scratch, (size_t)(p - scratch), out, &h.body_zlen, &h.body_raw,
                      &h.body_crc);
    ZSTD_freeCCtx(cctx);
    free(scratch);
    if (rc != 0) {
        free(salts);
        out->len = start;
        return ann_err_set(err, ANN_EINTERNAL, "sealed block: zstd compression failed");
    }
    if (salt_len) {
        ann_buf_add(out, salts, salt_len);
        h.salt_len = (uint32_t)salt_len;
        h.salt_crc = ann_crc32c(0, salts, salt_len);
    }
    free(salts);
    size_t foff = out->len;
    h.filter_len = filter_build(e, n, out);
    h.filter_crc = ann_crc32c(0, out->data + foff, h.filter_len);
    h.total_len = (uint32_t)(out->len - start);
    h.block_crc = ann_crc32c(0, out->data + start + ANN_BLK_HDR_LEN, h.total_len - ANN_BLK_HDR_LEN);
    header_put(out->data + start, &h);
    return 0;
}

/* ---------- dead blocks ---------- */

static uint32_t crc_zeros(uint32_t crc, uint64_t n)
{
    static const uint8_t zeros[4096];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        crc = ann_crc32c(crc, zeros, k);
        n -= k;
    }
    return crc;
}

void ann_blk_make_dead(ann_blk_header *h, uint8_t hdr[ANN_BLK_HDR_LEN])
{
    h->flags |= ANN_BLK_DEAD;
    h->meta_crc = crc_zeros(0, h->meta_zlen);
    h->iid_crc = crc_zeros(0, h->iid_zlen);
    h->body_crc = crc_zeros(0, h->body_zlen);
    h->salt_crc = crc_zeros(0, h->salt_len);
    h->filter_crc = crc_zeros(0, h->filter_len);
    h->block_crc = crc_zeros(0, h->total_len - ANN_BLK_HDR_LEN);
    header_put(hdr, h);
}

void ann_blk_zero(uint8_t *block, ann_blk_header *h)
{
    memset(block + ANN_BLK_HDR_LEN, 0, h->total_len - ANN_BLK_HDR_LEN);
    ann_blk_make_dead(h, block);
}
