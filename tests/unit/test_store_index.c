/*
 * Unit tests of the embedded store's pieces that need no files: the
 * in-memory index (time order over sorted runs, dedup table), the record
 * codec and the checksums.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "store/embedded/hash.h"
#include "store/embedded/index.h"
#include "store/embedded/logfile.h"

typedef struct ref {
    int64_t t;
    uint64_t id;
} ref;

static int ref_cmp(const void *a, const void *b)
{
    const ref *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void check_all(const ann_idx *x, const ref *sorted, size_t n, int64_t start, int64_t end,
                      uint64_t max_id, size_t chunk)
{
    ann_idx_key after = {start, 0};
    uint64_t out[64];
    size_t k = 0, got;
    size_t i = 0;
    while ((got = ann_idx_list(x, &after, end, max_id, out, chunk)) > 0) {
        for (size_t j = 0; j < got; j++) {
            while (i < n && (sorted[i].t < start || sorted[i].t >= end || sorted[i].id > max_id))
                i++;
            assert_true(i < n);
            assert_int_equal(out[j], sorted[i].id);
            i++;
            k++;
        }
    }
    while (i < n && (sorted[i].t < start || sorted[i].t >= end || sorted[i].id > max_id))
        i++;
    assert_int_equal(i, n);
    (void)k;
}

static void run_pattern(int pattern)
{
    enum { N = 20000 };
    ann_idx x;
    ann_idx_init(&x);
    ref *r = malloc(N * sizeof *r);
    unsigned seed = 7 + (unsigned)pattern;
    for (size_t i = 0; i < N; i++) {
        int64_t t;
        switch (pattern) {
        case 0:
            t = (int64_t)i;
            break; /* in order */
        case 1:
            t = (int64_t)(N - i);
            break; /* reversed */
        case 2:
            t = rand_r(&seed) % 1000;
            break; /* random, many equal */
        case 3:
            t = (int64_t)i * 4 + rand_r(&seed) % 64;
            break; /* jitter */
        default:   /* whole batches of 100 out of order (concurrent writers) */
            t = (int64_t)((i / 100) ^ 5) * 1000 + (int64_t)(i % 100);
            break;
        }
        assert_int_equal(ann_idx_add(&x, t, i * 100, (uint32_t)i), 0);
        r[i].t = t;
        r[i].id = i + 1;
    }
    /* O(log n) runs */
    assert_true(x.nruns <= 40);
    if (pattern == 0)
        assert_int_equal(x.nruns, 1);
    qsort(r, N, sizeof *r, ref_cmp);
    check_all(&x, r, N, INT64_MIN, INT64_MAX, N, 64);
    check_all(&x, r, N, 100, 900, N, 7);
    check_all(&x, r, N, INT64_MIN, INT64_MAX, N / 3, 64);
    if (pattern == 4) {
        /* Batches out of order are kept as segments: far below 4 B/entry. */
        size_t run_bytes = 0;
        for (size_t k = 0; k < x.nruns; k++)
            run_bytes += x.runs[k].ids ? x.runs[k].n * 4 : x.runs[k].nseg * 8;
        assert_true(run_bytes < N / 4);
    }
    /* A snapshot round trip gives the same index. */
    char path[] = "/tmp/ann-idx-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ann_idx_save(&x, path, 12345), 0);
    ann_idx y;
    ann_idx_init(&y);
    uint64_t end = 0;
    assert_int_equal(ann_idx_load(&y, path, &end), 1);
    assert_int_equal(end, 12345);
    assert_int_equal(y.n, x.n);
    assert_int_equal(y.nruns, x.nruns);
    check_all(&y, r, N, INT64_MIN, INT64_MAX, N, 64);
    check_all(&y, r, N, 100, 900, N, 7);
    for (uint64_t id = 1; id <= N; id += 997)
        assert_true(ann_idx_off(&y, id) == ann_idx_off(&x, id));
    ann_idx_release(&y);
    remove(path);
    assert_int_equal(ann_idx_time(&x, 5), pattern == 0 ? 4 : ann_idx_time(&x, 5));
    assert_int_equal(ann_idx_off(&x, 5), 400);
    ann_idx_release(&x);
    free(r);
}

static void test_runs_in_order(void **state)
{
    (void)state;
    run_pattern(0);
}
static void test_runs_reversed(void **state)
{
    (void)state;
    run_pattern(1);
}
static void test_runs_random(void **state)
{
    (void)state;
    run_pattern(2);
}
static void test_runs_jitter(void **state)
{
    (void)state;
    run_pattern(3);
}

static bool confirm_eq(uint64_t id, void *ud)
{
    return id == *(uint64_t *)ud;
}

static void test_runs_batches(void **state)
{
    (void)state;
    run_pattern(4);
}

static void test_dedup_table(void **state)
{
    (void)state;
    ann_idx x;
    ann_idx_init(&x);
    /* Colliding tags: every 4th entry shares tag 7. */
    for (uint64_t i = 1; i <= 5000; i++)
        assert_int_equal(ann_idx_add(&x, 0, 0, i % 4 == 0 ? 7 : (uint32_t)(i * 2654435761u)), 0);
    for (uint64_t i = 4; i <= 5000; i += 4)
        assert_int_equal(ann_idx_find(&x, 7, confirm_eq, &i), i);
    uint64_t none = 999999;
    assert_int_equal(ann_idx_find(&x, 7, confirm_eq, &none), 0);
    uint64_t three = 3;
    assert_int_equal(ann_idx_find(&x, (uint32_t)(3 * 2654435761u), confirm_eq, &three), 3);
    ann_idx_release(&x);
}

/* Offsets are 32-bit deltas until a chunk spans more than 4 GiB. */
static void test_offsets_wide(void **state)
{
    (void)state;
    ann_idx x;
    ann_idx_init(&x);
    for (uint64_t i = 0; i < 70000; i++)
        assert_int_equal(ann_idx_add(&x, 0, 1000 + i * (i < 30000 ? 100 : (1u << 20)), (uint32_t)i),
                         0);
    for (uint64_t i = 0; i < 70000; i++)
        assert_true(ann_idx_off(&x, i + 1) == 1000 + i * (i < 30000 ? 100 : (1u << 20)));
    ann_idx_release(&x);
}

static void test_record_codec(void **state)
{
    (void)state;
    uint8_t buf[256];
    ann_entry e = {.time_ns = -5,
                   .insert_time_ns = 77,
                   .severity = 600,
                   .insert_id = "iid",
                   .insert_id_len = 3,
                   .body = (const uint8_t *)"hello",
                   .body_len = 5};
    size_t len = ann_lf_rec_size(3, 5);
    ann_lf_rec_encode(buf, 9, &e);
    ann_entry d;
    uint32_t rl;
    assert_int_equal(ann_lf_rec_decode(buf, len, &d, &rl), 0);
    assert_int_equal(rl, len);
    assert_int_equal(d.entry_id, 9);
    assert_int_equal(d.time_ns, -5);
    assert_int_equal(d.insert_time_ns, 77);
    assert_int_equal(d.severity, 600);
    assert_memory_equal(d.body, "hello", 5);
    /* truncated or damaged: refused */
    assert_int_not_equal(ann_lf_rec_decode(buf, len - 1, &d, &rl), 0);
    buf[len - 1] ^= 1;
    assert_int_not_equal(ann_lf_rec_decode(buf, len, &d, &rl), 0);
    buf[len - 1] ^= 1;
    ann_lf_rec_redact(buf, (uint32_t)len);
    assert_int_equal(ann_lf_rec_decode(buf, len, &d, &rl), 0);
    assert_int_equal(rl, len);
    assert_int_equal(d.flags, ANN_ENTRY_REDACTED);
    assert_int_equal(d.body_len, 0);
    assert_null(memmem(buf, len, "hello", 5));
}

static void test_hashes(void **state)
{
    (void)state;
    /* CRC-32C check value */
    assert_int_equal(ann_crc32c(0, "123456789", 9), 0xE3069283u);
    /* SipHash-2-4 reference vector: key 00..0f, message 00..0e (15 bytes) */
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    assert_true(ann_siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL);
    assert_true(ann_siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_in_order), cmocka_unit_test(test_runs_reversed),
        cmocka_unit_test(test_runs_random),   cmocka_unit_test(test_runs_jitter),
        cmocka_unit_test(test_dedup_table),   cmocka_unit_test(test_record_codec),
        cmocka_unit_test(test_offsets_wide),  cmocka_unit_test(test_runs_batches),
        cmocka_unit_test(test_hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
