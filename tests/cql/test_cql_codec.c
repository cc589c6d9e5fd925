/* Unit tests of the CQL v4 codec against frames built by hand from the spec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cql/cql_codec.h"
#include "frames.h"

static int decode(frame_fn fn, ann_cql_result *r, ann_cql_buf *b)
{
    ann_err err;
    ann_err_clear(&err);
    fn(b);
    assert_false(b->failed);
    return ann_cql_frame_decode(b->p, b->len, r, &err);
}

static bool bytes_eq(ann_cql_bytes b, const char *s)
{
    return b.len >= 0 && (size_t)b.len == strlen(s) && memcmp(b.p, s, (size_t)b.len) == 0;
}

static void test_header(void **state)
{
    (void)state;
    ann_cql_header h;
    ann_err err;
    uint8_t ok[9] = {0x84, 0x08, 0x01, 0x02, 0x08, 0, 0, 1, 0};
    assert_int_equal(ann_cql_header_decode(ok, ANN_CQL_MAX_BODY, &h, &err), 0);
    assert_int_equal(h.stream, 0x0102);
    assert_int_equal(h.opcode, ANN_CQL_OP_RESULT);
    assert_int_equal(h.length, 256);
    assert_int_equal(h.flags, ANN_CQL_FLAG_WARNING);
    uint8_t neg[9] = {0x84, 0, 0xff, 0xff, 0x0c, 0, 0, 0, 0};
    assert_int_equal(ann_cql_header_decode(neg, ANN_CQL_MAX_BODY, &h, &err), 0);
    assert_int_equal(h.stream, -1);
    uint8_t req[9] = {0x04, 0, 0, 0, 0x08, 0, 0, 0, 0};
    assert_int_equal(ann_cql_header_decode(req, ANN_CQL_MAX_BODY, &h, &err), -1);
    assert_int_equal(err.code, ANN_EIO);
    uint8_t v5[9] = {0x85, 0, 0, 0, 0x08, 0, 0, 0, 0};
    assert_int_equal(ann_cql_header_decode(v5, ANN_CQL_MAX_BODY, &h, &err), -1);
    uint8_t comp[9] = {0x84, 0x01, 0, 0, 0x08, 0, 0, 0, 0};
    assert_int_equal(ann_cql_header_decode(comp, ANN_CQL_MAX_BODY, &h, &err), -1);
    uint8_t big[9] = {0x84, 0, 0, 0, 0x08, 0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(ann_cql_header_decode(big, ANN_CQL_MAX_BODY, &h, &err), -1);
    uint8_t lim[9] = {0x84, 0, 0, 0, 0x08, 0, 0, 0x10, 0x01};
    assert_int_equal(ann_cql_header_decode(lim, 4096, &h, &err), -1);
}

static void test_simple_messages(void **state)
{
    (void)state;
    ann_cql_buf b = {0};
    ann_cql_result r;
    assert_int_equal(decode(frame_ready, &r, &b), 0);
    assert_int_equal(r.opcode, ANN_CQL_OP_READY);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_authenticate, &r, &b), 0);
    assert_int_equal(r.opcode, ANN_CQL_OP_AUTHENTICATE);
    assert_true(bytes_eq(r.authenticator, "org.apache.cassandra.auth.PasswordAuthenticator"));
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_auth_challenge, &r, &b), 0);
    assert_true(bytes_eq(r.token, "nonce"));
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_auth_success_null, &r, &b), 0);
    assert_int_equal(r.opcode, ANN_CQL_OP_AUTH_SUCCESS);
    assert_true(r.token.len < 0);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_supported, &r, &b), 0);
    assert_int_equal(r.nopts, 3);
    assert_true(bytes_eq(r.opt_keys[0], "PROTOCOL_VERSIONS"));
    assert_int_equal(r.opt_count[0], 3);
    assert_true(bytes_eq(r.opt_vals[r.opt_first[0] + 1], "4/v4"));
    assert_int_equal(r.opt_count[1], 0);
    assert_true(bytes_eq(r.opt_keys[2], "CQL_VERSION"));
    assert_true(bytes_eq(r.opt_vals[r.opt_first[2]], "3.4.7"));
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_void_warn_trace, &r, &b), 0);
    assert_int_equal(r.kind, ANN_CQL_RESULT_VOID);
    assert_int_equal(r.stream, 7);
    assert_int_equal(r.tracing_id.len, 16);
    assert_int_equal(r.tracing_id.p[0], 0xa0);
    assert_int_equal(r.nwarnings, 2);
    assert_true(bytes_eq(r.warnings[0], "Batch too large"));
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_set_keyspace, &r, &b), 0);
    assert_int_equal(r.kind, ANN_CQL_RESULT_SET_KEYSPACE);
    assert_true(bytes_eq(r.keyspace, "annals"));
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_schema_keyspace, &r, &b), 0);
    assert_true(bytes_eq(r.change_type, "CREATED"));
    assert_true(bytes_eq(r.target, "KEYSPACE"));
    assert_true(bytes_eq(r.sc_keyspace, "annals"));
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_schema_table, &r, &b), 0);
    assert_true(bytes_eq(r.sc_name, "log_heads"));
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_schema_function, &r, &b), 0);
    assert_true(bytes_eq(r.target, "FUNCTION"));
    assert_true(bytes_eq(r.sc_name, "f"));
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_event_status, &r, &b), 0);
    assert_int_equal(r.stream, -1);
    assert_true(bytes_eq(r.event_type, "STATUS_CHANGE"));
    ann_cql_result_release(&r);
    ann_cql_buf_release(&b);
}

static void test_rows(void **state)
{
    (void)state;
    ann_cql_buf b = {0};
    ann_cql_result r;
    ann_err err;
    assert_int_equal(decode(frame_rows_global, &r, &b), 0);
    assert_int_equal(r.kind, ANN_CQL_RESULT_ROWS);
    assert_int_equal(r.ncols, 8);
    assert_int_equal(r.nrows, 2);
    assert_true(r.paging_state.len < 0);
    assert_true(bytes_eq(r.cols[3].keyspace, "ks"));
    assert_true(bytes_eq(r.cols[3].table, "t"));
    assert_int_equal(r.cols[2].type, ANN_CQL_T_MAP);
    assert_int_equal(r.cols[2].sub[0], ANN_CQL_T_VARCHAR);
    assert_int_equal(ann_cql_column_index(&r, "ok"), 3);
    assert_int_equal(ann_cql_column_index(&r, "nope"), -1);

    int64_t i64;
    assert_int_equal(ann_cql_get_bigint(&r, 0, 0, &i64, &err), 0);
    assert_int_equal(i64, -5);
    assert_int_equal(ann_cql_get_bigint(&r, 1, 0, &i64, &err), 0);
    assert_true(i64 == INT64_MAX);
    const char *s;
    size_t n;
    assert_int_equal(ann_cql_get_text(&r, 0, 1, &s, &n, &err), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(s, "h\xc3\xa9llo", 6);
    assert_int_equal(ann_cql_get_text(&r, 1, 1, &s, &n, &err), 1); /* null */
    /* type mismatch and out of range */
    assert_int_equal(ann_cql_get_text(&r, 0, 0, &s, &n, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    assert_int_equal(ann_cql_get_bigint(&r, 2, 0, &i64, &err), -1);
    assert_int_equal(ann_cql_get_bigint(&r, 0, 8, &i64, &err), -1);

    ann_cql_map_iter it;
    ann_cql_bytes k, v;
    assert_int_equal(ann_cql_map_iter_init(&it, ann_cql_cell(&r, 0, 2)), 0);
    assert_int_equal(ann_cql_map_next(&it, &k, &v), 1);
    assert_true(bytes_eq(k, "a"));
    assert_true(bytes_eq(v, "1"));
    assert_int_equal(ann_cql_map_next(&it, &k, &v), 1);
    assert_true(bytes_eq(k, "bc"));
    assert_true(bytes_eq(v, ""));
    assert_int_equal(ann_cql_map_next(&it, &k, &v), 0);
    assert_int_equal(ann_cql_map_iter_init(&it, ann_cql_cell(&r, 1, 2)), 1); /* null map */

    bool ok;
    assert_int_equal(ann_cql_get_bool(&r, 0, 3, &ok, &err), 0);
    assert_true(ok);
    uint8_t u[16];
    assert_int_equal(ann_cql_get_uuid(&r, 0, 4, u, &err), 0);
    assert_int_equal(u[15], 15);
    int32_t i32;
    assert_int_equal(ann_cql_get_int(&r, 0, 5, &i32, &err), 0);
    assert_int_equal(i32, 123456);
    assert_int_equal(ann_cql_get_bigint(&r, 0, 6, &i64, &err), 0);
    assert_true(i64 == 1700000000000);
    const uint8_t *bp;
    assert_int_equal(ann_cql_get_blob(&r, 0, 7, &bp, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(bp[2], 2);
    assert_int_equal(ann_cql_applied(&r, &ok, &err), -1); /* not an LWT result */
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_rows_local_paged, &r, &b), 0);
    assert_int_equal(r.nrows, 3);
    assert_int_equal(r.paging_state.len, 4);
    assert_true(bytes_eq(r.cols[0].table, "tbl"));
    assert_int_equal(ann_cql_get_int(&r, 2, 0, &i32, &err), 0);
    assert_int_equal(i32, 20);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_rows_no_metadata, &r, &b), 0);
    assert_null(r.cols);
    assert_int_equal(r.ncols, 2);
    assert_int_equal(ann_cql_cell(&r, 0, 0)->len, 1);
    assert_true(ann_cql_cell(&r, 0, 1)->len < 0);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_rows_lwt_not_applied, &r, &b), 0);
    ok = true;
    assert_int_equal(ann_cql_applied(&r, &ok, &err), 0);
    assert_false(ok);
    assert_int_equal(ann_cql_get_bigint(&r, 0, ann_cql_column_index(&r, "owner_epoch"), &i64, &err),
                     0);
    assert_int_equal(i64, 7);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_rows_nested_types, &r, &b), 0);
    assert_int_equal(r.cols[0].type, ANN_CQL_T_LIST);
    assert_int_equal(r.cols[0].sub[0], ANN_CQL_T_TUPLE);
    assert_int_equal(r.cols[1].type, ANN_CQL_T_SET);
    assert_int_equal(r.nrows, 0);
    ann_cql_result_release(&r);
    ann_cql_buf_release(&b);
}

static void test_prepared(void **state)
{
    (void)state;
    ann_cql_buf b = {0};
    ann_cql_result r;
    assert_int_equal(decode(frame_prepared, &r, &b), 0);
    assert_int_equal(r.kind, ANN_CQL_RESULT_PREPARED);
    assert_true(bytes_eq(r.prepared_id, "0123456789abcdef"));
    assert_int_equal(r.nbind, 3);
    assert_int_equal(r.npk, 2);
    assert_int_equal(r.pk_index[0], 1);
    assert_int_equal(r.pk_index[1], 0);
    assert_int_equal(r.bind[0].type, ANN_CQL_T_BLOB);
    assert_true(bytes_eq(r.bind[1].name, "tenant_id"));
    assert_int_equal(r.ncols, 0);
    assert_int_equal(r.meta_flags, 4);
    ann_cql_result_release(&r);
    ann_cql_buf_release(&b);
}

static void test_errors(void **state)
{
    (void)state;
    ann_cql_buf b = {0};
    ann_cql_result r;

    assert_int_equal(decode(frame_err_syntax, &r, &b), 0);
    assert_int_equal(r.opcode, ANN_CQL_OP_ERROR);
    assert_int_equal(r.error.code, ANN_CQL_E_SYNTAX);
    assert_string_equal(r.error.message, "line 1:0 no viable alternative");
    assert_int_equal(ann_cql_errcode_to_ann(r.error.code), ANN_EINVAL);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_err_unavailable, &r, &b), 0);
    assert_int_equal(r.error.code, ANN_CQL_E_UNAVAILABLE);
    assert_int_equal(r.error.consistency, ANN_CQL_QUORUM);
    assert_int_equal(r.error.required, 2);
    assert_int_equal(r.error.alive, 1);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_err_write_timeout, &r, &b), 0);
    assert_int_equal(r.error.code, ANN_CQL_E_WRITE_TIMEOUT);
    assert_int_equal(r.error.consistency, ANN_CQL_LOCAL_QUORUM);
    assert_int_equal(r.error.received, 1);
    assert_int_equal(r.error.blockfor, 2);
    assert_int_equal(r.error.write_type, ANN_CQL_WT_BATCH_LOG);
    assert_string_equal(r.error.write_type_name, "BATCH_LOG");
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_err_read_timeout, &r, &b), 0);
    assert_int_equal(r.error.code, ANN_CQL_E_READ_TIMEOUT);
    assert_int_equal(r.error.received, 2);
    assert_int_equal(r.error.blockfor, 3);
    assert_true(r.error.data_present);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_err_read_failure, &r, &b), 0);
    assert_int_equal(r.error.numfailures, 1);
    assert_false(r.error.data_present);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_err_write_failure, &r, &b), 0);
    assert_int_equal(r.error.write_type, ANN_CQL_WT_CAS);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_err_function_failure, &r, &b), 0);
    assert_string_equal(r.error.keyspace, "ks");
    assert_string_equal(r.error.table, "fn");
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_err_already_exists, &r, &b), 0);
    assert_string_equal(r.error.keyspace, "annals");
    assert_string_equal(r.error.table, "log_heads");
    assert_int_equal(ann_cql_errcode_to_ann(r.error.code), ANN_EEXISTS);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_err_unprepared, &r, &b), 0);
    assert_int_equal(r.error.unprepared_id_len, 16);
    assert_memory_equal(r.error.unprepared_id, "0123456789abcdef", 16);
    ann_cql_result_release(&r);

    assert_int_equal(decode(frame_err_overloaded, &r, &b), 0);
    assert_int_equal(r.error.code, ANN_CQL_E_OVERLOADED);
    assert_int_equal(ann_cql_errcode_to_ann(r.error.code), ANN_EUNAVAIL);
    ann_cql_result_release(&r);
    ann_cql_buf_release(&b);
}

/* Every strict prefix of every sample frame (with the header's length fixed
 * to the prefix) must be rejected or decoded without reading past the end;
 * ASan in the sanitizer build catches any overread. */
static void test_truncations(void **state)
{
    (void)state;
    ann_cql_buf b = {0};
    for (const test_frame *t = ann_test_frames; t->name; t++) {
        t->build(&b);
        size_t full = b.len;
        for (size_t cut = ANN_CQL_HEADER_LEN; cut < full; cut++) {
            uint8_t *copy = malloc(cut);
            assert_non_null(copy);
            memcpy(copy, b.p, cut);
            uint32_t body = (uint32_t)(cut - ANN_CQL_HEADER_LEN);
            copy[5] = (uint8_t)(body >> 24);
            copy[6] = (uint8_t)(body >> 16);
            copy[7] = (uint8_t)(body >> 8);
            copy[8] = (uint8_t)body;
            ann_cql_result r;
            ann_err err;
            (void)ann_cql_frame_decode(copy, cut, &r, &err);
            ann_cql_result_release(&r);
            free(copy);
        }
        /* and a length that disagrees with the buffer is refused */
        ann_cql_result r;
        ann_err err;
        assert_int_equal(ann_cql_frame_decode(b.p, full - 1, &r, &err), -1);
    }
    ann_cql_buf_release(&b);
}

static void test_hostile_counts(void **state)
{
    (void)state;
    ann_cql_buf b = {0};
    ann_cql_result r;
    ann_err err;
    /* rows_count 2^31-1 with a tiny body: refused without a huge allocation */
    fb_begin(&b, ANN_CQL_OP_RESULT, 0, 1);
    ann_cql_buf_i32(&b, ANN_CQL_RESULT_ROWS);
    ann_cql_buf_i32(&b, 0x0004);
    ann_cql_buf_i32(&b, 1000);
    ann_cql_buf_i32(&b, INT32_MAX);
    ann_cql_buf_i32(&b, 0);
    fb_end(&b);
    assert_int_equal(ann_cql_frame_decode(b.p, b.len, &r, &err), -1);
    assert_int_equal(err.code, ANN_EIO);
    /* rows without columns */
    fb_begin(&b, ANN_CQL_OP_RESULT, 0, 1);
    ann_cql_buf_i32(&b, ANN_CQL_RESULT_ROWS);
    ann_cql_buf_i32(&b, 0x0004);
    ann_cql_buf_i32(&b, 0);
    ann_cql_buf_i32(&b, INT32_MAX);
    fb_end(&b);
    assert_int_equal(ann_cql_frame_decode(b.p, b.len, &r, &err), -1);
    /* negative column count */
    fb_begin(&b, ANN_CQL_OP_RESULT, 0, 1);
    ann_cql_buf_i32(&b, ANN_CQL_RESULT_ROWS);
    ann_cql_buf_i32(&b, 0);
    ann_cql_buf_i32(&b, -3);
    fb_end(&b);
    assert_int_equal(ann_cql_frame_decode(b.p, b.len, &r, &err), -1);
    /* type nesting deeper than the limit */
    fb_begin(&b, ANN_CQL_OP_RESULT, 0, 1);
    ann_cql_buf_i32(&b, ANN_CQL_RESULT_ROWS);
    ann_cql_buf_i32(&b, 1);
    ann_cql_buf_i32(&b, 1);
    ann_cql_buf_string(&b, "k", 1);
    ann_cql_buf_string(&b, "t", 1);
    ann_cql_buf_string(&b, "c", 1);
    for (int i = 0; i < 40; i++)
        ann_cql_buf_u16(&b, ANN_CQL_T_LIST);
    ann_cql_buf_u16(&b, ANN_CQL_T_INT);
    ann_cql_buf_i32(&b, 0);
    fb_end(&b);
    assert_int_equal(ann_cql_frame_decode(b.p, b.len, &r, &err), -1);
    /* unknown result kind and unknown opcode */
    fb_begin(&b, ANN_CQL_OP_RESULT, 0, 1);
    ann_cql_buf_i32(&b, 99);
    fb_end(&b);
    assert_int_equal(ann_cql_frame_decode(b.p, b.len, &r, &err), -1);
    fb_begin(&b, 0x33, 0, 1);
    fb_end(&b);
    assert_int_equal(ann_cql_frame_decode(b.p, b.len, &r, &err), -1);
    /* an unprepared id longer than any real one */
    fb_begin(&b, ANN_CQL_OP_ERROR, 0, 1);
    ann_cql_buf_i32(&b, ANN_CQL_E_UNPREPARED);
    ann_cql_buf_string(&b, "x", 1);
    uint8_t big[200] = {0};
    ann_cql_buf_short_bytes(&b, big, sizeof big);
    fb_end(&b);
    assert_int_equal(ann_cql_frame_decode(b.p, b.len, &r, &err), -1);
    /* trailing bytes after a known body are allowed (spec section 1) */
    frame_ready(&b);
    ann_cql_buf_u8(&b, 0xee);
    fb_end(&b);
    assert_int_equal(ann_cql_frame_decode(b.p, b.len, &r, &err), 0);
    ann_cql_result_release(&r);
    /* a malformed map cell */
    ann_cql_bytes cell = {(const uint8_t *)"\x00\x00\x00\x02\x00\x00\x00\x09zz", 10};
    ann_cql_map_iter it;
    ann_cql_bytes k, v;
    assert_int_equal(ann_cql_map_iter_init(&it, &cell), 0);
    assert_int_equal(ann_cql_map_next(&it, &k, &v), -1);
    ann_cql_buf_release(&b);
}

static void test_encode_startup_options(void **state)
{
    (void)state;
    ann_cql_buf b = {0};
    ann_err err;
    assert_int_equal(ann_cql_encode_startup(&b, &err), 0);
    static const uint8_t want[] = {0x04, 0,   0,   0,   0x01, 0,   0,   0,   22,  0,   1,
                                   0,    11,  'C', 'Q', 'L',  '_', 'V', 'E', 'R', 'S', 'I',
                                   'O',  'N', 0,   5,   '3',  '.', '0', '.', '0'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.p, want, sizeof want);
    assert_int_equal(ann_cql_encode_options(&b, &err), 0);
    static const uint8_t opt[] = {0x04, 0, 0, 0, 0x05, 0, 0, 0, 0};
    assert_int_equal(b.len, sizeof opt);
    assert_memory_equal(b.p, opt, sizeof opt);
    assert_int_equal(ann_cql_encode_auth_response(&b, "\0u\0p", 4, &err), 0);
    static const uint8_t auth[] = {0x04, 0, 0, 0, 0x0f, 0, 0, 0, 8, 0, 0, 0, 4, 0, 'u', 0, 'p'};
    assert_memory_equal(b.p, auth, sizeof auth);
    const char *ev[] = {"SCHEMA_CHANGE", "UP"};
    assert_int_equal(ann_cql_encode_register(&b, ev, 2, &err), 0);
    static const uint8_t reg[] = {0x04, 0,   0,   0,   0x0b, 0,   0,   0,   21,  0,
                                  2,    0,   13,  'S', 'C',  'H', 'E', 'M', 'A', '_',
                                  'C',  'H', 'A', 'N', 'G',  'E', 0,   2,   'U', 'P'};
    assert_int_equal(b.len, sizeof reg);
    assert_memory_equal(b.p, reg, sizeof reg);
    assert_int_equal(ann_cql_encode_prepare(&b, "SELECT 1", &err), 0);
    static const uint8_t prep[] = {0x04, 0, 0,   0,   0x09, 0,   0,   0,   12,  0,  0,
                                   0,    8, 'S', 'E', 'L',  'E', 'C', 'T', ' ', '1'};
    assert_memory_equal(b.p, prep, sizeof prep);
    ann_cql_frame_set_stream(b.p, 0x1234);
    assert_int_equal(b.p[2], 0x12);
    assert_int_equal(b.p[3], 0x34);
    ann_cql_buf_release(&b);
}

static void test_encode_query_values(void **state)
{
    (void)state;
    ann_cql_buf b = {0};
    ann_err err;
    uint8_t u[16];
    for (int i = 0; i < 16; i++)
        u[i] = (uint8_t)i;
    ann_cql_kv kv[1] = {{"k", 1, "vv", 2}};
    const char *ls[2] = {"ab", "c"};
    size_t ll[2] = {2, 1};
    ann_cql_value vals[] = {ann_cql_vtext("hi"),
                            ann_cql_vbigint(-2),
                            ann_cql_vint(7),
                            ann_cql_vbool(true),
                            ann_cql_vuuid(u),
                            ann_cql_vmap(kv, 1),
                            ann_cql_vnull(),
                            ann_cql_vunset(),
                            ann_cql_vtimestamp(1000),
                            ann_cql_vblob("\x01", 1),
                            ann_cql_vlist_text(ls, ll, 2)};
    ann_cql_params p;
    ann_cql_params_init(&p);
    p.consistency = ANN_CQL_QUORUM;
    p.serial_consistency = ANN_CQL_LOCAL_SERIAL;
    p.values = vals;
    p.nvalues = sizeof vals / sizeof vals[0];
    p.page_size = 100;
    p.paging_state = (ann_cql_bytes){(const uint8_t *)"ps", 2};
    p.has_timestamp = true;
    p.timestamp_us = 5;
    assert_int_equal(ann_cql_encode_query(&b, "Q", &p, &err), 0);
    ann_cql_buf w = {0};
    ann_cql_buf_u8(&w, 4);
    ann_cql_buf_u8(&w, 0);
    ann_cql_buf_u16(&w, 0);
    ann_cql_buf_u8(&w, ANN_CQL_OP_QUERY);
    ann_cql_buf_i32(&w, 0);
    ann_cql_buf_long_string(&w, "Q", 1);
    ann_cql_buf_u16(&w, ANN_CQL_QUORUM);
    ann_cql_buf_u8(&w, 0x01 | 0x04 | 0x08 | 0x10 | 0x20);
    ann_cql_buf_u16(&w, 11);
    ann_cql_buf_bytes(&w, "hi", 2);
    ann_cql_buf_i32(&w, 8);
    ann_cql_buf_i64(&w, -2);
    ann_cql_buf_i32(&w, 4);
    ann_cql_buf_i32(&w, 7);
    ann_cql_buf_i32(&w, 1);
    ann_cql_buf_u8(&w, 1);
    ann_cql_buf_i32(&w, 16);
    ann_cql_buf_put(&w, u, 16);
    ann_cql_buf_i32(&w, 4 + 4 + 1 + 4 + 2);
    ann_cql_buf_i32(&w, 1);
    ann_cql_buf_bytes(&w, "k", 1);
    ann_cql_buf_bytes(&w, "vv", 2);
    ann_cql_buf_i32(&w, -1);
    ann_cql_buf_i32(&w, -2);
    ann_cql_buf_i32(&w, 8);
    ann_cql_buf_i64(&w, 1000);
    ann_cql_buf_bytes(&w, "\x01", 1);
    ann_cql_buf_i32(&w, 4 + 4 + 2 + 4 + 1);
    ann_cql_buf_i32(&w, 2);
    ann_cql_buf_bytes(&w, "ab", 2);
    ann_cql_buf_bytes(&w, "c", 1);
    ann_cql_buf_i32(&w, 100);
    ann_cql_buf_bytes(&w, "ps", 2);
    ann_cql_buf_u16(&w, ANN_CQL_LOCAL_SERIAL);
    ann_cql_buf_i64(&w, 5);
    uint32_t body = (uint32_t)(w.len - 9);
    w.p[8] = (uint8_t)body;
    w.p[7] = (uint8_t)(body >> 8);
    assert_int_equal(b.len, w.len);
    assert_memory_equal(b.p, w.p, w.len);

    /* bad parameters are refused before anything is sent */
    p.serial_consistency = ANN_CQL_QUORUM;
    assert_int_equal(ann_cql_encode_query(&b, "Q", &p, &err), -1);
    assert_int_equal(err.code, ANN_EINVAL);
    p.serial_consistency = 0;
    p.consistency = 0x77;
    assert_int_equal(ann_cql_encode_query(&b, "Q", &p, &err), -1);

    /* execute: id right after the header */
    ann_cql_params_init(&p);
    assert_int_equal(ann_cql_encode_execute(&b, (const uint8_t *)"IDID", 4, &p, &err), 0);
    assert_int_equal(b.p[4], ANN_CQL_OP_EXECUTE);
    assert_memory_equal(b.p + 9, "\x00\x04IDID\x00\x01\x00", 9);
    assert_int_equal(b.len, 18);
    ann_cql_buf_release(&w);
    ann_cql_buf_release(&b);
}

static void test_encode_batch(void **state)
{
    (void)state;
    ann_cql_buf b = {0};
    ann_err err;
    ann_cql_value v1[] = {ann_cql_vint(1)};
    ann_cql_batch_stmt st[] = {
        {.query = "INSERT A", .values = v1, .nvalues = 1},
        {.id = (const uint8_t *)"XY", .id_len = 2},
    };
    size_t off[2];
    assert_int_equal(ann_cql_encode_batch(&b, ANN_CQL_BATCH_UNLOGGED, st, 2, ANN_CQL_QUORUM,
                                          ANN_CQL_SERIAL, false, 0, off, &err),
                     0);
    ann_cql_buf w = {0};
    ann_cql_buf_put(&w, "\x04\x00\x00\x00\x0d\x00\x00\x00\x00", 9);
    ann_cql_buf_u8(&w, 1);
    ann_cql_buf_u16(&w, 2);
    ann_cql_buf_u8(&w, 0);
    ann_cql_buf_long_string(&w, "INSERT A", 8);
    ann_cql_buf_u16(&w, 1);
    ann_cql_buf_i32(&w, 4);
    ann_cql_buf_i32(&w, 1);
    ann_cql_buf_u8(&w, 1);
    ann_cql_buf_short_bytes(&w, "XY", 2);
    ann_cql_buf_u16(&w, 0);
    ann_cql_buf_u16(&w, ANN_CQL_QUORUM);
    ann_cql_buf_u8(&w, 0x10);
    ann_cql_buf_u16(&w, ANN_CQL_SERIAL);
    w.p[8] = (uint8_t)(w.len - 9);
    assert_int_equal(b.len, w.len);
    assert_memory_equal(b.p, w.p, w.len);
    assert_int_equal(off[0], 0);
    assert_memory_equal(b.p + off[1], "XY", 2);
    assert_int_equal(
        ann_cql_encode_batch(&b, ANN_CQL_BATCH_LOGGED, st, 0, ANN_CQL_ONE, 0, false, 0, NULL, &err),
        -1);
    ann_cql_batch_stmt bad = {0};
    assert_int_equal(ann_cql_encode_batch(&b, ANN_CQL_BATCH_LOGGED, &bad, 1, ANN_CQL_ONE, 0, false,
                                          0, NULL, &err),
                     -1);
    ann_cql_buf_release(&w);
    ann_cql_buf_release(&b);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(ann_cql_errcode_name(ANN_CQL_E_WRITE_TIMEOUT), "write_timeout");
    assert_string_equal(ann_cql_errcode_name(0x7777), "unknown_error");
    assert_string_equal(ann_cql_opcode_name(ANN_CQL_OP_AUTH_SUCCESS), "AUTH_SUCCESS");
    assert_int_equal(ann_cql_errcode_to_ann(ANN_CQL_E_UNAUTHORIZED), ANN_EUNAUTH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_simple_messages),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_prepared),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_hostile_counts),
        cmocka_unit_test(test_encode_startup_options),
        cmocka_unit_test(test_encode_query_values),
        cmocka_unit_test(test_encode_batch),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
