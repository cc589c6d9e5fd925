#include "api/wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "domain/limits.h"
#include "domain/pbread.h"
#include "domain/rules.h"
#include "domain/text.h"

static const ProtobufCFieldDescriptor *field_by_number(const ProtobufCMessageDescriptor *d,
                                                       uint32_t num)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].id == num)
            return &d->fields[i];
    return NULL;
}

static size_t limit_for(const ann_wire_limit *limits, const ProtobufCMessageDescriptor *d,
                        uint32_t field)
{
    for (; limits && limits->msg; limits++)
        if (limits->msg == d && limits->field == field)
            return limits->max;
    return SIZE_MAX;
}

static int precheck_fields(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                           int depth_left, const ann_wire_limit *limits, size_t *counts,
                           ann_err *err);

static int precheck(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                    int depth_left, const ann_wire_limit *limits, ann_err *err)
{
    /* Occurrences per field index: on the stack for every message of ours, on the heap
     * for a descriptor with more fields (never silently uncounted). */
    size_t stack_counts[32] = {0};
    size_t *counts = d->n_fields <= 32 ? stack_counts : ann_xcalloc(d->n_fields, sizeof *counts);
    int rc = precheck_fields(d, buf, len, depth_left, limits, counts, err);
    if (counts != stack_counts)
        free(counts);
    return rc;
}

static int precheck_fields(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                           int depth_left, const ann_wire_limit *limits, size_t *counts,
                           ann_err *err)
{
    size_t unknown = 0;
    size_t pos = 0;
    if (depth_left < 0)
        return ann_err_set(err, ANN_EINVAL, "request: nested more than %d levels deep",
                           ANN_MAX_NESTING);
    ann_pb_field pf;
    while (pos < len) {
        if (!ann_pb_next(buf, len, &pos, &pf))
            goto bad;
        const ProtobufCFieldDescriptor *f = field_by_number(d, pf.num);
        if (!f) {
            if (++unknown > ANN_WIRE_MAX_UNKNOWN)
                return ann_err_set(err, ANN_EINVAL, "request: more than %d unknown fields in %s",
                                   ANN_WIRE_MAX_UNKNOWN, d->short_name);
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t i = (size_t)(f - d->fields);
            if (++counts[i] > limit_for(limits, d, pf.num))
                return ann_err_set(err, ANN_EINVAL, "%s: more than %zu in one %s", f->name,
                                   limit_for(limits, d, pf.num), d->short_name);
        }
        if (pf.wt == 2 && f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
            precheck(f->descriptor, pf.p, pf.n, depth_left - 1, limits, err) != 0)
            return -1;
    }
    return 0;
bad:
    return ann_err_set(err, ANN_EINVAL, "request: not a valid %s", d->short_name);
}

int ann_wire_precheck(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                      int max_depth, const ann_wire_limit *limits, ann_err *err)
{
    return precheck(d, buf, len, max_depth, limits, err);
}

static const char *value_check(const uint8_t *buf, size_t len, int depth_left);

static const char *struct_check(const uint8_t *buf, size_t len, int depth_left)
{
    size_t pos = 0;
    ann_pb_field f;
    if (depth_left < 0)
        return "nested too deeply";
    while (pos < len) {
        if (!ann_pb_next(buf, len, &pos, &f))
            return "not a valid Struct";
        if (f.num != 1 || f.wt != 2)
            return "unknown field in a Struct";
        /* FieldsEntry { string key = 1; Value value = 2; } */
        size_t ep = 0;
        ann_pb_field g;
        bool has_value = false;
        while (ep < f.n) {
            if (!ann_pb_next(f.p, f.n, &ep, &g))
                return "not a valid Struct field";
            if (g.num == 1 && g.wt == 2) {
                if (!ann_utf8_valid((const char *)g.p, g.n))
                    return "a key is not valid UTF-8";
            } else if (g.num == 2 && g.wt == 2) {
                const char *why = value_check(g.p, g.n, depth_left - 1);
                if (why)
                    return why;
                has_value = true;
            } else {
                return "unknown field in a Struct field";
            }
        }
        if (!has_value)
            return "a value is not set";
    }
    return NULL;
}

static const char *value_check(const uint8_t *buf, size_t len, int depth_left)
{
    size_t pos = 0;
    ann_pb_field f;
    bool set = false;
    if (depth_left < 0)
        return "nested too deeply";
    while (pos < len) {
        if (!ann_pb_next(buf, len, &pos, &f))
            return "not a valid Value";
        const char *why = NULL;
        switch (f.num) {
        case 1: /* null_value: the enum NullValue has one value, 0 */
            if (f.wt != 0 || f.v != 0)
                return "bad null_value";
            break;
        case 2: { /* number_value */
            if (f.wt != 1)
                return "bad number_value";
            double d;
            memcpy(&d, &f.v, sizeof d);
            if (!isfinite(d))
                return "number is not finite";
            break;
        }
        case 3:
            if (f.wt != 2)
                return "bad string_value";
            if (!ann_utf8_valid((const char *)f.p, f.n))
                return "a string is not valid UTF-8";
            break;
        case 4:
            if (f.wt != 0)
                return "bad bool_value";
            break;
        case 5:
            if (f.wt != 2)
                return "bad struct_value";
            why = struct_check(f.p, f.n, depth_left - 1);
            break;
        case 6: { /* list_value: ListValue { repeated Value values = 1; } */
            if (f.wt != 2)
                return "bad list_value";
            if (depth_left < 1)
                return "nested too deeply";
            size_t lp = 0;
            ann_pb_field g;
            while (lp < f.n && !why) {
                if (!ann_pb_next(f.p, f.n, &lp, &g))
                    return "not a valid ListValue";
                if (g.num != 1 || g.wt != 2)
                    return "unknown field in a ListValue";
                why = value_check(g.p, g.n, depth_left - 2);
            }
            break;
        }
        default:
            return "unknown field in a Value";
        }
        if (why)
            return why;
        set = true;
    }
    return set ? NULL : "a value is not set";
}

const char *ann_wire_struct_check(const uint8_t *buf, size_t len, int max_depth)
{
    return struct_check(buf, len, max_depth);
}

#define NS 1000000000LL

int ann_wire_ts_to_ns(const Annals__Wire__V1__Timestamp *ts, int64_t *out)
{
    return ann_time_to_ns(ts->seconds, ts->nanos, out);
}

void ann_wire_add_ts(ann_buf *b, uint32_t field, int64_t ns)
{
    int64_t s = ns / NS, n = ns % NS;
    if (n < 0) {
        n += NS;
        s -= 1;
    }
    uint8_t tmp[24];
    ann_buf t = {tmp, 0, sizeof tmp};
    if (s)
        ann_buf_add_tag(&t, 1, 0), ann_buf_add_varint(&t, (uint64_t)s);
    if (n)
        ann_buf_add_tag(&t, 2, 0), ann_buf_add_varint(&t, (uint64_t)n);
    ann_buf_add_len_field(b, field, tmp, t.len);
}

bool ann_wire_find_bytes(const uint8_t *buf, size_t len, uint32_t field, const uint8_t **p,
                         size_t *n)
{
    size_t pos = 0;
    bool found = false;
    ann_pb_field f;
    while (pos < len && ann_pb_next(buf, len, &pos, &f)) {
        if (f.num == field && f.wt == 2) {
            *p = f.p;
            *n = f.n;
            found = true;
        }
    }
    return found;
}
