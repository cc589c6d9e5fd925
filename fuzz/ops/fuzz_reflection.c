/*
 * Fuzz target: the server reflection answers (src/api/reflection.c) on untrusted
 * ServerReflectionRequest bytes, as they come off a reflection stream. Every input must
 * give an answer or INVALID_ARGUMENT, never a crash, a leak or an answer that does not
 * decode.
 *
 * Built as a libFuzzer target with clang (-DANN_FUZZ=ON); with any compiler, the replay
 * driver (replay.c) runs the kept corpus (made by make_corpus.py) as a unit test.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "api/reflection.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ann_err err = {0};
    ann_reflection *r = ann_reflection_new(&err);
    if (!r)
        abort();
    ann_buf resp = ANN_BUF_INIT;
    if (ann_reflection_answer(r, data, size, &resp, &err) == 0) {
        Grpc__Reflection__V1__ServerReflectionResponse *a =
            grpc__reflection__v1__server_reflection_response__unpack(NULL, resp.len, resp.data);
        if (!a || a->message_response_case ==
                      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE__NOT_SET)
            abort(); /* every request gets one of the four answers */
        grpc__reflection__v1__server_reflection_response__free_unpacked(a, NULL);
    } else if (err.code != ANN_EINVAL) {
        abort();
    }
    ann_buf_release(&resp);
    ann_reflection_free(r);
    return 0;
}
