/*
 * The pure parts of the investigator's commands (src/cli/cmd_inv.c): the log
 * and hit lines, revocations in the JSON form, the hit set of search --revoke,
 * entry ids and the confirmation answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "cli/hits.h"
#include "cli/render.h"

#define BYTES(lit) ((ProtobufCBinaryData){sizeof(lit) - 1, (uint8_t *)(lit)})

/* RENDER(fn, x): what fn(f, x) writes, as a string (caller frees). */
static char *cap_out;
static size_t cap_len;
static FILE *cap_f;

static FILE *cap_begin(void)
{
    cap_f = open_memstream(&cap_out, &cap_len);
    assert_non_null(cap_f);
    return cap_f;
}

static char *cap_end(void)
{
    fclose(cap_f);
    return cap_out;
}

#define RENDER(fn, x) (fn(cap_begin(), x), cap_end())

static void expect(char *got, const char *want)
{
    assert_string_equal(got, want);
    free(got);
}

static void log_line_has_every_field_escaped(void **state)
{
    (void)state;
    Annals__Wire__V1__Log log = ANNALS__WIRE__V1__LOG__INIT;
    Annals__Wire__V1__Timestamp t = ANNALS__WIRE__V1__TIMESTAMP__INIT;
    Annals__Wire__V1__Label l[2], *lp[2] = {&l[0], &l[1]};
    annals__wire__v1__label__init(&l[0]);
    annals__wire__v1__label__init(&l[1]);
    log.id = BYTES("0b7e4c1a-5a8f-4d5e-9c1e-2f8a7d6b5c4d");
    expect(RENDER(ann_cli_print_log_line, &log),
           "0b7e4c1a-5a8f-4d5e-9c1e-2f8a7d6b5c4d - 0\n"); /* no time, no labels */
    t.seconds = 1764151200;
    t.nanos = 250000000;
    log.create_time = &t;
    log.entry_count = 2500;
    l[0].key = BYTES("job");
    l[0].value = BYTES("nightly etl");
    l[1].key = BYTES("k\x1b[1m");
    l[1].value = BYTES("v\n\0x");
    log.n_labels = 2;
    log.labels = lp;
    expect(RENDER(ann_cli_print_log_line, &log),
           "0b7e4c1a-5a8f-4d5e-9c1e-2f8a7d6b5c4d 2025-11-26T10:00:00.250000000Z 2500 "
           "job=nightly etl k\\x1b[1m=v\\n\\x00x\n");
    expect(RENDER(ann_cli_print_log_json, &log),
           "{\"id\":\"0b7e4c1a-5a8f-4d5e-9c1e-2f8a7d6b5c4d\",\"labels\":{\"job\":\"nightly etl\","
           "\"k\\u001b[1m\":\"v\\n\\u0000x\"},\"create_time\":\"2025-11-26T10:00:00.250000000Z\","
           "\"entry_count\":2500}\n");
    expect(RENDER(ann_cli_print_log_json_full, &log),
           "{\"id\":\"0b7e4c1a-5a8f-4d5e-9c1e-2f8a7d6b5c4d\",\"labels\":{\"job\":\"nightly etl\","
           "\"k\\u001b[1m\":\"v\\n\\u0000x\"},\"create_time\":\"2025-11-26T10:00:00.250000000Z\","
           "\"entry_count\":2500,\"retention_days\":0,\"legal_hold\":false}\n");
}

static void hit_line_starts_with_the_log(void **state)
{
    (void)state;
    Annals__Wire__V1__LogEntry e = ANNALS__WIRE__V1__LOG_ENTRY__INIT;
    Annals__Wire__V1__Timestamp t = ANNALS__WIRE__V1__TIMESTAMP__INIT;
    t.seconds = 1764151200;
    e.log_id = BYTES("L\x1b");
    e.entry_id = BYTES("17");
    e.time = &t;
    e.severity = 600;
    e.payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    e.text_payload = BYTES("token=\x1b]0;x\x07 ghp_1\0end");
    expect(RENDER(ann_cli_print_hit_text, &e),
           "L\\x1b 17 2025-11-26T10:00:00.000000000Z ERROR token=\\x1b]0;x\\x07 ghp_1\\x00end\n");
}

static void revocation_in_json_marker_in_text(void **state)
{
    (void)state;
    Annals__Wire__V1__LogEntry e = ANNALS__WIRE__V1__LOG_ENTRY__INIT;
    Annals__Wire__V1__Revocation r = ANNALS__WIRE__V1__REVOCATION__INIT;
    Annals__Wire__V1__Timestamp t = ANNALS__WIRE__V1__TIMESTAMP__INIT;
    e.log_id = BYTES("L");
    e.entry_id = BYTES("3");
    e.redacted = 1;
    expect(RENDER(ann_cli_print_entry_json, &e),
           "{\"log_id\":\"L\",\"entry_id\":\"3\",\"insert_id\":\"\",\"time\":null,"
           "\"insert_time\":null,\"severity\":\"UNSPECIFIED\",\"labels\":{},\"redacted\":true}\n");
    t.seconds = 1764151200;
    t.nanos = 7;
    r.actor = BYTES("tenant:acme");
    r.reason = BYTES("leaked \"token\"\n");
    r.time = &t;
    e.revocation = &r;
    expect(RENDER(ann_cli_print_entry_json, &e),
           "{\"log_id\":\"L\",\"entry_id\":\"3\",\"insert_id\":\"\",\"time\":null,"
           "\"insert_time\":null,\"severity\":\"UNSPECIFIED\",\"labels\":{},\"redacted\":true,"
           "\"revocation\":{\"actor\":\"tenant:acme\",\"reason\":\"leaked \\\"token\\\"\\n\","
           "\"time\":\"2025-11-26T10:00:00.000000007Z\"}}\n");
    r.time = NULL;
    expect(RENDER(ann_cli_print_entry_text, &e), "3 - UNSPECIFIED [redacted]\n");
}

static void hits_are_checked_sorted_grouped_and_unique(void **state)
{
    (void)state;
    ann_cli_hits h = {0};
    assert_int_equal(ann_cli_hits_add(&h, BYTES("b"), BYTES("10")), 0);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("a"), BYTES("9")), 0);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("b"), BYTES("2")), 0);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("a"), BYTES("9")), 0); /* a duplicate */
    assert_int_equal(ann_cli_hits_add(&h, BYTES("a"), BYTES("18446744073709551615")), 0);
    /* What the server must never send is refused, not revoked. */
    assert_int_equal(ann_cli_hits_add(&h, BYTES(""), BYTES("1")), -1);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("a b"), BYTES("1")), -1);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("a\0"), BYTES("1")), -1);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("\xc3\xa9"), BYTES("1")), -1);
    assert_int_equal(
        ann_cli_hits_add(&h,
                         BYTES("0123456789012345678901234567890123456789012345678901234567890"
                               "1234"),
                         BYTES("1")),
        -1);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("a"), BYTES("0")), -1);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("a"), BYTES("")), -1);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("a"), BYTES("-1")), -1);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("a"), BYTES("1x")), -1);
    assert_int_equal(ann_cli_hits_add(&h, BYTES("a"), BYTES("18446744073709551616")), -1);
    assert_int_equal(h.n, 5);

    assert_int_equal(ann_cli_hits_sort(&h), 2);
    assert_int_equal(h.n, 4);
    assert_string_equal(h.v[0].log_id, "a");
    assert_true(h.v[0].entry_id == 9 && h.v[1].entry_id == UINT64_MAX);
    assert_int_equal(ann_cli_hits_log_end(&h, 0), 2);
    assert_string_equal(h.v[2].log_id, "b");
    assert_true(h.v[2].entry_id == 2 && h.v[3].entry_id == 10); /* numeric order */
    assert_int_equal(ann_cli_hits_log_end(&h, 2), 4);
    ann_cli_hits_free(&h);
    assert_int_equal(ann_cli_hits_sort(&h), 0);
}

/* Many hits across logs, in the order a search walk returns them (by time). */
static void hits_many_logs_interleaved(void **state)
{
    (void)state;
    ann_cli_hits h = {0};
    char log[8], id[24];
    for (unsigned i = 25000; i > 0; i--) {
        snprintf(log, sizeof log, "log%u", i % 3);
        snprintf(id, sizeof id, "%u", i);
        assert_int_equal(ann_cli_hits_add(&h, (ProtobufCBinaryData){strlen(log), (uint8_t *)log},
                                          (ProtobufCBinaryData){strlen(id), (uint8_t *)id}),
                         0);
    }
    assert_int_equal(ann_cli_hits_sort(&h), 3);
    size_t start = 0, groups = 0;
    while (start < h.n) {
        size_t end = ann_cli_hits_log_end(&h, start);
        for (size_t i = start + 1; i < end; i++)
            assert_true(h.v[i].entry_id > h.v[i - 1].entry_id);
        groups++;
        start = end;
    }
    assert_int_equal(groups, 3);
    assert_int_equal(h.n, 25000);
    ann_cli_hits_free(&h);
}

static void entry_ids_parse(void **state)
{
    (void)state;
    uint64_t v = 99;
    assert_int_equal(ann_cli_parse_id("0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(ann_cli_parse_id("2500", &v), 0);
    assert_true(v == 2500);
    assert_int_equal(ann_cli_parse_id("", &v), -1);
    assert_int_equal(ann_cli_parse_id("+1", &v), -1);
    assert_int_equal(ann_cli_parse_id(" 1", &v), -1);
    assert_int_equal(ann_cli_parse_id("1 ", &v), -1);
    assert_int_equal(ann_cli_parse_id("99999999999999999999", &v), -1);
    assert_int_equal(ann_cli_parse_id_bytes(BYTES("42"), &v), 0);
    assert_true(v == 42);
    assert_int_equal(ann_cli_parse_id_bytes(BYTES("4\0002"), &v), -1);
    assert_int_equal(ann_cli_parse_id_bytes(BYTES("123456789012345678901234"), &v), -1);
}

static void only_yes_confirms(void **state)
{
    (void)state;
    assert_true(ann_cli_answer_is_yes("y\n"));
    assert_true(ann_cli_answer_is_yes("Y"));
    assert_true(ann_cli_answer_is_yes("  yes \r\n"));
    assert_true(ann_cli_answer_is_yes("YES\n"));
    assert_false(ann_cli_answer_is_yes("\n"));
    assert_false(ann_cli_answer_is_yes(""));
    assert_false(ann_cli_answer_is_yes("n\n"));
    assert_false(ann_cli_answer_is_yes("N"));
    assert_false(ann_cli_answer_is_yes("yes please\n"));
    assert_false(ann_cli_answer_is_yes("ye\n"));
    assert_false(ann_cli_answer_is_yes("yy\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_line_has_every_field_escaped),
        cmocka_unit_test(hit_line_starts_with_the_log),
        cmocka_unit_test(revocation_in_json_marker_in_text),
        cmocka_unit_test(hits_are_checked_sorted_grouped_and_unique),
        cmocka_unit_test(hits_many_logs_interleaved),
        cmocka_unit_test(entry_ids_parse),
        cmocka_unit_test(only_yes_confirms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
