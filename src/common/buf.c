#include "common/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "annals: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ann_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *ann_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *ann_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

void ann_buf_reserve(ann_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    b->data = ann_xrealloc(b->data, cap);
    b->cap = cap;
}

void ann_buf_add(ann_buf *b, const void *p, size_t n)
{
    if (!n)
        return;
    ann_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void ann_buf_add_byte(ann_buf *b, uint8_t c)
{
    ann_buf_reserve(b, 1);
    b->data[b->len++] = c;
}

void ann_buf_add_varint(ann_buf *b, uint64_t v)
{
    ann_buf_reserve(b, 10);
    while (v >= 0x80) {
        b->data[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->data[b->len++] = (uint8_t)v;
}

void ann_buf_add_tag(ann_buf *b, uint32_t field, unsigned wire_type)
{
    ann_buf_add_varint(b, (uint64_t)field << 3 | wire_type);
}

void ann_buf_add_len_field(ann_buf *b, uint32_t field, const void *p, size_t n)
{
    ann_buf_add_tag(b, field, 2);
    ann_buf_add_varint(b, n);
    ann_buf_add(b, p, n);
}

void ann_buf_release(ann_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
