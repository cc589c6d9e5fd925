/* The proto3 JSON mapping (src/http/pbjson.c): timestamps at the edges of their range,
 * offsets, names, int64 as strings, defaults left out, errors naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "annals/v1/annals.pb-c.h"
#include "http/pbjson.h"

/* JSON in, JSON out (through the wire bytes) for message d. */
static void round_trip(const ProtobufCMessageDescriptor *d, const char *in, const char *want)
{
    ann_err err = {0};
    ann_buf w = ANN_BUF_INIT, j = ANN_BUF_INIT;
    if (ann_pbjson_from_text(d, in, strlen(in), &w, &err) != 0)
        fail_msg("%s: %s", in, err.msg);
    assert_int_equal(ann_pbjson_to_json(d, w.data, w.len, &j, &err), 0);
    ann_buf_add_byte(&j, 0);
    assert_string_equal((const char *)j.data, want);
    ann_buf_release(&w);
    ann_buf_release(&j);
}

static void refused(const ProtobufCMessageDescriptor *d, const char *in, const char *words)
{
    ann_err err = {0};
    ann_buf w = ANN_BUF_INIT;
    assert_int_not_equal(ann_pbjson_from_text(d, in, strlen(in), &w, &err), 0);
    assert_int_equal(err.code, ANN_EINVAL);
    if (!strstr(err.msg, words))
        fail_msg("%s: message %s does not say %s", in, err.msg, words);
    ann_buf_release(&w);
}

#define LIST (&annals__v1__list_log_entries_request__descriptor)
#define ENTRY (&annals__v1__log_entry__descriptor)

static void test_timestamps(void **state)
{
    (void)state;
    round_trip(LIST, "{\"startTime\":\"1970-01-01T00:00:00Z\"}",
               "{\"startTime\":\"1970-01-01T00:00:00Z\"}");
    round_trip(LIST, "{\"startTime\":\"1969-12-31T23:59:59.5Z\"}",
               "{\"startTime\":\"1969-12-31T23:59:59.500Z\"}");
    round_trip(LIST, "{\"start_time\":\"0001-01-01T00:00:00Z\"}",
               "{\"startTime\":\"0001-01-01T00:00:00Z\"}");
    round_trip(LIST, "{\"endTime\":\"9999-12-31T23:59:59.999999999Z\"}",
               "{\"endTime\":\"9999-12-31T23:59:59.999999999Z\"}");
    round_trip(LIST, "{\"endTime\":\"2026-01-01t00:30:00.000001+01:00\"}",
               "{\"endTime\":\"2025-12-31T23:30:00.000001Z\"}");
    round_trip(LIST, "{\"endTime\":\"2024-02-29T12:00:00-05:30\"}",
               "{\"endTime\":\"2024-02-29T17:30:00Z\"}");
    refused(LIST, "{\"startTime\":\"2023-02-29T00:00:00Z\"}", "startTime: want an RFC 3339");
    refused(LIST, "{\"startTime\":\"2023-01-01T00:00:00\"}", "startTime");
    refused(LIST, "{\"startTime\":\"2023-01-01T00:00:00.1234567891Z\"}", "startTime");
    refused(LIST, "{\"startTime\":\"0001-01-01T00:00:00+00:01\"}", "startTime");
    refused(LIST, "{\"startTime\":1}", "startTime");
}

static void test_scalars_and_names(void **state)
{
    (void)state;
    /* defaults left out; enums by name or number; int32 from a string or a number */
    round_trip(LIST, "{\"pageSize\":0,\"textContains\":\"\",\"minSeverity\":\"UNSPECIFIED\"}",
               "{}");
    round_trip(LIST, "{\"page_size\":\"-7\",\"minSeverity\":500,\"log_id\":\"x\"}",
               "{\"logId\":\"x\",\"pageSize\":-7,\"minSeverity\":\"WARNING\"}");
    round_trip(LIST, "{\"pageSize\":1e2,\"minSeverity\":7}",
               "{\"pageSize\":100,\"minSeverity\":7}");
    refused(LIST, "{\"pageSize\":2147483648}", "pageSize: out of range");
    refused(LIST, "{\"pageSize\":1.5}", "pageSize: not an integer");
    refused(LIST, "{\"pageSize\":true}", "pageSize: want an integer");
    refused(LIST, "{\"minSeverity\":\"LOUD\"}", "minSeverity: not a annals.v1.LogEntry.Severity");
    refused(LIST, "{\"logId\":\"a\",\"log_id\":\"a\"}", "given twice");
    refused(LIST, "{\"pageToken\":null,\"nope\":1}", "nope: unknown field");
}

static void test_entries(void **state)
{
    (void)state;
    /* oneof members are kept even when empty; Struct is the object itself; a NUL is kept */
    round_trip(ENTRY, "{\"textPayload\":\"\"}", "{\"textPayload\":\"\"}");
    round_trip(ENTRY, "{\"textPayload\":\"a\\u0000b\\u2028\\u00e9\"}",
               "{\"textPayload\":\"a\\u0000b\\u2028\xc3\xa9\"}");
    round_trip(ENTRY, "{\"jsonPayload\":{\"a\":[1,null,{},[]],\"b\":-0.25}}",
               "{\"jsonPayload\":{\"a\":[1,null,{},[]],\"b\":-0.25}}");
    round_trip(ENTRY, "{\"labels\":{\"k\":\"v\",\"e\":\"\"},\"entryId\":\"7\",\"redacted\":false}",
               "{\"entryId\":\"7\",\"labels\":{\"k\":\"v\",\"e\":\"\"}}");
    refused(ENTRY, "{\"textPayload\":\"a\",\"jsonPayload\":{}}", "only one of");
    refused(ENTRY, "{\"labels\":{\"k\":1}}", "labels[k]: want a string");
    refused(ENTRY, "{\"revocation\":{\"time\":\"x\"}}", "revocation.time");
    refused(&annals__v1__write_log_entries_request__descriptor, "{\"entries\":[{},{\"foo\":1}]}",
            "entries[1].foo: unknown field");
    refused(&annals__v1__write_log_entries_request__descriptor, "{\"entries\":[null]}",
            "entries[0]: null");
    refused(ENTRY, "{\"a\":1", "body: not JSON");
    refused(ENTRY, "[]", "body: want a JSON object");
}

static void test_int64_out(void **state)
{
    (void)state;
    /* Log.entry_count (int64) is a string; create_time a Timestamp */
    uint8_t wire[] = {0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, /* 2^63-1 */
                      0x1a, 0x04, 0x08, 0x01, 0x10, 0x01};
    ann_err err = {0};
    ann_buf j = ANN_BUF_INIT;
    assert_int_equal(ann_pbjson_to_json(&annals__v1__log__descriptor, wire, sizeof wire, &j, &err),
                     0);
    ann_buf_add_byte(&j, 0);
    assert_string_equal((const char *)j.data, "{\"createTime\":\"1970-01-01T00:00:01.000000001Z\","
                                              "\"entryCount\":\"9223372036854775807\"}");
    ann_buf_release(&j);
    uint8_t bad[] = {0x20};
    assert_int_not_equal(
        ann_pbjson_to_json(&annals__v1__log__descriptor, bad, sizeof bad, &j, &err), 0);
    assert_int_equal(err.code, ANN_EINTERNAL);
    ann_buf_release(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_scalars_and_names),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_int64_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
