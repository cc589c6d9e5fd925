/*
 * A reader of protobuf wire format, with no allocation and no trust in its input: every
 * scanner of untrusted or stored protobuf bytes in annals reads with ann_pb_next(). It
 * refuses groups, reserved wire types, field number 0 and anything past the end.
 */
#ifndef ANN_DOMAIN_PBREAD_H
#define ANN_DOMAIN_PBREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One field: its number, wire type and payload. */
typedef struct ann_pb_field {
    uint32_t num;
    unsigned wt;
    uint64_t v;       /* varint, or fixed64/fixed32 bits */
    const uint8_t *p; /* length-delimited payload */
    size_t n;
} ann_pb_field;

/* Reads a varint at *pos; false past the end or beyond 10 bytes. */
bool ann_pb_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *out);

/* Reads the field at *pos and advances; false on malformed input. */
bool ann_pb_next(const uint8_t *buf, size_t len, size_t *pos, ann_pb_field *f);

#endif
