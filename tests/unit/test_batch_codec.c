/*
 * The packed entries of a log_batches row (src/archive/batch_codec.h): a round trip, the
 * entry count checked against the blob, and every truncation of a valid blob refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "archive/batch_codec.h"

static void fill(ann_entry *e, size_t n)
{
    static const char *ids[] = {"a", "0b0c7a3e-1111-4222-8333-444455556666/1", "ccc"};
    static const char *bodies[] = {"", "body one", "the third body, longer"};
    for (size_t i = 0; i < n; i++)
        e[i] = (ann_entry){.entry_id = 100 + i,
                           .time_ns = -5 + (int64_t)i,
                           .insert_time_ns = INT64_MAX - (int64_t)i,
                           .severity = 300 + (int32_t)i,
                           .flags = (uint32_t)i,
                           .insert_id = ids[i % 3],
                           .insert_id_len = strlen(ids[i % 3]),
                           .body = (const uint8_t *)bodies[i % 3],
                           .body_len = strlen(bodies[i % 3])};
}

static void test_round_trip(void **state)
{
    (void)state;
    ann_entry e[3], d;
    fill(e, 3);
    size_t sz = ann_batch_size(e, 3);
    uint8_t *blob = malloc(sz);
    assert_non_null(blob);
    assert_int_equal(ann_batch_encode(e, 3, blob), sz);
    ann_batch_reader r;
    assert_int_equal(ann_batch_reader_init(&r, blob, sz, 7, 3), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ann_batch_next(&r, &d), 1);
        assert_int_equal(d.entry_id, 7 + i); /* ids follow from the row's first id */
        assert_int_equal(d.time_ns, e[i].time_ns);
        assert_int_equal(d.insert_time_ns, e[i].insert_time_ns);
        assert_int_equal(d.severity, e[i].severity);
        assert_int_equal(d.flags, e[i].flags);
        assert_int_equal(d.insert_id_len, e[i].insert_id_len);
        assert_memory_equal(d.insert_id, e[i].insert_id, d.insert_id_len);
        assert_int_equal(d.body_len, e[i].body_len);
        if (d.body_len)
            assert_memory_equal(d.body, e[i].body, d.body_len);
    }
    assert_int_equal(ann_batch_next(&r, &d), 0);
    /* a count that does not match the blob is malformed, either way */
    assert_int_equal(ann_batch_reader_init(&r, blob, sz, 1, 2), 0);
    assert_int_equal(ann_batch_next(&r, &d), 1);
    assert_int_equal(ann_batch_next(&r, &d), 1);
    assert_int_equal(ann_batch_next(&r, &d), -1);
    assert_int_equal(ann_batch_reader_init(&r, blob, sz, 1, 4), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ann_batch_next(&r, &d), 1);
    assert_int_equal(ann_batch_next(&r, &d), -1);
    /* an unknown version */
    blob[0] = 2;
    assert_int_equal(ann_batch_reader_init(&r, blob, sz, 1, 3), -1);
    free(blob);
}

static void test_truncations(void **state)
{
    (void)state;
    ann_entry e[3], d;
    fill(e, 3);
    size_t sz = ann_batch_size(e, 3);
    uint8_t *blob = malloc(sz);
    assert_non_null(blob);
    ann_batch_encode(e, 3, blob);
    for (size_t len = 0; len < sz; len++) {
        uint8_t *cut = malloc(len ? len : 1);
        assert_non_null(cut);
        memcpy(cut, blob, len);
        ann_batch_reader r;
        int k = ann_batch_reader_init(&r, cut, len, 1, 3);
        while (k >= 0 && (k = ann_batch_next(&r, &d)) == 1)
            assert_true(d.insert_id + d.insert_id_len <= (const char *)cut + len);
        assert_int_equal(k, -1);
        free(cut);
    }
    free(blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
