/*
 * Fuzz target: the packed entries of a log_batches row (src/archive/batch_codec.h), which
 * the archive reads back from Cassandra. The first byte is the row's entry count (n), the
 * rest the blob. Whatever decodes must stay inside the blob and encode back to the same
 * bytes.
 *
 * Built as a libFuzzer target with clang (-DANN_FUZZ=ON); with any compiler, the replay
 * driver (fuzz/replay.c) runs the kept corpus as a unit test.
 */
#include <stdlib.h>
#include <string.h>

#include "archive/batch_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = data[0];
    const uint8_t *blob = data + 1;
    size_t len = size - 1;
    ann_entry e[256];
    ann_batch_reader r;
    if (ann_batch_reader_init(&r, blob, len, 1, n) < 0)
        return 0;
    size_t got = 0;
    int k;
    while ((k = ann_batch_next(&r, &e[got])) == 1) {
        const uint8_t *end = blob + len;
        if ((const uint8_t *)e[got].insert_id + e[got].insert_id_len > end ||
            e[got].body + e[got].body_len > end || e[got].entry_id != got + 1)
            abort();
        got++;
    }
    if (k == 0) { /* a whole blob: it encodes back to itself */
        if (got != n || ann_batch_size(e, got) != len)
            abort();
        uint8_t *out = malloc(len);
        if (!out)
            return 0;
        if (ann_batch_encode(e, got, out) != len || memcmp(out, blob, len) != 0)
            abort();
        free(out);
    }
    return 0;
}
