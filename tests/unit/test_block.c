/* Sealed blocks (store/embedded/block.h): round trips, the filter, corruption, lies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include <cmocka.h>

#include "blk_reseal.h"
#include "domain/integrity.h"
#include "store/embedded/block.h"
#include "store/embedded/hash.h"

/* ---------- helpers ---------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Entries whose strings live in `store` (one buffer per entry, freed by set_free). */
typedef struct set {
    ann_entry *e;
    ann_buf *bodies;
    char **iids;
    size_t n;
} set;

static void set_init(set *s, size_t n)
{
    s->e = calloc(n, sizeof *s->e);
    s->bodies = calloc(n, sizeof *s->bodies);
    s->iids = calloc(n, sizeof *s->iids);
    s->n = n;
}

static void set_free(set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        ann_buf_release(&s->bodies[i]);
        free(s->iids[i]);
    }
    free(s->e);
    free(s->bodies);
    free(s->iids);
}

/* Entry i: insert id (iid, iid_len), body from s->bodies[i] as filled so far. */
static void set_entry(set *s, size_t i, const void *iid, size_t iid_len, int64_t t, int64_t it,
                      int32_t sev, uint32_t flags)
{
    s->iids[i] = malloc(iid_len ? iid_len : 1);
    memcpy(s->iids[i], iid, iid_len);
    s->e[i] = (ann_entry){.entry_id = 999,
                          .time_ns = t,
                          .insert_time_ns = it,
                          .severity = sev,
                          .flags = flags,
                          .insert_id = s->iids[i],
                          .insert_id_len = iid_len,
                          .body = s->bodies[i].data,
                          .body_len = s->bodies[i].len};
}

/* LogEntry field 23: Label { key = 1; value = 2; } */
static void add_label(ann_buf *b, const char *k, const void *v, size_t vn)
{
    ann_buf l = ANN_BUF_INIT;
    ann_buf_add_len_field(&l, 1, k, strlen(k));
    ann_buf_add_len_field(&l, 2, v, vn);
    ann_buf_add_len_field(b, 23, l.data, l.len);
    ann_buf_release(&l);
}

/* A google.protobuf.Value of string_value (3). */
static void value_string(ann_buf *v, const void *s, size_t n)
{
    ann_buf_add_len_field(v, 3, s, n);
}

/* A Struct field: FieldsEntry { key = 1; Value value = 2; } as Struct field 1. */
static void struct_field(ann_buf *st, const char *key, const ann_buf *value)
{
    ann_buf fe = ANN_BUF_INIT;
    ann_buf_add_len_field(&fe, 1, key, strlen(key));
    ann_buf_add_len_field(&fe, 2, value->data, value->len);
    ann_buf_add_len_field(st, 1, fe.data, fe.len);
    ann_buf_release(&fe);
}

/* {"msg": s1, "ctx": {"list": [s2, 1.5]}} as LogEntry field 31. */
static void add_json(ann_buf *b, const void *s1, size_t n1, const void *s2, size_t n2)
{
    ann_buf st = ANN_BUF_INIT, v = ANN_BUF_INIT, lv = ANN_BUF_INIT, inner = ANN_BUF_INIT,
            tmp = ANN_BUF_INIT;
    value_string(&v, s1, n1);
    struct_field(&st, "msg", &v);
    v.len = 0;
    value_string(&v, s2, n2);
    ann_buf_add_len_field(&lv, 1, v.data, v.len); /* ListValue.values */
    v.len = 0;
    ann_buf_add_tag(&v, 2, 1); /* number_value 1.5 */
    uint64_t d = 0x3FF8000000000000u;
    for (int i = 0; i < 8; i++)
        ann_buf_add_byte(&v, (uint8_t)(d >> (8 * i)));
    ann_buf_add_len_field(&lv, 1, v.data, v.len);
    v.len = 0;
    ann_buf_add_len_field(&v, 6, lv.data, lv.len); /* list_value */
    struct_field(&inner, "list", &v);
    ann_buf_add_len_field(&tmp, 5, inner.data, inner.len); /* struct_value */
    struct_field(&st, "ctx", &tmp);
    ann_buf_add_len_field(b, 31, st.data, st.len);
    ann_buf_release(&st);
    ann_buf_release(&v);
    ann_buf_release(&lv);
    ann_buf_release(&inner);
    ann_buf_release(&tmp);
}

static void add_text(ann_buf *b, const void *s, size_t n)
{
    ann_buf_add_len_field(b, 30, s, n);
}

static void encode_ok(const set *s, uint64_t first_id, ann_buf *out, ann_blk_header *h)
{
    ann_err err;
    out->len = 0;
    assert_int_equal(ann_blk_encode(s->e, s->n, first_id, 7, 4242, 3, out, &err), 0);
    assert_int_equal(ann_blk_header_decode(out->data, out->len, h, &err), 0);
    assert_int_equal(h->total_len, out->len);
    assert_int_equal(ann_blk_check(out->data, out->len, h, &err), 0);
    assert_int_equal(ann_blk_filter_check(out->data + ann_blk_filter_off(h), h, &err), 0);
}

/* Every field of every entry comes back, through the view and through the two loaders. */
static void check_roundtrip(const set *s, uint64_t first_id)
{
    ann_buf b = ANN_BUF_INIT;
    ann_blk_header h;
    ann_err err;
    encode_ok(s, first_id, &b, &h);
    assert_int_equal(h.first_id, first_id);
    assert_int_equal(h.count, s->n);
    assert_int_equal(h.gen, 7);
    assert_int_equal(h.dat_end, 4242);
    assert_int_equal(h.flags, 0);

    ann_blk_view v;
    assert_int_equal(ann_blk_view_open(b.data, b.len, &h, &v, &err), 0);
    assert_int_equal(v.n, s->n);
    int64_t lo = INT64_MAX, hi = INT64_MIN, ilo = INT64_MAX, ihi = INT64_MIN;
    for (size_t i = 0; i < s->n; i++) {
        const ann_entry *a = &s->e[i], *x = &v.e[i];
        assert_int_equal(x->entry_id, first_id + i);
        assert_true(x->time_ns == a->time_ns && x->insert_time_ns == a->insert_time_ns);
        assert_int_equal(x->severity, a->severity);
        assert_int_equal(x->flags, a->flags);
        assert_int_equal(x->insert_id_len, a->insert_id_len);
        assert_memory_equal(x->insert_id, a->insert_id, a->insert_id_len);
        if (a->flags & ANN_ENTRY_REDACTED) {
            assert_int_equal(x->body_len, 0);
        } else {
            assert_int_equal(x->body_len, a->body_len);
            if (a->body_len)
                assert_memory_equal(x->body, a->body, a->body_len);
        }
        assert_null(x->revocation);
        lo = a->time_ns < lo ? a->time_ns : lo;
        hi = a->time_ns > hi ? a->time_ns : hi;
        ilo = a->insert_time_ns < ilo ? a->insert_time_ns : ilo;
        ihi = a->insert_time_ns > ihi ? a->insert_time_ns : ihi;
    }
    assert_true(h.min_time_ns == lo && h.max_time_ns == hi);
    assert_true(h.min_insert_time_ns == ilo && h.max_insert_time_ns == ihi);
    ann_blk_view_release(&v);

    /* The loader's path: header + meta + iid only (no body bytes in the buffer). */
    size_t n = s->n, idx = (size_t)ann_blk_index_end(&h);
    int64_t *t = malloc(n * 8), *it = malloc(n * 8);
    int32_t *sev = malloc(n * 4);
    uint32_t *fl = malloc(n * 4);
    const char **iid = malloc(n * sizeof *iid);
    size_t *iid_len = malloc(n * sizeof *iid_len);
    uint8_t *head = malloc(idx);
    memcpy(head, b.data, idx);
    ann_buf raw = ANN_BUF_INIT;
    assert_int_equal(ann_blk_decode_meta(head, idx, &h, t, it, sev, fl, &err), 0);
    assert_int_equal(ann_blk_decode_iids(head, idx, &h, &raw, iid, iid_len, &err), 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(t[i] == s->e[i].time_ns && it[i] == s->e[i].insert_time_ns);
        assert_true(sev[i] == s->e[i].severity && fl[i] == s->e[i].flags);
        assert_int_equal(iid_len[i], s->e[i].insert_id_len);
        assert_memory_equal(iid[i], s->e[i].insert_id, iid_len[i]);
    }
    /* Each section is one standard zstd frame. */
    size_t body_raw = h.body_raw;
    uint8_t *plain = malloc(body_raw);
    assert_int_equal(ZSTD_decompress(plain, body_raw, b.data + ann_blk_index_end(&h), h.body_zlen),
                     body_raw);
    free(plain);
    /* Deterministic: the same entries give the same bytes. */
    ann_buf b2 = ANN_BUF_INIT;
    ann_blk_header h2;
    encode_ok(s, first_id, &b2, &h2);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    ann_buf_release(&b2);
    ann_buf_release(&raw);
    free(head);
    free(t);
    free(it);
    free(sev);
    free(fl);
    free(iid);
    free(iid_len);
    ann_buf_release(&b);
}

/* ---------- round trips ---------- */

static void test_roundtrip_fields(void **state)
{
    (void)state;
    set s;
    set_init(&s, 8);
    static const char nul_iid[] = "id\0with\0nuls";
    static const char emoji[] = "deploy \xF0\x9F\x9A\x80 done \xE2\x9C\x85";
    add_text(&s.bodies[0], "plain text", 10);
    set_entry(&s, 0, "job-42:17", 9, 1700000000000000000, 1700000000000000100, 0, 0);
    add_label(&s.bodies[1], "stream", "stderr", 6);
    add_label(&s.bodies[1], "k\0", "v\0v", 3);
    add_text(&s.bodies[1], "a\0b\0c", 5);
    set_entry(&s, 1, nul_iid, sizeof nul_iid - 1, 1699999999000000000, 1700000000000000100, 900, 0);
    add_json(&s.bodies[2], emoji, strlen(emoji), "nested \0 value", 14);
    set_entry(&s, 2, emoji, strlen(emoji), -5, -7, -1, 0x80000000u);
    /* redacted, handed a body anyway: stored empty */
    add_text(&s.bodies[3], "secret payload", 14);
    set_entry(&s, 3, "r", 1, 3, 3, 500, ANN_ENTRY_REDACTED);
    set_entry(&s, 4, "empty body", 10, 4, 4, INT32_MIN, 0);
    set_entry(&s, 5, "max sev", 7, 5, 5, INT32_MAX, ANN_ENTRY_REDACTED);
    char big_iid[300];
    memset(big_iid, 'x', sizeof big_iid);
    add_text(&s.bodies[6], "", 0);
    set_entry(&s, 6, big_iid, sizeof big_iid, 6, 6, 100, 0);
    add_label(&s.bodies[7], "only", "labels", 6);
    set_entry(&s, 7, "\xff\x00\x80", 3, 6, 6, 200, 0);
    check_roundtrip(&s, 1);
    check_roundtrip(&s, UINT64_MAX - 7); /* the last ids there are */
    set_free(&s);
}

/* n entries of random words (some upper case, some multi-byte UTF-8) with labels and JSON. */
static void random_set(set *s, size_t n, int64_t t0)
{
    static const char *words[] = {"error", "Build",  "test",     "PASSED",  "FAILED",
                                  "java",  "at",     "com.acme", "ms",      "\xC3\xA9t\xC3\xA9",
                                  "0x1f",  "Linker", "warning",  "[42/97]", "\xE2\x9C\x93",
                                  "Step"};
    set_init(s, n);
    for (size_t i = 0; i < n; i++) {
        char text[512], iid[32];
        size_t tl = 0, nw = 1 + rnd() % 30;
        for (size_t w = 0; w < nw; w++) {
            const char *x = words[rnd() % (sizeof words / sizeof *words)];
            tl += (size_t)snprintf(text + tl, sizeof text - tl, "%s%s%u", w ? " " : "", x,
                                   (unsigned)(rnd() % 1000));
        }
        const char *job = i % 2 ? "build-linux" : "Test-Win";
        add_label(&s->bodies[i], "job", job, strlen(job));
        if (i % 5 == 0)
            add_json(&s->bodies[i], text, tl, words[i % 16], strlen(words[i % 16]));
        else
            add_text(&s->bodies[i], text, tl);
        int n2 = snprintf(iid, sizeof iid, "job-%zu:%zu", i / 100, i);
        uint32_t fl = (rnd() % 17 == 0) ? ANN_ENTRY_REDACTED : 0;
        set_entry(s, i, iid, (size_t)n2, t0 + (int64_t)(i * 1000) - (int64_t)(rnd() % 5000),
                  t0 + (int64_t)(i / 1000) * 1000000, (int32_t)(rnd() % 9) * 100, fl);
    }
}

static void test_count_one_and_65536(void **state)
{
    (void)state;
    set s;
    set_init(&s, 1);
    add_text(&s.bodies[0], "one", 3);
    set_entry(&s, 0, "only", 4, 42, 43, 300, 0);
    check_roundtrip(&s, 1);
    set_free(&s);

    random_set(&s, 65536, 1700000000000000000);
    check_roundtrip(&s, 1000001);
    set_free(&s);
}

static void test_extreme_times(void **state)
{
    (void)state;
    static const int64_t times[] = {INT64_MAX,     INT64_MIN,    0, -1, INT64_MAX, 5, INT64_MIN, 1,
                                    INT64_MIN + 1, INT64_MAX - 1};
    size_t n = sizeof times / sizeof *times;
    set s;
    set_init(&s, n);
    for (size_t i = 0; i < n; i++) {
        char iid[8];
        snprintf(iid, sizeof iid, "t%zu", i);
        add_text(&s.bodies[i], "x", 1);
        set_entry(&s, i, iid, strlen(iid), times[i], times[n - 1 - i] / 3, 0, 0);
    }
    check_roundtrip(&s, 5);
    set_free(&s);
    /* All equal: min == max. */
    set_init(&s, 3);
    for (size_t i = 0; i < 3; i++)
        set_entry(&s, i, "same", 4, INT64_MIN, INT64_MIN, 0, 0);
    check_roundtrip(&s, 1);
    set_free(&s);
}

static void test_encode_rejects(void **state)
{
    (void)state;
    set s;
    set_init(&s, 2);
    set_entry(&s, 0, "a", 1, 0, 0, 0, 0);
    set_entry(&s, 1, "b", 1, 0, 0, 0, 0);
    ann_buf out = ANN_BUF_INIT;
    ann_buf_add(&out, "prefix", 6);
    ann_err err;
    assert_int_equal(ann_blk_encode(s.e, 0, 1, 0, 0, 3, &out, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_int_equal(ann_blk_encode(s.e, ANN_BLK_MAX_COUNT + 1, 1, 0, 0, 3, &out, &err), -1);
    assert_int_equal(ann_blk_encode(s.e, 2, 0, 0, 0, 3, &out, &err), -1);
    assert_int_equal(ann_blk_encode(s.e, 2, UINT64_MAX, 0, 0, 3, &out, &err), -1);
    assert_int_equal(ann_blk_encode(s.e, 2, 1, 0, 0, ZSTD_maxCLevel() + 1, &out, &err), -1);
    s.e[1].insert_id_len = 0;
    assert_int_equal(ann_blk_encode(s.e, 2, 1, 0, 0, 3, &out, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    s.e[1].insert_id_len = 1;
    /* 65 bodies of 1 MiB: more than a section holds (refused before compressing) */
    size_t big = 1 << 20, nb = 65;
    uint8_t *body = calloc(1, big);
    ann_entry *many = calloc(nb, sizeof *many);
    for (size_t i = 0; i < nb; i++)
        many[i] = (ann_entry){.insert_id = "i", .insert_id_len = 1, .body = body, .body_len = big};
    assert_int_equal(ann_blk_encode(many, nb, 1, 0, 0, 3, &out, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_int_equal(out.len, 6);
    /* Level 0 is the default (3); negative levels work too. */
    assert_int_equal(ann_blk_encode(s.e, 2, 1, 0, 0, 0, &out, &err), 0);
    assert_int_equal(ann_blk_encode(s.e, 2, 3, 0, 0, -5, &out, &err), 0);
    ann_blk_header h;
    assert_int_equal(ann_blk_header_decode(out.data + 6, out.len - 6, &h, &err), 0);
    assert_int_equal(
        ann_blk_header_decode(out.data + 6 + h.total_len, out.len - 6 - h.total_len, &h, &err), 0);
    assert_int_equal(h.first_id, 3);
    free(many);
    free(body);
    ann_buf_release(&out);
    set_free(&s);
}

/* ---------- the filter ---------- */

typedef struct strs {
    ann_buf all; /* strings, each preceded by a 4-byte length */
} strs;

static int collect(ann_body_kind kind, const uint8_t *p, size_t n, void *ud)
{
    (void)kind;
    strs *c = ud;
    uint32_t l = (uint32_t)n;
    ann_buf_add(&c->all, &l, 4);
    ann_buf_add(&c->all, p, n);
    return 0;
}

static bool truth(const set *s, const ann_matcher *m)
{
    for (size_t i = 0; i < s->n; i++)
        if (!(s->e[i].flags & ANN_ENTRY_REDACTED) &&
            ann_body_matches(m, s->e[i].body, s->e[i].body_len))
            return true;
    return false;
}

static bool may(const ann_buf *b, const ann_blk_header *h, const void *q, size_t n, bool icase)
{
    ann_matcher m;
    ann_matcher_init(&m, q, n, icase);
    return ann_blk_filter_may_match(b->data + ann_blk_filter_off(h), h->filter_len, &m);
}

static void test_filter_no_false_negatives(void **state)
{
    (void)state;
    set s;
    random_set(&s, 300, 0);
    ann_buf b = ANN_BUF_INIT;
    ann_blk_header h;
    encode_ok(&s, 1, &b, &h);
    strs c = {ANN_BUF_INIT};
    for (size_t i = 0; i < s.n; i++)
        if (!(s.e[i].flags & ANN_ENTRY_REDACTED))
            ann_body_strings(s.e[i].body, s.e[i].body_len, collect, &c);
    size_t checked = 0;
    for (size_t off = 0; off < c.all.len;) {
        uint32_t l;
        memcpy(&l, c.all.data + off, 4);
        const uint8_t *p = c.all.data + off + 4;
        for (size_t i = 0; i < l; i++)
            for (size_t n = 3; n <= 12 && i + n <= l; n++) {
                uint8_t q[12];
                memcpy(q, p + i, n);
                assert_true(may(&b, &h, q, n, false));
                for (size_t j = 0; j < n; j++) /* flip ASCII case at random */
                    if (rnd() % 2 && ((q[j] | 32) >= 'a' && (q[j] | 32) <= 'z'))
                        q[j] ^= 32;
                assert_true(may(&b, &h, q, n, true));
                checked++;
            }
        off += 4 + l;
    }
    assert_true(checked > 100000);

    /* Random queries, some spanning a label value and the text: whenever an entry really
     * matches, the filter must say so; how often it passes the rest is only counted. */
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789 -.[]/";
    size_t hits = 0, fp = 0, absent = 0;
    for (int k = 0; k < 4000; k++) {
        uint8_t q[16];
        size_t n = 3 + rnd() % 6;
        for (size_t j = 0; j < n; j++)
            q[j] = (uint8_t)alpha[rnd() % (sizeof alpha - 1)];
        bool icase = k % 2;
        ann_matcher m;
        ann_matcher_init(&m, q, n, icase);
        bool t = truth(&s, &m), f = may(&b, &h, q, n, icase);
        if (t) {
            assert_true(f);
            hits++;
        } else {
            absent++;
            fp += f;
        }
    }
    for (size_t i = 0; i < s.n; i++) { /* label value "...linux" + text "..." */
        char q[32];
        size_t n = (size_t)snprintf(q, sizeof q, "%s%.4s", i % 2 ? "linux" : "t-Win",
                                    (const char *)s.e[i].body + s.e[i].body_len - 4);
        ann_matcher m;
        ann_matcher_init(&m, (const uint8_t *)q, n, false);
        if (truth(&s, &m))
            assert_true(may(&b, &h, q, n, false));
    }
    print_message("filter: %zu substrings found; random queries: %zu true hits, %zu of %zu "
                  "absent passed the filter\n",
                  checked, hits, fp, absent);
    assert_true(fp * 4 < absent); /* the filter does filter */
    ann_buf_release(&c.all);
    ann_buf_release(&b);
    set_free(&s);
}

static void test_filter_edges(void **state)
{
    (void)state;
    set s;
    set_init(&s, 3);
    for (size_t i = 0; i < 3; i++) {
        add_text(&s.bodies[i], "classified words", 16);
        add_label(&s.bodies[i], "who", "Mallory", 7);
        set_entry(&s, i, "x", 1, 0, 0, 0, ANN_ENTRY_REDACTED);
    }
    ann_buf b = ANN_BUF_INIT;
    ann_blk_header h;
    encode_ok(&s, 1, &b, &h);
    const uint8_t *f = b.data + ann_blk_filter_off(&h);
    assert_int_equal(h.filter_len, 8); /* no trigram: no bits */
    assert_int_equal(ann_le32_get(f + 4), 0);
    assert_false(may(&b, &h, "classified", 10, false));
    assert_false(may(&b, &h, "mallory", 7, true));
    assert_true(may(&b, &h, "cl", 2, false)); /* short queries pass every filter */
    set_free(&s);

    /* One visible entry: what it holds passes, case folded; a query spanning two strings
     * does not, whatever the filter says, matter: only a true match must pass. */
    set_init(&s, 1);
    add_label(&s.bodies[0], "host", "Alpha", 5);
    add_text(&s.bodies[0], "Bravo", 5);
    set_entry(&s, 0, "y", 1, 0, 0, 0, 0);
    encode_ok(&s, 1, &b, &h);
    f = b.data + ann_blk_filter_off(&h);
    assert_int_equal(ann_le32_get(f + 4), 6); /* alp lph pha bra rav avo */
    assert_true(may(&b, &h, "Alpha", 5, false) && may(&b, &h, "ALPHA", 5, false));
    assert_true(may(&b, &h, "lpha", 4, true) && may(&b, &h, "bravo", 5, false));
    assert_false(may(&b, &h, "zzzzzzzz", 8, false));
    ann_matcher m;
    ann_matcher_init(&m, (const uint8_t *)"zzz", 3, false);
    assert_true(ann_blk_filter_may_match(f, 0, &m)); /* no filter */
    uint8_t other[16] = {2, 2};
    assert_true(ann_blk_filter_may_match(other, sizeof other, &m)); /* unknown version */
    ann_buf_release(&b);
    set_free(&s);
}

/* The encoder keeps the distinct trigrams in a table for small inputs and in a 2^24-bit map
 * for large ones: the filter must not depend on which. The same strings, once with label
 * keys (not searched) big enough to push the input past the table's limit. */
static void test_filter_same_both_ways(void **state)
{
    (void)state;
    set small, large;
    random_set(&small, 200, 0);
    set_init(&large, 200);
    char key[1024];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = 0;
    for (size_t i = 0; i < 200; i++) {
        add_label(&large.bodies[i], key, "", 0);
        ann_buf_add(&large.bodies[i], small.bodies[i].data, small.bodies[i].len);
        set_entry(&large, i, small.e[i].insert_id, small.e[i].insert_id_len, 0, 0, 0,
                  small.e[i].flags);
    }
    ann_buf a = ANN_BUF_INIT, b = ANN_BUF_INIT;
    ann_blk_header ha, hb;
    encode_ok(&small, 1, &a, &ha);
    encode_ok(&large, 1, &b, &hb);
    assert_true(hb.body_raw > 200 * 1024); /* past the table's limit (64 KiB) */
    assert_true(ha.body_raw < 64 * 1024);
    assert_true(ha.filter_len > 8);
    assert_int_equal(ha.filter_len, hb.filter_len);
    assert_memory_equal(a.data + ann_blk_filter_off(&ha), b.data + ann_blk_filter_off(&hb),
                        ha.filter_len);
    ann_buf_release(&a);
    ann_buf_release(&b);
    set_free(&small);
    set_free(&large);
}

/* ---------- damage ---------- */

static void small_block(ann_buf *b, ann_blk_header *h, size_t n)
{
    set s;
    random_set(&s, n, 1000);
    encode_ok(&s, 10, b, h);
    set_free(&s);
}

static void test_every_byte_flip_is_caught(void **state)
{
    (void)state;
    ann_buf b = ANN_BUF_INIT;
    ann_blk_header h, x;
    small_block(&b, &h, 30);
    ann_err err;
    ann_blk_view v;
    for (size_t off = 0; off < b.len; off++) {
        for (int k = 0; k < 2; k++) {
            uint8_t mask = k ? 0xFF : (uint8_t)(1u << (off % 8));
            b.data[off] ^= mask;
            bool bad_hdr = ann_blk_header_decode(b.data, b.len, &x, &err) != 0;
            assert_true(bad_hdr || ann_blk_check(b.data, b.len, &x, &err) != 0);
            assert_int_equal(err.code, ANN_ECORRUPT);
            /* Without the whole-block CRC, the section CRCs catch it too. */
            if (!bad_hdr) {
                bool caught = ann_blk_view_open(b.data, b.len, &x, &v, &err) != 0;
                if (!caught) {
                    ann_blk_view_release(&v);
                    caught = ann_blk_filter_check(b.data + ann_blk_filter_off(&x), &x, &err) != 0;
                }
                assert_true(caught);
            }
            b.data[off] ^= mask;
        }
    }
    assert_int_equal(ann_blk_header_decode(b.data, b.len, &x, &err), 0);
    assert_int_equal(ann_blk_check(b.data, b.len, &x, &err), 0);
    ann_buf_release(&b);
}

static void test_truncation_fails_cleanly(void **state)
{
    (void)state;
    ann_buf b = ANN_BUF_INIT;
    ann_blk_header h, x;
    small_block(&b, &h, 40);
    ann_err err;
    int64_t t[40], it[40];
    int32_t sev[40];
    uint32_t fl[40];
    const char *iid[40];
    size_t iid_len[40];
    ann_buf raw = ANN_BUF_INIT;
    for (size_t len = 0; len < b.len; len++) {
        uint8_t *p = malloc(len ? len : 1); /* exactly len bytes: ASan sees any overread */
        memcpy(p, b.data, len);
        if (len < ANN_BLK_HDR_LEN) {
            assert_int_equal(ann_blk_header_decode(p, len, &x, &err), -1);
            assert_int_equal(err.code, ANN_ECORRUPT);
            free(p);
            continue;
        }
        assert_int_equal(ann_blk_header_decode(p, len, &x, &err), 0);
        assert_int_equal(ann_blk_check(p, len, &x, &err), -1);
        assert_int_equal(err.code, ANN_ECORRUPT);
        ann_blk_view v;
        int rc = ann_blk_view_open(p, len, &x, &v, &err);
        assert_int_equal(rc, len < ann_blk_body_end(&x) ? -1 : 0);
        if (rc == 0)
            ann_blk_view_release(&v);
        rc = ann_blk_decode_meta(p, len, &x, t, it, sev, fl, &err);
        assert_int_equal(rc, len < ANN_BLK_HDR_LEN + x.meta_zlen ? -1 : 0);
        rc = ann_blk_decode_iids(p, len, &x, &raw, iid, iid_len, &err);
        assert_int_equal(rc, len < ann_blk_index_end(&x) ? -1 : 0);
        free(p);
    }
    ann_buf_release(&raw);
    ann_buf_release(&b);
}

/* Rewrites header field (offset off, 4 or 8 bytes) and fixes hdr_crc. */
static void forge(uint8_t *p, size_t off, uint64_t v, size_t width)
{
    if (width == 4)
        ann_le32_put(p + off, (uint32_t)v);
    else
        ann_le64_put(p + off, v);
    ann_le32_put(p + 4, ann_crc32c(0, p + 8, ANN_BLK_HDR_LEN - 8));
}

/* Refixes every CRC after the sections were edited by hand. */
static void fix_crcs(uint8_t *p, size_t len)
{
    ann_blk_header h;
    ann_err err;
    blk_reseal(p, len);
    assert_int_equal(ann_blk_header_decode(p, len, &h, &err), 0);
}

static void expect_corrupt(const uint8_t *p, size_t len)
{
    ann_blk_header h;
    ann_blk_view v;
    ann_err err;
    int rc = ann_blk_header_decode(p, len, &h, &err);
    if (rc == 0)
        rc = ann_blk_view_open(p, len, &h, &v, &err);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, ANN_ECORRUPT);
}

static void test_header_lies(void **state)
{
    (void)state;
    ann_buf b = ANN_BUF_INIT;
    ann_blk_header h;
    small_block(&b, &h, 20);
    uint8_t *p = malloc(b.len);
    struct {
        size_t off, width;
        uint64_t v;
    } lies[] = {
        {24, 4, 21},                    /* count + 1 */
        {24, 4, 19},                    /* count - 1 */
        {24, 4, 0},                     /* no entries */
        {24, 4, ANN_BLK_MAX_COUNT + 1}, /* too many */
        {16, 8, 0},                     /* first id 0 */
        {16, 8, UINT64_MAX - 5},        /* ids overflow */
        {32, 8, (uint64_t)INT64_MAX},   /* min time > max time */
        {40, 8, 0},                     /* max time wrong */
        {48, 8, 1},                     /* min insert time wrong */
        {76, 4, ANN_BLK_MAX_RAW},       /* meta raw beyond 30 bytes per entry */
        {84, 4, ANN_BLK_MAX_RAW},       /* iid raw: frame says otherwise */
        {84, 4, ANN_BLK_MAX_RAW + 1},   /* iid raw out of range */
        {92, 4, ANN_BLK_MAX_RAW},       /* body raw */
        {92, 4, 1},                     /* body raw below count */
        {72, 4, 1},                     /* meta zlen: sizes no longer add up */
        {96, 4, 12},                    /* filter length not a multiple of 8 */
        {100, 4, 1u << 31},             /* total_len */
        {12, 4, 2},                     /* unknown flag */
        {120, 8, 1},                    /* reserved */
    };
    for (size_t i = 0; i < sizeof lies / sizeof *lies; i++) {
        memcpy(p, b.data, b.len);
        forge(p, lies[i].off, lies[i].v, lies[i].width);
        expect_corrupt(p, b.len);
    }
    free(p);
    ann_buf_release(&b);
}

/* The child of test_lies_cost_no_memory: reads two blocks from stdin, then, with 48 MiB more
 * address space than it has, expects each to fail decoding with ANN_ECORRUPT. */
static int decode_lies(void)
{
    ann_buf blocks[2] = {ANN_BUF_INIT, ANN_BUF_INIT};
    for (int i = 0; i < 2; i++) {
        uint32_t l;
        if (fread(&l, 4, 1, stdin) != 1)
            return 3;
        ann_buf_reserve(&blocks[i], l);
        if (fread(blocks[i].data, 1, l, stdin) != l)
            return 3;
        blocks[i].len = l;
    }
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f || fscanf(f, "%lu", &pages) != 1)
        return 3;
    fclose(f);
    rlim_t lim = pages * (rlim_t)sysconf(_SC_PAGESIZE) + (48u << 20);
    struct rlimit rl = {lim, lim};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 4;
    for (int i = 0; i < 2; i++) {
        ann_blk_header x;
        ann_blk_view v;
        ann_err err;
        if (ann_blk_header_decode(blocks[i].data, blocks[i].len, &x, &err) != 0)
            return 5;
        if (ann_blk_view_open(blocks[i].data, blocks[i].len, &x, &v, &err) != -1 ||
            err.code != ANN_ECORRUPT)
            return 6;
        ann_buf_release(&blocks[i]);
    }
    return 0;
}

/* A block whose iid frame declares 64 MiB but holds 1,000 bytes, and whose count claims 2^20
 * entries: decoding fails in a child process limited to 48 MiB more address space than it
 * has (an allocation by the header's word would abort it). */
static void test_lies_cost_no_memory(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* ASan reserves terabytes of address space: RLIMIT_AS cannot work */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    skip();
#endif
#endif
    ann_buf b = ANN_BUF_INIT;
    ann_blk_header h;
    small_block(&b, &h, 20);
    /* A frame that pledges 64 MiB and carries 1,000 random bytes, flushed, unfinished. */
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setPledgedSrcSize(c, ANN_BLK_MAX_RAW);
    uint8_t src[1000], frame[2000];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)rnd();
    ZSTD_inBuffer in = {src, sizeof src, 0};
    ZSTD_outBuffer ob = {frame, sizeof frame, 0};
    assert_int_equal(ZSTD_compressStream2(c, &ob, &in, ZSTD_e_flush), 0);
    ZSTD_freeCCtx(c);
    assert_int_equal(ZSTD_getFrameContentSize(frame, ob.pos), ANN_BLK_MAX_RAW);

    ann_buf lie = ANN_BUF_INIT;
    size_t iid_off = ANN_BLK_HDR_LEN + h.meta_zlen;
    ann_buf_add(&lie, b.data, iid_off);
    ann_buf_add(&lie, frame, ob.pos);
    ann_buf_add(&lie, b.data + ann_blk_index_end(&h), b.len - ann_blk_index_end(&h));
    forge(lie.data, 80, ob.pos, 4);
    forge(lie.data, 84, ANN_BLK_MAX_RAW, 4);
    forge(lie.data, 100, lie.len, 4);
    fix_crcs(lie.data, lie.len);
    /* The same, with a count of 2^20 and raw sizes to match (its meta frame is too short). */
    ann_buf lie2 = ANN_BUF_INIT;
    ann_buf_add(&lie2, lie.data, lie.len);
    forge(lie2.data, 24, ANN_BLK_MAX_COUNT, 4);
    forge(lie2.data, 76, 4 * (uint64_t)ANN_BLK_MAX_COUNT, 4);
    forge(lie2.data, 92, ANN_BLK_MAX_COUNT, 4);
    fix_crcs(lie2.data, lie2.len);

    /* A fresh process (this one's heap may hold enough free space to hide an allocation). */
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[0], 0);
        close(fd[0]);
        close(fd[1]);
        execl("/proc/self/exe", "test_block", "--decode-lies", (char *)NULL);
        _exit(7);
    }
    close(fd[0]);
    ann_buf *blocks[2] = {&lie, &lie2};
    for (int i = 0; i < 2; i++) {
        uint32_t l = (uint32_t)blocks[i]->len;
        assert_int_equal(write(fd[1], &l, 4), 4);
        assert_int_equal(write(fd[1], blocks[i]->data, l), l);
    }
    close(fd[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    ann_buf_release(&lie);
    ann_buf_release(&lie2);
    ann_buf_release(&b);
}

/* ---------- dead blocks ---------- */

static void test_dead_block(void **state)
{
    (void)state;
    ann_buf b = ANN_BUF_INIT;
    ann_blk_header h, x;
    small_block(&b, &h, 25);
    ann_err err;
    ann_blk_header hd = h;
    uint8_t hdr[ANN_BLK_HDR_LEN];
    ann_blk_make_dead(&hd, hdr);
    ann_blk_zero(b.data, &h);
    assert_memory_equal(hdr, b.data, ANN_BLK_HDR_LEN); /* the pwrite form is the same */
    assert_int_equal(ann_blk_header_decode(b.data, b.len, &x, &err), 0);
    assert_int_equal(x.flags, ANN_BLK_DEAD);
    assert_int_equal(x.total_len, b.len);
    assert_int_equal(x.count, 25);
    assert_int_equal(x.first_id, 10);
    assert_int_equal(ann_blk_check(b.data, b.len, &x, &err), 0);
    assert_int_equal(ann_blk_filter_check(b.data + ann_blk_filter_off(&x), &x, &err), 0);
    for (size_t i = ANN_BLK_HDR_LEN; i < b.len; i++)
        assert_int_equal(b.data[i], 0);
    ann_blk_view v;
    assert_int_equal(ann_blk_view_open(b.data, b.len, &x, &v, &err), -1);
    assert_int_equal(err.code, ANN_EINTERNAL);
    ann_matcher m;
    ann_matcher_init(&m, (const uint8_t *)"error", 5, false);
    assert_true(ann_blk_filter_may_match(b.data + ann_blk_filter_off(&x), x.filter_len, &m));
    ann_buf_release(&b);
}

/* Bodies ending with their salt field: the salts go to sec_salt, out of zstd's input and out
 * of sec_body, and come back byte for byte; a redacted entry's hash field and a body
 * without a field stay in sec_body; sec_salt's damage is caught by its own CRC and checks. */
static void test_salts_kept_out_of_zstd(void **state)
{
    (void)state;
    size_t n = 43, nsalt = 0;
    set s;
    set_init(&s, n);
    uint8_t salts[43][32], fld[ANN_INTEGRITY_FIELD_LEN];
    for (size_t i = 0; i < n; i++) {
        char iid[32], text[64];
        int il = snprintf(iid, sizeof iid, "iid-%zu", i);
        int tl = snprintf(text, sizeof text, "line %zu of the build", i);
        for (int k = 0; k < 32; k++)
            salts[i][k] = (uint8_t)rnd();
        uint32_t flags = 0;
        if (i % 4 == 3) { /* redacted: the hash field alone */
            ann_integrity_field(ANN_INTEGRITY_HASH, salts[i], fld);
            ann_buf_add(&s.bodies[i], fld, sizeof fld);
            flags = ANN_ENTRY_REDACTED;
        } else {
            add_text(&s.bodies[i], text, (size_t)tl);
            if (i % 4 != 2) { /* 2: an entry from before integrity, no field */
                ann_integrity_field(ANN_INTEGRITY_SALT, salts[i], fld);
                ann_buf_add(&s.bodies[i], fld, sizeof fld);
                nsalt++;
            }
        }
        set_entry(&s, i, iid, (size_t)il, 1000 + (int64_t)i, 2000, 0, flags);
    }
    ann_buf b = ANN_BUF_INIT;
    ann_blk_header h, x;
    ann_err err;
    encode_ok(&s, 5, &b, &h);
    size_t bm = (n + 7) / 8;
    assert_int_equal(h.salt_len, bm + 32 * nsalt);
    /* sec_body holds no salt; sec_salt holds each, in order. */
    uint8_t *plain = malloc(h.body_raw);
    assert_int_equal(
        ZSTD_decompress(plain, h.body_raw, b.data + ann_blk_index_end(&h), h.body_zlen),
        h.body_raw);
    const uint8_t *sec = b.data + ann_blk_index_end(&h) + h.body_zlen;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        bool has = i % 4 == 0 || i % 4 == 1;
        assert_int_equal((sec[i >> 3] >> (i & 7)) & 1, has);
        if (has) {
            assert_null(memmem(plain, h.body_raw, salts[i], 32));
            assert_memory_equal(sec + bm + 32 * j++, salts[i], 32);
        }
    }
    free(plain);
    ann_blk_view v;
    assert_int_equal(ann_blk_view_open(b.data, b.len, &h, &v, &err), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v.e[i].body_len, s.e[i].body_len);
        assert_memory_equal(v.e[i].body, s.e[i].body, s.e[i].body_len);
    }
    ann_blk_view_release(&v);
    /* Every byte of sec_salt: caught by its CRC, the whole-block CRC aside. */
    for (size_t off = 0; off < h.salt_len; off++) {
        b.data[sec - b.data + off] ^= 0x10;
        assert_int_equal(ann_blk_view_open(b.data, b.len, &h, &v, &err), -1);
        assert_int_equal(err.code, ANN_ECORRUPT);
        b.data[sec - b.data + off] ^= 0x10;
    }
    /* A bitmap that disagrees with the salts (CRCs made right again): refused. */
    b.data[sec - b.data] ^= 0x04; /* entry 2, which has no salt */
    blk_reseal(b.data, b.len);
    assert_int_equal(ann_blk_header_decode(b.data, b.len, &x, &err), 0);
    assert_int_equal(ann_blk_view_open(b.data, b.len, &x, &v, &err), -1);
    assert_int_equal(err.code, ANN_ECORRUPT);
    b.data[sec - b.data] ^= 0x04 | 0x08; /* entry 3: redacted */
    b.data[sec - b.data + 1] ^= 0x01;    /* ... and entry 8 loses its salt: counts agree */
    blk_reseal(b.data, b.len);
    assert_int_equal(ann_blk_header_decode(b.data, b.len, &x, &err), 0);
    assert_int_equal(ann_blk_view_open(b.data, b.len, &x, &v, &err), -1);
    assert_int_equal(err.code, ANN_ECORRUPT);
    /* A DEAD block zeroes sec_salt too. */
    encode_ok(&s, 5, &b, &h);
    ann_blk_zero(b.data, &h);
    assert_int_equal(ann_blk_header_decode(b.data, b.len, &x, &err), 0);
    assert_int_equal(x.salt_len, bm + 32 * nsalt);
    assert_int_equal(ann_blk_check(b.data, b.len, &x, &err), 0);
    assert_null(memmem(b.data, b.len, salts[0], 32));
    ann_buf_release(&b);
    set_free(&s);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--decode-lies") == 0)
        return decode_lies();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_fields),
        cmocka_unit_test(test_count_one_and_65536),
        cmocka_unit_test(test_extreme_times),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_filter_no_false_negatives),
        cmocka_unit_test(test_filter_edges),
        cmocka_unit_test(test_filter_same_both_ways),
        cmocka_unit_test(test_every_byte_flip_is_caught),
        cmocka_unit_test(test_truncation_fails_cleanly),
        cmocka_unit_test(test_header_lies),
        cmocka_unit_test(test_lies_cost_no_memory),
        cmocka_unit_test(test_dead_block),
        cmocka_unit_test(test_salts_kept_out_of_zstd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
