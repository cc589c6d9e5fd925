/*
 * The packed entries of a log_batches row (src/archive/batch_codec.h): a round trip, the
 * entry count checked against the blob, and every truncation of a valid blob refused; and
 * the shape of a server-made insert_id (ann_archive_generated_shape).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "archive/archive_cassandra.h"
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

/* Which insert_ids are looked up through their request's row: the API server's shape only,
 * with an index a command can hold (a read of the entries after the row stays bounded). */
static void test_generated_shape(void **state)
{
    (void)state;
    const char *key = "0b0c7a3e-1111-4222-8333-444455556666";
    char s[96];
    uint64_t ix = 99;
    snprintf(s, sizeof s, "%s/0", key);
    assert_true(ann_archive_generated_shape(s, strlen(s), &ix));
    assert_int_equal(ix, 0);
    snprintf(s, sizeof s, "%s/65535", key);
    assert_true(ann_archive_generated_shape(s, strlen(s), &ix));
    assert_int_equal(ix, 65535);
    const char *no[] = {"0b0c7a3e-1111-4222-8333-444455556666/",           /* no digits */
                        "0b0c7a3e-1111-4222-8333-444455556666/65536",      /* past a command */
                        "0b0c7a3e-1111-4222-8333-444455556666/1a",         /* not digits */
                        "0b0c7a3e-1111-4222-8333-44445555666/1",           /* a short key */
                        "0b0c7a3e/1111-4222-8333-444455556666/1",          /* '/' in the key */
                        "0b0c7a3e-1111-4222-8333-444455556666/1234567890", /* too long */
                        "client-id-1"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(ann_archive_generated_shape(no[i], strlen(no[i]), NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_generated_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
