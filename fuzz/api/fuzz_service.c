/*
 * Fuzz target: every unary RPC handler and the tail opener on untrusted request bytes.
 * The first input byte picks the RPC; the rest is the request as it would come off the
 * wire. Runs over the memory double of the storage port with one known tenant and log
 * (log id 00000000-0000-4000-8000-000000000001), so writes, lists and revokes reach
 * the store rather than stopping at NOT_FOUND.
 *
 * Built as a libFuzzer target with clang (-DANN_FUZZ=ON); with any compiler, the
 * replay driver (replay.c) runs the kept corpus as a unit test.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/service.h"
#include "memstore.h"

#define FUZZ_LOG "00000000-0000-4000-8000-000000000001"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ann_err err;
    ann_store *store = ann_memstore_new();
    ann_service svc;
    ann_tenant t;
    uint8_t h[32] = {1};
    ann_store_tenant_create(store, "fuzz", h, &t, &err);
    ann_store_log_create(store, t.id, FUZZ_LOG, NULL, 0, 0, &err);
    ann_service_init(&svc, store, &err);

    ann_rpc rpc = (ann_rpc)(data[0] % ANN_NRPC); /* every ann_rpc, SetLegalHold included */
    ann_buf resp = ANN_BUF_INIT;
    if (rpc == ANN_RPC_TAIL) {
        ann_tail tail;
        if (ann_tail_open(&svc, &t, data + 1, size - 1, &tail, &err) == 0) {
            size_t n;
            ann_tail_next(&tail, &resp, &n, &err);
        }
    } else {
        /* Twice: the second run meets the first one's entries (dedup, paging). */
        for (int i = 0; i < 2; i++) {
            resp.len = 0;
            ann_service_unary(&svc, rpc, &t, data + 1, size - 1, &resp, &err);
        }
    }
    ann_buf_release(&resp);
    ann_store_close(store);
    return 0;
}
