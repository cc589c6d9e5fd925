/*
 * Fuzz target: the sealed-block decoders (store/embedded/block.h) on untrusted bytes.
 *
 * Every input is decoded twice: as it is (the CRCs stop almost everything), and as a copy
 * whose CRCs were recomputed from its own header, so the fuzzer reaches the header
 * checks, zstd frames, varints and lengths behind them. Each pass runs header decode, the
 * whole-block check, the view, the two loader decoders and the filter. An input whose first
 * byte is 'E' is also encoded (its bytes cut into text payloads and label values): the
 * view must give back every field and every substring of every string must pass the filter.
 *
 * Built as a libFuzzer target with clang (-DANN_FUZZ=ON); with any compiler, the replay
 * driver (fuzz/replay.c) runs the kept corpus as a unit test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk_reseal.h"
#include "store/embedded/block.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void query(const uint8_t *filter, size_t len, const uint8_t *q, size_t n, bool icase)
{
    ann_matcher m;
    if (n == 0 || n > ANN_QUERY_MAX)
        return;
    ann_matcher_init(&m, q, n, icase);
    (void)ann_blk_filter_may_match(filter, len, &m);
}

static void decode_all(const uint8_t *p, size_t size)
{
    ann_blk_header h;
    ann_blk_view v;
    ann_err err;
    if (ann_blk_header_decode(p, size, &h, &err) != 0)
        return;
    (void)ann_blk_check(p, size, &h, &err);
    if (size >= h.total_len) {
        const uint8_t *f = p + ann_blk_filter_off(&h);
        (void)ann_blk_filter_check(f, &h, &err);
        query(f, h.filter_len, p + 8, 8, false);
        query(f, h.filter_len, p + size - 3, 3, true);
    }
    if (ann_blk_view_open(p, size, &h, &v, &err) != 0)
        return;
    /* The view succeeded, so the count is backed by real data: the loaders may use it. */
    size_t n = h.count;
    int64_t *t = malloc(n * 8), *it = malloc(n * 8);
    int32_t *sev = malloc(n * 4);
    uint32_t *fl = malloc(n * 4);
    const char **iid = malloc(n * sizeof *iid);
    size_t *iid_len = malloc(n * sizeof *iid_len);
    ann_buf raw = ANN_BUF_INIT;
    if (ann_blk_decode_meta(p, size, &h, t, it, sev, fl, &err) != 0 ||
        ann_blk_decode_iids(p, size, &h, &raw, iid, iid_len, &err) != 0)
        abort(); /* the view decoded the same sections */
    for (size_t i = 0; i < n; i++)
        if (t[i] != v.e[i].time_ns || it[i] != v.e[i].insert_time_ns || sev[i] != v.e[i].severity ||
            fl[i] != v.e[i].flags || iid_len[i] != v.e[i].insert_id_len ||
            memcmp(iid[i], v.e[i].insert_id, iid_len[i]))
            abort();
    ann_buf_release(&raw);
    free(t), free(it), free(sev), free(fl), free(iid), free(iid_len);
    ann_blk_view_release(&v);
}

/* The copy with every CRC made right (lengths taken from its header). */
static void decode_resealed(const uint8_t *data, size_t size)
{
    if (size < ANN_BLK_HDR_LEN)
        return;
    uint8_t *p = malloc(size);
    memcpy(p, data, size);
    blk_reseal(p, size);
    decode_all(p, size);
    free(p);
}

/* Mode 'E': entries from the input, encoded, decoded, compared; the filter finds them. */
typedef struct filt {
    const uint8_t *p;
    size_t len;
} filt;

static int every_substring_passes(ann_body_kind kind, const uint8_t *s, size_t n, void *ud)
{
    (void)kind;
    const filt *f = ud;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 1; k <= 8 && i + k <= n; k++) {
            ann_matcher m;
            ann_matcher_init(&m, s + i, k, (i + k) % 2);
            if (!ann_blk_filter_may_match(f->p, f->len, &m))
                abort(); /* a false negative */
        }
    return 0;
}

static void encode_roundtrip(const uint8_t *data, size_t size)
{
    ann_entry e[64];
    ann_buf bodies[64];
    char iids[64][24];
    size_t n = 0, pos = 1;
    while (pos < size && n < 64) {
        size_t len = data[pos++] % 64;
        len = len <= size - pos ? len : size - pos;
        ann_buf *b = &bodies[n];
        *b = (ann_buf)ANN_BUF_INIT;
        if (n % 3 == 1) { /* a label then the text */
            ann_buf l = ANN_BUF_INIT;
            ann_buf_add_len_field(&l, 1, "k", 1);
            ann_buf_add_len_field(&l, 2, data + pos, len / 2);
            ann_buf_add_len_field(b, 23, l.data, l.len);
            ann_buf_release(&l);
        }
        ann_buf_add_len_field(b, 30, data + pos, len);
        int il = snprintf(iids[n], sizeof iids[n], "i%zu", n);
        e[n] = (ann_entry){.time_ns = (int64_t)(((uint64_t)data[pos - 1] << 56) - n),
                           .insert_time_ns = (int64_t)len,
                           .severity = (int32_t)data[pos - 1] - 100,
                           .flags = data[pos - 1] % 7 == 0 ? ANN_ENTRY_REDACTED : 0,
                           .insert_id = iids[n],
                           .insert_id_len = (size_t)il,
                           .body = b->data,
                           .body_len = b->len};
        pos += len;
        n++;
    }
    ann_buf out = ANN_BUF_INIT;
    ann_blk_header h;
    ann_blk_view v;
    ann_err err;
    if (n == 0)
        return;
    if (ann_blk_encode(e, n, 1, 0, 0, 1, &out, &err) != 0 ||
        ann_blk_header_decode(out.data, out.len, &h, &err) != 0 ||
        ann_blk_check(out.data, out.len, &h, &err) != 0 ||
        ann_blk_view_open(out.data, out.len, &h, &v, &err) != 0 || v.n != n)
        abort();
    filt f = {out.data + ann_blk_filter_off(&h), h.filter_len};
    for (size_t i = 0; i < n; i++) {
        bool red = e[i].flags & ANN_ENTRY_REDACTED;
        if (v.e[i].time_ns != e[i].time_ns || v.e[i].severity != e[i].severity ||
            v.e[i].body_len != (red ? 0 : e[i].body_len) ||
            (!red && memcmp(v.e[i].body, e[i].body, e[i].body_len)))
            abort();
        if (!red)
            ann_body_strings(e[i].body, e[i].body_len, every_substring_passes, &f);
        ann_buf_release(&bodies[i]);
    }
    ann_blk_view_release(&v);
    ann_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_all(data, size);
    decode_resealed(data, size);
    if (size > 0 && data[0] == 'E')
        encode_roundtrip(data, size);
    return 0;
}
