/*
 * The pure half of the CQL native protocol v4 client: bytes in, typed values
 * out, and typed requests in, bytes out. No I/O, no threads, no clocks.
 *
 * Every byte handed to the decoder is untrusted. The decoder checks every
 * length against the bytes that remain before it reads or allocates, bounds
 * recursion in type descriptions, and never allocates more than a small
 * multiple of the body length; on any inconsistency it fails with ANN_EIO
 * ("cql: protocol: ...") and leaves nothing allocated in the result.
 *
 * Decoded results do not copy strings or cells: their ann_cql_bytes point into
 * the frame body, which must outlive the result (the connection hands the body
 * to the result, which then owns it: see ann_cql_result.buf).
 */
#ifndef ANN_CQL_CODEC_H
#define ANN_CQL_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define ANN_CQL_PROTO_VERSION 4
#define ANN_CQL_HEADER_LEN 9
#define ANN_CQL_MAX_BODY (256u << 20) /* the spec's frame limit */

typedef enum ann_cql_opcode {
    ANN_CQL_OP_ERROR = 0x00,
    ANN_CQL_OP_STARTUP = 0x01,
    ANN_CQL_OP_READY = 0x02,
    ANN_CQL_OP_AUTHENTICATE = 0x03,
    ANN_CQL_OP_OPTIONS = 0x05,
    ANN_CQL_OP_SUPPORTED = 0x06,
    ANN_CQL_OP_QUERY = 0x07,
    ANN_CQL_OP_RESULT = 0x08,
    ANN_CQL_OP_PREPARE = 0x09,
    ANN_CQL_OP_EXECUTE = 0x0A,
    ANN_CQL_OP_REGISTER = 0x0B,
    ANN_CQL_OP_EVENT = 0x0C,
    ANN_CQL_OP_BATCH = 0x0D,
    ANN_CQL_OP_AUTH_CHALLENGE = 0x0E,
    ANN_CQL_OP_AUTH_RESPONSE = 0x0F,
    ANN_CQL_OP_AUTH_SUCCESS = 0x10,
} ann_cql_opcode;

enum {
    ANN_CQL_FLAG_COMPRESSION = 0x01,
    ANN_CQL_FLAG_TRACING = 0x02,
    ANN_CQL_FLAG_CUSTOM_PAYLOAD = 0x04,
    ANN_CQL_FLAG_WARNING = 0x08,
};

typedef enum ann_cql_consistency {
    ANN_CQL_ANY = 0x0000,
    ANN_CQL_ONE = 0x0001,
    ANN_CQL_TWO = 0x0002,
    ANN_CQL_THREE = 0x0003,
    ANN_CQL_QUORUM = 0x0004,
    ANN_CQL_ALL = 0x0005,
    ANN_CQL_LOCAL_QUORUM = 0x0006,
    ANN_CQL_EACH_QUORUM = 0x0007,
    ANN_CQL_SERIAL = 0x0008,
    ANN_CQL_LOCAL_SERIAL = 0x0009,
    ANN_CQL_LOCAL_ONE = 0x000A,
} ann_cql_consistency;

/* Column type option ids (spec 4.2.5.2). */
typedef enum ann_cql_type {
    ANN_CQL_T_CUSTOM = 0x0000,
    ANN_CQL_T_ASCII = 0x0001,
    ANN_CQL_T_BIGINT = 0x0002,
    ANN_CQL_T_BLOB = 0x0003,
    ANN_CQL_T_BOOLEAN = 0x0004,
    ANN_CQL_T_COUNTER = 0x0005,
    ANN_CQL_T_DECIMAL = 0x0006,
    ANN_CQL_T_DOUBLE = 0x0007,
    ANN_CQL_T_FLOAT = 0x0008,
    ANN_CQL_T_INT = 0x0009,
    ANN_CQL_T_TIMESTAMP = 0x000B,
    ANN_CQL_T_UUID = 0x000C,
    ANN_CQL_T_VARCHAR = 0x000D,
    ANN_CQL_T_VARINT = 0x000E,
    ANN_CQL_T_TIMEUUID = 0x000F,
    ANN_CQL_T_INET = 0x0010,
    ANN_CQL_T_DATE = 0x0011,
    ANN_CQL_T_TIME = 0x0012,
    ANN_CQL_T_SMALLINT = 0x0013,
    ANN_CQL_T_TINYINT = 0x0014,
    ANN_CQL_T_DURATION = 0x0015,
    ANN_CQL_T_LIST = 0x0020,
    ANN_CQL_T_MAP = 0x0021,
    ANN_CQL_T_SET = 0x0022,
    ANN_CQL_T_UDT = 0x0030,
    ANN_CQL_T_TUPLE = 0x0031,
} ann_cql_type;

/* Error codes (spec section 9). */
typedef enum ann_cql_errcode {
    ANN_CQL_E_SERVER = 0x0000,
    ANN_CQL_E_PROTOCOL = 0x000A,
    ANN_CQL_E_AUTH = 0x0100,
    ANN_CQL_E_UNAVAILABLE = 0x1000,
    ANN_CQL_E_OVERLOADED = 0x1001,
    ANN_CQL_E_IS_BOOTSTRAPPING = 0x1002,
    ANN_CQL_E_TRUNCATE = 0x1003,
    ANN_CQL_E_WRITE_TIMEOUT = 0x1100,
    ANN_CQL_E_READ_TIMEOUT = 0x1200,
    ANN_CQL_E_READ_FAILURE = 0x1300,
    ANN_CQL_E_FUNCTION_FAILURE = 0x1400,
    ANN_CQL_E_WRITE_FAILURE = 0x1500,
    ANN_CQL_E_CDC_WRITE_FAILURE = 0x1600,
    ANN_CQL_E_CAS_WRITE_UNKNOWN = 0x1700,
    ANN_CQL_E_SYNTAX = 0x2000,
    ANN_CQL_E_UNAUTHORIZED = 0x2100,
    ANN_CQL_E_INVALID = 0x2200,
    ANN_CQL_E_CONFIG = 0x2300,
    ANN_CQL_E_ALREADY_EXISTS = 0x2400,
    ANN_CQL_E_UNPREPARED = 0x2500,
} ann_cql_errcode;

typedef enum ann_cql_result_kind {
    ANN_CQL_RESULT_NONE = 0, /* not a RESULT frame (READY, SUPPORTED, ERROR, ...) */
    ANN_CQL_RESULT_VOID = 0x0001,
    ANN_CQL_RESULT_ROWS = 0x0002,
    ANN_CQL_RESULT_SET_KEYSPACE = 0x0003,
    ANN_CQL_RESULT_PREPARED = 0x0004,
    ANN_CQL_RESULT_SCHEMA_CHANGE = 0x0005,
} ann_cql_result_kind;

typedef enum ann_cql_write_type {
    ANN_CQL_WT_UNKNOWN = 0,
    ANN_CQL_WT_SIMPLE,
    ANN_CQL_WT_BATCH,
    ANN_CQL_WT_UNLOGGED_BATCH,
    ANN_CQL_WT_COUNTER,
    ANN_CQL_WT_BATCH_LOG,
    ANN_CQL_WT_CAS,
    ANN_CQL_WT_VIEW,
    ANN_CQL_WT_CDC,
} ann_cql_write_type;

/* A run of bytes inside a frame body. len < 0 means null ([bytes] n < 0). */
typedef struct ann_cql_bytes {
    const uint8_t *p;
    int32_t len;
} ann_cql_bytes;

/* A server ERROR, with the details the protocol sends for its code. Strings
 * are copied (truncated) so an error outlives its frame. */
typedef struct ann_cql_error {
    int32_t code; /* ann_cql_errcode */
    char message[512];
    uint16_t consistency;          /* unavailable, timeouts, failures, cas */
    int32_t required;              /* unavailable */
    int32_t alive;                 /* unavailable */
    int32_t received;              /* timeouts, failures, cas */
    int32_t blockfor;              /* timeouts, failures, cas */
    int32_t numfailures;           /* read/write failure */
    bool data_present;             /* read timeout/failure */
    ann_cql_write_type write_type; /* write timeout/failure */
    char write_type_name[32];
    char keyspace[64];         /* already_exists, function_failure */
    char table[64];            /* already_exists (empty for a keyspace); function name */
    uint8_t unprepared_id[64]; /* unprepared */
    uint16_t unprepared_id_len;
} ann_cql_error;

/* One column of a result or one bind marker of a prepared statement. For
 * list/set, sub[0] is the element type; for map, sub[0]/sub[1] are key/value. */
typedef struct ann_cql_column {
    ann_cql_bytes keyspace, table, name;
    uint16_t type;
    uint16_t sub[2];
} ann_cql_column;

/*
 * Anything the server answers. Fields are meaningful per opcode/kind as noted.
 * Release with ann_cql_result_release(); a zeroed result may be released.
 */
typedef struct ann_cql_result {
    uint8_t opcode; /* ann_cql_opcode */
    uint8_t flags;
    int16_t stream;
    int32_t kind; /* ann_cql_result_kind for RESULT */

    ann_cql_bytes tracing_id; /* when the tracing flag is set */
    uint16_t nwarnings;       /* when the warning flag is set */
    ann_cql_bytes *warnings;

    ann_cql_error error;         /* ERROR */
    ann_cql_bytes authenticator; /* AUTHENTICATE */
    ann_cql_bytes token;         /* AUTH_CHALLENGE, AUTH_SUCCESS */

    /* SUPPORTED: option i has key opt_keys[i] and values
     * opt_vals[opt_first[i] .. opt_first[i] + opt_count[i]). */
    uint16_t nopts;
    ann_cql_bytes *opt_keys;
    uint32_t *opt_first;
    uint16_t *opt_count;
    ann_cql_bytes *opt_vals;

    /* ROWS (and a PREPARED's result metadata) */
    int32_t meta_flags;
    int32_t ncols;
    ann_cql_column *cols;
    ann_cql_bytes paging_state; /* null when there are no more pages */
    int32_t nrows;
    ann_cql_bytes *cells; /* nrows * ncols, row major */

    ann_cql_bytes keyspace; /* SET_KEYSPACE */

    /* PREPARED */
    ann_cql_bytes prepared_id;
    int32_t nbind;
    ann_cql_column *bind;
    int32_t npk;
    uint16_t *pk_index;

    /* SCHEMA_CHANGE (and EVENT SCHEMA_CHANGE) */
    ann_cql_bytes change_type, target, sc_keyspace, sc_name;
    /* EVENT */
    ann_cql_bytes event_type;

    uint8_t *buf; /* owned frame body (may be NULL); freed by release */
} ann_cql_result;

/* Frees what `r` holds (and its body buffer) and zeroes it. */
void ann_cql_result_release(ann_cql_result *r);

/* ---- decoding (pure; fuzzed) ---- */

typedef struct ann_cql_header {
    uint8_t version; /* with the direction bit */
    uint8_t flags;
    int16_t stream;
    uint8_t opcode;
    uint32_t length;
} ann_cql_header;

/* Decodes a 9-byte response header. Fails on a request frame, a version other
 * than 4, a compressed frame (never negotiated) or a length above max_body. */
int ann_cql_header_decode(const uint8_t h[ANN_CQL_HEADER_LEN], uint32_t max_body,
                          ann_cql_header *out, ann_err *err);

/* Decodes one response body. `out` is zeroed first; on success its bytes
 * point into `body` (which the caller keeps alive, or hands over through
 * out->buf). On failure `out` holds nothing. */
int ann_cql_response_decode(const ann_cql_header *h, const uint8_t *body, size_t len,
                            ann_cql_result *out, ann_err *err);

/* Decodes a whole frame (header + body) from one buffer: the fuzz entry. */
int ann_cql_frame_decode(const uint8_t *p, size_t n, ann_cql_result *out, ann_err *err);

/* ---- encoding ---- */

/* A growable byte buffer. Appends never fail: on allocation failure the
 * buffer is marked `failed` and later appends do nothing; check once. */
typedef struct ann_cql_buf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
} ann_cql_buf;

void ann_cql_buf_release(ann_cql_buf *b);
void ann_cql_buf_put(ann_cql_buf *b, const void *p, size_t n);
void ann_cql_buf_u8(ann_cql_buf *b, uint8_t v);
void ann_cql_buf_u16(ann_cql_buf *b, uint16_t v);
void ann_cql_buf_i32(ann_cql_buf *b, int32_t v);
void ann_cql_buf_i64(ann_cql_buf *b, int64_t v);
void ann_cql_buf_string(ann_cql_buf *b, const char *s, size_t n);      /* [string] */
void ann_cql_buf_long_string(ann_cql_buf *b, const char *s, size_t n); /* [long string] */
void ann_cql_buf_bytes(ann_cql_buf *b, const void *p, int32_t n);      /* [bytes]; n<0: null */
void ann_cql_buf_short_bytes(ann_cql_buf *b, const void *p, uint16_t n);

/* A value to bind. Build with the ann_cql_v*() helpers below. Pointers are
 * borrowed for the duration of the call that encodes them. */
typedef enum ann_cql_vkind {
    ANN_CQL_V_NULL = 0,
    ANN_CQL_V_UNSET,
    ANN_CQL_V_TEXT, /* text, varchar, ascii */
    ANN_CQL_V_BLOB,
    ANN_CQL_V_BIGINT,
    ANN_CQL_V_INT,
    ANN_CQL_V_TIMESTAMP, /* ms since the epoch */
    ANN_CQL_V_BOOLEAN,
    ANN_CQL_V_UUID,
    ANN_CQL_V_MAP_TEXT,  /* map<text,text> */
    ANN_CQL_V_LIST_TEXT, /* list<text> or set<text>, e.g. the value of `col IN ?` */
} ann_cql_vkind;

typedef struct ann_cql_kv {
    const char *k;
    size_t klen;
    const char *v;
    size_t vlen;
} ann_cql_kv;

typedef struct ann_cql_value {
    ann_cql_vkind kind;
    union {
        int64_t i64;
        int32_t i32;
        bool b;
        uint8_t uuid[16];
        struct {
            const void *p;
            size_t n;
        } bytes;
        struct {
            const ann_cql_kv *kv;
            size_t n;
        } map;
        struct {
            const char *const *s;
            const size_t *len;
            size_t n;
        } list;
    } u;
} ann_cql_value;

ann_cql_value ann_cql_vnull(void);
ann_cql_value ann_cql_vunset(void);
ann_cql_value ann_cql_vtext(const char *s); /* NUL-terminated */
ann_cql_value ann_cql_vtextn(const char *s, size_t n);
ann_cql_value ann_cql_vblob(const void *p, size_t n);
ann_cql_value ann_cql_vbigint(int64_t v);
ann_cql_value ann_cql_vint(int32_t v);
ann_cql_value ann_cql_vtimestamp(int64_t ms);
ann_cql_value ann_cql_vbool(bool v);
ann_cql_value ann_cql_vuuid(const uint8_t u[16]);
ann_cql_value ann_cql_vmap(const ann_cql_kv *kv, size_t n);
/* n strings s[i] of len[i] bytes (both arrays borrowed until the value is encoded). */
ann_cql_value ann_cql_vlist_text(const char *const *s, const size_t *len, size_t n);

/* Appends one [value]. Fails (ANN_EINVAL) on a value too large for the
 * protocol. */
int ann_cql_value_encode(ann_cql_buf *b, const ann_cql_value *v, ann_err *err);

/* Query parameters (spec 4.1.4). Start from ann_cql_params_init(). */
typedef struct ann_cql_params {
    uint16_t consistency;        /* ann_cql_consistency; default ONE */
    uint16_t serial_consistency; /* 0 = not sent, else SERIAL or LOCAL_SERIAL */
    const ann_cql_value *values;
    size_t nvalues;
    int32_t page_size;          /* 0 = no paging */
    ann_cql_bytes paging_state; /* p == NULL: first page */
    bool skip_metadata;
    bool has_timestamp;
    int64_t timestamp_us;
    /* Client-side, not sent: */
    bool idempotent; /* may the retry policy resend it? */
    int timeout_ms;  /* 0 = the connection's default */
} ann_cql_params;

void ann_cql_params_init(ann_cql_params *p);

/* Frame builders: each writes a whole request frame (header with stream 0,
 * fixed up by the sender with ann_cql_frame_set_stream) into `b`, which is
 * reset first. */
int ann_cql_encode_startup(ann_cql_buf *b, ann_err *err);
int ann_cql_encode_options(ann_cql_buf *b, ann_err *err);
int ann_cql_encode_auth_response(ann_cql_buf *b, const void *token, int32_t n, ann_err *err);
int ann_cql_encode_query(ann_cql_buf *b, const char *cql, const ann_cql_params *p, ann_err *err);
int ann_cql_encode_prepare(ann_cql_buf *b, const char *cql, ann_err *err);
int ann_cql_encode_execute(ann_cql_buf *b, const uint8_t *id, uint16_t id_len,
                           const ann_cql_params *p, ann_err *err);
int ann_cql_encode_register(ann_cql_buf *b, const char *const *events, size_t n, ann_err *err);

typedef enum ann_cql_batch_type {
    ANN_CQL_BATCH_LOGGED = 0,
    ANN_CQL_BATCH_UNLOGGED = 1,
    ANN_CQL_BATCH_COUNTER = 2,
} ann_cql_batch_type;

/* One statement of a batch: either plain `query` text, or a prepared id. */
typedef struct ann_cql_batch_stmt {
    const char *query; /* when id is NULL */
    const uint8_t *id;
    uint16_t id_len;
    const ann_cql_value *values;
    size_t nvalues;
} ann_cql_batch_stmt;

/* `id_offsets`, when not NULL, receives for each statement the offset of its
 * prepared id bytes in the frame (0 for plain statements): the connection
 * patches them after a re-prepare. */
int ann_cql_encode_batch(ann_cql_buf *b, ann_cql_batch_type type, const ann_cql_batch_stmt *stmts,
                         size_t n, uint16_t consistency, uint16_t serial_consistency,
                         bool has_timestamp, int64_t timestamp_us, size_t *id_offsets,
                         ann_err *err);

void ann_cql_frame_set_stream(uint8_t *frame, int16_t stream);

/* ---- reading values out of results ---- */

/* Cell (row, col) of a ROWS result, or NULL when out of range. */
const ann_cql_bytes *ann_cql_cell(const ann_cql_result *r, int32_t row, int32_t col);
/* Index of the column named `name`, or -1. */
int32_t ann_cql_column_index(const ann_cql_result *r, const char *name);

/* Typed getters: 0 on success, 1 when the cell is null (out untouched),
 * -1 (ANN_EINVAL) when out of range or the column's type or size does not fit. */
int ann_cql_get_text(const ann_cql_result *r, int32_t row, int32_t col, const char **p, size_t *n,
                     ann_err *err);
int ann_cql_get_blob(const ann_cql_result *r, int32_t row, int32_t col, const uint8_t **p,
                     size_t *n, ann_err *err);
int ann_cql_get_bigint(const ann_cql_result *r, int32_t row, int32_t col, int64_t *out,
                       ann_err *err); /* bigint, counter, timestamp */
int ann_cql_get_int(const ann_cql_result *r, int32_t row, int32_t col, int32_t *out, ann_err *err);
int ann_cql_get_bool(const ann_cql_result *r, int32_t row, int32_t col, bool *out, ann_err *err);
int ann_cql_get_uuid(const ann_cql_result *r, int32_t row, int32_t col, uint8_t out[16],
                     ann_err *err); /* uuid, timeuuid */

/* Iterates a serialized map<text,text> cell. Usage:
 *   ann_cql_map_iter it; ann_cql_map_iter_init(&it, cell);
 *   while ((rc = ann_cql_map_next(&it, &k, &v)) > 0) ...   rc < 0: malformed */
typedef struct ann_cql_map_iter {
    const uint8_t *p;
    size_t n, off;
    int32_t left;
    bool bad;
} ann_cql_map_iter;
int ann_cql_map_iter_init(ann_cql_map_iter *it, const ann_cql_bytes *cell);
int ann_cql_map_next(ann_cql_map_iter *it, ann_cql_bytes *k, ann_cql_bytes *v);

/* LWT: a conditional statement answers ROWS whose first column is
 * "[applied]" (boolean), followed, when not applied, by the current values.
 * 0 on success with *applied set; -1 if `r` is not such a result. */
int ann_cql_applied(const ann_cql_result *r, bool *applied, ann_err *err);

/* Names for messages and tests. */
const char *ann_cql_errcode_name(int32_t code);
const char *ann_cql_opcode_name(int opcode);

/* The ann_code a server error maps onto (one place). */
ann_code ann_cql_errcode_to_ann(int32_t code);

#endif
