/* Hand-built response frames (see frames.h), following native_protocol_v4.spec. */
#include "frames.h"

#include <string.h>

#define S(b, lit) ann_cql_buf_string((b), (lit), sizeof(lit) - 1)

void fb_begin(ann_cql_buf *b, uint8_t opcode, uint8_t flags, int16_t stream)
{
    b->len = 0;
    b->failed = false;
    ann_cql_buf_u8(b, 0x84);
    ann_cql_buf_u8(b, flags);
    ann_cql_buf_u16(b, (uint16_t)stream);
    ann_cql_buf_u8(b, opcode);
    ann_cql_buf_i32(b, 0);
}

void fb_end(ann_cql_buf *b)
{
    uint32_t n = (uint32_t)(b->len - ANN_CQL_HEADER_LEN);
    b->p[5] = (uint8_t)(n >> 24);
    b->p[6] = (uint8_t)(n >> 16);
    b->p[7] = (uint8_t)(n >> 8);
    b->p[8] = (uint8_t)n;
}

void frame_ready(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_READY, 0, 0);
    fb_end(b);
}

void frame_authenticate(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_AUTHENTICATE, 0, 0);
    S(b, "org.apache.cassandra.auth.PasswordAuthenticator");
    fb_end(b);
}

void frame_auth_challenge(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_AUTH_CHALLENGE, 0, 0);
    ann_cql_buf_bytes(b, "nonce", 5);
    fb_end(b);
}

void frame_auth_success_null(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_AUTH_SUCCESS, 0, 0);
    ann_cql_buf_bytes(b, NULL, -1);
    fb_end(b);
}

void frame_supported(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_SUPPORTED, 0, 1);
    ann_cql_buf_u16(b, 3);
    S(b, "PROTOCOL_VERSIONS");
    ann_cql_buf_u16(b, 3);
    S(b, "3/v3");
    S(b, "4/v4");
    S(b, "5/v5");
    S(b, "COMPRESSION");
    ann_cql_buf_u16(b, 0);
    S(b, "CQL_VERSION");
    ann_cql_buf_u16(b, 1);
    S(b, "3.4.7");
    fb_end(b);
}

void frame_void_warn_trace(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, ANN_CQL_FLAG_TRACING | ANN_CQL_FLAG_WARNING, 7);
    for (int i = 0; i < 16; i++)
        ann_cql_buf_u8(b, (uint8_t)(0xa0 + i));
    ann_cql_buf_u16(b, 2);
    S(b, "Batch too large");
    S(b, "Aggregation query used without partition key");
    ann_cql_buf_i32(b, ANN_CQL_RESULT_VOID);
    fb_end(b);
}

void frame_set_keyspace(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, 0, 2);
    ann_cql_buf_i32(b, ANN_CQL_RESULT_SET_KEYSPACE);
    S(b, "annals");
    fb_end(b);
}

void frame_schema_keyspace(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, 0, 3);
    ann_cql_buf_i32(b, ANN_CQL_RESULT_SCHEMA_CHANGE);
    S(b, "CREATED");
    S(b, "KEYSPACE");
    S(b, "annals");
    fb_end(b);
}

void frame_schema_table(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, 0, 3);
    ann_cql_buf_i32(b, ANN_CQL_RESULT_SCHEMA_CHANGE);
    S(b, "UPDATED");
    S(b, "TABLE");
    S(b, "annals");
    S(b, "log_heads");
    fb_end(b);
}

void frame_schema_function(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, 0, 3);
    ann_cql_buf_i32(b, ANN_CQL_RESULT_SCHEMA_CHANGE);
    S(b, "DROPPED");
    S(b, "FUNCTION");
    S(b, "ks");
    S(b, "f");
    ann_cql_buf_u16(b, 2);
    S(b, "int");
    S(b, "text");
    fb_end(b);
}

/* Columns: id bigint, name text, tags map<text,text>, ok boolean,
 * u uuid, n int, at timestamp, data blob. Two rows, the second mostly null. */
void frame_rows_global(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, 0, 4);
    ann_cql_buf_i32(b, ANN_CQL_RESULT_ROWS);
    ann_cql_buf_i32(b, 0x0001);
    ann_cql_buf_i32(b, 8);
    S(b, "ks");
    S(b, "t");
    S(b, "id");
    ann_cql_buf_u16(b, ANN_CQL_T_BIGINT);
    S(b, "name");
    ann_cql_buf_u16(b, ANN_CQL_T_VARCHAR);
    S(b, "tags");
    ann_cql_buf_u16(b, ANN_CQL_T_MAP);
    ann_cql_buf_u16(b, ANN_CQL_T_VARCHAR);
    ann_cql_buf_u16(b, ANN_CQL_T_VARCHAR);
    S(b, "ok");
    ann_cql_buf_u16(b, ANN_CQL_T_BOOLEAN);
    S(b, "u");
    ann_cql_buf_u16(b, ANN_CQL_T_UUID);
    S(b, "n");
    ann_cql_buf_u16(b, ANN_CQL_T_INT);
    S(b, "at");
    ann_cql_buf_u16(b, ANN_CQL_T_TIMESTAMP);
    S(b, "data");
    ann_cql_buf_u16(b, ANN_CQL_T_BLOB);
    ann_cql_buf_i32(b, 2);
    /* row 0 */
    ann_cql_buf_i32(b, 8);
    ann_cql_buf_i64(b, -5);
    ann_cql_buf_bytes(b, "h\xc3\xa9llo", 6);
    ann_cql_buf_i32(b, 4 + 4 + 1 + 4 + 1 + 4 + 2 + 4 + 0);
    ann_cql_buf_i32(b, 2);
    ann_cql_buf_bytes(b, "a", 1);
    ann_cql_buf_bytes(b, "1", 1);
    ann_cql_buf_bytes(b, "bc", 2);
    ann_cql_buf_bytes(b, "", 0);
    ann_cql_buf_i32(b, 1);
    ann_cql_buf_u8(b, 1);
    ann_cql_buf_i32(b, 16);
    for (int i = 0; i < 16; i++)
        ann_cql_buf_u8(b, (uint8_t)i);
    ann_cql_buf_i32(b, 4);
    ann_cql_buf_i32(b, 123456);
    ann_cql_buf_i32(b, 8);
    ann_cql_buf_i64(b, 1700000000000);
    ann_cql_buf_bytes(b, "\x00\x01\x02", 3);
    /* row 1 */
    ann_cql_buf_i32(b, 8);
    ann_cql_buf_i64(b, INT64_MAX);
    for (int i = 0; i < 7; i++)
        ann_cql_buf_i32(b, -1);
    fb_end(b);
}

void frame_rows_local_paged(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, 0, 5);
    ann_cql_buf_i32(b, ANN_CQL_RESULT_ROWS);
    ann_cql_buf_i32(b, 0x0002);
    ann_cql_buf_i32(b, 1);
    ann_cql_buf_bytes(b, "\x10\x20\x30\x40", 4);
    S(b, "ks1");
    S(b, "tbl");
    S(b, "v");
    ann_cql_buf_u16(b, ANN_CQL_T_INT);
    ann_cql_buf_i32(b, 3);
    for (int i = 0; i < 3; i++) {
        ann_cql_buf_i32(b, 4);
        ann_cql_buf_i32(b, i * 10);
    }
    fb_end(b);
}

void frame_rows_no_metadata(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, 0, 6);
    ann_cql_buf_i32(b, ANN_CQL_RESULT_ROWS);
    ann_cql_buf_i32(b, 0x0004);
    ann_cql_buf_i32(b, 2);
    ann_cql_buf_i32(b, 1);
    ann_cql_buf_bytes(b, "x", 1);
    ann_cql_buf_bytes(b, NULL, -1);
    fb_end(b);
}

/* [applied]=false with the current owner_epoch and next_id. */
void frame_rows_lwt_not_applied(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, 0, 8);
    ann_cql_buf_i32(b, ANN_CQL_RESULT_ROWS);
    ann_cql_buf_i32(b, 0x0001);
    ann_cql_buf_i32(b, 3);
    S(b, "annals");
    S(b, "log_heads");
    S(b, "[applied]");
    ann_cql_buf_u16(b, ANN_CQL_T_BOOLEAN);
    S(b, "next_id");
    ann_cql_buf_u16(b, ANN_CQL_T_BIGINT);
    S(b, "owner_epoch");
    ann_cql_buf_u16(b, ANN_CQL_T_BIGINT);
    ann_cql_buf_i32(b, 1);
    ann_cql_buf_i32(b, 1);
    ann_cql_buf_u8(b, 0);
    ann_cql_buf_i32(b, 8);
    ann_cql_buf_i64(b, 42);
    ann_cql_buf_i32(b, 8);
    ann_cql_buf_i64(b, 7);
    fb_end(b);
}

/* list<frozen<tuple<int, udt>>>, set<custom>, no rows. */
void frame_rows_nested_types(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, 0, 9);
    ann_cql_buf_i32(b, ANN_CQL_RESULT_ROWS);
    ann_cql_buf_i32(b, 0x0001);
    ann_cql_buf_i32(b, 2);
    S(b, "ks");
    S(b, "t");
    S(b, "l");
    ann_cql_buf_u16(b, ANN_CQL_T_LIST);
    ann_cql_buf_u16(b, ANN_CQL_T_TUPLE);
    ann_cql_buf_u16(b, 2);
    ann_cql_buf_u16(b, ANN_CQL_T_INT);
    ann_cql_buf_u16(b, ANN_CQL_T_UDT);
    S(b, "ks");
    S(b, "addr");
    ann_cql_buf_u16(b, 2);
    S(b, "street");
    ann_cql_buf_u16(b, ANN_CQL_T_VARCHAR);
    S(b, "zip");
    ann_cql_buf_u16(b, ANN_CQL_T_INT);
    S(b, "s");
    ann_cql_buf_u16(b, ANN_CQL_T_SET);
    ann_cql_buf_u16(b, ANN_CQL_T_CUSTOM);
    S(b, "org.example.Type");
    ann_cql_buf_i32(b, 0);
    fb_end(b);
}

void frame_prepared(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_RESULT, 0, 10);
    ann_cql_buf_i32(b, ANN_CQL_RESULT_PREPARED);
    ann_cql_buf_short_bytes(b, "0123456789abcdef", 16);
    ann_cql_buf_i32(b, 0x0001);
    ann_cql_buf_i32(b, 3);
    ann_cql_buf_i32(b, 2);
    ann_cql_buf_u16(b, 1);
    ann_cql_buf_u16(b, 0);
    S(b, "annals");
    S(b, "t");
    S(b, "v");
    ann_cql_buf_u16(b, ANN_CQL_T_BLOB);
    S(b, "tenant_id");
    ann_cql_buf_u16(b, ANN_CQL_T_VARCHAR);
    S(b, "log_id");
    ann_cql_buf_u16(b, ANN_CQL_T_VARCHAR);
    /* result metadata: none */
    ann_cql_buf_i32(b, 0x0004);
    ann_cql_buf_i32(b, 0);
    fb_end(b);
}

static void err_head(ann_cql_buf *b, int32_t code, const char *msg)
{
    fb_begin(b, ANN_CQL_OP_ERROR, 0, 11);
    ann_cql_buf_i32(b, code);
    ann_cql_buf_string(b, msg, strlen(msg));
}

void frame_err_syntax(ann_cql_buf *b)
{
    err_head(b, ANN_CQL_E_SYNTAX, "line 1:0 no viable alternative");
    fb_end(b);
}

void frame_err_unavailable(ann_cql_buf *b)
{
    err_head(b, ANN_CQL_E_UNAVAILABLE, "Cannot achieve consistency level QUORUM");
    ann_cql_buf_u16(b, ANN_CQL_QUORUM);
    ann_cql_buf_i32(b, 2);
    ann_cql_buf_i32(b, 1);
    fb_end(b);
}

void frame_err_write_timeout(ann_cql_buf *b)
{
    err_head(b, ANN_CQL_E_WRITE_TIMEOUT, "Operation timed out");
    ann_cql_buf_u16(b, ANN_CQL_LOCAL_QUORUM);
    ann_cql_buf_i32(b, 1);
    ann_cql_buf_i32(b, 2);
    S(b, "BATCH_LOG");
    fb_end(b);
}

void frame_err_read_timeout(ann_cql_buf *b)
{
    err_head(b, ANN_CQL_E_READ_TIMEOUT, "Operation timed out");
    ann_cql_buf_u16(b, ANN_CQL_ALL);
    ann_cql_buf_i32(b, 2);
    ann_cql_buf_i32(b, 3);
    ann_cql_buf_u8(b, 1);
    fb_end(b);
}

void frame_err_read_failure(ann_cql_buf *b)
{
    err_head(b, ANN_CQL_E_READ_FAILURE, "tombstones");
    ann_cql_buf_u16(b, ANN_CQL_ONE);
    ann_cql_buf_i32(b, 0);
    ann_cql_buf_i32(b, 1);
    ann_cql_buf_i32(b, 1);
    ann_cql_buf_u8(b, 0);
    fb_end(b);
}

void frame_err_write_failure(ann_cql_buf *b)
{
    err_head(b, ANN_CQL_E_WRITE_FAILURE, "failed");
    ann_cql_buf_u16(b, ANN_CQL_ONE);
    ann_cql_buf_i32(b, 0);
    ann_cql_buf_i32(b, 1);
    ann_cql_buf_i32(b, 1);
    S(b, "CAS");
    fb_end(b);
}

void frame_err_function_failure(ann_cql_buf *b)
{
    err_head(b, ANN_CQL_E_FUNCTION_FAILURE, "boom");
    S(b, "ks");
    S(b, "fn");
    ann_cql_buf_u16(b, 1);
    S(b, "int");
    fb_end(b);
}

void frame_err_already_exists(ann_cql_buf *b)
{
    err_head(b, ANN_CQL_E_ALREADY_EXISTS, "Cannot add existing table");
    S(b, "annals");
    S(b, "log_heads");
    fb_end(b);
}

void frame_err_unprepared(ann_cql_buf *b)
{
    err_head(b, ANN_CQL_E_UNPREPARED, "Prepared query with ID ... not found");
    ann_cql_buf_short_bytes(b, "0123456789abcdef", 16);
    fb_end(b);
}

void frame_err_overloaded(ann_cql_buf *b)
{
    err_head(b, ANN_CQL_E_OVERLOADED, "overloaded");
    fb_end(b);
}

void frame_event_status(ann_cql_buf *b)
{
    fb_begin(b, ANN_CQL_OP_EVENT, 0, -1);
    S(b, "STATUS_CHANGE");
    S(b, "UP");
    ann_cql_buf_u8(b, 4);
    ann_cql_buf_put(b, "\x7f\x00\x00\x01", 4);
    ann_cql_buf_i32(b, 9042);
    fb_end(b);
}

const test_frame ann_test_frames[] = {
    {"ready", frame_ready},
    {"authenticate", frame_authenticate},
    {"auth_challenge", frame_auth_challenge},
    {"auth_success_null", frame_auth_success_null},
    {"supported", frame_supported},
    {"void_warn_trace", frame_void_warn_trace},
    {"set_keyspace", frame_set_keyspace},
    {"schema_keyspace", frame_schema_keyspace},
    {"schema_table", frame_schema_table},
    {"schema_function", frame_schema_function},
    {"rows_global", frame_rows_global},
    {"rows_local_paged", frame_rows_local_paged},
    {"rows_no_metadata", frame_rows_no_metadata},
    {"rows_lwt_not_applied", frame_rows_lwt_not_applied},
    {"rows_nested_types", frame_rows_nested_types},
    {"prepared", frame_prepared},
    {"err_syntax", frame_err_syntax},
    {"err_unavailable", frame_err_unavailable},
    {"err_write_timeout", frame_err_write_timeout},
    {"err_read_timeout", frame_err_read_timeout},
    {"err_read_failure", frame_err_read_failure},
    {"err_write_failure", frame_err_write_failure},
    {"err_function_failure", frame_err_function_failure},
    {"err_already_exists", frame_err_already_exists},
    {"err_unprepared", frame_err_unprepared},
    {"err_overloaded", frame_err_overloaded},
    {"event_status", frame_event_status},
    {NULL, NULL},
};
