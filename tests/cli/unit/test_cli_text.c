/* Escaping and UTF-8 handling of the annals CLI (src/cli/text.c, render.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "cli/render.h"
#include "cli/text.h"

/* Runs fn on s[0..n) into a memory stream and returns the text (caller frees). */
static char *capture(void (*fn)(FILE *, const char *, size_t), const char *s, size_t n)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    fn(f, s, n);
    fclose(f);
    return out;
}

#define TERM(lit) capture(ann_cli_put_term, lit, sizeof(lit) - 1)
#define JSON(lit) capture(ann_cli_put_json_str, lit, sizeof(lit) - 1)

static void expect(char *got, const char *want)
{
    assert_string_equal(got, want);
    free(got);
}

static void term_keeps_plain_text(void **state)
{
    (void)state;
    expect(TERM("hello, world"), "hello, world");
    expect(TERM("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
           "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    expect(TERM(""), "");
}

static void term_escapes_controls(void **state)
{
    (void)state;
    expect(TERM("a\x1b[31mred\x1b[0m"), "a\\x1b[31mred\\x1b[0m");
    expect(TERM("cr\rlf\ntab\tbs\\"), "cr\\rlf\\ntab\\tbs\\\\");
    expect(TERM("nul\0x"), "nul\\x00x");
    expect(TERM("del\x7f bell\x07"), "del\\x7f bell\\x07");
    /* C1 CSI (U+009B) and NEL (U+0085), encoded in UTF-8 */
    expect(TERM("\xc2\x9b"
                "2J\xc2\x85"),
           "\\u009b2J\\u0085");
    /* Bidi override and line separator */
    expect(TERM("x\xe2\x80\xaey\xe2\x80\xa8z"), "x\\u202ey\\u2028z");
}

static void term_escapes_invalid_utf8(void **state)
{
    (void)state;
    expect(TERM("a\xff"
                "b"),
           "a\\xffb");
    expect(TERM("\x9b"
                "1m"),
           "\\x9b1m");                               /* raw 8-bit CSI */
    expect(TERM("\xe2\x82"), "\\xe2\\x82");          /* truncated sequence */
    expect(TERM("\xed\xa0\x80"), "\\xed\\xa0\\x80"); /* surrogate */
    expect(TERM("\xc0\xaf"), "\\xc0\\xaf");          /* overlong */
}

static void json_escapes(void **state)
{
    (void)state;
    expect(JSON("plain"), "\"plain\"");
    expect(JSON("q\"b\\"), "\"q\\\"b\\\\\"");
    expect(JSON("\x1b[0m\r\n\t\b\f\x01"), "\"\\u001b[0m\\r\\n\\t\\b\\f\\u0001\"");
    expect(JSON("\x7f\xc2\x9b"), "\"\\u007f\\u009b\"");
    expect(JSON("bad\xff\xfe"), "\"bad\\ufffd\\ufffd\"");
    expect(JSON("\xe2\x82"), "\"\\ufffd\"");
    expect(JSON("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

static void utf8_next_maximal_subpart(void **state)
{
    (void)state;
    uint32_t cp = 0;
    int ok = 0;
    assert_int_equal(ann_cli_utf8_next((const uint8_t *)"\xe2\x82\xac", 3, &cp, &ok), 3);
    assert_true(ok);
    assert_int_equal(cp, 0x20AC);
    /* E2 82 followed by ASCII: one replacement for the two bytes */
    assert_int_equal(ann_cli_utf8_next((const uint8_t *)"\xe2\x82x", 3, &cp, &ok), 2);
    assert_false(ok);
    assert_int_equal(ann_cli_utf8_next((const uint8_t *)"\xf4\x90\x80\x80", 4, &cp, &ok), 1);
    assert_false(ok);
    assert_int_equal(ann_cli_utf8_next((const uint8_t *)"\xf4\x8f\xbf\xbf", 4, &cp, &ok), 4);
    assert_true(ok);
    assert_int_equal(cp, 0x10FFFF);
}

static void repair_replaces_invalid_keeps_nul(void **state)
{
    (void)state;
    char *out = NULL;
    size_t len = 0, bad = 0;
    const char in[] = "ok\xff"
                      "x\0y\xe2\x82"
                      "z\r";
    const char want[] = "ok\xef\xbf\xbdx\0y\xef\xbf\xbdz\r";
    assert_int_equal(ann_cli_utf8_repair(in, sizeof in - 1, &out, &len, &bad), 0);
    assert_int_equal(len, sizeof want - 1);
    assert_memory_equal(out, want, len);
    assert_int_equal(out[len], '\0');
    assert_int_equal(bad, 2);
    free(out);
    assert_true(ann_cli_utf8_valid("caf\xc3\xa9", 5));
    assert_true(ann_cli_utf8_valid("a\0b", 3));
    assert_false(ann_cli_utf8_valid("\xc3", 1));
}

/* Repair in pieces: never splits a character, waits for the rest of a
 * sequence cut by the end of the input unless told it is final. */
static void repair_prefix_budget(void **state)
{
    (void)state;
    char out[16];
    size_t len = 0, bad = 0;
    /* "a" + euro sign (3 bytes) with a budget of 3: only "a" fits */
    assert_int_equal(ann_cli_utf8_repair_prefix("a\xe2\x82\xac", 4, 3, 1, out, &len, &bad), 1);
    assert_int_equal(len, 1);
    assert_int_equal(ann_cli_utf8_repair_prefix("a\xe2\x82\xac", 4, 4, 1, out, &len, &bad), 4);
    /* an incomplete sequence at the end: kept back unless final */
    assert_int_equal(ann_cli_utf8_repair_prefix("ab\xe2\x82", 4, 10, 0, out, &len, &bad), 2);
    assert_int_equal(bad, 0);
    assert_int_equal(ann_cli_utf8_repair_prefix("ab\xe2\x82", 4, 10, 1, out, &len, &bad), 4);
    assert_int_equal(bad, 1);
    assert_string_equal(out, "ab\xef\xbf\xbd");
    /* an invalid byte costs 3 output bytes */
    bad = 0;
    assert_int_equal(ann_cli_utf8_repair_prefix("\xff\xff", 2, 5, 1, out, &len, &bad), 1);
    assert_int_equal(bad, 1);
}

static void severity_names(void **state)
{
    (void)state;
    assert_int_equal(ann_cli_severity_parse("info"), 300);
    assert_int_equal(ann_cli_severity_parse("WARNING"), 500);
    assert_int_equal(ann_cli_severity_parse("warn"), 500);
    assert_int_equal(ann_cli_severity_parse("900"), 900);
    assert_int_equal(ann_cli_severity_parse("150"), -1);
    assert_int_equal(ann_cli_severity_parse("loud"), -1);
    assert_string_equal(ann_cli_severity_name(600), "ERROR");
    assert_null(ann_cli_severity_name(601));
}

#define BYTES(lit) ((ProtobufCBinaryData){sizeof(lit) - 1, (uint8_t *)(lit)})

static char *render(void (*fn)(FILE *, const Annals__Wire__V1__LogEntry *),
                    const Annals__Wire__V1__LogEntry *e)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    fn(f, e);
    fclose(f);
    return out;
}

/* An entry with hostile content renders on one line with nothing raw, and a
 * NUL byte in the middle does not hide what follows it. */
static void entry_text_is_one_safe_line(void **state)
{
    (void)state;
    Annals__Wire__V1__LogEntry e = ANNALS__WIRE__V1__LOG_ENTRY__INIT;
    Annals__Wire__V1__Timestamp t = ANNALS__WIRE__V1__TIMESTAMP__INIT;
    t.seconds = 1764151200;
    t.nanos = 5;
    e.entry_id = BYTES("42");
    e.time = &t;
    e.severity = 500;
    e.payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    e.text_payload = BYTES("\x1b]0;pwned\x07line1\nline2\r\0after");
    expect(render(ann_cli_print_entry_text, &e), "42 2025-11-26T10:00:00.000000005Z WARNING "
                                                 "\\x1b]0;pwned\\x07line1\\nline2\\r\\x00after\n");
    e.redacted = 1;
    e.payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD__NOT_SET;
    e.severity = 1234; /* not in the enum: shown as a number */
    expect(render(ann_cli_print_entry_text, &e),
           "42 2025-11-26T10:00:00.000000005Z 1234 [redacted]\n");
}

static void entry_json_payload(void **state)
{
    (void)state;
    Annals__Wire__V1__LogEntry e = ANNALS__WIRE__V1__LOG_ENTRY__INIT;
    Annals__Wire__V1__Struct s = ANNALS__WIRE__V1__STRUCT__INIT;
    Annals__Wire__V1__Struct__FieldsEntry fe[4], *fp[4];
    Annals__Wire__V1__Value v[4];
    Annals__Wire__V1__Label lab = ANNALS__WIRE__V1__LABEL__INIT, *labp = &lab;
    for (int i = 0; i < 4; i++) {
        annals__wire__v1__struct__fields_entry__init(&fe[i]);
        annals__wire__v1__value__init(&v[i]);
        fe[i].value = &v[i];
        fp[i] = &fe[i];
    }
    fe[0].key = BYTES("n");
    v[0].kind_case = ANNALS__WIRE__V1__VALUE__KIND_NUMBER_VALUE;
    v[0].number_value = 0.1;
    fe[1].key = BYTES("s\n");
    v[1].kind_case = ANNALS__WIRE__V1__VALUE__KIND_STRING_VALUE;
    v[1].string_value = BYTES("\x1b\0");
    fe[2].key = BYTES("b");
    v[2].kind_case = ANNALS__WIRE__V1__VALUE__KIND_NULL_VALUE;
    fe[3].key = BYTES("i");
    v[3].kind_case = ANNALS__WIRE__V1__VALUE__KIND_NUMBER_VALUE;
    v[3].number_value = -42;
    s.n_fields = 4;
    s.fields = fp;
    lab.key = BYTES("k\"");
    lab.value = BYTES("\xff");
    e.entry_id = BYTES("7");
    e.payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_JSON_PAYLOAD;
    e.json_payload = &s;
    e.n_labels = 1;
    e.labels = &labp;
    expect(render(ann_cli_print_entry_json, &e),
           "{\"log_id\":\"\",\"entry_id\":\"7\",\"insert_id\":\"\",\"time\":null,"
           "\"insert_time\":null,\"severity\":\"UNSPECIFIED\",\"labels\":{\"k\\\"\":\"\\ufffd\"},"
           "\"json_payload\":{\"n\":0.1,\"s\\n\":\"\\u001b\\u0000\",\"b\":null,\"i\":-42},"
           "\"redacted\":false}\n");
    /* In text mode the JSON payload is the same compact JSON. */
    expect(render(ann_cli_print_entry_text, &e),
           "7 - UNSPECIFIED {\"n\":0.1,\"s\\n\":\"\\u001b\\u0000\",\"b\":null,\"i\":-42}\n");
}

/* The documented exit codes (docs/cli.md) and status names. */
static void exit_codes_and_names(void **state)
{
    (void)state;
    assert_int_equal(ann_cli_exit_code(ANN_RPC_OK), 0);
    assert_int_equal(ann_cli_exit_code(ANN_RPC_NOT_FOUND), 3);
    assert_int_equal(ann_cli_exit_code(ANN_RPC_UNAUTHENTICATED), 4);
    assert_int_equal(ann_cli_exit_code(ANN_RPC_PERMISSION_DENIED), 4);
    assert_int_equal(ann_cli_exit_code(ANN_RPC_INVALID_ARGUMENT), 5);
    assert_int_equal(ann_cli_exit_code(ANN_RPC_FAILED_PRECONDITION), 5);
    assert_int_equal(ann_cli_exit_code(ANN_RPC_UNAVAILABLE), 6);
    assert_int_equal(ann_cli_exit_code(ANN_RPC_DEADLINE_EXCEEDED), 6);
    assert_int_equal(ann_cli_exit_code(ANN_RPC_RESOURCE_EXHAUSTED), 7);
    assert_int_equal(ann_cli_exit_code(ANN_RPC_INTERNAL), 1);
    assert_int_equal(ann_cli_exit_code(ANN_RPC_DATA_LOSS), 1);
    assert_int_equal(ann_cli_exit_code(99), 1);
    assert_string_equal(ann_rpc_code_name(ANN_RPC_NOT_FOUND), "NOT_FOUND");
    assert_string_equal(ann_rpc_code_name(ANN_RPC_UNAUTHENTICATED), "UNAUTHENTICATED");
    assert_string_equal(ann_rpc_code_name(17), "UNKNOWN_CODE");
    assert_string_equal(ann_rpc_code_name(-1), "UNKNOWN_CODE");
    ann_rpc_status st = {.code = ANN_RPC_UNAVAILABLE};
    assert_true(ann_cli_retryable(&st));
    st.code = ANN_RPC_INVALID_ARGUMENT;
    assert_false(ann_cli_retryable(&st));
    st.code = ANN_RPC_RESOURCE_EXHAUSTED; /* the request limit: not retriable */
    assert_false(ann_cli_retryable(&st));
    st.retriable = 1; /* a full disk: the server says it is */
    assert_true(ann_cli_retryable(&st));
}

static void labels_split_at_first_equals(void **state)
{
    (void)state;
    char a[] = "k=v=w", b[] = "=v", c[] = "novalue", d[] = "k=";
    char *k, *v;
    assert_int_equal(ann_cli_split_label(a, &k, &v), 0);
    assert_string_equal(k, "k");
    assert_string_equal(v, "v=w");
    assert_int_equal(ann_cli_split_label(b, &k, &v), -1);
    assert_int_equal(ann_cli_split_label(c, &k, &v), -1);
    assert_int_equal(ann_cli_split_label(d, &k, &v), 0);
    assert_string_equal(v, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(term_keeps_plain_text),
        cmocka_unit_test(term_escapes_controls),
        cmocka_unit_test(term_escapes_invalid_utf8),
        cmocka_unit_test(json_escapes),
        cmocka_unit_test(utf8_next_maximal_subpart),
        cmocka_unit_test(repair_replaces_invalid_keeps_nul),
        cmocka_unit_test(repair_prefix_budget),
        cmocka_unit_test(severity_names),
        cmocka_unit_test(entry_text_is_one_safe_line),
        cmocka_unit_test(entry_json_payload),
        cmocka_unit_test(exit_codes_and_names),
        cmocka_unit_test(labels_split_at_first_equals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
