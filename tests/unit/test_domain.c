/* Domain rules: UTF-8, UUIDs, entry ids, base64url, page tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "domain/body.h"
#include "domain/rules.h"
#include "domain/text.h"
#include "domain/token.h"

#define U8(s) ann_utf8_valid((s), sizeof(s) - 1)

static void rules_on_entries_tenants_and_keys(void **state)
{
    (void)state;
    assert_true(ann_severity_valid(0) && ann_severity_valid(100) && ann_severity_valid(900));
    assert_false(ann_severity_valid(150) || ann_severity_valid(-100) || ann_severity_valid(1000));
    int64_t ns;
    assert_int_equal(ann_time_to_ns(0, 5, &ns), 0);
    assert_int_equal(ns, 5);
    assert_int_equal(ann_time_to_ns(-9214560000LL, 0, &ns), 0);        /* 1678-01-01 */
    assert_int_equal(ann_time_to_ns(-9214560001LL, 0, &ns), -1);       /* 1677 */
    assert_int_equal(ann_time_to_ns(9214646399LL, 999999999, &ns), 0); /* 2261-12-31 */
    assert_int_equal(ann_time_to_ns(9214646400LL, 0, &ns), -1);        /* 2262 */
    assert_int_equal(ann_time_to_ns(0, 1000000000, &ns), -1);
    assert_int_equal(ann_time_to_ns(0, -1, &ns), -1);
    assert_true(ann_tenant_name_valid("a", 1));
    assert_false(ann_tenant_name_valid("", 0));
    assert_false(ann_tenant_name_valid("\xff", 1));
    char name[130];
    memset(name, 'n', sizeof name);
    assert_true(ann_tenant_name_valid(name, 128));
    assert_false(ann_tenant_name_valid(name, 129));

    uint8_t raw[32] = {0}, h1[32], h2[32];
    char key[ANN_KEY_LEN + 1];
    ann_key_format(raw, key);
    assert_int_equal(strlen(key), ANN_KEY_LEN);
    assert_memory_equal(key, "annals_AAAA", 11);
    ann_key_hash(key, strlen(key), h1);
    raw[31] = 1;
    ann_key_format(raw, key);
    ann_key_hash(key, strlen(key), h2);
    assert_memory_not_equal(h1, h2, 32);

    const char *k, *why;
    size_t kl;
    assert_int_equal(ann_bearer_parse("bearer   abc", 12, &k, &kl, &why), 0);
    assert_int_equal(kl, 3);
    assert_memory_equal(k, "abc", 3);
    assert_int_equal(ann_bearer_parse("Basic abc", 9, &k, &kl, &why), -1);
    assert_non_null(strstr(why, "Bearer"));
    assert_int_equal(ann_bearer_parse("Bearer  ", 8, &k, &kl, &why), -1);
    assert_int_equal(ann_bearer_parse(NULL, 0, &k, &kl, &why), -1);

    uint8_t r16[16];
    memset(r16, 0xff, sizeof r16);
    char u[37];
    ann_uuid_v4_format(r16, u);
    assert_string_equal(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
}

static void utf8_accepts_and_refuses(void **state)
{
    (void)state;
    assert_true(U8(""));
    assert_true(U8("plain ascii \x1b[31m with escape"));
    assert_true(U8("nul\0inside"));
    assert_true(U8("\xc3\xa9"));         /* é */
    assert_true(U8("\xe2\x82\xac"));     /* € */
    assert_true(U8("\xf0\x9f\x98\x80")); /* 😀 */
    assert_true(U8("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
    assert_false(U8("\xff"));
    assert_false(U8("\xc0\xaf"));         /* overlong '/' */
    assert_false(U8("\xe0\x80\xaf"));     /* overlong */
    assert_false(U8("\xed\xa0\x80"));     /* surrogate D800 */
    assert_false(U8("\xf4\x90\x80\x80")); /* > U+10FFFF */
    assert_false(U8("\xc3"));             /* truncated */
    assert_false(U8("\xe2\x82"));         /* truncated */
    assert_false(U8("a\x80"));            /* lone continuation */
}

static void uuids(void **state)
{
    (void)state;
    uint8_t b[16];
    char s[37];
    assert_int_equal(ann_uuid_parse("123E4567-E89B-12D3-A456-426614174000", 36, b), 0);
    ann_uuid_format(b, s);
    assert_string_equal(s, "123e4567-e89b-12d3-a456-426614174000");
    assert_int_equal(ann_uuid_parse("123e4567e89b12d3a456426614174000", 32, b), -1);
    assert_int_equal(ann_uuid_parse("123e4567-e89b-12d3-a456-42661417400g", 36, b), -1);
    assert_int_equal(ann_uuid_parse("123e4567-e89b-12d3-a456_426614174000", 36, b), -1);
    assert_int_equal(ann_uuid_parse("", 0, b), -1);
    memset(b, 0xff, sizeof b);
    ann_uuid_v4_from_random(b);
    ann_uuid_format(b, s);
    assert_int_equal(s[14], '4');
    assert_int_equal(s[19], 'b');
}

static void entry_ids(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(ann_entry_id_parse("1", 1, false, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(ann_entry_id_parse("18446744073709551615", 20, false, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(ann_entry_id_parse("18446744073709551616", 20, false, &v), -1);
    assert_int_equal(ann_entry_id_parse("0", 1, false, &v), -1);
    assert_int_equal(ann_entry_id_parse("0", 1, true, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ann_entry_id_parse("01", 2, true, &v), -1);
    assert_int_equal(ann_entry_id_parse("-1", 2, true, &v), -1);
    assert_int_equal(ann_entry_id_parse("+1", 2, true, &v), -1);
    assert_int_equal(ann_entry_id_parse("1 ", 2, true, &v), -1);
    assert_int_equal(ann_entry_id_parse("", 0, true, &v), -1);
}

static void base64url_round_trip(void **state)
{
    (void)state;
    uint8_t in[40], out[40];
    char enc[64];
    for (size_t n = 0; n <= sizeof in; n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(i * 37 + n);
        ann_b64url_encode(in, n, enc);
        assert_int_equal(strlen(enc), ann_b64url_len(n));
        assert_int_equal(ann_b64url_decode(enc, strlen(enc), out, sizeof out), (long)n);
        assert_memory_equal(in, out, n);
    }
    assert_int_equal(ann_b64url_decode("A", 1, out, sizeof out), -1);   /* bad length */
    assert_int_equal(ann_b64url_decode("AB=", 3, out, sizeof out), -1); /* padding */
    assert_int_equal(ann_b64url_decode("AB", 2, out, sizeof out), -1);  /* stray low bits */
    assert_int_equal(ann_b64url_decode("AA", 2, out, sizeof out), 1);
    assert_int_equal(ann_b64url_decode("AAAA", 4, out, 2), -1); /* too small */
}

static void page_tokens(void **state)
{
    (void)state;
    uint8_t secret[32] = {1, 2, 3};
    ann_page_scope sc = {.tenant_id = "t",
                         .log_id = "l",
                         .start_ns = 5,
                         .end_ns = 10,
                         .text = "err",
                         .text_len = 3,
                         .min_severity = 500};
    ann_page_cursor cur = {.max_id = 99, .time_ns = -12345, .entry_id = 42}, got;
    char tok[ANN_PAGE_TOKEN_MAX];
    ann_err err = {0};
    ann_page_token_encode(secret, &sc, &cur, tok);
    assert_int_equal(ann_page_token_decode(secret, &sc, tok, strlen(tok), &got, &err), 0);
    assert_true(got.max_id == 99 && got.time_ns == -12345 && got.entry_id == 42);

    /* Every single-character change is refused. */
    size_t n = strlen(tok);
    for (size_t i = 0; i < n; i++) {
        char t2[ANN_PAGE_TOKEN_MAX];
        memcpy(t2, tok, n + 1);
        t2[i] = t2[i] == 'A' ? 'B' : 'A';
        assert_int_equal(ann_page_token_decode(secret, &sc, t2, n, &got, &err), -1);
        assert_int_equal(err.code, ANN_EINVAL);
        assert_non_null(strstr(err.msg, "page_token"));
    }
    /* Another log, window, filter or secret: refused. */
    ann_page_scope other = sc;
    other.log_id = "m";
    assert_int_equal(ann_page_token_decode(secret, &other, tok, n, &got, &err), -1);
    other = sc;
    other.end_ns = 11;
    assert_int_equal(ann_page_token_decode(secret, &other, tok, n, &got, &err), -1);
    other = sc;
    other.text_len = 2;
    assert_int_equal(ann_page_token_decode(secret, &other, tok, n, &got, &err), -1);
    other = sc;
    other.tenant_id = "u";
    assert_int_equal(ann_page_token_decode(secret, &other, tok, n, &got, &err), -1);
    uint8_t secret2[32] = {9};
    assert_int_equal(ann_page_token_decode(secret2, &sc, tok, n, &got, &err), -1);
    assert_int_equal(ann_page_token_decode(secret, &sc, "garbage!", 8, &got, &err), -1);
    assert_int_equal(ann_page_token_decode(secret, &sc, "", 0, &got, &err), -1);
}

static void test_roles(void **state)
{
    (void)state;
    char b[ANN_ROLES_TEXT_MAX];
    assert_int_equal(ann_role_parse("writer"), ANN_ROLE_WRITER);
    assert_int_equal(ann_role_parse("reader"), ANN_ROLE_READER);
    assert_int_equal(ann_role_parse("redactor"), ANN_ROLE_REDACTOR);
    assert_int_equal(ann_role_parse("admin"), ANN_ROLE_ADMIN);
    assert_int_equal(ann_role_parse("Admin"), 0);
    assert_int_equal(ann_role_parse(""), 0);
    assert_string_equal(ann_roles_format(ANN_ROLES_ALL, b), "writer, reader, redactor, admin");
    assert_string_equal(ann_roles_format(ANN_ROLE_READER | ANN_ROLE_WRITER, b), "writer, reader");
    assert_string_equal(ann_roles_format(0, b), "none");
    assert_true(ann_roles_allow(ANN_ROLE_ADMIN, ANN_ROLE_REDACTOR));
    assert_true(ann_roles_allow(ANN_ROLE_READER, ANN_ROLE_WRITER | ANN_ROLE_READER));
    assert_false(ann_roles_allow(ANN_ROLE_WRITER, ANN_ROLE_READER));
    assert_false(
        ann_roles_allow(ANN_ROLE_WRITER | ANN_ROLE_READER | ANN_ROLE_REDACTOR, ANN_ROLE_ADMIN));
    assert_true(ann_key_name_valid("ci-nightly_2.0", 14));
    assert_false(ann_key_name_valid("", 0));
    assert_false(ann_key_name_valid("a/b", 3));
    assert_false(ann_key_name_valid("a b", 3));
    char name[ANN_KEY_NAME_MAX + 1];
    memset(name, 'k', sizeof name);
    assert_true(ann_key_name_valid(name, ANN_KEY_NAME_MAX));
    assert_false(ann_key_name_valid(name, ANN_KEY_NAME_MAX + 1));
    char tname[ANN_TENANT_NAME_MAX + 1], actor[ANN_ACTOR_MAX];
    memset(tname, 't', ANN_TENANT_NAME_MAX);
    tname[ANN_TENANT_NAME_MAX] = '\0';
    name[ANN_KEY_NAME_MAX] = '\0';
    ann_actor_format(tname, name, actor, sizeof actor);
    assert_int_equal(strlen(actor),
                     strlen("tenant:/key:") + ANN_TENANT_NAME_MAX + ANN_KEY_NAME_MAX);
    ann_actor_format("acme", "ci", actor, sizeof actor);
    assert_string_equal(actor, "tenant:acme/key:ci");
}

/* The search projection's doc and LIKE pattern (domain/body.h): NUL and bytes outside
 * UTF-8 map to U+FFFD in both, LIKE's own characters are escaped in the pattern, and a
 * query found in a string is found (unescaped) in the doc. */
static void search_doc_and_pattern(void **state)
{
    (void)state;
    ann_buf body = ANN_BUF_INIT, label = ANN_BUF_INIT, doc = ANN_BUF_INIT, pat = ANN_BUF_INIT;
    ann_buf_add_len_field(&label, 1, "k", 1);
    ann_buf_add_len_field(&label, 2, "v\xc3\xa9", 3);
    ann_buf_add_len_field(&body, 23, label.data, label.len);
    static const uint8_t text[] = {'a', 0, 'b', '%', '_', '\\', 0xff, 0xf0, 0x9f, 0x9a, 0x80};
    ann_buf_add_len_field(&body, 30, text, sizeof text);
    ann_body_search_doc(body.data, body.len, &doc);
    static const char want[] = "v\xc3\xa9\na\xef\xbf\xbd"
                               "b%_\\\xef\xbf\xbd\xf0\x9f\x9a\x80";
    assert_int_equal(doc.len, strlen(want));
    assert_memory_equal(doc.data, want, doc.len);
    ann_search_like_pattern(text + 1, 6, &pat); /* NUL b % _ \ 0xff */
    assert_string_equal((const char *)pat.data, "%\xef\xbf\xbd"
                                                "b\\%\\_\\\\\xef\xbf\xbd%");
    ann_search_like_pattern((const uint8_t *)"\xf0\x9f\x9a\x80", 4, &pat);
    assert_string_equal((const char *)pat.data, "%\xf0\x9f\x9a\x80%");
    ann_buf_release(&body), ann_buf_release(&label), ann_buf_release(&doc), ann_buf_release(&pat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(rules_on_entries_tenants_and_keys),
        cmocka_unit_test(utf8_accepts_and_refuses),
        cmocka_unit_test(uuids),
        cmocka_unit_test(entry_ids),
        cmocka_unit_test(base64url_round_trip),
        cmocka_unit_test(page_tokens),
        cmocka_unit_test(search_doc_and_pattern),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
