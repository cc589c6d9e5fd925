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
#include "common/err.h"
#include "wire.pb-c.h"

/* How many times a repeated field may occur in one message before unpacking is refused;
 * a table ends with a NULL descriptor. */
typedef struct ann_wire_limit {
    const ProtobufCMessageDescriptor *msg;
    uint32_t field;
    size_t max;
} ann_wire_limit;

/*
 * Runs on every request before protobuf-c unpacks it, because the unpacker recurses
 * without a limit and allocates ~100 bytes for a 2-byte empty sub-message. Checks that
 * `buf` is well-framed protobuf for message `d`, that sub-messages nest no deeper than
 * max_depth, that no repeated field exceeds its limit in `limits`, and that no message
 * carries more than ANN_WIRE_MAX_UNKNOWN unknown fields. On failure fills `err` (an
 * INVALID_ARGUMENT naming the field when a count is the reason) and returns -1.
 * Linear in len; recursion only for sub-messages, at most max_depth frames.
 */
#define ANN_WIRE_MAX_UNKNOWN 64
int ann_wire_precheck(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                      int max_depth, const ann_wire_limit *limits, ann_err *err);

/*
 * Validates the bytes of a google.protobuf.Struct in one pass, allocating nothing: known
 * fields with their wire types, keys and strings UTF-8, numbers finite, null_value 0,
 * every value set, nesting at most max_depth. Returns NULL when valid, else a reason.
 */
const char *ann_wire_struct_check(const uint8_t *buf, size_t len, int max_depth);

/* Timestamp <-> ns since the Unix epoch. to_ns fails (-1) on nanos outside
 * 0..999999999 or a time outside 1678-01-01T00:00:00Z .. 2261-12-31T23:59:59.999999999Z
 * (whole years inside the range of int64 nanoseconds). */
int ann_wire_ts_to_ns(const Annals__Wire__V1__Timestamp *ts, int64_t *out);
void ann_wire_add_ts(ann_buf *b, uint32_t field, int64_t ns);

/* Finds the last occurrence of length-delimited field `field` in a message we encoded.
 * Returns true and sets *p,*n when found. Stops quietly on malformed input. */
bool ann_wire_find_bytes(const uint8_t *buf, size_t len, uint32_t field, const uint8_t **p,
                         size_t *n);

#endif
