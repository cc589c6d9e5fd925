/* The packed entries of a log_batches row: see batch_codec.h. */
#include "archive/batch_codec.h"

#include <string.h>

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

size_t ann_batch_size(const ann_entry *e, size_t n)
{
    size_t s = 1;
    for (size_t i = 0; i < n; i++)
        s += ANN_BATCH_ENTRY_FIXED + e[i].insert_id_len + e[i].body_len;
    return s;
}

size_t ann_batch_encode(const ann_entry *e, size_t n, uint8_t *out)
{
    uint8_t *p = out;
    *p++ = ANN_BATCH_VERSION;
    for (size_t i = 0; i < n; i++) {
        put64(p, (uint64_t)e[i].time_ns);
        put64(p + 8, (uint64_t)e[i].insert_time_ns);
        put32(p + 16, (uint32_t)e[i].severity);
        put32(p + 20, e[i].flags);
        put32(p + 24, (uint32_t)e[i].insert_id_len);
        p += 28;
        if (e[i].insert_id_len)
            memcpy(p, e[i].insert_id, e[i].insert_id_len);
        p += e[i].insert_id_len;
        put32(p, (uint32_t)e[i].body_len);
        p += 4;
        if (e[i].body_len)
            memcpy(p, e[i].body, e[i].body_len);
        p += e[i].body_len;
    }
    return (size_t)(p - out);
}

int ann_batch_reader_init(ann_batch_reader *r, const uint8_t *blob, size_t len, uint64_t first_id,
                          size_t n)
{
    memset(r, 0, sizeof *r);
    if (len < 1 || blob[0] != ANN_BATCH_VERSION)
        return -1;
    r->p = blob + 1;
    r->end = blob + len;
    r->next_id = first_id;
    r->left = n;
    return 0;
}

int ann_batch_next(ann_batch_reader *r, ann_entry *e)
{
    if (r->left == 0)
        return r->p == r->end ? 0 : -1;
    size_t room = (size_t)(r->end - r->p);
    if (room < 28)
        return -1;
    memset(e, 0, sizeof *e);
    e->entry_id = r->next_id;
    e->time_ns = (int64_t)get64(r->p);
    e->insert_time_ns = (int64_t)get64(r->p + 8);
    e->severity = (int32_t)get32(r->p + 16);
    e->flags = get32(r->p + 20);
    size_t il = get32(r->p + 24);
    r->p += 28;
    room -= 28;
    if (il > room || room - il < 4)
        return -1;
    e->insert_id = (const char *)r->p;
    e->insert_id_len = il;
    r->p += il;
    room -= il;
    size_t bl = get32(r->p);
    r->p += 4;
    room -= 4;
    if (bl > room)
        return -1;
    e->body = r->p;
    e->body_len = bl;
    r->p += bl;
    r->next_id++;
    r->left--;
    return 1;
}
