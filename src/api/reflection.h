/*
 * ann_reflection: the answers of gRPC server reflection (grpc.reflection.v1 and v1alpha,
 * whose messages are the same on the wire), from the FileDescriptorSet of annals.proto,
 * the health and reflection protos and their imports, embedded at build time
 * (src/api/CMakeLists.txt: protoc --descriptor_set_out --include_imports).
 *
 * Immutable once built: answers may be computed on any thread at once.
 */
#ifndef ANN_API_REFLECTION_H
#define ANN_API_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct ann_reflection ann_reflection;

/* Builds the index from the embedded descriptor set; NULL with err if it is unreadable. */
ann_reflection *ann_reflection_new(ann_err *err);
void ann_reflection_free(ann_reflection *r);

/* One ServerReflectionRequest (untrusted bytes) -> one ServerReflectionResponse appended
 * to resp. A request for something unknown is answered with an error_response
 * (NOT_FOUND), as the protocol says; -1 (INVALID_ARGUMENT) only for bytes that are not a
 * ServerReflectionRequest. */
int ann_reflection_answer(const ann_reflection *r, const uint8_t *req, size_t len, ann_buf *resp,
                          ann_err *err);

/* The embedded FileDescriptorSet (generated, descriptor_set.c). */
extern const uint8_t ann_descriptor_set[];
extern const size_t ann_descriptor_set_len;

#endif
