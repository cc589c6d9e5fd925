#include "http/pbjson.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/pbread.h"

#define NAME_MAX_LEN 128 /* field names of our protos are far shorter */
#define PATH_MAX_LEN 200

/* ---------- names ---------- */

/* lowerCamelCase of a proto field name, as protoc's json_name. */
static void json_name(const char *proto, char out[NAME_MAX_LEN])
{
    size_t k = 0;
    bool up = false;
    for (const char *p = proto; *p && k + 1 < NAME_MAX_LEN; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        out[k++] = up ? (char)toupper((unsigned char)*p) : *p;
        up = false;
    }
    out[k] = '\0';
}

const ProtobufCFieldDescriptor *ann_pbjson_field(const ProtobufCMessageDescriptor *d,
                                                 const char *name)
{
    char jn[NAME_MAX_LEN];
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        json_name(f->name, jn);
        if (strcmp(name, jn) == 0 || strcmp(name, f->name) == 0)
            return f;
    }
    return NULL;
}

static bool is_wkt(const ProtobufCMessageDescriptor *d, const char *name)
{
    return strcmp(d->name, name) == 0;
}

/* A map field: repeated, of the nested message protoc makes for it ("LabelsEntry" for
 * `labels`: the CamelCase name plus "Entry", fields key = 1 and value = 2). protobuf-c
 * keeps no map_entry option, and protoc refuses any other message of that name. */
static bool is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *m = f->descriptor;
    char want[NAME_MAX_LEN + 8];
    json_name(f->name, want);
    want[0] = (char)toupper((unsigned char)want[0]);
    strcat(want, "Entry");
    return strcmp(m->short_name, want) == 0 && m->n_fields == 2 && m->fields[0].id == 1 &&
           m->fields[1].id == 2;
}

/* ---------- JSON output ---------- */

static void add_str(ann_buf *b, const char *s)
{
    ann_buf_add(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at p[0..n), or 0 when invalid. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

void ann_pbjson_add_string(ann_buf *out, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    ann_buf_reserve(out, n + 2);
    ann_buf_add_byte(out, '"');
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            ann_buf_add_byte(out, '\\');
            ann_buf_add_byte(out, c);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            const char *sh = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (sh) {
                add_str(out, sh);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                add_str(out, esc);
            }
            i++;
        } else if (c < 0x80) {
            ann_buf_add_byte(out, c);
            i++;
        } else {
            size_t l = utf8_seq(p + i, n - i);
            if (l == 0) {
                add_str(out, "\\ufffd");
                i++;
            } else if (l == 3 && p[i] == 0xE2 && p[i + 1] == 0x80 &&
                       (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
                /* U+2028/2029: valid JSON, but not valid JavaScript before ES2019 */
                add_str(out, p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
                i += 3;
            } else {
                ann_buf_add(out, p + i, l);
                i += l;
            }
        }
    }
    ann_buf_add_byte(out, '"');
}

static void add_key(ann_buf *out, bool *first, const char *proto_name)
{
    char jn[NAME_MAX_LEN];
    json_name(proto_name, jn);
    if (!*first)
        ann_buf_add_byte(out, ',');
    *first = false;
    ann_pbjson_add_string(out, jn, strlen(jn));
    ann_buf_add_byte(out, ':');
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void add_base64(ann_buf *out, const uint8_t *p, size_t n)
{
    ann_buf_add_byte(out, '"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {b64std[(v >> 18) & 63], b64std[(v >> 12) & 63],
                     i + 1 < n ? b64std[(v >> 6) & 63] : '=', i + 2 < n ? b64std[v & 63] : '='};
        ann_buf_add(out, q, 4);
    }
    ann_buf_add_byte(out, '"');
}

/* Days since 1970-01-01 of a civil date, and back (H. Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Seconds 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range of the JSON form. */
#define TS_MIN_SECONDS (-62135596800LL)
#define TS_MAX_SECONDS 253402300799LL

static int add_timestamp(ann_buf *out, int64_t secs, int64_t nanos, ann_err *err)
{
    if (secs < TS_MIN_SECONDS || secs > TS_MAX_SECONDS || nanos < 0 || nanos > 999999999)
        return ann_err_set(err, ANN_EINTERNAL, "timestamp out of the JSON range");
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    char s[64];
    int n = snprintf(s, sizeof s, "\"%04" PRId64 "-%02u-%02uT%02d:%02d:%02d", y, m, d,
                     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
    if (nanos % 1000000 == 0 && nanos)
        n += snprintf(s + n, sizeof s - (size_t)n, ".%03d", (int)(nanos / 1000000));
    else if (nanos % 1000 == 0 && nanos)
        n += snprintf(s + n, sizeof s - (size_t)n, ".%06d", (int)(nanos / 1000));
    else if (nanos)
        n += snprintf(s + n, sizeof s - (size_t)n, ".%09d", (int)nanos);
    snprintf(s + n, sizeof s - (size_t)n, "Z\"");
    add_str(out, s);
    return 0;
}

static void add_double(ann_buf *out, double v)
{
    char s[40];
    if (isnan(v))
        add_str(out, "\"NaN\"");
    else if (isinf(v))
        add_str(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else {
        snprintf(s, sizeof s, "%.17g", v);
        add_str(out, s);
    }
}

/* A value's wire type for its field type. */
static unsigned wire_type(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return 5;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 1;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return 2;
    default:
        return 0;
    }
}

static int to_json_msg(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                       ann_buf *out, int depth, ann_err *err);

static bool is_default(const ProtobufCFieldDescriptor *f, const ann_pb_field *v)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return false;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false; /* proto3 `optional`: presence is meaningful */
    switch (v->wt) {
    case 0:
    case 1:
    case 5:
        return v->v == 0;
    default:
        return f->type != PROTOBUF_C_TYPE_MESSAGE && v->n == 0;
    }
}

/* One value of field f (not a map), wire field v. */
static int to_json_value(const ProtobufCFieldDescriptor *f, const ann_pb_field *v, ann_buf *out,
                         int depth, ann_err *err)
{
    char s[40];
    if (v->wt != wire_type(f->type))
        return ann_err_set(err, ANN_EINTERNAL, "%s: wire type %u", f->name, v->wt);
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(s, sizeof s, "%" PRId32, (int32_t)(uint32_t)v->v);
        break;
    case PROTOBUF_C_TYPE_SINT32:
        snprintf(s, sizeof s, "%" PRId32,
                 (int32_t)(((uint32_t)v->v >> 1) ^ (uint32_t) - (int32_t)(v->v & 1)));
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(s, sizeof s, "%" PRIu32, (uint32_t)v->v);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(s, sizeof s, "\"%" PRId64 "\"", (int64_t)v->v);
        break;
    case PROTOBUF_C_TYPE_SINT64:
        snprintf(s, sizeof s, "\"%" PRId64 "\"", (int64_t)((v->v >> 1) ^ (~(v->v & 1) + 1)));
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(s, sizeof s, "\"%" PRIu64 "\"", v->v);
        break;
    case PROTOBUF_C_TYPE_FLOAT: {
        uint32_t bits = (uint32_t)v->v;
        float fl;
        memcpy(&fl, &bits, sizeof fl);
        add_double(out, fl);
        return 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double dv;
        memcpy(&dv, &v->v, sizeof dv);
        add_double(out, dv);
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        add_str(out, v->v ? "true" : "false");
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        if (strcmp(ed->name, "google.protobuf.NullValue") == 0) {
            add_str(out, "null");
            return 0;
        }
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(ed, (int)(int32_t)(uint32_t)v->v);
        if (ev)
            ann_pbjson_add_string(out, ev->name, strlen(ev->name));
        else {
            snprintf(s, sizeof s, "%" PRId32, (int32_t)(uint32_t)v->v);
            add_str(out, s);
        }
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING:
        ann_pbjson_add_string(out, (const char *)v->p, v->n);
        return 0;
    case PROTOBUF_C_TYPE_BYTES:
        add_base64(out, v->p, v->n);
        return 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return to_json_msg(f->descriptor, v->p, v->n, out, depth + 1, err);
    }
    add_str(out, s);
    return 0;
}

/* The last occurrence of field `num` in buf (proto's "last one wins"); false if none. */
static int find_last(const uint8_t *buf, size_t len, uint32_t num, ann_pb_field *out, bool *found,
                     ann_err *err)
{
    size_t pos = 0;
    ann_pb_field f;
    *found = false;
    while (pos < len) {
        if (!ann_pb_next(buf, len, &pos, &f))
            return ann_err_set(err, ANN_EINTERNAL, "malformed reply");
        if (f.num == num)
            *out = f, *found = true;
    }
    return 0;
}

/* A map entry's key (field 1) and value (field 2) as "key":value. */
static int to_json_map_entry(const ProtobufCMessageDescriptor *m, const ann_pb_field *e,
                             ann_buf *out, bool *first, int depth, ann_err *err)
{
    ann_pb_field k = {.num = 1, .wt = wire_type(m->fields[0].type)};
    ann_pb_field v = {.num = 2, .wt = wire_type(m->fields[1].type)};
    bool fk, fv;
    if (find_last(e->p, e->n, 1, &k, &fk, err) != 0 || find_last(e->p, e->n, 2, &v, &fv, err) != 0)
        return -1;
    if (!fk)
        k = (ann_pb_field){.num = 1, .wt = wire_type(m->fields[0].type)};
    if (!fv)
        v = (ann_pb_field){.num = 2, .wt = wire_type(m->fields[1].type)};
    if (!*first)
        ann_buf_add_byte(out, ',');
    *first = false;
    if (m->fields[0].type == PROTOBUF_C_TYPE_STRING) {
        if (k.wt != 2)
            return ann_err_set(err, ANN_EINTERNAL, "map key wire type");
        ann_pbjson_add_string(out, (const char *)k.p, k.n);
    } else {
        ann_buf_add_byte(out, '"');
        size_t at = out->len;
        if (to_json_value(&m->fields[0], &k, out, depth, err) != 0)
            return -1;
        if (out->len > at && out->data[at] == '"') /* 64-bit keys came quoted already */
            memmove(out->data + at, out->data + at + 1, --out->len - at), out->len--;
        ann_buf_add_byte(out, '"');
    }
    ann_buf_add_byte(out, ':');
    if (m->fields[1].type == PROTOBUF_C_TYPE_MESSAGE && !fv) {
        add_str(out, "{}");
        return 0;
    }
    return to_json_value(&m->fields[1], &v, out, depth, err);
}

static int ts_from_wire(const uint8_t *buf, size_t len, int64_t *secs, int64_t *nanos, ann_err *err)
{
    size_t pos = 0;
    ann_pb_field f;
    *secs = *nanos = 0;
    while (pos < len) {
        if (!ann_pb_next(buf, len, &pos, &f))
            return ann_err_set(err, ANN_EINTERNAL, "malformed timestamp");
        if (f.num == 1 && f.wt == 0)
            *secs = (int64_t)f.v;
        else if (f.num == 2 && f.wt == 0)
            *nanos = (int32_t)(uint32_t)f.v;
    }
    return 0;
}

/* google.protobuf.Value: its one set member, as a JSON value. */
static int to_json_any_value(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                             ann_buf *out, int depth, ann_err *err)
{
    size_t pos = 0;
    ann_pb_field f, last = {0};
    bool any = false;
    while (pos < len) {
        if (!ann_pb_next(buf, len, &pos, &f))
            return ann_err_set(err, ANN_EINTERNAL, "malformed Value");
        if (protobuf_c_message_descriptor_get_field(d, f.num))
            last = f, any = true;
    }
    if (!any) {
        add_str(out, "null");
        return 0;
    }
    return to_json_value(protobuf_c_message_descriptor_get_field(d, last.num), &last, out, depth,
                         err);
}

static int to_json_msg(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                       ann_buf *out, int depth, ann_err *err)
{
    if (depth > ANN_PBJSON_MAX_DEPTH)
        return ann_err_set(err, ANN_EINTERNAL, "reply nested too deeply");
    if (is_wkt(d, "google.protobuf.Timestamp")) {
        int64_t secs, nanos;
        if (ts_from_wire(buf, len, &secs, &nanos, err) != 0)
            return -1;
        return add_timestamp(out, secs, nanos, err);
    }
    if (is_wkt(d, "google.protobuf.Value"))
        return to_json_any_value(d, buf, len, out, depth, err);
    /* Struct (its `fields` map) and ListValue (its `values`) are their one field. */
    bool unwrap = is_wkt(d, "google.protobuf.Struct") || is_wkt(d, "google.protobuf.ListValue");
    bool first = true;
    if (!unwrap)
        ann_buf_add_byte(out, '{');
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            bool map = is_map(f), any = false, efirst = true;
            size_t pos = 0;
            ann_pb_field v;
            while (pos < len) {
                if (!ann_pb_next(buf, len, &pos, &v))
                    return ann_err_set(err, ANN_EINTERNAL, "malformed reply");
                if (v.num != f->id)
                    continue;
                if (!any) {
                    if (!unwrap)
                        add_key(out, &first, f->name);
                    ann_buf_add_byte(out, map ? '{' : '[');
                    any = true;
                }
                if (map) {
                    if (v.wt != 2)
                        return ann_err_set(err, ANN_EINTERNAL, "%s: wire type", f->name);
                    if (to_json_map_entry(f->descriptor, &v, out, &efirst, depth + 1, err) != 0)
                        return -1;
                    continue;
                }
                if (v.wt == 2 && wire_type(f->type) != 2) { /* packed */
                    size_t pp = 0;
                    while (pp < v.n) {
                        ann_pb_field e = {.num = f->id, .wt = wire_type(f->type)};
                        if (e.wt == 0) {
                            if (!ann_pb_varint(v.p, v.n, &pp, &e.v))
                                return ann_err_set(err, ANN_EINTERNAL, "malformed packed");
                        } else {
                            size_t w = e.wt == 1 ? 8 : 4;
                            if (v.n - pp < w)
                                return ann_err_set(err, ANN_EINTERNAL, "malformed packed");
                            e.v = 0;
                            for (size_t b = 0; b < w; b++)
                                e.v |= (uint64_t)v.p[pp + b] << (8 * b);
                            pp += w;
                        }
                        if (!efirst)
                            ann_buf_add_byte(out, ',');
                        efirst = false;
                        if (to_json_value(f, &e, out, depth, err) != 0)
                            return -1;
                    }
                    continue;
                }
                if (!efirst)
                    ann_buf_add_byte(out, ',');
                efirst = false;
                if (to_json_value(f, &v, out, depth, err) != 0)
                    return -1;
            }
            if (any)
                ann_buf_add_byte(out, map ? '}' : ']');
            else if (unwrap)
                add_str(out, map ? "{}" : "[]");
            continue;
        }
        ann_pb_field v;
        bool found;
        if (find_last(buf, len, f->id, &v, &found, err) != 0)
            return -1;
        if (!found || is_default(f, &v))
            continue;
        add_key(out, &first, f->name);
        if (to_json_value(f, &v, out, depth, err) != 0)
            return -1;
    }
    if (!unwrap)
        ann_buf_add_byte(out, '}');
    return 0;
}

int ann_pbjson_to_json(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                       ann_buf *out, ann_err *err)
{
    return to_json_msg(d, buf, len, out, 0, err);
}

/* ---------- JSON input ---------- */

typedef struct in_ctx {
    const ann_pbjson_in *opt;
    ann_err *err;
} in_ctx;

static int bad(in_ctx *c, const char *path, const char *why)
{
    return ann_err_set(c->err, ANN_EINVAL, "%s: %s", path, why);
}

static const char *jtype(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* An integer from a JSON number (integral) or a decimal string, within [lo, hi] (signed)
 * or [0, uhi] (unsigned). */
static int get_int(in_ctx *c, const json_t *j, const char *path, bool is_unsigned, int64_t lo,
                   int64_t hi, uint64_t uhi, uint64_t *out)
{
    char why[96];
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        if (is_unsigned ? (v < 0 || (uint64_t)v > uhi) : (v < lo || v > hi))
            return bad(c, path, "out of range");
        *out = (uint64_t)v;
        return 0;
    }
    if (json_is_real(j)) {
        double v = json_real_value(j);
        if (v != floor(v))
            return bad(c, path, "not an integer");
        if (is_unsigned ? (v < 0 || v >= 18446744073709551616.0 || (uint64_t)v > uhi)
                        : (v < (double)lo || v >= 9223372036854775808.0 || (int64_t)v > hi))
            return bad(c, path, "out of range");
        *out = is_unsigned ? (uint64_t)v : (uint64_t)(int64_t)v;
        return 0;
    }
    if (!json_is_string(j)) {
        snprintf(why, sizeof why, "want an integer, got %s", jtype(j));
        return bad(c, path, why);
    }
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (n == 0 || n > 24 || strlen(s) != n || isspace((unsigned char)s[0]))
        return bad(c, path, "not an integer");
    char *end;
    errno = 0;
    if (is_unsigned) {
        if (s[0] == '-')
            return bad(c, path, "out of range");
        unsigned long long v = strtoull(s, &end, 10);
        if (*end)
            return bad(c, path, "not an integer");
        if (errno || v > uhi)
            return bad(c, path, "out of range");
        *out = v;
    } else {
        long long v = strtoll(s, &end, 10);
        if (*end)
            return bad(c, path, "not an integer");
        if (errno || v < lo || v > hi)
            return bad(c, path, "out of range");
        *out = (uint64_t)v;
    }
    return 0;
}

static int get_double(in_ctx *c, const json_t *j, const char *path, double *out)
{
    if (json_is_number(j)) {
        *out = json_number_value(j);
        return 0;
    }
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        if (strcmp(s, "NaN") == 0)
            *out = NAN;
        else if (strcmp(s, "Infinity") == 0)
            *out = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            *out = -INFINITY;
        else {
            char *end;
            if (!*s || isspace((unsigned char)s[0]))
                return bad(c, path, "not a number");
            *out = strtod(s, &end);
            if (*end || isnan(*out) || isinf(*out))
                return bad(c, path, "not a number");
        }
        return 0;
    }
    char why[64];
    snprintf(why, sizeof why, "want a number, got %s", jtype(j));
    return bad(c, path, why);
}

static int b64val(int ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

static int get_base64(in_ctx *c, const json_t *j, const char *path, ann_buf *out)
{
    if (!json_is_string(j))
        return bad(c, path, "want a base64 string");
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    while (n && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return bad(c, path, "not base64");
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0)
            return bad(c, path, "not base64");
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            ann_buf_add_byte(out, (uint8_t)(acc >> bits));
        }
    }
    return 0;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM). */
static int parse_rfc3339(const char *s, int64_t *secs, int32_t *nanos)
{
    int y, mo, d, h, mi, se, oh = 0, om = 0;
    size_t n = strlen(s);
    if (n < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
        return -1;
    const char *p = s + 19;
    int32_t ns = 0;
    if (*p == '.') {
        int k = 0;
        p++;
        while (isdigit((unsigned char)*p)) {
            if (++k > 9)
                return -1;
            ns = ns * 10 + (*p++ - '0');
        }
        if (k == 0)
            return -1;
        for (; k < 9; k++)
            ns *= 10;
    }
    int sign = 0;
    if (*p == 'Z' || *p == 'z')
        p++;
    else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        p += 6;
    } else
        return -1;
    if (*p || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60 || y < 1)
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return -1;
    if (se == 60) /* a leap second: smeared onto the next one, as protobuf's parsers do */
        se = 59, ns = 999999999;
    int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
    t -= sign * (oh * 3600 + om * 60);
    if (t < TS_MIN_SECONDS || t > TS_MAX_SECONDS)
        return -1;
    *secs = t;
    *nanos = ns;
    return 0;
}

static int from_json_msg(in_ctx *c, const ProtobufCMessageDescriptor *d, const json_t *j,
                         const char *path, ann_buf *out, int depth);

static void add_fixed(ann_buf *out, uint64_t v, size_t w)
{
    for (size_t i = 0; i < w; i++)
        ann_buf_add_byte(out, (uint8_t)(v >> (8 * i)));
}

/* One value of field f (not a map: a map's entries come here as their two fields). */
static int from_json_value(in_ctx *c, const ProtobufCFieldDescriptor *f, const json_t *j,
                           const char *path, ann_buf *out, int depth)
{
    uint64_t u;
    double dv = 0;
    char why[160];
    bool loose = c->opt && c->opt->strings_for_all;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (get_int(c, j, path, false, INT32_MIN, INT32_MAX, 0, &u) != 0)
            return -1;
        if (f->type == PROTOBUF_C_TYPE_SFIXED32) {
            ann_buf_add_tag(out, f->id, 5);
            add_fixed(out, (uint32_t)(int32_t)(int64_t)u, 4);
        } else if (f->type == PROTOBUF_C_TYPE_SINT32) {
            int32_t v = (int32_t)(int64_t)u;
            ann_buf_add_tag(out, f->id, 0);
            ann_buf_add_varint(out, (uint32_t)((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
        } else {
            ann_buf_add_tag(out, f->id, 0);
            ann_buf_add_varint(out, u); /* negative: sign-extended to 10 bytes */
        }
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (get_int(c, j, path, false, INT64_MIN, INT64_MAX, 0, &u) != 0)
            return -1;
        if (f->type == PROTOBUF_C_TYPE_SFIXED64) {
            ann_buf_add_tag(out, f->id, 1);
            add_fixed(out, u, 8);
        } else if (f->type == PROTOBUF_C_TYPE_SINT64) {
            int64_t v = (int64_t)u;
            ann_buf_add_tag(out, f->id, 0);
            ann_buf_add_varint(out, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
        } else {
            ann_buf_add_tag(out, f->id, 0);
            ann_buf_add_varint(out, u);
        }
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (get_int(c, j, path, true, 0, 0, UINT32_MAX, &u) != 0)
            return -1;
        ann_buf_add_tag(out, f->id, f->type == PROTOBUF_C_TYPE_FIXED32 ? 5 : 0);
        if (f->type == PROTOBUF_C_TYPE_FIXED32)
            add_fixed(out, u, 4);
        else
            ann_buf_add_varint(out, u);
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (get_int(c, j, path, true, 0, 0, UINT64_MAX, &u) != 0)
            return -1;
        ann_buf_add_tag(out, f->id, f->type == PROTOBUF_C_TYPE_FIXED64 ? 1 : 0);
        if (f->type == PROTOBUF_C_TYPE_FIXED64)
            add_fixed(out, u, 8);
        else
            ann_buf_add_varint(out, u);
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (get_double(c, j, path, &dv) != 0)
            return -1;
        if (f->type == PROTOBUF_C_TYPE_FLOAT) {
            float fl = (float)dv;
            uint32_t bits;
            memcpy(&bits, &fl, sizeof bits);
            ann_buf_add_tag(out, f->id, 5);
            add_fixed(out, bits, 4);
        } else {
            uint64_t bits;
            memcpy(&bits, &dv, sizeof bits);
            ann_buf_add_tag(out, f->id, 1);
            add_fixed(out, bits, 8);
        }
        return 0;
    case PROTOBUF_C_TYPE_BOOL: {
        int b = -1;
        if (json_is_boolean(j))
            b = json_is_true(j);
        else if (loose && json_is_string(j))
            b = strcmp(json_string_value(j), "true") == 0    ? 1
                : strcmp(json_string_value(j), "false") == 0 ? 0
                                                             : -1;
        if (b < 0) {
            snprintf(why, sizeof why, "want true or false, got %s", jtype(j));
            return bad(c, path, why);
        }
        ann_buf_add_tag(out, f->id, 0);
        ann_buf_add_varint(out, (uint64_t)b);
        return 0;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        int64_t v;
        if (json_is_string(j)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(j));
            if (ev) {
                v = ev->value;
            } else {
                /* a number spelled as a string (a query parameter) */
                if (!loose || get_int(c, j, path, false, INT32_MIN, INT32_MAX, 0, &u) != 0) {
                    ann_err_clear(c->err);
                    snprintf(why, sizeof why, "not a %s", ed->name);
                    return bad(c, path, why);
                }
                v = (int64_t)u;
            }
        } else if (json_is_integer(j)) {
            if (get_int(c, j, path, false, INT32_MIN, INT32_MAX, 0, &u) != 0)
                return -1;
            v = (int64_t)u;
        } else {
            snprintf(why, sizeof why, "want a %s name, got %s", ed->name, jtype(j));
            return bad(c, path, why);
        }
        ann_buf_add_tag(out, f->id, 0);
        ann_buf_add_varint(out, (uint64_t)v);
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(j)) {
            snprintf(why, sizeof why, "want a string, got %s", jtype(j));
            return bad(c, path, why);
        }
        ann_buf_add_len_field(out, f->id, json_string_value(j), json_string_length(j));
        return 0;
    case PROTOBUF_C_TYPE_BYTES: {
        ann_buf b = ANN_BUF_INIT;
        int rc = get_base64(c, j, path, &b);
        if (rc == 0)
            ann_buf_add_len_field(out, f->id, b.data, b.len);
        ann_buf_release(&b);
        return rc;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ann_buf b = ANN_BUF_INIT;
        int rc = from_json_msg(c, f->descriptor, j, path, &b, depth + 1);
        if (rc == 0)
            ann_buf_add_len_field(out, f->id, b.data, b.len);
        ann_buf_release(&b);
        return rc;
    }
    }
    return bad(c, path, "unsupported field type");
}

static void sub_path(char *out, size_t cap, const char *path, const char *key)
{
    if (path && *path)
        snprintf(out, cap, "%s.%s", path, key);
    else
        snprintf(out, cap, "%s", key);
}

/* google.protobuf.Value from any JSON value. */
static int from_json_any(in_ctx *c, const ProtobufCMessageDescriptor *d, const json_t *j,
                         const char *path, ann_buf *out, int depth)
{
    const char *member;
    switch (json_typeof(j)) {
    case JSON_NULL:
        ann_buf_add_tag(out, 1, 0);
        ann_buf_add_varint(out, 0);
        return 0;
    case JSON_INTEGER:
    case JSON_REAL:
        member = "number_value";
        break;
    case JSON_STRING:
        member = "string_value";
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        member = "bool_value";
        break;
    case JSON_OBJECT:
        member = "struct_value";
        break;
    default:
        member = "list_value";
        break;
    }
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, member);
    if (!f)
        return bad(c, path, "bad google.protobuf.Value");
    return from_json_value(c, f, j, path, out, depth);
}

static int from_json_msg(in_ctx *c, const ProtobufCMessageDescriptor *d, const json_t *j,
                         const char *path, ann_buf *out, int depth)
{
    char why[160], sp[PATH_MAX_LEN];
    if (depth > ANN_PBJSON_MAX_DEPTH)
        return bad(c, path, "nested too deeply");
    if (is_wkt(d, "google.protobuf.Value"))
        return from_json_any(c, d, j, path, out, depth);
    if (is_wkt(d, "google.protobuf.Timestamp")) {
        int64_t secs;
        int32_t nanos;
        if (!json_is_string(j) || parse_rfc3339(json_string_value(j), &secs, &nanos) != 0)
            return bad(c, path,
                       "want an RFC 3339 time (2026-12-07T12:00:00.5Z) between "
                       "0001-01-01 and 9999-12-31");
        if (secs) {
            ann_buf_add_tag(out, 1, 0);
            ann_buf_add_varint(out, (uint64_t)secs);
        }
        if (nanos) {
            ann_buf_add_tag(out, 2, 0);
            ann_buf_add_varint(out, (uint64_t)nanos);
        }
        return 0;
    }
    if (is_wkt(d, "google.protobuf.ListValue")) {
        if (!json_is_array(j)) {
            snprintf(why, sizeof why, "want an array, got %s", jtype(j));
            return bad(c, path, why);
        }
        const ProtobufCFieldDescriptor *f = &d->fields[0];
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e)
        {
            snprintf(sp, sizeof sp, "%s[%zu]", path, i);
            if (from_json_value(c, f, e, sp, out, depth) != 0)
                return -1;
        }
        return 0;
    }
    if (!json_is_object(j)) {
        snprintf(why, sizeof why, "want an object, got %s", jtype(j));
        return bad(c, path, why);
    }
    bool is_struct = is_wkt(d, "google.protobuf.Struct");
    unsigned oneof_seen[8];
    const char *oneof_key[8];
    size_t n_oneof = 0;
    uint64_t seen = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        const ProtobufCFieldDescriptor *f = is_struct ? &d->fields[0] : ann_pbjson_field(d, key);
        sub_path(sp, sizeof sp, path, key);
        if (!f)
            return bad(c, sp, "unknown field");
        if (!is_struct) { /* one field under two spellings (logId and log_id) */
            unsigned idx = (unsigned)(f - d->fields);
            if (idx < 64 && (seen >> idx) & 1)
                return bad(c, sp, "given twice (under its JSON and its proto name)");
            if (idx < 64)
                seen |= 1ull << idx;
        }
        if (is_struct) { /* every key is an entry of the `fields` map */
            const ProtobufCMessageDescriptor *me = f->descriptor;
            ann_buf e = ANN_BUF_INIT;
            ann_buf_add_len_field(&e, 1, key, strlen(key));
            int rc = from_json_value(c, &me->fields[1], v, sp, &e, depth);
            if (rc == 0)
                ann_buf_add_len_field(out, f->id, e.data, e.len);
            ann_buf_release(&e);
            if (rc != 0)
                return -1;
            continue;
        }
        if (json_is_null(v) &&
            !(f->type == PROTOBUF_C_TYPE_MESSAGE && is_wkt(f->descriptor, "google.protobuf.Value")))
            continue; /* null: the default */
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            for (size_t k = 0; k < n_oneof; k++)
                if (oneof_seen[k] == f->quantifier_offset) {
                    snprintf(why, sizeof why, "only one of this and %s may be set", oneof_key[k]);
                    return bad(c, sp, why);
                }
            if (n_oneof < sizeof oneof_seen / sizeof oneof_seen[0]) {
                oneof_key[n_oneof] = key;
                oneof_seen[n_oneof++] = f->quantifier_offset;
            }
        }
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            if (from_json_value(c, f, v, sp, out, depth) != 0)
                return -1;
            continue;
        }
        if (is_map(f)) {
            if (!json_is_object(v)) {
                snprintf(why, sizeof why, "want an object, got %s", jtype(v));
                return bad(c, sp, why);
            }
            const ProtobufCMessageDescriptor *me = f->descriptor;
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv)
            {
                char ep[PATH_MAX_LEN + 64];
                snprintf(ep, sizeof ep, "%s[%s]", sp, mk);
                ann_buf e = ANN_BUF_INIT;
                json_t *kj = json_string(mk);
                int rc = from_json_value(c, &me->fields[0], kj, ep, &e, depth);
                json_decref(kj);
                if (rc == 0 && !json_is_null(mv))
                    rc = from_json_value(c, &me->fields[1], mv, ep, &e, depth);
                if (rc == 0)
                    ann_buf_add_len_field(out, f->id, e.data, e.len);
                ann_buf_release(&e);
                if (rc != 0)
                    return -1;
            }
            continue;
        }
        if (!json_is_array(v)) {
            snprintf(why, sizeof why, "want an array, got %s", jtype(v));
            return bad(c, sp, why);
        }
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char ep[PATH_MAX_LEN + 64];
            snprintf(ep, sizeof ep, "%s[%zu]", sp, i);
            if (json_is_null(e))
                return bad(c, ep, "null is not allowed in a list");
            if (from_json_value(c, f, e, ep, out, depth) != 0)
                return -1;
        }
    }
    return 0;
}

int ann_pbjson_from_json(const ProtobufCMessageDescriptor *d, const json_t *j,
                         const ann_pbjson_in *opt, const char *prefix, ann_buf *out, ann_err *err)
{
    in_ctx c = {.opt = opt, .err = err};
    return from_json_msg(&c, d, j, prefix ? prefix : "", out, 0);
}

int ann_pbjson_from_text(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                         ann_buf *out, ann_err *err)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!j)
        return ann_err_set(err, ANN_EINVAL, "body: not JSON: %s (line %d, column %d)", je.text,
                           je.line, je.column);
    int rc;
    if (!json_is_object(j))
        rc = ann_err_set(err, ANN_EINVAL, "body: want a JSON object");
    else
        rc = ann_pbjson_from_json(d, j, NULL, NULL, out, err);
    json_decref(j);
    return rc;
}
