/* Escaping and UTF-8 handling of the annals CLI (src/cli/text.c, render.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

#define TERM(lit) capture(ann_put_term, lit, sizeof(lit) - 1)
#define JSON(lit) capture(ann_put_json_str, lit, sizeof(lit) - 1)

static void expect(char *got, const char *want)
{
    assert_string_equal(got, want);
    free(got);
}

static void term_keeps_plain_text(void **state)
{
    (void)state;
    expect(TERM("hello, world"), "hello, world");
    expect(TERM("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
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
    expect(TERM("\xc2\x9b" "2J\xc2\x85"), "\\u009b2J\\u0085");
    /* Bidi override and line separator */
    expect(TERM("x\xe2\x80\xaey\xe2\x80\xa8z"), "x\\u202ey\\u2028z");
}

static void term_escapes_invalid_utf8(void **state)
{
    (void)state;
    expect(TERM("a\xff" "b"), "a\\xffb");
    expect(TERM("\x9b" "1m"), "\\x9b1m");          /* raw 8-bit CSI */
    expect(TERM("\xe2\x82"), "\\xe2\\x82");        /* truncated sequence */
    expect(TERM("\xed\xa0\x80"), "\\xed\\xa0\\x80"); /* surrogate */
    expect(TERM("\xc0\xaf"), "\\xc0\\xaf");        /* overlong */
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
    assert_int_equal(ann_utf8_next((const uint8_t *)"\xe2\x82\xac", 3, &cp, &ok), 3);
    assert_true(ok);
    assert_int_equal(cp, 0x20AC);
    /* E2 82 followed by ASCII: one replacement for the two bytes */
    assert_int_equal(ann_utf8_next((const uint8_t *)"\xe2\x82x", 3, &cp, &ok), 2);
    assert_false(ok);
    assert_int_equal(ann_utf8_next((const uint8_t *)"\xf4\x90\x80\x80", 4, &cp, &ok), 1);
    assert_false(ok);
    assert_int_equal(ann_utf8_next((const uint8_t *)"\xf4\x8f\xbf\xbf", 4, &cp, &ok), 4);
    assert_true(ok);
    assert_int_equal(cp, 0x10FFFF);
}

static void repair_replaces_invalid_and_nul(void **state)
{
    (void)state;
    char *out = NULL;
    size_t len = 0, bad = 0, nul = 0;
    const char in[] = "ok\xff" "x\0y\xe2\x82" "z\r";
    assert_int_equal(ann_utf8_repair(in, sizeof in - 1, &out, &len, &bad, &nul), 0);
    assert_string_equal(out, "ok\xef\xbf\xbdx\xef\xbf\xbdy\xef\xbf\xbdz\r");
    assert_int_equal(len, strlen(out));
    assert_int_equal(bad, 2);
    assert_int_equal(nul, 1);
    free(out);
    assert_true(ann_utf8_valid("caf\xc3\xa9", 5));
    assert_false(ann_utf8_valid("a\0b", 3));
    assert_false(ann_utf8_valid("\xc3", 1));
}

static void severity_names(void **state)
{
    (void)state;
    assert_int_equal(ann_severity_parse("info"), 300);
    assert_int_equal(ann_severity_parse("WARNING"), 500);
    assert_int_equal(ann_severity_parse("warn"), 500);
    assert_int_equal(ann_severity_parse("900"), 900);
    assert_int_equal(ann_severity_parse("150"), -1);
    assert_int_equal(ann_severity_parse("loud"), -1);
    assert_string_equal(ann_severity_name(600), "ERROR");
    assert_null(ann_severity_name(601));
}

/* An entry with hostile content renders on one line with nothing raw. */
static void entry_text_is_one_safe_line(void **state)
{
    (void)state;
    Annals__V1__LogEntry e = ANNALS__V1__LOG_ENTRY__INIT;
    Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    char *out = NULL;
    size_t len = 0;
    t.seconds = 1764151200;
    t.nanos = 5;
    e.entry_id = "42";
    e.time = &t;
    e.severity = ANNALS__V1__LOG_ENTRY__SEVERITY__WARNING;
    e.payload_case = ANNALS__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    e.text_payload = "\x1b]0;pwned\x07line1\nline2\r";
    FILE *f = open_memstream(&out, &len);
    ann_print_entry_text(f, &e);
    fclose(f);
    assert_string_equal(out, "42 2025-11-26T10:00:00.000000005Z WARNING "
                             "\\x1b]0;pwned\\x07line1\\nline2\\r\n");
    free(out);
}

static void entry_json_payload(void **state)
{
    (void)state;
    Annals__V1__LogEntry e = ANNALS__V1__LOG_ENTRY__INIT;
    Google__Protobuf__Struct s = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry fe[3], *fp[3];
    Google__Protobuf__Value v[3];
    char *out = NULL;
    size_t len = 0;
    for (int i = 0; i < 3; i++) {
        google__protobuf__struct__fields_entry__init(&fe[i]);
        google__protobuf__value__init(&v[i]);
        fe[i].value = &v[i];
        fp[i] = &fe[i];
    }
    fe[0].key = "n";
    v[0].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    v[0].number_value = 0.1;
    fe[1].key = "s\n";
    v[1].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v[1].string_value = "\x1b";
    fe[2].key = "b";
    v[2].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
    s.n_fields = 3;
    s.fields = fp;
    e.entry_id = "7";
    e.payload_case = ANNALS__V1__LOG_ENTRY__PAYLOAD_JSON_PAYLOAD;
    e.json_payload = &s;
    FILE *f = open_memstream(&out, &len);
    ann_print_entry_json(f, &e);
    fclose(f);
    assert_string_equal(out, "{\"log_id\":\"\",\"entry_id\":\"7\",\"insert_id\":\"\",\"time\":null,"
                             "\"insert_time\":null,\"severity\":\"UNSPECIFIED\",\"labels\":{},"
                             "\"json_payload\":{\"n\":0.1,\"s\\n\":\"\\u001b\",\"b\":null},"
                             "\"redacted\":false}\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(term_keeps_plain_text),
        cmocka_unit_test(term_escapes_controls),
        cmocka_unit_test(term_escapes_invalid_utf8),
        cmocka_unit_test(json_escapes),
        cmocka_unit_test(utf8_next_maximal_subpart),
        cmocka_unit_test(repair_replaces_invalid_and_nul),
        cmocka_unit_test(severity_names),
        cmocka_unit_test(entry_text_is_one_safe_line),
        cmocka_unit_test(entry_json_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
