/*
 * CQL native protocol v4 codec, written from the public specification
 * (native_protocol_v4.spec). See cql_codec.h for the contract.
 */
#include "cql/cql_codec.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Deepest nesting of type options we accept (list<map<..>> etc.). */
#define TYPE_DEPTH_MAX 16

/* ------------------------------------------------------------------ */
/* Bounded reader                                                       */

typedef struct rd {
    const uint8_t *p;
    size_t n, off;
    bool bad;
} rd;

static size_t rd_left(const rd *r)
{
    return r->n - r->off;
}

static bool rd_need(rd *r, size_t k)
{
    if (r->bad || rd_left(r) < k) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint8_t rd_u8(rd *r)
{
    if (!rd_need(r, 1))
        return 0;
    return r->p[r->off++];
}

static uint16_t rd_u16(rd *r)
{
    if (!rd_need(r, 2))
        return 0;
    uint16_t v = (uint16_t)((uint16_t)r->p[r->off] << 8 | r->p[r->off + 1]);
    r->off += 2;
    return v;
}

static int32_t rd_i32(rd *r)
{
    if (!rd_need(r, 4))
        return 0;
    const uint8_t *q = r->p + r->off;
    uint32_t v = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
    r->off += 4;
    return (int32_t)v;
}

static const uint8_t *rd_take(rd *r, size_t k)
{
    if (!rd_need(r, k))
        return NULL;
    const uint8_t *q = r->p + r->off;
    r->off += k;
    return q;
}

/* [string] */
static ann_cql_bytes rd_string(rd *r)
{
    ann_cql_bytes b = {NULL, 0};
    uint16_t n = rd_u16(r);
    const uint8_t *q = rd_take(r, n);
    if (q) {
        b.p = q;
        b.len = n;
    }
    return b;
}

/* [bytes]: null when n < 0 */
static ann_cql_bytes rd_bytes(rd *r)
{
    ann_cql_bytes b = {NULL, -1};
    int32_t n = rd_i32(r);
    if (r->bad || n < 0)
        return b;
    const uint8_t *q = rd_take(r, (size_t)n);
    if (q) {
        b.p = q;
        b.len = n;
    }
    return b;
}

/* [short bytes] */
static ann_cql_bytes rd_short_bytes(rd *r)
{
    return rd_string(r);
}

static void copy_str(char *dst, size_t cap, ann_cql_bytes s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

/* Allocates n elements of size sz, but only when the body could possibly hold
 * them (each needs at least `min_wire` bytes), so hostile counts cannot make
 * us allocate. */
static void *rd_alloc(rd *r, size_t n, size_t sz, size_t min_wire)
{
    if (r->bad)
        return NULL;
    if (n == 0)
        return NULL;
    if (min_wire && n > rd_left(r) / min_wire) {
        r->bad = true;
        return NULL;
    }
    void *p = calloc(n, sz);
    if (!p)
        r->bad = true;
    return p;
}

/* ------------------------------------------------------------------ */
/* Results                                                              */

void ann_cql_result_release(ann_cql_result *r)
{
    if (!r)
        return;
    free(r->warnings);
    free(r->opt_keys);
    free(r->opt_first);
    free(r->opt_count);
    free(r->opt_vals);
    free(r->cols);
    free(r->cells);
    free(r->bind);
    free(r->pk_index);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

int ann_cql_header_decode(const uint8_t h[ANN_CQL_HEADER_LEN], uint32_t max_body,
                          ann_cql_header *out, ann_err *err)
{
    out->version = h[0];
    out->flags = h[1];
    out->stream = (int16_t)(uint16_t)((uint16_t)h[2] << 8 | h[3]);
    out->opcode = h[4];
    out->length = (uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8];
    if (!(out->version & 0x80))
        return ann_err_set(err, ANN_EIO, "cql: protocol: request frame from the server");
    if ((out->version & 0x7f) != ANN_CQL_PROTO_VERSION)
        return ann_err_set(err, ANN_EIO, "cql: protocol: server speaks version %u, not %u",
                           out->version & 0x7f, ANN_CQL_PROTO_VERSION);
    if (out->flags & ANN_CQL_FLAG_COMPRESSION)
        return ann_err_set(err, ANN_EIO, "cql: protocol: compressed frame (not negotiated)");
    if (out->length > max_body || out->length > ANN_CQL_MAX_BODY)
        return ann_err_set(err, ANN_EIO, "cql: protocol: frame body of %u bytes exceeds %u",
                           out->length, max_body);
    return 0;
}

/* Reads one [option] type description, recursing into collections, UDTs and
 * tuples only to check and skip them. Returns the type id. */
static uint16_t rd_type(rd *r, int depth, uint16_t sub[2])
{
    if (depth > TYPE_DEPTH_MAX) {
        r->bad = true;
        return 0;
    }
    uint16_t id = rd_u16(r);
    uint16_t ignore[2];
    if (sub)
        sub[0] = sub[1] = 0;
    switch (id) {
    case ANN_CQL_T_CUSTOM:
        (void)rd_string(r);
        break;
    case ANN_CQL_T_LIST:
    case ANN_CQL_T_SET: {
        uint16_t e = rd_type(r, depth + 1, ignore);
        if (sub)
            sub[0] = e;
        break;
    }
    case ANN_CQL_T_MAP: {
        uint16_t k = rd_type(r, depth + 1, ignore);
        uint16_t v = rd_type(r, depth + 1, ignore);
        if (sub) {
            sub[0] = k;
            sub[1] = v;
        }
        break;
    }
    case ANN_CQL_T_UDT: {
        (void)rd_string(r);
        (void)rd_string(r);
        uint16_t n = rd_u16(r);
        for (uint16_t i = 0; i < n && !r->bad; i++) {
            (void)rd_string(r);
            (void)rd_type(r, depth + 1, ignore);
        }
        break;
    }
    case ANN_CQL_T_TUPLE: {
        uint16_t n = rd_u16(r);
        for (uint16_t i = 0; i < n && !r->bad; i++)
            (void)rd_type(r, depth + 1, ignore);
        break;
    }
    default:
        if (id > ANN_CQL_T_DURATION)
            r->bad = true; /* unknown native type */
        break;
    }
    return id;
}

/* <metadata> of a ROWS result (4.2.5.2), also a PREPARED's result metadata. */
static void rd_rows_metadata(rd *r, ann_cql_result *out)
{
    out->meta_flags = rd_i32(r);
    out->ncols = rd_i32(r);
    if (r->bad)
        return;
    if (out->ncols < 0) {
        r->bad = true;
        return;
    }
    if (out->meta_flags & 0x0002)
        out->paging_state = rd_bytes(r);
    else
        out->paging_state = (ann_cql_bytes){NULL, -1};
    if (out->meta_flags & 0x0004)
        return; /* No_metadata */
    bool global = out->meta_flags & 0x0001;
    ann_cql_bytes ks = {NULL, 0}, tb = {NULL, 0};
    if (global) {
        ks = rd_string(r);
        tb = rd_string(r);
    }
    if (out->ncols == 0)
        return;
    out->cols = rd_alloc(r, (size_t)out->ncols, sizeof *out->cols, 4);
    for (int32_t i = 0; i < out->ncols && !r->bad; i++) {
        ann_cql_column *c = &out->cols[i];
        if (global) {
            c->keyspace = ks;
            c->table = tb;
        } else {
            c->keyspace = rd_string(r);
            c->table = rd_string(r);
        }
        c->name = rd_string(r);
        c->type = rd_type(r, 0, c->sub);
    }
}

static void rd_rows(rd *r, ann_cql_result *out)
{
    rd_rows_metadata(r, out);
    out->nrows = rd_i32(r);
    if (r->bad)
        return;
    /* Rows without columns do not exist; refusing them also keeps a hostile
     * 2^31-row empty result from making callers loop for nothing. */
    if (out->nrows < 0 || (out->nrows > 0 && out->ncols == 0)) {
        r->bad = true;
        return;
    }
    size_t ncells = (size_t)out->nrows * (size_t)out->ncols;
    if (out->ncols != 0 && ncells / (size_t)out->ncols != (size_t)out->nrows) {
        r->bad = true;
        return;
    }
    if (ncells == 0)
        return;
    out->cells = rd_alloc(r, ncells, sizeof *out->cells, 4);
    for (size_t i = 0; i < ncells && !r->bad; i++)
        out->cells[i] = rd_bytes(r);
}

static void rd_prepared(rd *r, ann_cql_result *out)
{
    out->prepared_id = rd_short_bytes(r);
    if (!r->bad && out->prepared_id.len == 0)
        r->bad = true;
    int32_t flags = rd_i32(r);
    out->nbind = rd_i32(r);
    out->npk = rd_i32(r);
    if (r->bad)
        return;
    if (out->nbind < 0 || out->npk < 0) {
        r->bad = true;
        return;
    }
    if (out->npk > 0) {
        out->pk_index = rd_alloc(r, (size_t)out->npk, sizeof *out->pk_index, 2);
        for (int32_t i = 0; i < out->npk && !r->bad; i++)
            out->pk_index[i] = rd_u16(r);
    }
    bool global = flags & 0x0001;
    ann_cql_bytes ks = {NULL, 0}, tb = {NULL, 0};
    if (global) {
        ks = rd_string(r);
        tb = rd_string(r);
    }
    if (out->nbind > 0) {
        out->bind = rd_alloc(r, (size_t)out->nbind, sizeof *out->bind, 4);
        for (int32_t i = 0; i < out->nbind && !r->bad; i++) {
            ann_cql_column *c = &out->bind[i];
            if (global) {
                c->keyspace = ks;
                c->table = tb;
            } else {
                c->keyspace = rd_string(r);
                c->table = rd_string(r);
            }
            c->name = rd_string(r);
            c->type = rd_type(r, 0, c->sub);
        }
    }
    rd_rows_metadata(r, out);
}

/* <change_type><target><options> (4.2.6) */
static void rd_schema_change(rd *r, ann_cql_result *out)
{
    out->change_type = rd_string(r);
    out->target = rd_string(r);
    if (r->bad)
        return;
    const ann_cql_bytes t = out->target;
#define IS(s) ((size_t)t.len == sizeof(s) - 1 && memcmp(t.p, s, sizeof(s) - 1) == 0)
    if (IS("KEYSPACE")) {
        out->sc_keyspace = rd_string(r);
    } else if (IS("TABLE") || IS("TYPE")) {
        out->sc_keyspace = rd_string(r);
        out->sc_name = rd_string(r);
    } else if (IS("FUNCTION") || IS("AGGREGATE")) {
        out->sc_keyspace = rd_string(r);
        out->sc_name = rd_string(r);
        uint16_t n = rd_u16(r);
        for (uint16_t i = 0; i < n && !r->bad; i++)
            (void)rd_string(r);
    } else {
        r->bad = true;
    }
#undef IS
}

static ann_cql_write_type write_type_of(ann_cql_bytes s)
{
    static const struct {
        const char *name;
        ann_cql_write_type wt;
    } names[] = {
        {"SIMPLE", ANN_CQL_WT_SIMPLE},
        {"BATCH", ANN_CQL_WT_BATCH},
        {"UNLOGGED_BATCH", ANN_CQL_WT_UNLOGGED_BATCH},
        {"COUNTER", ANN_CQL_WT_COUNTER},
        {"BATCH_LOG", ANN_CQL_WT_BATCH_LOG},
        {"CAS", ANN_CQL_WT_CAS},
        {"VIEW", ANN_CQL_WT_VIEW},
        {"CDC", ANN_CQL_WT_CDC},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i].name);
        if ((size_t)s.len == n && memcmp(s.p, names[i].name, n) == 0)
            return names[i].wt;
    }
    return ANN_CQL_WT_UNKNOWN;
}

static void rd_error(rd *r, ann_cql_error *e)
{
    e->code = rd_i32(r);
    copy_str(e->message, sizeof e->message, rd_string(r));
    if (r->bad)
        return;
    ann_cql_bytes s;
    switch (e->code) {
    case ANN_CQL_E_UNAVAILABLE:
        e->consistency = rd_u16(r);
        e->required = rd_i32(r);
        e->alive = rd_i32(r);
        break;
    case ANN_CQL_E_WRITE_TIMEOUT:
        e->consistency = rd_u16(r);
        e->received = rd_i32(r);
        e->blockfor = rd_i32(r);
        s = rd_string(r);
        e->write_type = write_type_of(s);
        copy_str(e->write_type_name, sizeof e->write_type_name, s);
        break;
    case ANN_CQL_E_READ_TIMEOUT:
        e->consistency = rd_u16(r);
        e->received = rd_i32(r);
        e->blockfor = rd_i32(r);
        e->data_present = rd_u8(r) != 0;
        break;
    case ANN_CQL_E_READ_FAILURE:
        e->consistency = rd_u16(r);
        e->received = rd_i32(r);
        e->blockfor = rd_i32(r);
        e->numfailures = rd_i32(r);
        e->data_present = rd_u8(r) != 0;
        break;
    case ANN_CQL_E_WRITE_FAILURE:
        e->consistency = rd_u16(r);
        e->received = rd_i32(r);
        e->blockfor = rd_i32(r);
        e->numfailures = rd_i32(r);
        s = rd_string(r);
        e->write_type = write_type_of(s);
        copy_str(e->write_type_name, sizeof e->write_type_name, s);
        break;
    case ANN_CQL_E_CAS_WRITE_UNKNOWN: /* v5 code; tolerated if a server sends it */
        e->consistency = rd_u16(r);
        e->received = rd_i32(r);
        e->blockfor = rd_i32(r);
        break;
    case ANN_CQL_E_FUNCTION_FAILURE: {
        copy_str(e->keyspace, sizeof e->keyspace, rd_string(r));
        copy_str(e->table, sizeof e->table, rd_string(r));
        uint16_t n = rd_u16(r);
        for (uint16_t i = 0; i < n && !r->bad; i++)
            (void)rd_string(r);
        break;
    }
    case ANN_CQL_E_ALREADY_EXISTS:
        copy_str(e->keyspace, sizeof e->keyspace, rd_string(r));
        copy_str(e->table, sizeof e->table, rd_string(r));
        break;
    case ANN_CQL_E_UNPREPARED:
        s = rd_short_bytes(r);
        if (r->bad)
            break;
        if ((size_t)s.len > sizeof e->unprepared_id) {
            r->bad = true;
            break;
        }
        memcpy(e->unprepared_id, s.p, (size_t)s.len);
        e->unprepared_id_len = (uint16_t)s.len;
        break;
    default:
        break;
    }
}

static void rd_supported(rd *r, ann_cql_result *out)
{
    uint16_t n = rd_u16(r);
    if (r->bad || n == 0)
        return;
    out->opt_keys = rd_alloc(r, n, sizeof *out->opt_keys, 4);
    out->opt_first = rd_alloc(r, n, sizeof *out->opt_first, 4);
    out->opt_count = rd_alloc(r, n, sizeof *out->opt_count, 4);
    if (r->bad)
        return;
    /* First pass counts values so the flat array is allocated once. */
    size_t start = r->off, total = 0;
    for (uint16_t i = 0; i < n && !r->bad; i++) {
        (void)rd_string(r);
        uint16_t k = rd_u16(r);
        for (uint16_t j = 0; j < k && !r->bad; j++)
            (void)rd_string(r);
        total += k;
    }
    if (r->bad)
        return;
    r->off = start;
    if (total) {
        out->opt_vals = calloc(total, sizeof *out->opt_vals);
        if (!out->opt_vals) {
            r->bad = true;
            return;
        }
    }
    uint32_t at = 0;
    for (uint16_t i = 0; i < n && !r->bad; i++) {
        out->opt_keys[i] = rd_string(r);
        uint16_t k = rd_u16(r);
        out->opt_first[i] = at;
        out->opt_count[i] = k;
        for (uint16_t j = 0; j < k && !r->bad; j++)
            out->opt_vals[at++] = rd_string(r);
    }
    out->nopts = n;
}

int ann_cql_response_decode(const ann_cql_header *h, const uint8_t *body, size_t len,
                            ann_cql_result *out, ann_err *err)
{
    memset(out, 0, sizeof *out);
    out->opcode = h->opcode;
    out->flags = h->flags;
    out->stream = h->stream;
    out->paging_state = (ann_cql_bytes){NULL, -1};
    rd r = {body, len, 0, false};

    if (h->flags & ANN_CQL_FLAG_TRACING) {
        const uint8_t *q = rd_take(&r, 16);
        if (q)
            out->tracing_id = (ann_cql_bytes){q, 16};
    }
    if (h->flags & ANN_CQL_FLAG_WARNING) {
        uint16_t n = rd_u16(&r);
        if (n) {
            out->warnings = rd_alloc(&r, n, sizeof *out->warnings, 2);
            for (uint16_t i = 0; i < n && !r.bad; i++)
                out->warnings[i] = rd_string(&r);
            out->nwarnings = r.bad ? 0 : n;
        }
    }
    if (h->flags & ANN_CQL_FLAG_CUSTOM_PAYLOAD) {
        uint16_t n = rd_u16(&r);
        for (uint16_t i = 0; i < n && !r.bad; i++) {
            (void)rd_string(&r);
            (void)rd_bytes(&r);
        }
    }

    switch (h->opcode) {
    case ANN_CQL_OP_ERROR:
        rd_error(&r, &out->error);
        break;
    case ANN_CQL_OP_READY:
        break;
    case ANN_CQL_OP_AUTHENTICATE:
        out->authenticator = rd_string(&r);
        break;
    case ANN_CQL_OP_SUPPORTED:
        rd_supported(&r, out);
        break;
    case ANN_CQL_OP_AUTH_CHALLENGE:
    case ANN_CQL_OP_AUTH_SUCCESS:
        out->token = rd_bytes(&r);
        break;
    case ANN_CQL_OP_EVENT:
        out->event_type = rd_string(&r);
        if (!r.bad && out->event_type.len == 13 &&
            memcmp(out->event_type.p, "SCHEMA_CHANGE", 13) == 0)
            rd_schema_change(&r, out);
        /* TOPOLOGY_CHANGE / STATUS_CHANGE: the rest is ignored. */
        break;
    case ANN_CQL_OP_RESULT:
        out->kind = rd_i32(&r);
        if (r.bad)
            break;
        switch (out->kind) {
        case ANN_CQL_RESULT_VOID:
            break;
        case ANN_CQL_RESULT_ROWS:
            rd_rows(&r, out);
            break;
        case ANN_CQL_RESULT_SET_KEYSPACE:
            out->keyspace = rd_string(&r);
            break;
        case ANN_CQL_RESULT_PREPARED:
            rd_prepared(&r, out);
            break;
        case ANN_CQL_RESULT_SCHEMA_CHANGE:
            rd_schema_change(&r, out);
            break;
        default:
            r.bad = true;
            break;
        }
        break;
    default:
        ann_cql_result_release(out);
        return ann_err_set(err, ANN_EIO, "cql: protocol: unexpected opcode 0x%02x", h->opcode);
    }
    if (r.bad) {
        ann_cql_result_release(out);
        return ann_err_set(err, ANN_EIO, "cql: protocol: malformed %s body (%zu bytes)",
                           ann_cql_opcode_name(h->opcode), len);
    }
    /* Trailing bytes are allowed (spec 1: future extensions). */
    return 0;
}

int ann_cql_frame_decode(const uint8_t *p, size_t n, ann_cql_result *out, ann_err *err)
{
    memset(out, 0, sizeof *out);
    if (n < ANN_CQL_HEADER_LEN)
        return ann_err_set(err, ANN_EIO, "cql: protocol: short header (%zu bytes)", n);
    ann_cql_header h;
    if (ann_cql_header_decode(p, ANN_CQL_MAX_BODY, &h, err) < 0)
        return -1;
    if (h.length != n - ANN_CQL_HEADER_LEN)
        return ann_err_set(err, ANN_EIO, "cql: protocol: body is %zu bytes, header says %u",
                           n - ANN_CQL_HEADER_LEN, h.length);
    return ann_cql_response_decode(&h, p + ANN_CQL_HEADER_LEN, h.length, out, err);
}

/* ------------------------------------------------------------------ */
/* Encoding                                                             */

void ann_cql_buf_release(ann_cql_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static bool buf_grow(ann_cql_buf *b, size_t n)
{
    if (b->failed)
        return false;
    if (n > SIZE_MAX - b->len) {
        b->failed = true;
        return false;
    }
    if (b->len + n <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void ann_cql_buf_put(ann_cql_buf *b, const void *p, size_t n)
{
    if (!n || !buf_grow(b, n))
        return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void ann_cql_buf_u8(ann_cql_buf *b, uint8_t v)
{
    ann_cql_buf_put(b, &v, 1);
}

void ann_cql_buf_u16(ann_cql_buf *b, uint16_t v)
{
    uint8_t q[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    ann_cql_buf_put(b, q, 2);
}

void ann_cql_buf_i32(ann_cql_buf *b, int32_t v)
{
    uint32_t u = (uint32_t)v;
    uint8_t q[4] = {(uint8_t)(u >> 24), (uint8_t)(u >> 16), (uint8_t)(u >> 8), (uint8_t)u};
    ann_cql_buf_put(b, q, 4);
}

void ann_cql_buf_i64(ann_cql_buf *b, int64_t v)
{
    uint64_t u = (uint64_t)v;
    uint8_t q[8];
    for (int i = 0; i < 8; i++)
        q[i] = (uint8_t)(u >> (56 - 8 * i));
    ann_cql_buf_put(b, q, 8);
}

void ann_cql_buf_string(ann_cql_buf *b, const char *s, size_t n)
{
    if (n > UINT16_MAX) {
        b->failed = true;
        return;
    }
    ann_cql_buf_u16(b, (uint16_t)n);
    ann_cql_buf_put(b, s, n);
}

void ann_cql_buf_long_string(ann_cql_buf *b, const char *s, size_t n)
{
    if (n > INT32_MAX) {
        b->failed = true;
        return;
    }
    ann_cql_buf_i32(b, (int32_t)n);
    ann_cql_buf_put(b, s, n);
}

void ann_cql_buf_bytes(ann_cql_buf *b, const void *p, int32_t n)
{
    ann_cql_buf_i32(b, n < 0 ? -1 : n);
    if (n > 0)
        ann_cql_buf_put(b, p, (size_t)n);
}

void ann_cql_buf_short_bytes(ann_cql_buf *b, const void *p, uint16_t n)
{
    ann_cql_buf_u16(b, n);
    ann_cql_buf_put(b, p, n);
}

ann_cql_value ann_cql_vnull(void)
{
    return (ann_cql_value){.kind = ANN_CQL_V_NULL};
}
ann_cql_value ann_cql_vunset(void)
{
    return (ann_cql_value){.kind = ANN_CQL_V_UNSET};
}

ann_cql_value ann_cql_vtextn(const char *s, size_t n)
{
    ann_cql_value v = {.kind = ANN_CQL_V_TEXT};
    v.u.bytes.p = s;
    v.u.bytes.n = n;
    return v;
}

ann_cql_value ann_cql_vtext(const char *s)
{
    return ann_cql_vtextn(s, strlen(s));
}

ann_cql_value ann_cql_vblob(const void *p, size_t n)
{
    ann_cql_value v = {.kind = ANN_CQL_V_BLOB};
    v.u.bytes.p = p;
    v.u.bytes.n = n;
    return v;
}

ann_cql_value ann_cql_vbigint(int64_t x)
{
    ann_cql_value v = {.kind = ANN_CQL_V_BIGINT};
    v.u.i64 = x;
    return v;
}

ann_cql_value ann_cql_vint(int32_t x)
{
    ann_cql_value v = {.kind = ANN_CQL_V_INT};
    v.u.i32 = x;
    return v;
}

ann_cql_value ann_cql_vtimestamp(int64_t ms)
{
    ann_cql_value v = {.kind = ANN_CQL_V_TIMESTAMP};
    v.u.i64 = ms;
    return v;
}

ann_cql_value ann_cql_vbool(bool x)
{
    ann_cql_value v = {.kind = ANN_CQL_V_BOOLEAN};
    v.u.b = x;
    return v;
}

ann_cql_value ann_cql_vuuid(const uint8_t u[16])
{
    ann_cql_value v = {.kind = ANN_CQL_V_UUID};
    memcpy(v.u.uuid, u, 16);
    return v;
}

ann_cql_value ann_cql_vmap(const ann_cql_kv *kv, size_t n)
{
    ann_cql_value v = {.kind = ANN_CQL_V_MAP_TEXT};
    v.u.map.kv = kv;
    v.u.map.n = n;
    return v;
}

ann_cql_value ann_cql_vlist_text(const char *const *s, const size_t *len, size_t n)
{
    ann_cql_value v = {.kind = ANN_CQL_V_LIST_TEXT};
    v.u.list.s = s;
    v.u.list.len = len;
    v.u.list.n = n;
    return v;
}

int ann_cql_value_encode(ann_cql_buf *b, const ann_cql_value *v, ann_err *err)
{
    switch (v->kind) {
    case ANN_CQL_V_NULL:
        ann_cql_buf_i32(b, -1);
        break;
    case ANN_CQL_V_UNSET:
        ann_cql_buf_i32(b, -2);
        break;
    case ANN_CQL_V_TEXT:
    case ANN_CQL_V_BLOB:
        if (v->u.bytes.n > INT32_MAX)
            return ann_err_set(err, ANN_EINVAL, "cql: value of %zu bytes is too large",
                               v->u.bytes.n);
        ann_cql_buf_bytes(b, v->u.bytes.p, (int32_t)v->u.bytes.n);
        break;
    case ANN_CQL_V_BIGINT:
    case ANN_CQL_V_TIMESTAMP:
        ann_cql_buf_i32(b, 8);
        ann_cql_buf_i64(b, v->u.i64);
        break;
    case ANN_CQL_V_INT:
        ann_cql_buf_i32(b, 4);
        ann_cql_buf_i32(b, v->u.i32);
        break;
    case ANN_CQL_V_BOOLEAN:
        ann_cql_buf_i32(b, 1);
        ann_cql_buf_u8(b, v->u.b ? 1 : 0);
        break;
    case ANN_CQL_V_UUID:
        ann_cql_buf_i32(b, 16);
        ann_cql_buf_put(b, v->u.uuid, 16);
        break;
    case ANN_CQL_V_MAP_TEXT: {
        /* [int] n, then n ([bytes] key, [bytes] value); the whole is a [bytes]. */
        size_t total = 4;
        if (v->u.map.n > INT32_MAX)
            return ann_err_set(err, ANN_EINVAL, "cql: map of %zu entries", v->u.map.n);
        for (size_t i = 0; i < v->u.map.n; i++) {
            const ann_cql_kv *kv = &v->u.map.kv[i];
            if (kv->klen > INT32_MAX || kv->vlen > INT32_MAX ||
                total > (size_t)INT32_MAX - 8 - kv->klen - kv->vlen)
                return ann_err_set(err, ANN_EINVAL, "cql: map value too large");
            total += 8 + kv->klen + kv->vlen;
        }
        ann_cql_buf_i32(b, (int32_t)total);
        ann_cql_buf_i32(b, (int32_t)v->u.map.n);
        for (size_t i = 0; i < v->u.map.n; i++) {
            const ann_cql_kv *kv = &v->u.map.kv[i];
            ann_cql_buf_bytes(b, kv->k, (int32_t)kv->klen);
            ann_cql_buf_bytes(b, kv->v, (int32_t)kv->vlen);
        }
        break;
    }
    case ANN_CQL_V_LIST_TEXT: {
        /* [int] n, then n [bytes] elements; the whole is a [bytes]. */
        size_t total = 4;
        if (v->u.list.n > INT32_MAX)
            return ann_err_set(err, ANN_EINVAL, "cql: list of %zu elements", v->u.list.n);
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (v->u.list.len[i] > INT32_MAX || total > (size_t)INT32_MAX - 4 - v->u.list.len[i])
                return ann_err_set(err, ANN_EINVAL, "cql: list value too large");
            total += 4 + v->u.list.len[i];
        }
        ann_cql_buf_i32(b, (int32_t)total);
        ann_cql_buf_i32(b, (int32_t)v->u.list.n);
        for (size_t i = 0; i < v->u.list.n; i++)
            ann_cql_buf_bytes(b, v->u.list.s[i], (int32_t)v->u.list.len[i]);
        break;
    }
    default:
        return ann_err_set(err, ANN_EINVAL, "cql: unknown value kind %d", (int)v->kind);
    }
    return 0;
}

void ann_cql_params_init(ann_cql_params *p)
{
    memset(p, 0, sizeof *p);
    p->consistency = ANN_CQL_ONE;
}

static void frame_begin(ann_cql_buf *b, uint8_t opcode)
{
    b->len = 0;
    b->failed = false;
    uint8_t h[ANN_CQL_HEADER_LEN] = {ANN_CQL_PROTO_VERSION, 0, 0, 0, opcode, 0, 0, 0, 0};
    ann_cql_buf_put(b, h, sizeof h);
}

static int frame_end(ann_cql_buf *b, ann_err *err)
{
    if (b->failed)
        return ann_err_set(err, ANN_EINVAL, "cql: request cannot be encoded");
    size_t body = b->len - ANN_CQL_HEADER_LEN;
    if (body > ANN_CQL_MAX_BODY)
        return ann_err_set(err, ANN_EINVAL, "cql: request of %zu bytes exceeds the frame limit",
                           body);
    b->p[5] = (uint8_t)(body >> 24);
    b->p[6] = (uint8_t)(body >> 16);
    b->p[7] = (uint8_t)(body >> 8);
    b->p[8] = (uint8_t)body;
    return 0;
}

void ann_cql_frame_set_stream(uint8_t *frame, int16_t stream)
{
    frame[2] = (uint8_t)((uint16_t)stream >> 8);
    frame[3] = (uint8_t)stream;
}

int ann_cql_encode_startup(ann_cql_buf *b, ann_err *err)
{
    frame_begin(b, ANN_CQL_OP_STARTUP);
    ann_cql_buf_u16(b, 1);
    ann_cql_buf_string(b, "CQL_VERSION", 11);
    ann_cql_buf_string(b, "3.0.0", 5);
    return frame_end(b, err);
}

int ann_cql_encode_options(ann_cql_buf *b, ann_err *err)
{
    frame_begin(b, ANN_CQL_OP_OPTIONS);
    return frame_end(b, err);
}

int ann_cql_encode_auth_response(ann_cql_buf *b, const void *token, int32_t n, ann_err *err)
{
    frame_begin(b, ANN_CQL_OP_AUTH_RESPONSE);
    ann_cql_buf_bytes(b, token, n);
    return frame_end(b, err);
}

static bool valid_consistency(uint16_t c)
{
    return c <= ANN_CQL_LOCAL_ONE;
}

/* <query_parameters> (4.1.4) */
static int put_params(ann_cql_buf *b, const ann_cql_params *p, ann_err *err)
{
    if (!valid_consistency(p->consistency))
        return ann_err_set(err, ANN_EINVAL, "cql: consistency 0x%04x", p->consistency);
    if (p->serial_consistency && p->serial_consistency != ANN_CQL_SERIAL &&
        p->serial_consistency != ANN_CQL_LOCAL_SERIAL)
        return ann_err_set(err, ANN_EINVAL,
                           "cql: serial_consistency must be SERIAL or LOCAL_SERIAL");
    if (p->nvalues > UINT16_MAX)
        return ann_err_set(err, ANN_EINVAL, "cql: %zu values (at most 65535)", p->nvalues);
    if (p->page_size < 0)
        return ann_err_set(err, ANN_EINVAL, "cql: page_size < 0");
    if (p->has_timestamp && p->timestamp_us < 0)
        return ann_err_set(err, ANN_EINVAL, "cql: timestamp < 0");
    uint8_t flags = 0;
    if (p->nvalues)
        flags |= 0x01;
    if (p->skip_metadata)
        flags |= 0x02;
    if (p->page_size > 0)
        flags |= 0x04;
    if (p->paging_state.p && p->paging_state.len >= 0)
        flags |= 0x08;
    if (p->serial_consistency)
        flags |= 0x10;
    if (p->has_timestamp)
        flags |= 0x20;
    ann_cql_buf_u16(b, p->consistency);
    ann_cql_buf_u8(b, flags);
    if (flags & 0x01) {
        ann_cql_buf_u16(b, (uint16_t)p->nvalues);
        for (size_t i = 0; i < p->nvalues; i++)
            if (ann_cql_value_encode(b, &p->values[i], err) < 0)
                return -1;
    }
    if (flags & 0x04)
        ann_cql_buf_i32(b, p->page_size);
    if (flags & 0x08)
        ann_cql_buf_bytes(b, p->paging_state.p, p->paging_state.len);
    if (flags & 0x10)
        ann_cql_buf_u16(b, p->serial_consistency);
    if (flags & 0x20)
        ann_cql_buf_i64(b, p->timestamp_us);
    return 0;
}

int ann_cql_encode_query(ann_cql_buf *b, const char *cql, const ann_cql_params *p, ann_err *err)
{
    frame_begin(b, ANN_CQL_OP_QUERY);
    ann_cql_buf_long_string(b, cql, strlen(cql));
    if (put_params(b, p, err) < 0)
        return -1;
    return frame_end(b, err);
}

int ann_cql_encode_prepare(ann_cql_buf *b, const char *cql, ann_err *err)
{
    frame_begin(b, ANN_CQL_OP_PREPARE);
    ann_cql_buf_long_string(b, cql, strlen(cql));
    return frame_end(b, err);
}

int ann_cql_encode_execute(ann_cql_buf *b, const uint8_t *id, uint16_t id_len,
                           const ann_cql_params *p, ann_err *err)
{
    frame_begin(b, ANN_CQL_OP_EXECUTE);
    ann_cql_buf_short_bytes(b, id, id_len);
    if (put_params(b, p, err) < 0)
        return -1;
    return frame_end(b, err);
}

int ann_cql_encode_register(ann_cql_buf *b, const char *const *events, size_t n, ann_err *err)
{
    if (n > UINT16_MAX)
        return ann_err_set(err, ANN_EINVAL, "cql: too many events");
    frame_begin(b, ANN_CQL_OP_REGISTER);
    ann_cql_buf_u16(b, (uint16_t)n);
    for (size_t i = 0; i < n; i++)
        ann_cql_buf_string(b, events[i], strlen(events[i]));
    return frame_end(b, err);
}

int ann_cql_encode_batch(ann_cql_buf *b, ann_cql_batch_type type, const ann_cql_batch_stmt *stmts,
                         size_t n, uint16_t consistency, uint16_t serial_consistency,
                         bool has_timestamp, int64_t timestamp_us, size_t *id_offsets, ann_err *err)
{
    if (type > ANN_CQL_BATCH_COUNTER)
        return ann_err_set(err, ANN_EINVAL, "cql: batch type");
    if (n == 0 || n > UINT16_MAX)
        return ann_err_set(err, ANN_EINVAL, "cql: a batch holds 1..65535 statements, not %zu", n);
    if (!valid_consistency(consistency))
        return ann_err_set(err, ANN_EINVAL, "cql: consistency 0x%04x", consistency);
    if (serial_consistency && serial_consistency != ANN_CQL_SERIAL &&
        serial_consistency != ANN_CQL_LOCAL_SERIAL)
        return ann_err_set(err, ANN_EINVAL,
                           "cql: serial_consistency must be SERIAL or LOCAL_SERIAL");
    frame_begin(b, ANN_CQL_OP_BATCH);
    ann_cql_buf_u8(b, (uint8_t)type);
    ann_cql_buf_u16(b, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        const ann_cql_batch_stmt *s = &stmts[i];
        if (s->nvalues > UINT16_MAX)
            return ann_err_set(err, ANN_EINVAL, "cql: batch[%zu]: too many values", i);
        if (s->id) {
            ann_cql_buf_u8(b, 1);
            ann_cql_buf_u16(b, s->id_len);
            if (id_offsets)
                id_offsets[i] = b->len;
            ann_cql_buf_put(b, s->id, s->id_len);
        } else {
            if (!s->query)
                return ann_err_set(err, ANN_EINVAL, "cql: batch[%zu]: no query and no id", i);
            if (id_offsets)
                id_offsets[i] = 0;
            ann_cql_buf_u8(b, 0);
            ann_cql_buf_long_string(b, s->query, strlen(s->query));
        }
        ann_cql_buf_u16(b, (uint16_t)s->nvalues);
        for (size_t j = 0; j < s->nvalues; j++)
            if (ann_cql_value_encode(b, &s->values[j], err) < 0)
                return -1;
    }
    uint8_t flags = 0;
    if (serial_consistency)
        flags |= 0x10;
    if (has_timestamp)
        flags |= 0x20;
    ann_cql_buf_u16(b, consistency);
    ann_cql_buf_u8(b, flags);
    if (flags & 0x10)
        ann_cql_buf_u16(b, serial_consistency);
    if (flags & 0x20)
        ann_cql_buf_i64(b, timestamp_us);
    return frame_end(b, err);
}

/* ------------------------------------------------------------------ */
/* Reading values                                                       */

const ann_cql_bytes *ann_cql_cell(const ann_cql_result *r, int32_t row, int32_t col)
{
    if (!r || r->kind != ANN_CQL_RESULT_ROWS || !r->cells || row < 0 || col < 0 ||
        row >= r->nrows || col >= r->ncols)
        return NULL;
    return &r->cells[(size_t)row * (size_t)r->ncols + (size_t)col];
}

int32_t ann_cql_column_index(const ann_cql_result *r, const char *name)
{
    size_t n = strlen(name);
    for (int32_t i = 0; r->cols && i < r->ncols; i++)
        if ((size_t)r->cols[i].name.len == n && memcmp(r->cols[i].name.p, name, n) == 0)
            return i;
    return -1;
}

/* Finds the cell and checks its column type is one of `t1`/`t2`. */
static int cell_of(const ann_cql_result *r, int32_t row, int32_t col, uint16_t t1, uint16_t t2,
                   uint16_t t3, const ann_cql_bytes **out, ann_err *err)
{
    const ann_cql_bytes *c = ann_cql_cell(r, row, col);
    if (!c)
        return ann_err_set(err, ANN_EINVAL, "cql: no cell (%d, %d)", row, col);
    if (r->cols) {
        uint16_t t = r->cols[col].type;
        if (t != t1 && t != t2 && t != t3)
            return ann_err_set(err, ANN_EINVAL, "cql: column %d has type 0x%04x", col, t);
    }
    *out = c;
    return c->len < 0 ? 1 : 0;
}

int ann_cql_get_text(const ann_cql_result *r, int32_t row, int32_t col, const char **p, size_t *n,
                     ann_err *err)
{
    const ann_cql_bytes *c;
    int rc = cell_of(r, row, col, ANN_CQL_T_VARCHAR, ANN_CQL_T_ASCII, ANN_CQL_T_VARCHAR, &c, err);
    if (rc != 0)
        return rc;
    *p = (const char *)c->p;
    *n = (size_t)c->len;
    return 0;
}

int ann_cql_get_blob(const ann_cql_result *r, int32_t row, int32_t col, const uint8_t **p,
                     size_t *n, ann_err *err)
{
    const ann_cql_bytes *c;
    int rc = cell_of(r, row, col, ANN_CQL_T_BLOB, ANN_CQL_T_BLOB, ANN_CQL_T_BLOB, &c, err);
    if (rc != 0)
        return rc;
    *p = c->p;
    *n = (size_t)c->len;
    return 0;
}

static int64_t be64(const uint8_t *q)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | q[i];
    return (int64_t)v;
}

int ann_cql_get_bigint(const ann_cql_result *r, int32_t row, int32_t col, int64_t *out,
                       ann_err *err)
{
    const ann_cql_bytes *c;
    int rc =
        cell_of(r, row, col, ANN_CQL_T_BIGINT, ANN_CQL_T_COUNTER, ANN_CQL_T_TIMESTAMP, &c, err);
    if (rc != 0)
        return rc;
    if (c->len != 8)
        return ann_err_set(err, ANN_EINVAL, "cql: bigint of %d bytes", c->len);
    *out = be64(c->p);
    return 0;
}

int ann_cql_get_int(const ann_cql_result *r, int32_t row, int32_t col, int32_t *out, ann_err *err)
{
    const ann_cql_bytes *c;
    int rc = cell_of(r, row, col, ANN_CQL_T_INT, ANN_CQL_T_INT, ANN_CQL_T_INT, &c, err);
    if (rc != 0)
        return rc;
    if (c->len != 4)
        return ann_err_set(err, ANN_EINVAL, "cql: int of %d bytes", c->len);
    *out = (int32_t)((uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 |
                     c->p[3]);
    return 0;
}

int ann_cql_get_bool(const ann_cql_result *r, int32_t row, int32_t col, bool *out, ann_err *err)
{
    const ann_cql_bytes *c;
    int rc = cell_of(r, row, col, ANN_CQL_T_BOOLEAN, ANN_CQL_T_BOOLEAN, ANN_CQL_T_BOOLEAN, &c, err);
    if (rc != 0)
        return rc;
    if (c->len != 1)
        return ann_err_set(err, ANN_EINVAL, "cql: boolean of %d bytes", c->len);
    *out = c->p[0] != 0;
    return 0;
}

int ann_cql_get_uuid(const ann_cql_result *r, int32_t row, int32_t col, uint8_t out[16],
                     ann_err *err)
{
    const ann_cql_bytes *c;
    int rc = cell_of(r, row, col, ANN_CQL_T_UUID, ANN_CQL_T_TIMEUUID, ANN_CQL_T_UUID, &c, err);
    if (rc != 0)
        return rc;
    if (c->len != 16)
        return ann_err_set(err, ANN_EINVAL, "cql: uuid of %d bytes", c->len);
    memcpy(out, c->p, 16);
    return 0;
}

int ann_cql_map_iter_init(ann_cql_map_iter *it, const ann_cql_bytes *cell)
{
    memset(it, 0, sizeof *it);
    if (!cell || cell->len < 0)
        return 1; /* null map: empty */
    rd r = {cell->p, (size_t)cell->len, 0, false};
    it->left = rd_i32(&r);
    if (r.bad || it->left < 0) {
        it->bad = true;
        return -1;
    }
    it->p = cell->p;
    it->n = (size_t)cell->len;
    it->off = r.off;
    return 0;
}

int ann_cql_map_next(ann_cql_map_iter *it, ann_cql_bytes *k, ann_cql_bytes *v)
{
    if (it->bad)
        return -1;
    if (it->left <= 0)
        return 0;
    rd r = {it->p, it->n, it->off, false};
    *k = rd_bytes(&r);
    *v = rd_bytes(&r);
    if (r.bad) {
        it->bad = true;
        return -1;
    }
    it->off = r.off;
    it->left--;
    return 1;
}

int ann_cql_applied(const ann_cql_result *r, bool *applied, ann_err *err)
{
    if (r->opcode != ANN_CQL_OP_RESULT || r->kind != ANN_CQL_RESULT_ROWS || r->nrows < 1 ||
        r->ncols < 1 || !r->cols || r->cols[0].name.len != 9 ||
        memcmp(r->cols[0].name.p, "[applied]", 9) != 0)
        return ann_err_set(err, ANN_EINVAL, "cql: not a conditional statement's result");
    int rc = ann_cql_get_bool(r, 0, 0, applied, err);
    if (rc != 0)
        return rc < 0 ? -1 : ann_err_set(err, ANN_EINVAL, "cql: [applied] is null");
    return 0;
}

const char *ann_cql_errcode_name(int32_t code)
{
    switch (code) {
    case ANN_CQL_E_SERVER:
        return "server_error";
    case ANN_CQL_E_PROTOCOL:
        return "protocol_error";
    case ANN_CQL_E_AUTH:
        return "authentication_error";
    case ANN_CQL_E_UNAVAILABLE:
        return "unavailable";
    case ANN_CQL_E_OVERLOADED:
        return "overloaded";
    case ANN_CQL_E_IS_BOOTSTRAPPING:
        return "is_bootstrapping";
    case ANN_CQL_E_TRUNCATE:
        return "truncate_error";
    case ANN_CQL_E_WRITE_TIMEOUT:
        return "write_timeout";
    case ANN_CQL_E_READ_TIMEOUT:
        return "read_timeout";
    case ANN_CQL_E_READ_FAILURE:
        return "read_failure";
    case ANN_CQL_E_FUNCTION_FAILURE:
        return "function_failure";
    case ANN_CQL_E_WRITE_FAILURE:
        return "write_failure";
    case ANN_CQL_E_CDC_WRITE_FAILURE:
        return "cdc_write_failure";
    case ANN_CQL_E_CAS_WRITE_UNKNOWN:
        return "cas_write_unknown";
    case ANN_CQL_E_SYNTAX:
        return "syntax_error";
    case ANN_CQL_E_UNAUTHORIZED:
        return "unauthorized";
    case ANN_CQL_E_INVALID:
        return "invalid";
    case ANN_CQL_E_CONFIG:
        return "config_error";
    case ANN_CQL_E_ALREADY_EXISTS:
        return "already_exists";
    case ANN_CQL_E_UNPREPARED:
        return "unprepared";
    }
    return "unknown_error";
}

const char *ann_cql_opcode_name(int opcode)
{
    switch (opcode) {
    case ANN_CQL_OP_ERROR:
        return "ERROR";
    case ANN_CQL_OP_STARTUP:
        return "STARTUP";
    case ANN_CQL_OP_READY:
        return "READY";
    case ANN_CQL_OP_AUTHENTICATE:
        return "AUTHENTICATE";
    case ANN_CQL_OP_OPTIONS:
        return "OPTIONS";
    case ANN_CQL_OP_SUPPORTED:
        return "SUPPORTED";
    case ANN_CQL_OP_QUERY:
        return "QUERY";
    case ANN_CQL_OP_RESULT:
        return "RESULT";
    case ANN_CQL_OP_PREPARE:
        return "PREPARE";
    case ANN_CQL_OP_EXECUTE:
        return "EXECUTE";
    case ANN_CQL_OP_REGISTER:
        return "REGISTER";
    case ANN_CQL_OP_EVENT:
        return "EVENT";
    case ANN_CQL_OP_BATCH:
        return "BATCH";
    case ANN_CQL_OP_AUTH_CHALLENGE:
        return "AUTH_CHALLENGE";
    case ANN_CQL_OP_AUTH_RESPONSE:
        return "AUTH_RESPONSE";
    case ANN_CQL_OP_AUTH_SUCCESS:
        return "AUTH_SUCCESS";
    }
    return "UNKNOWN";
}

ann_code ann_cql_errcode_to_ann(int32_t code)
{
    switch (code) {
    case ANN_CQL_E_AUTH:
    case ANN_CQL_E_UNAUTHORIZED:
        return ANN_EUNAUTH;
    case ANN_CQL_E_UNAVAILABLE:
    case ANN_CQL_E_OVERLOADED:
    case ANN_CQL_E_IS_BOOTSTRAPPING:
    case ANN_CQL_E_WRITE_TIMEOUT:
    case ANN_CQL_E_READ_TIMEOUT:
    case ANN_CQL_E_CAS_WRITE_UNKNOWN:
    case ANN_CQL_E_TRUNCATE:
        return ANN_EUNAVAIL;
    case ANN_CQL_E_SYNTAX:
    case ANN_CQL_E_INVALID:
    case ANN_CQL_E_CONFIG:
        return ANN_EINVAL;
    case ANN_CQL_E_ALREADY_EXISTS:
        return ANN_EEXISTS;
    case ANN_CQL_E_READ_FAILURE:
    case ANN_CQL_E_WRITE_FAILURE:
    case ANN_CQL_E_CDC_WRITE_FAILURE:
    case ANN_CQL_E_FUNCTION_FAILURE:
        return ANN_EIO;
    }
    return ANN_EINTERNAL;
}
