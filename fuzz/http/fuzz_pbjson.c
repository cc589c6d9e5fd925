/*
 * Fuzz target: the JSON API's decoder (src/http/pbjson.c), on untrusted JSON text as it
 * comes in a request body. The first byte picks the request message; the rest is the body.
 * Every input must decode or be refused with INVALID_ARGUMENT, never crash or leak; what
 * decodes must unpack as the message, print as JSON, and print the same after a second
 * round (JSON -> wire -> JSON -> wire -> JSON).
 *
 * Built as a libFuzzer target with clang (-DANN_FUZZ=ON); with any compiler, the replay
 * driver (replay.c) runs the kept corpus (fuzz/http/corpus) as a unit test.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "annals/v1/annals.pb-c.h"
#include "http/pbjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const msgs[] = {
    &annals__v1__write_log_entries_request__descriptor,
    &annals__v1__create_log_request__descriptor,
    &annals__v1__list_log_entries_request__descriptor,
    &annals__v1__list_logs_request__descriptor,
    &annals__v1__read_log_entries_request__descriptor,
    &annals__v1__search_log_entries_request__descriptor,
    &annals__v1__revoke_log_entries_request__descriptor,
    &annals__v1__tail_log_entries_request__descriptor,
    &annals__v1__log_entry__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *d = msgs[data[0] % (sizeof msgs / sizeof msgs[0])];
    ann_err err = {0};
    ann_buf w1 = ANN_BUF_INIT, j1 = ANN_BUF_INIT, w2 = ANN_BUF_INIT, j2 = ANN_BUF_INIT;
    if (ann_pbjson_from_text(d, (const char *)data + 1, size - 1, &w1, &err) != 0) {
        if (err.code != ANN_EINVAL)
            abort();
        goto done;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, w1.len, w1.data);
    if (!m)
        abort(); /* we wrote bytes that are not the message */
    protobuf_c_message_free_unpacked(m, NULL);
    if (ann_pbjson_to_json(d, w1.data, w1.len, &j1, &err) != 0 ||
        ann_pbjson_from_text(d, (const char *)j1.data, j1.len, &w2, &err) != 0 ||
        ann_pbjson_to_json(d, w2.data, w2.len, &j2, &err) != 0)
        abort(); /* our own output must read back */
    if (j1.len != j2.len || memcmp(j1.data, j2.data, j1.len) != 0)
        abort(); /* and print the same */
done:
    ann_buf_release(&w1);
    ann_buf_release(&j1);
    ann_buf_release(&w2);
    ann_buf_release(&j2);
    return 0;
}
