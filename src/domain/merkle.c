#include "domain/merkle.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "domain/limits.h" /* ANN_MAX_LABELS */
#include "domain/pbread.h"

void ann_merkle_leaf_hash(const uint8_t *in, size_t n, uint8_t out[ANN_HASH_LEN])
{
    SHA256_CTX c;
    static const uint8_t zero = 0x00;
    /* The one-shot SHA256() fetches an implementation per call in OpenSSL 3; the low-level
     * context does not, and a log hashes every entry it takes. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    SHA256_Init(&c);
    SHA256_Update(&c, &zero, 1);
    SHA256_Update(&c, in, n);
    SHA256_Final(out, &c);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}

void ann_merkle_node_hash(const uint8_t left[ANN_HASH_LEN], const uint8_t right[ANN_HASH_LEN],
                          uint8_t out[ANN_HASH_LEN])
{
    uint8_t in[1 + 2 * ANN_HASH_LEN];
    in[0] = 0x01;
    memcpy(in + 1, left, ANN_HASH_LEN);
    memcpy(in + 1 + ANN_HASH_LEN, right, ANN_HASH_LEN);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, in, sizeof in);
    SHA256_Final(out, &c);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}

void ann_merkle_empty_root(uint8_t out[ANN_HASH_LEN])
{
    SHA256((const unsigned char *)"", 0, out);
}

/* ---- Entries ------------------------------------------------------------------------------ */

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

/* Where body_bytes go: a buffer, or a running SHA-256 fed through a small staging buffer
 * (a body is a dozen short pieces; one SHA256_Update per piece cost a third of the hash). */
#define SINK_STAGE 256
typedef struct sink {
    ann_buf *buf;
    SHA256_CTX *sha;
    size_t n;
    uint8_t stage[SINK_STAGE];
} sink;

/* A sink into c (initialised here); the stage needs no zeroing. */
static void sink_sha(sink *s, SHA256_CTX *c)
{
    s->buf = NULL;
    s->sha = c;
    s->n = 0;
    SHA256_Init(c);
}

static void sink_flush(sink *s)
{
    if (s->sha && s->n)
        SHA256_Update(s->sha, s->stage, s->n);
    s->n = 0;
}

static void sink_add(sink *s, const void *p, size_t n)
{
    if (s->buf) {
        ann_buf_add(s->buf, p, n);
        return;
    }
    if (s->n + n > SINK_STAGE)
        sink_flush(s);
    if (n >= SINK_STAGE) {
        SHA256_Update(s->sha, p, n);
        return;
    }
    memcpy(s->stage + s->n, p, n);
    s->n += n;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static void sink_bytes(sink *s, const uint8_t *p, size_t n)
{
    uint8_t len[4];
    put_u32(len, (uint32_t)n);
    sink_add(s, len, 4);
    sink_add(s, p, n);
}

typedef struct label {
    const uint8_t *k, *v;
    size_t kn, vn;
} label;

static int label_cmp(const void *a, const void *b)
{
    const label *x = a, *y = b;
    size_t n = x->kn < y->kn ? x->kn : y->kn;
    int c = n ? memcmp(x->k, y->k, n) : 0;
    if (c)
        return c;
    return (x->kn > y->kn) - (x->kn < y->kn);
}

/* One Label { bytes key = 1; bytes value = 2; }; absent fields are empty. */
static bool label_read(const uint8_t *p, size_t n, label *l)
{
    size_t pos = 0;
    ann_pb_field g;
    l->k = l->v = (const uint8_t *)"";
    l->kn = l->vn = 0;
    while (pos < n) {
        if (!ann_pb_next(p, n, &pos, &g))
            return false;
        if (g.wt != 2)
            continue;
        if (g.num == 1)
            l->k = g.p, l->kn = g.n;
        else if (g.num == 2)
            l->v = g.p, l->vn = g.n;
    }
    return true;
}

static int body_emit(const uint8_t *body, size_t len, sink *s, ann_err *err)
{
    label labels[ANN_MAX_LABELS];
    size_t nl = 0, pos = 0;
    ann_pb_field f;
    unsigned kind = 0;
    const uint8_t *pay = NULL;
    size_t pay_n = 0;

    while (pos < len) {
        if (!ann_pb_next(body, len, &pos, &f))
            return ann_err_set(err, ANN_ECORRUPT, "entry body: malformed protobuf");
        if (f.wt != 2)
            continue;
        if (f.num == 23) {
            label l;
            if (!label_read(f.p, f.n, &l))
                return ann_err_set(err, ANN_ECORRUPT, "entry body: malformed label");
            size_t i = 0;
            while (i < nl && !(labels[i].kn == l.kn && memcmp(labels[i].k, l.k, l.kn) == 0))
                i++;
            if (i == nl) {
                if (nl == ANN_MAX_LABELS)
                    return ann_err_set(err, ANN_ECORRUPT, "entry body: more than %d labels",
                                       ANN_MAX_LABELS);
                nl++;
            }
            labels[i] = l;
        } else if (f.num == 30 || f.num == 31) {
            kind = f.num == 30 ? 1 : 2;
            pay = f.p;
            pay_n = f.n;
        }
    }
    for (size_t i = 1; i < nl; i++) { /* insertion sort: a handful of labels, keys unique */
        label l = labels[i];
        size_t j = i;
        for (; j > 0 && label_cmp(&labels[j - 1], &l) > 0; j--)
            labels[j] = labels[j - 1];
        labels[j] = l;
    }
    uint8_t u[4];
    put_u32(u, (uint32_t)nl);
    sink_add(s, u, 4);
    for (size_t i = 0; i < nl; i++) {
        sink_bytes(s, labels[i].k, labels[i].kn);
        sink_bytes(s, labels[i].v, labels[i].vn);
    }
    uint8_t k = (uint8_t)kind;
    sink_add(s, &k, 1);
    if (kind)
        sink_bytes(s, pay, pay_n);
    return 0;
}

int ann_entry_body_bytes(const uint8_t *body, size_t len, ann_buf *out, ann_err *err)
{
    size_t mark = out->len;
    sink s = {.buf = out};
    if (body_emit(body, len, &s, err) != 0) {
        out->len = mark;
        return -1;
    }
    return 0;
}

int ann_entry_body_hash(const uint8_t salt[ANN_BODY_SALT_LEN], const uint8_t *body, size_t len,
                        uint8_t out[ANN_HASH_LEN], ann_err *err)
{
    SHA256_CTX c;
    sink s;
    sink_sha(&s, &c);
    sink_add(&s, salt, ANN_BODY_SALT_LEN);
    if (body_emit(body, len, &s, err) != 0)
        return -1;
    sink_flush(&s);
    SHA256_Final(out, &c);
    return 0;
}

#define LEAF_FIXED (sizeof ANN_LEAF_DOMAIN - 1 + 8 + 8 + 8 + 4 + 4)

/* leaf_input without its insert_id and body_hash: the fixed-size head. */
static void leaf_head(const ann_entry *e, uint8_t h[LEAF_FIXED])
{
    size_t o = sizeof ANN_LEAF_DOMAIN - 1;
    memcpy(h, ANN_LEAF_DOMAIN, o);
    put_u64(h + o, e->entry_id);
    put_u64(h + o + 8, (uint64_t)e->time_ns);
    put_u64(h + o + 16, (uint64_t)e->insert_time_ns);
    put_u32(h + o + 24, (uint32_t)e->severity);
    put_u32(h + o + 28, (uint32_t)e->insert_id_len);
}

void ann_entry_leaf_input(const ann_entry *e, const uint8_t body_hash[ANN_HASH_LEN], ann_buf *out)
{
    uint8_t h[LEAF_FIXED];
    leaf_head(e, h);
    ann_buf_add(out, h, sizeof h);
    ann_buf_add(out, e->insert_id, e->insert_id_len);
    ann_buf_add(out, body_hash, ANN_HASH_LEN);
}

void ann_entry_leaf_hash(const ann_entry *e, const uint8_t body_hash[ANN_HASH_LEN],
                         uint8_t out[ANN_HASH_LEN])
{
    uint8_t h[1 + LEAF_FIXED];
    h[0] = 0x00;
    leaf_head(e, h + 1);
    SHA256_CTX c;
    sink s; /* one update for the three pieces when the insert_id is short */
    sink_sha(&s, &c);
    sink_add(&s, h, sizeof h);
    sink_add(&s, e->insert_id, e->insert_id_len);
    sink_add(&s, body_hash, ANN_HASH_LEN);
    sink_flush(&s);
    SHA256_Final(out, &c);
}

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* ---- The frontier ------------------------------------------------------------------------- */

void ann_merkle_frontier_init(ann_merkle_frontier *f)
{
    memset(f, 0, sizeof *f);
}

int ann_merkle_frontier_append(ann_merkle_frontier *f, const uint8_t leaf_hash[ANN_HASH_LEN],
                               ann_err *err)
{
    if (f->size == UINT64_MAX)
        return ann_err_set(err, ANN_ERANGE, "the tree is full");
    uint8_t h[ANN_HASH_LEN];
    memcpy(h, leaf_hash, ANN_HASH_LEN);
    /* Each set low bit is a complete subtree that the new leaf completes: merge upwards
     * (the carry of an increment). */
    unsigned k = 0;
    while (f->size & ((uint64_t)1 << k)) {
        ann_merkle_node_hash(f->hash[k], h, h);
        k++;
    }
    memcpy(f->hash[k], h, ANN_HASH_LEN);
    f->size++;
    return 0;
}

void ann_merkle_frontier_root(const ann_merkle_frontier *f, uint8_t out[ANN_HASH_LEN])
{
    if (f->size == 0) {
        ann_merkle_empty_root(out);
        return;
    }
    /* The smallest subtree is the rightmost; each larger one is the left sibling of all the
     * smaller ones together (RFC 9162's split at the largest power of two below n). */
    unsigned k = (unsigned)__builtin_ctzll(f->size);
    uint8_t r[ANN_HASH_LEN];
    memcpy(r, f->hash[k], ANN_HASH_LEN);
    for (k++; k < 64; k++)
        if (f->size & ((uint64_t)1 << k))
            ann_merkle_node_hash(f->hash[k], r, r);
    memcpy(out, r, ANN_HASH_LEN);
}

void ann_merkle_frontier_encode(const ann_merkle_frontier *f, ann_buf *out)
{
    uint8_t head[9];
    head[0] = 0x01;
    put_u64(head + 1, f->size);
    ann_buf_add(out, head, sizeof head);
    for (int k = 63; k >= 0; k--)
        if (f->size & ((uint64_t)1 << k))
            ann_buf_add(out, f->hash[k], ANN_HASH_LEN);
}

int ann_merkle_frontier_decode(const uint8_t *p, size_t n, ann_merkle_frontier *f, ann_err *err)
{
    if (n < 9 || p[0] != 0x01)
        return ann_err_set(err, ANN_ECORRUPT, "tree frontier: unknown version or short");
    uint64_t size = 0;
    for (int i = 1; i < 9; i++)
        size = size << 8 | p[i];
    size_t want = 9 + (size_t)__builtin_popcountll(size) * ANN_HASH_LEN;
    if (n != want)
        return ann_err_set(err, ANN_ECORRUPT, "tree frontier: %zu bytes, %zu expected", n, want);
    ann_merkle_frontier_init(f);
    f->size = size;
    size_t o = 9;
    for (int k = 63; k >= 0; k--)
        if (size & ((uint64_t)1 << k)) {
            memcpy(f->hash[k], p + o, ANN_HASH_LEN);
            o += ANN_HASH_LEN;
        }
    return 0;
}

/* ---- Proofs ------------------------------------------------------------------------------- */

/* The largest power of two strictly below n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
    return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

/* MTH of leaves [start, start + size), size >= 1, start a multiple of a power of two >= size
 * (every range RFC 9162's recursion reaches is): the complete subtrees of size's bits, from
 * the left, folded from the right. */
static int range_hash(uint64_t start, uint64_t size, ann_merkle_subtree_fn fn, void *ud,
                      uint8_t out[ANN_HASH_LEN], ann_err *err)
{
    uint8_t r[ANN_HASH_LEN], h[ANN_HASH_LEN];
    unsigned low = (unsigned)__builtin_ctzll(size);
    uint64_t off = start + size - ((uint64_t)1 << low);
    if (fn(ud, off, low, r, err) != 0)
        return -1;
    for (unsigned k = low + 1; k < 64; k++) {
        if (!(size & ((uint64_t)1 << k)))
            continue;
        off -= (uint64_t)1 << k;
        if (fn(ud, off, k, h, err) != 0)
            return -1;
        ann_merkle_node_hash(h, r, r);
    }
    memcpy(out, r, ANN_HASH_LEN);
    return 0;
}

int ann_merkle_root(uint64_t size, ann_merkle_subtree_fn fn, void *ud, uint8_t out[ANN_HASH_LEN],
                    ann_err *err)
{
    if (size == 0) {
        ann_merkle_empty_root(out);
        return 0;
    }
    return range_hash(0, size, fn, ud, out, err);
}

int ann_merkle_frontier_at(uint64_t size, ann_merkle_subtree_fn fn, void *ud,
                           ann_merkle_frontier *f, ann_err *err)
{
    ann_merkle_frontier_init(f);
    uint64_t off = 0;
    for (int k = 63; k >= 0; k--) {
        if (!(size & ((uint64_t)1 << k)))
            continue;
        if (fn(ud, off, (unsigned)k, f->hash[k], err) != 0)
            return -1;
        off += (uint64_t)1 << k;
    }
    f->size = size;
    return 0;
}

static void reverse(uint8_t (*h)[ANN_HASH_LEN], size_t n)
{
    uint8_t t[ANN_HASH_LEN];
    for (size_t i = 0; i < n / 2; i++) {
        memcpy(t, h[i], ANN_HASH_LEN);
        memcpy(h[i], h[n - 1 - i], ANN_HASH_LEN);
        memcpy(h[n - 1 - i], t, ANN_HASH_LEN);
    }
}

int ann_merkle_inclusion_proof(uint64_t index, uint64_t size, ann_merkle_subtree_fn fn, void *ud,
                               uint8_t out[][ANN_HASH_LEN], size_t *n, ann_err *err)
{
    *n = 0;
    if (index >= size)
        return ann_err_set(err, ANN_EINVAL, "leaf %llu is outside the tree of %llu leaves",
                           (unsigned long long)index, (unsigned long long)size);
    /* PATH(m, D[start, start+len)): descend, collecting the sibling of each step from the
     * root down; the proof lists them from the leaf up. */
    uint64_t start = 0, len = size, m = index;
    while (len > 1) {
        uint64_t k = split_point(len);
        int rc;
        if (m < k) {
            rc = range_hash(start + k, len - k, fn, ud, out[*n], err);
            len = k;
        } else {
            rc = fn(ud, start, (unsigned)__builtin_ctzll(k), out[*n], err);
            start += k;
            m -= k;
            len -= k;
        }
        if (rc != 0) {
            *n = 0;
            return -1;
        }
        (*n)++;
    }
    reverse(out, *n);
    return 0;
}

/* SUBPROOF(m, D[start, start+len), b), appending to out. */
static int subproof(uint64_t m, uint64_t start, uint64_t len, bool b, ann_merkle_subtree_fn fn,
                    void *ud, uint8_t out[][ANN_HASH_LEN], size_t *n, ann_err *err)
{
    if (m == len) {
        if (b)
            return 0;
        if (range_hash(start, len, fn, ud, out[*n], err) != 0)
            return -1;
        (*n)++;
        return 0;
    }
    uint64_t k = split_point(len);
    if (m <= k) {
        if (subproof(m, start, k, b, fn, ud, out, n, err) != 0)
            return -1;
        if (range_hash(start + k, len - k, fn, ud, out[*n], err) != 0)
            return -1;
    } else {
        if (subproof(m - k, start + k, len - k, false, fn, ud, out, n, err) != 0)
            return -1;
        if (fn(ud, start, (unsigned)__builtin_ctzll(k), out[*n], err) != 0)
            return -1;
    }
    (*n)++;
    return 0;
}

int ann_merkle_consistency_proof(uint64_t first, uint64_t second, ann_merkle_subtree_fn fn,
                                 void *ud, uint8_t out[][ANN_HASH_LEN], size_t *n, ann_err *err)
{
    *n = 0;
    if (first == 0 || first > second)
        return ann_err_set(err, ANN_EINVAL,
                           "no consistency proof from %llu to %llu leaves (0 < first <= second)",
                           (unsigned long long)first, (unsigned long long)second);
    if (subproof(first, 0, second, true, fn, ud, out, n, err) != 0) {
        *n = 0;
        return -1;
    }
    return 0;
}

bool ann_merkle_verify_inclusion(uint64_t index, uint64_t size,
                                 const uint8_t leaf_hash[ANN_HASH_LEN],
                                 const uint8_t (*proof)[ANN_HASH_LEN], size_t n,
                                 const uint8_t root[ANN_HASH_LEN])
{
    if (index >= size)
        return false;
    uint64_t fn = index, sn = size - 1;
    uint8_t r[ANN_HASH_LEN];
    memcpy(r, leaf_hash, ANN_HASH_LEN);
    for (size_t i = 0; i < n; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            ann_merkle_node_hash(proof[i], r, r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            ann_merkle_node_hash(r, proof[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(r, root, ANN_HASH_LEN) == 0;
}

bool ann_merkle_verify_consistency(uint64_t first, uint64_t second,
                                   const uint8_t root1[ANN_HASH_LEN],
                                   const uint8_t root2[ANN_HASH_LEN],
                                   const uint8_t (*proof)[ANN_HASH_LEN], size_t n)
{
    if (first > second)
        return false;
    if (first == second)
        return n == 0 && memcmp(root1, root2, ANN_HASH_LEN) == 0;
    if (first == 0)
        return n == 0;
    if (n == 0)
        return false;
    /* When first is a power of two, the old root is itself a node of the new tree and the
     * proof starts above it: the path begins with root1. */
    size_t i = 0;
    const uint8_t *start = proof[0];
    if ((first & (first - 1)) == 0)
        start = root1;
    else
        i = 1;
    uint64_t fn = first - 1, sn = second - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    uint8_t fr[ANN_HASH_LEN], sr[ANN_HASH_LEN];
    memcpy(fr, start, ANN_HASH_LEN);
    memcpy(sr, start, ANN_HASH_LEN);
    for (; i < n; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            ann_merkle_node_hash(proof[i], fr, fr);
            ann_merkle_node_hash(proof[i], sr, sr);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            ann_merkle_node_hash(sr, proof[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(fr, root1, ANN_HASH_LEN) == 0 && memcmp(sr, root2, ANN_HASH_LEN) == 0;
}
