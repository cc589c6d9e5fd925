/*
 * ann_buf: a growable byte buffer. Invariant: data is NULL when cap is 0; len <= cap.
 * Allocation failure aborts (a log service that cannot allocate cannot keep its
 * promises; it must restart and recover from its durable state).
 */
#ifndef ANN_COMMON_BUF_H
#define ANN_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ann_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} ann_buf;

#define ANN_BUF_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void ann_buf_reserve(ann_buf *b, size_t extra);
void ann_buf_add(ann_buf *b, const void *p, size_t n);
void ann_buf_add_byte(ann_buf *b, uint8_t c);
/* Protobuf wire helpers. */
void ann_buf_add_varint(ann_buf *b, uint64_t v);
void ann_buf_add_tag(ann_buf *b, uint32_t field, unsigned wire_type);
void ann_buf_add_len_field(ann_buf *b, uint32_t field, const void *p, size_t n);
void ann_buf_release(ann_buf *b);

/* Aborting allocators. */
void *ann_xmalloc(size_t n);
void *ann_xcalloc(size_t n, size_t size);
void *ann_xrealloc(void *p, size_t n);

#endif
