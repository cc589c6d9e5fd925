/*
 * integrity_vectors: prints what src/domain/merkle.c and note.c compute for a made-up log, as
 * one JSON document, for tests/integrity/test_domain_vectors.py to recompute with its own
 * verifier (tests/integrity/verifier.py, written from RFC 9162, the C2SP specs and issue 10,
 * not from this code).
 *
 *   integrity_vectors SEED MAX_SIZE [EXTRA_SIZE...]
 *
 * Entries 1..max(MAX_SIZE, EXTRA_SIZE...) are made up from SEED (labels out of order and
 * repeated, text, JSON and no payload, UTF-8, negative times, redacted entries). Printed:
 * each entry as a client would see it with its salt (none when redacted) and the C side's
 * body_hash and leaf hash; for every size 1..MAX_SIZE and each EXTRA_SIZE the root, some
 * inclusion proofs (every leaf up to size 64) and consistency proofs (every first size up to
 * 64); a verifier key and a checkpoint signed over the largest size.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "domain/merkle.h"
#include "domain/note.h"

#define H ANN_HASH_LEN

static uint64_t rng;

static uint64_t next(void) /* splitmix64 */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void hex(const uint8_t *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    putchar('"');
}

/* Random text: ASCII letters and a few multi-byte characters (é, €, 😀). */
static void rand_text(ann_buf *b, size_t max)
{
    static const char *pieces[] = {
        "a", "b", "Z", "0", " ", "-", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\"", "\\"};
    size_t n = next() % (max + 1);
    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[next() % (sizeof pieces / sizeof pieces[0])];
        ann_buf_add(b, p, strlen(p));
    }
}

typedef struct tree {
    uint8_t (*leaf)[H];
    uint64_t n;
} tree;

/* Complete subtree hashes straight from the leaves (fine for a few thousand). */
static int subtree(void *ud, uint64_t start, unsigned level, uint8_t out[H], ann_err *err)
{
    (void)err;
    const tree *t = ud;
    if (level == 0) {
        memcpy(out, t->leaf[start], H);
        return 0;
    }
    uint8_t l[H], r[H];
    uint64_t half = (uint64_t)1 << (level - 1);
    subtree(ud, start, level - 1, l, err);
    subtree(ud, start + half, level - 1, r, err);
    ann_merkle_node_hash(l, r, out);
    return 0;
}

static void print_proof(const uint8_t (*p)[H], size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            putchar(',');
        hex(p[i], H);
    }
    putchar(']');
}

static void print_size(tree *t, uint64_t size, int *first_size)
{
    uint8_t root[H], p[ANN_MERKLE_MAX_PROOF][H];
    size_t n;
    ann_merkle_root(size, subtree, t, root, NULL);
    printf("%s\n{\"size\":%" PRIu64 ",\"root\":", *first_size ? "" : ",", size);
    *first_size = 0;
    hex(root, H);
    printf(",\"inclusion\":[");
    int first = 1;
    for (uint64_t m = 0; m < size; m++) {
        if (size > 64 && !(m < 3 || m + 3 >= size || next() % size < 6))
            continue;
        ann_merkle_inclusion_proof(m, size, subtree, t, p, &n, NULL);
        printf("%s{\"index\":%" PRIu64 ",\"hashes\":", first ? "" : ",", m);
        print_proof((const uint8_t(*)[H])p, n);
        putchar('}');
        first = 0;
    }
    printf("],\"consistency\":[");
    first = 1;
    for (uint64_t f = 1; f <= size; f++) {
        if (size > 64 && !(f < 3 || f + 3 >= size || (f & (f - 1)) == 0 || next() % size < 6))
            continue;
        ann_merkle_consistency_proof(f, size, subtree, t, p, &n, NULL);
        printf("%s{\"first\":%" PRIu64 ",\"hashes\":", first ? "" : ",", f);
        print_proof((const uint8_t(*)[H])p, n);
        putchar('}');
        first = 0;
    }
    printf("]}");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: integrity_vectors SEED MAX_SIZE [EXTRA_SIZE...]\n");
        return 2;
    }
    rng = strtoull(argv[1], NULL, 10);
    uint64_t max = strtoull(argv[2], NULL, 10), total = max;
    for (int i = 3; i < argc; i++)
        if (strtoull(argv[i], NULL, 10) > total)
            total = strtoull(argv[i], NULL, 10);
    tree t = {.leaf = calloc(total ? total : 1, H), .n = total};
    static const char *keys[] = {"job", "jo", "zone", "env", "Job", "\xc3\xa9tape", "a", ""};

    printf("{\"entries\":[");
    for (uint64_t id = 1; id <= total; id++) {
        ann_buf body = ANN_BUF_INIT, iid = ANN_BUF_INIT, tmp = ANN_BUF_INIT;
        printf("%s\n{\"entry_id\":%" PRIu64, id > 1 ? "," : "", id);
        ann_entry e = {.entry_id = id};
        e.time_ns = (int64_t)(next() % 4000000000000000000ull) - 1000000000000000000ll;
        e.insert_time_ns = (int64_t)(next() >> 2);
        e.severity = (int32_t)(next() % 10) * 100;
        if (next() % 3 == 0) {
            char s[64];
            int n = snprintf(s, sizeof s, "%016" PRIx64 "/%" PRIu64, next(), id % 7);
            ann_buf_add(&iid, s, (size_t)n);
        } else {
            rand_text(&iid, 20);
            if (iid.len == 0)
                ann_buf_add_byte(&iid, 'x');
        }
        e.insert_id = (const char *)iid.data;
        e.insert_id_len = iid.len;
        printf(",\"time_ns\":%" PRId64 ",\"insert_time_ns\":%" PRId64 ",\"severity\":%d", e.time_ns,
               e.insert_time_ns, e.severity);
        printf(",\"insert_id\":");
        hex(iid.data, iid.len);

        /* Labels as the body holds them (order kept, repeats kept). */
        printf(",\"labels\":[");
        size_t nl = next() % 6;
        for (size_t i = 0; i < nl; i++) {
            const char *k = keys[next() % (sizeof keys / sizeof keys[0])];
            ann_buf v = ANN_BUF_INIT, l = ANN_BUF_INIT;
            rand_text(&v, 12);
            ann_buf_add_len_field(&l, 1, k, strlen(k));
            ann_buf_add_len_field(&l, 2, v.data, v.len);
            ann_buf_add_len_field(&body, 23, l.data, l.len);
            printf("%s[", i ? "," : "");
            hex((const uint8_t *)k, strlen(k));
            putchar(',');
            hex(v.data, v.len);
            putchar(']');
            ann_buf_release(&v);
            ann_buf_release(&l);
        }
        printf("]");
        unsigned kind = (unsigned)(next() % 3);
        if (kind == 1) {
            rand_text(&tmp, 40);
            ann_buf_add_len_field(&body, 30, tmp.data, tmp.len);
            printf(",\"text\":");
            hex(tmp.data, tmp.len);
        } else if (kind == 2) {
            /* Struct { fields { key: "k"; value { string_value: ... } } }: opaque bytes to the
             * tree, as the server stores and returns them. */
            ann_buf val = ANN_BUF_INIT, fe = ANN_BUF_INIT, s = ANN_BUF_INIT, str = ANN_BUF_INIT;
            rand_text(&str, 16);
            ann_buf_add_len_field(&val, 3, str.data, str.len);
            ann_buf_add_len_field(&fe, 1, "k", 1);
            ann_buf_add_len_field(&fe, 2, val.data, val.len);
            ann_buf_add_len_field(&s, 1, fe.data, fe.len);
            ann_buf_add_len_field(&body, 31, s.data, s.len);
            printf(",\"json\":");
            hex(s.data, s.len);
            ann_buf_release(&val), ann_buf_release(&fe), ann_buf_release(&s);
            ann_buf_release(&str);
        }
        uint8_t salt[ANN_BODY_SALT_LEN], bh[H];
        for (int i = 0; i < ANN_BODY_SALT_LEN; i++)
            salt[i] = (uint8_t)next();
        if (ann_entry_body_hash(salt, body.data, body.len, bh, NULL) != 0)
            return 1;
        bool redacted = next() % 20 == 0;
        if (redacted) {
            printf(",\"redacted\":true");
        } else {
            printf(",\"body_salt\":");
            hex(salt, sizeof salt);
        }
        printf(",\"body_hash\":");
        hex(bh, H);
        ann_entry_leaf_hash(&e, bh, t.leaf[id - 1]);
        printf(",\"leaf_hash\":");
        hex(t.leaf[id - 1], H);
        putchar('}');
        ann_buf_release(&body);
        ann_buf_release(&iid);
        ann_buf_release(&tmp);
    }
    printf("],\"sizes\":[");
    int first_size = 1;
    for (uint64_t s = 1; s <= max; s++)
        print_size(&t, s, &first_size);
    for (int i = 3; i < argc; i++)
        print_size(&t, strtoull(argv[i], NULL, 10), &first_size);

    /* A deployment key from the seed, and a checkpoint of the whole log. */
    uint8_t seed[32], root[H];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)next();
    ann_note_signer s;
    ann_note_verifier v;
    ann_buf vk = ANN_BUF_INIT, cp = ANN_BUF_INIT;
    if (ann_note_signer_init(&s, ANN_NOTE_NAME_DEFAULT, seed, NULL) != 0)
        return 1;
    ann_note_verifier_of(&s, &v);
    ann_note_verifier_format(&v, &vk);
    const char *log_id = "7d0f3c2e-4a51-4b8e-9c6d-1e2f3a4b5c6d";
    ann_merkle_root(total, subtree, &t, root, NULL);
    if (ann_checkpoint_sign(&s, log_id, total, root, &cp, NULL) != 0)
        return 1;
    printf("],\n\"log_id\":\"%s\",\"verifier_key\":\"%.*s\",\"checkpoint\":", log_id, (int)vk.len,
           (const char *)vk.data);
    hex(cp.data, cp.len);
    printf("}\n");
    ann_note_signer_release(&s);
    ann_buf_release(&vk);
    ann_buf_release(&cp);
    free(t.leaf);
    return 0;
}
