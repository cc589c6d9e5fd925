/* The log's Merkle tree (domain/merkle.h): RFC 9162 hashes, the frontier, proofs, and the
 * entry encoding, against published vectors and a naive implementation of the RFC's
 * recursive definitions written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "domain/integrity.h"
#include "domain/limits.h"
#include "domain/merkle.h"

#define H ANN_HASH_LEN

static void unhex(const char *s, uint8_t *out)
{
    size_t n = strlen(s) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void assert_hash_hex(const uint8_t *h, const char *hex)
{
    uint8_t want[H];
    unhex(hex, want);
    assert_memory_equal(h, want, H);
}

/* ---- Published vectors: the RFC 6962 test leaves (Certificate Transparency's tree tests,
 * transparency-dev/merkle). Facts, kept as data. ---- */

static const char *const kat_leaves[8] = {
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
};

static const char *const kat_roots[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

typedef struct kat_proof {
    uint64_t a, b; /* inclusion: 0-based index, size; consistency: first, second */
    const char *hashes[4];
} kat_proof;

static const kat_proof kat_inclusion[] = {
    {0,
     8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5,
     8,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {1,
     5,
     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

static const kat_proof kat_consistency[] = {
    {1,
     8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6,
     8,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2,
     5,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {6,
     7,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

/* ---- A tree in memory: leaf hashes, and the subtree callback the proofs ask ---- */

typedef struct tree {
    uint8_t (*leaf)[H];
    size_t n;
    uint64_t asked_size; /* the size a proof is for: the callback must stay below it */
    int calls;
} tree;

#define N 300

/* Naive MTH(D[a:b]) from RFC 9162 2.1.1, recursively (remembered for the trees of up to N
 * leaves of tree_init, so that checking every proof of every size stays quick). */
static struct {
    const void *leaf;
    bool have[N + 1][N + 1];
    uint8_t h[N + 1][N + 1][H];
} memo;

static void naive_mth(const tree *t, uint64_t a, uint64_t b, uint8_t out[H])
{
    bool m = memo.leaf == t->leaf && b <= N;
    if (m && memo.have[a][b]) {
        memcpy(out, memo.h[a][b], H);
        return;
    }
    if (b - a == 1) {
        memcpy(out, t->leaf[a], H);
    } else {
        uint64_t k = 1;
        while (k * 2 < b - a)
            k *= 2;
        uint8_t l[H], r[H];
        naive_mth(t, a, a + k, l);
        naive_mth(t, a + k, b, r);
        ann_merkle_node_hash(l, r, out);
    }
    if (m) {
        memcpy(memo.h[a][b], out, H);
        memo.have[a][b] = true;
    }
}

static int subtree_cb(void *ud, uint64_t start, unsigned level, uint8_t out[H], ann_err *err)
{
    (void)err;
    tree *t = ud;
    uint64_t w = (uint64_t)1 << level;
    assert_true(start % w == 0);
    assert_true(start + w <= t->asked_size);
    t->calls++;
    naive_mth(t, start, start + w, out);
    return 0;
}

static int failing_cb(void *ud, uint64_t start, unsigned level, uint8_t out[H], ann_err *err)
{
    (void)ud, (void)start, (void)level, (void)out;
    return ann_err_set(err, ANN_EIO, "storage said no");
}

static void tree_init(tree *t, size_t n)
{
    t->leaf = calloc(n, H);
    memset(&memo, 0, sizeof memo);
    memo.leaf = t->leaf;
    t->n = n;
    for (size_t i = 0; i < n; i++) {
        uint8_t in[8];
        for (int j = 0; j < 8; j++)
            in[j] = (uint8_t)((uint64_t)i >> (8 * j));
        ann_merkle_leaf_hash(in, sizeof in, t->leaf[i]);
    }
}

/* Naive PATH(m, D[a:b]) of RFC 9162 2.1.3.1, appended at out[*n]. */
static void naive_path(const tree *t, uint64_t m, uint64_t a, uint64_t b, uint8_t (*out)[H],
                       size_t *n)
{
    if (b - a == 1)
        return;
    uint64_t k = 1;
    while (k * 2 < b - a)
        k *= 2;
    if (m < k) {
        naive_path(t, m, a, a + k, out, n);
        naive_mth(t, a + k, b, out[(*n)++]);
    } else {
        naive_path(t, m - k, a + k, b, out, n);
        naive_mth(t, a, a + k, out[(*n)++]);
    }
}

/* Naive SUBPROOF(m, D[a:b], bflag) of RFC 9162 2.1.4.1. */
static void naive_subproof(const tree *t, uint64_t m, uint64_t a, uint64_t b, int bflag,
                           uint8_t (*out)[H], size_t *n)
{
    if (m == b - a) {
        if (!bflag)
            naive_mth(t, a, b, out[(*n)++]);
        return;
    }
    uint64_t k = 1;
    while (k * 2 < b - a)
        k *= 2;
    if (m <= k) {
        naive_subproof(t, m, a, a + k, bflag, out, n);
        naive_mth(t, a + k, b, out[(*n)++]);
    } else {
        naive_subproof(t, m - k, a + k, b, 0, out, n);
        naive_mth(t, a, a + k, out[(*n)++]);
    }
}

/* ---- Tests ---- */

static void rfc6962_vectors(void **state)
{
    (void)state;
    uint8_t r[H], in[16];
    tree t = {.leaf = calloc(8, H), .n = 8};
    memset(&memo, 0, sizeof memo); /* nothing remembered of another test's tree */
    ann_merkle_empty_root(r);
    assert_hash_hex(r, kat_roots[0]);
    ann_merkle_frontier f;
    ann_merkle_frontier_init(&f);
    ann_merkle_frontier_root(&f, r);
    assert_hash_hex(r, kat_roots[0]);
    for (int i = 0; i < 8; i++) {
        unhex(kat_leaves[i], in);
        ann_merkle_leaf_hash(in, strlen(kat_leaves[i]) / 2, t.leaf[i]);
        assert_int_equal(ann_merkle_frontier_append(&f, t.leaf[i], NULL), 0);
        ann_merkle_frontier_root(&f, r);
        assert_hash_hex(r, kat_roots[i + 1]);
        t.asked_size = (uint64_t)i + 1;
        assert_int_equal(ann_merkle_root((uint64_t)i + 1, subtree_cb, &t, r, NULL), 0);
        assert_hash_hex(r, kat_roots[i + 1]);
    }
    uint8_t p[ANN_MERKLE_MAX_PROOF][H], root[H];
    size_t n;
    for (size_t v = 0; v < sizeof kat_inclusion / sizeof kat_inclusion[0]; v++) {
        const kat_proof *k = &kat_inclusion[v];
        t.asked_size = k->b;
        assert_int_equal(ann_merkle_inclusion_proof(k->a, k->b, subtree_cb, &t, p, &n, NULL), 0);
        size_t want = 0;
        while (want < 4 && k->hashes[want])
            want++;
        assert_int_equal(n, want);
        for (size_t i = 0; i < n; i++)
            assert_hash_hex(p[i], k->hashes[i]);
        unhex(kat_roots[k->b], root);
        assert_true(
            ann_merkle_verify_inclusion(k->a, k->b, t.leaf[k->a], (const uint8_t(*)[H])p, n, root));
    }
    for (size_t v = 0; v < sizeof kat_consistency / sizeof kat_consistency[0]; v++) {
        const kat_proof *k = &kat_consistency[v];
        t.asked_size = k->b;
        assert_int_equal(ann_merkle_consistency_proof(k->a, k->b, subtree_cb, &t, p, &n, NULL), 0);
        size_t want = 0;
        while (want < 4 && k->hashes[want])
            want++;
        assert_int_equal(n, want);
        for (size_t i = 0; i < n; i++)
            assert_hash_hex(p[i], k->hashes[i]);
        uint8_t r1[H], r2[H];
        unhex(kat_roots[k->a], r1);
        unhex(kat_roots[k->b], r2);
        assert_true(ann_merkle_verify_consistency(k->a, k->b, r1, r2, (const uint8_t(*)[H])p, n));
    }
    free(t.leaf);
}

static void roots_and_frontier_match_the_naive_tree(void **state)
{
    (void)state;
    tree t;
    tree_init(&t, N);
    ann_merkle_frontier f, g, back;
    ann_merkle_frontier_init(&f);
    for (uint64_t n = 1; n <= N; n++) {
        assert_int_equal(ann_merkle_frontier_append(&f, t.leaf[n - 1], NULL), 0);
        uint8_t want[H], got[H];
        naive_mth(&t, 0, n, want);
        ann_merkle_frontier_root(&f, got);
        assert_memory_equal(got, want, H);
        t.asked_size = n;
        t.calls = 0;
        assert_int_equal(ann_merkle_root(n, subtree_cb, &t, got, NULL), 0);
        assert_memory_equal(got, want, H);
        assert_int_equal(t.calls, __builtin_popcountll(n));

        /* Serialized and back, rebuilt from stored subtrees: the same tree. */
        ann_buf a = ANN_BUF_INIT, b = ANN_BUF_INIT;
        ann_merkle_frontier_encode(&f, &a);
        assert_int_equal(a.len, 9 + 32 * (size_t)__builtin_popcountll(n));
        assert_int_equal(ann_merkle_frontier_decode(a.data, a.len, &back, NULL), 0);
        ann_merkle_frontier_root(&back, got);
        assert_memory_equal(got, want, H);
        assert_int_equal(ann_merkle_frontier_at(n, subtree_cb, &t, &g, NULL), 0);
        ann_merkle_frontier_encode(&g, &b);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        ann_err err;
        assert_int_equal(ann_merkle_frontier_decode(a.data, a.len - 1, &back, &err), -1);
        assert_int_equal(err.code, ANN_ECORRUPT);
        a.data[0] = 2;
        assert_int_equal(ann_merkle_frontier_decode(a.data, a.len, &back, &err), -1);
        ann_buf_release(&a);
        ann_buf_release(&b);
    }
    /* Appending after a restart from the serialized form goes on the same. */
    ann_buf a = ANN_BUF_INIT;
    ann_merkle_frontier_init(&f);
    for (int i = 0; i < 37; i++)
        ann_merkle_frontier_append(&f, t.leaf[i], NULL);
    ann_merkle_frontier_encode(&f, &a);
    assert_int_equal(ann_merkle_frontier_decode(a.data, a.len, &g, NULL), 0);
    for (int i = 37; i < N; i++)
        ann_merkle_frontier_append(&g, t.leaf[i], NULL);
    uint8_t want[H], got[H];
    naive_mth(&t, 0, N, want);
    ann_merkle_frontier_root(&g, got);
    assert_memory_equal(got, want, H);
    ann_buf_release(&a);
    free(t.leaf);
}

static void inclusion_proofs_for_every_leaf(void **state)
{
    (void)state;
    tree t;
    tree_init(&t, N);
    uint8_t p[ANN_MERKLE_MAX_PROOF][H], q[ANN_MERKLE_MAX_PROOF][H], root[H];
    size_t n, qn;
    for (uint64_t size = 1; size <= N; size++) {
        naive_mth(&t, 0, size, root);
        t.asked_size = size;
        for (uint64_t m = 0; m < size; m++) {
            assert_int_equal(ann_merkle_inclusion_proof(m, size, subtree_cb, &t, p, &n, NULL), 0);
            qn = 0;
            naive_path(&t, m, 0, size, q, &qn);
            assert_int_equal(n, qn);
            assert_memory_equal(p, q, n * H);
            const uint8_t(*cp)[H] = (const uint8_t(*)[H])p;
            assert_true(ann_merkle_verify_inclusion(m, size, t.leaf[m], cp, n, root));
            /* Any byte flipped, a hash dropped or added, another leaf, index or size: no. */
            for (size_t i = 0; i < n; i++) {
                p[i][(m + i) % H] ^= 0x10;
                assert_false(ann_merkle_verify_inclusion(m, size, t.leaf[m], cp, n, root));
                p[i][(m + i) % H] ^= 0x10;
            }
            if (n > 0)
                assert_false(ann_merkle_verify_inclusion(m, size, t.leaf[m], cp, n - 1, root));
            memcpy(p[n], root, H);
            assert_false(ann_merkle_verify_inclusion(m, size, t.leaf[m], cp, n + 1, root));
            if (size > 1) {
                assert_false(
                    ann_merkle_verify_inclusion(m, size, t.leaf[(m + 1) % size], cp, n, root));
                assert_false(
                    ann_merkle_verify_inclusion((m + 1) % size, size, t.leaf[m], cp, n, root));
            }
            /* (A size of the same height may verify: the signed checkpoint vouches for the
             * size, not the proof.) */
            assert_false(ann_merkle_verify_inclusion(m, 2 * size, t.leaf[m], cp, n, root));
        }
    }
    ann_err err;
    t.asked_size = 5;
    assert_int_equal(ann_merkle_inclusion_proof(5, 5, subtree_cb, &t, p, &n, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_int_equal(ann_merkle_inclusion_proof(0, 0, subtree_cb, &t, p, &n, &err), -1);
    assert_int_equal(ann_merkle_inclusion_proof(3, 9, failing_cb, &t, p, &n, &err), -1);
    assert_int_equal(err.code, ANN_EIO);
    assert_false(ann_merkle_verify_inclusion(0, 0, t.leaf[0], NULL, 0, root));
    free(t.leaf);
}

static void consistency_proofs_for_every_pair(void **state)
{
    (void)state;
    tree t;
    tree_init(&t, N);
    static uint8_t roots[N + 1][H];
    for (uint64_t s = 1; s <= N; s++)
        naive_mth(&t, 0, s, roots[s]);
    uint8_t p[ANN_MERKLE_MAX_PROOF + 1][H], q[ANN_MERKLE_MAX_PROOF][H];
    size_t n, qn;
    const uint8_t(*cp)[H] = (const uint8_t(*)[H])p;
    for (uint64_t second = 1; second <= N; second++) {
        t.asked_size = second;
        for (uint64_t first = 1; first <= second; first++) {
            assert_int_equal(
                ann_merkle_consistency_proof(first, second, subtree_cb, &t, p, &n, NULL), 0);
            qn = 0;
            naive_subproof(&t, first, 0, second, 1, q, &qn);
            assert_int_equal(n, qn);
            assert_memory_equal(p, q, n * H);
            assert_true(
                ann_merkle_verify_consistency(first, second, roots[first], roots[second], cp, n));
            if (first == second) {
                assert_int_equal(n, 0);
                continue;
            }
            for (size_t i = 0; i < n; i++) {
                p[i][(first + i) % H] ^= 0x01;
                assert_false(ann_merkle_verify_consistency(first, second, roots[first],
                                                           roots[second], cp, n));
                p[i][(first + i) % H] ^= 0x01;
            }
            assert_false(ann_merkle_verify_consistency(first, second, roots[first], roots[second],
                                                       cp, n - 1));
            memcpy(p[n], roots[second], H);
            assert_false(ann_merkle_verify_consistency(first, second, roots[first], roots[second],
                                                       cp, n + 1));
            /* A rewritten past: the old root of another size, or swapped roots. */
            assert_false(ann_merkle_verify_consistency(first, second, roots[first == 1 ? 2 : 1],
                                                       roots[second], cp, n));
            assert_false(
                ann_merkle_verify_consistency(first, second, roots[second], roots[first], cp, n));
            if (first > 1)
                assert_false(ann_merkle_verify_consistency(first - 1, second, roots[first],
                                                           roots[second], cp, n));
            assert_false(ann_merkle_verify_consistency(first, 2 * second, roots[first],
                                                       roots[second], cp, n));
        }
    }
    /* Trivial cases, and the refusals. */
    assert_true(ann_merkle_verify_consistency(0, 5, roots[1], roots[5], NULL, 0));
    assert_true(ann_merkle_verify_consistency(7, 7, roots[7], roots[7], NULL, 0));
    assert_false(ann_merkle_verify_consistency(7, 7, roots[7], roots[6], NULL, 0));
    assert_false(ann_merkle_verify_consistency(8, 7, roots[8], roots[7], NULL, 0));
    assert_false(ann_merkle_verify_consistency(3, 7, roots[3], roots[7], NULL, 0));
    ann_err err;
    assert_int_equal(ann_merkle_consistency_proof(0, 5, subtree_cb, &t, p, &n, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_int_equal(ann_merkle_consistency_proof(6, 5, subtree_cb, &t, p, &n, &err), -1);
    assert_int_equal(ann_merkle_consistency_proof(3, 9, failing_cb, &t, p, &n, &err), -1);
    assert_int_equal(err.code, ANN_EIO);
    free(t.leaf);
}

/* A tree whose leaves are all the same hash: every complete subtree of one level has the same
 * hash, so trees of up to 2^64 - 1 leaves can be proven without storing them. */
static uint8_t same_level[64][H];

static int same_cb(void *ud, uint64_t start, unsigned level, uint8_t out[H], ann_err *err)
{
    (void)err;
    uint64_t size = *(const uint64_t *)ud;
    assert_true(level < 64 && start % ((uint64_t)1 << level) == 0);
    assert_true(start <= size && ((uint64_t)1 << level) <= size - start);
    memcpy(out, same_level[level], H);
    return 0;
}

static void large_sizes(void **state)
{
    (void)state;
    ann_merkle_leaf_hash((const uint8_t *)"x", 1, same_level[0]);
    for (int k = 1; k < 64; k++)
        ann_merkle_node_hash(same_level[k - 1], same_level[k - 1], same_level[k]);
    static const uint64_t sizes[] = {(1ull << 32) + 1, 10000000, (1ull << 63), (1ull << 63) + 12345,
                                     UINT64_MAX - 1};
    uint8_t p[ANN_MERKLE_MAX_PROOF][H], r1[H], r2[H];
    const uint8_t(*cp)[H] = (const uint8_t(*)[H])p;
    size_t n, maxn = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t s = sizes[i];
        assert_int_equal(ann_merkle_root(s, same_cb, &s, r2, NULL), 0);
        ann_merkle_frontier f;
        assert_int_equal(ann_merkle_frontier_at(s, same_cb, &s, &f, NULL), 0);
        ann_merkle_frontier_root(&f, r1);
        assert_memory_equal(r1, r2, H);
        const uint64_t idx[] = {0, s / 3, s / 2, s - 3, s - 2, s - 1};
        for (size_t j = 0; j < 6; j++) {
            assert_int_equal(ann_merkle_inclusion_proof(idx[j], s, same_cb, &s, p, &n, NULL), 0);
            assert_true(n <= 64);
            assert_true(ann_merkle_verify_inclusion(idx[j], s, same_level[0], cp, n, r2));
            if (idx[j] < s / 2)
                assert_false(ann_merkle_verify_inclusion(idx[j], s / 2, same_level[0], cp, n, r2));
            uint64_t first = idx[j] + 1;
            assert_int_equal(ann_merkle_root(first, same_cb, &first, r1, NULL), 0);
            assert_int_equal(ann_merkle_consistency_proof(first, s, same_cb, &s, p, &n, NULL), 0);
            assert_true(n <= ANN_MERKLE_MAX_PROOF);
            maxn = n > maxn ? n : maxn;
            assert_true(ann_merkle_verify_consistency(first, s, r1, r2, cp, n));
            if (n > 0) {
                p[n - 1][0] ^= 1;
                assert_false(ann_merkle_verify_consistency(first, s, r1, r2, cp, n));
            }
        }
    }
    assert_int_equal(maxn, ANN_MERKLE_MAX_PROOF); /* the longest proof there is, reached */
    ann_merkle_frontier f = {.size = UINT64_MAX};
    ann_err err;
    assert_int_equal(ann_merkle_frontier_append(&f, same_level[0], &err), -1);
    assert_int_equal(err.code, ANN_ERANGE);
}

/* ---- Entries ---- */

static void be32(ann_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    ann_buf_add(b, x, 4);
}

static void add_label(ann_buf *body, const char *k, const char *v)
{
    ann_buf l = ANN_BUF_INIT;
    ann_buf_add_len_field(&l, 1, k, strlen(k));
    ann_buf_add_len_field(&l, 2, v, strlen(v));
    ann_buf_add_len_field(body, 23, l.data, l.len);
    ann_buf_release(&l);
}

static void body_bytes_are_canonical(void **state)
{
    (void)state;
    ann_buf body = ANN_BUF_INIT, got = ANN_BUF_INIT, want = ANN_BUF_INIT;
    /* Out of order, a prefix key, a repeated key (its last value counts), then text. */
    add_label(&body, "zone", "eu");
    add_label(&body, "job", "first");
    add_label(&body, "jo", "x");
    add_label(&body, "job", "nightly");
    ann_buf_add_len_field(&body, 30, "hello", 5);
    assert_int_equal(ann_entry_body_bytes(body.data, body.len, &got, NULL), 0);
    be32(&want, 3);
    be32(&want, 2), ann_buf_add(&want, "jo", 2), be32(&want, 1), ann_buf_add(&want, "x", 1);
    be32(&want, 3), ann_buf_add(&want, "job", 3), be32(&want, 7), ann_buf_add(&want, "nightly", 7);
    be32(&want, 4), ann_buf_add(&want, "zone", 4), be32(&want, 2), ann_buf_add(&want, "eu", 2);
    ann_buf_add_byte(&want, 1);
    be32(&want, 5), ann_buf_add(&want, "hello", 5);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);

    /* body_hash = SHA-256(salt || body_bytes). */
    uint8_t salt[32], h[32], w[32];
    for (int i = 0; i < 32; i++)
        salt[i] = (uint8_t)(0xa0 + i);
    assert_int_equal(ann_entry_body_hash(salt, body.data, body.len, h, NULL), 0);
    ann_buf sb = ANN_BUF_INIT;
    ann_buf_add(&sb, salt, 32);
    ann_buf_add(&sb, want.data, want.len);
    SHA256(sb.data, sb.len, w);
    assert_memory_equal(h, w, 32);
    ann_buf_release(&sb);

    /* No payload; an empty text payload (kind 1, length 0); a JSON payload; nothing at all. */
    const uint8_t none[] = {0, 0, 0, 0, 0};
    got.len = 0;
    assert_int_equal(ann_entry_body_bytes(NULL, 0, &got, NULL), 0);
    assert_int_equal(got.len, sizeof none);
    assert_memory_equal(got.data, none, sizeof none);
    ann_buf e = ANN_BUF_INIT;
    ann_buf_add_len_field(&e, 30, "", 0);
    got.len = 0;
    assert_int_equal(ann_entry_body_bytes(e.data, e.len, &got, NULL), 0);
    const uint8_t empty_text[] = {0, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_int_equal(got.len, sizeof empty_text);
    assert_memory_equal(got.data, empty_text, sizeof empty_text);
    e.len = 0;
    const uint8_t st[] = {0x0a, 0x03, 'k', 'e', 'y'}; /* some Struct bytes, opaque here */
    ann_buf_add_len_field(&e, 31, st, sizeof st);
    got.len = 0;
    assert_int_equal(ann_entry_body_bytes(e.data, e.len, &got, NULL), 0);
    const uint8_t json[] = {0, 0, 0, 0, 2, 0, 0, 0, 5, 0x0a, 0x03, 'k', 'e', 'y'};
    assert_int_equal(got.len, sizeof json);
    assert_memory_equal(got.data, json, sizeof json);

    /* Malformed or over the label limit: refused, nothing appended. */
    ann_err err;
    const uint8_t bad[] = {0xba, 0x01, 0x05, 'x'};
    got.len = 0;
    assert_int_equal(ann_entry_body_bytes(bad, sizeof bad, &got, &err), -1);
    assert_int_equal(err.code, ANN_ECORRUPT);
    assert_int_equal(got.len, 0);
    e.len = 0;
    for (int i = 0; i < 65; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        add_label(&e, k, "v");
    }
    assert_int_equal(ann_entry_body_hash(salt, e.data, e.len, h, &err), -1);
    ann_buf_release(&e);
    ann_buf_release(&body);
    ann_buf_release(&got);
    ann_buf_release(&want);
}

static void leaf_input_layout(void **state)
{
    (void)state;
    uint8_t bh[32];
    for (int i = 0; i < 32; i++)
        bh[i] = (uint8_t)i;
    ann_entry e = {.entry_id = 0x0102030405060708ull,
                   .time_ns = -2, /* before the epoch: two's complement */
                   .insert_time_ns = 0x1122334455667788ll,
                   .severity = 300,
                   .insert_id = "ab",
                   .insert_id_len = 2};
    ann_buf got = ANN_BUF_INIT;
    ann_entry_leaf_input(&e, bh, &got);
    const uint8_t head[] = {'a',  'n',  'n',  'a',  'l',  's',  '.',  'v',  '1',  '.',
                            'e',  'n',  't',  'r',  'y',  1,    2,    3,    4,    5,
                            6,    7,    8,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xfe, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0,
                            0,    0x01, 0x2c, 0,    0,    0,    2,    'a',  'b'};
    assert_int_equal(got.len, sizeof head + 32);
    assert_memory_equal(got.data, head, sizeof head);
    assert_memory_equal(got.data + sizeof head, bh, 32);
    uint8_t h[32], w[32];
    ann_entry_leaf_hash(&e, bh, h);
    ann_merkle_leaf_hash(got.data, got.len, w);
    assert_memory_equal(h, w, 32);
    /* A long insert_id (the API allows 256 bytes) streams the same. */
    char big[ANN_MAX_INSERT_ID_BYTES];
    memset(big, 'i', sizeof big);
    e.insert_id = big;
    e.insert_id_len = sizeof big;
    got.len = 0;
    ann_entry_leaf_input(&e, bh, &got);
    assert_int_equal(got.len, 15 + 8 + 8 + 8 + 4 + 4 + sizeof big + 32);
    ann_entry_leaf_hash(&e, bh, h);
    ann_merkle_leaf_hash(got.data, got.len, w);
    assert_memory_equal(h, w, 32);
    ann_buf_release(&got);
}

/* The integrity field a store keeps in a body (domain/integrity.h), byte for byte. */
static void integrity_field_in_the_body(void **state)
{
    (void)state;
    uint8_t salt[32], hash[32], f[ANN_INTEGRITY_FIELD_LEN], got[32];
    for (int i = 0; i < 32; i++)
        salt[i] = (uint8_t)(0xa0 + i), hash[i] = (uint8_t)i;
    ann_integrity_field(ANN_INTEGRITY_SALT, salt, f);
    static const uint8_t head_salt[5] = {0xda, 0x02, 0x22, 0x0a, 0x20};
    assert_memory_equal(f, head_salt, 5);
    assert_memory_equal(f + 5, salt, 32);
    ann_integrity_field(ANN_INTEGRITY_HASH, hash, f);
    static const uint8_t head_hash[5] = {0xda, 0x02, 0x22, 0x12, 0x20};
    assert_memory_equal(f, head_hash, 5);
    assert_true(ann_integrity_is_hash_field(f, sizeof f));
    assert_false(ann_integrity_is_hash_field(f, sizeof f - 1));

    /* A body: a label and a text payload, then the salt field, as the store keeps it. */
    uint8_t body[128];
    size_t n = 0;
    static const uint8_t label[] = {0xba, 0x01, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v'};
    static const uint8_t text[] = {0xf2, 0x01, 0x03, 'a', 'b', 'c'};
    memcpy(body + n, label, sizeof label), n += sizeof label;
    memcpy(body + n, text, sizeof text), n += sizeof text;
    size_t plain = n;
    ann_integrity_field(ANN_INTEGRITY_SALT, salt, body + n), n += ANN_INTEGRITY_FIELD_LEN;
    assert_int_equal(ann_integrity_strip(body, n), plain);
    assert_int_equal(ann_integrity_strip(body, plain), plain);
    assert_int_equal(ann_integrity_find(body, n, got), ANN_INTEGRITY_SALT);
    assert_memory_equal(got, salt, 32);
    assert_int_equal(ann_integrity_find(body, plain, got), ANN_INTEGRITY_NONE);
    /* body_hash ignores the field itself: the same with or without it. */
    uint8_t want[32], bh[32];
    ann_err err;
    assert_int_equal(ann_entry_body_hash(salt, body, plain, want, &err), 0);
    assert_int_equal(ann_integrity_body_hash(body, n, bh, &err), 0);
    assert_memory_equal(bh, want, 32);
    /* A redacted body: the hash field alone gives the same body_hash. */
    ann_integrity_field(ANN_INTEGRITY_HASH, want, f);
    assert_int_equal(ann_integrity_body_hash(f, sizeof f, bh, &err), 0);
    assert_memory_equal(bh, want, 32);
    /* No field: refused (a log from before integrity). */
    assert_int_equal(ann_integrity_body_hash(body, plain, bh, &err), -1);
    assert_int_equal(err.code, ANN_ECORRUPT);
    /* The field in the middle of a body is found by parsing. */
    uint8_t mid[128];
    size_t m = 0;
    ann_integrity_field(ANN_INTEGRITY_SALT, salt, mid), m += ANN_INTEGRITY_FIELD_LEN;
    memcpy(mid + m, text, sizeof text), m += sizeof text;
    assert_int_equal(ann_integrity_find(mid, m, got), ANN_INTEGRITY_SALT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc6962_vectors),
        cmocka_unit_test(roots_and_frontier_match_the_naive_tree),
        cmocka_unit_test(inclusion_proofs_for_every_leaf),
        cmocka_unit_test(consistency_proofs_for_every_pair),
        cmocka_unit_test(large_sizes),
        cmocka_unit_test(body_bytes_are_canonical),
        cmocka_unit_test(leaf_input_layout),
        cmocka_unit_test(integrity_field_in_the_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
