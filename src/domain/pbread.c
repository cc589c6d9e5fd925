#include "domain/pbread.h"

bool ann_pb_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *out)
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

bool ann_pb_next(const uint8_t *buf, size_t len, size_t *pos, ann_pb_field *f)
{
    uint64_t key;
    if (!ann_pb_varint(buf, len, pos, &key) || key >> 3 == 0 || key >> 3 > 0x1FFFFFFF)
        return false;
    f->num = (uint32_t)(key >> 3);
    f->wt = (unsigned)(key & 7);
    switch (f->wt) {
    case 0:
        return ann_pb_varint(buf, len, pos, &f->v);
    case 1:
        if (len - *pos < 8)
            return false;
        f->v = 0;
        for (int i = 7; i >= 0; i--)
            f->v = f->v << 8 | buf[*pos + (size_t)i];
        *pos += 8;
        return true;
    case 5:
        if (len - *pos < 4)
            return false;
        f->v = 0;
        for (int i = 3; i >= 0; i--)
            f->v = f->v << 8 | buf[*pos + (size_t)i];
        *pos += 4;
        return true;
    case 2:
        if (!ann_pb_varint(buf, len, pos, &f->v) || f->v > len - *pos)
            return false;
        f->p = buf + *pos;
        f->n = (size_t)f->v;
        *pos += f->n;
        return true;
    default:
        return false;
    }
}
