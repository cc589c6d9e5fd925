/*
 * bench-merkle: the costs of the integrity domain code (src/domain/merkle.c, note.c), one
 * thread, no I/O. Figures are printed, never asserted (docs/bench.md, docs/integrity.md).
 *
 *   bench-merkle [LEAVES (10000000)] [CACHE_LEVEL (8)] [PROOFS (10000)]
 *
 *  - leaf hashing: body_hash + leaf hash of entries of 200 bytes (labels, text payload)
 *  - frontier append: ns per leaf, and the root of the current size
 *  - proofs in a tree of LEAVES leaves, from an in-memory callback that keeps every leaf hash
 *    and the interior nodes of level >= CACHE_LEVEL (as storage would: leaf hashes stored,
 *    aligned subtree hashes cached), computing lower levels from the leaves
 *  - checkpoint signing and verification
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "domain/merkle.h"
#include "domain/note.h"

#define H ANN_HASH_LEN

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct tree {
    uint64_t n;
    unsigned cache_level;
    uint8_t (*leaf)[H];
    uint8_t (*level[64])[H]; /* level[k][j]: subtree [j*2^k, (j+1)*2^k), for k >= cache_level */
    uint64_t computed;       /* node hashes the callback computed */
} tree;

static void below(tree *t, uint64_t start, unsigned level, uint8_t out[H])
{
    if (level == 0) {
        memcpy(out, t->leaf[start], H);
        return;
    }
    if (level >= t->cache_level && t->level[level]) {
        memcpy(out, t->level[level][start >> level], H);
        return;
    }
    uint8_t l[H], r[H];
    below(t, start, level - 1, l);
    below(t, start + ((uint64_t)1 << (level - 1)), level - 1, r);
    ann_merkle_node_hash(l, r, out);
    t->computed++;
}

static int subtree(void *ud, uint64_t start, unsigned level, uint8_t out[H], ann_err *err)
{
    (void)err;
    below(ud, start, level, out);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, double *t, size_t n)
{
    qsort(t, n, sizeof t[0], cmp_double);
    printf("%-34s p50 %8.1f us   p99 %8.1f us   max %8.1f us   (%zu runs)\n", what, t[n / 2] * 1e6,
           t[n * 99 / 100] * 1e6, t[n - 1] * 1e6, n);
}

static uint64_t rng = 42;
static uint64_t next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    unsigned cl = argc > 2 ? (unsigned)atoi(argv[2]) : 8;
    size_t nproofs = argc > 3 ? (size_t)atoi(argv[3]) : 10000;
    printf("bench-merkle %" PRIu64 " %u %zu\n", n, cl, nproofs);

    /* 1. Leaf hashing, entries of 200 bytes: two labels and a text payload (body 158 bytes),
     *    a 38-byte insert_id. */
    ann_buf body = ANN_BUF_INIT, l = ANN_BUF_INIT;
    ann_buf_add_len_field(&l, 1, "job", 3);
    ann_buf_add_len_field(&l, 2, "nightly-build", 13);
    ann_buf_add_len_field(&body, 23, l.data, l.len);
    l.len = 0;
    ann_buf_add_len_field(&l, 1, "host", 4);
    ann_buf_add_len_field(&l, 2, "ci-runner-07", 12);
    ann_buf_add_len_field(&body, 23, l.data, l.len);
    char text[93];
    memset(text, 'x', 92);
    ann_buf_add_len_field(&body, 30, text, 92);
    const char *iid = "4f9a1c2e-7b3d-4e8a-9f1c-2d3e4f5a6b7c/12";
    uint8_t salt[32] = {1}, bh[H], lh[H];
    ann_entry e = {.time_ns = 1700000000000000000ll,
                   .insert_time_ns = 1700000000000000001ll,
                   .severity = 300,
                   .insert_id = iid,
                   .insert_id_len = strlen(iid),
                   .body = body.data,
                   .body_len = body.len};
    printf("entry: body %zu bytes, insert_id %zu bytes, %zu bytes with times and severity\n",
           body.len, e.insert_id_len, body.len + e.insert_id_len + 20);
    const uint64_t nh = 2000000;
    double t0 = now();
    for (uint64_t i = 1; i <= nh; i++) {
        e.entry_id = i;
        salt[0] = (uint8_t)i;
        ann_entry_body_hash(salt, e.body, e.body_len, bh, NULL);
        ann_entry_leaf_hash(&e, bh, lh);
    }
    double dt = now() - t0;
    printf("leaf hashing (body_hash + leaf hash): %.0f entries/s (%.2f us/entry)\n", nh / dt,
           dt / nh * 1e6);

    /* 2. Frontier append, and the tree's leaves for the proofs below. */
    tree t = {.n = n, .cache_level = cl};
    t.leaf = malloc(n * H);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t in[8];
        memcpy(in, &i, 8);
        ann_merkle_leaf_hash(in, 8, t.leaf[i]);
    }
    ann_merkle_frontier f;
    ann_merkle_frontier_init(&f);
    t0 = now();
    for (uint64_t i = 0; i < n; i++)
        ann_merkle_frontier_append(&f, t.leaf[i], NULL);
    dt = now() - t0;
    uint8_t root[H], r2[H];
    double r0 = now();
    ann_merkle_frontier_root(&f, root);
    double rdt = now() - r0;
    ann_buf fb = ANN_BUF_INIT;
    ann_merkle_frontier_encode(&f, &fb);
    printf("frontier append: %.0f ns/leaf over %" PRIu64 " leaves; root at that size %.1f us; "
           "frontier %zu bytes serialized\n",
           dt / (double)n * 1e9, n, rdt * 1e6, fb.len);

    /* 3. Interior nodes of level >= cl, built bottom-up. */
    uint64_t cached = 0;
    for (unsigned k = 1; k < 64 && ((uint64_t)1 << k) <= n; k++) {
        uint64_t m = n >> k;
        t.level[k] = malloc((m ? m : 1) * H);
        for (uint64_t j = 0; j < m; j++) {
            const uint8_t *a = k == 1 ? t.leaf[2 * j] : t.level[k - 1][2 * j];
            const uint8_t *b = k == 1 ? t.leaf[2 * j + 1] : t.level[k - 1][2 * j + 1];
            ann_merkle_node_hash(a, b, t.level[k][j]);
        }
        if (k >= cl)
            cached += m;
    }
    ann_merkle_root(n, subtree, &t, r2, NULL);
    if (memcmp(root, r2, H) != 0) {
        fprintf(stderr, "the roots disagree\n");
        return 1;
    }
    printf("tree: %" PRIu64 " leaves (%.0f MB of leaf hashes), %" PRIu64
           " cached interior nodes of level >= %u (%.1f MB, %.2f bytes/entry)\n",
           n, n * 32.0 / 1e6, cached, cl, cached * 32.0 / 1e6, cached * 32.0 / (double)n);

    double *lat = malloc((nproofs > 2000 ? nproofs : 2000) * sizeof *lat); /* and 2,000 signs */
    uint8_t p[ANN_MERKLE_MAX_PROOF][H];
    size_t pn;
    uint64_t hashes = 0;
    t.computed = 0;
    for (size_t i = 0; i < nproofs; i++) {
        uint64_t m = next() % n;
        t0 = now();
        ann_merkle_inclusion_proof(m, n, subtree, &t, p, &pn, NULL);
        lat[i] = now() - t0;
        if (!ann_merkle_verify_inclusion(m, n, t.leaf[m], (const uint8_t(*)[H])p, pn, root)) {
            fprintf(stderr, "proof %" PRIu64 " does not verify\n", m);
            return 1;
        }
    }
    hashes = t.computed;
    report("inclusion proof", lat, nproofs);
    printf("  %.1f node hashes per proof from the callback\n", (double)hashes / nproofs);
    t.computed = 0;
    for (size_t i = 0; i < nproofs; i++) {
        uint64_t a = 1 + next() % n;
        t0 = now();
        ann_merkle_consistency_proof(a, n, subtree, &t, p, &pn, NULL);
        lat[i] = now() - t0;
    }
    report("consistency proof (random first)", lat, nproofs);
    printf("  %.1f node hashes per proof from the callback\n", (double)t.computed / nproofs);
    for (size_t i = 0; i < nproofs; i++) {
        uint64_t m = next() % n;
        ann_merkle_inclusion_proof(m, n, subtree, &t, p, &pn, NULL);
        t0 = now();
        ann_merkle_verify_inclusion(m, n, t.leaf[m], (const uint8_t(*)[H])p, pn, root);
        lat[i] = now() - t0;
    }
    report("inclusion proof verification", lat, nproofs);

    /* 4. Checkpoints. */
    uint8_t seed[32] = {7};
    ann_note_signer s;
    ann_note_verifier v;
    ann_note_signer_init(&s, ANN_NOTE_NAME_DEFAULT, seed, NULL);
    ann_note_verifier_of(&s, &v);
    ann_buf cp = ANN_BUF_INIT;
    const size_t ns = 2000;
    for (size_t i = 0; i < ns; i++) {
        cp.len = 0;
        t0 = now();
        ann_checkpoint_sign(&s, "7d0f3c2e-4a51-4b8e-9c6d-1e2f3a4b5c6d", n, root, &cp, NULL);
        lat[i] = now() - t0;
    }
    report("checkpoint sign", lat, ns);
    ann_checkpoint c;
    for (size_t i = 0; i < ns; i++) {
        t0 = now();
        if (ann_checkpoint_open(&v, (const char *)cp.data, cp.len, NULL, &c, NULL) != 0)
            return 1;
        lat[i] = now() - t0;
    }
    report("checkpoint open (verify)", lat, ns);
    printf("checkpoint: %zu bytes\n", cp.len);

    ann_note_signer_release(&s);
    ann_buf_release(&cp);
    ann_buf_release(&fb);
    ann_buf_release(&body);
    ann_buf_release(&l);
    free(lat);
    for (int k = 0; k < 64; k++)
        free(t.level[k]);
    free(t.leaf);
    return 0;
}
