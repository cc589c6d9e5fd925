/* Time parsing and formatting of the annals CLI (src/cli/timefmt.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli/timefmt.h"

#define NOW_S 1764151200LL /* 2025-11-26T10:00:00Z */
#define NOW_NS 123

static void parse_ok(const char *s, int64_t want_s, int32_t want_ns)
{
    int64_t sec = -1;
    int32_t nsec = -1;
    ann_err err;
    if (ann_cli_time_parse(s, NOW_S, NOW_NS, &sec, &nsec, &err) != 0)
        fail_msg("%s: %s", s, err.msg);
    assert_int_equal(sec, want_s);
    assert_int_equal(nsec, want_ns);
}

static void parse_bad(const char *s)
{
    int64_t sec;
    int32_t nsec;
    ann_err err;
    if (ann_cli_time_parse(s, NOW_S, NOW_NS, &sec, &nsec, &err) == 0)
        fail_msg("accepted %s", s);
    assert_int_equal(err.code, ANN_EINVAL);
}

static void rfc3339(void **state)
{
    (void)state;
    parse_ok("2025-11-26T10:00:00Z", NOW_S, 0);
    parse_ok("2025-11-26t10:00:00z", NOW_S, 0);
    parse_ok("2025-11-26 10:00:00Z", NOW_S, 0);
    parse_ok("2025-11-26T11:00:00+01:00", NOW_S, 0);
    parse_ok("2025-11-26T09:30:00-00:30", NOW_S, 0);
    parse_ok("2025-11-26T10:00:00.5Z", NOW_S, 500000000);
    parse_ok("2025-11-26T10:00:00.123456789Z", NOW_S, 123456789);
    parse_ok("2025-11-26T10:00:00.1234567891Z", NOW_S, 123456789);
    parse_ok("1970-01-01T00:00:00Z", 0, 0);
    parse_ok("1969-12-31T23:59:59Z", -1, 0);
    parse_ok("2024-02-29T00:00:00Z", 1709164800, 0);
    parse_ok("0001-01-01T00:00:00Z", -62135596800LL, 0);
    parse_ok("2025-11-26", NOW_S - 36000, 0);
}

static void relative_and_other_forms(void **state)
{
    (void)state;
    parse_ok("now", NOW_S, NOW_NS);
    parse_ok("-1h", NOW_S - 3600, NOW_NS);
    parse_ok("-90m", NOW_S - 5400, NOW_NS);
    parse_ok("-30s", NOW_S - 30, NOW_NS);
    parse_ok("-2d", NOW_S - 172800, NOW_NS);
    parse_ok("@1764151200", NOW_S, 0);
}

static void rejects(void **state)
{
    (void)state;
    parse_bad("");
    parse_bad("yesterday");
    parse_bad("2025-11-26T10:00:00");  /* no zone */
    parse_bad("2025-02-29T00:00:00Z"); /* not a leap year */
    parse_bad("2025-13-01T00:00:00Z");
    parse_bad("2025-11-26T24:00:00Z");
    parse_bad("2025-11-26T10:00:00.Z");
    parse_bad("2025-11-26T10:00:00Zjunk");
    parse_bad("-1y");
    parse_bad("-h");
    parse_bad("-99999999999999d");
    parse_bad("@x");
}

static void format(void **state)
{
    (void)state;
    char buf[ANN_CLI_TIME_BUF];
    assert_string_equal(ann_cli_time_format(NOW_S, 5, buf), "2025-11-26T10:00:00.000000005Z");
    assert_string_equal(ann_cli_time_format(0, 0, buf), "1970-01-01T00:00:00.000000000Z");
    assert_string_equal(ann_cli_time_format(-1, 999999999, buf), "1969-12-31T23:59:59.999999999Z");
    assert_string_equal(ann_cli_time_format(253402300799LL, 0, buf),
                        "9999-12-31T23:59:59.000000000Z");
    assert_string_equal(ann_cli_time_format(253402300800LL, 0, buf), "invalid-time:253402300800.0");
    assert_string_equal(ann_cli_time_format(0, -1, buf), "invalid-time:0.-1");
    assert_string_equal(ann_cli_time_format(0, 1000000000, buf), "invalid-time:0.1000000000");
}

static void round_trip(void **state)
{
    (void)state;
    char buf[ANN_CLI_TIME_BUF];
    for (int64_t s = -62135596800LL; s < 253402300800LL; s += 9876543211LL) {
        int64_t back;
        int32_t ns;
        ann_err err;
        ann_cli_time_format(s, 42, buf);
        assert_int_equal(ann_cli_time_parse(buf, 0, 0, &back, &ns, &err), 0);
        assert_int_equal(back, s);
        assert_int_equal(ns, 42);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc3339),    cmocka_unit_test(relative_and_other_forms),
        cmocka_unit_test(rejects),    cmocka_unit_test(format),
        cmocka_unit_test(round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
