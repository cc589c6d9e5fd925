#include "api/wire.h"

#include <string.h>

static bool read_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return false;
        uint8_t c = buf[(*pos)++];
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static const ProtobufCFieldDescriptor *field_by_number(const ProtobufCMessageDescriptor *d,
                                                       uint32_t num)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].id == num)
            return &d->fields[i];
    return NULL;
}

bool ann_wire_depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                       int max_depth)
{
    if (max_depth < 0)
        return false;
    size_t pos = 0;
    while (pos < len) {
        uint64_t key, v;
        if (!read_varint(buf, len, &pos, &key))
            return false;
        uint32_t num = (uint32_t)(key >> 3);
        if (num == 0 || key >> 3 > 0x1FFFFFFF)
            return false;
        switch (key & 7) {
        case 0:
            if (!read_varint(buf, len, &pos, &v))
                return false;
            break;
        case 1:
            if (len - pos < 8)
                return false;
            pos += 8;
            break;
        case 5:
            if (len - pos < 4)
                return false;
            pos += 4;
            break;
        case 2: {
            if (!read_varint(buf, len, &pos, &v) || v > len - pos)
                return false;
            const ProtobufCFieldDescriptor *f = field_by_number(d, num);
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !ann_wire_depth_ok(f->descriptor, buf + pos, (size_t)v, max_depth - 1))
                return false;
            pos += (size_t)v;
            break;
        }
        default: /* groups (3, 4) and reserved types are refused */
            return false;
        }
    }
    return true;
}

#define NS 1000000000LL

int ann_wire_ts_to_ns(const Annals__Wire__V1__Timestamp *ts, int64_t *out)
{
    if (ts->nanos < 0 || ts->nanos >= NS)
        return -1;
    /* INT64 ns spans 1677-09-21 .. 2262-04-11; keep whole seconds strictly inside. */
    if (ts->seconds <= INT64_MIN / NS || ts->seconds >= INT64_MAX / NS)
        return -1;
    *out = ts->seconds * NS + ts->nanos;
    return 0;
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
    while (pos < len) {
        uint64_t key, v;
        if (!read_varint(buf, len, &pos, &key))
            break;
        switch (key & 7) {
        case 0:
            if (!read_varint(buf, len, &pos, &v))
                return found;
            break;
        case 1:
            if (len - pos < 8)
                return found;
            pos += 8;
            break;
        case 5:
            if (len - pos < 4)
                return found;
            pos += 4;
            break;
        case 2:
            if (!read_varint(buf, len, &pos, &v) || v > len - pos)
                return found;
            if (key >> 3 == field) {
                *p = buf + pos;
                *n = (size_t)v;
                found = true;
            }
            pos += (size_t)v;
            break;
        default:
            return found;
        }
    }
    return found;
}
