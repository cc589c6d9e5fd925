/*
 * Wire helpers for the gRPC surface: bounded nesting checks on untrusted protobuf
 * bytes, timestamps, and a scanner for fields of bytes we wrote ourselves.
 */
#ifndef ANN_API_WIRE_H
#define ANN_API_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "wire.pb-c.h"

/*
 * Checks that `buf` is well-formed protobuf for message `d` as far as framing goes and
 * that sub-messages nest no deeper than max_depth. protobuf-c's unpacker recurses
 * without a limit, so this runs first on every request: a deeply nested json_payload
 * must be refused, not overflow the stack. Iterative per level, recursive only for
 * sub-messages (at most max_depth frames).
 */
bool ann_wire_depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                       int max_depth);

/* Timestamp <-> ns since the Unix epoch. from_ts fails (-1) on nanos outside
 * 0..999999999 or a time outside the int64 ns range (years 1678..2261). */
int ann_wire_ts_to_ns(const Annals__Wire__V1__Timestamp *ts, int64_t *out);
void ann_wire_add_ts(ann_buf *b, uint32_t field, int64_t ns);

/* Finds the last occurrence of length-delimited field `field` in a message we encoded.
 * Returns true and sets *p,*n when found. Stops quietly on malformed input. */
bool ann_wire_find_bytes(const uint8_t *buf, size_t len, uint32_t field, const uint8_t **p,
                         size_t *n);

#endif
