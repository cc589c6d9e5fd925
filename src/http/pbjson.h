/*
 * ann_pbjson: the canonical proto3 JSON mapping, between JSON and protobuf wire bytes,
 * driven by protobuf-c descriptors of the public proto (annals.proto), so every message
 * maps the same way and a field added to the proto maps with no code here.
 *
 * The mapping (https://protobuf.dev/programming-guides/proto3/#json):
 *  - field names: lowerCamelCase on output; both that and the proto name on input;
 *  - int64, uint64 (and the fixed/sint forms): strings on output; strings or numbers in;
 *  - 32-bit integers and floats: numbers (strings accepted in);
 *  - enums: the value's name (its number when it has no name); name or number in;
 *  - bytes: base64 (standard or URL-safe alphabet in);
 *  - google.protobuf.Timestamp: RFC 3339 ("2026-12-07T12:00:00.123Z": 0, 3, 6 or 9
 *    fractional digits, always UTC out; any offset in);
 *  - google.protobuf.Struct / Value / ListValue: a JSON object / any value / an array;
 *  - maps: objects; repeated fields: arrays; null in: the field's default;
 *  - fields holding their default value are left out of the output (proto3's default),
 *    except oneof members (a text payload "" is a payload).
 *
 * Wire bytes are walked directly rather than unpacked into protobuf-c structs: protobuf-c
 * hands `string` fields to C NUL-terminated, which would cut a payload at its first NUL.
 * Strings are written as they are (the service validated them as UTF-8); a byte that is
 * not UTF-8 becomes U+FFFD, so the output is always valid JSON.
 */
#ifndef ANN_HTTP_PBJSON_H
#define ANN_HTTP_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* How deep JSON objects and arrays may nest in a request (jansson's own bound is 2048). */
#define ANN_PBJSON_MAX_DEPTH 100

/* Options of the JSON -> wire direction. */
typedef struct ann_pbjson_in {
    /* Query parameters: every value arrives as a string, so "true"/"false" are booleans. */
    bool strings_for_all;
} ann_pbjson_in;

/*
 * Appends to `out` the wire bytes of message `d` given as the JSON object `j`. Unknown
 * fields, values of the wrong type, two members of one oneof: -1 with ANN_EINVAL whose
 * message names the field as the client spelled it (`entries[3].insertId: ...`), with
 * `prefix` in front (NULL for none).
 */
int ann_pbjson_from_json(const ProtobufCMessageDescriptor *d, const json_t *j,
                         const ann_pbjson_in *opt, const char *prefix, ann_buf *out, ann_err *err);

/* The same from JSON text: parse errors name the line and column. */
int ann_pbjson_from_text(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                         ann_buf *out, ann_err *err);

/*
 * Appends to `out` the JSON of message `d` from its wire bytes `buf`. Bytes that do not
 * frame as `d` (they come from our own service, so this is a bug): -1 with ANN_EINTERNAL.
 */
int ann_pbjson_to_json(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                       ann_buf *out, ann_err *err);

/* Appends s[0..n) as a JSON string, quotes included (invalid UTF-8 as U+FFFD). */
void ann_pbjson_add_string(ann_buf *out, const char *s, size_t n);

/* Finds a field by its JSON or proto name; NULL when there is none. */
const ProtobufCFieldDescriptor *ann_pbjson_field(const ProtobufCMessageDescriptor *d,
                                                 const char *name);

#endif
